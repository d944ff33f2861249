//! What an answer is asked to be, and what it is: its settings, the events
//! it streams, its citations and the record of how it came about.

use docent_generate::{PromptTemplate, SamplerConfig, Source, StopReason};
use docent_index::Hit;
use serde::{Deserialize, Serialize};

use crate::grounding::SentenceSupport;
use crate::retrieve::RetrieveConfig;
use crate::rewrite::QueryRewrite;
use crate::trace::Trace;
use crate::RagError;

/// Chunks given to the model.
pub const DEFAULT_K: usize = 2;
/// The longest answer, in tokens.
pub const DEFAULT_MAX_TOKENS: usize = 256;
/// The longest prompt, in the model's tokens, beyond which lower-ranked
/// sources are left out (the best one always goes in, up to the context).
/// Reading the prompt is most of the time to the first token: 400 tokens
/// take Qwen2.5-Coder 1.5B about 2 s on two cores.
pub const DEFAULT_MAX_PROMPT_TOKENS: usize = 400;

/// What the answer says when the documents do not hold it, in the
/// question's language.
pub fn no_answer_text(question: &str) -> &'static str {
    docent_generate::prompt::no_answer(docent_generate::prompt::question_language(question))
}

pub use docent_generate::prompt::is_decline;

/// How an answer is made.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerConfig {
    pub retrieve: RetrieveConfig,
    /// When no chunk is this similar to the question, the answer is
    /// declined without running the model; otherwise the model gets the top
    /// k. `None`
    /// is the threshold calibrated for the index's encoder
    /// ([`docent_core::RetrievalSettings::min_score`]).
    pub min_score: Option<f32>,
    /// The longest answer, in tokens.
    pub max_tokens: usize,
    /// The longest prompt: sources are fitted to it as `source_fit` says,
    /// though the best source always goes in if the context holds it.
    pub max_prompt_tokens: usize,
    /// What is done with sources too long for their share of the prompt.
    pub source_fit: SourceFit,
    pub sampler: SamplerConfig,
    pub template: PromptTemplate,
    pub grounding: GroundingConfig,
    /// Before it answers, the model is asked whether its sources answer
    /// the question (the template's `check`); when its probability of
    /// "yes" is below this, the answer is declined. 0 asks nothing; `None`
    /// is the threshold calibrated for the model
    /// ([`crate::models::min_answerable`]).
    pub min_answerable: Option<f32>,
    /// Once it has answered, the model is asked whether its sources state
    /// that answer (the template's `confirm`); when its probability of
    /// "yes" is below this, the answer is declined. 0 asks nothing; `None`
    /// is the threshold calibrated for the model
    /// ([`crate::models::min_confirmed`]).
    pub min_confirmed: Option<f32>,
    /// Whether a follow-up question is made standalone before retrieval.
    pub rewrite: QueryRewrite,
    /// Whether a question is translated into the documents' other
    /// language when its sources are all in that language, or when those
    /// in its own do not answer it.
    pub translate: QueryTranslation,
}

/// When the model translates the question into the documents' other
/// language (Korean for an English question, English for a Korean one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryTranslation {
    /// Never: the model reads sources in another language with the
    /// question as asked and answers in the question's language, and the
    /// encoder vouches for sentences across languages
    /// ([`crate::crosslingual`]).
    Off,
    /// The default, with the template's `translate`:
    ///
    /// * **Searched again.** When no chunk passes the retrieval gate (but
    ///   the closest is near it) or the model says its sources do not
    ///   answer, and the index holds text in the other language, the
    ///   translation is searched; its sources are used if one in that
    ///   language passes the gate.
    /// * **Read in the sources' language.** When every source given to
    ///   the model is in the other language, it answers the translated
    ///   question in theirs, the grounding check compares words with
    ///   words, and each sentence of the checked answer is translated
    ///   into the question's language, its marks and support kept.
    ///
    /// On questions written by hand about facts that `corpus/` states only
    /// in the other language, 3 of 12 answered right against none
    /// (docs/benchmarks.md, "Questions in one language about documents in
    /// the other").
    #[default]
    Auto,
}

