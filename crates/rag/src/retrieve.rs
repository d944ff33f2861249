//! Retrieval: a question's vector and words against the index's graph and
//! lexical table, fused into one ranking, then the chunks read back.
//!
//! Hybrid search (the default) takes a wider pool from each side, `max(4k,
//! 40)`, scales each list to [0, 1] and adds them with a dense weight chosen
//! from the question's script and the encoder's settings recorded with the
//! index ([`docent_core::RetrievalSettings::dense_weight`]), and keeps the
//! best `k`. Every chunk either side returned is a [`Candidate`] with its
//! scores, so a trace can show why the kept ones won.

use docent_embed::Encoder;
use docent_index::{Hit, Index};
use serde::{Deserialize, Serialize};

use crate::trace::{Span, Spans, Stage};
use crate::RagError;

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

impl SearchMode {
    pub fn name(self) -> &'static str {
        match self {
            SearchMode::Dense => "dense",
            SearchMode::Lexical => "lexical",
            SearchMode::Hybrid => "hybrid",
        }
    }
}

/// What a search asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrieveConfig {
    /// How many chunks to return.
    pub k: usize,
    pub mode: SearchMode,
    /// Search breadth of the graph; `None` is the index's own default.
    pub ef: Option<usize>,
}

impl Default for RetrieveConfig {
    fn default() -> Self {
        RetrieveConfig {
            k: 5,
            mode: SearchMode::Hybrid,
            ef: None,
        }
    }
}

