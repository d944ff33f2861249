//! `docent bench serve`: starts `docent serve` on the index as a child
//! process, opens many concurrent connections to it over loopback (1,000
//! by default), each sending a mix of `/search`, `/ask/stream` and
//! `/v1/chat/completions` requests, and reports:
//!
//! * responses by route and status, and every error that is not one of
//!   the designed 429s (the goal is none);
//! * `/search` latency (p50, p99) under that load;
//! * answers completed and generation throughput (tokens/s from the
//!   server's `/metrics`);
//! * the server's resident memory idle (index and encoder loaded), with
//!   the model loaded (one answer made), and at its peak under load,
//!   against idle + model + 200 MB, where the model's size is what loading
//!   it added (docent repacks the weights for its kernels, so it is larger
//!   than the file, which is reported too).
//!
//! Each connection is one hyper HTTP/1.1 client connection on its own
//! task, so the connections are really concurrent, not pooled.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::Serialize;

use super::proc_status_mb;

#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Requests each connection sends, one after another.
    #[arg(long, default_value_t = 2)]
    requests: usize,
    /// Of every 10 requests, how many are answers (the rest are searches);
    /// answers alternate between /ask/stream and /v1/chat/completions.
    #[arg(long, default_value_t = 2)]
    answers_per_10: usize,
    /// Language model of the server.
    #[arg(long, default_value = docent_rag::DEFAULT_GENERATOR)]
    model: String,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 48)]
    max_tokens: usize,
    /// Port of the server (on 127.0.0.1).
    #[arg(long, default_value_t = 18_481)]
    port: u16,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

const QUESTIONS: &[&str] = &[
    "What is retrieval-augmented generation?",
    "양자화란 무엇인가요?",
    "What is the difference between LangServe and LangSmith?",
    "RAG에서 검색기의 역할은 무엇인가요?",
    "How does HNSW search a graph?",
    "BM25는 어떻게 문서의 순위를 매기나요?",
];

#[derive(Debug, Default, Serialize)]
struct Report {
    connections: usize,
    requests: usize,
    by_route_status: BTreeMap<String, usize>,
    /// Failures that are not a designed 429: other statuses, broken
    /// connections, streams that ended without their last event.
    errors: usize,
    error_samples: Vec<String>,
    search_p50_ms: f64,
    search_p99_ms: f64,
    answers_completed: usize,
    answers_refused_429: usize,
    wall_s: f64,
    generated_tokens: f64,
    generation_tokens_per_s: f64,
    idle_rss_mb: f64,
    /// After one answer: the model loaded.
    loaded_rss_mb: f64,
    /// What loading the model added.
    model_mb: f64,
    peak_rss_mb: f64,
    model_file_mb: f64,
    /// idle + model + 200 MB.
    rss_bound_mb: f64,
    within_bound: bool,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(index_dir: &Path, args: ServeBenchArgs) -> Result<()> {
    anyhow::ensure!(
        args.connections > 0 && args.requests > 0,
        "--connections and --requests must be at least 1"
    );
    raise_fd_limit(args.connections + 64);
    // Fetched here if missing, so the server's first answer does not wait.
    let model_file = docent_rag::models::resolve_generator(&args.model)?.path;
    let model_mb = std::fs::metadata(&model_file)?.len() as f64 / 1048576.0;
    let exe = std::env::current_exe()?;
    let port = args.port;
    let child = Command::new(exe)
        .arg("--index")
        .arg(index_dir)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--model",
            &args.model,
        ])
        .args(["--max-tokens", &args.max_tokens.to_string(), "--queue", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting docent serve")?;
    let pid = child.id().to_string();
    let _server = Server(child);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        wait_ready(port).await?;
        // Idle: index and encoder loaded, one search run.
        let _ = request(port, "POST", "/search", r#"{"query":"warm up","k":3}"#).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = proc_status_mb(&pid, "VmRSS:");
        // The model loads on the first answer.
        let (status, body, _) = request(
            port,
            "POST",
            "/ask/invoke",
            r#"{"input":{"question":"What is RAG?","max_tokens":4}}"#,
        )
        .await?;
        anyhow::ensure!(status == 200, "the first answer failed ({status}): {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let loaded = proc_status_mb(&pid, "VmRSS:");
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.connections)
            .map(|c| {
                let a = Arc::new((args.requests, args.answers_per_10));
                tokio::spawn(connection(port, c, a))
            })
            .collect();
        let mut report = Report {
            connections: args.connections,
            idle_rss_mb: idle,
            loaded_rss_mb: loaded,
            model_mb: loaded - idle,
            model_file_mb: model_mb,
            ..Report::default()
        };
        let mut search_ms = Vec::new();
        for t in tasks {
            let outcomes = t
                .await
                .unwrap_or_else(|e| vec![Outcome::Broken(e.to_string())]);
            for o in outcomes {
                report.requests += 1;
                match o {
                    Outcome::Response {
                        route,
                        status,
                        ms,
                        complete,
                    } => {
                        *report
                            .by_route_status
                            .entry(format!("{route} {status}"))
                            .or_default() += 1;
                        if route == "/search" && status == 200 {
                            search_ms.push(ms);
                        }
                        if route != "/search" && status == 200 && complete {
                            report.answers_completed += 1;
                        }
                        if route != "/search" && status == 429 {
                            report.answers_refused_429 += 1;
                        } else if status != 200 || !complete {
                            report.errors += 1;
                            if report.error_samples.len() < 5 {
                                report
                                    .error_samples
                                    .push(format!("{route} {status} complete={complete}"));
                            }
                        }
                    }
                    Outcome::Broken(e) => {
                        report.errors += 1;
                        if report.error_samples.len() < 5 {
                            report.error_samples.push(e);
                        }
                    }
                }
            }
        }
        report.wall_s = started.elapsed().as_secs_f64();
        search_ms.sort_by(f64::total_cmp);
        report.search_p50_ms = percentile(&search_ms, 0.50);
        report.search_p99_ms = percentile(&search_ms, 0.99);
        if let Ok((200, text, _)) = request(port, "GET", "/metrics", "").await {
            report.generated_tokens = metric(&text, "docent_generated_tokens_total");
            report.generation_tokens_per_s = report.generated_tokens / report.wall_s;
        }
        report.peak_rss_mb = proc_status_mb(&pid, "VmHWM:");
        report.rss_bound_mb = report.loaded_rss_mb + 200.0;
        report.within_bound = report.peak_rss_mb <= report.rss_bound_mb;
        anyhow::Ok(report)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} connections × {} requests over loopback, {:.1} s",
            report.connections, args.requests, report.wall_s
        );
        for (k, v) in &report.by_route_status {
            println!("  {k:<28} {v}");
        }
        println!("errors other than 429: {}", report.errors);
        for e in &report.error_samples {
            println!("  {e}");
        }
        println!(
            "/search under load: p50 {:.1} ms, p99 {:.1} ms",
            report.search_p50_ms, report.search_p99_ms
        );
        println!(
            "answers completed {}, refused with 429 {}; generation {:.1} tokens/s ({} tokens)",
            report.answers_completed,
            report.answers_refused_429,
            report.generation_tokens_per_s,
            report.generated_tokens
        );
        println!(
            "server memory: idle {:.0} MB, model loaded {:.0} MB (+{:.0}; file {:.0} MB), peak {:.0} MB; bound idle + model + 200 MB = {:.0} MB: {}",
            report.idle_rss_mb,
            report.loaded_rss_mb,
            report.model_mb,
            report.model_file_mb,
            report.peak_rss_mb,
            report.rss_bound_mb,
            if report.within_bound { "within" } else { "EXCEEDED" }
        );
    }
    Ok(())
}

