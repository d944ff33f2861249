//! The writer: builds a new generation (from nothing, or from a copy of the
//! live one) and publishes it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

use docent_core::Chunk;
use hnsw_rs::prelude::{AnnT, Hnsw};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::distance::{normalize, CosineDistance};
use crate::error::io;
use crate::generation::{fsync_dir, lock_root, new_generation, publish};
use crate::schema::{
    blob_vector, insert_terms, sha256_file, vector_blob, GraphFile, StoreChecksum, GRAPH,
    LEXICAL_DF_FILL, SCHEMA, STORE, STORE_SUM,
};
use crate::{FileRecord, Index, IndexError, IndexMeta};

/// A writer rebuilds the graph without the removed ids once they are more
/// than this share of its points.
pub const COMPACT_RATIO: f64 = 0.2;

/// Figures of a finished [`IndexWriter::commit`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitStats {
    pub files: usize,
    pub chunks: usize,
    /// Chunks added by this writer.
    pub added_chunks: usize,
    /// Chunks removed by this writer (of deleted and changed files).
    pub removed_chunks: usize,
    /// Removed ids left in the graph, filtered out at query time.
    pub removed_in_graph: usize,
    /// Points in the graph: live chunks plus removed ids.
    pub graph_points: usize,
    /// Whether the graph was rebuilt without the removed ids (or built
    /// from scratch), rather than extended.
    pub graph_rebuilt: bool,
    pub graph_build_ms: f64,
    pub write_ms: f64,
    pub generation: String,
}

/// The graph a writer starts from.
enum BaseGraph {
    /// No graph: build one over every chunk at commit.
    None,
    /// The previous generation's graph: new chunks are inserted into it.
    Previous(Hnsw<'static, f32, CosineDistance>),
}

/// Builds a new generation of an index and publishes it atomically.
///
/// [`IndexWriter::create`] starts from nothing; [`IndexWriter::update`]
/// starts from a copy of the live generation, so that a run touches only
/// what changed: [`IndexWriter::remove_file`] drops a file's chunks (their
/// ids stay in the graph, filtered out at query time, until a compaction),
/// [`IndexWriter::add_file`] adds chunks under new ids, and
/// [`IndexWriter::commit`] inserts only the new vectors into the previous
/// graph, or rebuilds it when removed ids pass [`COMPACT_RATIO`].
pub struct IndexWriter {
    root: PathBuf,
    gen_name: String,
    gen_dir: PathBuf,
    conn: Connection,
    meta: IndexMeta,
    next_id: u64,
    /// Ids from here on were added by this writer.
    first_new_id: u64,
    added: usize,
    removed: usize,
    base: BaseGraph,
    _lock: File,
}

impl IndexWriter {
    /// Starts a new, empty generation under `root`, which is created if
    /// needed. Fails with [`IndexError::Locked`] while another writer runs.
    pub fn create(root: &Path, meta: IndexMeta) -> Result<IndexWriter, IndexError> {
        let (lock, _) = lock_root(root)?;
        let (gen_name, gen_dir) = new_generation(root)?;
        let conn = Connection::open(gen_dir.join(STORE))?;
        conn.execute_batch("PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;")?;
        conn.execute_batch(SCHEMA)?;
        Self::begin(
            root,
            lock,
            gen_name,
            gen_dir,
            conn,
            meta,
            0,
            BaseGraph::None,
        )
    }

    /// The writer over a new generation's open store.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        root: &Path,
        lock: File,
        gen_name: String,
        gen_dir: PathBuf,
        conn: Connection,
        meta: IndexMeta,
        next_id: u64,
        base: BaseGraph,
    ) -> Result<IndexWriter, IndexError> {
        conn.execute_batch("BEGIN")?;
        Ok(IndexWriter {
            root: root.to_path_buf(),
            gen_name,
            gen_dir,
            conn,
            meta,
            next_id,
            first_new_id: next_id,
            added: 0,
            removed: 0,
            base,
            _lock: lock,
        })
    }

