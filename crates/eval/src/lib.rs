//! Measuring docent on question-answering sets in SQuAD format (SQuAD 1.1
//! and 2.0, KorQuAD 1.0).
//!
//! * [`Dataset`] reads the JSON and flattens it into paragraphs and
//!   questions, each question knowing its paragraph, its gold answers and
//!   whether it is marked impossible (SQuAD 2.0).
//! * [`RetrievalScores`] accumulates recall@1, @5, @10 and MRR@10 of the
//!   paragraph a question came from, given each question's ranked paragraphs.
//! * [`AnswerMetric`] implements the official scorers: SQuAD's (lower-case,
//!   strip punctuation and the articles a/an/the, collapse whitespace; exact
//!   match and token F1) and KorQuAD 1.0's (strip punctuation, lower-case;
//!   exact match and character F1), each the maximum over the gold answers.
//! * [`QaSet`] (`qaset.rs`): a hand-written question set about a folder,
//!   each question with its key fact and source file, or unanswerable.
//! * [`Percentiles`], [`shuffle`] and [`Rng`] (`stats.rs`): the latency
//!   summaries and reproducible sampling every measuring command shares.
//!
//! The crate computes; it reads and writes nothing itself.

mod conversations;
mod qaset;
mod stats;

pub use conversations::{Conversation, ConversationSet};
pub use qaset::{QaQuestion, QaSet};
pub use stats::{percentile, shuffle, Percentiles, Rng};

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("not a SQuAD-format dataset: {0}")]
    Format(String),
    #[error("not a readable question set: {0}")]
    QuestionSet(String),
}

#[derive(Deserialize)]
struct RawDataset {
    #[serde(default)]
    version: String,
    data: Vec<RawArticle>,
}

#[derive(Deserialize)]
struct RawArticle {
    #[serde(default)]
    title: String,
    paragraphs: Vec<RawParagraph>,
}

#[derive(Deserialize)]
struct RawParagraph {
    context: String,
    qas: Vec<RawQa>,
}

#[derive(Deserialize)]
struct RawQa {
    id: serde_json::Value,
    question: String,
    #[serde(default)]
    answers: Vec<RawAnswer>,
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct RawAnswer {
    text: String,
}

/// One paragraph: the unit of retrieval.
#[derive(Debug, Clone, Serialize)]
pub struct Paragraph {
    pub index: usize,
    pub title: String,
    pub context: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub answers: Vec<String>,
    /// SQuAD 2.0: the paragraph does not answer it.
    pub impossible: bool,
    /// Index into [`Dataset::paragraphs`].
    pub paragraph: usize,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub version: String,
    pub paragraphs: Vec<Paragraph>,
    pub questions: Vec<Question>,
}

impl Dataset {
    pub fn from_json(bytes: &[u8]) -> Result<Self, EvalError> {
        let raw: RawDataset =
            serde_json::from_slice(bytes).map_err(|e| EvalError::Format(e.to_string()))?;
        let mut paragraphs = Vec::new();
        let mut questions = Vec::new();
        for article in raw.data {
            for p in article.paragraphs {
                let index = paragraphs.len();
                for qa in p.qas {
                    let id = match qa.id {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    questions.push(Question {
                        id,
                        text: qa.question.split_whitespace().collect::<Vec<_>>().join(" "),
                        answers: qa.answers.into_iter().map(|a| a.text).collect(),
                        impossible: qa.is_impossible,
                        paragraph: index,
                    });
                }
                paragraphs.push(Paragraph {
                    index,
                    title: article.title.replace('_', " "),
                    context: p.context,
                });
            }
        }
        if paragraphs.is_empty() {
            return Err(EvalError::Format("it holds no paragraphs".into()));
        }
        Ok(Self {
            version: raw.version,
            paragraphs,
            questions,
        })
    }

    /// The answer metric the dataset's own scorer uses: KorQuAD's for
    /// KorQuAD files (or text that is mostly Hangul), SQuAD's otherwise.
    pub fn metric(&self) -> AnswerMetric {
        if self.version.to_lowercase().contains("korquad") {
            return AnswerMetric::KorQuad;
        }
        let sample: String = self
            .paragraphs
            .iter()
            .take(20)
            .map(|p| p.context.as_str())
            .collect();
        let letters = sample.chars().filter(|c| c.is_alphabetic()).count().max(1);
        let hangul = sample
            .chars()
            .filter(|c| ('\u{AC00}'..='\u{D7A3}').contains(c))
            .count();
        if hangul * 2 > letters {
            AnswerMetric::KorQuad
        } else {
            AnswerMetric::Squad
        }
    }
}

/// Recall@1/5/10 and MRR@10 of the gold paragraph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetrievalScores {
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub mrr_at_10: f64,
}

/// The 1-based rank of `gold` in `ranked` (paragraph indices, best first,
/// without repeats), if it is there.
pub fn rank_of(gold: usize, ranked: &[usize]) -> Option<usize> {
    ranked.iter().position(|&p| p == gold).map(|i| i + 1)
}

/// Collapses a ranked list of chunk-level paragraph ids to paragraphs, first
/// occurrence first.
pub fn dedup_ranked(ids: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|p| seen.insert(*p)).collect()
}

impl RetrievalScores {
    /// Adds one question whose gold paragraph came at `rank` (None: not
    /// retrieved).
    pub fn add(&mut self, rank: Option<usize>) {
        let n = self.questions as f64;
        let hit = |k: usize| rank.is_some_and(|r| r <= k) as u8 as f64;
        let rr = rank
            .filter(|&r| r <= 10)
            .map(|r| 1.0 / r as f64)
            .unwrap_or(0.0);
        let upd = |mean: f64, x: f64| (mean * n + x) / (n + 1.0);
        self.recall_at_1 = upd(self.recall_at_1, hit(1));
        self.recall_at_5 = upd(self.recall_at_5, hit(5));
        self.recall_at_10 = upd(self.recall_at_10, hit(10));
        self.mrr_at_10 = upd(self.mrr_at_10, rr);
        self.questions += 1;
    }
}

