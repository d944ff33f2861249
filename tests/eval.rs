//! `docent eval` on a small SQuAD-format set built here (the shared sets are
//! measured in docs/benchmarks.md, not in the test suite).

mod common;

use serde_json::{json, Value};

fn dataset() -> Value {
    let para = |context: &str, qas: Vec<Value>| json!({"context": context, "qas": qas});
    let qa = |id: &str, q: &str, a: &str| json!({"id": id, "question": q, "answers": [{"text": a, "answer_start": 0}]});
    json!({
        "version": "v2.0",
        "data": [
            {"title": "Volcanoes", "paragraphs": [
                para("A volcano is a rupture in the crust of a planet that lets hot lava, volcanic ash and gases escape from a magma chamber below the surface. Mount Etna in Sicily is one of the most active volcanoes in the world.",
                     vec![qa("v1", "Which volcano in Sicily is among the most active?", "Mount Etna"),
                          qa("v2", "What escapes from a volcano's magma chamber?", "hot lava, volcanic ash and gases")]),
            ]},
            {"title": "Bread", "paragraphs": [
                para("Bread is a staple food prepared from a dough of flour and water, usually by baking. Yeast makes the dough rise by producing carbon dioxide.",
                     vec![qa("b1", "What makes bread dough rise?", "Yeast")]),
                para("Sourdough bread is made by the fermentation of dough using naturally occurring lactobacilli and yeast, which gives it a sour taste.",
                     vec![qa("b2", "Why does sourdough taste sour?", "fermentation of dough using naturally occurring lactobacilli")]),
            ]},
            {"title": "Chess", "paragraphs": [
                para("Chess is a board game for two players played on a checkered board with 64 squares arranged in an eight-by-eight grid. The world champion in 2023 was Ding Liren.",
                     vec![qa("c1", "How many squares does a chess board have?", "64"),
                          json!({"id": "c2", "question": "Which football club won the 1998 World Cup final?", "answers": [], "is_impossible": true})]),
            ]},
        ]
    })
}

/// The language model these tests answer with (the default model's
/// answers are tested in tests/answers.rs).
const SMALL: &str = "smollm2-135m-instruct-q4_1";

/// A folder holding the small set as `tiny.json`, with the models fetched.
fn workspace(generate: bool) -> tempfile::TempDir {
    common::encoder();
    if generate {
        common::gguf(SMALL);
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tiny.json"),
        serde_json::to_vec(&dataset()).unwrap(),
    )
    .unwrap();
    tmp
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn eval_reports_retrieval_metrics_and_reuses_its_index() {
    let tmp = workspace(false);
    let args = ["eval", "tiny.json", "--json", "--out", "per-question.jsonl"];
    let v: Value = serde_json::from_str(&common::ok(&common::docent(tmp.path(), &args))).unwrap();
    assert_eq!(v["paragraphs"], 4);
    assert_eq!(v["questions"], 6);
    for mode in ["dense", "lexical", "hybrid"] {
        let r = &v["retrieval"][mode];
        assert_eq!(r["questions"], 6);
        // Five of six questions name their paragraph's topic; the sixth is
        // the impossible one, about nothing in the set.
        assert!(
            r["recall_at_5"].as_f64().unwrap() >= 5.0 / 6.0 - 1e-9,
            "{mode}: {r}"
        );
        assert!(r["recall_at_1"].as_f64().unwrap() >= 0.5, "{mode}: {r}");
        assert!(r["mrr_at_10"].as_f64().unwrap() >= r["recall_at_1"].as_f64().unwrap());
        assert!(v["latency_ms"][mode]["p50"].as_f64().unwrap() > 0.0);
    }
    let records = records(&tmp.path().join("per-question.jsonl"));
    assert_eq!(records.len(), 6);
    assert!(records
        .iter()
        .all(|r| r["retrieved"].as_array().unwrap().len() <= 10));
    assert_eq!(records[0]["gold_answers"][0], "Mount Etna");

    // A second run reuses the index: nothing is embedded again.
    let o = common::docent(tmp.path(), &["eval", "tiny.json", "--limit", "2"]);
    let out = common::ok(&o);
    assert!(!out.contains("embedded"), "the index was rebuilt: {out}");
    assert!(out.contains("2 questions"), "{out}");
}

#[test]
fn eval_generate_scores_answers_and_declines() {
    let tmp = workspace(true);
    let o = common::docent(
        tmp.path(),
        &[
            "eval",
            "tiny.json",
            "--generate",
            "--model",
            SMALL,
            "--max-tokens",
            "24",
            "--json",
            "--out",
            "q.jsonl",
        ],
    );
    let v: Value = serde_json::from_str(&common::ok(&o)).unwrap();
    let a = &v["answers"];
    assert_eq!(a["answerable"], 5);
    assert_eq!(a["impossible"], 1);
    assert_eq!(a["metric"], "squad");
    assert_eq!(
        a["correctly_declined"].as_f64().unwrap(),
        1.0,
        "the off-topic question is declined: {a}"
    );
    let f1 = a["f1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f1));
    let records = records(&tmp.path().join("q.jsonl"));
    assert!(records
        .iter()
        .all(|r| r["answer"].is_string() && r["declined"].is_boolean()));
    assert!(records
        .iter()
        .filter(|r| !r["impossible"].as_bool().unwrap())
        .all(|r| r["f1"].is_number()));
}

#[test]
fn eval_rejects_a_file_that_is_not_squad_format() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.json"), b"{\"rows\": [1, 2, 3]}").unwrap();
    let o = common::docent(tmp.path(), &["eval", "bad.json"]);
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(err.contains("SQuAD-format"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn eval_generate_runs_exactly_what_ask_runs() {
    let tmp = workspace(true);
    let o = common::docent(
        tmp.path(),
        &[
            "eval",
            "tiny.json",
            "--generate",
            "--model",
            SMALL,
            "--max-tokens",
            "20",
            "--workdir",
            "work",
            "--json",
            "--out",
            "q.jsonl",
        ],
    );
    common::ok(&o);
    let records = records(&tmp.path().join("q.jsonl"));
    assert_eq!(records.len(), 6);
    let mut answered = 0;
    for r in &records {
        let q = r["question"].as_str().unwrap();
        let out = common::ok(&common::docent(
            tmp.path(),
            &[
                "--index",
                "work/index",
                "ask",
                q,
                "--model",
                SMALL,
                "--max-tokens",
                "20",
                "--json",
                "--show-prompt",
            ],
        ));
        let a: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a["answer"], r["answer"], "{q}");
        assert_eq!(a["abstained"], r["declined"], "{q}");
        assert_eq!(a["stop"], r["stop"], "{q}");
        let paths = |v: &Value| -> Vec<(String, u64)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["path"].as_str().unwrap().to_string(),
                        s["line"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        assert_eq!(paths(&a["sources"]), paths(&r["sources"]), "{q}");
        // A declined-at-retrieval answer has no prompt on either side.
        assert_eq!(a.get("prompt"), r.get("prompt"), "{q}");
        answered += a.get("prompt").is_some() as usize;
    }
    assert!(answered >= 4, "most questions reach the model ({answered})");
}