impl RetrieveConfig {
    pub fn validate(&self) -> Result<(), RagError> {
        if self.k == 0 {
            return Err(RagError::Config(
                "the number of chunks to retrieve must be at least 1".into(),
            ));
        }
        if self.ef == Some(0) {
            return Err(RagError::Config(
                "the graph's search breadth (ef) must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A chunk that a search returned, with its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub chunk_id: u64,
    /// Cosine similarity, when the dense search returned it.
    pub dense: Option<f32>,
    /// BM25, when the lexical search returned it.
    pub lexical: Option<f32>,
    /// The fused score (hybrid search).
    pub fused: Option<f32>,
    /// Its place in the final ranking (1 is best), when it made the top `k`.
    pub rank: Option<usize>,
    /// Whether it was used: returned by a search, given to the model by an
    /// answer.
    pub kept: bool,
}

/// The ranking of one query, before the chunks are read.
#[derive(Debug, Clone)]
pub struct Ranking {
    /// The best `k` chunk ids with their ranking score, best first.
    pub ranked: Vec<(u64, f32)>,
    pub candidates: Vec<Candidate>,
}

/// Ranks the index's chunks for a query (`text` and its embedding
/// `vector`), recording each stage in `spans`.
pub fn rank(
    index: &Index,
    text: &str,
    vector: &[f32],
    cfg: &RetrieveConfig,
    spans: &mut Spans,
) -> Result<Ranking, RagError> {
    cfg.validate()?;
    let k = cfg.k;
    let ef = cfg.ef.unwrap_or(index.meta().hnsw.ef_search);
    let candidate = |id: u64| Candidate {
        chunk_id: id,
        dense: None,
        lexical: None,
        fused: None,
        rank: None,
        kept: false,
    };
    let (ranked, candidates) = match cfg.mode {
        SearchMode::Dense => {
            let dense = spans.time(Stage::DenseSearch, || index.dense(vector, k, ef))?;
            let cands: Vec<Candidate> = dense
                .iter()
                .map(|&(id, s)| Candidate {
                    dense: Some(s),
                    ..candidate(id)
                })
                .collect();
            (dense, cands)
        }
        SearchMode::Lexical => {
            let lexical = spans.time(Stage::LexicalSearch, || index.lexical(text, k))?;
            let cands: Vec<Candidate> = lexical
                .iter()
                .map(|&(id, s)| Candidate {
                    lexical: Some(s),
                    ..candidate(id)
                })
                .collect();
            (lexical, cands)
        }
        SearchMode::Hybrid => {
            let pool = (k * 4).max(40);
            let dense = spans.time(Stage::DenseSearch, || {
                index.dense(vector, pool, ef.max(pool))
            })?;
            let lexical = spans.time(Stage::LexicalSearch, || index.lexical(text, pool))?;
            let fused = spans.time(Stage::Fusion, || {
                docent_core::fuse(
                    &dense,
                    &lexical,
                    index.meta().encoder.retrieval.dense_weight(text),
                    usize::MAX,
                )
            });
            let score =
                |list: &[(u64, f32)], id: u64| list.iter().find(|(i, _)| *i == id).map(|&(_, s)| s);
            let cands: Vec<Candidate> = fused
                .iter()
                .map(|&(id, f)| Candidate {
                    dense: score(&dense, id),
                    lexical: score(&lexical, id),
                    fused: Some(f),
                    ..candidate(id)
                })
                .collect();
            let mut ranked = fused;
            ranked.truncate(k);
            (ranked, cands)
        }
    };
    let mut ranking = Ranking { ranked, candidates };
    ranking.mark_kept();
    Ok(ranking)
}

impl Ranking {
    /// Marks each ranked chunk's candidate kept, with its rank (adding a
    /// candidate for a chunk that was put in the ranking from elsewhere).
    fn mark_kept(&mut self) {
        for (i, &(id, _)) in self.ranked.iter().enumerate() {
            let c = match self.candidates.iter().position(|c| c.chunk_id == id) {
                Some(at) => &mut self.candidates[at],
                None => {
                    self.candidates.push(Candidate {
                        chunk_id: id,
                        dense: None,
                        lexical: None,
                        fused: None,
                        rank: None,
                        kept: false,
                    });
                    self.candidates.last_mut().expect("just pushed")
                }
            };
            c.rank = Some(i + 1);
            c.kept = true;
        }
    }
}

/// Reads the ranked chunks back, with each one's cosine similarity to the
/// query.
pub fn fetch(
    index: &Index,
    vector: &[f32],
    ranked: &[(u64, f32)],
    spans: &mut Spans,
) -> Result<Vec<Hit>, RagError> {
    spans.time(Stage::Fetch, || {
        let ids: Vec<u64> = ranked.iter().map(|(id, _)| *id).collect();
        let chunks = index.chunks(&ids)?;
        let similarity = index.similarities(vector, &ids)?;
        Ok(ranked
            .iter()
            .zip(chunks)
            .zip(similarity)
            .map(|((&(_, score), chunk), similarity)| Hit {
                score,
                similarity,
                chunk,
            })
            .collect())
    })
}

/// [`rank`] then [`fetch`]: the `k` best hits for a query whose embedding
/// is already known (tests and benchmarks; the engine embeds for you).
pub fn search(
    index: &Index,
    text: &str,
    vector: &[f32],
    cfg: &RetrieveConfig,
) -> Result<Vec<Hit>, RagError> {
    let mut spans = Spans::start();
    let r = rank(index, text, vector, cfg, &mut spans)?;
    fetch(index, vector, &r.ranked, &mut spans)
}

/// What a retrieval found, and how.
#[derive(Debug, Clone)]
pub struct Retrieval {
    /// The best `k` chunks, best first.
    pub hits: Vec<Hit>,
    pub candidates: Vec<Candidate>,
    /// The breadth the graph was searched with.
    pub ef: usize,
    /// The stages of this retrieval: query embedding, searches, fusion, fetch.
    pub spans: Vec<Span>,
}

/// Embeds `question` and retrieves its best chunks from `index`.
pub fn retrieve(
    index: &Index,
    encoder: &Encoder,
    question: &str,
    cfg: &RetrieveConfig,
    spans: &mut Spans,
) -> Result<Retrieval, RagError> {
    retrieve_with(index, encoder, question, cfg, Coverage::TopK, spans)
}

/// Which chunks an answer is given beyond the best `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The best `k` only (searches and evaluations of retrieval).
    TopK,
    /// Also, for a question that compares two things, the best match of
    /// each thing none of the `k` is about ([`crate::compare`]).
    BothSidesOfAComparison,
}

/// [`retrieve`], with the chunks `coverage` adds.
pub fn retrieve_with(
    index: &Index,
    encoder: &Encoder,
    question: &str,
    cfg: &RetrieveConfig,
    coverage: Coverage,
    spans: &mut Spans,
) -> Result<Retrieval, RagError> {
    cfg.validate()?;
    index.check_encoder(encoder.info())?;
    let first_span = spans.list.len();
    let vector = spans.time(Stage::QueryEmbedding, || encoder.embed_queries(&[question]))?;
    let vector = vector.into_iter().next().ok_or_else(|| {
        RagError::Config("the encoder returned no vector for the question".into())
    })?;
    let mut ranking = rank(index, question, &vector, cfg, spans)?;
    let things = match coverage {
        Coverage::TopK => None,
        Coverage::BothSidesOfAComparison => crate::compare::compared(question),
    };
    if let Some(things) = things {
        crate::compare::cover(index, &things, &mut ranking.ranked)?;
        ranking.mark_kept();
    }
    let hits = fetch(index, &vector, &ranking.ranked, spans)?;
    Ok(Retrieval {
        hits,
        candidates: ranking.candidates,
        ef: cfg.ef.unwrap_or(index.meta().hnsw.ef_search),
        spans: spans.list[first_span..].to_vec(),
    })
}
