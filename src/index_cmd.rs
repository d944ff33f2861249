//! `docent index`: walk, load, chunk, embed, store.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use docent_core::{chunk_document, Chunk, ChunkConfig};
use docent_embed::{Encoder, EncoderConfig};
use docent_index::{FileRecord, Index, IndexMeta, IndexWriter, FORMAT_VERSION};
use docent_ingest::{LoadOptions, RawFile, WalkOptions};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Args, Clone)]
pub struct IndexArgs {
    /// Folder to index; by default the folder the index was built from, else `.`.
    pub dir: Option<PathBuf>,
    /// Sentence encoder: a name from `docent models list`, a Hugging Face id, or a folder.
    #[arg(long)]
    pub model: Option<String>,
    /// Build from scratch, even with another encoder than the existing index's.
    #[arg(long)]
    pub rebuild: bool,
    /// Most tokens in a chunk (capped by the encoder's limit).
    #[arg(long, default_value_t = ChunkConfig::default().max_tokens)]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    #[arg(long, default_value_t = ChunkConfig::default().overlap_tokens)]
    pub overlap: usize,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = EncoderConfig::default().batch_size)]
    pub batch_size: usize,
    /// Include hidden files and folders.
    #[arg(long)]
    pub hidden: bool,
    /// Do not honour .gitignore, .ignore and .docentignore files.
    #[arg(long)]
    pub no_ignore: bool,
    /// Skip files larger than this many MiB.
    #[arg(long, default_value_t = LoadOptions::default().max_file_bytes >> 20)]
    pub max_file_mb: u64,
    /// Skip PDFs with more pages than this.
    #[arg(long, default_value_t = LoadOptions::default().max_pdf_pages)]
    pub max_pdf_pages: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep running, and bring the index up to date whenever files in the
    /// folder change (Ctrl-C stops).
    #[arg(long)]
    pub watch: bool,
    /// With --watch: wait until the folder has been quiet this long before
    /// re-indexing.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub debounce_ms: u64,
}

impl IndexArgs {
    /// The defaults of `docent index DIR`, for commands that index a folder
    /// on the way (`search --docs`, `ask --docs`, `eval`).
    pub fn for_folder(dir: &Path, model: Option<&str>) -> IndexArgs {
        IndexArgs {
            dir: Some(dir.to_path_buf()),
            model: model.map(str::to_string),
            rebuild: false,
            chunk_tokens: ChunkConfig::default().max_tokens,
            overlap: ChunkConfig::default().overlap_tokens,
            batch_size: EncoderConfig::default().batch_size,
            hidden: false,
            no_ignore: false,
            max_file_mb: LoadOptions::default().max_file_bytes >> 20,
            max_pdf_pages: LoadOptions::default().max_pdf_pages,
            json: false,
            watch: false,
            debounce_ms: 500,
        }
    }
}

/// Figures of one indexing run.
#[derive(Debug, Serialize)]
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

enum Prepared {
    Reuse(String),
    New(FileRecord, Vec<Chunk>),
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("warning: {msg}");
}

