//! The index: round trip, encoder refusal, atomic writes, damage detection.

mod common;

use std::path::Path;

use docent_core::{chunk_document, ChunkConfig};
use docent_index::{FileRecord, Index, IndexError, IndexMeta, IndexWriter, FORMAT_VERSION};

fn meta() -> IndexMeta {
    IndexMeta {
        format: FORMAT_VERSION,
        encoder: common::encoder().info().clone(),
        chunking: ChunkConfig::default(),
        chunker: docent_core::CHUNKER_VERSION,
        hnsw: Default::default(),
        root: common::corpus().display().to_string(),
        docent_version: "test".into(),
        language_direction: None,
    }
}

/// A file ready for `add_file`: its record, chunks and vectors.
type Prepared = (FileRecord, Vec<docent_core::Chunk>, Vec<Vec<f32>>);

/// Loads, chunks and embeds one corpus file, ready for `add_file`.
fn prepare(f: &str) -> Prepared {
    let enc = common::encoder();
    let loaded = docent_ingest::load(
        &common::corpus(),
        &common::corpus().join(f),
        &Default::default(),
    )
    .unwrap();
    let chunks = chunk_document(
        &loaded.document,
        &ChunkConfig::default(),
        enc.token_counter(),
    );
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let vectors = enc.embed(&texts).unwrap();
    let rec = FileRecord {
        path: f.to_string(),
        sha256: loaded.sha256,
        size: loaded.size,
        kind: loaded.document.kind.as_str().into(),
        chunks: chunks.len() as u32,
    };
    (rec, chunks, vectors)
}

/// Writes an index of `files` of the corpus and returns the chunk count.
fn write(root: &Path, files: &[&str]) -> usize {
    let mut w = IndexWriter::create(root, meta()).unwrap();
    let mut n = 0;
    for f in files {
        let (rec, chunks, vectors) = prepare(f);
        w.add_file(&rec, &chunks, &vectors).unwrap();
        n += chunks.len();
    }
    assert_eq!(w.commit().unwrap().chunks, n);
    n
}

const QUERIES: &[&str] = &[
    "What does a retriever do?",
    "How does quantization make models smaller?",
    "LangSmith tracing",
    "검색 증강 생성",
];

fn results(ix: &Index) -> Vec<Vec<(u64, String)>> {
    let enc = common::encoder();
    QUERIES
        .iter()
        .map(|q| {
            let v = enc.embed(&[q]).unwrap().pop().unwrap();
            ix.search(&v, 5, 64)
                .unwrap()
                .into_iter()
                .map(|h| (h.chunk.id, format!("{:.5}", h.score)))
                .collect()
        })
        .collect()
}

#[test]
fn round_trip_gives_identical_results_and_matches_exact_search() {
    let dir = tempfile::tempdir().unwrap();
    let n = write(
        dir.path(),
        &[
            "glossary-en.md",
            "glossary-ko.md",
            "langchain-ecosystem.html",
        ],
    );
    let ix = Index::open(dir.path()).unwrap();
    assert_eq!(ix.len(), n);
    assert_eq!(ix.files().unwrap().len(), 3);
    let first = results(&ix);
    // On a corpus this small the graph search must be exact.
    let enc = common::encoder();
    for q in QUERIES {
        let v = enc.embed(&[q]).unwrap().pop().unwrap();
        let got: Vec<u64> = ix
            .dense(&v, 5, 64)
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        let want: Vec<u64> = ix.exact(&v, 5).unwrap().into_iter().map(|x| x.0).collect();
        assert_eq!(got, want, "{q}");
    }
    drop(ix);
    let again = Index::open(dir.path()).unwrap();
    assert_eq!(results(&again), first);
    let hit = &again
        .search(
            &enc.embed(&["Why do language models hallucinate?"]).unwrap()[0],
            1,
            64,
        )
        .unwrap()[0];
    assert_eq!(hit.chunk.chunk.path, "glossary-en.md");
    assert_eq!(
        hit.chunk.chunk.heading_path.last().unwrap(),
        "Hallucination"
    );
}

