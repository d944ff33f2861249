//! What can go wrong with the journal.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum JournalError {
    /// The file could not be opened, read or written.
    #[error("the journal {path} could not be used: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A stored trace no longer reads as a trace (written by another
    /// version, or damaged).
    #[error("the stored trace {id} is damaged: {source}")]
    Damaged {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    /// No trace or conversation has this id.
    #[error("no {what} has the id {id}")]
    NotFound { what: &'static str, id: String },
}
