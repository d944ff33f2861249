//! `docent bench`: one file per benchmark, and what they share (memory
//! readings, sizes on disk, progress bars, the thread count).

mod embed;
mod generate;
mod plot;
mod reindex;
mod retrieval;
mod serve;

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Retrieval latency, throughput and recall (see `docent bench retrieval --help`).
    Retrieval(retrieval::RetrievalArgs),
    /// Language model speed: prompt processing and decoding, load time, memory.
    Generate(generate::GenerateArgs),
    /// Sentence encoder throughput on the paragraphs of a SQuAD-format file.
    Embed(embed::EmbedArgs),
    /// Re-indexing a large generated folder: unchanged, one file changed,
    /// one deleted and one added.
    Reindex(reindex::ReindexArgs),
    /// A server under load: many concurrent connections over loopback
    /// mixing search, streamed answers and chat completions.
    Serve(serve::ServeBenchArgs),
}

pub fn run(index_dir: &Path, cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Retrieval(args) => retrieval::run(index_dir, args),
        BenchCommand::Generate(args) => generate::run(args),
        BenchCommand::Embed(args) => embed::run(args),
        BenchCommand::Reindex(args) => reindex::run(args),
        BenchCommand::Serve(args) => serve::run(index_dir, args),
    }
}

/// How a model benchmark runs and reports.
#[derive(Debug, Args)]
struct RunFlags {
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

impl RunFlags {
    /// Sizes rayon's pool, which every kernel runs on, as `--threads` asks;
    /// returns its size.
    fn threads(&self) -> Result<usize> {
        if let Some(n) = self.threads {
            anyhow::ensure!(n > 0, "--threads must be at least 1");
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("setting up the thread pool")?;
        }
        Ok(rayon::current_num_threads())
    }
}

/// The most memory this process has held, in MB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident memory now, in MB.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(key: &str) -> f64 {
    proc_status_mb("self", key)
}

/// A `/proc/<pid>/status` memory line (`VmRSS:`, `VmHWM:`), in MB.
fn proc_status_mb(pid: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Bytes under `p`.
fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn progress(len: u64, msg: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::new(len)
        .with_style(
            indicatif::ProgressStyle::with_template("{msg:<28} {bar:30} {pos}/{len} {eta}")
                .expect("valid template"),
        )
        .with_message(msg.to_string())
}
