//! Queries on an open index: dense search through the graph, BM25 through
//! the lexical table, exact search, and reading chunks and files back.

use docent_core::Chunk;
use hnsw_rs::prelude::Hnsw;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::distance::{dot, normalize, CosineDistance};
use crate::schema::blob_vector;
use crate::{FileRecord, Index, IndexError};

/// The postings a lexical query's terms may hold between them (see
/// [`Index::lexical`]), chosen by measurement at 1,000,000 chunks
/// (docs/benchmarks.md, "Lexical search at scale").
pub const POSTINGS_BUDGET: u64 = 50_000;

/// How many candidates of the rarer terms a budgeted lexical search scores
/// with every term (at least twice the results asked for).
const RESCORED: usize = 100;

/// FTS5's count of rows and of tokens, from its "averages" record (row 1
/// of `lexical_data`: SQLite varints, rows first, then tokens per column).
fn lexical_totals(conn: &rusqlite::Connection) -> Result<Option<(f64, f64)>, IndexError> {
    let block: Option<Vec<u8>> = conn
        .query_row("SELECT block FROM lexical_data WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(block) = block else {
        return Ok(None);
    };
    let mut at = 0;
    let rows = varint(&block, &mut at);
    let tokens = varint(&block, &mut at);
    Ok(match (rows, tokens) {
        (Some(r), Some(t)) if r > 0 => Some((r as f64, t as f64)),
        _ => None,
    })
}

/// A SQLite varint at `*at` (big-endian, seven bits a byte, the ninth byte
/// whole), or `None` past the end.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let x = *b.get(*at + i)?;
        if i == 8 {
            *at += 9;
            return Some((v << 8) | x as u64);
        }
        v = (v << 7) | (x & 0x7f) as u64;
        if x < 0x80 {
            *at += i + 1;
            return Some(v);
        }
    }
    None
}

/// FTS5's BM25 (k1 1.2, b 0.75, IDF floored at 1e-6), computed here for a
/// row's terms: the same score `bm25(lexical)` gives, with the sign turned.
struct Bm25<'a> {
    terms: &'a [(String, i64)],
    idf: Vec<f64>,
    avgdl: f64,
}

