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