#[test]
fn refuses_another_encoder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &["glossary-en.md"]);
    let ix = Index::open(dir.path()).unwrap();
    let mut other = common::encoder().info().clone();
    assert!(ix.check_encoder(&other).is_ok());
    other.id = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2".into();
    let err = ix.check_encoder(&other).unwrap_err();
    assert!(matches!(err, IndexError::EncoderMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("multilingual-e5-small") && msg.contains("must be rebuilt"),
        "{msg}"
    );
    let mut other = common::encoder().info().clone();
    other.dim = 768;
    assert!(ix.check_encoder(&other).is_err());
    assert!(ix.dense(&vec![0.1; 768], 3, 16).is_err());
}

#[test]
fn an_interrupted_write_leaves_the_old_index_usable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &["glossary-en.md"]);
    let before = results(&Index::open(dir.path()).unwrap());
    {
        // A writer that adds a file and then dies without committing.
        let mut w = IndexWriter::create(dir.path(), meta()).unwrap();
        let (rec, chunks, vectors) = prepare("glossary-ko.md");
        w.add_file(&rec, &chunks, &vectors).unwrap();
        // A reader meanwhile sees the old index.
        assert_eq!(results(&Index::open(dir.path()).unwrap()), before);
        drop(w);
    }
    let ix = Index::open(dir.path()).unwrap();
    assert_eq!(ix.files().unwrap().len(), 1);
    assert_eq!(results(&ix), before);
    // The next writer cleans up and succeeds, but leaves the generation
    // `ix` still reads from.
    write(dir.path(), &["glossary-en.md", "glossary-ko.md"]);
    assert_eq!(generations(dir.path()), 2);
    assert_eq!(results(&ix), before);
    drop(ix);
    // Once released, the next writer removes it.
    write(dir.path(), &["glossary-en.md"]);
    assert_eq!(generations(dir.path()), 1);
    assert_eq!(results(&Index::open(dir.path()).unwrap()), before);
}

fn generations(root: &Path) -> usize {
    std::fs::read_dir(root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("gen-")
        })
        .count()
}

#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _w = IndexWriter::create(dir.path(), meta()).unwrap();
    assert!(matches!(
        IndexWriter::create(dir.path(), meta()),
        Err(IndexError::Locked { .. })
    ));
}

fn graph_file(dir: &Path) -> std::path::PathBuf {
    let cur = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    dir.join(cur.trim()).join("graph.hnsw.graph")
}

#[test]
fn damage_is_detected_with_a_message() {
    for damage in [
        "truncate-graph",
        "flip-graph",
        "remove-graph",
        "remove-data",
        "remove-current-target",
        "garbage-store",
        "truncate-store",
        "flip-store",
        "remove-store",
        "remove-store-checksum",
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &["glossary-en.md"]);
        let g = graph_file(dir.path());
        let store = g.parent().unwrap().join("store.sqlite");
        match damage {
            "truncate-graph" => {
                let len = std::fs::metadata(&g).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&g)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            "flip-graph" => {
                let mut b = std::fs::read(&g).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0xff;
                std::fs::write(&g, b).unwrap();
            }
            "remove-graph" => std::fs::remove_file(&g).unwrap(),
            "remove-data" => std::fs::remove_file(g.with_extension("data")).unwrap(),
            "remove-current-target" => std::fs::remove_dir_all(g.parent().unwrap()).unwrap(),
            "garbage-store" => std::fs::write(&store, b"not a database at all").unwrap(),
            "truncate-store" => {
                let len = std::fs::metadata(&store).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&store)
                    .unwrap()
                    .set_len(len - 4096)
                    .unwrap();
            }
            "flip-store" => {
                // One bit of one chunk's text: SQLite itself would not notice.
                let mut b = std::fs::read(&store).unwrap();
                let at = b
                    .windows(12)
                    .position(|w| w == b"Hallucinatio")
                    .expect("a chunk's text is in the store");
                b[at] ^= 0x20;
                std::fs::write(&store, b).unwrap();
            }
            "remove-store" => std::fs::remove_file(&store).unwrap(),
            _ => std::fs::remove_file(g.parent().unwrap().join("store.sha256")).unwrap(),
        }
        let err = match Index::open(dir.path()) {
            Ok(_) => panic!("{damage}: a damaged index opened"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(matches!(err, IndexError::Damaged { .. }), "{damage}: {msg}");
        // The library names the damage; the CLI adds the command that
        // rebuilds (tests/cli.rs).
        assert!(msg.contains("is damaged ("), "{damage}: {msg}");
    }
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Index::open(empty.path()),
        Err(IndexError::NotFound { .. })
    ));
}

