use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use docent_core::{Chunk, EncoderInfo};
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::distance::{normalize, CosineDistance};
use crate::error::io;
use crate::{FileRecord, IndexError, IndexMeta, FORMAT_VERSION};

const CURRENT: &str = "CURRENT";
/// How many publishes in a row an open may run into before it gives up.
const OPEN_ATTEMPTS: usize = 20;
const STORE: &str = "store.sqlite";
const GRAPH: &str = "graph";
/// The store's size and sha256, written once the store is final.
const STORE_SUM: &str = "store.sha256";
/// Graph files up to this size are hashed at every load.
const HASH_AT_LOAD_LIMIT: u64 = 256 << 20;

const SCHEMA: &str = "
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
-- Ids still in the graph whose chunks were removed (hnsw_rs cannot delete):
-- searches filter them out; a compaction rebuilds the graph without them.
CREATE TABLE removed (id INTEGER PRIMARY KEY);
";

/// A writer rebuilds the graph without the removed ids once they are more
/// than this share of its points.
pub const COMPACT_RATIO: f64 = 0.2;

/// How chunks are ranked for a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Cosine similarity of embeddings, through the HNSW graph.
    Dense,
    /// BM25 over lexical terms (words, and character bigrams for Hangul and
    /// CJK), through SQLite FTS5.
    Lexical,
    /// Both, fused; the default.
    #[default]
    Hybrid,
}

/// A graph file as recorded at commit, checked at load.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GraphFile {
    name: String,
    size: u64,
    sha256: String,
}

/// The store file as it was committed, checked at load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoreChecksum {
    size: u64,
    sha256: String,
}

/// A chunk as stored, with its id in the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredChunk {
    pub id: u64,
    #[serde(flatten)]
    pub chunk: Chunk,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The ranking score: cosine similarity in dense mode, BM25 in lexical
    /// mode, the fused score (0 to 1) in hybrid mode.
    pub score: f32,
    /// Cosine similarity of query and chunk, whatever the mode.
    pub similarity: f32,
    #[serde(flatten)]
    pub chunk: StoredChunk,
}

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

/// Writes a chunk's lexical terms under its id (see the schema).
fn insert_terms(conn: &Connection, id: u64, text: &str) -> Result<(), IndexError> {
    conn.prepare_cached("INSERT INTO lexical (rowid, terms) VALUES (?1, ?2)")?
        .execute(params![
            id as i64,
            docent_core::lexical_terms(text).join(" ")
        ])?;
    Ok(())
}

fn vector_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
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

fn fsync_dir(dir: &Path) {
    // Best effort: not every platform can open a folder for syncing.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn read_current(root: &Path) -> Result<Option<String>, IndexError> {
    match fs::read_to_string(root.join(CURRENT)) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&root.join(CURRENT))(e)),
    }
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

/// Takes the writer's lock and clears generations left by interrupted
/// writers; returns the lock and the live generation's name.
fn lock_root(root: &Path) -> Result<(File, Option<String>), IndexError> {
    fs::create_dir_all(root).map_err(io(root))?;
    let lock_path = root.join("LOCK");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(IndexError::Locked {
                path: root.display().to_string(),
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
    }
    let current = read_current(root)?;
    remove_generations(root, current.as_deref());
    let _ = fs::remove_file(root.join("CURRENT.tmp"));
    Ok((lock, current))
}

/// Removes every generation but `keep`: those left by interrupted writers
/// and those replaced since. A generation a reader holds (see
/// [`pin_generation`]) is left for a later writer to remove.
fn remove_generations(root: &Path, keep: Option<&str>) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("gen-") || Some(name.as_str()) == keep {
            continue;
        }
        let dir = File::open(e.path());
        if let Ok(Err(fs::TryLockError::WouldBlock)) = dir.as_ref().map(File::try_lock) {
            continue; // held by a reader
        }
        // `dir` keeps its exclusive lock while the folder is removed, so no
        // reader takes hold of it halfway. Where locks are not supported,
        // the folder is removed all the same.
        let _ = fs::remove_dir_all(e.path());
        drop(dir);
    }
}

