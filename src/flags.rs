//! Flag groups shared by several commands, each defined once and turned
//! into the library's configuration struct. One spelling per concept:
//! `--encoder` is the sentence encoder, `--model` the language model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use docent_core::ChunkConfig;
use docent_ingest::{LoadOptions, WalkOptions};
use docent_rag::answer::{DEFAULT_K, DEFAULT_MAX_PROMPT_TOKENS, DEFAULT_MAX_TOKENS};
use docent_rag::{
    AnswerConfig, GeneratorChoice, GroundingConfig, IndexConfig, PromptTemplate, QueryRewrite,
    QueryTranslation, RetrieveConfig, SamplerConfig, SearchMode, SourceFit, DEFAULT_GENERATOR,
};
use serde::Serialize;

/// `--mode`: how chunks are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Embedding similarity through the HNSW graph.
    Dense,
    /// BM25 over words and Hangul/CJK character bigrams.
    Lexical,
    /// Both, fused (weights chosen from the query's script).
    Hybrid,
}

impl From<Mode> for SearchMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Dense => SearchMode::Dense,
            Mode::Lexical => SearchMode::Lexical,
            Mode::Hybrid => SearchMode::Hybrid,
        }
    }
}

/// The sentence encoder.
#[derive(Debug, Args, Clone, Default)]
pub struct EncoderFlags {
    /// Sentence encoder: a name from `docent models list`, a Hugging Face
    /// id (`owner/name[@revision]`), or a folder holding one. By default,
    /// the one the index was built with (else the manifest's default).
    #[arg(long, value_name = "ENCODER")]
    pub encoder: Option<String>,
}

impl EncoderFlags {
    pub fn name(&self) -> Option<&str> {
        self.encoder.as_deref()
    }
}

/// The sentence encoder, for the commands (`index`, `search`) where
/// `--model` used to name it and still does, with a notice.
#[derive(Debug, Args, Clone, Default)]
pub struct EncoderFlagsWithLegacy {
    #[command(flatten)]
    pub current: EncoderFlags,
    /// Deprecated spelling of --encoder.
    #[arg(long = "model", value_name = "ENCODER", hide = true)]
    pub legacy_model: Option<String>,
}

impl EncoderFlagsWithLegacy {
    /// The encoder named, warning when the old `--model` spelling was used.
    pub fn name(&self) -> Result<Option<&str>> {
        match (&self.current.encoder, &self.legacy_model) {
            (Some(_), Some(_)) => {
                anyhow::bail!("give the encoder once, with --encoder (--model is its old name)")
            }
            (None, Some(m)) => {
                eprintln!(
                    "warning: `--model` for the sentence encoder is deprecated; use `--encoder {m}` \
                     (`--model` names the language model of `ask` and `eval`)"
                );
                Ok(Some(m))
            }
            (e, None) => Ok(e.as_deref()),
        }
    }
}

/// How `--docs` and `docent index` read and cut a folder.
#[derive(Debug, Args, Clone)]
pub struct IndexFlags {
    /// Build from scratch, with --encoder or else the default encoder (not
    /// necessarily the one the existing index was built with).
    #[arg(long)]
    pub rebuild: bool,
    /// Most tokens in a chunk (capped by the encoder's limit).
    #[arg(long, default_value_t = ChunkConfig::default().max_tokens)]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    #[arg(long, default_value_t = ChunkConfig::default().overlap_tokens)]
    pub overlap: usize,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = IndexConfig::default().batch_size)]
    pub batch_size: usize,
    /// Include hidden files and folders.
    #[arg(long)]
    pub hidden: bool,
    /// Do not honour .gitignore, .ignore and .docentignore files.
    #[arg(long)]
    pub no_ignore: bool,
    /// Skip files larger than this many MiB.
    #[arg(long, default_value_t = LoadOptions::default().max_file_bytes >> 20)]
    pub max_file_mb: u64,
    /// Skip PDFs with more pages than this.
    #[arg(long, default_value_t = LoadOptions::default().max_pdf_pages)]
    pub max_pdf_pages: usize,
}

