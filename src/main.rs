//! `docent`: ask questions of a folder of documents, locally.
//!
//! The binary is the edge of docent: it parses the command line, reads the
//! environment, draws progress bars and prints results. The work is done by
//! the library crates (see `ARCHITECTURE.md`).

mod ask_cmd;
mod bench_cmd;
mod bench_gen;
mod bench_reindex;
mod encoder;
mod eval_cmd;
mod index_cmd;
mod models_cmd;
mod search_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Local retrieval-augmented question answering over your own documents.
#[derive(Debug, Parser)]
#[command(name = "docent", version, about, long_about = None)]
struct Cli {
    /// Folder of the index.
    #[arg(long, global = true, env = "DOCENT_INDEX", default_value = ".docent")]
    index: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Answer a question from the indexed documents, with sources.
    Ask(ask_cmd::AskArgs),
    /// Benchmarks: retrieval, generation and embedding speed.
    Bench {
        #[command(subcommand)]
        command: bench_cmd::BenchCommand,
    },
    /// Measure retrieval (and with --generate, answers) on a SQuAD-format set.
    Eval(eval_cmd::EvalArgs),
    /// Index a folder of documents (.txt, .md, .html, .pdf).
    Index(index_cmd::IndexArgs),
    /// Search the index and print the best-matching chunks.
    Search(search_cmd::SearchArgs),
    /// List or fetch the models docent uses.
    Models {
        #[command(subcommand)]
        command: models_cmd::ModelsCommand,
    },
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ask(args) => ask_cmd::run(&cli.index, args, started),
        Command::Bench { command } => bench_cmd::run(&cli.index, command),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Index(args) => index_cmd::run(&cli.index, args),
        Command::Search(args) => search_cmd::run(&cli.index, args),
        Command::Models { command } => models_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