/// How the sources are fitted to [`AnswerConfig::max_prompt_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFit {
    /// Each source gets an equal share of the room; a longer one is cut to
    /// the run of its sentences most about the question
    /// ([`crate::excerpt`]). On the shared sets it let the second source
    /// in more often but answered no better in English and worse in Korean
    /// (docs/benchmarks.md, "Sources cut to fit").
    Excerpt,
    /// Sources go in whole in rank order while they fit; the first that
    /// does not is cut to the room left ([`crate::excerpt::fill`]), if one
    /// of its sentences fits in it, and those after it are left out. The
    /// default: on the shared sets it answers more questions right than
    /// `Whole` in both languages (docs/benchmarks.md, "The room left
    /// filled").
    #[default]
    Fill,
    /// Sources go in whole; the lowest-ranked are left out until the rest
    /// fit (the best one always goes in).
    Whole,
}

/// What the grounding check does with an answer's sentences
/// ([`crate::grounding`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundingConfig {
    /// Sentences whose support is below this are unsupported.
    pub min_support: f32,
    /// Remove unsupported sentences from the answer, and decline when none
    /// is left.
    pub strict: bool,
}

impl Default for GroundingConfig {
    fn default() -> Self {
        GroundingConfig {
            min_support: crate::grounding::DEFAULT_MIN_SUPPORT,
            strict: false,
        }
    }
}

impl Default for AnswerConfig {
    fn default() -> Self {
        AnswerConfig {
            retrieve: RetrieveConfig {
                k: DEFAULT_K,
                ..RetrieveConfig::default()
            },
            min_score: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            max_prompt_tokens: DEFAULT_MAX_PROMPT_TOKENS,
            source_fit: SourceFit::default(),
            sampler: SamplerConfig::default(),
            template: PromptTemplate::default(),
            grounding: GroundingConfig::default(),
            min_answerable: None,
            min_confirmed: None,
            rewrite: QueryRewrite::default(),
            translate: QueryTranslation::default(),
        }
    }
}

impl AnswerConfig {
    pub fn validate(&self) -> Result<(), RagError> {
        self.retrieve.validate()?;
        if self.max_tokens == 0 {
            return Err(RagError::Config(
                "the answer's token limit must be at least 1".into(),
            ));
        }
        if let Some(m) = self.min_score.filter(|m| !(-1.0..=1.0).contains(m)) {
            return Err(RagError::Config(format!(
                "the minimum similarity {m} is not between -1 and 1"
            )));
        }
        if !(0.0..=1.0).contains(&self.grounding.min_support) {
            return Err(RagError::Config(format!(
                "the minimum support {} is not between 0 and 1",
                self.grounding.min_support
            )));
        }
        if let Some(m) = self.min_answerable.filter(|m| !(0.0..=1.0).contains(m)) {
            return Err(RagError::Config(format!(
                "the minimum probability that the sources answer, {m}, is not between 0 and 1"
            )));
        }
        if let Some(m) = self.min_confirmed.filter(|m| !(0.0..=1.0).contains(m)) {
            return Err(RagError::Config(format!(
                "the minimum probability that the sources state the answer, {m}, is not between 0 and 1"
            )));
        }
        self.sampler.validate()?;
        Ok(())
    }
}

/// Why an answer was declined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Abstention {
    /// No retrieved chunk was similar enough to the question; the model
    /// was not run.
    NoRelevantSource {
        best_similarity: f32,
        min_score: f32,
        /// The closest of the retrieved chunks in the other language than
        /// the question, and the threshold such a chunk had to reach
        /// ([`docent_core::RetrievalSettings::min_score_across`]), when the
        /// encoder has one and such a chunk was retrieved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        best_across: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_score_across: Option<f32>,
    },
    /// The model said that its sources do not hold the answer.
    ModelDeclined,
    /// Asked whether its sources answer the question, the model said no
    /// ([`AnswerConfig::min_answerable`]); it wrote no answer.
    NotAnswerable {
        /// Its probability of "yes".
        answerable: f32,
        min_answerable: f32,
    },
    /// Asked, once it had answered, whether its sources state that answer
    /// ([`AnswerConfig::min_confirmed`]), the model said no.
    NotConfirmed {
        /// Its probability of "yes".
        confirmed: f32,
        min_confirmed: f32,
    },
    /// No sentence of the answer is supported by its sources (see
    /// [`crate::grounding`]).
    Unsupported,
}

