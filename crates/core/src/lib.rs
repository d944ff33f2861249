//! Shared types of docent and the chunker.
//!
//! docent answers questions from a folder of documents with the classic
//! retrieval-augmented loop: *question → retrieve → generate*. This crate is
//! the small, pure centre that the other crates agree on:
//!
//! * [`Document`] is what a loader (in `docent-ingest`) makes of a file: the
//!   plain text that will be searched, cut into [`Block`]s (headings and
//!   paragraphs) that remember the line or page they came from.
//! * [`Chunk`] is the unit that is embedded, indexed and retrieved: a span of
//!   a document's text with its source path, line or page, character span and
//!   heading path.
//! * [`chunk_document`] turns a document into chunks. It is token-aware: the
//!   caller supplies a [`TokenCounter`] backed by the encoder's own tokenizer,
//!   so that no chunk exceeds what the encoder can read and nothing is
//!   silently truncated.
//!
//! # Invariants
//!
//! This crate does no IO and knows no file format or serialisation beyond
//! `serde` derives: it is plain data and plain functions, which is what makes
//! the chunker easy to test exhaustively.

mod chunk;
mod document;

pub use chunk::{
    chunk_document, Chunk, ChunkConfig, ChunkConfigError, TokenCounter, CHUNKER_VERSION,
};
pub use document::{Block, BlockKind, Document, SourceKind};

mod encoder;
pub use encoder::{EncoderInfo, Pooling, RetrievalSettings};

mod lexical;
pub use lexical::{cjk_share, fuse, fuse_except, lexical_terms};
