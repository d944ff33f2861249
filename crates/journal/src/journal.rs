//! Opening the journal and its schema.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use crate::JournalError;

/// The journal's file name inside an index folder.
pub const JOURNAL_FILE: &str = "journal.sqlite";

/// How much history the journal keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most traces kept; the oldest go first.
    pub max_traces: usize,
    /// Traces older than this many days are removed; `None` keeps them
    /// until the count limit removes them.
    pub max_age_days: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_traces: 10_000,
            max_age_days: Some(90),
        }
    }
}

/// The journal of one index (see the crate's documentation).
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
    retention: Retention,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS traces (
    id TEXT PRIMARY KEY,
    started_at_ms INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    model TEXT,
    total_ms REAL NOT NULL,
    conversation_id TEXT,
    trace TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_time ON traces(started_at_ms);
CREATE TABLE IF NOT EXISTS ratings (
    trace_id TEXT PRIMARY KEY REFERENCES traces(id) ON DELETE CASCADE,
    up INTEGER NOT NULL,
    note TEXT,
    rated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    trace_id TEXT,
    PRIMARY KEY (conversation_id, seq)
);
";

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path, retention: Retention) -> Result<Journal, JournalError> {
        let err = |source| JournalError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            // The index folder normally exists; a journal opened before the
            // first index still needs its folder.
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Journal {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            retention,
        })
    }

    /// Opens the journal inside the index folder `index_dir`.
    pub fn open_beside(index_dir: &Path, retention: Retention) -> Result<Journal, JournalError> {
        Journal::open(&index_dir.join(JOURNAL_FILE), retention)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn sqlite(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |source| JournalError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// Unix time now, in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
