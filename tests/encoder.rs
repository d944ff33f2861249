//! The encoder reproduces sentence-transformers on a committed fixture
//! (made by scripts/make_encoder_fixture.py).

mod common;

use serde_json::Value;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn fixture() -> Value {
    let text =
        std::fs::read_to_string(common::root().join("tests/fixtures/encoder-minilm.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn embeddings_match_sentence_transformers() {
    let fx = fixture();
    let enc = common::minilm();
    assert_eq!(fx["revision"], enc.info().revision.as_str());
    assert_eq!(
        fx["max_seq_length"].as_u64().unwrap() as usize,
        enc.info().max_seq_len
    );
    let items = fx["texts"].as_array().unwrap();
    assert!(items.len() >= 20);
    let texts: Vec<&str> = items.iter().map(|t| t["text"].as_str().unwrap()).collect();
    let got = enc.embed(&texts).unwrap();
    // The dense layers run on 8-bit weights and 8-bit activations: each
    // embedding stays within a cosine of 0.998 of sentence-transformers'
    // (the worst are the shortest texts), 0.999 on average. On real
    // paragraphs the worst is above 0.999 (`benches/embed_peer.py`,
    // docs/benchmarks.md).
    let mut worst = 1.0f64;
    let mut total = 0.0f64;
    for (item, v) in items.iter().zip(&got) {
        let want: Vec<f32> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(v.len(), want.len());
        let c = cosine(v, &want);
        worst = worst.min(c);
        total += c;
        assert!(c >= 0.998, "cosine {c} for {:?}", item["text"]);
        // The model normalises its output.
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    let mean = total / items.len() as f64;
    eprintln!("cosine against sentence-transformers: worst {worst:.7}, mean {mean:.7}");
    assert!(mean >= 0.999, "mean cosine {mean}");
}

#[test]
fn batching_does_not_change_embeddings() {
    let fx = fixture();
    let enc = common::minilm();
    let texts: Vec<&str> = fx["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    let batched = enc.embed(&texts).unwrap();
    for (t, b) in texts.iter().zip(&batched).step_by(5) {
        let single = enc.embed(&[t]).unwrap().pop().unwrap();
        // Texts are not padded and every row is computed on its own: the
        // same bits alone or in a batch.
        assert_eq!(&single, b, "{t:?}");
    }
}

#[test]
fn token_counts_match_the_reference_tokenizer() {
    let fx = fixture();
    let enc = common::minilm();
    for item in fx["texts"].as_array().unwrap() {
        let text = item["text"].as_str().unwrap();
        assert_eq!(
            enc.count_with_special(text),
            item["tokens_untruncated"].as_u64().unwrap() as usize,
            "{text:?}"
        );
    }
    assert_eq!(enc.max_input_tokens(), 254);
}
