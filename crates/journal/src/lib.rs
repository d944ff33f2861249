//! docent's journal: what every answer was built from, how users rated it,
//! and the conversations it belonged to, kept in one SQLite file beside the
//! index (`<index>/journal.sqlite`).
//!
//! The engine (`docent-rag`) makes a [`Trace`] for every answer; the
//! journal keeps it, so that `docent traces`, the server's `/traces` and
//! its web page can show it later, much as LangSmith records the runs of a
//! chain. A rating (up or down, with an optional note) is kept with its
//! trace, and the rated traces export as a question set: the start of a
//! user's own test set.
//!
//! Conversations ([`Journal::start_conversation`], [`Journal::add_turn`])
//! are lists of turns, each pointing at the trace of its answer, so that a
//! chat can be listed and resumed from the terminal or the browser.
//!
//! # Invariants
//!
//! * The journal never holds anything the index needs: removing the file
//!   loses history, never documents. Index writers remove only `gen-*`
//!   folders, so the journal outlives rebuilds.
//! * Retention is bounded ([`Retention`]): after every insert the oldest
//!   traces beyond the count limit, and those older than the age limit,
//!   are removed, with their ratings. Turns keep their text when their
//!   trace goes.
//! * Several processes may write at once (a CLI beside a server): the file
//!   is in WAL mode and writers wait for each other (busy timeout).
//!
//! # Files
//!
//! * `journal.rs`: [`Journal`], opening and the schema;
//! * `traces.rs`: traces and ratings;
//! * `conversations.rs`: conversations and their turns;
//! * `error.rs`: [`JournalError`].

mod conversations;
mod error;
mod journal;
mod traces;

pub use conversations::{Conversation, ConversationTurn};
pub use error::JournalError;
pub use journal::{Journal, Retention, JOURNAL_FILE};
pub use traces::{RatedTrace, Rating, TraceSummary};

pub use docent_rag::Trace;