enum Outcome {
    Response {
        route: &'static str,
        status: u16,
        ms: f64,
        complete: bool,
    },
    Broken(String),
}

/// One connection: its requests one after another.
async fn connection(port: u16, c: usize, a: Arc<(usize, usize)>) -> Vec<Outcome> {
    let (requests, answers_per_10) = *a;
    let stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => return vec![Outcome::Broken(format!("connect: {e}"))],
    };
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(x) => x,
        Err(e) => return vec![Outcome::Broken(format!("handshake: {e}"))],
    };
    tokio::spawn(conn);
    let mut out = Vec::new();
    for r in 0..requests {
        let slot = (c * requests + r) % 10;
        let q = QUESTIONS[(c + r) % QUESTIONS.len()];
        let (route, body, done_marker): (&'static str, String, &'static str) = if slot
            < answers_per_10
        {
            if slot.is_multiple_of(2) {
                (
                    "/ask/stream",
                    serde_json::json!({"input": q}).to_string(),
                    "event: end",
                )
            } else {
                (
                    "/v1/chat/completions",
                    serde_json::json!({"model": "docent", "stream": true, "messages": [{"role": "user", "content": q}]}).to_string(),
                    "data: [DONE]",
                )
            }
        } else {
            (
                "/search",
                serde_json::json!({"query": q, "k": 5}).to_string(),
                "",
            )
        };
        let req = hyper::Request::post(route)
            .header("host", format!("127.0.0.1:{port}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let t = Instant::now();
        if let Err(e) = send.ready().await {
            out.push(Outcome::Broken(format!("{route}: {e}")));
            break;
        }
        match send.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                let ms = t.elapsed().as_secs_f64() * 1e3;
                match body {
                    Ok(b) => {
                        let text = String::from_utf8_lossy(&b);
                        let complete =
                            status != 200 || done_marker.is_empty() || text.contains(done_marker);
                        out.push(Outcome::Response {
                            route,
                            status,
                            ms,
                            complete,
                        });
                    }
                    Err(e) => out.push(Outcome::Broken(format!("{route} body: {e}"))),
                }
            }
            Err(e) => {
                out.push(Outcome::Broken(format!("{route}: {e}")));
                break;
            }
        }
    }
    out
}

/// One request on a fresh connection: (status, body, ms).
async fn request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String, f64)> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let t = Instant::now();
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let b = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        String::from_utf8_lossy(&b).into_owned(),
        t.elapsed().as_secs_f64() * 1e3,
    ))
}

async fn wait_ready(port: u16) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if let Ok((200, _, _)) = request(port, "GET", "/health", "").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the server did not answer /health within 120 s")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A counter's value from Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Raises the open-file limit to at least `n` (up to the hard limit):
/// each connection is a descriptor.
pub fn raise_fd_limit(n: usize) {
    #[cfg(unix)]
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && (r.rlim_cur as usize) < n {
            r.rlim_cur = (n as libc::rlim_t).min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