#[test]
fn a_store_only_index_reads_files_but_refuses_dense_search() {
    let dir = tempfile::tempdir().unwrap();
    let n = write(dir.path(), &["glossary-en.md", "glossary-ko.md"]);
    let ix = Index::open_store(dir.path()).unwrap();
    assert_eq!(ix.len(), n);
    assert_eq!(ix.files().unwrap().len(), 2);
    assert!(!ix.lexical("hallucination", 3).unwrap().is_empty());
    let v = common::encoder()
        .embed(&["hallucination"])
        .unwrap()
        .pop()
        .unwrap();
    assert!(ix.dense(&v, 3, 64).is_err());
    // An update needs the graph.
    assert!(IndexWriter::update(dir.path(), ix, meta()).is_err());
    let full = Index::open_store(dir.path()).unwrap().with_graph().unwrap();
    assert_eq!(
        full.dense(&v, 3, 64).unwrap(),
        Index::open(dir.path()).unwrap().dense(&v, 3, 64).unwrap()
    );
}

#[test]
fn readers_never_fail_while_writers_publish_and_remove_generations() {
    // Each commit removes the generation before it, possibly while a reader
    // is opening it: the reader must then open the new one, never fail.
    let dir = tempfile::tempdir().unwrap();
    let small = [prepare("glossary-en.md")];
    let large = [prepare("glossary-en.md"), prepare("glossary-ko.md")];
    let commit = |files: &[Prepared]| {
        let mut w = IndexWriter::create(dir.path(), meta()).unwrap();
        for (rec, chunks, vectors) in files {
            w.add_file(rec, chunks, vectors).unwrap();
        }
        w.commit().unwrap().chunks
    };
    let sizes = [commit(&small), commit(&large)];
    let done = std::sync::atomic::AtomicBool::new(false);
    let publishes = 60;
    let (opens, updates) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut opens = 0;
                    let mut updates = 0;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let ix = Index::open(dir.path()).expect("a reader opens the index");
                        assert!(sizes.contains(&ix.len()));
                        // The store-only open and its upgrade race too.
                        match Index::open_store(dir.path())
                            .expect("a reader opens the store")
                            .with_graph()
                        {
                            Ok(ix) => assert!(sizes.contains(&ix.len())),
                            Err(IndexError::Changed { .. }) => updates += 1,
                            Err(e) => panic!("the upgrade fails with {e}"),
                        }
                        opens += 1;
                    }
                    (opens, updates)
                })
            })
            .collect();
        for i in 0..publishes {
            commit(if i % 2 == 0 { &small } else { &large });
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    eprintln!("{opens} opens and {updates} refused upgrades during {publishes} publishes");
    assert!(opens > 0);
}

