//! Micro-benchmarks of docent's hot paths, with divan:
//!
//!     cargo bench --profile dev --bench hot_paths
//!
//! chunking a document, tokenizing for the encoder and for the language
//! model, embedding a batch, HNSW search and store fetch on the bundled
//! corpus, and one decode step of the default language model. Models are
//! fetched first if missing. Each runs a few seconds on 2 cores.

use std::path::PathBuf;
use std::sync::OnceLock;

use docent_core::ChunkConfig;
use docent_embed::{Encoder, EncoderConfig};
use docent_generate::{Generator, GeneratorConfig};
use docent_index::Index;
use docent_models::{Manifest, ModelStore};

fn main() {
    divan::main();
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn encoder() -> &'static Encoder {
    static E: OnceLock<Encoder> = OnceLock::new();
    E.get_or_init(|| {
        let spec = Manifest::builtin().default_encoder().clone();
        let local = ModelStore::from_env()
            .ensure(&spec)
            .expect("encoder available");
        Encoder::load(
            &local.dir,
            &spec.repo,
            &spec.revision,
            EncoderConfig::default(),
        )
        .expect("encoder loads")
    })
}

fn document() -> &'static docent_core::Document {
    static D: OnceLock<docent_core::Document> = OnceLock::new();
    D.get_or_init(|| {
        docent_ingest::load(
            &root().join("corpus"),
            &root().join("corpus/glossary-en.md"),
            &Default::default(),
        )
        .expect("corpus file loads")
        .document
    })
}

/// The corpus indexed once into a temporary folder; each bench opens it
/// (an index reader is not shared between threads).
fn index() -> Index {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_docent"))
            .arg("--index")
            .arg(dir.path())
            .arg("index")
            .arg(root().join("corpus"))
            .output()
            .expect("docent runs");
        assert!(out.status.success(), "indexing the corpus failed");
        dir
    });
    Index::open(dir.path()).expect("index opens")
}

fn generator() -> &'static std::sync::Mutex<Generator> {
    static G: OnceLock<std::sync::Mutex<Generator>> = OnceLock::new();
    G.get_or_init(|| {
        let spec = Manifest::builtin()
            .get("smollm2-135m-instruct-q4_1")
            .expect("in manifest")
            .clone();
        let local = ModelStore::from_env()
            .ensure(&spec)
            .expect("model available");
        let path = local
            .files
            .iter()
            .find(|(p, _)| p.ends_with(".gguf"))
            .expect("gguf")
            .1
            .clone();
        std::sync::Mutex::new(
            Generator::load(&path, GeneratorConfig::default()).expect("model loads"),
        )
    })
}

const QUESTION: &str =
    "What is retrieval-augmented generation and why does it reduce hallucination?";

#[divan::bench(sample_count = 20)]
fn chunk_glossary(b: divan::Bencher) {
    let doc = document();
    let counter = encoder().token_counter();
    b.bench(|| docent_core::chunk_document(doc, &ChunkConfig::default(), counter));
}

#[divan::bench(sample_count = 50)]
fn encoder_tokenize(b: divan::Bencher) {
    let e = encoder();
    let text = &document().text;
    b.bench(|| e.count_with_special(text));
}

#[divan::bench(sample_count = 50)]
fn gguf_tokenize(b: divan::Bencher) {
    let text = document().text.clone();
    let g = generator().lock().expect("not poisoned");
    b.bench(|| g.tokenizer().encode(&text, false, false).len());
}

#[divan::bench(sample_count = 10)]
fn embed_batch_of_32(b: divan::Bencher) {
    let e = encoder();
    let texts: Vec<&str> = document()
        .text
        .split("\n\n")
        .filter(|t| t.len() > 40)
        .cycle()
        .take(32)
        .collect();
    b.bench(|| e.embed(&texts).expect("embeds"));
}

#[divan::bench(sample_count = 200)]
fn hnsw_search(b: divan::Bencher) {
    let ix = index();
    let q = encoder()
        .embed(&[QUESTION])
        .expect("embeds")
        .pop()
        .expect("one");
    b.bench_local(|| ix.dense(&q, 10, 64).expect("searches"));
}

#[divan::bench(sample_count = 200)]
fn store_fetch_10(b: divan::Bencher) {
    let ix = index();
    let q = encoder()
        .embed(&[QUESTION])
        .expect("embeds")
        .pop()
        .expect("one");
    let ids: Vec<u64> = ix
        .dense(&q, 10, 64)
        .expect("searches")
        .into_iter()
        .map(|x| x.0)
        .collect();
    b.bench_local(|| ix.chunks(&ids).expect("fetches"));
}

#[divan::bench(sample_count = 20)]
fn decode_step(b: divan::Bencher) {
    let mut g = generator().lock().expect("not poisoned");
    let prompt =
        g.tokenize_prompt("<|im_start|>user\nWhat is RAG?<|im_end|>\n<|im_start|>assistant\n");
    let model = g.model_mut();
    model.reset();
    model.forward(&prompt).expect("prompt runs");
    b.bench_local(|| {
        if model.position() + 1 >= model.context() {
            model.reset();
            model.forward(&prompt).expect("prompt runs");
        }
        model.forward(&[504]).expect("one step")
    });
}
