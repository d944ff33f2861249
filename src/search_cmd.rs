//! `docent search`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use docent_embed::{Encoder, EncoderConfig};
use docent_index::{Hit, Index, SearchMode};
use serde::Serialize;

use crate::index_cmd::{self, IndexArgs};

/// `--mode`: how chunks are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Embedding similarity through the HNSW graph.
    Dense,
    /// BM25 over words and Hangul/CJK character bigrams.
    Lexical,
    /// Both, fused (weights chosen from the query's script).
    Hybrid,
}

impl From<Mode> for SearchMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Dense => SearchMode::Dense,
            Mode::Lexical => SearchMode::Lexical,
            Mode::Hybrid => SearchMode::Hybrid,
        }
    }
}

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
    /// per query (query, and score, path and line of each hit).
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
    mode: Mode,
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

/// Opens the index (indexing `docs` first if given) and loads its encoder:
/// `encoder` if named, else the one the index was built with.
pub fn open(
    index_dir: &Path,
    docs: Option<&Path>,
    encoder_name: Option<&str>,
    quiet: bool,
) -> Result<(Encoder, Index)> {
    let config = EncoderConfig::default();
    let (encoder, index) = if let Some(docs) = docs {
        let encoder = crate::encoder::load(encoder_name, config)?;
        let index_args = IndexArgs {
            batch_size: config.batch_size,
            ..IndexArgs::for_folder(docs, encoder_name)
        };
        let report = index_cmd::build(index_dir, &index_args, Some(&encoder), quiet)?;
        if !quiet && report.embedded_files > 0 {
            index_cmd::print_report(index_dir, &report);
        }
        (encoder, Index::open(index_dir)?)
    } else {
        // Opened once: the index names its encoder and then serves the query.
        let index = Index::open(index_dir)?;
        let model = encoder_name
            .map(str::to_string)
            .unwrap_or_else(|| index.meta().encoder.id.clone());
        (crate::encoder::load(Some(&model), config)?, index)
    };
    index.check_encoder(encoder.info())?;
    Ok((encoder, index))
}

pub fn run(index_dir: &Path, args: SearchArgs) -> Result<()> {
    let (encoder, index) = open(
        index_dir,
        args.docs.as_deref(),
        args.model.as_deref(),
        args.json,
    )?;
    index.check_encoder(encoder.info())?;
    let ef = args.ef.unwrap_or(index.meta().hnsw.ef_search);

    if let Some(file) = &args.queries {
        return latency(
            &index,
            &encoder,
            file,
            args.k,
            ef,
            args.mode.into(),
            args.json,
            args.hits.as_deref(),
        );
    }
    let query = args.query.clone().unwrap_or_default();
    let with_special = encoder.count_with_special(&query);
    if with_special > encoder.info().max_seq_len {
        eprintln!(
            "warning: the query has {with_special} tokens; the encoder reads only the first {}",
            encoder.info().max_seq_len
        );
    }
    let t = Instant::now();
    let q = encoder
        .embed(&[query.as_str()])?
        .pop()
        .expect("one vector per text");
    let embed_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let hits = index.search_mode(&query, &q, args.k, ef, args.mode.into())?;
    let search_ms = t.elapsed().as_secs_f64() * 1e3;

    if args.json {
        let out = Output {
            query: &query,
            k: args.k,
            ef,
            mode: args.mode,
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
        if index.is_empty() {
            println!("no results: the index at {} is empty", index_dir.display());
        } else {
            println!("no results: no chunk matches (try --mode dense or hybrid for meaning rather than words)");
        }
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[allow(clippy::too_many_arguments)]
/// Runs each line of `file` as a query, one at a time, and reports the
/// latency of each stage.
fn latency(
    index: &Index,
    encoder: &docent_embed::Encoder,
    file: &Path,
    k: usize,
    ef: usize,
    mode: SearchMode,
    json: bool,
    hits_out: Option<&Path>,
) -> Result<()> {
    use anyhow::Context;
    use std::io::Write;
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
    let (mut embed, mut graph, mut fetch, mut total) = (vec![], vec![], vec![], vec![]);
    for q in &queries {
        let t0 = Instant::now();
        let v = encoder.embed(&[q])?.pop().expect("one vector");
        let t1 = Instant::now();
        let ids = index.retrieve(q, &v, k, ef, mode)?;
        let t2 = Instant::now();
        let chunks = index.chunks(&ids.iter().map(|x| x.0).collect::<Vec<_>>())?;
        let t3 = Instant::now();
        if let Some(f) = hits_file.as_mut() {
            let hits: Vec<_> = ids
                .iter()
                .zip(&chunks)
                .map(|((_, score), c)| {
                    serde_json::json!({"score": score, "path": c.chunk.path, "line": c.chunk.line})
                })
                .collect();
            writeln!(f, "{}", serde_json::json!({"query": q, "hits": hits}))?;
        }
        std::hint::black_box(chunks);
        embed.push((t1 - t0).as_secs_f64() * 1e3);
        graph.push((t2 - t1).as_secs_f64() * 1e3);
        fetch.push((t3 - t2).as_secs_f64() * 1e3);
        total.push((t3 - t0).as_secs_f64() * 1e3);
    }
    let mut rows = Vec::new();
    for (name, v) in [
        ("embed", &mut embed),
        ("rank", &mut graph),
        ("fetch", &mut fetch),
        ("total", &mut total),
    ] {
        v.sort_by(f64::total_cmp);
        rows.push(serde_json::json!({
            "stage": name,
            "p50_ms": percentile(v, 50.0),
            "p95_ms": percentile(v, 95.0),
            "p99_ms": percentile(v, 99.0),
            "max_ms": v.last().copied().unwrap_or(0.0),
            "mean_ms": v.iter().sum::<f64>() / v.len() as f64,
        }));
    }
    if let Some(f) = hits_file.as_mut() {
        f.flush()?;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if json {
        let out = serde_json::json!({
            "queries": queries.len(), "k": k, "ef": ef, "mode": mode, "chunks": index.len(), "threads": threads, "stages": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} queries, k={k}, ef={ef}, mode {mode:?}, {} chunks, {threads} threads",
            queries.len(),
            index.len()
        );
        println!(
            "{:<6} {:>9} {:>9} {:>9} {:>9}",
            "stage", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for r in rows {
            println!(
                "{:<6} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                r["stage"].as_str().unwrap_or(""),
                r["p50_ms"].as_f64().unwrap_or(0.0),
                r["p95_ms"].as_f64().unwrap_or(0.0),
                r["p99_ms"].as_f64().unwrap_or(0.0),
                r["max_ms"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
