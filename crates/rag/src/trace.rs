//! The trace of an answer: what was asked, which models and index answered,
//! how long each stage took, which chunks were candidates and which were
//! kept, what the prompt held and what came out. It is what LangSmith
//! records for a run of a chain, made by the engine for every answer so
//! that every front end can show it and a trace store can keep it.
//!
//! A trace is plain data (`serde` both ways): the CLI prints it with
//! `ask --json`, and a store can write and read it back unchanged.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use docent_generate::{SamplerConfig, StopReason};
use serde::{Deserialize, Serialize};

use crate::answer::Abstention;
use crate::models::ModelRef;
use crate::retrieve::{Candidate, SearchMode};

/// The stages of an answer, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The question through the sentence encoder.
    QueryEmbedding,
    /// The HNSW graph.
    DenseSearch,
    /// The graph searched again with the question moved towards the other
    /// language, for an index that holds both ([`crate::shift`]).
    AcrossSearch,
    /// BM25 over the lexical table.
    LexicalSearch,
    /// Dense and lexical lists merged into one ranking, and its best few
    /// ranked again by their best sentence ([`crate::proximity`]).
    Fusion,
    /// Reading the ranked chunks and their similarity from the store.
    Fetch,
    /// Chunks below the similarity threshold left out.
    Filter,
    /// Loading the language model (only the first answer of a process).
    ModelLoad,
    /// The question translated into the documents' other language and
    /// searched again ([`crate::answer::QueryTranslation`]).
    Translation,
    /// The prompt rendered and fitted to the context.
    Prompt,
    /// The prompt run through the model.
    PromptProcessing,
    /// The answer's tokens, one at a time.
    Decoding,
    /// The model asked again after an answer that only repeated the
    /// question's words ([`crate::echo`]).
    AskedAgain,
    /// The model asked whether its sources state the answer it wrote.
    Confirm,
    /// The answer's sentences checked against its sources, with the
    /// encoder for those in another language than their source
    /// ([`crate::crosslingual`]).
    Grounding,
}

/// One stage's span, in milliseconds from the start of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub stage: Stage,
    pub start_ms: f64,
    pub duration_ms: f64,
}

/// Records spans against one starting instant.
#[derive(Debug, Clone)]
pub struct Spans {
    t0: Instant,
    pub list: Vec<Span>,
}

impl Spans {
    pub fn start() -> Spans {
        Spans {
            t0: Instant::now(),
            list: Vec::new(),
        }
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1e3
    }

    /// Runs `f` as the span of `stage`.
    pub fn time<T>(&mut self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let start_ms = self.now_ms();
        let out = f();
        self.push(stage, start_ms, self.now_ms() - start_ms);
        out
    }

    pub fn push(&mut self, stage: Stage, start_ms: f64, duration_ms: f64) {
        self.list.push(Span {
            stage,
            start_ms,
            duration_ms,
        });
    }
}

/// The index an answer was retrieved from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRef {
    pub root: String,
    pub generation: String,
    pub chunks: usize,
}

/// The settings an answer ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSettings {
    pub k: usize,
    pub mode: SearchMode,
    pub ef: usize,
    pub min_score: f32,
    /// The threshold for a chunk in another script than the question
    /// ([`docent_core::RetrievalSettings::min_score_across`]), when it
    /// applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score_across: Option<f32>,
    pub max_tokens: usize,
    pub context: Option<usize>,
    pub sampler: SamplerConfig,
}

/// The prompt as the model got it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptTrace {
    pub tokens: usize,
    /// Earlier turns of the conversation it holds.
    pub history_turns: usize,
    /// The chunks it holds, in source order (`[1]` first).
    pub source_ids: Vec<u64>,
    /// Chunks left out, lowest-ranked first, so that it fits the context.
    pub dropped_ids: Vec<u64>,
    /// Earlier turns left out to fit, oldest first.
    pub dropped_turns: usize,
}

/// Time spent on an answer, and its token counts and rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerTimings {
    /// Embedding the question, searching and reading the chunks.
    pub retrieval_ms: f64,
    /// Loading the model (0 when it was already loaded, or not needed).
    pub model_load_ms: f64,
    pub prompt_tokens: usize,
    /// Of `prompt_tokens`, those the model's cache kept from the answer
    /// before (the system message, at least): not read again.
    #[serde(default)]
    pub cached_tokens: usize,
    pub prompt_ms: f64,
    /// Prompt tokens read per second, the cached ones not counted.
    pub prompt_tokens_per_s: f64,
    /// From the start of prompt processing to the first answer token.
    pub time_to_first_token_ms: f64,
    pub decode_tokens: usize,
    pub decode_tokens_per_s: f64,
    pub total_ms: f64,
}

