//! Searching the other language: a question moved along the encoder's
//! language direction.
//!
//! A multilingual encoder puts a Korean question nearer to Korean chunks on
//! a neighbouring subject than to the English chunk that answers it, and
//! the other way round, so a question about a fact a folder states only in
//! the other language rarely gets that chunk. Much of the difference
//! between the two languages' vectors is one direction, the same for every
//! subject: the mean vector of Korean sentences minus that of their English
//! translations ([`direction`], over `data/parallel-en-ko.tsv`, sentences
//! far from any folder's subject). Moved along it towards the other
//! language ([`moved`]), a question's vector lands near where its
//! translation's would, and the chunks in that language it is then closest
//! to are the ones that answer it (docs/benchmarks.md, "Questions in one
//! language, chunks in the other").
//!
//! Retrieval ([`crate::retrieve`]) searches the graph a second time with the
//! moved question and keeps, from that search, only chunks in the other
//! language: chunks in the question's own language keep the question's own
//! score. The direction is computed once, when an index is built, and kept
//! in its metadata; how far to move is the encoder's `language_shift`
//! ([`docent_core::RetrievalSettings`]).

use docent_embed::{Encoder, TextKind};

use crate::crosslingual::{script, Script};
use crate::RagError;

/// English and Korean sentences that say the same thing, a tab between.
const PARALLEL: &str = include_str!("../data/parallel-en-ko.tsv");

/// The sentence pairs of [`PARALLEL`]: (English, Korean).
pub fn pairs() -> Vec<(&'static str, &'static str)> {
    PARALLEL
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .collect()
}

/// The encoder's language direction, from English towards Korean: the
/// mean of the Korean sentences' vectors minus the mean of their English
/// translations', embedded as questions are.
pub fn direction(encoder: &Encoder) -> Result<Vec<f32>, RagError> {
    let (en, ko): (Vec<&str>, Vec<&str>) = pairs().into_iter().unzip();
    let mean = |texts: &[&str]| -> Result<Vec<f32>, RagError> {
        let vectors = encoder.embed_as(texts, TextKind::Query)?;
        let mut m = vec![0.0f32; encoder.info().dim];
        for v in &vectors {
            for (a, b) in m.iter_mut().zip(v) {
                *a += b / vectors.len() as f32;
            }
        }
        Ok(m)
    };
    let (m_en, m_ko) = (mean(&en)?, mean(&ko)?);
    Ok(m_ko.iter().zip(&m_en).map(|(k, e)| k - e).collect())
}

/// `vector` (a question's, unit length) moved `scale` of the way along
/// `direction` towards the other of docent's two languages, made unit
/// length again, with that language's script: `None` for a question in
/// neither Hangul nor Latin script, or a direction of another length.
pub fn moved(
    vector: &[f32],
    question: &str,
    direction: &[f32],
    scale: f32,
) -> Option<(Vec<f32>, Script)> {
    if direction.len() != vector.len() || !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let (sign, target) = match script(question) {
        Script::Latin => (1.0, Script::Hangul),
        Script::Hangul => (-1.0, Script::Latin),
        Script::Other => return None,
    };
    let mut v: Vec<f32> = vector
        .iter()
        .zip(direction)
        .map(|(x, d)| x + sign * scale * d)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Some((v, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_a_pair_in_both_scripts() {
        let pairs = pairs();
        assert!(pairs.len() >= 40, "{}", pairs.len());
        for (en, ko) in pairs {
            assert_eq!(script(en), Script::Latin, "{en}");
            assert_eq!(script(ko), Script::Hangul, "{ko}");
        }
    }

    #[test]
    fn a_question_moves_towards_the_other_language() {
        let direction = [0.0, 1.0, 0.0];
        let v = [1.0, 0.0, 0.0];
        let (en, to) = moved(&v, "What is it?", &direction, 1.0).unwrap();
        assert_eq!(to, Script::Hangul);
        assert!(en[1] > 0.0 && (en.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
        let (ko, to) = moved(&v, "무엇인가요?", &direction, 1.0).unwrap();
        assert_eq!(to, Script::Latin);
        assert!(ko[1] < 0.0, "{ko:?}");
        // Neither script, no move, a direction of another encoder, no scale.
        assert!(moved(&v, "1234?", &direction, 1.0).is_none());
        assert!(moved(&v, "What?", &[1.0, 0.0], 1.0).is_none());
        assert!(moved(&v, "What?", &direction, 0.0).is_none());
    }
}