impl IndexFlags {
    pub fn config(&self, folder: Option<&Path>) -> IndexConfig {
        IndexConfig {
            folder: folder.map(Path::to_path_buf),
            rebuild: self.rebuild,
            chunking: ChunkConfig {
                max_tokens: self.chunk_tokens,
                overlap_tokens: self.overlap,
            },
            batch_size: self.batch_size,
            walk: WalkOptions {
                hidden: self.hidden,
                no_ignore: self.no_ignore,
            },
            load: LoadOptions {
                max_file_bytes: self.max_file_mb.saturating_mul(1 << 20),
                max_pdf_pages: self.max_pdf_pages,
            },
        }
    }
}

/// How hybrid search orders its best candidates: `search`, `ask` and `eval`.
#[derive(Debug, Args, Clone)]
pub struct RankFlags {
    /// Hybrid search: how much the share of the question that a chunk's
    /// best sentence holds adds to its fused score, for the best ten
    /// fused chunks. 0 ranks by the fused score alone.
    #[arg(long, allow_hyphen_values = true, default_value_t = RetrieveConfig::default().sentence_weight)]
    pub sentence_weight: f32,
}

/// The language model and how it answers: `ask` and `eval --generate`.
#[derive(Debug, Args, Clone)]
pub struct AnswerFlags {
    /// Language model: a name from `docent models list`, a Hugging Face
    /// `owner/repo:file.gguf[@revision]`, or the path of a .gguf file.
    #[arg(long, default_value = DEFAULT_GENERATOR)]
    pub model: String,
    /// How many chunks to retrieve for the model.
    #[arg(short, default_value_t = DEFAULT_K)]
    pub k: usize,
    #[command(flatten)]
    pub rank: RankFlags,
    /// If no chunk's cosine similarity to the question reaches this, docent
    /// says the documents do not hold the answer without running the model.
    /// By default, the threshold calibrated for the index's encoder
    /// (all-MiniLM-L6-v2 0.40, multilingual-e5-small: see `docent models list`).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// Longest prompt, in the model's tokens (see `--source-fit`; the best
    /// chunk always goes in). Reading the prompt is most of the wait for
    /// the first word.
    #[arg(long, default_value_t = DEFAULT_MAX_PROMPT_TOKENS)]
    pub max_prompt_tokens: usize,
    /// When the chunks do not all fit the prompt whole: `fill` puts them in
    /// whole in rank order and cuts the first that does not fit to its
    /// sentences most about the question, in the room left; `whole` leaves
    /// the lowest-ranked out; `excerpt` gives each an equal share and cuts a
    /// longer one to its sentences most about the question.
    #[arg(long, value_enum, default_value_t = Fit::Fill)]
    pub source_fit: Fit,
    /// Context for prompt and answer together, in tokens (at most the
    /// model's own).
    #[arg(long, default_value_t = GeneratorChoice::default().context)]
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
    /// built-in prompt (models/prompts/ holds the built-in ones); they see `question`, `language`, `no_answer` (the
    /// decline sentence in the question's language) and `sources` (each
    /// with `n`, `label`, `text`).
    #[arg(long, value_name = "FILE")]
    pub prompt_template: Option<PathBuf>,
    /// Sentences of the answer whose content its sources hold less than
    /// this share of (0 to 1) are marked unsupported.
    #[arg(long, default_value_t = GroundingConfig::default().min_support)]
    pub min_support: f32,
    /// Remove unsupported sentences from the answer, and decline when none
    /// is left.
    #[arg(long)]
    pub strict: bool,
    /// Before answering, the model is asked whether the sources answer the
    /// question; when its probability of yes is below this (0 to 1),
    /// docent declines. 0 asks nothing. By default, the threshold
    /// calibrated for the model in models/manifest.toml, or none.
    #[arg(long)]
    pub min_answerable: Option<f32>,
    /// Once it has answered, the model is asked whether the sources state
    /// its answer; when its probability of yes is below this (0 to 1),
    /// docent declines the answer. 0 asks nothing. By default, the
    /// threshold calibrated for the model in models/manifest.toml, or none.
    #[arg(long)]
    pub min_confirmed: Option<f32>,
    /// In a conversation, how a follow-up question ("why is it faster?")
    /// is made standalone before retrieval.
    #[arg(long, value_enum, default_value_t = Rewrite::FollowUp)]
    pub rewrite: Rewrite,
    /// Translate the question into the documents' other language (Korean
    /// or English) when its sources are all in that language, so the model
    /// reads and answers in theirs and the answer is translated back; and
    /// when nothing in the question's language answers it, to search again.
    #[arg(long, value_enum, default_value_t = Translate::Auto)]
    pub translate: Translate,
}

