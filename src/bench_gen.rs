//! `docent bench generate` and `docent bench embed`: the model speed
//! harnesses.
//!
//! `generate` loads one language model, cuts prompts of given token counts
//! from the text of `--docs`, runs one untimed batch to warm up, and for
//! each prompt measures reading it (in `--batch`-token passes, as
//! llama.cpp's `n_batch` does) and then greedy decoding, with load time and
//! memory. `embed` encodes the
//! paragraphs of a SQuAD-format file with the sentence encoder. Both print
//! their settings with the figures, and `--export` writes the exact inputs
//! for the peer scripts in `benches/` (llama.cpp, sentence-transformers), so
//! the two sides run the same tokens and texts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use docent_generate::{Generator, GeneratorConfig};
use serde::Serialize;

use crate::ask_cmd::{resolve_model, DEFAULT_GENERATOR};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Model: a name from `docent models list`, `owner/repo:file.gguf[@rev]`,
    /// or a .gguf path.
    #[arg(long, default_value = DEFAULT_GENERATOR)]
    model: String,
    /// Prompt lengths, in the model's tokens.
    #[arg(long, value_delimiter = ',', default_value = "100,500,2000")]
    prompt_tokens: Vec<usize>,
    /// Tokens decoded (greedily) after each prompt.
    #[arg(long, default_value_t = 64)]
    decode: usize,
    /// Prompt tokens per forward pass.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Context length the cache is sized for.
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// Folder whose text files the prompts are cut from.
    #[arg(long, default_value = "corpus")]
    docs: PathBuf,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
    /// Write the prompts' token ids here (JSON) for benches/generate_peer.py.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct GenerateRun {
    prompt_tokens: usize,
    prompt_ms: f64,
    prompt_tokens_per_s: f64,
    decode_tokens: usize,
    decode_ms: f64,
    decode_tokens_per_s: f64,
}

#[derive(Debug, Serialize)]
struct GenerateReport {
    model: String,
    file: String,
    architecture: String,
    isa: String,
    threads: usize,
    ctx: usize,
    batch: usize,
    load_ms: f64,
    rss_before_load_mb: f64,
    rss_after_load_mb: f64,
    peak_rss_mb: f64,
    runs: Vec<GenerateRun>,
}

#[derive(Debug, Serialize)]
struct Export<'a> {
    model: &'a str,
    file: String,
    ctx: usize,
    batch: usize,
    decode: usize,
    threads: usize,
    prompts: &'a [Vec<u32>],
}

fn set_threads(threads: Option<usize>) -> Result<usize> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up the thread pool")?;
    }
    Ok(rayon::current_num_threads())
}

