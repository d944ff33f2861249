//! Retrieval: a question's vector and words against the index's graph and
//! lexical table, fused into one ranking, then the chunks read back.
//!
//! Hybrid search (the default) takes a wider pool from each side, `max(4k,
//! 40)`, scales each list to [0, 1] and adds them with a dense weight chosen
//! from the question's script and the encoder's settings recorded with the
//! index ([`docent_core::RetrievalSettings::dense_weight`]), and keeps the
//! best. The best [`crate::proximity::RERANKED`] of those are then ranked
//! again with the share of the question their best sentence holds
//! ([`crate::proximity`], weighted by [`RetrieveConfig::sentence_weight`]),
//! and the first `k` kept. When the index keeps the encoder's language
//! direction, the question moved towards the other language searches the
//! graph again ([`crate::shift`]): the chunks in that language it finds
//! join the dense list with the better of their two cosines, and are
//! scored by the dense side alone in the fusion
//! ([`docent_core::fuse_except`]) and left in place by the re-rank, since
//! neither words nor sentences match across languages. Every chunk either side returned is a
//! [`Candidate`] with its scores, so a trace can show why the kept ones
//! won.

use docent_embed::Encoder;
use docent_index::{Hit, Index};
use serde::{Deserialize, Serialize};

use crate::crosslingual::{script, Script};
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrieveConfig {
    /// How many chunks to return.
    pub k: usize,
    pub mode: SearchMode,
    /// Search breadth of the graph; `None` is the index's own default.
    pub ef: Option<usize>,
    /// Hybrid search: how much the share of the question that a chunk's
    /// best sentence holds adds to its fused score ([`crate::proximity`]);
    /// 0 ranks by the fused score alone.
    pub sentence_weight: f32,
}

