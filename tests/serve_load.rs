//! `docent serve` under 1,000 concurrent connections over loopback
//! (`docent bench serve`, which starts the server itself): a mix of
//! `/search`, `/ask/stream` and `/v1/chat/completions`. No error but the
//! designed 429s, every answer admitted finishes, searches are served
//! throughout, and the server's memory stays within its idle size, plus the
//! loaded model, plus 200 MB. Latency is reported, not asserted.

mod common;

#[test]
fn a_thousand_connections_get_answers_searches_or_429_and_memory_stays_bounded() {
    common::gguf(docent_rag::DEFAULT_GENERATOR);
    let ix = common::server::corpus_index();
    let port = common::server::free_port().to_string();
    let out = common::ok(&common::docent(
        ix.parent().unwrap(),
        &[
            "--index",
            ix.to_str().unwrap(),
            "bench",
            "serve",
            "--connections",
            "1000",
            "--requests",
            "2",
            "--max-tokens",
            "32",
            "--port",
            &port,
            "--json",
        ],
    ));
    eprintln!("{out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["requests"], 2000);
    assert_eq!(
        r["errors"], 0,
        "errors other than 429: {}",
        r["error_samples"]
    );
    let by = &r["by_route_status"];
    assert_eq!(by["/search 200"], 1600, "{by}");
    assert!(r["answers_completed"].as_u64().unwrap() >= 2, "{by}");
    assert!(r["answers_refused_429"].as_u64().unwrap() > 0, "{by}");
    assert_eq!(
        r["answers_completed"].as_u64().unwrap() + r["answers_refused_429"].as_u64().unwrap(),
        400
    );
    assert_eq!(
        r["within_bound"], true,
        "peak {} MB, bound {} MB",
        r["peak_rss_mb"], r["rss_bound_mb"]
    );
}
