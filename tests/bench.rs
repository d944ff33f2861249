//! `docent bench retrieval` on the corpus index and a small synthetic corpus.

mod common;

use serde_json::Value;

#[test]
fn bench_retrieval_measures_stages_recall_and_draws_the_plot() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::corpus(), &tmp.path().join("corpus"));
    common::ok(&common::docent(tmp.path(), &["index", "corpus"]));
    let out = common::ok(&common::docent(
        tmp.path(),
        &[
            "bench",
            "retrieval",
            "--synthetic",
            "3000",
            "--queries",
            "30",
            "--ef",
            "8,64,256",
            "--json",
            "--plot",
            "recall.svg",
            "--export",
            "vectors",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let corpora = v["corpora"].as_array().unwrap();
    assert_eq!(corpora.len(), 1);
    let c = &corpora[0];
    assert_eq!(c["vectors"], 3000);
    assert_eq!(c["dim"], 384);
    assert!(c["build_s"].as_f64().unwrap() > 0.0);
    assert!(c["disk_mb"].as_f64().unwrap() > 1.0);
    for stage in [
        "embed_ms",
        "hnsw_ms",
        "lexical_ms",
        "hybrid_ms",
        "fetch_ms",
        "total_ms",
        "total_hybrid_ms",
    ] {
        let s = &c[stage];
        assert!(s["p50"].as_f64().unwrap() > 0.0, "{stage}");
        assert!(
            s["p50"].as_f64().unwrap() <= s["p99"].as_f64().unwrap(),
            "{stage}"
        );
        assert!(
            s["p99"].as_f64().unwrap() <= s["max"].as_f64().unwrap(),
            "{stage}"
        );
    }
    let sweep = c["sweep"].as_array().unwrap();
    let efs: Vec<u64> = sweep.iter().map(|e| e["ef"].as_u64().unwrap()).collect();
    assert_eq!(efs, vec![8, 64, 256]);
    let recalls: Vec<f64> = sweep
        .iter()
        .map(|e| e["recall"].as_f64().unwrap())
        .collect();
    assert!(recalls.iter().all(|r| (0.0..=1.0).contains(r)));
    // A wider search never finds less, and the widest is near exact.
    assert!(recalls[2] >= recalls[0], "{recalls:?}");
    assert!(recalls[2] >= 0.95, "{recalls:?}");
    assert!(sweep
        .iter()
        .all(|e| e["qps_1_thread"].as_f64().unwrap() > 0.0));
    let svg = std::fs::read_to_string(tmp.path().join("recall.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("synthetic 3000"));
    let exported =
        std::fs::metadata(tmp.path().join("vectors/synthetic-3000.vectors.f32")).unwrap();
    assert_eq!(exported.len(), 3000 * 384 * 4);
}

#[test]
fn bench_generate_measures_prompt_and_decode_speed_on_exported_prompts() {
    let model = common::gguf("smollm2-135m-instruct-q4_1");
    let model = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::corpus(), &tmp.path().join("corpus"));
    let out = common::ok(&common::docent(
        tmp.path(),
        &[
            "bench",
            "generate",
            "--model",
            model,
            "--prompt-tokens",
            "30,300",
            "--decode",
            "4",
            "--batch",
            "64",
            "--json",
            "--export",
            "prompts.json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert!(v["load_ms"].as_f64().unwrap() > 0.0);
    let (before, after, peak) = (
        v["rss_before_load_mb"].as_f64().unwrap(),
        v["rss_after_load_mb"].as_f64().unwrap(),
        v["peak_rss_mb"].as_f64().unwrap(),
    );
    // The weights (about 90 MB) and the 4096-position cache are resident.
    assert!(
        after - before > 80.0 && peak >= after,
        "{before} {after} {peak}"
    );
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (r, n) in runs.iter().zip([30, 300]) {
        assert_eq!(r["prompt_tokens"], n);
        assert_eq!(r["decode_tokens"], 4);
        assert!(r["prompt_tokens_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    }
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("prompts.json")).unwrap())
            .unwrap();
    let prompts = e["prompts"].as_array().unwrap();
    assert_eq!(prompts[0].as_array().unwrap().len(), 30);
    assert_eq!(prompts[1].as_array().unwrap().len(), 300);
    // The corpus text is longer than 300 tokens: the short prompt starts
    // the long one.
    assert_eq!(
        prompts[0].as_array().unwrap()[..],
        prompts[1].as_array().unwrap()[..30]
    );
    assert_eq!(e["decode"], 4);
    assert_eq!(e["batch"], 64);

    let too_long = common::docent(
        tmp.path(),
        &[
            "bench",
            "generate",
            "--model",
            model,
            "--prompt-tokens",
            "5000",
        ],
    );
    assert!(!too_long.status.success());
    assert!(
        common::stderr(&too_long).contains("do not fit the 4096-token context"),
        "{}",
        common::stderr(&too_long)
    );
}

#[test]
fn bench_embed_encodes_squad_paragraphs_and_exports_them() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let paragraphs: Vec<Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "context": format!("Paragraph {i} is about the history of lighthouse number {i} on the coast."),
                "qas": [{"id": format!("q{i}"), "question": format!("Which lighthouse is {i}?"),
                         "answers": [{"text": format!("number {i}"), "answer_start": 40}]}]
            })
        })
        .collect();
    let set = serde_json::json!({"version": "1.1", "data": [{"title": "Lights", "paragraphs": paragraphs}]});
    std::fs::write(tmp.path().join("set.json"), set.to_string()).unwrap();
    let out = common::ok(&common::docent(
        tmp.path(),
        &[
            "bench", "embed", "set.json", "--batch", "2", "--json", "--export", "e.json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["texts"], 5);
    assert_eq!(v["batch"], 2);
    assert!(v["tokens"].as_u64().unwrap() > 5 * 10);
    assert!(v["texts_per_s"].as_f64().unwrap() > 0.0);
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("e.json")).unwrap()).unwrap();
    assert_eq!(e["texts"].as_array().unwrap().len(), 5);
    for emb in e["embeddings"].as_array().unwrap() {
        let x: Vec<f64> = emb
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(x.len(), 384);
        let norm: f64 = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
}
