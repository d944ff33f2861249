//! `docent search`: the best-matching chunks for a query, or the latency
//! of a file of queries.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use docent_eval::Percentiles;
use docent_rag::{Engine, GeneratorChoice, IndexConfig, RetrieveConfig, Stage};
use serde::Serialize;

use crate::display::{location, snippet};
use crate::flags::{EncoderFlagsWithLegacy, Mode, RankFlags};
use crate::index_cmd::{print_report, Progress};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for.
    #[arg(required_unless_present = "queries")]
    pub query: Option<String>,
    /// Run every line of FILE as a query and print latency percentiles
    /// instead of results (embedding, ranking in --mode, chunk fetch, and the whole path).
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    pub queries: Option<PathBuf>,
    /// With --queries: also write each query's hits to FILE, one JSON line
    /// per query (query, and score, cosine similarity, path and line of each
    /// hit).
    #[arg(long, value_name = "FILE", requires = "queries")]
    pub hits: Option<PathBuf>,
    /// How many chunks to print.
    #[arg(short, default_value_t = 5)]
    pub k: usize,
    /// How chunks are ranked.
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
    /// Search breadth of the HNSW graph (default: the index's).
    #[arg(long)]
    pub ef: Option<usize>,
    #[command(flatten)]
    pub rank: RankFlags,
    #[command(flatten)]
    pub encoder: EncoderFlagsWithLegacy,
    /// Index this folder first (only new and changed files are embedded).
    #[arg(long, value_name = "DIR")]
    pub docs: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Opens the engine over the index at `index_dir`, indexing `docs` first
/// if given (showing what was embedded unless `quiet`).
pub fn open_engine(
    index_dir: &Path,
    docs: Option<&Path>,
    encoder: Option<&str>,
    generator: GeneratorChoice,
    quiet: bool,
) -> Result<Engine> {
    let Some(docs) = docs else {
        return Ok(Engine::open(index_dir, encoder, generator)?);
    };
    let mut progress = Progress::new(quiet);
    let (engine, report) = Engine::open_indexing(
        index_dir,
        &IndexConfig::for_folder(docs),
        encoder,
        generator,
        &mut |e| progress.on(e),
    )?;
    if !quiet && report.embedded_files > 0 {
        print_report(index_dir, &report);
    }
    Ok(engine)
}

#[derive(Serialize)]
struct Output<'a> {
    query: &'a str,
    k: usize,
    ef: usize,
    mode: Mode,
    embed_ms: f64,
    search_ms: f64,
    results: Vec<Found<'a>>,
}

#[derive(Serialize)]
struct Found<'a> {
    rank: usize,
    #[serde(flatten)]
    hit: &'a docent_index::Hit,
    location: String,
}