impl Default for RetrieveConfig {
    fn default() -> Self {
        RetrieveConfig {
            k: 5,
            mode: SearchMode::Hybrid,
            ef: None,
            sentence_weight: crate::proximity::DEFAULT_SENTENCE_WEIGHT,
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
        if !(self.sentence_weight.is_finite() && self.sentence_weight >= 0.0) {
            return Err(RagError::Config(format!(
                "the sentence weight must be a number of at least 0 (it is {})",
                self.sentence_weight
            )));
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
    /// A chunk in the other language than the question's: the cosine of
    /// the question moved towards that language ([`crate::shift`]), when
    /// that search returned it. The dense ranking scores it by the better
    /// of the two; the retrieval gate looks only at `dense`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across: Option<f32>,
    /// The fused score (hybrid search).
    pub fused: Option<f32>,
    /// The share of the question its best sentence holds, when it was
    /// among the fused candidates ranked again ([`crate::proximity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence: Option<f32>,
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
        across: None,
        fused: None,
        sentence: None,
        rank: None,
        kept: false,
    };
    let (ranked, candidates) = match cfg.mode {
        SearchMode::Dense => {
            let dense = spans.time(Stage::DenseSearch, || index.dense(vector, k, ef))?;
            let across = search_across(index, text, vector, k, ef, spans)?;
            let mut ranked = with_across(&dense, &across);
            ranked.truncate(k);
            let cands: Vec<Candidate> = ranked
                .iter()
                .map(|&(id, _)| Candidate {
                    dense: score(&dense, id),
                    across: score(&across, id),
                    ..candidate(id)
                })
                .collect();
            (ranked, cands)
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
            let across = search_across(index, text, vector, pool, ef.max(pool), spans)?;
            let lexical = spans.time(Stage::LexicalSearch, || index.lexical(text, pool))?;
            let (fused, shares) = spans.time(Stage::Fusion, || {
                // A chunk in the other language is scored by the dense side
                // alone, and ranked again as if its sentence held the
                // question's words as well as the fusion says: neither side
                // can match words across languages.
                let other: Vec<u64> = across.iter().map(|&(id, _)| id).collect();
                let fused = docent_core::fuse_except(
                    &with_across(&dense, &across),
                    &lexical,
                    index.meta().encoder.retrieval.dense_weight(text),
                    &other,
                    usize::MAX,
                );
                let mut shares = if cfg.sentence_weight > 0.0 {
                    let top: Vec<u64> = fused
                        .iter()
                        .take(crate::proximity::RERANKED)
                        .map(|&(id, _)| id)
                        .collect();
                    let chunks = index.chunks(&top)?;
                    let texts: Vec<(&[String], &str)> = chunks
                        .iter()
                        .map(|c| (c.chunk.heading_path.as_slice(), c.chunk.text.as_str()))
                        .collect();
                    crate::proximity::best_sentence_shares(text, &texts)
                } else {
                    Vec::new()
                };
                for (share, &(id, f)) in shares.iter_mut().zip(&fused) {
                    if other.contains(&id) {
                        *share = f;
                    }
                }
                Ok::<_, RagError>((fused, shares))
            })?;
            let cands: Vec<Candidate> = fused
                .iter()
                .enumerate()
                .map(|(i, &(id, f))| Candidate {
                    dense: score(&dense, id),
                    lexical: score(&lexical, id),
                    across: score(&across, id),
                    fused: Some(f),
                    sentence: shares.get(i).copied(),
                    ..candidate(id)
                })
                .collect();
            let mut ranked = rerank(fused, &shares, cfg.sentence_weight);
            ranked.truncate(k);
            (ranked, cands)
        }
    };
    let mut ranking = Ranking { ranked, candidates };
    ranking.mark_kept();
    Ok(ranking)
}

/// The score `list` gives chunk `id`.
fn score(list: &[(u64, f32)], id: u64) -> Option<f32> {
    list.iter().find(|(i, _)| *i == id).map(|&(_, s)| s)
}

/// The bounds of the Hangul syllables, as lexical terms (U+AC00..U+D7A4).
const FIRST_HANGUL: &str = "\u{AC00}";
const PAST_HANGUL: &str = "\u{D7A4}";

/// The `n` chunks in the other of docent's two languages closest to the
/// question moved towards it ([`crate::shift`]), with the moved question's
/// cosine, best first; none when the index keeps no language direction,
/// its encoder moves no question, or the question is in neither script.
fn search_across(
    index: &Index,
    text: &str,
    vector: &[f32],
    n: usize,
    ef: usize,
    spans: &mut Spans,
) -> Result<Vec<(u64, f32)>, RagError> {
    let meta = index.meta();
    let (Some(direction), Some(scale)) = (
        meta.language_direction.as_deref(),
        meta.encoder.retrieval.language_shift,
    ) else {
        return Ok(Vec::new());
    };
    let Some((moved, other)) = crate::shift::moved(vector, text, direction, scale) else {
        return Ok(Vec::new());
    };
    // An index without a Korean word has nothing to find for an English
    // question (most English folders): one seek in the vocabulary saves
    // the search.
    if other == Script::Hangul && !index.holds_terms_between(FIRST_HANGUL, PAST_HANGUL)? {
        return Ok(Vec::new());
    }
    spans.time(Stage::AcrossSearch, || {
        let found = index.dense(&moved, n, ef)?;
        let ids: Vec<u64> = found.iter().map(|&(id, _)| id).collect();
        let chunks = index.chunks(&ids)?;
        Ok(found
            .into_iter()
            .zip(chunks)
            .filter(|(_, c)| script(&c.chunk.text) == other)
            .map(|(hit, _)| hit)
            .collect())
    })
}

/// The dense ranking with the chunks `across` found, each scored by the
/// better of the question's cosine and the moved question's, best first.
fn with_across(dense: &[(u64, f32)], across: &[(u64, f32)]) -> Vec<(u64, f32)> {
    let mut merged = dense.to_vec();
    for &(id, s) in across {
        match merged.iter_mut().find(|(i, _)| *i == id) {
            Some(e) => e.1 = e.1.max(s),
            None => merged.push((id, s)),
        }
    }
    merged.sort_by(|a, b| b.1.total_cmp(&a.1));
    merged
}

/// The fused list with its first `shares.len()` entries ranked again by
/// fused score plus `weight` times their share, all scores divided by
/// `1 + weight` so that they stay within [0, 1]. Those below keep their
/// order: each of the first has a fused score at least theirs, so the
/// list stays sorted.
fn rerank(mut fused: Vec<(u64, f32)>, shares: &[f32], weight: f32) -> Vec<(u64, f32)> {
    if shares.is_empty() {
        return fused;
    }
    let scale = 1.0 / (1.0 + weight);
    for (i, (_, s)) in fused.iter_mut().enumerate() {
        *s = (*s + weight * shares.get(i).copied().unwrap_or(0.0)) * scale;
    }
    // Stable: equal scores keep the fused order.
    fused[..shares.len()].sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
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
                        across: None,
                        fused: None,
                        sentence: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerank_orders_the_first_by_sentence_and_keeps_the_rest_below() {
        let fused = vec![(1, 1.0), (2, 0.9), (3, 0.5), (4, 0.4)];
        let r = rerank(fused.clone(), &[0.0, 1.0, 0.2], 0.5);
        let ids: Vec<u64> = r.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, [2, 1, 3, 4]);
        assert!(r.windows(2).all(|w| w[0].1 >= w[1].1), "{r:?}");
        assert!(r.iter().all(|&(_, s)| (0.0..=1.0).contains(&s)), "{r:?}");
        // No shares: the fused ranking as it was.
        assert_eq!(rerank(fused.clone(), &[], 0.5), fused);
    }

    #[test]
    fn a_chunk_found_across_languages_keeps_the_better_of_its_two_scores() {
        let dense = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let across = [(3, 0.95), (4, 0.75)];
        assert_eq!(
            with_across(&dense, &across),
            [(3, 0.95), (1, 0.9), (2, 0.8), (4, 0.75)]
        );
        assert_eq!(with_across(&dense, &[]), dense);
        // A lower score across does not lower the chunk's own.
        assert_eq!(with_across(&dense, &[(1, 0.5)]), dense);
    }

    #[test]
    fn a_negative_or_missing_sentence_weight_is_refused() {
        for w in [-0.1, f32::NAN] {
            let cfg = RetrieveConfig {
                sentence_weight: w,
                ..RetrieveConfig::default()
            };
            assert!(cfg.validate().is_err(), "{w}");
        }
    }
}
