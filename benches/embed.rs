//! Encoder throughput: passages per second and tokens per second.
//!
//!     cargo bench --bench embed -- PARAGRAPHS.json [BATCH]
//!
//! PARAGRAPHS.json is a JSON list of strings (scripts/squad_docs.py writes
//! one from a SQuAD file). Every text is embedded once to warm up, then timed;
//! texts longer than the encoder's limit are truncated, as sentence-transformers
//! does. `benches/embed_peer.py` runs sentence-transformers on the same texts
//! and threads for comparison.

use std::time::Instant;

use docent_embed::{Encoder, EncoderConfig};
use docent_models::{Manifest, ModelStore};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(path) = args.first() else {
        eprintln!("usage: cargo bench --bench embed -- PARAGRAPHS.json [BATCH]");
        return;
    };
    let batch: usize = args.get(1).and_then(|b| b.parse().ok()).unwrap_or(32);
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("readable"))
            .expect("a JSON list of strings");
    let spec = Manifest::builtin().default_encoder().clone();
    let local = ModelStore::from_env()
        .ensure(&spec)
        .expect("the encoder can be fetched");
    let enc = Encoder::load(
        &local.dir,
        &spec.repo,
        &spec.revision,
        EncoderConfig {
            batch_size: batch,
            ..Default::default()
        },
    )
    .expect("loads");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs
        .iter()
        .map(|t| enc.count_with_special(t).min(enc.info().max_seq_len))
        .sum();
    enc.embed(&refs[..refs.len().min(64)]).expect("warm-up");
    let t = Instant::now();
    let v = enc.embed(&refs).expect("embeds");
    let s = t.elapsed().as_secs_f64();
    assert_eq!(v.len(), texts.len());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "docent {}: {} texts, {} tokens (truncated at {}), batch {batch}, {threads} threads: {:.2} s, {:.1} texts/s, {:.0} tokens/s",
        spec.name,
        texts.len(),
        tokens,
        enc.info().max_seq_len,
        s,
        texts.len() as f64 / s,
        tokens as f64 / s
    );
}
