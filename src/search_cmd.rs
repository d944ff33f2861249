//! `docent search`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use docent_embed::EncoderConfig;
use docent_index::{Hit, Index};
use serde::Serialize;

use crate::index_cmd::{self, IndexArgs};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
    /// How many chunks to print.
    #[arg(short, default_value_t = 5)]
    pub k: usize,
    /// Search breadth of the HNSW graph (default: the index's).
    #[arg(long)]
    pub ef: Option<usize>,
    /// Encoder; must be the one the index was built with (the default).
    #[arg(long)]
    pub model: Option<String>,
    /// Index this folder first (only new and changed files are embedded).
    #[arg(long, value_name = "DIR")]
    pub docs: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    query: &'a str,
    k: usize,
    ef: usize,
    embed_ms: f64,
    search_ms: f64,
    results: Vec<Result_<'a>>,
}

#[derive(Serialize)]
struct Result_<'a> {
    rank: usize,
    #[serde(flatten)]
    hit: &'a Hit,
    location: String,
}

/// `path:line`, with the page for paged documents, relative to the
/// current folder when the indexed folder is below it.
pub fn location(index: &Index, hit: &Hit) -> String {
    let root = Path::new(&index.meta().root);
    let cwd = std::env::current_dir().ok();
    let base = cwd
        .as_deref()
        .and_then(|c| root.strip_prefix(c).ok())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    let path = base.join(&hit.chunk.chunk.path);
    match hit.chunk.chunk.page {
        Some(p) => format!("{}:{} (page {p})", path.display(), hit.chunk.chunk.line),
        None => format!("{}:{}", path.display(), hit.chunk.chunk.line),
    }
}

fn snippet(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{}…", cut.trim_end())
    }
}

pub fn run(index_dir: &Path, args: SearchArgs) -> Result<()> {
    let config = EncoderConfig::default();
    let encoder = if let Some(docs) = &args.docs {
        let encoder = crate::encoder::load(args.model.as_deref(), config)?;
        let index_args = IndexArgs {
            dir: Some(docs.clone()),
            model: args.model.clone(),
            rebuild: false,
            chunk_tokens: docent_core::ChunkConfig::default().max_tokens,
            overlap: docent_core::ChunkConfig::default().overlap_tokens,
            batch_size: config.batch_size,
            hidden: false,
            no_ignore: false,
            json: false,
        };
        let report = index_cmd::build(index_dir, &index_args, Some(&encoder), args.json)?;
        if !args.json && report.embedded_files > 0 {
            index_cmd::print_report(index_dir, &report);
        }
        encoder
    } else {
        let index = Index::open(index_dir)?;
        let model = args
            .model
            .clone()
            .unwrap_or_else(|| index.meta().encoder.id.clone());
        crate::encoder::load(Some(&model), config)?
    };
    let index = Index::open(index_dir)?;
    index.check_encoder(encoder.info())?;
    let ef = args.ef.unwrap_or(index.meta().hnsw.ef_search);

    let with_special = encoder.count_with_special(&args.query);
    if with_special > encoder.info().max_seq_len {
        eprintln!(
            "warning: the query has {with_special} tokens; the encoder reads only the first {}",
            encoder.info().max_seq_len
        );
    }
    let t = Instant::now();
    let q = encoder
        .embed(&[args.query.as_str()])?
        .pop()
        .expect("one vector per text");
    let embed_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let hits = index.search(&q, args.k, ef)?;
    let search_ms = t.elapsed().as_secs_f64() * 1e3;

    if args.json {
        let out = Output {
            query: &args.query,
            k: args.k,
            ef,
            embed_ms,
            search_ms,
            results: hits
                .iter()
                .enumerate()
                .map(|(i, h)| Result_ {
                    rank: i + 1,
                    hit: h,
                    location: location(&index, h),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("no results: the index at {} is empty", index_dir.display());
    }
    for (i, h) in hits.iter().enumerate() {
        let heading = h.chunk.chunk.heading_path.join(" › ");
        println!(
            "{:>2}. {:.3}  {}  {}",
            i + 1,
            h.score,
            location(&index, h),
            heading
        );
        println!("    {}", snippet(&h.chunk.chunk.text, 240));
    }
    Ok(())
}
