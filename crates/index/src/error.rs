#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("there is no index at {path}; build one with `docent index DIR`")]
    NotFound { path: String },
    #[error(
        "the index at {path} is damaged ({why}); rebuild it with `docent index DIR --rebuild`"
    )]
    Damaged { path: String, why: String },
    #[error(
        "the index at {path} was built with encoder {index}, but this run uses {query}; \
         queries and updates must use the index's encoder (pass --model {index_id}), \
         or rebuild the index with `docent index DIR --rebuild --model <MODEL>`"
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
    #[error(
        "the index at {path} was written by an older docent (format {found}, this docent reads {supported}); \
         rebuild it with `docent index DIR` (it is rebuilt automatically)"
    )]
    Outdated {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("another `docent index` is writing the index at {path}; wait for it to finish")]
    Locked { path: String },
    #[error(
        "the index at {path} changed while it was being opened: another `docent index` \
         published a new version; run the command again"
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
