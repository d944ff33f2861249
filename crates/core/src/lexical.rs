//! Lexical terms and the fusion of lexical with dense results.
//!
//! [`lexical_terms`] turns text into the terms the lexical (BM25) index
//! stores and queries with. Text is cut at every character that is not a
//! letter or digit, and then into runs of one kind of script:
//!
//! * runs of Hangul, Han, Hiragana or Katakana become overlapping character
//!   bigrams (a lone character stays a unigram). Korean attaches particles and
//!   endings to nouns (`서울에서`, `서울의`), so whole words rarely repeat
//!   between a question and its answer, while bigrams (`서울`) do;
//! * other runs (Latin, digits, other scripts) become one lower-cased term.
//!
//! [`fuse`] merges a dense and a lexical result list. Each list's scores are
//! scaled to [0, 1] by its own best and worst score, and a candidate's fused
//! score is the weighted sum, a list it is missing from counting 0. The dense
//! weight comes from the query's script and the encoder's settings
//! ([`crate::RetrievalSettings::dense_weight`]): for an English-only encoder
//! a Korean query's dense ranking is noise and must not drag down the
//! lexical one.

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xD7B0..=0xD7FF // Hangul
        | 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F // Han
        | 0x3040..=0x30FF | 0x31F0..=0x31FF // kana
    )
}

/// The lexical terms of `text`, in order, with repeats.
pub fn lexical_terms(text: &str) -> Vec<String> {
    fn flush(run: &mut String, cjk: bool, out: &mut Vec<String>) {
        if run.is_empty() {
            return;
        }
        if cjk {
            let chars: Vec<char> = run.chars().collect();
            if chars.len() == 1 {
                out.push(run.clone());
            } else {
                out.extend(chars.windows(2).map(|p| p.iter().collect::<String>()));
            }
        } else {
            out.push(run.to_lowercase());
        }
        run.clear();
    }
    let mut out = Vec::new();
    let mut run = String::new();
    let mut run_cjk = false;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            flush(&mut run, run_cjk, &mut out);
            continue;
        }
        let cjk = is_cjk(c);
        if !run.is_empty() && cjk != run_cjk {
            flush(&mut run, run_cjk, &mut out);
        }
        run_cjk = cjk;
        run.push(c);
    }
    flush(&mut run, run_cjk, &mut out);
    out
}

/// The share of a query's letters in Hangul, Han or kana (0 with none).
pub fn cjk_share(query: &str) -> f32 {
    let (mut cjk, mut other) = (0usize, 0usize);
    for c in query.chars().filter(|c| c.is_alphabetic()) {
        if is_cjk(c) {
            cjk += 1;
        } else {
            other += 1;
        }
    }
    if cjk + other == 0 {
        return 0.0;
    }
    cjk as f32 / (cjk + other) as f32
}

fn scaled(list: &[(u64, f32)]) -> Vec<(u64, f32)> {
    let max = list.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let min = list.iter().map(|x| x.1).fold(f32::INFINITY, f32::min);
    let span = max - min;
    list.iter()
        .map(|&(id, s)| (id, if span > 0.0 { (s - min) / span } else { 1.0 }))
        .collect()
}

/// Fuses two ranked lists of (id, score), higher is better, into one of at
/// most `k`, best first. See the module documentation.
pub fn fuse(
    dense: &[(u64, f32)],
    lexical: &[(u64, f32)],
    dense_weight: f32,
    k: usize,
) -> Vec<(u64, f32)> {
    fuse_except(dense, lexical, dense_weight, &[], k)
}

/// How much of the lexical side's weight a chunk it cannot see is credited
/// with, in proportion to its dense score ([`fuse_except`]): between none
/// (its silence taken as evidence against the chunk) and all (taken as
/// agreement). A half puts the right file first for 7 of 12 questions
/// about facts in the other language against none, and keeps it first
/// for 30 of 32 about facts in their own (31 without); all of it, 9 and
/// 27 (`benches/language_shift.rs`, docs/benchmarks.md).
pub const UNSEEN_LEXICAL_CREDIT: f32 = 0.5;

