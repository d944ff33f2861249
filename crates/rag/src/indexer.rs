//! Indexing a folder: walk, load, chunk, embed, store. Only new and changed
//! files are embedded; the result always equals a fresh build.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use docent_core::{chunk_document, Chunk, ChunkConfig};
use docent_embed::{Encoder, EncoderConfig};
use docent_index::{FileRecord, Index, IndexError, IndexMeta, IndexWriter, FORMAT_VERSION};
use docent_ingest::{LoadOptions, RawFile, WalkOptions};
use rayon::prelude::*;
use serde::Serialize;

use crate::models::load_encoder;
use crate::RagError;

/// How a folder is indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    /// The folder; `None` means the folder the existing index was built
    /// from, else the current folder.
    pub folder: Option<PathBuf>,
    /// Build from scratch, even over an index made with another encoder.
    pub rebuild: bool,
    /// Chunk sizes (`max_tokens` is capped by the encoder's limit).
    pub chunking: ChunkConfig,
    /// Texts per encoder batch.
    pub batch_size: usize,
    pub walk: WalkOptions,
    pub load: LoadOptions,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            folder: None,
            rebuild: false,
            chunking: ChunkConfig::default(),
            batch_size: EncoderConfig::default().batch_size,
            walk: WalkOptions::default(),
            load: LoadOptions::default(),
        }
    }
}

impl IndexConfig {
    /// The defaults, for `folder`.
    pub fn for_folder(folder: &Path) -> IndexConfig {
        IndexConfig {
            folder: Some(folder.to_path_buf()),
            ..IndexConfig::default()
        }
    }
}

/// What an indexing run reports while it works.
#[derive(Debug, Clone, Copy)]
pub enum IndexEvent<'a> {
    /// A file skipped, or read with a problem; the run goes on.
    Warning(&'a str),
    /// Why the run does more than its changes ask for (every file embedded
    /// again after the chunking rule changed).
    Note(&'a str),
    /// `done` of `total` distinct new texts embedded so far.
    Embedding { done: usize, total: usize },
}

/// The folder a run of `cfg` indexes: `cfg.folder`, else the one the
/// index was built from (`previous_root`), else the current folder.
pub(crate) fn folder_to_index(cfg: &IndexConfig, previous_root: Option<&str>) -> PathBuf {
    match (&cfg.folder, previous_root) {
        (Some(d), _) => d.clone(),
        (None, Some(root)) => PathBuf::from(root),
        (None, None) => PathBuf::from("."),
    }
}

/// Figures of one indexing run.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    pub root: String,
    pub files: usize,
    pub skipped: usize,
    pub reused_files: usize,
    pub embedded_files: usize,
    /// Files the index held that are gone from the folder (or now skipped).
    pub deleted_files: usize,
    /// Whether the index already matched the folder, so nothing was written.
    pub up_to_date: bool,
    pub chunks: usize,
    /// Chunks of deleted and changed files taken out of the index.
    pub removed_chunks: usize,
    /// Removed chunk ids left in the graph, filtered out at query time.
    pub removed_in_graph: usize,
    /// Whether the graph was rebuilt (from scratch, or compacted because
    /// removed ids passed the threshold) rather than extended.
    pub graph_rebuilt: bool,
    pub embedded_chunks: usize,
    /// Distinct texts among the new chunks: each is embedded once.
    pub embedded_texts: usize,
    pub embedded_tokens: usize,
    pub load_chunk_ms: f64,
    pub embed_ms: f64,
    pub write_ms: f64,
    pub total_ms: f64,
    pub chunks_per_s: f64,
    pub tokens_per_s: f64,
}

/// The encoder an indexing run at `index_dir` uses: the one `name`s, else
/// the one the existing index was built with (read from its metadata
/// alone: the run opens and checks the index itself), else the default.
pub fn encoder_name_for(index_dir: &Path, name: Option<&str>) -> Option<String> {
    name.map(str::to_string)
        .or_else(|| Index::read_meta(index_dir).ok().map(|meta| meta.encoder.id))
}

