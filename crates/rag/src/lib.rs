//! docent's answering engine: *question → retrieve → generate*, as a
//! library that owns no terminal, no flags and no network port, so that the
//! CLI, the benchmark harness, `eval` and an HTTP service all run exactly
//! the same pipeline.
//!
//! # The loop
//!
//! [`Engine`] holds an index, its sentence encoder and a language model,
//! opened once:
//!
//! 1. **Retrieve** ([`Engine::retrieve`], [`retrieve`]): embed the question,
//!    search the HNSW graph (dense) and the BM25 table (lexical), fuse the
//!    two rankings (hybrid, the default), rank the best few again by how
//!    much of the question one of their sentences holds ([`proximity`]),
//!    read the best `k` chunks back with their cosine similarity to the
//!    question. In an index of both languages, the question moved towards
//!    the other one finds that language's chunks too ([`shift`]).
//! 2. **Filter**: keep the chunks at least [`AnswerConfig::min_score`]
//!    similar to the question. None left: the answer is declined
//!    ([`Abstention::NoRelevantSource`]) and the model is never run.
//! 3. **Prompt**: the model's chat template around the instruction, the
//!    earlier turns of the conversation, the numbered sources and the
//!    question, fitted to the prompt's budget in the model's own tokens:
//!    oldest turns dropped first; then the sources go in whole in rank
//!    order while they fit, and the first that does not is cut to its
//!    sentences most about the question in the room left ([`excerpt`]);
//!    the rest are left out ([`SourceFit`] has the other ways).
//! 4. **Generate** ([`Engine::answer`]): decode, streaming each piece of
//!    text to the caller's callback, which may cancel; an answer that says
//!    the documents do not hold it counts as declined
//!    ([`Abstention::ModelDeclined`]).
//! 5. **Cite and trace**: the [`Answer`] carries its [`Citation`]s
//!    (numbered as in the prompt) and a [`Trace`] of every stage: spans,
//!    candidate chunks with their dense, lexical and fused scores, what the
//!    prompt held and dropped, timings, token counts and rates.
//!
//! Indexing ([`indexer`]) and keeping an index current ([`watch`]) live
//! here too: `ask --docs` and a server's `--watch` index the same way
//! `docent index` does.
//!
//! # Threads
//!
//! An [`Engine`] is shared by reference between threads: retrieval runs in
//! parallel, generation one at a time behind a lock (see [`Engine`] for
//! why), and a newly published index generation is picked up by the next
//! request without a restart.
//!
//! # Errors
//!
//! [`RagError`] says what went wrong in the engine's terms (an unknown
//! model, a damaged index, no room for the prompt); front ends turn it into
//! what their user should do: a flag or command for the CLI, a status for
//! HTTP.
//!
//! # Files
//!
//! * `engine.rs`: [`Engine`], the loop above;
//! * `retrieve.rs`: ranking, fusion and fetching; [`SearchMode`];
//! * `proximity.rs`: the best fused chunks ranked again by their best
//!   sentence;
//! * `answer.rs`: [`AnswerConfig`], [`Answer`], [`Citation`], [`Event`];
//! * `excerpt.rs`: long sources cut to the sentences about the question;
//! * `reflow.rs`: hard-wrapped lines of a source joined for the prompt;
//! * `grounding.rs`: each answer sentence's support in its sources;
//! * `quote.rs`: short answers written as their source writes them;
//! * `statement.rs`: Korean answers that end as questions, ended as
//!   statements;
//! * `echo.rs`: answers that only repeat their question, asked again;
//! * `compare.rs`: a source for each side of a comparison question;
//! * `rewrite.rs`: follow-up questions made standalone for retrieval;
//! * `trace.rs`: [`Trace`] and its spans;
//! * `models.rs`: which models a name means, loading them;
//! * `indexer.rs`, `watch.rs`: building and updating an index;
//! * `error.rs`: [`RagError`].

pub mod answer;
pub mod compare;
pub mod crosslingual;
pub mod echo;
mod engine;
mod error;
pub mod excerpt;
pub mod grounding;
pub mod indexer;
pub mod models;
pub mod proximity;
pub mod quote;
pub mod reflow;
pub mod retrieve;
pub mod rewrite;
pub mod shift;
pub mod statement;
pub mod tidy;
pub mod trace;
pub mod watch;

pub use answer::{
    is_decline, no_answer_text, Abstention, Answer, AnswerConfig, Citation, Event, GroundingConfig,
    QueryTranslation, SourceFit,
};
pub use engine::Engine;
pub use error::RagError;
pub use grounding::SentenceSupport;
pub use indexer::{build_index, IndexConfig, IndexEvent, IndexReport};
pub use models::{GeneratorChoice, GeneratorLoad, ModelRef, DEFAULT_GENERATOR};
pub use retrieve::{retrieve, Retrieval, RetrieveConfig, SearchMode};
pub use rewrite::QueryRewrite;
pub use trace::{AnswerTimings, Span, Stage, Trace};
pub use watch::{watch, WatchEvent};

// The types a front end needs to fill in the configuration.
pub use docent_generate::{PromptTemplate, SamplerConfig, StopReason, Turn};
