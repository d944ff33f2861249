//! `docent index`: walk, load, chunk, embed, store.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
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
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Figures of one indexing run.
#[derive(Debug, Serialize)]
pub struct IndexReport {
    pub root: String,
    pub files: usize,
    pub skipped: usize,
    pub reused_files: usize,
    pub embedded_files: usize,
    pub chunks: usize,
    pub embedded_chunks: usize,
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
    let previous = if Index::exists(index_dir) {
        match Index::open(index_dir) {
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
    let reusable = previous.as_ref().filter(|p| {
        !args.rebuild && p.meta().chunking == chunking && p.meta().encoder == *encoder.info()
    });
    let known: std::collections::HashMap<String, String> = match reusable {
        Some(p) => p.files()?.into_iter().map(|f| (f.path, f.sha256)).collect(),
        None => Default::default(),
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
    let opts = LoadOptions::default();
    let counter = encoder.token_counter();
    let prepared: Vec<Result<Prepared, String>> = paths
        .par_iter()
        .map(|path| {
            let raw = RawFile::read(&root, path, &opts).map_err(|e| e.to_string())?;
            if known.get(&raw.path) == Some(&raw.sha256) {
                return Ok(Prepared::Reuse(raw.path));
            }
            let loaded = raw.parse().map_err(|e| e.to_string())?;
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
    let pb = if quiet || texts.is_empty() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(texts.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template("embedding {bar:30} {pos}/{len} chunks [{elapsed} < {eta}]")
            .unwrap(),
    );
    let mut vectors = Vec::with_capacity(texts.len());
    // Large groups let the encoder sort by length across many batches.
    for group in texts.chunks(args.batch_size.max(1) * 16) {
        vectors.extend(encoder.embed(group)?);
        pb.inc(group.len() as u64);
    }
    pb.finish_and_clear();
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
    let mut writer = IndexWriter::create(index_dir, meta)?;
    let mut vectors = vectors.into_iter();
    let (mut reused_files, mut embedded_files, mut chunks) = (0, 0, 0);
    for item in &items {
        match item {
            Prepared::Reuse(path) => {
                let from = reusable.expect("reuse only with a previous index");
                if !writer.copy_file(from, path)? {
                    bail!("{path} vanished from the previous index");
                }
                reused_files += 1;
            }
            Prepared::New(file, cs) => {
                let vs: Vec<Vec<f32>> = vectors.by_ref().take(cs.len()).collect();
                writer.add_file(file, cs, &vs)?;
                embedded_files += 1;
                chunks += cs.len();
            }
        }
    }
    drop(previous);
    let stats = writer.commit()?;
    chunks = stats.chunks.max(chunks);
    let write_ms = t2.elapsed().as_secs_f64() * 1e3;
    let total_ms = t0.elapsed().as_secs_f64() * 1e3;
    let n_new = texts.len();
    Ok(IndexReport {
        root: root.display().to_string(),
        files: items.len(),
        skipped,
        reused_files,
        embedded_files,
        chunks,
        embedded_chunks: n_new,
        embedded_tokens,
        load_chunk_ms,
        embed_ms,
        write_ms,
        total_ms,
        chunks_per_s: if embed_ms > 0.0 {
            n_new as f64 / (embed_ms / 1e3)
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

pub fn run(index_dir: &Path, args: IndexArgs) -> Result<IndexReport> {
    let report = build(index_dir, &args, None, false)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(index_dir, &report);
    }
    Ok(report)
}

pub fn print_report(index_dir: &Path, r: &IndexReport) {
    eprintln!(
        "indexed {} files ({} unchanged, {} skipped) from {} into {}: {} chunks, {} embedded \
         ({} tokens) in {:.1} s; embedding {:.1} chunks/s, {:.0} tokens/s",
        r.files,
        r.reused_files,
        r.skipped,
        r.root,
        index_dir.display(),
        r.chunks,
        r.embedded_chunks,
        r.embedded_tokens,
        r.total_ms / 1e3,
        r.chunks_per_s,
        r.tokens_per_s
    );
}
