//! What can go wrong between a question and its answer, in the engine's own
//! terms. Front ends map each case to what their user should do: the CLI
//! names a flag or a command, the HTTP service a status and a message.

use docent_embed::EmbedError;
use docent_generate::GenerateError;
use docent_index::IndexError;
use docent_ingest::WalkError;
use docent_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum RagError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Chunking(#[from] docent_core::ChunkConfigError),
    /// Not a manifest name, a Hugging Face id or a folder holding a model.
    #[error("unknown encoder {name:?}")]
    UnknownEncoder { name: String },
    /// Not a manifest name, `owner/repo:file.gguf` or a `.gguf` file.
    #[error("unknown model {name:?}")]
    UnknownModel { name: String },
    /// A manifest model of the other kind (an encoder named as a language
    /// model, or the reverse).
    #[error("{name} is a {is}, not a {wanted}")]
    WrongKind {
        name: String,
        is: &'static str,
        wanted: &'static str,
    },
    #[error("no model file at {path}")]
    NoModelFile { path: String },
    #[error("loading {what} from {path}")]
    Load {
        what: String,
        path: String,
        #[source]
        source: Box<RagError>,
    },
    /// The answer's token budget leaves no room for a prompt.
    #[error(
        "an answer of up to {max_tokens} tokens leaves no room for the prompt \
         in the model's {context}-token context"
    )]
    NoRoomForPrompt { max_tokens: usize, context: usize },
    /// A question or search of nothing but spaces: there is nothing to
    /// look for, and every chunk would be as near as any other.
    #[error("the question is empty")]
    EmptyQuestion,
    /// A setting out of its range (the message names it).
    #[error("{0}")]
    Config(String),
    #[error("cannot open folder {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("watching {path}: {message}")]
    Watch { path: String, message: String },
}

impl RagError {
    /// The [`IndexError`] behind this error, if it is one.
    pub fn index_error(&self) -> Option<&IndexError> {
        match self {
            RagError::Index(e) => Some(e),
            RagError::Load { source, .. } => source.index_error(),
            _ => None,
        }
    }
}