/// Text of every .txt and .md file under `dir`, in path order.
fn corpus_text(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "txt" || x == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut text = String::new();
    for f in files {
        text.push_str(
            &std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
        );
        text.push_str("\n\n");
    }
    anyhow::ensure!(
        !text.trim().is_empty(),
        "no .txt or .md text under {}",
        dir.display()
    );
    Ok(text)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.decode > 0,
        "--batch and --decode must be at least 1"
    );
    let threads = set_threads(args.threads)?;
    let (name, path) = resolve_model(&args.model)?;
    let rss_before = crate::bench_cmd::rss_mb();
    let t = Instant::now();
    let mut generator = Generator::load(
        &path,
        GeneratorConfig {
            max_context: args.ctx,
            ..GeneratorConfig::default()
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_after = crate::bench_cmd::rss_mb();
    let context = generator.context();
    // Prompts: the corpus text, repeated as needed, cut at each length.
    let text = corpus_text(&args.docs)?;
    let mut ids = generator.tokenize_prompt(&text);
    let body: Vec<u32> = ids.clone();
    let longest = args.prompt_tokens.iter().copied().max().unwrap_or(0).max(2);
    while ids.len() < longest {
        ids.extend_from_slice(&body[1.min(body.len())..]);
    }
    let mut prompts = Vec::new();
    for &n in &args.prompt_tokens {
        anyhow::ensure!(
            n > 0 && n + args.decode <= context,
            "a {n}-token prompt and {} decoded tokens do not fit the {context}-token context (--ctx)",
            args.decode
        );
        prompts.push(ids[..n].to_vec());
    }
    if let Some(p) = &args.export {
        let e = Export {
            model: &name,
            file: path.display().to_string(),
            ctx: args.ctx,
            batch: args.batch,
            decode: args.decode,
            threads,
            prompts: &prompts,
        };
        std::fs::write(p, serde_json::to_string(&e)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    // One untimed pass of a full batch first, as llama.cpp's llama-bench
    // warms up: buffers are sized and their pages mapped before timing.
    {
        let model = generator.model_mut();
        model.reset();
        let n = args.batch.min(ids.len() - 1).min(context - 1).max(1);
        model.forward(&ids[..n])?;
        model.forward(&ids[n..n + 1])?;
    }
    let mut runs = Vec::new();
    for prompt in &prompts {
        let model = generator.model_mut();
        model.reset();
        let t = Instant::now();
        let mut logits = Vec::new();
        for part in prompt.chunks(args.batch) {
            logits = model.forward(part)?;
        }
        let prompt_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        for _ in 0..args.decode {
            let next = argmax(&logits);
            logits = model.forward(&[next])?;
        }
        let decode_ms = t.elapsed().as_secs_f64() * 1e3;
        runs.push(GenerateRun {
            prompt_tokens: prompt.len(),
            prompt_ms,
            prompt_tokens_per_s: prompt.len() as f64 / prompt_ms * 1e3,
            decode_tokens: args.decode,
            decode_ms,
            decode_tokens_per_s: args.decode as f64 / decode_ms * 1e3,
        });
    }
    let report = GenerateReport {
        model: name,
        file: path.display().to_string(),
        architecture: generator.architecture().to_string(),
        isa: docent_kernels::Isa::detect().name().to_string(),
        threads,
        ctx: context,
        batch: args.batch,
        load_ms,
        rss_before_load_mb: rss_before,
        rss_after_load_mb: rss_after,
        peak_rss_mb: crate::bench_cmd::peak_rss_mb(),
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} ({}, {} kernels, {} threads, ctx {}, batch {})",
        report.model, report.architecture, report.isa, threads, report.ctx, report.batch
    );
    println!(
        "load {:.0} ms; memory {:.0} MB before load, {:.0} MB after, {:.0} MB peak",
        load_ms, rss_before, rss_after, report.peak_rss_mb
    );
    println!(
        "{:>14}{:>18}{:>18}",
        "prompt tokens", "prompt tokens/s", "decode tokens/s"
    );
    for r in &report.runs {
        println!(
            "{:>14}{:>18.1}{:>18.1}",
            r.prompt_tokens, r.prompt_tokens_per_s, r.decode_tokens_per_s
        );
    }
    Ok(())
}

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
    /// Encoder (default: the manifest's).
    #[arg(long)]
    encoder: Option<String>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
    /// Write the texts and docent's embeddings here (JSON) for
    /// benches/embed_peer.py.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct EmbedReport {
    encoder: String,
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

pub fn embed(args: EmbedArgs) -> Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let threads = set_threads(args.threads)?;
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
    let encoder = crate::encoder::load(
        args.encoder.as_deref(),
        docent_embed::EncoderConfig {
            batch_size: args.batch,
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
        texts: texts.len(),
        tokens,
        batch: args.batch,
        threads,
        load_ms,
        seconds,
        texts_per_s: texts.len() as f64 / seconds,
        tokens_per_s: tokens as f64 / seconds,
        peak_rss_mb: crate::bench_cmd::peak_rss_mb(),
    };
    if let Some(p) = &args.export {
        let e = serde_json::json!({ "texts": texts, "embeddings": vectors, "batch": args.batch, "threads": threads });
        std::fs::write(p, serde_json::to_string(&e)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} texts, {} tokens, batch {}, {} threads: {:.2} s, {:.1} texts/s, {:.0} tokens/s (load {:.0} ms, peak {:.0} MB)",
            report.encoder, report.texts, report.tokens, report.batch, threads, seconds,
            report.texts_per_s, report.tokens_per_s, load_ms, report.peak_rss_mb
        );
    }
    Ok(())
}
