//! History-aware retrieval: on two-turn conversations about corpus/ in
//! Korean and English whose second turn names its topic only through the
//! first (tests/fixtures/conversations.toml), retrieval with the rewritten
//! query must find a right source for the second turn in at least 90% of
//! them, and more often than with the question alone.

mod common;

use docent_eval::{Conversation, ConversationSet};
use docent_rag::indexer::build_index;
use docent_rag::rewrite::{standalone_query, QueryRewrite};
use docent_rag::{answer::DEFAULT_K, Engine, GeneratorChoice, IndexConfig, RetrieveConfig, Turn};

#[test]
fn follow_ups_find_their_source_when_rewritten() {
    let text = std::fs::read_to_string(common::root().join("tests/fixtures/conversations.toml"))
        .expect("the conversation set");
    let set = ConversationSet::from_toml(&text).expect("the conversation set parses");
    assert!(set.conversations.len() >= 16);
    let tmp = tempfile::tempdir().unwrap();
    let ix = tmp.path().join("ix");
    let enc = std::sync::Arc::new(
        docent_rag::models::load_encoder(None, Default::default()).expect("encoder loads"),
    );
    common::encoder();
    build_index(
        &ix,
        &IndexConfig::for_folder(&common::corpus()),
        &enc,
        &mut |_| {},
    )
    .unwrap();
    let engine = Engine::with_encoder(&ix, enc, GeneratorChoice::default()).unwrap();
    let cfg = RetrieveConfig {
        k: DEFAULT_K,
        ..RetrieveConfig::default()
    };
    let found = |q: &str, c: &Conversation| {
        engine
            .retrieve(q, &cfg)
            .unwrap()
            .hits
            .iter()
            .any(|h| c.is_source(&h.chunk.chunk.path, &h.chunk.chunk.heading_path))
    };
    let (mut alone, mut rewritten, mut always) = (0, 0, 0);
    for c in &set.conversations {
        let history = [Turn {
            question: c.first.clone(),
            answer: String::new(),
        }];
        let q = standalone_query(&c.follow_up, &history, QueryRewrite::FollowUp)
            .unwrap_or_else(|| panic!("{:?} is not taken for a follow-up", c.follow_up));
        let a = found(&c.follow_up, c);
        let r = found(&q, c);
        let w = found(
            &standalone_query(&c.follow_up, &history, QueryRewrite::Always).unwrap(),
            c,
        );
        eprintln!("alone {a:5} rewritten {r:5}  {} → {}", c.first, c.follow_up);
        alone += a as usize;
        rewritten += r as usize;
        always += w as usize;
    }
    let n = set.conversations.len() as f64;
    eprintln!(
        "right source for the second turn: rewritten {:.2}, always {:.2}, question alone {:.2} ({} conversations)",
        rewritten as f64 / n,
        always as f64 / n,
        alone as f64 / n,
        n
    );
    assert!(rewritten as f64 / n >= 0.9, "rewritten {rewritten} of {n}");
    assert!(
        rewritten > alone,
        "rewriting found {rewritten}, the question alone {alone}"
    );
}

/// `docent chat` read from a pipe: a follow-up is searched with the
/// question it follows, the conversation is kept, listed and resumed.
#[test]
fn the_chat_command_keeps_and_resumes_a_conversation() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const MODEL: &str = "smollm2-135m-instruct-q4_1";
    common::gguf(MODEL);
    let tmp = tempfile::tempdir().unwrap();
    let ix = tmp.path().join("ix");
    common::ok(&common::docent(
        tmp.path(),
        &[
            "--index",
            ix.to_str().unwrap(),
            "index",
            common::corpus().to_str().unwrap(),
        ],
    ));
    let chat = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_docent"))
            .args([
                "--index",
                ix.to_str().unwrap(),
                "chat",
                "--model",
                MODEL,
                "--max-tokens",
                "16",
            ])
            .args(args)
            .current_dir(tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        common::ok(&child.wait_with_output().unwrap())
    };
    let out = chat(
        &[],
        "양자화란 무엇인가요?\n그건 왜 CPU에서 빠른가요?\n/sources\n/quit\n",
    );
    assert!(
        out.contains("(searched for: 양자화란 무엇인가요? 그건 왜 CPU에서 빠른가요?)"),
        "{out}"
    );
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("(kept as "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_else(|| panic!("no conversation id in {out}"))
        .to_string();
    let list = common::ok(&common::docent(
        tmp.path(),
        &["--index", ix.to_str().unwrap(), "chat", "--list"],
    ));
    assert!(list.contains(&id) && list.contains("2 turn(s)"), "{list}");
    // Resumed, the conversation goes on from its earlier turns.
    let out = chat(&["--resume", &id], "그 단점은요?\n/quit\n");
    assert!(
        out.contains("(searched for: 양자화란 무엇인가요? 그 단점은요?)"),
        "{out}"
    );
    let list = common::ok(&common::docent(
        tmp.path(),
        &["--index", ix.to_str().unwrap(), "chat", "--list"],
    ));
    assert!(list.contains("3 turn(s)"), "{list}");
    // Each answer's trace was kept.
    let traces = common::ok(&common::docent(
        tmp.path(),
        &["--index", ix.to_str().unwrap(), "traces", "list", "--json"],
    ));
    let traces: serde_json::Value = serde_json::from_str(&traces).unwrap();
    let traces = traces.as_array().unwrap();
    assert_eq!(traces.len(), 3);

    // Rated answers export as a question set `docent eval` reads.
    let ix_arg = ["--index", ix.to_str().unwrap()];
    let first = traces[2]["id"].as_str().unwrap();
    let second = traces[1]["id"].as_str().unwrap();
    common::ok(&common::docent(
        tmp.path(),
        &[&ix_arg[..], &["traces", "rate", first, "--up"]].concat(),
    ));
    common::ok(&common::docent(
        tmp.path(),
        &[
            &ix_arg[..],
            &["traces", "rate", second, "--down", "--note", "vague"],
        ]
        .concat(),
    ));
    let shown = common::ok(&common::docent(
        tmp.path(),
        &[&ix_arg[..], &["traces", "show", second]].concat(),
    ));
    assert!(
        shown.contains("vague") && shown.contains("그건 왜"),
        "{shown}"
    );
    let exported = common::ok(&common::docent(
        tmp.path(),
        &[&ix_arg[..], &["traces", "export"]].concat(),
    ));
    let set = docent_eval::QaSet::from_toml(&exported).unwrap_or_else(|e| {
        panic!("the export does not read as a question set ({e}):\n{exported}")
    });
    // The good answer is a question; the bad one is left commented out.
    assert_eq!(set.questions.len(), 1, "{exported}");
    assert_eq!(set.questions[0].question, "양자화란 무엇인가요?");
    assert!(exported.contains("rated down (vague)"), "{exported}");
    // Unknown ids are refused with a message.
    let o = common::docent(
        tmp.path(),
        &[&ix_arg[..], &["traces", "rate", "nope", "--up"]].concat(),
    );
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("nope"),
        "{}",
        common::stderr(&o)
    );
}
