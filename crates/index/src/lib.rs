//! The docent index: a chunk store and an HNSW graph, written atomically.
//!
//! An index lives in one folder (by default `.docent/`):
//!
//! ```text
//! .docent/
//!   CURRENT               name of the live generation, replaced atomically
//!   LOCK                  held by the one writer
//!   gen-<time>-<pid>/     one complete generation
//!     store.sqlite        metadata, files (with content hashes), chunks,
//!                         vectors, lexical terms, removed ids
//!     store.sha256        the store's size and sha256 at commit
//!     graph.hnsw.graph    the hnsw_rs graph …
//!     graph.hnsw.data     … and its vectors
//! ```
//!
//! A writer ([`IndexWriter`]) builds a new generation beside the live one and
//! publishes it by renaming a new `CURRENT` over the old: a crash or Ctrl-C at
//! any moment leaves the previous generation live and loadable, and a reader
//! ([`Index`]) sees either the old or the new generation, never a mix. Stale
//! generations are removed by the next writer, except one an open [`Index`]
//! still holds (a shared lock on its folder): that one stays until a writer
//! finds it released, so a reader's files never vanish under it.
//!
//! ## Updates
//!
//! The store records each file's sha256, so that a later run embeds only
//! the files that are new or changed. [`IndexWriter::update`] starts the new
//! generation from a copy of the live store and from the live graph:
//! chunk ids are kept, a removed file's chunks leave the store and the
//! lexical table at once, and new chunks are inserted into the existing
//! graph under new ids. hnsw_rs cannot delete a point, so the ids of
//! removed chunks stay in the graph, are listed in the store's `removed`
//! table, and every dense search filters them out *during* the graph
//! search (a search still returns `k` live chunks). When removed ids pass
//! [`COMPACT_RATIO`] of the graph's points, the commit rebuilds the graph
//! from the live vectors alone and empties `removed` (a compaction, shown
//! in [`CommitStats`]). When nothing changed, no generation is written; to
//! find that out, [`Index::open_store`] opens the store alone, without
//! hashing or loading the graph.
//!
//! ## Integrity
//!
//! Checked at load: the store's size and sha256 against `store.sha256`
//! (SQLite does not notice a flipped byte inside a row), the graph files'
//! sizes and sha256 as recorded in the store (hashed when under 256 MiB),
//! the number of chunks, removed ids and graph points against each other;
//! the hnsw_rs loader runs behind `catch_unwind`. A damaged index is an
//! [`IndexError::Damaged`] that names the damage (the front end adds how to
//! rebuild), never a panic or a silently wrong answer.
//!
//! Vectors are L2-normalised before they enter the graph, and the graph's
//! distance is `1 - dot` clamped to `[0, 2]` ([`CosineDistance`]), so
//! rounding never produces the out-of-range values that hnsw_rs's own
//! `DistDot` asserts on. The score reported for a hit is the cosine
//! similarity, `1 - distance`.
//!
//! This crate owns the on-disk format and all of its IO.

//! ## Threads
//!
//! An open [`Index`] is `Sync`: one index serves every thread. The graph is
//! read-only once loaded; store queries take a read connection from a
//! small pool, opening another when all are busy. A long-lived reader (a
//! server) notices a newer generation by comparing [`Index::generation`]
//! with [`live_generation`], and opens it.
//!
//! ## Files
//!
//! * `generation.rs`: the protocol above (`CURRENT`, `LOCK`, holds, publish);
//! * `schema.rs`: the store's tables, vector encoding and checksums;
//! * `writer.rs`: [`IndexWriter`], creating and updating generations;
//! * `reader.rs`: [`Index`], opening and checking a generation;
//! * `query.rs`: dense, lexical and exact search, reading chunks back;
//! * `pool.rs`: the read connections.

mod distance;
mod error;
mod generation;
mod meta;
mod pool;
mod query;
mod reader;
mod schema;
mod writer;

pub use distance::CosineDistance;
pub use error::IndexError;
pub use generation::live_generation;
pub use meta::{FileRecord, HnswParams, IndexMeta, FORMAT_VERSION};
pub use query::{Hit, StoredChunk, POSTINGS_BUDGET};
pub use reader::Index;
pub use writer::{CommitStats, IndexWriter, COMPACT_RATIO};
