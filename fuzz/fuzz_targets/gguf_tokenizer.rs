//! Any text through the tokenizers built from the two GGUF models' metadata
//! (SmolLM2's byte-level BPE, Gemma's SentencePiece): encoding never
//! panics, every id is in the vocabulary, and decoding gives the text back,
//! as llama.cpp's do: less the ASCII characters that the vocabulary marks as
//! control tokens (SmolLM2 drops six: 0x04, 0x06, 0x13, 0x14, 0x16, 0x1d),
//! and, for SentencePiece, with U+2581 read as the space it stands for.
#![no_main]

use std::sync::OnceLock;

use docent_generate::gguf::GgufFile;
use docent_generate::tokenizer::GgufTokenizer;
use docent_models::{Manifest, ModelStore};
use libfuzzer_sys::fuzz_target;

/// A tokenizer and the ASCII characters it drops (found by encoding each
/// between two letters).
fn tokenizers() -> &'static [(GgufTokenizer, Vec<char>)] {
    static TOKENIZERS: OnceLock<Vec<(GgufTokenizer, Vec<char>)>> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        let manifest = Manifest::builtin();
        let store = ModelStore::from_env();
        ["smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"]
            .iter()
            .map(|name| {
                let spec = manifest.get(name).expect("in the manifest").clone();
                let local = store
                    .ensure(&spec)
                    .expect("the model is needed: run `docent models pull` first");
                let gguf = local
                    .files
                    .iter()
                    .map(|(_, p)| p)
                    .find(|p| p.extension().is_some_and(|e| e == "gguf"))
                    .expect("a GGUF file");
                let file = GgufFile::open(gguf).expect("the model opens");
                let tok = GgufTokenizer::from_gguf(&file).expect("the tokenizer builds");
                let dropped = (0u8..128)
                    .map(char::from)
                    .filter(|&c| {
                        let s = format!("a{c}b");
                        tok.decode(&tok.encode(&s, false, false)) == "ab"
                    })
                    .collect();
                (tok, dropped)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (i, (tok, dropped)) in tokenizers().iter().enumerate() {
        let ids = tok.encode(text, false, false);
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
        let mut want: String = text.chars().filter(|c| !dropped.contains(c)).collect();
        if i == 1 {
            want = want.replace('\u{2581}', " ");
        }
        assert_eq!(tok.decode(&ids), want, "round trip through tokenizer {i}");
    }
});