/// `--translate`: questions across the documents' two languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Translate {
    /// Read and search with the question as asked only.
    Off,
    /// Translate when the sources are all in the other language, or when
    /// nothing in the question's language answers it.
    Auto,
}

impl From<Translate> for QueryTranslation {
    fn from(t: Translate) -> Self {
        match t {
            Translate::Off => QueryTranslation::Off,
            Translate::Auto => QueryTranslation::Auto,
        }
    }
}

/// `--source-fit`: what is done with chunks too long for the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fit {
    /// Cut each to its share, keeping the sentences most about the question.
    Excerpt,
    /// Whole while they fit; the next is cut to the room left, keeping its
    /// sentences most about the question.
    Fill,
    /// Leave the lowest-ranked out.
    Whole,
}

impl From<Fit> for SourceFit {
    fn from(f: Fit) -> Self {
        match f {
            Fit::Excerpt => SourceFit::Excerpt,
            Fit::Fill => SourceFit::Fill,
            Fit::Whole => SourceFit::Whole,
        }
    }
}

/// `--rewrite`: history-aware retrieval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rewrite {
    /// Retrieve with the question as asked.
    Off,
    /// Put the question a follow-up refers back to in front of it.
    FollowUp,
    /// Put the previous question in front of every later one.
    Always,
}

impl From<Rewrite> for QueryRewrite {
    fn from(r: Rewrite) -> Self {
        match r {
            Rewrite::Off => QueryRewrite::Off,
            Rewrite::FollowUp => QueryRewrite::FollowUp,
            Rewrite::Always => QueryRewrite::Always,
        }
    }
}

impl AnswerFlags {
    /// The language model, loaded on the first answer that needs it.
    pub fn generator(&self) -> GeneratorChoice {
        GeneratorChoice {
            model: self.model.clone(),
            context: self.ctx,
            ..GeneratorChoice::default()
        }
    }

    /// The answer settings, ranking chunks in `mode`.
    pub fn config(&self, mode: SearchMode) -> Result<AnswerConfig> {
        let template = match &self.prompt_template {
            Some(p) => read_template(p)?,
            None => docent_rag::models::prompt_template(&self.model),
        };
        Ok(AnswerConfig {
            retrieve: RetrieveConfig {
                k: self.k,
                mode,
                ef: None,
                sentence_weight: self.rank.sentence_weight,
            },
            min_score: self.min_score,
            max_tokens: self.max_tokens,
            max_prompt_tokens: self.max_prompt_tokens,
            source_fit: self.source_fit.into(),
            sampler: SamplerConfig {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                repeat_penalty: self.repeat_penalty,
                seed: self.seed,
                ..SamplerConfig::default()
            },
            template,
            grounding: GroundingConfig {
                min_support: self.min_support,
                strict: self.strict,
            },
            min_answerable: self.min_answerable,
            min_confirmed: self.min_confirmed,
            rewrite: self.rewrite.into(),
            translate: self.translate.into(),
        })
    }
}

fn read_template(path: &Path) -> Result<PromptTemplate> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PromptTemplate::from_toml(&text).with_context(|| path.display().to_string())
}

/// How much history the journal (traces, ratings, conversations beside the
/// index) keeps.
#[derive(Debug, Args, Clone)]
pub struct JournalFlags {
    /// The most answer traces kept; the oldest go first.
    #[arg(long, default_value_t = docent_journal::Retention::default().max_traces)]
    pub keep_traces: usize,
    /// Traces older than this many days are removed (0 keeps them until
    /// --keep-traces removes them).
    #[arg(long, default_value_t = docent_journal::Retention::default().max_age_days.unwrap_or(0))]
    pub keep_days: u64,
}

impl JournalFlags {
    pub fn open(&self, index_dir: &Path) -> Result<docent_journal::Journal> {
        Ok(docent_journal::Journal::open_beside(
            index_dir,
            docent_journal::Retention {
                max_traces: self.keep_traces,
                max_age_days: (self.keep_days > 0).then_some(self.keep_days),
            },
        )?)
    }
}