/// Loads the encoder [`encoder_name_for`] picks, batching `batch_size` texts.
pub fn load_encoder_for(
    index_dir: &Path,
    name: Option<&str>,
    batch_size: usize,
) -> Result<Encoder, RagError> {
    load_encoder(
        encoder_name_for(index_dir, name).as_deref(),
        EncoderConfig {
            batch_size,
            ..Default::default()
        },
    )
}

enum Prepared {
    Reuse(String),
    New(FileRecord, Vec<Chunk>),
}

/// Why the chunks of an index made as `meta` says cannot be kept for files
/// that did not change, when chunking with `chunking` and embedding with
/// `encoder`; `None` when they can.
fn stale_chunks(
    meta: &IndexMeta,
    chunking: &ChunkConfig,
    encoder: &docent_core::EncoderInfo,
) -> Option<&'static str> {
    if meta.chunker != docent_core::CHUNKER_VERSION {
        Some("the chunking rule changed since this index was built (a new docent)")
    } else if meta.chunking != *chunking {
        Some("the chunk size or overlap changed")
    } else if !meta.encoder.same_vectors(encoder) {
        Some("the encoder's vectors changed")
    } else {
        None
    }
}

/// The language direction an index built with `encoder` keeps
/// ([`crate::shift`]): the previous index's when the same encoder made it
/// (the same vectors, the same direction), else computed; `None` for an
/// encoder without a `language_shift`.
fn language_direction(
    previous: Option<&IndexMeta>,
    encoder: &Encoder,
) -> Result<Option<Vec<f32>>, RagError> {
    if encoder.info().retrieval.language_shift.is_none() {
        return Ok(None);
    }
    if let Some(kept) = previous
        .filter(|m| m.encoder.same_vectors(encoder.info()))
        .and_then(|m| m.language_direction.clone())
    {
        return Ok(Some(kept));
    }
    crate::shift::direction(encoder).map(Some)
}