impl<'a> Bm25<'a> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;

    fn new(rows: f64, tokens: f64, terms: &'a [(String, i64)]) -> Bm25<'a> {
        let idf = terms
            .iter()
            .map(|(_, df)| {
                let df = *df as f64;
                let v = ((rows - df + 0.5) / (df + 0.5)).ln();
                if v <= 0.0 {
                    1e-6
                } else {
                    v
                }
            })
            .collect();
        Bm25 {
            terms,
            idf,
            avgdl: tokens / rows,
        }
    }

    /// The score of a row whose column holds `text` (terms separated by
    /// spaces, as written by `insert_terms`).
    fn score(&self, text: &str) -> f32 {
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        let dl = words.len() as f64;
        let norm = Self::K1 * (1.0 - Self::B + Self::B * dl / self.avgdl);
        let mut score = 0.0;
        for ((term, _), idf) in self.terms.iter().zip(&self.idf) {
            let tf = words.iter().filter(|w| **w == term.as_str()).count() as f64;
            if tf > 0.0 {
                score += idf * tf * (Self::K1 + 1.0) / (tf + norm);
            }
        }
        score as f32
    }
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
    /// The ranking score: cosine similarity in dense search, BM25 in
    /// lexical search, the fused score (0 to 1) in hybrid search.
    pub score: f32,
    /// Cosine similarity of query and chunk, whatever the ranking.
    pub similarity: f32,
    #[serde(flatten)]
    pub chunk: StoredChunk,
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

impl Index {
    fn missing_chunk(&self, id: u64) -> IndexError {
        Self::damaged(
            self.root(),
            format!("chunk {id} is in the graph but not the store"),
        )
    }

    /// The `k` nearest chunk ids to `query` with their cosine similarity,
    /// best first. `ef` is the search breadth (at least `k` is used).
    pub fn dense(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        if query.len() != self.meta().encoder.dim {
            return Err(IndexError::Vector(format!(
                "the query has {} dimensions, the index {}",
                query.len(),
                self.meta().encoder.dim
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
            if q.len() != self.meta().encoder.dim {
                return Err(IndexError::Vector(format!(
                    "a query has {} dimensions, the index {}",
                    q.len(),
                    self.meta().encoder.dim
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
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare_cached("SELECT id, vector FROM chunks")?;
        let mut rows = stmt.query([])?;
        let mut all = Vec::with_capacity(self.len());
        while let Some(r) = rows.next()? {
            let v = blob_vector(&r.get::<_, Vec<u8>>(1)?);
            all.push((r.get::<_, i64>(0)? as u64, dot(&q, &v)));
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

    /// Whether some chunk holds a lexical term from `from` (inclusive) to
    /// `to` (exclusive), in code point order: with the bounds of the Hangul
    /// syllables, whether the index holds Korean text at all. One seek in
    /// the vocabulary.
    pub fn holds_terms_between(&self, from: &str, to: &str) -> Result<bool, IndexError> {
        let conn = self.pool.get()?;
        let found: bool = conn.query_row(
            if self.df_table {
                "SELECT EXISTS (SELECT 1 FROM lexical_df WHERE term >= ?1 AND term < ?2)"
            } else {
                "SELECT EXISTS (SELECT 1 FROM lexical_vocab WHERE term >= ?1 AND term < ?2)"
            },
            [from, to],
            |r| r.get(0),
        )?;
        Ok(found)
    }

    /// Rows of the lexical table: always [`Index::len`] in a sound index.
    pub fn lexical_len(&self) -> Result<usize, IndexError> {
        let n: i64 = self
            .pool
            .get()?
            .query_row("SELECT count(*) FROM lexical", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// BM25 over the chunks' lexical terms: the `k` best chunk ids with
    /// their BM25 score (higher is better), within [`POSTINGS_BUDGET`].
    pub fn lexical(&self, query: &str, k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        self.lexical_within(query, k, POSTINGS_BUDGET)
    }

    /// [`Index::lexical`] with the postings of the query's terms bounded by
    /// `budget` (`u64::MAX`: every term that can count).
    pub fn lexical_within(
        &self,
        query: &str,
        k: usize,
        budget: u64,
    ) -> Result<Vec<(u64, f32)>, IndexError> {
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        let mut terms = docent_core::lexical_terms(query);
        let mut seen = std::collections::HashSet::new();
        terms.retain(|t| seen.insert(t.clone()));
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        // FTS5 scores every chunk that holds any term of the query, so a
        // query's time follows the postings of its terms. The common terms
        // weigh least in BM25 (IDF ln((N - df + 0.5) / (df + 0.5)): about 2
        // for a term in a tenth of the chunks, nothing past half, against 5
        // to 12 for the terms that pick passages out). So the candidates
        // come from the rarer terms alone, taken rarest first while their
        // postings fit in the budget (the rarest always), and then only
        // those candidates are scored with every term ([`Bm25`], computed
        // as FTS5 computes it, over the whole query). Below the budget
        // (every index of up to POSTINGS_BUDGET chunks with a short query)
        // that is one search.
        let conn = self.pool.get()?;
        let mut df_stmt = conn.prepare_cached(if self.df_table {
            "SELECT doc FROM lexical_df WHERE term = ?1"
        } else {
            "SELECT doc FROM lexical_vocab WHERE term = ?1"
        })?;
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
        with_df.sort_by_key(|x| x.1);
        // A term in more than half of the chunks adds nothing to BM25.
        let half = (self.len() / 2).max(64) as i64;
        let rarest = with_df.first().map_or(0, |t| t.1);
        with_df.retain(|(_, df)| *df <= half || *df == rarest);
        with_df.truncate(64);
        if with_df.is_empty() {
            return Ok(Vec::new());
        }
        let mut postings = 0i64;
        let rare = with_df
            .iter()
            .enumerate()
            .take_while(|(i, (_, df))| {
                postings = postings.saturating_add(*df);
                *i == 0 || postings <= budget
            })
            .count();
        let expr = |terms: &[(String, i64)], op: &str| {
            terms
                .iter()
                .map(|(t, _)| format!("\"{}\"", t.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(op)
        };
        let mut stmt = conn.prepare_cached(
            "SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ?1
             ORDER BY bm25(lexical) LIMIT ?2",
        )?;
        let mut search = |expr: String, limit: usize| -> Result<Vec<(u64, f32)>, IndexError> {
            let rows = stmt.query_map(params![expr, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, -(r.get::<_, f64>(1)? as f32)))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        if rare == with_df.len() {
            return search(expr(&with_df, " OR "), k);
        }
        let wanted = (2 * k).max(RESCORED);
        // Even the rarest term can be over the budget (a question of
        // common words, or a large collection). Then the candidates are
        // the chunks that hold the rarest terms together, as many of them
        // as it takes for the chunks expected to hold them all (were
        // terms independent) to fit in the budget: FTS5 walks their
        // postings but scores only the chunks in all of them. When fewer
        // than `k` hold them all, the candidates of the rarer terms taken
        // one by one are added.
        let chunks = self.len().max(1) as f64;
        let mut expected = with_df[0].1 as f64;
        let together = 1 + with_df[1..]
            .iter()
            .take_while(|(_, df)| {
                let over = expected > budget as f64;
                expected *= *df as f64 / chunks;
                over
            })
            .count();
        let mut candidates = Vec::new();
        if together > 1 {
            candidates = search(expr(&with_df[..together], " AND "), wanted)?;
        }
        if candidates.len() < k {
            for c in search(expr(&with_df[..rare], " OR "), wanted)? {
                if !candidates.iter().any(|x| x.0 == c.0) {
                    candidates.push(c);
                }
            }
        }
        let Some((rows, tokens)) = lexical_totals(&conn)? else {
            // No totals to score with: the rarer terms' ranking stands.
            candidates.truncate(k);
            return Ok(candidates);
        };
        let bm25 = Bm25::new(rows, tokens, &with_df);
        let mut text = conn.prepare_cached("SELECT terms FROM lexical WHERE rowid = ?1")?;
        let mut scored = Vec::with_capacity(candidates.len());
        for (id, _) in candidates {
            let terms: String = text.query_row([id as i64], |r| r.get(0))?;
            scored.push((id, bm25.score(&terms)));
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        Ok(scored)
    }

    /// The cosine similarity of `query` with each stored chunk of `ids`, in
    /// the order asked.
    pub fn similarities(&self, query: &[f32], ids: &[u64]) -> Result<Vec<f32>, IndexError> {
        let mut q = query.to_vec();
        normalize(&mut q);
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare_cached("SELECT vector FROM chunks WHERE id = ?1")?;
        ids.iter()
            .map(|&id| {
                let v = stmt
                    .query_row([id as i64], |r| r.get::<_, Vec<u8>>(0))
                    .optional()?
                    .ok_or_else(|| self.missing_chunk(id))?;
                Ok(dot(&q, &blob_vector(&v)))
            })
            .collect()
    }

    /// Chunks by id, in the order asked; an id the store does not hold is
    /// a damaged index (the ids come from the index's own graph or table).
    pub fn chunks(&self, ids: &[u64]) -> Result<Vec<StoredChunk>, IndexError> {
        ids.iter()
            .map(|&id| self.chunk(id)?.ok_or_else(|| self.missing_chunk(id)))
            .collect()
    }

    /// The chunk `id`, or `None` when the store holds no such chunk (an id
    /// from outside, such as a link to a chunk since re-indexed).
    pub fn chunk(&self, id: u64) -> Result<Option<StoredChunk>, IndexError> {
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare_cached(
            "SELECT f.path, c.ordinal, c.text, c.byte_start, c.byte_end, c.char_start, c.char_end,
                    c.line, c.page, c.heading_path, c.tokens
             FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id = ?1",
        )?;
        let chunk = stmt
            .query_row([key], |r| {
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
            .optional()?;
        Ok(chunk.map(|chunk| StoredChunk { id, chunk }))
    }

    /// Every indexed file.
    pub fn files(&self) -> Result<Vec<FileRecord>, IndexError> {
        let conn = self.pool.get()?;
        let mut stmt =
            conn.prepare("SELECT path, sha256, size, kind, chunks FROM files ORDER BY path")?;
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
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT id, vector FROM chunks ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                blob_vector(&r.get::<_, Vec<u8>>(1)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
