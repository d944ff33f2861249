//! `docent bench embed`: the sentence encoder speed harness.
//!
//! It encodes the paragraphs of a SQuAD-format file after one untimed
//! batch, and prints its settings with the figures; `--export` writes the
//! texts and embeddings for `benches/embed_peer.py`, so that
//! sentence-transformers encodes the same texts.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::peak_rss_mb;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A SQuAD-format file whose paragraphs are encoded.
    squad: PathBuf,
    /// Encode only the first N paragraphs.
    #[arg(long)]
    limit: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[command(flatten)]
    encoder: crate::flags::EncoderFlags,
    #[command(flatten)]
    run: super::RunFlags,
    /// Write the texts and docent's embeddings here (JSON) for
    /// benches/embed_peer.py.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct EmbedReport {
    encoder: String,
    cpu: String,
    /// The kernels' instruction set.
    isa: String,
    texts: usize,
    tokens: usize,
    batch: usize,
    threads: usize,
    load_ms: f64,
    seconds: f64,
    texts_per_s: f64,
    tokens_per_s: f64,
    peak_rss_mb: f64,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let threads = args.run.threads()?;
    let data =
        std::fs::read(&args.squad).with_context(|| format!("reading {}", args.squad.display()))?;
    let set = docent_eval::Dataset::from_json(&data)
        .with_context(|| format!("{} is not a SQuAD-format file", args.squad.display()))?;
    let mut texts: Vec<&str> = set.paragraphs.iter().map(|p| p.context.as_str()).collect();
    if let Some(n) = args.limit {
        texts.truncate(n);
    }
    anyhow::ensure!(
        !texts.is_empty(),
        "no paragraphs in {}",
        args.squad.display()
    );
    let t = Instant::now();
    let encoder = docent_rag::models::load_encoder(
        args.encoder.name(),
        docent_embed::EncoderConfig {
            batch_size: args.batch,
            ..Default::default()
        },
    )?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let tokens: usize = texts
        .iter()
        .map(|t| {
            encoder
                .count_with_special(t)
                .min(encoder.max_input_tokens())
        })
        .sum();
    // Warm up on one batch, as the peer does.
    encoder.embed(&texts[..texts.len().min(args.batch)])?;
    let t = Instant::now();
    let vectors = encoder.embed(&texts)?;
    let seconds = t.elapsed().as_secs_f64();
    let report = EmbedReport {
        encoder: encoder.info().id.clone(),
        cpu: docent_kernels::cpu_name(),
        isa: docent_kernels::Isa::detect().name().to_string(),
        texts: texts.len(),
        tokens,
        batch: args.batch,
        threads,
        load_ms,
        seconds,
        texts_per_s: texts.len() as f64 / seconds,
        tokens_per_s: tokens as f64 / seconds,
        peak_rss_mb: peak_rss_mb(),
    };
    if let Some(p) = &args.export {
        let e = serde_json::json!({
            "texts": texts,
            "embeddings": vectors,
            "encoder": report.encoder,
            "batch": args.batch,
            "threads": threads,
        });
        std::fs::write(p, serde_json::to_string(&e)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if args.run.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} texts, {} tokens, batch {}, {} threads: {:.2} s, {:.1} texts/s, {:.0} tokens/s (load {:.0} ms, peak {:.0} MB)\n  on {}, kernels {}",
            report.encoder, report.texts, report.tokens, report.batch, threads, seconds,
            report.texts_per_s, report.tokens_per_s, load_ms, report.peak_rss_mb, report.cpu, report.isa
        );
    }
    Ok(())
}