/// An official answer scorer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerMetric {
    Squad,
    KorQuad,
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace())
}

impl AnswerMetric {
    pub fn normalize(self, s: &str) -> String {
        match self {
            Self::Squad => {
                let lower = s.to_lowercase();
                let no_punct: String = lower
                    .chars()
                    .filter(|c| !c.is_ascii_punctuation())
                    .collect();
                no_punct
                    .split_whitespace()
                    .filter(|w| !matches!(*w, "a" | "an" | "the"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Self::KorQuad => {
                let no_punct: String = s.chars().filter(|&c| !is_punct(c)).collect();
                no_punct
                    .to_lowercase()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
    }

    pub fn exact_match(self, prediction: &str, gold: &str) -> bool {
        self.normalize(prediction) == self.normalize(gold)
    }

    pub fn f1(self, prediction: &str, gold: &str) -> f64 {
        let (p, g) = (self.normalize(prediction), self.normalize(gold));
        let (pt, gt): (Vec<String>, Vec<String>) = match self {
            Self::Squad => (
                p.split_whitespace().map(str::to_string).collect(),
                g.split_whitespace().map(str::to_string).collect(),
            ),
            Self::KorQuad => (
                p.chars()
                    .filter(|c| !c.is_whitespace())
                    .map(String::from)
                    .collect(),
                g.chars()
                    .filter(|c| !c.is_whitespace())
                    .map(String::from)
                    .collect(),
            ),
        };
        if pt.is_empty() || gt.is_empty() {
            return (pt == gt) as u8 as f64;
        }
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for t in &gt {
            *counts.entry(t).or_default() += 1;
        }
        let mut common = 0i64;
        for t in &pt {
            if let Some(c) = counts.get_mut(t.as_str()) {
                if *c > 0 {
                    *c -= 1;
                    common += 1;
                }
            }
        }
        if common == 0 {
            return 0.0;
        }
        let precision = common as f64 / pt.len() as f64;
        let recall = common as f64 / gt.len() as f64;
        2.0 * precision * recall / (precision + recall)
    }

    /// Whether `prediction` contains a gold answer after normalisation: as
    /// whole words for SQuAD, as characters (spaces removed) for KorQuAD,
    /// whose answers take particles (`서울` in `서울에서`). The usual
    /// measure for generated answers, which exact match punishes for being
    /// sentences.
    pub fn contains(self, prediction: &str, golds: &[String]) -> bool {
        let p = self.normalize(prediction);
        golds.iter().any(|g| {
            let g = self.normalize(g);
            if g.is_empty() {
                return false;
            }
            match self {
                Self::Squad => format!(" {p} ").contains(&format!(" {g} ")),
                Self::KorQuad => {
                    let squash = |s: &str| s.split_whitespace().collect::<String>();
                    squash(&p).contains(&squash(&g))
                }
            }
        })
    }

    /// (exact match, F1), each the maximum over the gold answers.
    pub fn score(self, prediction: &str, golds: &[String]) -> (f64, f64) {
        let em = golds
            .iter()
            .map(|g| self.exact_match(prediction, g) as u8 as f64)
            .fold(0.0, f64::max);
        let f1 = golds
            .iter()
            .map(|g| self.f1(prediction, g))
            .fold(0.0, f64::max);
        (em, f1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation_matches_the_official_scorer() {
        let m = AnswerMetric::Squad;
        assert_eq!(m.normalize("The  Denver Broncos!"), "denver broncos");
        assert!(m.exact_match("the Denver Broncos", "Denver Broncos."));
        assert_eq!(m.f1("Denver Broncos won", "Denver Broncos"), 0.8);
        assert_eq!(m.f1("Carolina", "Denver Broncos"), 0.0);
        assert!(m.contains("The Denver Broncos won [1].", &["Denver Broncos".into()]));
        assert!(!m.contains("Denverite Broncos", &["Denver".into()]));
        assert_eq!(
            m.score(
                "Santa Clara",
                &["Santa Clara, California".into(), "Santa Clara".into()]
            ),
            (1.0, 1.0)
        );
    }

    #[test]
    fn korquad_scores_characters() {
        let m = AnswerMetric::KorQuad;
        assert!(m.exact_match("서울특별시.", "서울특별시"));
        assert!(m.contains("수도는 서울특별시입니다 [1].", &["서울 특별시".into()]));
        assert!(!m.contains("수도는 부산입니다.", &["서울특별시".into()]));
        // 4 of 5 gold characters, 4 of 4 predicted.
        let f = m.f1("서울특별", "서울특별시");
        assert!((f - 2.0 * 1.0 * 0.8 / 1.8).abs() < 1e-9);
    }

    #[test]
    fn retrieval_scores_average_over_questions() {
        let mut s = RetrievalScores::default();
        s.add(Some(1));
        s.add(Some(3));
        s.add(None);
        s.add(Some(12));
        assert_eq!(s.questions, 4);
        assert!((s.recall_at_1 - 0.25).abs() < 1e-12);
        assert!((s.recall_at_5 - 0.5).abs() < 1e-12);
        assert!((s.recall_at_10 - 0.5).abs() < 1e-12);
        assert!((s.mrr_at_10 - (1.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(dedup_ranked([3, 3, 1, 3, 2, 1]), vec![3, 1, 2]);
        assert_eq!(rank_of(2, &[3, 1, 2]), Some(3));
    }
}