#[test]
fn lexical_search_leaves_out_the_commonest_terms_beyond_its_postings_budget() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &["glossary-en.md", "langchain-ecosystem.html"]);
    let ix = Index::open_store(dir.path()).unwrap();
    let q = "the LangSmith of a";
    // A small index stays within the budget: every term counts.
    assert_eq!(
        ix.lexical(q, 5).unwrap(),
        ix.lexical_within(q, 5, u64::MAX).unwrap()
    );
    let all = ix.lexical_within(q, 200, u64::MAX).unwrap();
    // With a budget of one posting, only the rarest term finds candidates,
    // so every chunk found holds it and fewer chunks are found; each is
    // then scored with every term, as FTS5's BM25 scores it.
    let rare = ix.lexical_within(q, 20, 1).unwrap();
    assert!(
        !rare.is_empty() && rare.len() < all.len(),
        "{rare:?} {all:?}"
    );
    for (id, score) in &rare {
        let exact = all
            .iter()
            .find(|(a, _)| a == id)
            .expect("found with every term")
            .1;
        assert!(
            (score - exact).abs() <= 1e-4 * exact.abs(),
            "{id}: {score} against FTS5's {exact}"
        );
    }
    let mut sorted = rare.clone();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(rare, sorted);
    let ids: Vec<u64> = rare.iter().map(|x| x.0).collect();
    for c in ix.chunks(&ids).unwrap() {
        assert!(
            c.chunk.text.to_lowercase().contains("langsmith"),
            "{}",
            c.chunk.text
        );
    }
}

/// An index of `texts`, one chunk each in one file, with arbitrary unit
/// vectors: for tests of lexical search alone.
fn write_texts(root: &Path, texts: &[String]) -> Index {
    let m = meta();
    let dim = m.encoder.dim;
    let mut w = IndexWriter::create(root, m).unwrap();
    let chunks: Vec<docent_core::Chunk> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| docent_core::Chunk {
            path: "made.txt".into(),
            ordinal: i as u32,
            byte_span: 0..t.len(),
            char_span: 0..t.len(),
            text: t.clone(),
            line: 1 + i as u32,
            page: None,
            heading_path: Vec::new(),
            tokens: 8,
        })
        .collect();
    let vectors: Vec<Vec<f32>> = (0..texts.len())
        .map(|i| {
            (0..dim)
                .map(|d| if d == i % dim { 1.0 } else { 0.01 })
                .collect()
        })
        .collect();
    let rec = FileRecord {
        path: "made.txt".into(),
        sha256: "0".repeat(64),
        size: 0,
        kind: "text".into(),
        chunks: texts.len() as u32,
    };
    w.add_file(&rec, &chunks, &vectors).unwrap();
    w.commit().unwrap();
    Index::open(root).unwrap()
}