/// Indexes `args.dir` into `index_dir`, reusing the vectors of unchanged
/// files from the existing index when it was built the same way.
pub fn build(
    index_dir: &Path,
    args: &IndexArgs,
    encoder: Option<&Encoder>,
    quiet: bool,
) -> Result<IndexReport> {
    let t0 = Instant::now();
    let mut previous = if Index::exists(index_dir) {
        // The store is enough to find what changed; the graph is loaded
        // only when there is an update to make.
        match Index::open_store(index_dir) {
            Ok(ix) => Some(ix),
            Err(e @ docent_index::IndexError::Outdated { .. }) => {
                warn(format!("{e}; rebuilding it now"));
                None
            }
            Err(e) if args.rebuild => {
                warn(format!("{e}; rebuilding"));
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let dir = match (&args.dir, &previous) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) => PathBuf::from(&p.meta().root),
        (None, None) => PathBuf::from("."),
    };
    let root = std::fs::canonicalize(&dir)
        .with_context(|| format!("cannot open folder {}", dir.display()))?;
    let model = args
        .model
        .clone()
        .or_else(|| previous.as_ref().map(|p| p.meta().encoder.id.clone()));
    let loaded;
    let encoder = match encoder {
        Some(e) => e,
        None => {
            loaded = crate::encoder::load(
                model.as_deref(),
                EncoderConfig {
                    batch_size: args.batch_size,
                },
            )?;
            &loaded
        }
    };
    if let Some(p) = &previous {
        if !args.rebuild {
            p.check_encoder(encoder.info())?;
        }
    }
    let chunking = ChunkConfig {
        max_tokens: args.chunk_tokens.min(encoder.max_input_tokens()),
        overlap_tokens: args.overlap,
    };
    chunking.validate()?;
    let reusable_index = previous.as_ref().is_some_and(|p| {
        !args.rebuild && p.meta().chunking == chunking && p.meta().encoder == *encoder.info()
    });
    let known: HashMap<String, String> = match &previous {
        Some(p) if reusable_index => p.files()?.into_iter().map(|f| (f.path, f.sha256)).collect(),
        _ => Default::default(),
    };

    let (paths, walk_warnings) = docent_ingest::walk(
        &root,
        &WalkOptions {
            hidden: args.hidden,
            no_ignore: args.no_ignore,
        },
    )?;
    for w in walk_warnings {
        warn(w);
    }
    // Leave the index itself out when it lives inside the indexed folder.
    let index_abs = std::fs::canonicalize(index_dir).ok();
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| index_abs.as_ref().is_none_or(|ix| !p.starts_with(ix)))
        .collect();

    // Load and chunk in parallel: tokenizers only, no candle in here.
    let opts = LoadOptions {
        max_file_bytes: args.max_file_mb.saturating_mul(1 << 20),
        max_pdf_pages: args.max_pdf_pages,
    };
    let counter = encoder.token_counter();
    let prepared: Vec<Result<Prepared, String>> = paths
        .par_iter()
        .map(|path| {
            let raw = RawFile::read(&root, path, &opts).map_err(|e| e.to_string())?;
            if known.get(&raw.path) == Some(&raw.sha256) {
                return Ok(Prepared::Reuse(raw.path));
            }
            let loaded = raw.parse(&opts).map_err(|e| e.to_string())?;
            for w in &loaded.warnings {
                warn(w);
            }
            let chunks = chunk_document(&loaded.document, &chunking, counter);
            Ok(Prepared::New(
                FileRecord {
                    path: raw.path,
                    sha256: loaded.sha256,
                    size: loaded.size,
                    kind: loaded.document.kind.as_str().into(),
                    chunks: chunks.len() as u32,
                },
                chunks,
            ))
        })
        .collect();
    let mut skipped = 0;
    let mut items = Vec::new();
    for p in prepared {
        match p {
            Ok(p) => items.push(p),
            Err(e) => {
                skipped += 1;
                warn(e)
            }
        }
    }
    if items.is_empty() {
        warn(format!(
            "no readable documents in {} (docent reads .txt, .md, .html and .pdf)",
            root.display()
        ));
    }
    let load_chunk_ms = t0.elapsed().as_secs_f64() * 1e3;

    // Embed every new chunk, in batches, on this thread (candle has its own pool).
    let texts: Vec<&str> = items
        .iter()
        .filter_map(|p| match p {
            Prepared::New(_, chunks) => Some(chunks.iter().map(|c| c.text.as_str())),
            Prepared::Reuse(_) => None,
        })
        .flatten()
        .collect();
    let embedded_tokens: usize = items
        .iter()
        .filter_map(|p| match p {
            Prepared::New(_, c) => Some(c.iter().map(|c| c.tokens as usize).sum::<usize>()),
            _ => None,
        })
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
    let pb = if quiet || unique.is_empty() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(unique.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template("embedding {bar:30} {pos}/{len} chunks [{elapsed} < {eta}]")
            .unwrap(),
    );
    let mut unique_vectors = Vec::with_capacity(unique.len());
    // Large groups let the encoder sort by length across many batches.
    for group in unique.chunks(args.batch_size.max(1) * 16) {
        unique_vectors.extend(encoder.embed(group)?);
        pb.inc(group.len() as u64);
    }
    pb.finish_and_clear();
    let vectors: Vec<Vec<f32>> = which.iter().map(|&i| unique_vectors[i].clone()).collect();
    let embed_ms = t1.elapsed().as_secs_f64() * 1e3;

    let t2 = Instant::now();
    let meta = IndexMeta {
        format: FORMAT_VERSION,
        encoder: encoder.info().clone(),
        chunking,
        hnsw: previous.as_ref().map(|p| p.meta().hnsw).unwrap_or_default(),
        root: root.display().to_string(),
        docent_version: env!("CARGO_PKG_VERSION").into(),
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
    let same_meta = previous.as_ref().is_some_and(|p| {
        let m = p.meta();
        m.root == meta.root && m.docent_version == meta.docent_version
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
    let n_new = texts.len();
    let n_texts = unique.len();
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
        embedded_chunks: n_new,
        embedded_texts: n_texts,
        embedded_tokens,
        load_chunk_ms,
        embed_ms,
        write_ms,
        total_ms,
        chunks_per_s: if embed_ms > 0.0 {
            n_texts as f64 / (embed_ms / 1e3)
        } else {
            0.0
        },
        tokens_per_s: if embed_ms > 0.0 {
            embedded_tokens as f64 / (embed_ms / 1e3)
        } else {
            0.0
        },
    })
}

pub fn run(index_dir: &Path, args: IndexArgs) -> Result<()> {
    if args.watch {
        return watch(index_dir, args);
    }
    let report = build(index_dir, &args, None, false)?;
    show(index_dir, &args, &report)
}

fn show(index_dir: &Path, args: &IndexArgs, report: &IndexReport) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print_report(index_dir, report);
    }
    Ok(())
}

