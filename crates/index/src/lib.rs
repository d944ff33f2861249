//! The docent index: a chunk store and an HNSW graph, written atomically.
//!
//! An index lives in one folder (by default `.docent/`):
//!
//! ```text
//! .docent/
//!   CURRENT               name of the live generation, replaced atomically
//!   LOCK                  held by the one writer
//!   gen-<time>-<pid>/     one complete generation
//!     store.sqlite        metadata, files (with content hashes), chunks, vectors
//!     graph.hnsw.graph    the hnsw_rs graph …
//!     graph.hnsw.data     … and its vectors
//! ```
//!
//! A writer ([`IndexWriter`]) builds a new generation beside the live one and
//! publishes it by renaming a new `CURRENT` over the old: a crash or Ctrl-C at
//! any moment leaves the previous generation live and loadable, and a reader
//! ([`Index`]) sees either the old or the new generation, never a mix. Stale
//! generations are removed by the next writer.
//!
//! The store records the encoder that made the vectors ([`IndexMeta`]); an
//! index refuses queries and updates from any other encoder. It records each
//! file's sha256, so that a later run re-embeds only the files that changed
//! ([`IndexWriter::copy_file`] carries the rest over). Integrity is checked
//! at load: the graph files' sizes always, their sha256 when they are small
//! enough to hash quickly, and the hnsw_rs loader runs behind
//! `catch_unwind`, so a damaged index is an error that says what to run, not
//! a panic.
//!
//! Vectors are L2-normalised before they enter the graph, and the graph's
//! distance is `1 - dot` clamped to `[0, 2]` ([`CosineDistance`]), so
//! rounding never produces the out-of-range values that hnsw_rs's own
//! `DistDot` asserts on. The score reported for a hit is the cosine
//! similarity, `1 - distance`.
//!
//! This crate owns the on-disk format and all of its IO.

mod distance;
mod error;
mod meta;
mod store;

pub use distance::CosineDistance;
pub use error::IndexError;
pub use meta::{FileRecord, HnswParams, IndexMeta, FORMAT_VERSION};
pub use store::{CommitStats, Hit, Index, IndexWriter, SearchMode, StoredChunk, COMPACT_RATIO};