    /// Starts a new generation that begins as a copy of `previous`, the
    /// live index under `root`, which must have been built with the same
    /// encoder and chunking as `meta` says (the caller checks). Fails with
    /// [`IndexError::Locked`] while another writer runs, and with
    /// [`IndexError::Changed`] when another writer published since
    /// `previous` was opened.
    pub fn update(
        root: &Path,
        previous: Index,
        meta: IndexMeta,
    ) -> Result<IndexWriter, IndexError> {
        if previous.is_store_only() && !previous.is_empty() {
            return Err(IndexError::Vector(
                "an update needs the previous graph: open the index with its graph".into(),
            ));
        }
        let (lock, current) = lock_root(root)?;
        if current.as_deref() != Some(previous.generation()) {
            return Err(IndexError::Changed {
                path: root.display().to_string(),
            });
        }
        let (gen_name, gen_dir) = new_generation(root)?;
        let from = previous.generation_dir().join(STORE);
        let to = gen_dir.join(STORE);
        fs::copy(&from, &to).map_err(io(&from))?;
        let conn = Connection::open(&to)?;
        conn.execute_batch("PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;")?;
        let next_id: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_id'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let next_id = next_id.and_then(|s| s.parse().ok()).unwrap_or(0u64);
        let base = match previous.into_graph() {
            Some(mut h) => {
                h.set_searching_mode(false);
                BaseGraph::Previous(h)
            }
            None => BaseGraph::None,
        };
        Self::begin(root, lock, gen_name, gen_dir, conn, meta, next_id, base)
    }

    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    /// Adds a file and its chunks, with one vector per chunk, under new ids;
    /// a file of the same path already in the index is replaced.
    pub fn add_file(
        &mut self,
        file: &FileRecord,
        chunks: &[Chunk],
        vectors: &[Vec<f32>],
    ) -> Result<(), IndexError> {
        if chunks.len() != vectors.len() {
            return Err(IndexError::Vector(format!(
                "{} chunks but {} vectors for {}",
                chunks.len(),
                vectors.len(),
                file.path
            )));
        }
        let dim = self.meta.encoder.dim;
        self.remove_file(&file.path)?;
        self.conn.execute(
            "INSERT INTO files (path, sha256, size, kind, chunks) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                file.path,
                file.sha256,
                file.size as i64,
                file.kind,
                chunks.len() as i64
            ],
        )?;
        let file_id = self.conn.last_insert_rowid();
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO chunks (id, file_id, ordinal, text, byte_start, byte_end, char_start, char_end,
                                 line, page, heading_path, tokens, vector)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for (c, v) in chunks.iter().zip(vectors) {
            if v.len() != dim || v.iter().any(|x| !x.is_finite()) {
                return Err(IndexError::Vector(format!(
                    "a vector of {} has {} values (expected {dim}) or is not finite",
                    file.path,
                    v.len()
                )));
            }
            let mut v = v.clone();
            normalize(&mut v);
            stmt.execute(params![
                self.next_id as i64,
                file_id,
                c.ordinal,
                c.text,
                c.byte_span.start as i64,
                c.byte_span.end as i64,
                c.char_span.start as i64,
                c.char_span.end as i64,
                c.line,
                c.page,
                serde_json::to_string(&c.heading_path).expect("strings serialise"),
                c.tokens,
                vector_blob(&v),
            ])?;
            insert_terms(&self.conn, self.next_id, &c.text)?;
            self.next_id += 1;
            self.added += 1;
        }
        Ok(())
    }

    /// Removes a file and its chunks; returns how many chunks it had (0 for
    /// a file the index does not hold). Chunks this writer added are simply
    /// dropped; older ones are recorded as removed, since the graph still
    /// holds them.
    pub fn remove_file(&mut self, path: &str) -> Result<usize, IndexError> {
        let Some(file_id) = self
            .conn
            .query_row("SELECT id FROM files WHERE path = ?1", [path], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
        else {
            return Ok(0);
        };
        let first_new = self.first_new_id as i64;
        self.conn.execute(
            "INSERT INTO removed (id) SELECT id FROM chunks WHERE file_id = ?1 AND id < ?2",
            params![file_id, first_new],
        )?;
        self.conn.execute(
            "DELETE FROM lexical WHERE rowid IN (SELECT id FROM chunks WHERE file_id = ?1)",
            [file_id],
        )?;
        let n = self
            .conn
            .execute("DELETE FROM chunks WHERE file_id = ?1", [file_id])?;
        self.conn
            .execute("DELETE FROM files WHERE id = ?1", [file_id])?;
        self.removed += n;
        Ok(n)
    }

    /// Builds or extends the graph, writes everything durably, and makes
    /// this generation the live one.
    pub fn commit(self) -> Result<CommitStats, IndexError> {
        let IndexWriter {
            root,
            gen_name,
            gen_dir,
            conn,
            meta,
            next_id,
            first_new_id,
            added,
            removed,
            base,
            _lock,
        } = self;
        let count = |sql: &str| -> Result<usize, IndexError> {
            Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as usize)
        };
        let n = count("SELECT count(*) FROM chunks")?;
        let files = count("SELECT count(*) FROM files")?;
        let mut dead = count("SELECT count(*) FROM removed")?;
        let t = Instant::now();
        let read_vectors = |from: u64| -> Result<Vec<(Vec<f32>, usize)>, IndexError> {
            let mut stmt =
                conn.prepare("SELECT id, vector FROM chunks WHERE id >= ?1 ORDER BY id")?;
            let mut rows = stmt.query([from as i64])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push((
                    blob_vector(&r.get::<_, Vec<u8>>(1)?),
                    r.get::<_, i64>(0)? as usize,
                ));
            }
            Ok(out)
        };
        let insert = |hnsw: &Hnsw<'static, f32, CosineDistance>, vectors: &[(Vec<f32>, usize)]| {
            let refs: Vec<(&Vec<f32>, usize)> = vectors.iter().map(|(v, id)| (v, *id)).collect();
            hnsw.parallel_insert(&refs);
        };
        let p = meta.hnsw;
        let build = |vectors: &[(Vec<f32>, usize)]| {
            let hnsw: Hnsw<f32, CosineDistance> = Hnsw::new(
                p.m.clamp(2, 256),
                vectors.len(),
                16,
                p.ef_construction,
                CosineDistance::default(),
            );
            insert(&hnsw, vectors);
            hnsw
        };
        let graph_points = n + dead;
        let rebuild = match &base {
            BaseGraph::None => true,
            BaseGraph::Previous(_) => dead as f64 > COMPACT_RATIO * graph_points as f64,
        };
        let mut graph_files = Vec::new();
        let graph = if rebuild {
            conn.execute("DELETE FROM removed", [])?;
            dead = 0;
            let vectors = read_vectors(0)?;
            (!vectors.is_empty()).then(|| build(&vectors))
        } else {
            let BaseGraph::Previous(hnsw) = base else {
                unreachable!("a rebuild when there is no previous graph")
            };
            insert(&hnsw, &read_vectors(first_new_id)?);
            Some(hnsw)
        };
        let graph_points = graph.as_ref().map_or(0, |g| g.get_nb_point());
        if graph_points != n + dead {
            return Err(IndexError::Vector(format!(
                "the new graph holds {graph_points} points, the store {n} chunks and {dead} removed ids"
            )));
        }
        if let Some(hnsw) = &graph {
            let dumped = hnsw
                .file_dump(&gen_dir, GRAPH)
                .map_err(|e| IndexError::Io {
                    path: gen_dir.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            for suffix in ["hnsw.graph", "hnsw.data"] {
                let name = format!("{dumped}.{suffix}");
                let path = gen_dir.join(&name);
                File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(io(&path))?;
                let size = fs::metadata(&path).map_err(io(&path))?.len();
                let sha256 = sha256_file(&path).map_err(io(&path))?;
                graph_files.push(GraphFile { name, size, sha256 });
            }
        }
        drop(graph);
        let graph_build_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        conn.execute_batch(LEXICAL_DF_FILL)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES
                ('index', ?1), ('graph_files', ?2), ('chunks', ?3), ('next_id', ?4),
                ('lexical_df_chunks', ?3)",
            params![
                serde_json::to_string(&meta).expect("meta serialises"),
                serde_json::to_string(&graph_files).expect("serialises"),
                n.to_string(),
                next_id.to_string(),
            ],
        )?;
        conn.execute_batch("COMMIT")?;
        if rebuild && removed > 0 {
            // The removed rows leave free pages behind; a rebuild is the
            // moment to give them back.
            conn.execute_batch("VACUUM")?;
        }
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        conn.close().map_err(|(_, e)| e)?;
        let store = gen_dir.join(STORE);
        File::open(&store)
            .and_then(|f| f.sync_all())
            .map_err(io(&store))?;
        let checksum = StoreChecksum {
            size: fs::metadata(&store).map_err(io(&store))?.len(),
            sha256: sha256_file(&store).map_err(io(&store))?,
        };
        let sum_path = gen_dir.join(STORE_SUM);
        fs::write(
            &sum_path,
            serde_json::to_string(&checksum).expect("serialises"),
        )
        .map_err(io(&sum_path))?;
        File::open(&sum_path)
            .and_then(|f| f.sync_all())
            .map_err(io(&sum_path))?;
        fsync_dir(&gen_dir);
        publish(&root, &gen_name)?;
        Ok(CommitStats {
            files,
            chunks: n,
            added_chunks: added,
            removed_chunks: removed,
            removed_in_graph: dead,
            graph_points,
            graph_rebuilt: rebuild,
            graph_build_ms,
            write_ms: t.elapsed().as_secs_f64() * 1e3,
            generation: gen_name,
        })
    }
}
