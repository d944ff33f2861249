//! Answer generation: a quantised language model in a GGUF file, run on the
//! CPU.
//!
//! The pieces, in the order an answer passes through them:
//!
//! * [`gguf::GgufFile`] opens the file and checks its header and tensor table
//!   against the file's size, so a truncated download is an error, not a
//!   crash.
//! * [`tokenizer::GgufTokenizer`] is built from the file's own
//!   `tokenizer.ggml.*` metadata (SentencePiece-style or byte-level BPE) and
//!   gives the token ids llama.cpp gives.
//! * [`template::ChatTemplate`] renders the model's `tokenizer.chat_template`
//!   with minijinja, as Hugging Face does; models without one get a plain
//!   fallback.
//! * [`prompt::build_prompt`] assembles the system instruction, the numbered
//!   sources and the question, and drops the lowest-ranked sources until the
//!   prompt fits the context with room for the answer.
//! * [`model::Model`] runs the network: `llama`, `gemma3`, `qwen2` and
//!   `qwen3` on docent's own decoder over `docent-kernels`, checked against
//!   llama.cpp; `phi3` on candle-transformers' quantised implementation.
//! * [`sampler::Sampler`] picks each token (greedy by default, or temperature
//!   with top-k/top-p, with a repeat penalty).
//! * [`generator::Generator`] ties them together and streams text as it is
//!   decoded, holding back bytes of split characters and possible stop
//!   strings.
//!
//! The decoder's products run on rayon's global pool (and candle's models
//! on candle's threads); do not call into this crate from inside a rayon
//! parallel iterator.
//!
//! This crate reads the model file it is given and nothing else.

use std::path::PathBuf;

pub mod generator;
pub mod gguf;
pub mod layouts;
pub mod model;
pub mod prompt;
pub mod repeat;
pub mod sampler;
pub mod template;
pub mod tokenizer;

pub use generator::{
    Gate, Generation, GenerationConfig, Generator, GeneratorConfig, StopReason, Timings,
};
pub use layouts::LayoutStore;
pub use prompt::{
    build_again_prompt, build_chat_prompt, build_check_prompt, build_confirm_prompt, build_prompt,
    build_translate_prompt, Prompt, PromptTemplate, Source, Turn,
};
pub use sampler::SamplerConfig;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{}: {reason}", path.display())]
    BadModelFile { path: PathBuf, reason: String },
    #[error(
        "the model's architecture is {architecture:?}, which docent cannot run \
         (supported: {})",
        model::SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture { architecture: String },
    #[error("{}: unsupported tokenizer: {reason}", path.display())]
    UnsupportedTokenizer { path: PathBuf, reason: String },
    #[error("{0}")]
    Template(String),
    #[error("{0}")]
    Config(String),
    /// The question alone (with the instruction) does not fit: it must be
    /// shorter, or the context larger.
    #[error("the prompt needs {tokens} tokens but only {budget} fit in the context")]
    PromptTooLong { tokens: usize, budget: usize },
    #[error("{needed} tokens do not fit in the {context}-token context")]
    ContextFull { needed: usize, context: usize },
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
