/// What can go wrong with an index, in the index's own terms. Front ends
/// add what their user should do (the command to run, the request to send).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("there is no index at {path}")]
    NotFound { path: String },
    /// The index must be rebuilt from its documents.
    #[error("the index at {path} is damaged ({why})")]
    Damaged { path: String, why: String },
    /// Queries and updates must use the encoder that built the index.
    #[error(
        "the index at {path} was built with encoder {index}, but this run uses {query}; \
         queries and updates must use the index's encoder, or the index must be rebuilt \
         with the new one"
    )]
    EncoderMismatch {
        path: String,
        index: String,
        index_id: String,
        query: String,
    },
    #[error(
        "the index at {path} was written by a newer docent (format {found}, this docent reads {supported})"
    )]
    Format {
        path: String,
        found: u32,
        supported: u32,
    },
    /// The next indexing run rebuilds it.
    #[error(
        "the index at {path} was written by an older docent (format {found}, this docent reads {supported})"
    )]
    Outdated {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("another writer is updating the index at {path}")]
    Locked { path: String },
    /// Another writer published a new version while this one was opened;
    /// trying again opens the new one.
    #[error(
        "the index at {path} changed while it was being opened: another writer published \
         a new version"
    )]
    Changed { path: String },
    #[error("index store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("index file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid vector: {0}")]
    Vector(String),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.display().to_string(),
        source,
    }
}
