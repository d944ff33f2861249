//! `docent`: ask questions of a folder of documents, locally.
//!
//! The binary is the edge of docent: it parses the command line, reads the
//! environment, draws progress bars, prints results and turns library
//! errors into advice. The work is done by the library crates, the answering
//! loop by `docent-rag` (see `ARCHITECTURE.md`).
//!
//! * `flags.rs`: the flag groups several commands share, and their
//!   conversion into the libraries' configuration;
//! * one file per command (`index_cmd.rs`, `search_cmd.rs`, `ask_cmd.rs`,
//!   `chat_cmd.rs`, `serve_cmd.rs`, `traces_cmd.rs`, `eval_cmd.rs`,
//!   `models_cmd.rs`) and a folder for `bench`;
//! * `display.rs`: locations and snippets on a terminal;
//! * `errors.rs`: error messages and the hint that goes with each.

mod ask_cmd;
mod bench;
mod chat_cmd;
mod display;
mod errors;
mod eval_cmd;
mod eval_qa;
mod flags;
mod index_cmd;
mod models_cmd;
mod search_cmd;
mod serve_cmd;
mod traces_cmd;

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
    /// A conversation in the terminal: follow-up questions understand the
    /// earlier ones; kept beside the index and resumable.
    Chat(chat_cmd::ChatArgs),
    /// Benchmarks: retrieval, generation and embedding speed.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Measure retrieval (and with --generate, answers) on a SQuAD-format set.
    Eval(eval_cmd::EvalArgs),
    /// Index a folder of documents (.txt, .md, .html, .pdf).
    Index(index_cmd::IndexArgs),
    /// Search the index and print the best-matching chunks.
    Search(search_cmd::SearchArgs),
    /// Serve the index over HTTP: the OpenAI API, LangServe's ask chain,
    /// search, traces and a web page.
    Serve(Box<serve_cmd::ServeArgs>),
    /// The answers docent has given, how each was made, and their ratings.
    Traces {
        #[command(subcommand)]
        command: traces_cmd::TracesCommand,
    },
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
        Command::Bench { command } => bench::run(&cli.index, command),
        Command::Chat(args) => chat_cmd::run(&cli.index, args),
        Command::Serve(args) => serve_cmd::run(&cli.index, *args),
        Command::Traces { command } => traces_cmd::run(&cli.index, command),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Index(args) => index_cmd::run(&cli.index, args),
        Command::Search(args) => search_cmd::run(&cli.index, args),
        Command::Models { command } => models_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errors::print(e.as_ref());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Flag names are unique within each command, defaults parse, and so on:
    /// what clap would otherwise check only when a command first runs.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