/// A source of an answer, numbered as the prompt numbers it (`[n]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub n: usize,
    pub chunk_id: u64,
    /// Relative to the indexed folder.
    pub path: String,
    /// 1-based line where the chunk starts (within its page for PDFs).
    /// When the source was cut to fit the prompt, the line its first kept
    /// sentence starts on.
    pub line: u32,
    pub page: Option<u32>,
    /// Titles of the enclosing headings, outermost first.
    pub heading: Vec<String>,
    /// The ranking score in the search mode used.
    pub score: f32,
    /// Cosine similarity of question and chunk (what the threshold compares).
    pub similarity: f32,
    /// What the model read: the chunk, or the part of it about the question
    /// ([`crate::excerpt`]).
    pub text: String,
}

impl Citation {
    pub(crate) fn from_hit(n: usize, h: &Hit) -> Citation {
        let c = &h.chunk.chunk;
        Citation {
            n,
            chunk_id: h.chunk.id,
            path: c.path.clone(),
            line: c.line,
            page: c.page,
            heading: c.heading_path.clone(),
            score: h.score,
            similarity: h.similarity,
            text: c.text.trim().to_string(),
        }
    }

    /// `path:line` (with the page for paged documents), relative to the
    /// indexed folder.
    pub fn location(&self) -> String {
        match self.page {
            Some(p) => format!("{}:{} (page {p})", self.path, self.line),
            None => format!("{}:{}", self.path, self.line),
        }
    }

    /// The location and the heading path, as prompts label sources.
    pub fn label(&self) -> String {
        if self.heading.is_empty() {
            self.location()
        } else {
            format!("{} — {}", self.location(), self.heading.join(" > "))
        }
    }

    /// The source as the prompt gives it, its wrapped lines joined
    /// ([`crate::reflow`]).
    pub(crate) fn source(&self) -> Source {
        Source {
            label: self.label(),
            text: crate::reflow::reflow(&self.text).text,
        }
    }
}

/// What an answer streams while it is made. The callback that receives
/// them returns [`std::ops::ControlFlow::Break`] to cancel: the answer
/// stops there (its stop reason is `cancelled`) and is returned as it is.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The sources given to the model, in prompt order. Sent again, with
    /// the prompt, when the model's check turned them down and the
    /// question translated found others ([`QueryTranslation`]): the later
    /// ones replace the earlier, and no text was sent between.
    Sources(&'a [Citation]),
    /// The prompt, ready to run.
    Prompt {
        tokens: usize,
        context: usize,
        sources_dropped: usize,
        turns_dropped: usize,
        text: &'a str,
    },
    /// The next piece of the answer's text.
    Text(&'a str),
    /// The end: why generation stopped (`None` when the model was not
    /// run), and whether the answer was declined.
    End {
        stop: Option<StopReason>,
        abstained: Option<&'a Abstention>,
    },
}

/// An answer, with its sources and the trace of how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    pub text: String,
    /// Why it was declined, if it was.
    pub abstained: Option<Abstention>,
    /// The sources the model was given.
    pub citations: Vec<Citation>,
    /// Sources left out to fit the context.
    pub sources_dropped: usize,
    /// The exact prompt the model ran on.
    pub prompt: Option<String>,
    pub stop: Option<StopReason>,
    /// Each sentence's support by the sources (empty when declined).
    pub support: Vec<SentenceSupport>,
    /// How it was made, timings included.
    pub trace: Trace,
}
