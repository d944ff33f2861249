//! `docent bench generate`: the language model speed harness.
//!
//! It loads one language model, cuts prompts of given token counts from the
//! text of `--docs`, runs one untimed batch to warm up, and for each prompt
//! measures reading it (in `--batch`-token passes, as llama.cpp's `n_batch`
//! does) and then greedy decoding, with load time and memory. It prints its
//! settings with the figures, and `--export` writes the exact token ids for
//! `benches/generate_peer.py`, so that llama.cpp runs the same prompts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use docent_generate::{Generator, GeneratorConfig};
use docent_rag::models::{layout_store, resolve_generator};
use docent_rag::DEFAULT_GENERATOR;
use serde::Serialize;

use super::{peak_rss_mb, rss_mb};

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
    /// Weight layouts at load: read back as saved (saved first, untimed,
    /// if they are not, or not for this version of the file), or built from
    /// the file as a first load does.
    #[arg(long, value_enum, default_value_t = Layouts::Saved)]
    layouts: Layouts,
    #[command(flatten)]
    run: super::RunFlags,
    /// Write the prompts' token ids here (JSON) for benches/generate_peer.py.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Layouts {
    Saved,
    Built,
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
    cpu: String,
    isa: String,
    threads: usize,
    ctx: usize,
    batch: usize,
    layouts: Layouts,
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

pub fn run(args: GenerateArgs) -> Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.decode > 0,
        "--batch and --decode must be at least 1"
    );
    let threads = args.run.threads()?;
    let file = resolve_generator(&args.model)?;
    let (name, path) = (file.model.id, file.path);
    let cfg = GeneratorConfig {
        max_context: args.ctx,
        layouts: match args.layouts {
            Layouts::Saved => layout_store(),
            Layouts::Built => None,
        },
        ..GeneratorConfig::default()
    };
    let loading = || format!("loading {}", path.display());
    if let Some(store) = &cfg.layouts {
        if !store.holds(&path, docent_kernels::Isa::detect()) {
            eprintln!(
                "saving the weight layouts in {} first",
                store.dir().display()
            );
            drop(Generator::load(&path, cfg.clone()).with_context(loading)?);
            // The peak to report is the timed load's: reset the kernel's
            // high-water mark (Linux 4.0 and later; elsewhere it stays).
            let _ = std::fs::write("/proc/self/clear_refs", "5");
        }
    }
    let rss_before = rss_mb();
    let t = Instant::now();
    let mut generator = Generator::load(&path, cfg).with_context(loading)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_after = rss_mb();
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
        cpu: docent_kernels::cpu_name(),
        isa: docent_kernels::Isa::detect().name().to_string(),
        threads,
        ctx: context,
        batch: args.batch,
        layouts: args.layouts,
        load_ms,
        rss_before_load_mb: rss_before,
        rss_after_load_mb: rss_after,
        peak_rss_mb: peak_rss_mb(),
        runs,
    };
    if args.run.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} ({}, {} kernels on {}, {} threads, ctx {}, batch {})",
        report.model,
        report.architecture,
        report.isa,
        report.cpu,
        threads,
        report.ctx,
        report.batch
    );
    println!(
        "load {:.0} ms (layouts {}); memory {:.0} MB before load, {:.0} MB after, {:.0} MB peak",
        load_ms,
        match args.layouts {
            Layouts::Saved => "read as saved",
            Layouts::Built => "built",
        },
        rss_before,
        rss_after,
        report.peak_rss_mb
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
