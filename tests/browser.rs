//! The web page in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, which .ci/run installs when missing), driven
//! through WebDriver by fantoccini. It asks a Korean question from the
//! keyboard, waits for the streamed answer and its sources, opens a
//! citation, checks the DOM (labels, the chunk's path:line and text, the
//! trace and rating controls), continues the conversation, checks the page
//! at phone width, and saves a screenshot for the README
//! (docs/screenshot.png).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use common::server;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_installed() -> bool {
    std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists()
}

/// Installs Debian's chromium and chromium-driver when they are missing,
/// as the model tests fetch their models; fails loudly when it cannot.
fn install_browser() {
    if browser_installed() {
        return;
    }
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("-n").arg("apt-get");
            c
        };
        c.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let ok = apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])
        || (apt(&["update", "-qq"])
            && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]));
    assert!(
        ok && browser_installed(),
        "the browser test needs Debian's chromium and chromium-driver, and could not install \
         them: run `apt-get install chromium chromium-driver` (as .ci/run does)"
    );
}

/// Starts chromedriver on a free port; it dies with this test process.
fn chromedriver() -> u16 {
    install_browser();
    let port = server::free_port();
    let mut cmd = Command::new(CHROMEDRIVER);
    cmd.arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("chromedriver starts");
        let _ = child.wait();
        loop {
            std::thread::park();
        }
    });
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return port;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,1000", "--lang=ko-KR"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

async fn wait_for(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(secs))
        .every(Duration::from_millis(200))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {secs} s: {e}"))
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_answers_a_korean_question_with_sources_in_chromium() {
    common::gguf(docent_rag::DEFAULT_GENERATOR);
    let ix = server::corpus_index();
    let s = server::start(&ix, &["--max-tokens", "96", "--preload"]);
    let driver = chromedriver();
    let c = browser(driver).await;
    c.goto(&s.url("/")).await.unwrap();

    // Labelled controls.
    let label = c
        .find(Locator::Css("label[for='q']"))
        .await
        .expect("the question box has a label");
    assert!(!label.text().await.unwrap().is_empty());

    // Ask from the keyboard.
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("양자화란 무엇인가요?").await.unwrap();
    q.send_keys(&String::from(char::from(Key::Enter)))
        .await
        .unwrap();

    let turn = wait_for(&c, "#log .turn[data-done='true']", 240).await;
    let answer = turn
        .find(Locator::Css(".answer"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        answer.chars().any(|ch| ('가'..='힣').contains(&ch)),
        "the answer is not Korean: {answer}"
    );
    let sources = turn
        .find_all(Locator::Css(".sources button"))
        .await
        .unwrap();
    assert!(!sources.is_empty(), "no sources listed");
    let source_label = sources[0].text().await.unwrap();

    // Open a citation: an inline [n] mark when the answer has one, else
    // the first source.
    let cite = match turn.find(Locator::Css(".answer .cite")).await {
        Ok(b) => {
            let aria = b.attr("aria-label").await.unwrap().unwrap_or_default();
            assert!(aria.starts_with("Open source"), "{aria}");
            b
        }
        Err(_) => sources[0].clone(),
    };
    cite.click().await.unwrap();
    wait_for(&c, "dialog#chunk[open]", 10).await;
    let path = c
        .find(Locator::Id("chunk-path"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let text = c
        .find(Locator::Id("chunk-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        path.contains("glossary-ko.md") || path.contains("quantization-ko.txt"),
        "the citation opened {path}"
    );
    assert!(path.contains(':'), "no line in {path}");
    assert!(text.contains("양자화"), "{text}");
    assert!(source_label.contains(".md") || source_label.contains(".txt"));

    // Save the screenshot for the README while the chunk is open.
    let png = c.screenshot().await.unwrap();
    std::fs::create_dir_all(common::root().join("docs")).unwrap();
    std::fs::write(common::root().join("docs/screenshot.png"), &png).unwrap();
    c.find(Locator::Id("chunk-close"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Trace and rating are one click away.
    let up = turn
        .find(Locator::Css("button[aria-label='Good answer']"))
        .await
        .unwrap();
    up.click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "button[aria-label='Good answer'][aria-pressed='true']",
        ))
        .await
        .expect("the rating was kept");
    let details = turn.find(Locator::Css("details summary")).await.unwrap();
    details.click().await.unwrap();
    let trace = turn.find(Locator::Css("details pre")).await.unwrap();
    let mut shown = String::new();
    for _ in 0..50 {
        shown = trace.text().await.unwrap();
        if shown.contains("\"question\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(shown.contains("양자화란"), "{shown}");

    // The conversation continues: a follow-up is answered from the same
    // sources.
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("그건 왜 CPU에서 빠른가요?").await.unwrap();
    c.find(Locator::Id("ask"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#log .turn:nth-child(2)[data-done='true']", 240).await;
    let turns = c.find_all(Locator::Css("#log .turn")).await.unwrap();
    assert_eq!(turns.len(), 2);

    // Phone width: nothing scrolls sideways.
    c.set_window_size(390, 844).await.unwrap();
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_f64().unwrap() <= 0.0,
        "the page scrolls sideways by {overflow}"
    );

    c.close().await.unwrap();
}