#[test]
fn lexical_search_takes_the_chunks_holding_its_rarest_terms_together_when_even_one_is_over_budget()
{
    // 400 chunks: "alpha" alone in 140 short ones, "beta" alone in 140,
    // both in 10 longer ones, neither in the rest. Each term has 150
    // postings, and by "alpha" alone the short chunks rank first.
    let texts: Vec<String> = (0..400)
        .map(|i| match i {
            0..140 => format!("alpha word{i}"),
            140..150 => format!("alpha beta pad word{i}"),
            150..290 => format!("beta word{i}"),
            _ => format!("other common word{i}"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ix = write_texts(dir.path(), &texts);
    let q = "alpha beta";
    let all = ix.lexical_within(q, 400, u64::MAX).unwrap();
    let holds_both = |found: &[(u64, f32)]| -> Vec<bool> {
        let ids: Vec<u64> = found.iter().map(|x| x.0).collect();
        ix.chunks(&ids)
            .unwrap()
            .iter()
            .map(|c| c.chunk.text.contains("alpha") && c.chunk.text.contains("beta"))
            .collect()
    };
    assert!(holds_both(&all[..10]).iter().all(|b| *b));
    let scored_as_fts5 = |found: &[(u64, f32)]| {
        for (id, score) in found {
            let exact = all.iter().find(|(a, _)| a == id).unwrap().1;
            assert!((score - exact).abs() <= 1e-4 * exact.abs());
        }
    };
    // A budget of 100 postings: each term alone is over it, and the chunks
    // expected to hold both (150 × 150 / 400 = 56) fit. Searched by the
    // rarest term alone, the top 100 would be short chunks without "beta".
    let together = ix.lexical_within(q, 5, 100).unwrap();
    assert_eq!(together.len(), 5);
    assert!(holds_both(&together).iter().all(|b| *b), "{together:?}");
    scored_as_fts5(&together);
    // Asked for more than the ten that hold both, it adds the candidates
    // of the rarest term alone, and ranks them below.
    let more = ix.lexical_within(q, 15, 100).unwrap();
    assert_eq!(more.len(), 15);
    let both = holds_both(&more);
    assert!(both[..10].iter().all(|b| *b) && !both[10..].iter().any(|b| *b));
    scored_as_fts5(&more);
}

/// Terms with the number of chunks that hold each.
type Frequencies = Vec<(String, i64)>;

/// `lexical_df` against FTS5's own counts, in the live generation.
fn df_tables(root: &Path) -> (Frequencies, Frequencies) {
    let ix = Index::open_store(root).unwrap();
    let c = rusqlite::Connection::open_with_flags(
        ix.generation_dir().join("store.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let read = |sql: &str| -> Frequencies {
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    (
        read("SELECT term, doc FROM lexical_df ORDER BY term"),
        read("SELECT term, doc FROM lexical_vocab ORDER BY term"),
    )
}

#[test]
fn the_stored_document_frequencies_follow_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &["glossary-en.md", "glossary-ko.md"]);
    let (df, vocab) = df_tables(dir.path());
    assert!(df.len() > 100, "{}", df.len());
    assert_eq!(df, vocab);
    let q = "검색 증강 생성 retriever";
    let before = Index::open_store(dir.path())
        .unwrap()
        .lexical(q, 5)
        .unwrap();
    // An update that removes a file and adds another.
    let previous = Index::open(dir.path()).unwrap();
    let mut w = IndexWriter::update(dir.path(), previous, meta()).unwrap();
    assert!(w.remove_file("glossary-en.md").unwrap() > 0);
    let (rec, chunks, vectors) = prepare("quantization-ko.txt");
    w.add_file(&rec, &chunks, &vectors).unwrap();
    w.commit().unwrap();
    let (df2, vocab2) = df_tables(dir.path());
    assert_eq!(df2, vocab2);
    assert_ne!(df2, df);
    let after = Index::open_store(dir.path())
        .unwrap()
        .lexical(q, 5)
        .unwrap();
    assert_ne!(before, after);
}

/// An index whose chunks were cut by an older rule of the chunker (its
/// metadata records no `chunker`, or another one) is chunked and embedded
/// again at the next `docent index`, not reused file by file.
#[test]
fn an_index_chunked_by_an_older_rule_is_chunked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ix");
    let files = [
        "glossary-en.md",
        "glossary-ko.md",
        "how-docent-works.pdf",
        "langchain-ecosystem.html",
        "quantization-ko.txt",
    ];
    let mut w = IndexWriter::create(
        &root,
        IndexMeta {
            chunker: docent_core::CHUNKER_VERSION - 1,
            ..meta()
        },
    )
    .unwrap();
    for f in files {
        let (rec, chunks, vectors) = prepare(f);
        w.add_file(&rec, &chunks, &vectors).unwrap();
    }
    w.commit().unwrap();
    let encoder = docent_rag::models::load_encoder(None, Default::default()).unwrap();
    let cfg = docent_rag::IndexConfig::for_folder(&common::corpus());
    let mut notes = Vec::new();
    let r = docent_rag::build_index(&root, &cfg, &encoder, &mut |e| {
        if let docent_rag::IndexEvent::Note(n) = e {
            notes.push(n.to_string());
        }
    })
    .unwrap();
    // The user is told why everything is embedded again.
    assert!(
        notes.iter().any(|n| n.contains("chunking rule changed")),
        "{notes:?}"
    );
    assert_eq!(
        (r.embedded_files, r.reused_files),
        (files.len(), 0),
        "{r:?}"
    );
    assert_eq!(
        Index::open(&root).unwrap().meta().chunker,
        docent_core::CHUNKER_VERSION
    );
    // Then it is current.
    let again = docent_rag::build_index(&root, &cfg, &encoder, &mut |_| {}).unwrap();
    assert!(again.up_to_date, "{again:?}");
}