/// A reader's hold on a generation: a shared lock on its directory, kept
/// for as long as the [`Index`] lives. Writers remove a replaced generation
/// only when they can lock it exclusively, so its files do not vanish
/// while a reader opens or uses them. `None` when the directory is gone
/// (it was replaced and removed), or when locking is not supported, in
/// which case the open relies on its retries alone.
fn pin_generation(gen_dir: &Path) -> Option<File> {
    let dir = File::open(gen_dir).ok()?;
    dir.lock_shared().ok()?;
    // A writer may have removed the directory while this waited for the
    // lock: then the hold is on nothing.
    gen_dir.is_dir().then_some(dir)
}

fn new_generation(root: &Path) -> Result<(String, PathBuf), IndexError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let gen_name = format!("gen-{nanos}-{}", std::process::id());
    let gen_dir = root.join(&gen_name);
    fs::create_dir(&gen_dir).map_err(io(&gen_dir))?;
    Ok((gen_name, gen_dir))
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
        if previous.store_only && previous.len > 0 {
            return Err(IndexError::Vector(
                "an update needs the previous graph: open the index with Index::open".into(),
            ));
        }
        let (lock, current) = lock_root(root)?;
        let prev_gen = previous
            .gen_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if current != prev_gen {
            return Err(IndexError::Changed {
                path: root.display().to_string(),
            });
        }
        let (gen_name, gen_dir) = new_generation(root)?;
        let from = previous.gen_dir.join(STORE);
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
        let Index { hnsw, .. } = previous;
        let base = match hnsw {
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
                CosineDistance,
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
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES
                ('index', ?1), ('graph_files', ?2), ('chunks', ?3), ('next_id', ?4)",
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
        // Publish: write CURRENT beside, then rename over the old one.
        let tmp = root.join("CURRENT.tmp");
        fs::write(&tmp, format!("{gen_name}\n")).map_err(io(&tmp))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, root.join(CURRENT)).map_err(io(&root))?;
        fsync_dir(&root);
        remove_generations(&root, Some(&gen_name));
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

/// Searches the graph, leaving out the `removed` ids (sorted).
fn search_graph(
    hnsw: &Hnsw<'static, f32, CosineDistance>,
    removed: &[usize],
    q: &[f32],
    k: usize,
    ef: usize,
) -> Vec<(u64, f32)> {
    let found = if removed.is_empty() {
        hnsw.search(q, k, ef)
    } else {
        let live = |id: &usize| removed.binary_search(id).is_err();
        hnsw.search_filter(q, k, ef, Some(&live))
    };
    found
        .into_iter()
        .map(|n| (n.d_id as u64, 1.0 - n.distance))
        .collect()
}