/// `docent index --watch`: index, then re-index after each burst of
/// changes in the folder, with the encoder loaded once. A failed run is
/// reported and the watch goes on; the index stays at its last good state.
fn watch(index_dir: &Path, mut args: IndexArgs) -> Result<()> {
    use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode};
    // The encoder named by the arguments, else the index's own.
    if args.model.is_none() && !args.rebuild && Index::exists(index_dir) {
        args.model = Index::open_store(index_dir)
            .ok()
            .map(|ix| ix.meta().encoder.id.clone());
    }
    let encoder = crate::encoder::load(
        args.model.as_deref(),
        EncoderConfig {
            batch_size: args.batch_size,
        },
    )?;
    let report = build(index_dir, &args, Some(&encoder), false)?;
    show(index_dir, &args, &report)?;
    // Later runs update what the first one built.
    args.rebuild = false;
    let root = PathBuf::from(&report.root);
    args.dir = Some(root.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = new_debouncer(Duration::from_millis(args.debounce_ms.max(1)), tx)
        .context("cannot start watching files")?;
    debouncer
        .watcher()
        .watch(&root, RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", root.display()))?;
    eprintln!(
        "watching {} for changes; Ctrl-C stops (the index is always left whole)",
        root.display()
    );
    // The index's own writes are not changes to the folder.
    let index_abs = std::fs::canonicalize(index_dir).unwrap_or_else(|_| index_dir.to_path_buf());
    let relevant = |events: &[notify_debouncer_mini::DebouncedEvent]| {
        events.iter().any(|e| !e.path.starts_with(&index_abs))
    };
    while let Ok(events) = rx.recv() {
        let mut changed = match events {
            Ok(events) => relevant(&events),
            Err(e) => {
                warn(format!("watching {}: {e}", root.display()));
                false
            }
        };
        // Fold in whatever else arrived meanwhile.
        while let Ok(more) = rx.try_recv() {
            changed |= more.is_ok_and(|events| relevant(&events));
        }
        if !changed {
            continue;
        }
        match build(index_dir, &args, Some(&encoder), true) {
            Ok(report) if report.up_to_date => {}
            Ok(report) => show(index_dir, &args, &report)?,
            Err(e) => eprintln!("error: {e:#}\nthe index keeps its last state; still watching"),
        }
    }
    Ok(())
}

pub fn print_report(index_dir: &Path, r: &IndexReport) {
    if r.up_to_date {
        eprintln!(
            "{} is up to date with {}: {} files, {} chunks ({} unchanged files checked in {:.2} s)",
            index_dir.display(),
            r.root,
            r.files,
            r.chunks,
            r.reused_files,
            r.total_ms / 1e3
        );
        return;
    }
    eprintln!(
        "indexed {} files ({} unchanged, {} new or changed, {} deleted, {} skipped) from {} into {}: \
         {} chunks, {} embedded ({} tokens), {} removed, in {:.1} s; embedding {:.1} chunks/s, {:.0} tokens/s",
        r.files,
        r.reused_files,
        r.embedded_files,
        r.deleted_files,
        r.skipped,
        r.root,
        index_dir.display(),
        r.chunks,
        r.embedded_chunks,
        r.embedded_tokens,
        r.removed_chunks,
        r.total_ms / 1e3,
        r.chunks_per_s,
        r.tokens_per_s
    );
    if r.graph_rebuilt && r.removed_chunks > 0 {
        eprintln!(
            "compacted the graph: removed chunks passed {:.0}% of its points, so it was rebuilt without them",
            docent_index::COMPACT_RATIO * 100.0
        );
    } else if r.removed_in_graph > 0 {
        eprintln!(
            "{} removed chunks stay in the graph, filtered out of searches; it is rebuilt without them once they pass {:.0}% of its points",
            r.removed_in_graph,
            docent_index::COMPACT_RATIO * 100.0
        );
    }
}
