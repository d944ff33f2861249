//! Opening an index for reading: the live generation, checked for damage
//! before anything is answered from it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use docent_core::EncoderInfo;
use hnsw_rs::prelude::{Hnsw, HnswIo};
use rusqlite::OptionalExtension;

use crate::distance::CosineDistance;
use crate::error::io;
use crate::generation::{live_generation, pin_generation, CURRENT};
use crate::pool::{open_read_only, ConnPool};
use crate::schema::{sha256_file, GraphFile, StoreChecksum, HASH_AT_LOAD_LIMIT, STORE, STORE_SUM};
use crate::{IndexError, IndexMeta, FORMAT_VERSION};

/// How many publishes in a row an open may run into before it gives up.
const OPEN_ATTEMPTS: usize = 20;

fn load_graph(loader: &'static mut HnswIo) -> anyhow::Result<Hnsw<'static, f32, CosineDistance>> {
    loader.load_hnsw::<f32, CosineDistance>()
}

/// A loaded, read-only index.
///
/// An `Index` is `Sync`: threads share one (behind an `Arc`) and search it
/// at once. The graph is read-only once loaded, and store queries each take
/// a connection from a small pool ([`crate::pool`]).
pub struct Index {
    root: PathBuf,
    gen_name: String,
    gen_dir: PathBuf,
    pub(crate) pool: ConnPool,
    meta: IndexMeta,
    pub(crate) hnsw: Option<Hnsw<'static, f32, CosineDistance>>,
    len: usize,
    /// Ids in the graph whose chunks were removed, sorted.
    pub(crate) removed: Vec<usize>,
    /// Opened by [`Index::open_store`]: the graph was not loaded.
    store_only: bool,
    /// Whether the store's `lexical_df` table is current (see the schema);
    /// else document frequencies come from FTS5's vocabulary.
    pub(crate) df_table: bool,
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

    /// The live generation's metadata alone: no checksum, no graph, no
    /// other table. Cheap enough to decide which encoder to load before
    /// the index is opened (and checked) for real; never answer from it.
    pub fn read_meta(root: &Path) -> Result<IndexMeta, IndexError> {
        let Some(gen) = live_generation(root)? else {
            return Err(IndexError::NotFound {
                path: root.display().to_string(),
            });
        };
        let unreadable = |e: &dyn std::fmt::Display| {
            Self::damaged(root, format!("the store's metadata cannot be read: {e}"))
        };
        let conn = open_read_only(&root.join(gen).join(STORE)).map_err(|e| unreadable(&e))?;
        let json: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                r.get(0)
            })
            .map_err(|e| unreadable(&e))?;
        serde_json::from_str(&json).map_err(|e| unreadable(&e))
    }

    fn open_with(root: &Path, graph: bool) -> Result<Index, IndexError> {
        // A writer publishes a generation and then removes the one before
        // it, which may be the one being opened here: then any step of the
        // open can fail (a file or the whole directory gone). An error on a
        // generation that is no longer CURRENT says nothing about the index;
        // open the new one instead.
        for _ in 0..OPEN_ATTEMPTS {
            let Some(gen) = live_generation(root)? else {
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
                Err(_) if live_generation(root)?.as_deref() != Some(&gen) => continue,
                other => return other,
            }
        }
        Err(IndexError::Changed {
            path: root.display().to_string(),
        })
    }

    pub(crate) fn damaged(root: &Path, why: impl Into<String>) -> IndexError {
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
        let conn = open_read_only(&store)
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
        let df_table = get("lexical_df_chunks")?.and_then(|s| s.parse::<usize>().ok()) == Some(len);
        let removed: Vec<usize> = conn
            .prepare("SELECT id FROM removed ORDER BY id")
            .and_then(|mut st| {
                st.query_map([], |r| Ok(r.get::<_, i64>(0)? as usize))?
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| Self::damaged(root, format!("the store cannot be read: {e}")))?;
        let gen_name = gen_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut index = Index {
            root: root.to_path_buf(),
            gen_name,
            gen_dir: gen_dir.to_path_buf(),
            pool: ConnPool::new(store, conn),
            meta,
            hnsw: None,
            len,
            removed,
            store_only: true,
            df_table,
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
        let conn = self
            .pool
            .get()
            .map_err(|e| Self::damaged(&self.root, format!("the store cannot be read: {e}")))?;
        let json: Option<String> = conn
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
        let gen = Some(self.gen_name.clone());
        if live_generation(&self.root)? != gen {
            return Err(IndexError::Changed {
                path: self.root.display().to_string(),
            });
        }
        match self.load_graph() {
            // The generation was replaced (and removed) during the load.
            Err(_) if live_generation(&self.root)? != gen => Err(IndexError::Changed {
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

    pub(crate) fn check_graph_loaded(&self) -> Result<(), IndexError> {
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

    /// The folder of the generation this index opened.
    pub fn generation_dir(&self) -> &Path {
        &self.gen_dir
    }

    /// The name of the generation this index opened; compare it with
    /// [`live_generation`] to find out whether a writer has published a
    /// newer one since.
    pub fn generation(&self) -> &str {
        &self.gen_name
    }

    /// Whether the index was opened by [`Index::open_store`], without its graph.
    pub fn is_store_only(&self) -> bool {
        self.store_only
    }

    /// The graph, for a writer that extends it (the generation's hold
    /// is released).
    pub(crate) fn into_graph(self) -> Option<Hnsw<'static, f32, CosineDistance>> {
        self.hnsw
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
}
