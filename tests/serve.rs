//! `docent serve` over real HTTP: the OpenAI and LangServe routes, search,
//! chunks, traces with ratings, conversations, a second search's sources,
//! the queue's 429, a client that leaves, tokens, limits, hostile
//! requests, and a new index generation picked up without a restart.
//!
//! One server (the default language model) is shared by the tests that
//! need answers; the tests of the queue and the token start their own.

mod common;

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::server::{self, get, json, post, post_sse, post_with, Server};

fn shared() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        common::gguf(docent_rag::DEFAULT_GENERATOR);
        let ix = server::corpus_index();
        server::start(&ix, &["--max-tokens", "96", "--preload"])
    })
}

#[test]
fn chat_completions_answer_with_citations_and_a_kept_trace() {
    let s = shared();
    let (status, body) = post(
        s,
        "/v1/chat/completions",
        r#"{"model":"anything","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"What is retrieval-augmented generation?"}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["object"], "chat.completion");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.to_lowercase().contains("retriev"), "{text}");
    let d = &v["docent"];
    let sources = d["sources"].as_array().unwrap();
    assert!(!sources.is_empty());
    assert!(sources.iter().any(|s| s["path"] == "glossary-en.md"), "{d}");
    assert!(d["support"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // Some of the prompt may have been kept from the answer before; never
    // all of it (its last token gives the logits).
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64();
    assert!(cached.is_some_and(|c| c < prompt_tokens), "{}", v["usage"]);

    // The cited chunk opens by id.
    let url = sources[0]["url"].as_str().unwrap();
    let (status, chunk) = get(s, url);
    assert_eq!(status, 200);
    assert_eq!(json(&chunk)["path"], sources[0]["path"]);

    // The trace is kept, and takes a rating.
    let id = d["trace_id"].as_str().unwrap();
    let (status, t) = get(s, &format!("/traces/{id}"));
    assert_eq!(status, 200, "{t}");
    let t = json(&t);
    assert_eq!(
        t["trace"]["question"],
        "What is retrieval-augmented generation?"
    );
    assert!(t["rating"].is_null());
    let (status, _) = post(
        s,
        &format!("/traces/{id}/rating"),
        r#"{"up":false,"note":"too long"}"#,
    );
    assert_eq!(status, 200);
    let t = json(&get(s, &format!("/traces/{id}")).1);
    assert_eq!(t["rating"]["up"], false);
    assert_eq!(t["rating"]["note"], "too long");
    let list = json(&get(s, "/traces?limit=500").1);
    assert!(list["traces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == id));
    // And from the CLI, which reads the same journal.
    let out = common::ok(&common::docent(
        s.index.parent().unwrap(),
        &[
            "--index",
            s.index.to_str().unwrap(),
            "traces",
            "show",
            id,
            "--json",
        ],
    ));
    assert_eq!(json(&out)["rating"]["up"], false);
}

#[test]
fn chat_completions_stream_as_openai_chunks() {
    let s = shared();
    let (status, events) = post_sse(
        s,
        "/v1/chat/completions",
        r#"{"model":"docent","stream":true,"messages":[{"role":"user","content":"양자화란 무엇인가요?"}]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| json(&e.data))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(
        text.chars().any(|c| ('가'..='힣').contains(&c)),
        "not Korean: {text}"
    );
    let last = chunks.last().unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string());
    let sources = last["docent"]["sources"].as_array().unwrap();
    assert!(sources
        .iter()
        .any(|s| s["path"] == "glossary-ko.md" || s["path"] == "quantization-ko.txt"));

    // A decline is streamed once, whether the model's check declined (it
    // streams the decline) or the retrieval gate did (nothing streamed
    // before the end).
    for question in [
        "파이스(FAISS) 인덱스를 GPU로 옮기려면 어떤 함수를 써야 하나요?",
        "이순신 장군은 어느 해에 태어났나요?",
    ] {
        let (text, _) = streamed_completion(s, question);
        assert_eq!(
            text.trim(),
            "제공된 문서에는 이 질문에 대한 답이 없습니다.",
            "{question}"
        );
    }
}

#[test]
fn a_follow_up_is_rewritten_and_the_conversation_is_kept() {
    let s = shared();
    let (status, body) = post(
        s,
        "/ask/invoke",
        r#"{"input":{"question":"양자화란 무엇인가요?","conversation_id":""}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let first = json(&body);
    let conversation = first["output"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first["metadata"]["run_id"], first["output"]["trace_id"]);
    let (status, body) = post(
        s,
        "/ask/invoke",
        &serde_json::json!({"input": {"question": "그건 왜 CPU에서 빠른가요?", "conversation_id": conversation}}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let second = json(&body)["output"].clone();
    let rq = second["retrieval_query"]
        .as_str()
        .expect("the follow-up was rewritten");
    assert!(rq.contains("양자화"), "{rq}");
    assert!(second["sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["path"] == "quantization-ko.txt" || s["path"] == "glossary-ko.md"));
    let turns = json(&get(s, &format!("/conversations/{conversation}")).1);
    assert_eq!(turns["turns"].as_array().unwrap().len(), 2);
    let list = json(&get(s, "/conversations").1);
    assert!(list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == conversation.as_str() && c["turns"] == 2));
}

#[test]
fn the_ask_chain_streams_and_batches_as_langserve_does() {
    let s = shared();
    let (status, events) = post_sse(s, "/ask/stream", r#"{"input":"What is LangSmith?"}"#);
    assert_eq!(status, 200);
    assert_eq!(events[0].event, "metadata");
    assert!(json(&events[0].data)["run_id"].is_string());
    assert_eq!(events.last().unwrap().event, "end");
    let data: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.event == "data")
        .map(|e| json(&e.data))
        .collect();
    let text: String = data.iter().filter_map(|d| d["answer"].as_str()).collect();
    assert!(
        text.contains("LangSmith") || text.to_lowercase().contains("trac"),
        "{text}"
    );
    assert!(data.last().unwrap()["trace_id"].is_string());

    let (status, body) = post(
        s,
        "/ask/batch",
        r#"{"inputs":["What is LangServe?",{"question":"환각이란 무엇인가요?","k":1}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["output"].as_array().unwrap().len(), 2);
    assert_eq!(v["metadata"]["run_ids"].as_array().unwrap().len(), 2);
    assert_eq!(v["output"][1]["sources"].as_array().unwrap().len(), 1);

    for path in ["/ask/input_schema", "/ask/output_schema"] {
        let (status, body) = get(s, path);
        assert_eq!(status, 200);
        assert!(json(&body)["title"].is_string());
    }
}

/// A Korean question the documents do not answer, about a subject both
/// languages touch (FAISS): the model's check turns down the chunks found
/// first, the question, translated, is searched again, and the stream says
/// so with a second `sources` chunk before any text, which the final
/// output's sources are; the decline is written once, after it. (A question
/// only the other language's page answers no longer needs the second
/// search: the first one, moved towards that language, finds the page.)
#[test]
fn a_second_search_streams_its_sources_before_the_answer() {
    let s = shared();
    let (status, events) = post_sse(
        s,
        "/ask/stream",
        r#"{"input":"파이스(FAISS) 인덱스를 GPU로 옮기려면 어떤 함수를 써야 하나요?"}"#,
    );
    assert_eq!(status, 200);
    let data: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.event == "data")
        .map(|e| json(&e.data))
        .collect();
    let announced: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].get("sources").is_some() && data[i].get("trace_id").is_none())
        .collect();
    assert_eq!(announced.len(), 2, "two sources chunks: {data:?}");
    let first_text = data.iter().position(|d| d.get("answer").is_some());
    assert!(
        first_text.is_some_and(|t| t > announced[1]),
        "no text before the second sources: {data:?}"
    );
    let output = data.last().unwrap();
    assert_eq!(
        &output["sources"], &data[announced[1]]["sources"],
        "the output cites what was announced last"
    );
    let rq = output["retrieval_query"]
        .as_str()
        .expect("the translated question");
    assert!(
        rq.to_lowercase().contains("faiss") && !rq.chars().any(|c| ('가'..='힣').contains(&c)),
        "{rq}"
    );
    let text: String = data.iter().filter_map(|d| d["answer"].as_str()).collect();
    assert_eq!(
        text.trim(),
        "제공된 문서에는 이 질문에 대한 답이 없습니다.",
        "{data:?}"
    );
    assert_eq!(output["final_answer"].as_str(), Some(text.trim()));
    assert_eq!(output["abstained"], true, "{output}");
}

#[test]
fn search_embeddings_models_health_metrics_and_the_api_description() {
    let s = shared();
    let (status, body) = post(
        s,
        "/search",
        r#"{"query":"BM25 lexical search","k":3,"mode":"lexical"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let r = json(&body)["results"].as_array().unwrap().clone();
    assert_eq!(r.len(), 3);
    assert!(r[0]["text"].as_str().unwrap().contains("BM25"));

    let (status, body) = post(
        s,
        "/v1/embeddings",
        r#"{"input":["양자화","quantization"],"model":"x"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let e = json(&body);
    let a = e["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(a.len(), 384);

    let models = json(&get(s, "/v1/models").1);
    assert_eq!(models["data"][0]["id"], docent_rag::DEFAULT_GENERATOR);

    let health = json(&get(s, "/health").1);
    assert_eq!(health["status"], "ok");
    assert!(health["index"]["chunks"].as_u64().unwrap() > 10);

    let (status, metrics) = get(s, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "docent_requests_total",
        "docent_request_seconds_bucket",
        "docent_queue_depth",
        "docent_decode_tokens_per_second",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    let api = json(&get(s, "/openapi.json").1);
    assert_eq!(api["openapi"], "3.1.0");
    for path in [
        "/v1/chat/completions",
        "/ask/stream",
        "/search",
        "/traces/{id}/rating",
    ] {
        assert!(api["paths"][path].is_object(), "{path} not described");
    }
    let (status, page) = get(s, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<textarea id=\"q\""));
}

/// Every hostile or malformed request gets a 4xx with a JSON message.
#[test]
fn bad_requests_get_a_4xx_with_a_message_never_a_500() {
    let s = shared();
    let long = "가".repeat(3_000);
    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("POST", "/v1/chat/completions", "{not json".into(), 400),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[]}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"assistant","content":"hi"}]}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"q"}],"max_tokens":100000}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"messages":"hello"}"#.into(),
            422,
        ),
        (
            "POST",
            "/ask/invoke",
            format!(r#"{{"input":"{long}"}}"#),
            413,
        ),
        (
            "POST",
            "/ask/invoke",
            r#"{"input":{"question":"   "}}"#.into(),
            400,
        ),
        ("POST", "/ask/invoke", r#"{"input":42}"#.into(), 422),
        (
            "POST",
            "/ask/invoke",
            r#"{"input":{"question":"q","k":0}}"#.into(),
            400,
        ),
        (
            "POST",
            "/ask/invoke",
            r#"{"input":{"question":"q","conversation_id":"nope"}}"#.into(),
            404,
        ),
        ("POST", "/ask/batch", r#"{"inputs":[]}"#.into(), 400),
        (
            "POST",
            "/ask/batch",
            format!(r#"{{"inputs":[{}]}}"#, vec![r#""q""#; 17].join(",")),
            400,
        ),
        ("POST", "/search", r#"{"query":"q","k":1000}"#.into(), 400),
        (
            "POST",
            "/search",
            r#"{"query":"q","path":"/etc/passwd"}"#.into(),
            422,
        ),
        (
            "POST",
            "/v1/embeddings",
            r#"{"input":[[1,2,3]]}"#.into(),
            400,
        ),
        ("POST", "/v1/embeddings", r#"{"input":[]}"#.into(), 400),
        ("GET", "/chunks/not-a-number", String::new(), 400),
        ("GET", "/chunks/999999999", String::new(), 404),
        ("GET", "/chunks/..%2F..%2Fetc%2Fpasswd", String::new(), 400),
        ("GET", "/traces/..%2Fjournal", String::new(), 404),
        (
            "GET",
            "/traces/ffffffffffffffffffffffff",
            String::new(),
            404,
        ),
        ("GET", "/traces?limit=-1", String::new(), 400),
        (
            "POST",
            "/traces/ffffffffffffffffffffffff/rating",
            r#"{"up":true}"#.into(),
            404,
        ),
        ("POST", "/traces/x/rating", r#"{"up":"yes"}"#.into(), 422),
        ("GET", "/conversations/c-nope", String::new(), 400),
        ("GET", "/no/such/route", String::new(), 404),
        ("GET", "/v1/chat/completions", String::new(), 405),
        ("DELETE", "/search", String::new(), 405),
    ];
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    for (method, path, body, want) in cases {
        let req = agent
            .request(method, &s.url(path))
            .set("Content-Type", "application/json");
        let r = if body.is_empty() {
            req.call()
        } else {
            req.send_string(&body)
        };
        let (status, text) = match r {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let shown: String = body.chars().take(80).collect();
        // `/conversations/c-nope` has a `-`: refused as an id (404 or 400
        // are both a clear refusal; what matters is the message).
        if path == "/conversations/c-nope" {
            assert!(status == 400 || status == 404, "{method} {path}: {status}");
        } else {
            assert_eq!(status, want, "{method} {path} {shown}: {text}");
        }
        let v = json(&text);
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: no message in {text}"
        );
    }
    // Without a JSON content type.
    let (status, text) = post_with(
        s,
        "/search",
        &[("Content-Type", "text/plain")],
        r#"{"query":"q"}"#,
    );
    assert_eq!(status, 415, "{text}");
    assert!(json(&text)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("JSON"));
    // A body over the limit is refused from its length, before it is read
    // (with `Expect: 100-continue` the client waits for that answer; without
    // it, a client still sending may see the connection close instead).
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(
        b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 307200\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = String::new();
    let mut buf = vec![0u8; 4096];
    while !reply.contains("\r\n\r\n{") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"message\""), "{reply}");
    // A malformed request line or header never reaches a handler, and the
    // server stays up.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"GARBAGE / HTTP/9.9\r\n\xff\xfe: x\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = c.read_to_string(&mut reply);
    assert!(!reply.contains(" 500 "), "{reply}");
    assert_eq!(get(s, "/health").0, 200);
}

#[test]
fn a_new_index_generation_is_served_without_a_restart() {
    let s = shared();
    // The shared server's index is its own: re-index it with one more file.
    let docs = tempfile::tempdir().unwrap();
    common::copy_dir(&common::corpus(), docs.path());
    std::fs::write(
        docs.path().join("zebra.md"),
        "# Zebras\n\nThe docent test zebra is named Quillfeather and eats marmalade.\n",
    )
    .unwrap();
    let before = json(&get(s, "/health").1)["index"]["generation"].clone();
    // Searches keep succeeding while the writer publishes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = s.port;
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = ureq::post(&format!("http://127.0.0.1:{port}/search"))
                    .set("Content-Type", "application/json")
                    .send_string(r#"{"query":"Quillfeather marmalade","k":1}"#);
                assert!(r.is_ok(), "a search failed during the publish: {r:?}");
                n += 1;
            }
            n
        })
    };
    common::ok(&common::docent(
        docs.path(),
        &[
            "--index",
            s.index.to_str().unwrap(),
            "index",
            docs.path().to_str().unwrap(),
        ],
    ));
    let t = Instant::now();
    loop {
        let (_, body) = post(s, "/search", r#"{"query":"Quillfeather marmalade","k":1}"#);
        if json(&body)["results"][0]["path"] == "zebra.md" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the new generation was not picked up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(poller.join().unwrap() > 0);
    let after = json(&get(s, "/health").1)["index"]["generation"].clone();
    assert_ne!(before, after);
}

#[test]
fn a_full_queue_answers_429_and_a_client_that_leaves_cancels_its_answer() {
    let ix = server::corpus_index();
    common::gguf(docent_rag::DEFAULT_GENERATOR);
    let s = server::start(
        &ix,
        &[
            "--max-generations",
            "1",
            "--queue",
            "0",
            "--max-tokens",
            "400",
            "--preload",
        ],
    );
    // A long streamed answer holds the only slot.
    let mut held = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let body = r#"{"input":"Explain everything about LangChain, LangServe and LangSmith in detail.","config":{}}"#;
    write!(
        held,
        "POST /ask/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let n = held.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("200"));

    let r = ureq::post(&s.url("/ask/invoke"))
        .set("Content-Type", "application/json")
        .send_string(r#"{"input":"What is RAG?"}"#);
    match r {
        Err(ureq::Error::Status(429, resp)) => {
            let retry: u64 = resp
                .header("Retry-After")
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!(retry >= 1);
            assert!(json(&resp.into_string().unwrap())["error"]["message"].is_string());
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // The client leaves: its answer is cancelled and the slot freed.
    drop(held);
    // Search does not wait behind the answer.
    let t = Instant::now();
    assert_eq!(post(&s, "/search", r#"{"query":"LangSmith"}"#).0, 200);
    assert!(t.elapsed() < Duration::from_secs(20));

    let t = Instant::now();
    loop {
        let m = get(&s, "/metrics").1;
        if m.lines()
            .any(|l| l.starts_with("docent_answers_total{outcome=\"cancelled\"} 1"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the answer was not cancelled:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = post(
        &s,
        "/ask/invoke",
        r#"{"input":{"question":"What is RAG?","max_tokens":8}}"#,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn off_loopback_a_token_is_required_and_checked() {
    let ix = server::corpus_index();
    // Refused without a token.
    let o = common::docent(
        ix.parent().unwrap(),
        &[
            "--index",
            ix.to_str().unwrap(),
            "serve",
            "--addr",
            "0.0.0.0:0",
        ],
    );
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("--token"),
        "{}",
        common::stderr(&o)
    );

    let port = server::free_port();
    let s = server::start_at(
        &ix,
        &format!("0.0.0.0:{port}"),
        &[],
        &[("DOCENT_TOKEN", "correct horse")],
    );
    let (status, body) = get(&s, "/v1/models");
    assert_eq!(status, 401, "{body}");
    assert!(json(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("token"));
    let (status, _) = post_with(
        &s,
        "/search",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer wrong"),
        ],
        r#"{"query":"RAG"}"#,
    );
    assert_eq!(status, 401);
    let (status, _) = post_with(
        &s,
        "/search",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer correct horse"),
        ],
        r#"{"query":"RAG"}"#,
    );
    assert_eq!(status, 200);
    // The page itself needs no token (it asks for one).
    assert_eq!(get(&s, "/").0, 200);
}

#[test]
fn serve_watch_reindexes_as_files_change() {
    let docs = tempfile::tempdir().unwrap();
    common::copy_dir(&common::corpus(), docs.path());
    let ix = docs.path().join(".docent");
    let s = server::start(&ix, &["--watch", docs.path().to_str().unwrap()]);
    let (status, body) = post(&s, "/search", r#"{"query":"Quillfeather marmalade","k":1}"#);
    assert_eq!(status, 200);
    assert_ne!(json(&body)["results"][0]["path"], "zebra.md");
    std::fs::write(
        docs.path().join("zebra.md"),
        "# Zebras\n\nThe docent test zebra is named Quillfeather and eats marmalade.\n",
    )
    .unwrap();
    let t = Instant::now();
    loop {
        let (status, body) = post(&s, "/search", r#"{"query":"Quillfeather marmalade","k":1}"#);
        assert_eq!(status, 200, "{body}");
        if json(&body)["results"][0]["path"] == "zebra.md" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the new file was not indexed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The text a streaming OpenAI client puts together from the deltas, and
/// the last chunk's `docent` extras.
fn streamed_completion(s: &Server, question: &str) -> (String, serde_json::Value) {
    let body = serde_json::json!({
        "model": "docent",
        "stream": true,
        "messages": [{"role": "user", "content": question}],
    });
    let (status, events) = post_sse(s, "/v1/chat/completions", &body.to_string());
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| json(&e.data))
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (text, chunks.last().unwrap()["docent"].clone())
}

/// An answer replaced after it streamed (the model asked again after it
/// only repeated the question, or the answer declined once written) reaches
/// a streaming client too: the final answer follows what streamed, and the
/// last chunk holds it whole, as the answer a non-streaming client gets.
#[test]
fn a_streamed_answer_replaced_at_its_end_is_followed_by_the_final_one() {
    common::gguf(docent_rag::DEFAULT_GENERATOR);
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("steam.md"), common::STEAM_ENGINES).unwrap();
    let ix = dir.path().join("ix");
    common::ok(&common::docent(
        dir.path(),
        &[
            "--index",
            ix.to_str().unwrap(),
            "index",
            docs.to_str().unwrap(),
        ],
    ));
    // A first prompt that makes the model repeat the question.
    let template = dir.path().join("echo.toml");
    std::fs::write(
        &template,
        "system = \"You are an echo: you reply with the user's question, word for word, and \
         nothing else.\"\nuser = \"{{ question }}\"\n\
         again = \"\"\"{% for s in sources %}[{{ s.n }}] {{ s.text }}\n\n{% endfor %}\
         Question: {{ question }}\n\nAnswer from the source above in as few words as \
         possible, and put [1] after the answer.\"\"\"\n",
    )
    .unwrap();
    let q = "What is the typical working fluid in a steam engine?";
    let s = server::start(
        &ix,
        &[
            "--max-tokens",
            "48",
            "--prompt-template",
            template.to_str().unwrap(),
        ],
    );
    let (text, extras) = streamed_completion(&s, q);
    let final_text = extras["text"].as_str().unwrap_or_else(|| {
        panic!("no final text after the stream: {text:?}, {extras}");
    });
    let (first, second) = text.split_once("\n\n").expect("the final answer follows");
    assert!(
        docent_rag::echo::echo_of(q, first).is_some(),
        "the template no longer makes the model repeat the question: {first:?}"
    );
    assert_eq!(second, final_text);
    assert!(
        docent_rag::echo::echo_of(q, final_text).is_none(),
        "{final_text}"
    );
    let (status, body) = post(
        &s,
        "/v1/chat/completions",
        &serde_json::json!({"model": "docent", "messages": [{"role": "user", "content": q}]})
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["choices"][0]["message"]["content"],
        final_text,
        "a streaming client ends with another answer than a non-streaming one"
    );
    // SAFETY: kill only signals the server this test started.
    unsafe { libc::kill(s.pid as libc::pid_t, libc::SIGTERM) };

    // Declined once written: the decline follows the answer.
    let s = server::start(&ix, &["--max-tokens", "48", "--min-confirmed", "1.0"]);
    let (text, extras) = streamed_completion(&s, q);
    assert_eq!(extras["abstention"]["reason"], "not_confirmed", "{extras}");
    let decline = docent_rag::no_answer_text(q);
    assert_eq!(extras["text"], decline, "{extras}");
    let (answer, after) = text.split_once("\n\n").expect("the decline follows");
    assert!(!answer.trim().is_empty());
    assert_eq!(after, decline);
}