fn load_graph(loader: &'static mut HnswIo) -> anyhow::Result<Hnsw<'static, f32, CosineDistance>> {
    loader.load_hnsw::<f32, CosineDistance>()
}

/// A loaded, read-only index.
pub struct Index {
    root: PathBuf,
    gen_dir: PathBuf,
    conn: Connection,
    meta: IndexMeta,
    hnsw: Option<Hnsw<'static, f32, CosineDistance>>,
    len: usize,
    /// Ids in the graph whose chunks were removed, sorted.
    removed: Vec<usize>,
    /// Opened by [`Index::open_store`]: the graph was not loaded.
    store_only: bool,
    /// The hold on the generation (see [`pin_generation`]).
    _pin: Option<File>,
}

impl Index {
    /// Whether `root` holds a published index.
    pub fn exists(root: &Path) -> bool {
        root.join(CURRENT).is_file()
    }

    /// Opens the live generation under `root`.
    pub fn open(root: &Path) -> Result<Index, IndexError> {
        Self::open_with(root, true)
    }

    /// Opens the live generation's store only, for reading its files and
    /// chunks: the graph files' sizes are checked but they are neither
    /// hashed nor loaded, which on a large index saves most of the time and
    /// memory of opening it. Dense search is refused on such an index.
    pub fn open_store(root: &Path) -> Result<Index, IndexError> {
        Self::open_with(root, false)
    }

    fn open_with(root: &Path, graph: bool) -> Result<Index, IndexError> {
        // A writer publishes a generation and then removes the one before
        // it, which may be the one being opened here: then any step of the
        // open can fail (a file or the whole directory gone). An error on a
        // generation that is no longer CURRENT says nothing about the index;
        // open the new one instead.
        for _ in 0..OPEN_ATTEMPTS {
            let Some(gen) = read_current(root)? else {
                return Err(IndexError::NotFound {
                    path: root.display().to_string(),
                });
            };
            let gen_dir = root.join(&gen);
            let pin = pin_generation(&gen_dir);
            let opened = if gen_dir.is_dir() {
                Self::open_generation(root, &gen_dir, graph).map(|mut ix| {
                    ix._pin = pin;
                    ix
                })
            } else {
                Err(Self::damaged(
                    root,
                    format!("{gen} named by CURRENT is missing"),
                ))
            };
            match opened {
                Err(_) if read_current(root)?.as_deref() != Some(&gen) => continue,
                other => return other,
            }
        }
        Err(IndexError::Changed {
            path: root.display().to_string(),
        })
    }

    fn damaged(root: &Path, why: impl Into<String>) -> IndexError {
        IndexError::Damaged {
            path: root.display().to_string(),
            why: why.into(),
        }
    }

    fn open_generation(root: &Path, gen_dir: &Path, graph: bool) -> Result<Index, IndexError> {
        let store = gen_dir.join(STORE);
        if !store.is_file() {
            return Err(Self::damaged(
                root,
                format!("{} is missing", store.display()),
            ));
        }
        Self::check_store(root, gen_dir, &store)?;
        let conn = Connection::open_with_flags(
            &store,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Self::damaged(root, format!("the store cannot be opened: {e}")))?;
        let get = |key: &str| -> Result<Option<String>, IndexError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(|e| Self::damaged(root, format!("the store cannot be read: {e}")))
        };
        let meta_json =
            get("index")?.ok_or_else(|| Self::damaged(root, "the store has no metadata"))?;
        let format: serde_json::Value = serde_json::from_str(&meta_json)
            .map_err(|e| Self::damaged(root, format!("metadata: {e}")))?;
        let found = format.get("format").and_then(|f| f.as_u64()).unwrap_or(0) as u32;
        if found < FORMAT_VERSION {
            return Err(IndexError::Outdated {
                path: root.display().to_string(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        if found > FORMAT_VERSION {
            return Err(IndexError::Format {
                path: root.display().to_string(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let meta: IndexMeta = serde_json::from_value(format)
            .map_err(|e| Self::damaged(root, format!("metadata: {e}")))?;
        let len: usize = get("chunks")?.and_then(|s| s.parse().ok()).unwrap_or(0);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
            .map_err(|e| Self::damaged(root, format!("the store cannot be read: {e}")))?;
        if rows as usize != len {
            return Err(Self::damaged(
                root,
                format!("the store holds {rows} chunks, its metadata {len}"),
            ));
        }
        let removed: Vec<usize> = conn
            .prepare("SELECT id FROM removed ORDER BY id")
            .and_then(|mut st| {
                st.query_map([], |r| Ok(r.get::<_, i64>(0)? as usize))?
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| Self::damaged(root, format!("the store cannot be read: {e}")))?;
        let mut index = Index {
            root: root.to_path_buf(),
            gen_dir: gen_dir.to_path_buf(),
            conn,
            meta,
            hnsw: None,
            len,
            removed,
            store_only: true,
            _pin: None,
        };
        if graph {
            index.load_graph()?;
        } else {
            index.check_graph_files(&index.graph_files()?, false)?;
        }
        Ok(index)
    }

    /// The graph files recorded in the store.
    fn graph_files(&self) -> Result<Vec<GraphFile>, IndexError> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'graph_files'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| Self::damaged(&self.root, format!("the store cannot be read: {e}")))?;
        serde_json::from_str(&json.unwrap_or_default())
            .map_err(|e| Self::damaged(&self.root, format!("graph metadata: {e}")))
    }

    /// Checks that the graph files are there with their recorded sizes and,
    /// with `hash`, their sha256 (when small enough to hash quickly).
    fn check_graph_files(&self, graph_files: &[GraphFile], hash: bool) -> Result<(), IndexError> {
        let root = &self.root;
        if self.len > 0 && graph_files.is_empty() {
            return Err(Self::damaged(root, "the graph files are not recorded"));
        }
        for f in graph_files {
            let path = self.gen_dir.join(&f.name);
            let size = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(_) => {
                    return Err(Self::damaged(
                        root,
                        format!("graph file {} is missing", f.name),
                    ))
                }
            };
            if size != f.size {
                return Err(Self::damaged(
                    root,
                    format!(
                        "graph file {} has {size} bytes, {} were written",
                        f.name, f.size
                    ),
                ));
            }
            if hash
                && size <= HASH_AT_LOAD_LIMIT
                && sha256_file(&path).map_err(io(&path))? != f.sha256
            {
                return Err(Self::damaged(
                    root,
                    format!("graph file {} does not match its checksum", f.name),
                ));
            }
        }
        Ok(())
    }

    /// An index opened by [`Index::open_store`], with its graph checked and
    /// loaded, as [`Index::open`] would have opened it. Fails with
    /// [`IndexError::Changed`] when another writer has published since.
    pub fn with_graph(mut self) -> Result<Index, IndexError> {
        if !self.store_only {
            return Ok(self);
        }
        let gen = self
            .gen_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if read_current(&self.root)? != gen {
            return Err(IndexError::Changed {
                path: self.root.display().to_string(),
            });
        }
        match self.load_graph() {
            // The generation was replaced (and removed) during the load.
            Err(_) if read_current(&self.root)? != gen => Err(IndexError::Changed {
                path: self.root.display().to_string(),
            }),
            Err(e) => Err(e),
            Ok(()) => Ok(self),
        }
    }

    /// Checks the graph files (sizes and sha256) and loads the graph.
    fn load_graph(&mut self) -> Result<(), IndexError> {
        let graph_files = self.graph_files()?;
        self.check_graph_files(&graph_files, true)?;
        let root = &self.root;
        let points = self.len + self.removed.len();
        self.hnsw = if self.len > 0 {
            let basename = graph_files[0]
                .name
                .trim_end_matches(".hnsw.graph")
                .to_string();
            // hnsw_rs ties the loaded graph's lifetime to its loader; the
            // loader is small and lives as long as the index, so it is leaked.
            let loader: &'static mut HnswIo =
                Box::leak(Box::new(HnswIo::new(&self.gen_dir, &basename)));
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let loader = loader;
                load_graph(loader)
            }));
            let mut hnsw = match loaded {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    return Err(Self::damaged(
                        root,
                        format!("the graph cannot be loaded: {e}"),
                    ))
                }
                Err(_) => return Err(Self::damaged(root, "the graph cannot be loaded")),
            };
            if hnsw.get_nb_point() != points {
                return Err(Self::damaged(
                    root,
                    format!(
                        "the graph holds {} vectors, the store {} chunks and {} removed ids",
                        hnsw.get_nb_point(),
                        self.len,
                        self.removed.len()
                    ),
                ));
            }
            hnsw.set_searching_mode(true);
            Some(hnsw)
        } else {
            None
        };
        self.store_only = false;
        Ok(())
    }
    /// Compares the store file with the size and sha256 recorded when it
    /// was committed (hashed only when small enough, like the graph).
    fn check_store(root: &Path, gen_dir: &Path, store: &Path) -> Result<(), IndexError> {
        let sum_path = gen_dir.join(STORE_SUM);
        let recorded: StoreChecksum = match fs::read(&sum_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Self::damaged(root, format!("{STORE_SUM}: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Self::damaged(root, format!("{STORE_SUM} is missing")))
            }
            Err(e) => return Err(io(&sum_path)(e)),
        };
        let size = fs::metadata(store).map_err(io(store))?.len();
        if size != recorded.size {
            return Err(Self::damaged(
                root,
                format!("{STORE} has {size} bytes, {} were written", recorded.size),
            ));
        }
        if size <= HASH_AT_LOAD_LIMIT && sha256_file(store).map_err(io(store))? != recorded.sha256 {
            return Err(Self::damaged(
                root,
                format!("{STORE} does not match its checksum"),
            ));
        }
        Ok(())
    }

    fn check_graph_loaded(&self) -> Result<(), IndexError> {
        if self.store_only {
            return Err(IndexError::Vector(
                "this index was opened without its graph (Index::open_store); open it with Index::open to search".into(),
            ));
        }
        Ok(())
    }

    /// Removed ids still in the graph, filtered out of every search.
    pub fn removed_in_graph(&self) -> usize {
        self.removed.len()
    }

    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of the live generation.
    pub fn generation_dir(&self) -> &Path {
        &self.gen_dir
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Refuses an encoder other than the one that built the index.
    pub fn check_encoder(&self, info: &EncoderInfo) -> Result<(), IndexError> {
        let mine = &self.meta.encoder;
        if mine.id != info.id
            || mine.revision != info.revision
            || mine.dim != info.dim
            || mine.pooling != info.pooling
            || mine.normalize != info.normalize
            || mine.max_seq_len != info.max_seq_len
        {
            return Err(IndexError::EncoderMismatch {
                path: self.root.display().to_string(),
                index: mine.describe(),
                index_id: mine.id.clone(),
                query: info.describe(),
            });
        }
        Ok(())
    }

    /// The `k` nearest chunk ids to `query` with their cosine similarity,
    /// best first. `ef` is the search breadth (at least `k` is used).
    pub fn dense(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        if query.len() != self.meta.encoder.dim {
            return Err(IndexError::Vector(format!(
                "the query has {} dimensions, the index {}",
                query.len(),
                self.meta.encoder.dim
            )));
        }
        self.check_graph_loaded()?;
        let Some(hnsw) = &self.hnsw else {
            return Ok(Vec::new());
        };
        let mut q = query.to_vec();
        normalize(&mut q);
        Ok(search_graph(hnsw, &self.removed, &q, k, ef.max(k)))
    }

    /// [`Index::dense`] for many queries at once, searched in parallel on
    /// rayon's pool (throughput measurements).
    pub fn dense_parallel(
        &self,
        queries: &[Vec<f32>],
        k: usize,
        ef: usize,
    ) -> Result<Vec<Vec<(u64, f32)>>, IndexError> {
        self.check_graph_loaded()?;
        let Some(hnsw) = &self.hnsw else {
            return Ok(vec![Vec::new(); queries.len()]);
        };
        let mut qs = queries.to_vec();
        for q in &mut qs {
            if q.len() != self.meta.encoder.dim {
                return Err(IndexError::Vector(format!(
                    "a query has {} dimensions, the index {}",
                    q.len(),
                    self.meta.encoder.dim
                )));
            }
            normalize(q);
        }
        use rayon::prelude::*;
        let removed = &self.removed;
        Ok(qs
            .par_iter()
            .map(|q| search_graph(hnsw, removed, q, k, ef.max(k)))
            .collect())
    }

    /// Exact nearest neighbours by scanning every stored vector; the
    /// reference that HNSW recall is measured against.
    pub fn exact(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        let mut q = query.to_vec();
        normalize(&mut q);
        let mut stmt = self.conn.prepare_cached("SELECT id, vector FROM chunks")?;
        let mut rows = stmt.query([])?;
        let mut all = Vec::with_capacity(self.len);
        while let Some(r) = rows.next()? {
            let v = blob_vector(&r.get::<_, Vec<u8>>(1)?);
            all.push((r.get::<_, i64>(0)? as u64, crate::distance::dot(&q, &v)));
        }
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        Ok(all)
    }

    /// Dense search that fetches the chunks: the `k` best hits, best first.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Hit>, IndexError> {
        let ids = self.dense(query, k, ef)?;
        let chunks = self.chunks(&ids.iter().map(|(id, _)| *id).collect::<Vec<_>>())?;
        Ok(ids
            .into_iter()
            .zip(chunks)
            .map(|((_, score), chunk)| Hit {
                score,
                similarity: score,
                chunk,
            })
            .collect())
    }

    /// Rows of the lexical table: always [`Index::len`] in a sound index.
    pub fn lexical_len(&self) -> Result<usize, IndexError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM lexical", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// BM25 over the chunks' lexical terms: the `k` best chunk ids with
    /// their BM25 score (higher is better).
    pub fn lexical(&self, query: &str, k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        let mut terms = docent_core::lexical_terms(query);
        let mut seen = std::collections::HashSet::new();
        terms.retain(|t| seen.insert(t.clone()));
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        // A term in more than a quarter of the chunks has an IDF of at most
        // ln 3 (FTS5's BM25: nothing at all past half), against 5 to 12 for
        // the terms that pick passages out; scanning its long postings would
        // cost most of the query's time for almost none of its ranking.
        let mut df_stmt = self
            .conn
            .prepare_cached("SELECT doc FROM lexical_vocab WHERE term = ?1")?;
        let mut with_df: Vec<(String, i64)> = Vec::with_capacity(terms.len());
        for t in terms {
            let df: i64 = df_stmt
                .query_row([&t], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            if df > 0 {
                with_df.push((t, df));
            }
        }
        // (Small indexes keep every term: there is no time to save.)
        let common = (self.len / 4).max(64) as i64;
        let rarest = with_df.iter().map(|x| x.1).min();
        let mut terms: Vec<String> = with_df
            .into_iter()
            .filter(|(_, df)| *df <= common || Some(*df) == rarest)
            .map(|(t, _)| t)
            .collect();
        terms.truncate(64);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let expr = terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut stmt = self.conn.prepare_cached(
            "SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ?1
             ORDER BY bm25(lexical) LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![expr, k as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, -(r.get::<_, f64>(1)? as f32)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The `k` best chunk ids for a query in `mode`, with their ranking
    /// scores. Hybrid mode fuses the two lists with [`docent_core::fuse`],
    /// the dense list weighted by the query's script.
    pub fn retrieve(
        &self,
        text: &str,
        vector: &[f32],
        k: usize,
        ef: usize,
        mode: SearchMode,
    ) -> Result<Vec<(u64, f32)>, IndexError> {
        match mode {
            SearchMode::Dense => self.dense(vector, k, ef),
            SearchMode::Lexical => self.lexical(text, k),
            SearchMode::Hybrid => {
                let pool = (k * 4).max(40);
                let dense = self.dense(vector, pool, ef.max(pool))?;
                let lexical = self.lexical(text, pool)?;
                Ok(docent_core::fuse(
                    &dense,
                    &lexical,
                    docent_core::dense_weight(text),
                    k,
                ))
            }
        }
    }

    /// [`Index::retrieve`], then the chunks and each one's cosine similarity.
    pub fn search_mode(
        &self,
        text: &str,
        vector: &[f32],
        k: usize,
        ef: usize,
        mode: SearchMode,
    ) -> Result<Vec<Hit>, IndexError> {
        let ranked = self.retrieve(text, vector, k, ef, mode)?;
        let ids: Vec<u64> = ranked.iter().map(|(id, _)| *id).collect();
        let chunks = self.chunks(&ids)?;
        let mut q = vector.to_vec();
        normalize(&mut q);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT vector FROM chunks WHERE id = ?1")?;
        ranked
            .into_iter()
            .zip(chunks)
            .map(|((id, score), chunk)| {
                let v = blob_vector(&stmt.query_row([id as i64], |r| r.get::<_, Vec<u8>>(0))?);
                Ok(Hit {
                    score,
                    similarity: crate::distance::dot(&q, &v),
                    chunk,
                })
            })
            .collect()
    }

    /// Chunks by id, in the order asked.
    pub fn chunks(&self, ids: &[u64]) -> Result<Vec<StoredChunk>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.path, c.ordinal, c.text, c.byte_start, c.byte_end, c.char_start, c.char_end,
                    c.line, c.page, c.heading_path, c.tokens
             FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let chunk = stmt
                .query_row([id as i64], |r| {
                    let heading: String = r.get(9)?;
                    Ok(Chunk {
                        path: r.get(0)?,
                        ordinal: r.get(1)?,
                        text: r.get(2)?,
                        byte_span: r.get::<_, i64>(3)? as usize..r.get::<_, i64>(4)? as usize,
                        char_span: r.get::<_, i64>(5)? as usize..r.get::<_, i64>(6)? as usize,
                        line: r.get(7)?,
                        page: r.get(8)?,
                        heading_path: serde_json::from_str(&heading).unwrap_or_default(),
                        tokens: r.get(10)?,
                    })
                })
                .optional()?
                .ok_or_else(|| {
                    Self::damaged(
                        &self.root,
                        format!("chunk {id} is in the graph but not the store"),
                    )
                })?;
            out.push(StoredChunk { id, chunk });
        }
        Ok(out)
    }

    /// Every indexed file.
    pub fn files(&self) -> Result<Vec<FileRecord>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, sha256, size, kind, chunks FROM files ORDER BY path")?;
        let rows = stmt.query_map([], |r| {
            Ok(FileRecord {
                path: r.get(0)?,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                kind: r.get(3)?,
                chunks: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stored (normalised) vectors by chunk id, for benchmarks and checks.
    pub fn vectors(&self) -> Result<Vec<(u64, Vec<f32>)>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, vector FROM chunks ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                blob_vector(&r.get::<_, Vec<u8>>(1)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
