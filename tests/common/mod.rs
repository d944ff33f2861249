//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use docent_embed::{Encoder, EncoderConfig};
use docent_models::{Manifest, ModelStore};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn corpus() -> PathBuf {
    root().join("corpus")
}

/// A one-paragraph note whose answer to "What is the typical working fluid
/// in a steam engine?" (water) is not a word of the question: the tests of
/// an answer that only repeats the question ("Steam") index it.
pub const STEAM_ENGINES: &str = "# Steam engines\n\nA steam engine is a heat engine that does \
    mechanical work with steam as its working fluid: steam pressure pushes a piston back and \
    forth in a cylinder. The typical working fluid is water, which a boiler heats into steam; \
    once it has done its work the steam is condensed back into water or let out into the air.\n";

/// The default encoder, fetched into the Hugging Face cache first if it is
/// missing. A test that needs it fails loudly when it cannot be had.
pub fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| load_encoder(None))
}

/// all-MiniLM-L6-v2, the English encoder (the default before
/// multilingual-e5-small), fetched first if missing.
pub fn minilm() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| load_encoder(Some("all-minilm-l6-v2")))
}

/// An encoder as docent loads it: its files, and the retrieval settings the
/// manifest calibrates for it.
fn load_encoder(name: Option<&str>) -> Encoder {
    docent_rag::models::load_encoder(name, EncoderConfig::default()).unwrap_or_else(|e| {
        panic!(
            "the encoder {} is needed by this test and could not be had: {e}",
            name.unwrap_or("(default)")
        )
    })
}

/// Runs the docent binary with `args` in `cwd`.
pub fn docent(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(args)
        .current_dir(cwd)
        .env_remove("DOCENT_INDEX")
        .output()
        .expect("docent runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a run succeeded and did not panic, showing its output if not.
pub fn ok(o: &Output) -> String {
    let err = stderr(o);
    assert!(o.status.success(), "docent failed: {}\n{err}", o.status);
    assert!(!err.contains("panicked"), "docent panicked:\n{err}");
    stdout(o)
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The path of a generator model's GGUF file from the manifest, fetched
/// first if missing; fails loudly when it cannot be had.
pub fn gguf(name: &str) -> PathBuf {
    model_file(name, ".gguf")
}

/// The path of the file ending in `suffix` of a model in the manifest,
/// fetched first if missing; fails loudly when it cannot be had.
pub fn model_file(name: &str, suffix: &str) -> PathBuf {
    // One fetch at a time within a test binary.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let spec = Manifest::builtin()
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in the manifest"))
        .clone();
    let local = ModelStore::from_env().ensure(&spec).unwrap_or_else(|e| {
        panic!("the model {name} is needed by this test and could not be fetched: {e}")
    });
    local
        .files
        .iter()
        .find(|(repo_path, _)| repo_path.ends_with(suffix))
        .map(|(_, local)| local.clone())
        .unwrap_or_else(|| panic!("{name} has no {suffix} file"))
}

/// The generator models in the manifest, each checked against llama.cpp.
pub const GENERATORS: &[&str] = &[
    "smollm2-135m-instruct-q4_1",
    "gemma-3-270m-q4_k_m",
    "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "qwen2.5-coder-1.5b-instruct-q4_k_m",
];

/// Everything that defines an index's contents: files (path, hash, chunk
/// count), and every chunk's text with its vector's bits (ids may differ
/// between runs).
pub type State = (Vec<(String, String, u32)>, Vec<(String, Vec<u32>)>);

pub fn state(index_dir: &Path) -> State {
    let ix = docent_index::Index::open(index_dir).expect("the index loads");
    let mut files: Vec<_> = ix
        .files()
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.sha256, f.chunks))
        .collect();
    files.sort();
    let vectors = ix.vectors().unwrap();
    let ids: Vec<u64> = vectors.iter().map(|(id, _)| *id).collect();
    let chunks = ix.chunks(&ids).unwrap();
    let mut texts: Vec<(String, Vec<u32>)> = chunks
        .iter()
        .zip(&vectors)
        .map(|(c, (id, v))| {
            assert_eq!(c.id, *id);
            (
                c.chunk.text.clone(),
                v.iter().map(|x| x.to_bits()).collect(),
            )
        })
        .collect();
    texts.sort();
    (files, texts)
}

pub mod server;
