//! `docent bench reindex`: what re-indexing costs on a large folder when
//! nothing, one file, or a few files changed.
//!
//! It writes a folder of generated notes, indexes it once, then times
//! `docent index` (the same code, in process, encoder load included) on the
//! unchanged folder, after one file changed, and after one file was deleted
//! and another added. Each case runs `--repeat` times; the median is
//! reported with the minimum and maximum.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use docent_rag::indexer::{build_index, load_encoder_for};
use docent_rag::{IndexConfig, IndexReport};

use crate::index_cmd::{print_report, Progress};

#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Files in the generated folder.
    #[arg(long, default_value_t = 10_000)]
    pub files: usize,
    /// Timed runs of each case.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Folder for the notes and the index (emptied first); by default a
    /// temporary folder, removed afterwards.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Case {
    name: &'static str,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    /// Median per thousand files in the folder.
    median_ms_per_1000_files: f64,
    /// The last run's report: what it embedded, removed and reused.
    last: IndexReport,
}

#[derive(Debug, Serialize)]
struct Figures {
    files: usize,
    chunks: usize,
    repeat: usize,
    threads: usize,
    initial_ms: f64,
    cases: Vec<Case>,
}

/// A note of a hundred-odd words, different for every `i` and `version`.
fn note(i: usize, version: usize) -> String {
    const WORDS: &[&str] = &[
        "retrieval",
        "answer",
        "chunk",
        "vector",
        "graph",
        "token",
        "model",
        "folder",
        "index",
        "search",
        "question",
        "source",
        "paragraph",
        "heading",
        "encoder",
        "decoder",
        "prompt",
        "context",
        "budget",
        "recall",
        "latency",
        "memory",
        "cache",
        "file",
        "hash",
        "note",
        "topic",
        "meeting",
        "plan",
        "result",
    ];
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ version as u64;
    let mut word = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        WORDS[(x % WORDS.len() as u64) as usize]
    };
    let mut s = format!("# Note {i} (version {version})\n\n");
    for _ in 0..3 {
        let sentence: Vec<&str> = (0..35).map(|_| word()).collect();
        s.push_str(&sentence.join(" "));
        s.push_str(".\n\n");
    }
    s
}

/// One run of `docent index`, in process: the encoder loaded, the folder
/// indexed. Returns the report and the time of both.
fn index_once(
    index_dir: &std::path::Path,
    cfg: &IndexConfig,
    quiet: bool,
) -> Result<(IndexReport, f64)> {
    let t = std::time::Instant::now();
    let encoder = load_encoder_for(index_dir, None, cfg.batch_size)?;
    let mut progress = Progress::new(quiet);
    let report = build_index(index_dir, cfg, &encoder, &mut |e| progress.on(e))?;
    Ok((report, t.elapsed().as_secs_f64() * 1e3))
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub fn run(args: ReindexArgs) -> Result<()> {
    anyhow::ensure!(
        args.files >= 2 && args.repeat >= 1,
        "--files must be at least 2 and --repeat at least 1"
    );
    let tmp;
    let work = match &args.workdir {
        Some(w) => {
            if w.exists() {
                std::fs::remove_dir_all(w).with_context(|| format!("emptying {}", w.display()))?;
            }
            w.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let docs = work.join("docs");
    let index_dir = work.join("index");
    for sub in 0..args.files.div_ceil(1000) {
        std::fs::create_dir_all(docs.join(format!("{sub:03}")))?;
    }
    std::fs::create_dir_all(&index_dir)?;
    let path = |i: usize| docs.join(format!("{:03}/note-{i:06}.md", i / 1000));
    for i in 0..args.files {
        std::fs::write(path(i), note(i, 0))?;
    }
    let cfg = IndexConfig::for_folder(&docs);
    let (first, initial_ms) = index_once(&index_dir, &cfg, args.json)?;
    if !args.json {
        print_report(&index_dir, &first);
    }
    let mut cases = Vec::new();
    let mut version = 0;
    let mut added = args.files;
    for name in [
        "unchanged",
        "one file changed",
        "one file deleted, one added",
    ] {
        let mut times = Vec::new();
        let mut last = None;
        for r in 0..args.repeat {
            match name {
                "unchanged" => {}
                "one file changed" => {
                    version += 1;
                    std::fs::write(path(r * 7919 % args.files), note(r, version))?;
                }
                _ => {
                    std::fs::remove_file(path(r))?;
                    let new = path(added);
                    std::fs::create_dir_all(new.parent().expect("a note is in a folder"))?;
                    std::fs::write(new, note(added, 0))?;
                    added += 1;
                }
            }
            let (report, ms) = index_once(&index_dir, &cfg, true)?;
            times.push(ms);
            last = Some(report);
        }
        let median_ms = median(&mut times);
        cases.push(Case {
            name,
            median_ms,
            min_ms: times[0],
            max_ms: times[times.len() - 1],
            median_ms_per_1000_files: median_ms * 1000.0 / args.files as f64,
            last: last.expect("at least one run"),
        });
    }
    let figures = Figures {
        files: args.files,
        chunks: first.chunks,
        repeat: args.repeat,
        threads: rayon::current_num_threads(),
        initial_ms,
        cases,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    println!(
        "re-indexing a folder of {} files ({} chunks), {} threads, median of {} runs \
         (encoder load included, process start not):",
        figures.files, figures.chunks, figures.threads, figures.repeat
    );
    println!("  initial build            {:>9.0} ms", figures.initial_ms);
    for c in &figures.cases {
        println!(
            "  {:<24} {:>9.1} ms  ({:.1}–{:.1}; {:.1} ms per 1,000 files; embedded {} chunks, removed {}, graph {})",
            c.name,
            c.median_ms,
            c.min_ms,
            c.max_ms,
            c.median_ms_per_1000_files,
            c.last.embedded_chunks,
            c.last.removed_chunks,
            if c.last.up_to_date {
                "untouched"
            } else if c.last.graph_rebuilt {
                "rebuilt"
            } else {
                "extended"
            }
        );
    }
    Ok(())
}