/// Everything the engine did for one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Unique within a machine: 16 hex digits of wall-clock nanoseconds
    /// and 8 of a process-wide sequence number mixed with the process id.
    pub id: String,
    /// Unix time of the start, in milliseconds.
    pub started_at_ms: u64,
    pub question: String,
    pub history_turns: usize,
    /// The standalone query retrieval ran, when the question was a
    /// follow-up rewritten with the conversation ([`crate::rewrite`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_query: Option<String>,
    /// The question as the model translated it into the documents' other
    /// language, when nothing in its own answered it
    /// ([`crate::answer::QueryTranslation`]); `retrieval_query` is the
    /// translation when its sources were the ones used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translated_query: Option<String>,
    /// The answer as the model wrote it from sources found with
    /// `translated_query`, in their language, before its sentences were
    /// translated into the question's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translated_answer_from: Option<String>,
    pub encoder: ModelRef,
    /// `None` when the model was not needed (the answer was declined
    /// before generation).
    pub model: Option<ModelRef>,
    pub index: IndexRef,
    pub settings: TraceSettings,
    /// In the order they ran.
    pub spans: Vec<Span>,
    /// Every chunk a search returned, with its scores; `kept` marks those
    /// given to the model.
    pub candidates: Vec<Candidate>,
    pub prompt: Option<PromptTrace>,
    pub answer: String,
    /// What the model wrote, when docent declined it afterwards (the
    /// model's own decline, an answer its sources do not hold, one it did
    /// not confirm); `answer` is then the decline sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined_text: Option<String>,
    /// The model's first answer, when it only repeated the question's
    /// words and the model, asked again, answered otherwise; `answer` is
    /// the second ([`crate::echo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_again: Option<String>,
    /// The grounding check's reading of `declined_text`, sentence by
    /// sentence, when it was checked before it was declined (what was
    /// withdrawn as unsupported says here why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declined_support: Vec<crate::grounding::SentenceSupport>,
    /// Each sentence's support by the sources, and the source that
    /// supports it best.
    #[serde(default)]
    pub support: Vec<crate::grounding::SentenceSupport>,
    /// The sources the model was given, numbered as the answer cites them.
    #[serde(default)]
    pub sources: Vec<SourceRef>,
    pub abstained: Option<Abstention>,
    /// The model's probability that its sources answer the question, when
    /// it was asked ([`crate::AnswerConfig::min_answerable`]).
    #[serde(default)]
    pub answerable: Option<f32>,
    /// The model's probability that its sources state the answer it wrote,
    /// when it was asked ([`crate::AnswerConfig::min_confirmed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<f32>,
    /// How sure the model was of its answer: the geometric mean of its
    /// probability for each token it wrote, and the least of them (`None`
    /// when it wrote nothing).
    #[serde(default)]
    pub confidence: Option<Confidence>,
    pub stop: Option<StopReason>,
    /// Durations, token counts and rates.
    pub timings: AnswerTimings,
}

/// How sure a model was of the tokens it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// `exp` of the mean log-probability.
    pub mean: f32,
    pub min: f32,
}

impl Confidence {
    /// From the probabilities of the tokens written; `None` for none.
    pub fn of(probs: &[f32]) -> Option<Confidence> {
        if probs.is_empty() {
            return None;
        }
        let mean_ln = probs.iter().map(|p| p.max(1e-30).ln()).sum::<f32>() / probs.len() as f32;
        Some(Confidence {
            mean: mean_ln.exp(),
            min: probs.iter().copied().fold(1.0, f32::min),
        })
    }
}

/// A source as a trace keeps it: where it is, not its text (the index
/// has that, by chunk id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    pub n: usize,
    pub chunk_id: u64,
    pub path: String,
    pub line: u32,
}

impl From<&crate::answer::Citation> for SourceRef {
    fn from(c: &crate::answer::Citation) -> Self {
        SourceRef {
            n: c.n,
            chunk_id: c.chunk_id,
            path: c.path.clone(),
            line: c.line,
        }
    }
}

impl Trace {
    /// The file names (not paths) of the sources the answer cites with
    /// `[n]`, or of all its sources when it cites none.
    pub fn cited_files(&self) -> Vec<String> {
        let cited: Vec<&SourceRef> = self
            .sources
            .iter()
            .filter(|s| self.answer.contains(&format!("[{}]", s.n)))
            .collect();
        let pick = if cited.is_empty() {
            self.sources.iter().collect()
        } else {
            cited
        };
        let mut files: Vec<String> = pick
            .into_iter()
            .map(|s| s.path.rsplit('/').next().unwrap_or(&s.path).to_string())
            .collect();
        files.dedup();
        files
    }
}

/// A new trace id (see [`Trace::id`]).
pub fn new_trace_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) ^ std::process::id().rotate_left(16);
    format!("{nanos:016x}{seq:08x}")
}

/// Unix time now, in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Confidence;

    #[test]
    fn confidence_is_the_geometric_mean_and_the_least_token_probability() {
        assert_eq!(Confidence::of(&[]), None);
        let c = Confidence::of(&[1.0, 0.25]).unwrap();
        assert!((c.mean - 0.5).abs() < 1e-6, "{c:?}");
        assert_eq!(c.min, 0.25);
        // A zero probability does not make the mean undefined.
        let c = Confidence::of(&[0.0, 1.0]).unwrap();
        assert!(c.mean >= 0.0 && c.mean < 1e-10 && c.min == 0.0, "{c:?}");
    }
}