pub fn run(index_dir: &Path, args: SearchArgs) -> Result<()> {
    let engine = open_engine(
        index_dir,
        args.docs.as_deref(),
        args.encoder.name()?,
        GeneratorChoice::default(),
        args.json,
    )?;
    let cfg = RetrieveConfig {
        k: args.k,
        mode: args.mode.into(),
        ef: args.ef,
        sentence_weight: args.rank.sentence_weight,
    };
    if let Some(file) = &args.queries {
        return latency(&engine, file, &cfg, args.json, args.hits.as_deref());
    }
    let query = args.query.clone().unwrap_or_default();
    let (tokens, limit) = (
        engine.encoder().count_with_special(&query),
        engine.encoder().info().max_seq_len,
    );
    if tokens > limit {
        eprintln!(
            "warning: the query has {tokens} tokens; the encoder reads only the first {limit}"
        );
    }
    let r = engine.retrieve(&query, &cfg)?;
    let index = engine.index()?;
    let root = &index.meta().root;
    let at = |h: &docent_index::Hit| {
        let c = &h.chunk.chunk;
        location(root, &c.path, c.line, c.page)
    };
    let embed_ms: f64 = r
        .spans
        .iter()
        .filter(|s| s.stage == Stage::QueryEmbedding)
        .map(|s| s.duration_ms)
        .sum();
    let all_ms: f64 = r.spans.iter().map(|s| s.duration_ms).sum();
    if args.json {
        let out = Output {
            query: &query,
            k: args.k,
            ef: r.ef,
            mode: args.mode,
            embed_ms,
            search_ms: all_ms - embed_ms,
            results: r
                .hits
                .iter()
                .enumerate()
                .map(|(i, h)| Found {
                    rank: i + 1,
                    hit: h,
                    location: at(h),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if r.hits.is_empty() {
        if index.is_empty() {
            println!("no results: the index at {} is empty", index_dir.display());
        } else {
            println!("no results: no chunk matches (try --mode dense or hybrid for meaning rather than words)");
        }
    }
    for (i, h) in r.hits.iter().enumerate() {
        let heading = h.chunk.chunk.heading_path.join(" › ");
        println!("{:>2}. {:.3}  {}  {}", i + 1, h.score, at(h), heading);
        println!("    {}", snippet(&h.chunk.chunk.text, 240));
    }
    Ok(())
}

/// Runs each line of `file` as a query, one at a time, and reports the
/// latency of each stage.
fn latency(
    engine: &Engine,
    file: &Path,
    cfg: &RetrieveConfig,
    json: bool,
    hits_out: Option<&Path>,
) -> Result<()> {
    let mut hits_file = match hits_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let queries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    anyhow::ensure!(!queries.is_empty(), "{} holds no queries", file.display());
    let (mut embed, mut rank, mut fetch, mut total) = (vec![], vec![], vec![], vec![]);
    let mut ef = 0;
    for q in &queries {
        let r = engine.retrieve(q, cfg)?;
        ef = r.ef;
        let ms = |stages: &[Stage]| -> f64 {
            r.spans
                .iter()
                .filter(|s| stages.contains(&s.stage))
                .map(|s| s.duration_ms)
                .sum()
        };
        embed.push(ms(&[Stage::QueryEmbedding]));
        rank.push(ms(&[
            Stage::DenseSearch,
            Stage::AcrossSearch,
            Stage::LexicalSearch,
            Stage::Fusion,
        ]));
        fetch.push(ms(&[Stage::Fetch]));
        total.push(r.spans.iter().map(|s| s.duration_ms).sum());
        if let Some(f) = hits_file.as_mut() {
            let hits: Vec<_> = r
                .hits
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "score": h.score,
                        "similarity": h.similarity,
                        "path": h.chunk.chunk.path,
                        "line": h.chunk.chunk.line,
                    })
                })
                .collect();
            writeln!(f, "{}", serde_json::json!({"query": q, "hits": hits}))?;
        }
    }
    if let Some(f) = hits_file.as_mut() {
        f.flush()?;
    }
    let rows: Vec<(&str, Percentiles)> = vec![
        ("embed", Percentiles::of(embed)),
        ("rank", Percentiles::of(rank)),
        ("fetch", Percentiles::of(fetch)),
        ("total", Percentiles::of(total)),
    ];
    let threads = rayon::current_num_threads();
    let chunks = engine.index()?.len();
    let k = cfg.k;
    let mode = cfg.mode;
    if json {
        let stages: Vec<_> = rows
            .iter()
            .map(|(name, p)| {
                serde_json::json!({
                    "stage": name, "p50_ms": p.p50, "p95_ms": p.p95, "p99_ms": p.p99,
                    "max_ms": p.max, "mean_ms": p.mean,
                })
            })
            .collect();
        let out = serde_json::json!({
            "queries": queries.len(), "k": k, "ef": ef, "mode": mode, "chunks": chunks,
            "threads": threads, "stages": stages,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} queries, k={k}, ef={ef}, mode {}, {chunks} chunks, {threads} threads",
        queries.len(),
        mode.name()
    );
    println!(
        "{:<6} {:>9} {:>9} {:>9} {:>9}",
        "stage", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (name, p) in rows {
        println!(
            "{name:<6} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            p.p50, p.p95, p.p99, p.max
        );
    }
    Ok(())
}