/// Indexes `cfg.folder` into `index_dir` with `encoder`, reusing the
/// vectors of unchanged files when the existing index was built the same
/// way. Progress and warnings go to `on_event`.
pub fn build_index(
    index_dir: &Path,
    cfg: &IndexConfig,
    encoder: &Encoder,
    on_event: &mut dyn FnMut(IndexEvent<'_>),
) -> Result<IndexReport, RagError> {
    let t0 = Instant::now();
    let mut warn = |msg: &str| on_event(IndexEvent::Warning(msg));
    let mut previous = if Index::exists(index_dir) {
        // The store is enough to find what changed; the graph is loaded
        // only when there is an update to make.
        match Index::open_store(index_dir) {
            Ok(ix) => Some(ix),
            Err(e @ IndexError::Outdated { .. }) => {
                warn(&format!("{e}; rebuilding it now"));
                None
            }
            Err(e) if cfg.rebuild => {
                warn(&format!("{e}; rebuilding"));
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let dir = folder_to_index(cfg, previous.as_ref().map(|p| p.meta().root.as_str()));
    let root = std::fs::canonicalize(&dir).map_err(|source| RagError::Folder {
        path: dir.display().to_string(),
        source,
    })?;
    if let Some(p) = &previous {
        if !cfg.rebuild {
            p.check_encoder(encoder.info())?;
        }
    }
    let chunking = ChunkConfig {
        max_tokens: cfg.chunking.max_tokens.min(encoder.max_input_tokens()),
        overlap_tokens: cfg.chunking.overlap_tokens,
    };
    chunking.validate()?;
    let stale = previous
        .as_ref()
        .and_then(|p| stale_chunks(p.meta(), &chunking, encoder.info()));
    let reusable_index = previous.is_some() && !cfg.rebuild && stale.is_none();
    if let Some(why) = stale.filter(|_| !cfg.rebuild) {
        on_event(IndexEvent::Note(&format!(
            "{why}: every file is chunked and embedded again"
        )));
    }
    let mut warn = |msg: &str| on_event(IndexEvent::Warning(msg));
    let known: HashMap<String, String> = match &previous {
        Some(p) if reusable_index => p.files()?.into_iter().map(|f| (f.path, f.sha256)).collect(),
        _ => Default::default(),
    };

    let (paths, walk_warnings) = docent_ingest::walk(&root, &cfg.walk)?;
    for w in &walk_warnings {
        warn(w);
    }
    // Leave the index itself out when it lives inside the indexed folder.
    let index_abs = std::fs::canonicalize(index_dir).ok();
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| index_abs.as_ref().is_none_or(|ix| !p.starts_with(ix)))
        .collect();

    // Load and chunk in parallel: tokenizers only, no candle in here.
    let counter = encoder.token_counter();
    let prepared: Vec<Result<(Prepared, Vec<String>), String>> = paths
        .par_iter()
        .map(|path| {
            let raw = RawFile::read(&root, path, &cfg.load).map_err(|e| e.to_string())?;
            if known.get(&raw.path) == Some(&raw.sha256) {
                return Ok((Prepared::Reuse(raw.path), Vec::new()));
            }
            let loaded = raw.parse(&cfg.load).map_err(|e| e.to_string())?;
            let chunks = chunk_document(&loaded.document, &chunking, counter);
            let record = FileRecord {
                path: raw.path,
                sha256: loaded.sha256,
                size: loaded.size,
                kind: loaded.document.kind.as_str().into(),
                chunks: chunks.len() as u32,
            };
            Ok((Prepared::New(record, chunks), loaded.warnings))
        })
        .collect();
    let mut skipped = 0;
    let mut items = Vec::new();
    for p in prepared {
        match p {
            Ok((p, warnings)) => {
                for w in &warnings {
                    warn(w);
                }
                items.push(p);
            }
            Err(e) => {
                skipped += 1;
                warn(&e);
            }
        }
    }
    if items.is_empty() {
        warn(&format!(
            "no readable documents in {} (docent reads .txt, .md, .html and .pdf)",
            root.display()
        ));
    }
    let load_chunk_ms = t0.elapsed().as_secs_f64() * 1e3;

    // Embed every new chunk, in batches, on this thread (the kernels
    // parallelise each batch over rayon's pool).
    let new_chunks = || {
        items.iter().filter_map(|p| match p {
            Prepared::New(_, chunks) => Some(chunks),
            Prepared::Reuse(_) => None,
        })
    };
    let texts: Vec<&str> = new_chunks()
        .flat_map(|cs| cs.iter().map(|c| c.text.as_str()))
        .collect();
    let embedded_tokens: usize = new_chunks()
        .flat_map(|cs| cs.iter().map(|c| c.tokens as usize))
        .sum();
    let t1 = Instant::now();
    // Identical chunk texts (boilerplate, copies) are embedded once: a
    // text's embedding does not depend on its batch.
    let mut slot: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<&str> = Vec::new();
    let which: Vec<usize> = texts
        .iter()
        .map(|&t| {
            *slot.entry(t).or_insert_with(|| {
                unique.push(t);
                unique.len() - 1
            })
        })
        .collect();
    let mut unique_vectors = Vec::with_capacity(unique.len());
    if !unique.is_empty() {
        on_event(IndexEvent::Embedding {
            done: 0,
            total: unique.len(),
        });
    }
    // Large groups let the encoder sort by length across many batches.
    for group in unique.chunks(cfg.batch_size.max(1) * 16) {
        unique_vectors.extend(encoder.embed(group)?);
        on_event(IndexEvent::Embedding {
            done: unique_vectors.len(),
            total: unique.len(),
        });
    }
    let vectors: Vec<Vec<f32>> = which.iter().map(|&i| unique_vectors[i].clone()).collect();
    let embed_ms = t1.elapsed().as_secs_f64() * 1e3;

    let t2 = Instant::now();
    let meta = IndexMeta {
        format: FORMAT_VERSION,
        encoder: encoder.info().clone(),
        chunking,
        chunker: docent_core::CHUNKER_VERSION,
        hnsw: previous.as_ref().map(|p| p.meta().hnsw).unwrap_or_default(),
        root: root.display().to_string(),
        docent_version: env!("CARGO_PKG_VERSION").into(),
        language_direction: language_direction(previous.as_ref().map(|p| p.meta()), encoder)?,
    };
    let reused: HashSet<&str> = items
        .iter()
        .filter_map(|p| match p {
            Prepared::Reuse(path) => Some(path.as_str()),
            Prepared::New(..) => None,
        })
        .collect();
    let new_files: HashSet<&str> = items
        .iter()
        .filter_map(|p| match p {
            Prepared::New(f, _) => Some(f.path.as_str()),
            Prepared::Reuse(_) => None,
        })
        .collect();
    // Indexed files that are neither carried over nor re-added: deleted, or
    // now unreadable. (A changed file is replaced by `add_file`.)
    let mut deleted: Vec<&String> = known
        .keys()
        .filter(|p| !reused.contains(p.as_str()) && !new_files.contains(p.as_str()))
        .collect();
    deleted.sort();
    let deleted_files = deleted.len();
    let reused_files = reused.len();
    let embedded_files = new_files.len();
    // The encoder's retrieval settings count: an index whose settings were
    // calibrated again since it was built gets the new ones (its vectors
    // stay, `same_vectors` above).
    let same_meta = previous.as_ref().is_some_and(|p| {
        let m = p.meta();
        m.root == meta.root
            && m.docent_version == meta.docent_version
            && m.encoder == meta.encoder
            && m.language_direction == meta.language_direction
    });
    let incremental = reusable_index && previous.is_some();
    let stats = if incremental && deleted.is_empty() && new_files.is_empty() && same_meta {
        None
    } else {
        let mut writer = match previous.take() {
            Some(p) if incremental => IndexWriter::update(index_dir, p.with_graph()?, meta)?,
            _ => IndexWriter::create(index_dir, meta)?,
        };
        for path in &deleted {
            writer.remove_file(path)?;
        }
        let mut vectors = vectors.into_iter();
        for item in &items {
            if let Prepared::New(file, cs) = item {
                let vs: Vec<Vec<f32>> = vectors.by_ref().take(cs.len()).collect();
                writer.add_file(file, cs, &vs)?;
            }
        }
        Some(writer.commit()?)
    };
    let (chunks, removed_chunks, removed_in_graph, graph_rebuilt) = match &stats {
        Some(s) => (
            s.chunks,
            s.removed_chunks,
            s.removed_in_graph,
            s.graph_rebuilt,
        ),
        None => {
            let p = previous
                .as_ref()
                .expect("up to date only with a previous index");
            (p.len(), 0, p.removed_in_graph(), false)
        }
    };
    let write_ms = t2.elapsed().as_secs_f64() * 1e3;
    let total_ms = t0.elapsed().as_secs_f64() * 1e3;
    let per_second = |n: usize| {
        if embed_ms > 0.0 {
            n as f64 / (embed_ms / 1e3)
        } else {
            0.0
        }
    };
    Ok(IndexReport {
        root: root.display().to_string(),
        files: items.len(),
        skipped,
        reused_files,
        embedded_files,
        deleted_files,
        up_to_date: stats.is_none(),
        chunks,
        removed_chunks,
        removed_in_graph,
        graph_rebuilt,
        embedded_chunks: texts.len(),
        embedded_texts: unique.len(),
        embedded_tokens,
        load_chunk_ms,
        embed_ms,
        write_ms,
        total_ms,
        chunks_per_s: per_second(unique.len()),
        tokens_per_s: per_second(embedded_tokens),
    })
}
