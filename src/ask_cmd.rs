//! `docent ask`: retrieve, then generate a grounded answer with sources.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use docent_generate::{
    build_prompt, GenerationConfig, Generator, GeneratorConfig, PromptTemplate, SamplerConfig,
    Source,
};
use docent_index::Hit;
use docent_models::{Manifest, ModelKind, ModelSpec, ModelStore};
use serde::Serialize;

use crate::search_cmd;

/// The language model `ask` uses unless told otherwise.
pub const DEFAULT_GENERATOR: &str = "smollm2-135m-instruct-q4_1";

/// Below this cosine similarity no retrieved chunk counts as relevant, and
/// `ask` answers that the documents do not hold the answer without running
/// the model. Calibrated with `scripts/calibrate_min_score.py` on the shared
/// SQuAD set: the highest threshold that still keeps 90% of answerable
/// questions (91%; it declines 87% of questions about articles not in the
/// index). The English encoder's scores carry no such signal for Korean
/// (see the README).
pub const DEFAULT_MIN_SCORE: f32 = 0.40;

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Index this folder first (only new and changed files are embedded).
    #[arg(long, value_name = "DIR")]
    pub docs: Option<PathBuf>,
    /// Language model: a name from `docent models list`, a Hugging Face
    /// `owner/repo:file.gguf[@revision]`, or the path of a .gguf file.
    #[arg(long, default_value = DEFAULT_GENERATOR)]
    pub model: String,
    /// How many chunks to retrieve.
    #[arg(short, default_value_t = 3)]
    pub k: usize,
    /// How chunks are ranked.
    #[arg(long, value_enum, default_value_t = search_cmd::Mode::Hybrid)]
    pub mode: search_cmd::Mode,
    /// Chunks whose cosine similarity to the question is below this are not
    /// used; if none reaches it, docent says the documents do not hold the
    /// answer.
    #[arg(long, default_value_t = DEFAULT_MIN_SCORE)]
    pub min_score: f32,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Context for prompt and answer together, in tokens (at most the
    /// model's own).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// 0 is greedy decoding (the default: grounded answers should not improvise).
    #[arg(long, default_value_t = SamplerConfig::default().temperature)]
    pub temperature: f64,
    #[arg(long, default_value_t = SamplerConfig::default().top_k)]
    pub top_k: usize,
    #[arg(long, default_value_t = SamplerConfig::default().top_p)]
    pub top_p: f64,
    /// 1.0 turns the repeat penalty off.
    #[arg(long, default_value_t = SamplerConfig::default().repeat_penalty)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = SamplerConfig::default().seed)]
    pub seed: u64,
    /// A TOML file with `system` and `user` Jinja templates replacing the
    /// built-in prompt; they see `question`, `language` and `sources`
    /// (each with `n`, `label`, `text`).
    #[arg(long, value_name = "FILE")]
    pub prompt_template: Option<PathBuf>,
    /// Print the exact prompt given to the model before the answer.
    #[arg(long)]
    pub show_prompt: bool,
    /// Print JSON (answer, sources with scores, timings) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SourceOut {
    n: usize,
    /// The ranking score in the --mode used.
    score: f32,
    /// Cosine similarity of question and chunk (what --min-score compares).
    similarity: f32,
    location: String,
    heading: Vec<String>,
}

#[derive(Serialize, Default)]
struct TimingsOut {
    retrieval_ms: f64,
    model_load_ms: f64,
    prompt_tokens: usize,
    prompt_ms: f64,
    prompt_tokens_per_s: f64,
    /// From the start of prompt processing to the first answer token.
    time_to_first_token_ms: f64,
    /// From the start of the process to the first answer token.
    time_to_first_token_from_start_ms: f64,
    decode_tokens: usize,
    decode_tokens_per_s: f64,
    total_ms: f64,
}

#[derive(Serialize)]
struct Output {
    question: String,
    model: String,
    /// True when no chunk was relevant enough and the model was not run.
    abstained: bool,
    answer: String,
    sources: Vec<SourceOut>,
    sources_dropped: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    stop: Option<docent_generate::StopReason>,
    timings: TimingsOut,
}

/// What `ask` says when the documents do not hold the answer.
pub const NO_ANSWER: &str = "The documents do not contain the answer to this question.";

