//! The committed fuzz inputs (`fuzz/regressions/<target>/`): seeds that the
//! fuzz targets start from, and any input that once broke a target. Each
//! goes through the same checks as its target, on every `cargo test`, so
//! that a fixed crash stays fixed without cargo-fuzz. (Ten minutes of each
//! target found no crash so far; a target gets its test here with its
//! first committed input.)

mod common;

use std::path::{Path, PathBuf};

use docent_generate::gguf::GgufFile;
use docent_generate::tokenizer::GgufTokenizer;

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = common::root().join("fuzz/regressions").join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn open_gguf(path: &Path) -> Option<GgufTokenizer> {
    let file = GgufFile::open(path).ok()?;
    GgufTokenizer::from_gguf(&file).ok()
}

#[test]
fn gguf_inputs() {
    let files = inputs("gguf");
    // The two seeds are small but whole GGUF files: they must open and give
    // a working tokenizer, or the fuzzer starts from files that fail early.
    for seed in ["bpe.gguf", "spm.gguf"] {
        let path = files
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == seed))
            .unwrap_or_else(|| panic!("seed {seed} is committed"));
        let tok = open_gguf(path).unwrap_or_else(|| panic!("{seed} opens"));
        let ids = tok.encode("hello", false, false);
        assert!(!ids.is_empty(), "{seed}");
        assert_eq!(tok.decode(&ids).trim_start(), "hello", "{seed}");
    }
    for path in &files {
        if let Some(tok) = open_gguf(path) {
            let ids = tok.encode("Hello, 세계! <s> 123", true, true);
            let _ = tok.decode(&ids);
        }
    }
}
