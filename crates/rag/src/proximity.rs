//! The last step of hybrid ranking: the question's words together in one
//! sentence.
//!
//! BM25 and the embedding both score a chunk as a whole, so a paragraph
//! that mentions the question's words in different sentences ranks as
//! high as the one whose single sentence answers it. Questions are mostly
//! answered by one sentence, so the best few fused candidates are ranked
//! again with one more score: the share of the question's weight that the
//! chunk's best sentence holds, where a word weighs by its rarity among
//! those candidates (a word every candidate has tells them apart by
//! nothing). The fused score plus [`DEFAULT_SENTENCE_WEIGHT`] times that
//! share orders them; chunks below the first [`RERANKED`] keep their
//! places.
//!
//! Words are the grounding check's units (content words, number words as
//! digits, and for Korean pairs of neighbouring syllables, so that
//! particles and endings do not hide a noun): see
//! [`crate::grounding::units`]. English words lose one common ending
//! ([`stem`]), so that "devise" finds "devised" and "teach" "teaching".
//!
//! Measured on the shared sets (docs/benchmarks.md, "The question's words
//! in one sentence"). Reads text only: no IO.

use std::collections::{HashMap, HashSet};

use crate::grounding::{sentences, units};

/// How much the best sentence's share of the question adds to a fused
/// score (which is at most 1).
pub const DEFAULT_SENTENCE_WEIGHT: f32 = 0.5;

/// How many of the best fused candidates are ranked again.
pub const RERANKED: usize = 10;

/// An English word without one common ending ("-ing", "-ed", "-es", "-s",
/// "-ly", "-e") when at least three letters are left; any other unit as it
/// is. Crude, and only ever compared with itself: "lines" and "line" both
/// become "lin".
fn stem(unit: String) -> String {
    if !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return unit;
    }
    for ending in ["ing", "ed", "es", "s", "ly", "e"] {
        if unit.len() >= ending.len() + 3 && unit.ends_with(ending) {
            return unit[..unit.len() - ending.len()].to_string();
        }
    }
    unit
}

/// A text's units, stemmed.
fn terms(text: &str) -> HashSet<String> {
    units(text).into_iter().map(stem).collect()
}

/// For each text, the share (0 to 1) of the question's weight that its
/// best sentence holds; a word's weight is `ln((n + 1) / (d + 0.5))` for
/// `n` texts of which `d` hold it. `headings` of each text count as one
/// sentence more. A question with no words gives 0 everywhere.
pub fn best_sentence_shares(question: &str, texts: &[(&[String], &str)]) -> Vec<f32> {
    let asked = terms(question);
    if asked.is_empty() || texts.is_empty() {
        return vec![0.0; texts.len()];
    }
    let per_text: Vec<Vec<HashSet<String>>> = texts
        .iter()
        .map(|(headings, text)| {
            let mut s: Vec<HashSet<String>> = sentences(text)
                .into_iter()
                .map(|(a, b)| terms(&text[a..b]))
                .collect();
            if !headings.is_empty() {
                s.push(terms(&headings.join(" ")));
            }
            s
        })
        .collect();
    let n = texts.len() as f32;
    let weight: HashMap<&String, f32> = asked
        .iter()
        .map(|w| {
            let d = per_text
                .iter()
                .filter(|s| s.iter().any(|s| s.contains(w)))
                .count() as f32;
            (w, ((n + 1.0) / (d + 0.5)).ln())
        })
        .collect();
    let total: f32 = weight.values().sum();
    if total <= 0.0 {
        return vec![0.0; texts.len()];
    }
    per_text
        .iter()
        .map(|sentences| {
            sentences
                .iter()
                .map(|s| {
                    weight
                        .iter()
                        .filter(|(w, _)| s.contains(**w))
                        .map(|(_, x)| x)
                        .sum::<f32>()
                })
                .fold(0.0f32, f32::max)
                / total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(question: &str, texts: &[&str]) -> Vec<f32> {
        let texts: Vec<(&[String], &str)> = texts.iter().map(|t| (&[][..], *t)).collect();
        best_sentence_shares(question, &texts)
    }

    #[test]
    fn the_sentence_that_holds_the_question_together_wins() {
        let apart = "Luther wrote many hymns. He taught the congregation to sing. \
                     The catechism came later.";
        let together = "Luther devised the catechism to teach the congregation. \
                        It was printed in 1529.";
        let s = shares(
            "What did Luther devise to teach the congregation?",
            &[apart, together],
        );
        assert!(s[1] > s[0], "{s:?}");
        assert!(s[1] > 0.9, "{s:?}");
    }

    #[test]
    fn english_words_match_without_their_endings() {
        assert_eq!(stem("devised".into()), "devis");
        assert_eq!(stem("devise".into()), "devis");
        assert_eq!(stem("teaching".into()), "teach");
        assert_eq!(stem("lines".into()), "lin");
        assert_eq!(stem("line".into()), "lin");
        assert_eq!(stem("gas".into()), "gas");
        assert_eq!(stem("서울에서".into()), "서울에서");
        let s = shares(
            "Which lines were owned by the government?",
            &["The line is owned by the government.", "Lines were built."],
        );
        assert!(s[0] > s[1], "{s:?}");
    }

    #[test]
    fn korean_nouns_match_through_their_particles() {
        let s = shares(
            "양자화는 무엇을 줄이나요?",
            &[
                "양자화가 모델의 크기를 줄입니다.",
                "검색기는 조각을 찾습니다.",
            ],
        );
        assert!(s[0] > 0.0 && s[1] < s[0], "{s:?}");
    }

    #[test]
    fn a_word_every_text_holds_weighs_least() {
        let s = shares(
            "Warsaw population 1939",
            &[
                "Warsaw grew. Its population was large.",
                "Warsaw had 1939 events.",
            ],
        );
        // "Warsaw" is everywhere; the second holds the rarer "1939".
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn headings_count_as_a_sentence_and_no_words_give_nothing() {
        let headings = vec!["Martin Luther".to_string()];
        let s = best_sentence_shares(
            "Martin Luther",
            &[
                (&headings, "He was born in Eisleben."),
                (&[], "Nothing here."),
            ],
        );
        assert!(s[0] > 0.9 && s[1] == 0.0, "{s:?}");
        assert_eq!(shares("?", &["Anything."]), vec![0.0]);
        assert!(best_sentence_shares("Luther", &[]).is_empty());
    }
}