/// Finds the GGUF file for `--model`, fetching it if needed.
pub fn resolve_model(name: &str) -> Result<(String, PathBuf)> {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "gguf") && !name.contains(':') {
        anyhow::ensure!(path.is_file(), "no model file at {}", path.display());
        return Ok((name.to_string(), path.to_path_buf()));
    }
    let spec = if let Some(spec) = Manifest::builtin().get(name) {
        anyhow::ensure!(
            spec.kind == ModelKind::Generator,
            "{name} is a sentence encoder, not a language model"
        );
        spec.clone()
    } else if let Some((repo, file)) = name.split_once(':') {
        let (file, revision) = file.split_once('@').unwrap_or((file, "main"));
        anyhow::ensure!(
            repo.split('/').count() == 2 && file.ends_with(".gguf"),
            "unknown model {name:?}: give a name from `docent models list`, \
             owner/repo:file.gguf, or a .gguf file"
        );
        ModelSpec::adhoc_generator(repo, revision, file)
    } else {
        anyhow::bail!(
            "unknown model {name:?}: give a name from `docent models list`, \
             owner/repo:file.gguf, or a .gguf file"
        );
    };
    let local = ModelStore::from_env().ensure(&spec)?;
    let file = local
        .files
        .iter()
        .find(|(p, _)| p.ends_with(".gguf"))
        .map(|(_, l)| l.clone())
        .with_context(|| format!("{} has no .gguf file", spec.name))?;
    Ok((spec.name.clone(), file))
}

/// A loaded language model ready to answer from sources.
pub struct Answerer {
    pub generator: Generator,
    pub name: String,
    max_tokens: usize,
}

impl Answerer {
    /// Loads `model` (as `--model` names it) with a context of at most `ctx`
    /// tokens, keeping `max_tokens` of it for the answer.
    pub fn load(model: &str, ctx: usize, max_tokens: usize) -> Result<Self> {
        anyhow::ensure!(max_tokens > 0, "--max-tokens must be at least 1");
        let (name, path) = resolve_model(model)?;
        let generator = Generator::load(
            &path,
            GeneratorConfig {
                max_context: ctx,
                ..GeneratorConfig::default()
            },
        )
        .with_context(|| format!("loading {name}"))?;
        let context = generator.context();
        anyhow::ensure!(
            max_tokens < context,
            "--max-tokens {max_tokens} leaves no room for the prompt in the {context}-token context; \
             lower it or raise --ctx"
        );
        Ok(Self {
            generator,
            name,
            max_tokens,
        })
    }

    /// The prompt for `question` over `sources` (best first), fitted to the
    /// context.
    pub fn prompt(
        &self,
        template: &PromptTemplate,
        question: &str,
        sources: &[Source],
    ) -> Result<docent_generate::Prompt> {
        let g = &self.generator;
        Ok(build_prompt(
            template,
            g.chat_template(),
            question,
            sources,
            g.context() - self.max_tokens,
            &|text| g.tokenize_prompt(text),
        )?)
    }

    pub fn generate(
        &mut self,
        prompt: &docent_generate::Prompt,
        sampler: &SamplerConfig,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<docent_generate::Generation> {
        let cfg = GenerationConfig {
            max_tokens: self.max_tokens,
            sampler: sampler.clone(),
            stop_strings: self.generator.default_stop_strings(),
        };
        Ok(self.generator.generate(&prompt.tokens, &cfg, on_text)?)
    }
}

/// Does an answer say that the documents do not hold it?
pub fn is_decline(answer: &str) -> bool {
    let a = answer.to_lowercase();
    a.contains("do not contain the answer") || a.contains("does not contain the answer")
}

pub fn read_template(path: &Path) -> Result<PromptTemplate> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "{}: a prompt template is a TOML file with `system` and `user` strings",
            path.display()
        )
    })
}

pub fn label(location: &str, heading: &[String]) -> String {
    if heading.is_empty() {
        location.to_string()
    } else {
        format!("{location} — {}", heading.join(" > "))
    }
}

