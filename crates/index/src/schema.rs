//! What a generation folder holds: the SQLite schema of its store, how
//! vectors are encoded in it, and the checksums written at commit and
//! checked at load.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::IndexError;

pub(crate) const STORE: &str = "store.sqlite";
/// The basename of the hnsw_rs graph files (`graph.hnsw.graph`, `graph.hnsw.data`).
pub(crate) const GRAPH: &str = "graph";
/// The store's size and sha256, written once the store is final.
pub(crate) const STORE_SUM: &str = "store.sha256";
/// Files up to this size are hashed at every load.
pub(crate) const HASH_AT_LOAD_LIMIT: u64 = 256 << 20;

pub(crate) const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id),
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    byte_start INTEGER NOT NULL,
    byte_end INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    line INTEGER NOT NULL,
    page INTEGER,
    heading_path TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX chunks_by_file ON chunks(file_id, ordinal);
-- Lexical terms of each chunk (docent_core::lexical_terms, space-separated),
-- rowid = chunk id; FTS5's ascii tokenizer splits only at ASCII separators,
-- so the terms are indexed exactly as written.
CREATE VIRTUAL TABLE lexical USING fts5(terms, tokenize = 'ascii');
-- Document frequency of each term, to leave out of queries the terms found
-- in most chunks (their BM25 weight is nil and they are slow to scan).
CREATE VIRTUAL TABLE lexical_vocab USING fts5vocab('lexical', 'row');
-- The same counts are copied into the table lexical_df at each commit
-- (LEXICAL_DF_FILL, which creates it).
-- Ids still in the graph whose chunks were removed (hnsw_rs cannot delete):
-- searches filter them out; a compaction rebuilds the graph without them.
CREATE TABLE removed (id INTEGER PRIMARY KEY);
";

/// Creates or refills `lexical_df` from FTS5's own counts (one walk over
/// every posting: 1.8 s at a million chunks). fts5vocab counts a term's
/// chunks by walking its postings, 30 ms for a term in most of a million
/// chunks, where this table answers in microseconds. Searches use it while
/// the meta key `lexical_df_chunks` equals `chunks` (a writer that did not
/// fill it leaves them apart).
pub(crate) const LEXICAL_DF_FILL: &str = "
CREATE TABLE IF NOT EXISTS lexical_df (term TEXT PRIMARY KEY, doc INTEGER NOT NULL) WITHOUT ROWID;
DELETE FROM lexical_df;
INSERT INTO lexical_df (term, doc) SELECT term, doc FROM lexical_vocab;
";

/// A graph file as recorded at commit, checked at load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GraphFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The store file as it was committed, checked at load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoreChecksum {
    pub size: u64,
    pub sha256: String,
}

/// Writes a chunk's lexical terms under its id (see the schema).
pub(crate) fn insert_terms(conn: &Connection, id: u64, text: &str) -> Result<(), IndexError> {
    conn.prepare_cached("INSERT INTO lexical (rowid, terms) VALUES (?1, ?2)")?
        .execute(params![
            id as i64,
            docent_core::lexical_terms(text).join(" ")
        ])?;
    Ok(())
}

/// A vector as stored: little-endian f32s.
pub(crate) fn vector_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}
