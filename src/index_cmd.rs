//! `docent index`: index a folder, once or as it changes.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use docent_rag::indexer::{build_index, load_encoder_for};
use docent_rag::{IndexEvent, IndexReport, WatchEvent};
use indicatif::{ProgressBar, ProgressStyle};

use crate::flags::{EncoderFlagsWithLegacy, IndexFlags};

#[derive(Debug, Args, Clone)]
pub struct IndexArgs {
    /// Folder to index; by default the folder the index was built from, else `.`.
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub encoder: EncoderFlagsWithLegacy,
    #[command(flatten)]
    pub indexing: IndexFlags,
    /// Print the summary as JSON (one line per run).
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

/// Shows an indexing run's warnings, and its embedding progress unless `quiet`.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress { bar: None, quiet }
    }

    pub fn on(&mut self, event: IndexEvent<'_>) {
        match event {
            IndexEvent::Warning(w) => eprintln!("warning: {w}"),
            IndexEvent::Note(n) if !self.quiet => eprintln!("note: {n}"),
            IndexEvent::Note(_) => {}
            IndexEvent::Embedding { done, total } if !self.quiet => {
                let bar = self.bar.get_or_insert_with(|| {
                    ProgressBar::new(total as u64).with_style(
                        ProgressStyle::with_template(
                            "embedding {bar:30} {pos}/{len} chunks [{elapsed} < {eta}]",
                        )
                        .expect("valid template"),
                    )
                });
                bar.set_position(done as u64);
                if done >= total {
                    bar.finish_and_clear();
                    self.bar = None;
                }
            }
            IndexEvent::Embedding { .. } => {}
        }
    }
}

pub fn run(index_dir: &Path, args: IndexArgs) -> Result<()> {
    let cfg = args.indexing.config(args.dir.as_deref());
    let named = args.encoder.name()?;
    // `--rebuild` without `--encoder` rebuilds with the default encoder:
    // the one step that moves an index to a new default.
    let encoder = if cfg.rebuild && named.is_none() {
        let encoder = docent_rag::models::load_encoder(
            None,
            docent_embed::EncoderConfig {
                batch_size: cfg.batch_size,
                ..Default::default()
            },
        )?;
        if let Ok(meta) = docent_index::Index::read_meta(index_dir) {
            if meta.encoder.id != encoder.info().id {
                eprintln!(
                    "note: rebuilding with the default encoder {} (the index was built with {}; \
                     pass --encoder to keep it)",
                    encoder.info().id,
                    meta.encoder.id
                );
            }
        }
        encoder
    } else {
        load_encoder_for(index_dir, named, cfg.batch_size)?
    };
    if !args.watch {
        let mut progress = Progress::new(false);
        let report = build_index(index_dir, &cfg, &encoder, &mut |e| progress.on(e))?;
        return show(index_dir, args.json, &report);
    }
    // Progress bars for the first run only; later ones print one line each.
    let mut progress = Progress::new(false);
    let mut shown = Ok(());
    docent_rag::watch(
        index_dir,
        &cfg,
        &encoder,
        Duration::from_millis(args.debounce_ms),
        &mut |event| {
            match event {
                WatchEvent::Index(e) => progress.on(e),
                WatchEvent::Indexed(report) => {
                    shown = show(index_dir, args.json, report);
                    progress = Progress::new(true);
                    if shown.is_err() {
                        return ControlFlow::Break(());
                    }
                }
                // A file written back as it was: nothing to say.
                WatchEvent::UpToDate(_) => {}
                WatchEvent::Watching(root) => eprintln!(
                    "watching {} for changes; Ctrl-C stops (the index is always left whole)",
                    root.display()
                ),
                WatchEvent::Failed(e) => {
                    crate::errors::print(e);
                    eprintln!("the index keeps its last state; still watching");
                }
                WatchEvent::Warning(w) => eprintln!("warning: watching: {w}"),
            }
            ControlFlow::Continue(())
        },
    )?;
    shown
}

fn show(index_dir: &Path, json: bool, report: &IndexReport) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print_report(index_dir, report);
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
