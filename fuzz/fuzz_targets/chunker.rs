//! The chunker on any text, with the default encoder's own token counter:
//! every chunk is its exact span of the text, trimmed, non-empty, and within
//! the token limit; never a panic.
//!
//! The first two bytes choose the chunk size and overlap, the third the
//! format (text, Markdown, HTML) the rest is loaded as.
#![no_main]

use std::sync::OnceLock;

use docent_core::{chunk_document, ChunkConfig};
use docent_embed::{Encoder, EncoderConfig};
use docent_models::{Manifest, ModelStore};
use libfuzzer_sys::fuzz_target;

fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let spec = Manifest::builtin().default_encoder().clone();
        let local = ModelStore::from_env()
            .ensure(&spec)
            .expect("the default encoder is needed: run `docent models pull` first");
        Encoder::load(
            &local.dir,
            &spec.repo,
            &spec.revision,
            EncoderConfig::default(),
        )
        .expect("the encoder loads")
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let config = ChunkConfig {
        max_tokens: 16 + data[0] as usize % 240,
        overlap_tokens: data[1] as usize % 64,
    };
    if config.validate().is_err() {
        return;
    }
    let name = ["fuzz.txt", "fuzz.md", "fuzz.html"][data[2] as usize % 3];
    let Ok((doc, _)) = docent_ingest::load_bytes(name, &data[3..]) else {
        return;
    };
    let counter = encoder().token_counter();
    for c in chunk_document(&doc, &config, counter) {
        assert_eq!(c.text, doc.text[c.byte_span.clone()]);
        assert_eq!(c.text.trim(), c.text);
        assert!(!c.text.is_empty());
        let n = counter.count(&c.text);
        assert_eq!(n, c.tokens as usize);
        assert!(n <= config.max_tokens, "{n} tokens > {}", config.max_tokens);
    }
});
