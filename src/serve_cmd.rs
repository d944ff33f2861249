//! `docent serve`: the engine over HTTP (see `docent-serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use docent_rag::{IndexConfig, WatchEvent};
use docent_serve::{Limits, QueueConfig, ServeConfig};

use crate::flags::{AnswerFlags, EncoderFlags, JournalFlags, Mode};
use crate::search_cmd::open_engine;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Bearer token every request must carry (required off loopback).
    #[arg(long, env = "DOCENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Index this folder first, then keep the index current as its files
    /// change (answers pick each new generation up without a restart).
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// Answers generated at the same time.
    #[arg(long, default_value_t = QueueConfig::default().concurrent)]
    pub max_generations: usize,
    /// Answers that may wait for a turn; more get 429 with Retry-After.
    #[arg(long, default_value_t = QueueConfig::default().depth)]
    pub queue: usize,
    /// Largest request body, in KiB.
    #[arg(long, default_value_t = Limits::default().max_body_bytes / 1024)]
    pub max_body_kb: usize,
    /// Longest question, in characters.
    #[arg(long, default_value_t = Limits::default().max_question_chars)]
    pub max_question_chars: usize,
    /// Most questions in one batch (or texts in one embeddings request).
    #[arg(long, default_value_t = Limits::default().max_batch)]
    pub max_batch: usize,
    /// Most earlier turns a conversation may carry.
    #[arg(long, default_value_t = Limits::default().max_history)]
    pub max_history: usize,
    /// Seconds a request may take to start its response.
    #[arg(long, default_value_t = Limits::default().request_timeout.as_secs())]
    pub timeout_s: u64,
    /// Load the language model when the server starts, not on the first
    /// answer.
    #[arg(long)]
    pub preload: bool,
    #[command(flatten)]
    pub encoder: EncoderFlags,
    #[command(flatten)]
    pub answer: AnswerFlags,
    #[command(flatten)]
    pub journal: JournalFlags,
}

pub fn run(index_dir: &Path, args: ServeArgs) -> Result<()> {
    let answer = args.answer.config(Mode::Hybrid.into())?;
    let cfg = ServeConfig {
        addr: args.addr,
        token: args.token.clone().filter(|t| !t.is_empty()),
        limits: Limits {
            max_body_bytes: args.max_body_kb.max(1) * 1024,
            max_question_chars: args.max_question_chars,
            max_batch: args.max_batch,
            max_history: args.max_history,
            max_tokens: Limits::default().max_tokens.max(args.answer.max_tokens),
            max_k: Limits::default().max_k.max(args.answer.k),
            request_timeout: Duration::from_secs(args.timeout_s.max(1)),
        },
        queue: QueueConfig {
            concurrent: args.max_generations,
            depth: args.queue,
        },
        answer,
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let engine = Arc::new(open_engine(
        index_dir,
        args.watch.as_deref(),
        args.encoder.name(),
        args.answer.generator(),
        false,
    )?);
    if args.preload {
        let ms = engine.load_generator()?;
        eprintln!("loaded {} in {:.1} s", args.answer.model, ms / 1e3);
    }
    let journal = Arc::new(args.journal.open(index_dir)?);
    let encoder_id = engine.encoder().info().id.clone();
    if let Some(folder) = args.watch.clone() {
        spawn_watch(index_dir, folder, engine.clone());
    }
    let state = docent_serve::state(
        engine,
        journal,
        cfg.clone(),
        args.answer.model.clone(),
        encoder_id,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .with_context(|| format!("listening on {} (is another server using it?)", cfg.addr))?;
        eprintln!(
            "docent serving {} on http://{} (page at /, API at /openapi.json; Ctrl-C stops)",
            index_dir.display(),
            listener.local_addr()?
        );
        docent_serve::serve(listener, state)
            .await
            .context("serving")
    })
}

/// Keeps the index current on a thread of its own; the server's engine
/// picks each published generation up on its next request.
fn spawn_watch(index_dir: &Path, folder: PathBuf, engine: Arc<docent_rag::Engine>) {
    let index_dir = index_dir.to_path_buf();
    std::thread::spawn(move || {
        let cfg = IndexConfig::for_folder(&folder);
        // The first pass ran at open; this one finds nothing new and then
        // watches.
        let result = docent_rag::watch(
            &index_dir,
            &cfg,
            engine.encoder(),
            Duration::from_millis(500),
            &mut |e| {
                if let WatchEvent::Indexed(r) = e {
                    if !r.up_to_date {
                        eprintln!(
                            "re-indexed {}: {} file(s) embedded, {} removed",
                            folder.display(),
                            r.embedded_files,
                            r.deleted_files
                        );
                    }
                }
                std::ops::ControlFlow::Continue(())
            },
        );
        if let Err(e) = result {
            eprintln!("watching {} stopped: {e}", folder.display());
        }
    });
}
