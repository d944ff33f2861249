//! Real clients that no one here wrote, against `docent serve`: the
//! official `openai` Python package (a streamed chat completion with its
//! citations, and a whole one) and LangServe's `RemoteRunnable` (invoke,
//! stream and batch of the `ask` chain). They are installed by this test
//! into a venv of their own from tests/clients/requirements.txt (pinned);
//! a machine that cannot install them fails the test, loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server;

/// A venv with the pinned clients, made once per requirements file.
fn venv() -> PathBuf {
    let req = common::root().join("tests/clients/requirements.txt");
    let text = std::fs::read_to_string(&req).unwrap();
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("py-clients-{hash:016x}"));
    let python = dir.join("bin/python");
    if dir.join("ready").exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let run = |cmd: &mut Command, what: &str| {
        let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            o.status.success(),
            "{what} failed (python3 with venv and pip, and access to the package registry, are needed):\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "creating the clients' venv",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&req),
        "installing openai and langserve",
    );
    std::fs::write(dir.join("ready"), "").unwrap();
    python
}

fn client(python: &Path, script: &str, base: &str) -> serde_json::Value {
    let o = Command::new(python)
        .arg(common::root().join("tests/clients").join(script))
        .arg(base)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{script} failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {out}"))
}

fn hangul(s: &str) -> bool {
    s.chars().any(|c| ('가'..='힣').contains(&c))
}

#[test]
fn the_openai_package_and_langserves_remote_runnable_talk_to_docent() {
    let python = venv();
    common::gguf(docent_rag::DEFAULT_GENERATOR);
    let ix = server::corpus_index();
    let s = server::start(&ix, &["--max-tokens", "96", "--preload"]);
    let base = s.url("");

    let o = client(&python, "openai_client.py", &base);
    eprintln!("openai: {o}");
    assert_eq!(o["models"][0], docent_rag::DEFAULT_GENERATOR);
    let text = o["streamed_text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    assert!(o["finish_reason"].is_string());
    // The follow-up ("Why does it make a model faster…") was retrieved as
    // a question about quantization.
    let rq = o["retrieval_query"]
        .as_str()
        .expect("the follow-up was rewritten");
    assert!(rq.contains("quantization"), "{rq}");
    let sources = o["sources"].as_array().unwrap();
    assert!(!sources.is_empty());
    assert!(sources
        .iter()
        .all(|s| s["url"].as_str().unwrap().starts_with("/chunks/")));
    assert!(o["trace_id"].is_string());
    assert!(
        hangul(o["whole_text"].as_str().unwrap()),
        "{}",
        o["whole_text"]
    );
    assert!(o["whole_sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["path"] == "glossary-ko.md"));

    let l = client(&python, "langserve_client.py", &base);
    eprintln!("langserve: {l}");
    assert!(l["invoke_answer"].as_str().unwrap().contains("LangServe"));
    assert!(!l["invoke_sources"].as_array().unwrap().is_empty());
    assert!(
        hangul(l["stream_answer"].as_str().unwrap()),
        "{}",
        l["stream_answer"]
    );
    assert!(l["stream_last"]["trace_id"].is_string());
    assert_eq!(l["batch_answers"].as_array().unwrap().len(), 2);
    assert_eq!(l["batch_sources"][1], 1);
}