pub fn run(index_dir: &Path, args: AskArgs, started: Instant) -> Result<()> {
    let template = match &args.prompt_template {
        Some(p) => read_template(p)?,
        None => PromptTemplate::default(),
    };
    let sampler = SamplerConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repeat_penalty: args.repeat_penalty,
        seed: args.seed,
        ..SamplerConfig::default()
    };
    sampler.validate()?;
    anyhow::ensure!(args.k > 0, "-k must be at least 1");

    // Retrieve.
    let (encoder, index) = search_cmd::open(index_dir, args.docs.as_deref(), None, args.json)?;
    let t = Instant::now();
    let q = encoder
        .embed(&[args.question.as_str()])?
        .pop()
        .expect("one vector per text");
    let hits: Vec<Hit> = index.search_mode(
        &args.question,
        &q,
        args.k,
        index.meta().hnsw.ef_search,
        args.mode.into(),
    )?;
    let retrieval_ms = t.elapsed().as_secs_f64() * 1e3;
    let best = hits.iter().map(|h| h.similarity).fold(0.0f32, f32::max);
    let relevant: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.similarity >= args.min_score)
        .collect();
    let mut timings = TimingsOut {
        retrieval_ms,
        ..TimingsOut::default()
    };

    if relevant.is_empty() {
        if args.json {
            let out = Output {
                question: args.question.clone(),
                model: args.model.clone(),
                abstained: true,
                answer: NO_ANSWER.to_string(),
                sources: Vec::new(),
                sources_dropped: 0,
                prompt: None,
                stop: None,
                timings: TimingsOut {
                    total_ms: started.elapsed().as_secs_f64() * 1e3,
                    ..timings
                },
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{NO_ANSWER}");
            eprintln!(
                "(the closest passage scored {best:.3}, below --min-score {:.2}; the model was not run)",
                args.min_score
            );
        }
        return Ok(());
    }

    // Generate.
    let mut answerer = Answerer::load(&args.model, args.ctx, args.max_tokens)?;
    timings.model_load_ms = answerer.generator.load_ms();
    let located: Vec<(String, &Hit)> = relevant
        .iter()
        .map(|h| (search_cmd::location(&index, h), *h))
        .collect();
    let sources: Vec<Source> = located
        .iter()
        .map(|(loc, h)| Source {
            label: label(loc, &h.chunk.chunk.heading_path),
            text: h.chunk.chunk.text.trim().to_string(),
        })
        .collect();
    let prompt = answerer.prompt(&template, &args.question, &sources)?;
    let context = answerer.generator.context();
    if prompt.sources_dropped > 0 && !args.json {
        eprintln!(
            "note: {} lower-ranked passage(s) left out to fit the {context}-token context",
            prompt.sources_dropped
        );
    }
    if args.show_prompt && !args.json {
        println!("──── prompt ({} tokens) ────", prompt.tokens.len());
        println!("{}", prompt.text);
        println!("──── answer ────");
    }
    let mut stdout = std::io::stdout().lock();
    let mut first_from_start = None;
    let json = args.json;
    let model_name = answerer.name.clone();
    let generation = answerer.generate(&prompt, &sampler, &mut |piece| {
        first_from_start.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
        if !json {
            // A closed pipe stops generation rather than failing it.
            return write!(stdout, "{piece}")
                .and_then(|_| stdout.flush())
                .is_ok();
        }
        true
    })?;
    let t = &generation.timings;
    timings.prompt_tokens = t.prompt_tokens;
    timings.prompt_ms = t.prompt_ms;
    timings.prompt_tokens_per_s = t.prompt_tokens_per_s();
    timings.time_to_first_token_ms = t.first_token_ms;
    timings.time_to_first_token_from_start_ms = first_from_start.unwrap_or_default();
    timings.decode_tokens = t.decode_tokens;
    timings.decode_tokens_per_s = t.decode_tokens_per_s();
    timings.total_ms = started.elapsed().as_secs_f64() * 1e3;

    let used = &located[..prompt.sources_used];
    if json {
        let out = Output {
            question: args.question.clone(),
            model: model_name,
            abstained: false,
            answer: generation.text.trim().to_string(),
            sources: used
                .iter()
                .enumerate()
                .map(|(i, (loc, h))| SourceOut {
                    n: i + 1,
                    score: h.score,
                    similarity: h.similarity,
                    location: loc.clone(),
                    heading: h.chunk.chunk.heading_path.clone(),
                })
                .collect(),
            sources_dropped: prompt.sources_dropped,
            prompt: args.show_prompt.then(|| prompt.text.clone()),
            stop: Some(generation.stop),
            timings,
        };
        drop(stdout);
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    writeln!(stdout)?;
    if generation.text.trim().is_empty() {
        writeln!(stdout, "(the model gave no answer)")?;
    }
    writeln!(stdout, "\nSources:")?;
    for (i, (loc, h)) in used.iter().enumerate() {
        writeln!(
            stdout,
            "[{}] {}",
            i + 1,
            label(loc, &h.chunk.chunk.heading_path)
        )?;
    }
    Ok(())
}
