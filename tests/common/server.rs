//! A `docent serve` process for the HTTP tests, and a small client.
//!
//! Each server runs on a free loopback port over its own copy of an index
//! of corpus/. It is started from a thread that lives as long as the test
//! binary and asks the kernel to kill it when that thread ends
//! (`PR_SET_PDEATHSIG`), so no server outlives its tests.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    pub index: PathBuf,
    pub pid: u32,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A free loopback port (there is a small window before the server binds
/// it; tests run few servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An index of corpus/ in a folder that lives as long as the process.
pub fn corpus_index() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let ix = dir.join("ix");
    super::ok(&super::docent(
        &dir,
        &[
            "--index",
            ix.to_str().unwrap(),
            "index",
            super::corpus().to_str().unwrap(),
        ],
    ));
    ix
}

/// Starts `docent serve` on `index` with `args` and waits until `/health`
/// answers (or panics with the server's output).
pub fn start(index: &Path, args: &[&str]) -> Server {
    start_at(index, &format!("127.0.0.1:{}", free_port()), args, &[])
}

/// Like [`start`], on `addr`, with extra environment variables.
pub fn start_at(index: &Path, addr: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_docent"));
    cmd.arg("--index")
        .arg(index)
        .args(["serve", "--addr", addr])
        .args(args)
        .env_remove("DOCENT_INDEX")
        .env_remove("DOCENT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("docent serve starts");
        let stderr = child.stderr.take().unwrap();
        let _ = tx.send(child.id());
        // Keep the server's log for a failing test to show.
        let mut log = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut log);
        let status = child.wait();
        eprintln!("docent serve on port {port} ended ({status:?}):\n{log}");
        // This thread ends with the process.
        loop {
            std::thread::park();
        }
    });
    let pid = rx.recv().expect("the server's pid");
    let server = Server {
        port,
        index: index.to_path_buf(),
        pid,
    };
    let t = Instant::now();
    loop {
        // 401: a server with a token is up too.
        if let Ok((200 | 401, _)) = try_get(&server, "/health") {
            return server;
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "docent serve did not answer /health within 180 s"
        );
        if !Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(300));
            panic!("docent serve exited before answering (its log is above)");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(600))
        .build()
}

fn read(r: Result<ureq::Response, ureq::Error>) -> Result<(u16, String), String> {
    match r {
        Ok(resp) => {
            let status = resp.status();
            Ok((status, resp.into_string().map_err(|e| e.to_string())?))
        }
        Err(ureq::Error::Status(code, resp)) => Ok((code, resp.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

pub fn try_get(s: &Server, path: &str) -> Result<(u16, String), String> {
    read(agent().get(&s.url(path)).call())
}

/// GET: status and body.
pub fn get(s: &Server, path: &str) -> (u16, String) {
    try_get(s, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// POST a JSON body: status and body.
pub fn post(s: &Server, path: &str, body: &str) -> (u16, String) {
    post_with(s, path, &[("Content-Type", "application/json")], body)
}

pub fn post_with(s: &Server, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut req = agent().post(&s.url(path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    read(req.send_string(body)).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A server-sent event: its name (`message` when unnamed) and data.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub data: String,
}

/// POSTs `body` and reads the event stream to its end.
pub fn post_sse(s: &Server, path: &str, body: &str) -> (u16, Vec<Sse>) {
    let r = agent()
        .post(&s.url(path))
        .set("Content-Type", "application/json")
        .send_string(body);
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => return (code, Vec::new()),
        Err(e) => panic!("POST {path}: {e}"),
    };
    let status = resp.status();
    let mut events = Vec::new();
    let (mut event, mut data) = (String::from("message"), String::new());
    for line in BufReader::new(resp.into_reader()).lines() {
        let line = line.expect("the stream reads");
        if line.is_empty() {
            if !data.is_empty() || event != "message" {
                events.push(Sse {
                    event: std::mem::replace(&mut event, "message".into()),
                    data: std::mem::take(&mut data),
                });
            }
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (status, events)
}