/// [`fuse`], except for the chunks `dense_only` names, which the lexical
/// side cannot match (chunks in another language than the query): they
/// are scored by the dense list alone, weighted as if the lexical side
/// agreed with it by [`UNSEEN_LEXICAL_CREDIT`].
pub fn fuse_except(
    dense: &[(u64, f32)],
    lexical: &[(u64, f32)],
    dense_weight: f32,
    dense_only: &[u64],
    k: usize,
) -> Vec<(u64, f32)> {
    let w = dense_weight.clamp(0.0, 1.0);
    let unseen = w + (1.0 - w) * UNSEEN_LEXICAL_CREDIT;
    let mut fused: Vec<(u64, f32)> = Vec::with_capacity(dense.len() + lexical.len());
    let mut index = std::collections::HashMap::new();
    for (list, weight, dense_side) in [(scaled(dense), w, true), (scaled(lexical), 1.0 - w, false)]
    {
        for (id, s) in list {
            let weight = match (dense_only.contains(&id), dense_side) {
                (false, _) => weight,
                (true, true) => unseen,
                (true, false) => 0.0,
            };
            let at = *index.entry(id).or_insert_with(|| {
                fused.push((id, 0.0));
                fused.len() - 1
            });
            fused[at].1 += weight * s;
        }
    }
    // Ties keep the order of first appearance (dense first), so a list with
    // no weight still breaks ties.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused.truncate(k);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(s: &str) -> Vec<String> {
        lexical_terms(s)
    }

    #[test]
    fn korean_words_become_bigrams_so_particles_do_not_hide_nouns() {
        assert_eq!(terms("서울에서"), ["서울", "울에", "에서"]);
        assert!(terms("서울의 인구").contains(&"서울".to_string()));
        assert_eq!(terms("물"), ["물"]);
    }

    #[test]
    fn mixed_scripts_and_numbers_split_into_runs() {
        assert_eq!(terms("RAG는 검색"), ["rag", "는", "검색"]);
        assert_eq!(terms("1950년 6월"), ["1950", "년", "6", "월"]);
        assert_eq!(
            terms("HNSW 그래프의 ef_search"),
            ["hnsw", "그래", "래프", "프의", "ef", "search"]
        );
    }

    #[test]
    fn english_is_lower_cased_words() {
        assert_eq!(
            terms("The Quick, brown fox's den!"),
            ["the", "quick", "brown", "fox", "s", "den"]
        );
        assert_eq!(terms("Denver Broncos 2016"), ["denver", "broncos", "2016"]);
        assert_eq!(
            terms("日本語テキスト"),
            ["日本", "本語", "語テ", "テキ", "キス", "スト"]
        );
    }

    #[test]
    fn dense_weight_follows_the_script_of_the_query() {
        assert_eq!(
            crate::RetrievalSettings::default().dense_weight("What is RAG?"),
            0.5
        );
        assert_eq!(
            crate::RetrievalSettings::default().dense_weight("양자화란 무엇인가?"),
            0.0
        );
        let mixed = crate::RetrievalSettings::default().dense_weight("HNSW 그래프");
        assert!(mixed > 0.0 && mixed < 0.5, "{mixed}");
    }

    #[test]
    fn an_uninformative_list_does_not_drag_down_a_strong_one() {
        // The lexical list is right: 7, 8, 9. The dense list is noise.
        let lexical = [(7, 12.0), (8, 9.0), (9, 8.5), (1, 1.0)];
        let dense = [(1, 0.61), (2, 0.60), (3, 0.60), (4, 0.59), (7, 0.58)];
        let fused = fuse(
            &dense,
            &lexical,
            crate::RetrievalSettings::default().dense_weight("서울의 인구는?"),
            3,
        );
        assert_eq!(fused.iter().map(|x| x.0).collect::<Vec<_>>(), [7, 8, 9]);
        // With equal weights and agreeing lists, the shared best stays best.
        let fused = fuse(&[(7, 0.9), (5, 0.5)], &[(7, 10.0), (6, 2.0)], 0.5, 3);
        assert_eq!(fused[0].0, 7);
        assert_eq!(fused.len(), 3);
    }

    #[test]
    fn a_chunk_the_lexical_side_cannot_see_is_credited_half_of_its_weight() {
        // 9 is in another language: the dense side ranks it first; the
        // lexical side, which cannot match it, ranks 7 first.
        let dense = [(9, 0.9), (7, 0.8), (8, 0.7)];
        let lexical = [(7, 10.0), (8, 2.0)];
        let plain = fuse(&dense, &lexical, 0.5, 3);
        assert_eq!(plain[0].0, 7);
        let fused = fuse_except(&dense, &lexical, 0.5, &[9], 3);
        let of = |id| fused.iter().find(|x| x.0 == id).unwrap().1;
        // Dense 1.0 (scaled) at 0.5 + 0.5 * 0.5: 0.75; 7: 0.5 * 0.5 + 0.5.
        assert!((of(9) - 0.75).abs() < 1e-6, "{fused:?}");
        assert!((of(7) - 0.75).abs() < 1e-6, "{fused:?}");
        // Nothing named: the same as `fuse`.
        assert_eq!(fuse_except(&dense, &lexical, 0.5, &[], 3), plain);
    }
}
