//! Sources too long for their share of the prompt, cut down to the run of
//! sentences about the question.
//!
//! The prompt holds a few hundred tokens (the time to first token), and a
//! whole chunk can take most of them, so that a second source that holds
//! the answer is left out because the first one filled the prompt. Here
//! each source gets an equal share of the room the prompt has for sources; one shorter than its share goes in whole and leaves the
//! rest to the others. A longer one is cut to the contiguous run of its
//! sentences that shares the most content with the question (the
//! grounding check's units: words, and pairs of Hangul syllables), so that
//! the sentences around the answer come with it. A title line at its start
//! is kept, and `…` marks what was left out.
//!
//! Equal shares ([`shares`], [`crate::SourceFit::Excerpt`]) are not the
//! default: on 300 questions of each shared set with Qwen2.5-Coder 1.5B,
//! the answer's text reached the prompt a little more often, but SQuAD's
//! accuracy stayed the same and KorQuAD's fell, because the best source,
//! which holds the answer most often, was cut too (docs/benchmarks.md,
//! "Sources cut to fit"). The default fills in rank order instead
//! ([`fill`], [`crate::SourceFit::Fill`]): the best source whole, and the
//! next cut to the room it leaves.
//!
//! Hard-wrapped lines are joined first ([`crate::reflow`]), so that a
//! sentence that runs over lines is one sentence here too.
//!
//! Text only: the caller counts tokens with the model's tokenizer.

use crate::grounding::{sentences, units};
use crate::reflow::reflow;
use std::collections::HashSet;

/// Marks text left out of a source.
pub const ELLIPSIS: &str = "…";

/// A source cut down to fit: its text (with its wrapped lines joined), and
/// how many lines of the original come before its first sentence after the
/// title (so that a citation points at the line the kept sentences start
/// on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    pub text: String,
    pub lines_skipped: u32,
}

/// Token shares of `room` for sources of `sizes` tokens: equal shares,
/// where a source below its share takes only what it needs and the rest is
/// shared among the others.
pub fn shares(sizes: &[usize], room: usize) -> Vec<usize> {
    let mut share = vec![0; sizes.len()];
    let mut open: Vec<usize> = (0..sizes.len()).collect();
    let mut left = room;
    while !open.is_empty() {
        let each = left / open.len();
        let (fits, over): (Vec<usize>, Vec<usize>) = open.iter().partition(|&&i| sizes[i] <= each);
        if fits.is_empty() {
            for &i in &over {
                share[i] = each;
            }
            break;
        }
        for &i in &fits {
            share[i] = sizes[i];
            left -= sizes[i];
        }
        open = over;
    }
    share
}

/// Token shares of `room` for sources of `sizes` tokens, in rank order:
/// each takes what it needs while room is left, the first one whatever its
/// size (it always goes in whole), and the first that does not fit gets
/// what is left, to be cut down to it; those after it get nothing.
pub fn fill(sizes: &[usize], room: usize) -> Vec<usize> {
    let mut left = room;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let share = if i == 0 { size } else { size.min(left) };
            left = left.saturating_sub(share);
            share
        })
        .collect()
}

/// `text` cut to at most `max_tokens` tokens (as `count` counts them) of
/// the sentences most about `question`; `None` when it fits as it is, or
/// when not even one of its sentences fits (the caller then leaves it
/// whole or out).
pub fn excerpt(
    text: &str,
    question: &str,
    max_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Option<Excerpt> {
    let flowed = reflow(text);
    let text = flowed.text.as_str();
    if count(text) <= max_tokens {
        return None;
    }
    let spans = sentences(text);
    if spans.len() < 2 {
        return None;
    }
    let asked = units(question);
    let score = |&(s, e): &(usize, usize)| -> usize {
        let own: HashSet<String> = units(&text[s..e]);
        own.intersection(&asked).count()
    };
    // A short first line without a full stop is a title: it stays.
    let (first_s, first_e) = spans[0];
    let title = text[first_e..].starts_with('\n')
        && !text[first_s..first_e].ends_with(['.', '!', '?', '。'])
        && count(&text[first_s..first_e]) * 4 <= max_tokens;
    let body = if title { &spans[1..] } else { &spans[..] };
    // Each sentence costs its tokens and a separator.
    let cost: Vec<usize> = body.iter().map(|&(s, e)| count(&text[s..e]) + 1).collect();
    let gain: Vec<usize> = body.iter().map(score).collect();
    let fixed = if title {
        count(&text[first_s..first_e]) + 2
    } else {
        0
    } + 2; // the marks of what is left out
    let room = max_tokens.checked_sub(fixed)?;
    // The best window [i, j): most shared content, then the earliest.
    let mut best: Option<(usize, usize, usize)> = None;
    let mut j = 0;
    let (mut used, mut got) = (0, 0);
    for i in 0..body.len() {
        if j < i {
            j = i;
            used = 0;
            got = 0;
        }
        while j < body.len() && used + cost[j] <= room {
            used += cost[j];
            got += gain[j];
            j += 1;
        }
        if j > i && best.is_none_or(|(_, _, g)| got > g) {
            best = Some((i, j, got));
        }
        if j > i {
            used -= cost[i];
            got -= gain[i];
        }
    }
    let (i, j, _) = best?;
    let (start, end) = (body[i].0, body[j - 1].1);
    let mut out = String::new();
    if title {
        out.push_str(&text[first_s..first_e]);
        out.push_str("\n\n");
    }
    let cut_before = if title { i > 0 } else { start > 0 };
    if cut_before {
        out.push_str(ELLIPSIS);
        out.push(' ');
    }
    out.push_str(&text[start..end]);
    if j < body.len() {
        out.push(' ');
        out.push_str(ELLIPSIS);
    }
    Some(Excerpt {
        text: out,
        lines_skipped: flowed.lines_before(start) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word, as a stand-in for a tokenizer.
    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    const LUTHER: &str = "Martin Luther\n\nLuther lectured on the Psalms from 1510 to 1520. \
        He came to view penance and righteousness in new ways. \
        He wrote the Small Catechism to teach the congregation. \
        The Larger Catechism was meant for pastors. \
        His hymns spread the Reformation across Germany.";

    #[test]
    fn a_source_that_fits_is_left_whole() {
        assert_eq!(excerpt(LUTHER, "What did Luther write?", 200, &words), None);
    }

    #[test]
    fn a_long_source_keeps_its_title_and_the_sentences_about_the_question() {
        let e = excerpt(
            LUTHER,
            "What did Luther devise to teach the congregation?",
            20,
            &words,
        )
        .unwrap();
        assert!(e.text.starts_with("Martin Luther\n\n… "), "{}", e.text);
        assert!(
            e.text.contains("Small Catechism to teach the congregation"),
            "{}",
            e.text
        );
        assert!(words(&e.text) <= 20, "{}", e.text);
        assert!(e.text.ends_with(ELLIPSIS), "{}", e.text);
        assert_eq!(e.lines_skipped, 2);
    }

    #[test]
    fn wrapped_lines_are_cut_as_sentences_and_counted_as_lines() {
        let text = "Storage\n\nChunks are kept in SQLite, and the vectors in an\n\
                    HNSW graph. A new index is written beside the old one and\n\
                    switched in with one atomic rename. Each result shows its\n\
                    score and heading.";
        let e = excerpt(text, "How is a new index switched in?", 22, &words).unwrap();
        assert!(
            e.text.contains(
                "A new index is written beside the old one and switched in with one atomic rename."
            ),
            "{}",
            e.text
        );
        // The kept sentence starts on the fourth line of the original.
        assert_eq!(e.lines_skipped, 3, "{}", e.text);
    }

    #[test]
    fn korean_sentences_are_matched_by_syllable_pairs() {
        let text = "서울은 대한민국의 수도이다. 부산은 항구 도시로 알려져 있다. \
                    한강은 서울을 가로질러 흐른다. 제주도는 화산섬이다.";
        let e = excerpt(text, "부산은 어떤 도시로 알려져 있나요?", 9, &words).unwrap();
        assert!(e.text.contains("부산은 항구 도시로"), "{}", e.text);
        assert!(!e.text.contains("제주도"), "{}", e.text);
    }

    #[test]
    fn fill_keeps_the_first_whole_and_gives_the_next_what_is_left() {
        assert_eq!(fill(&[100, 100], 300), vec![100, 100]);
        assert_eq!(fill(&[250, 120, 80], 300), vec![250, 50, 0]);
        // The best source goes in whole even when it alone is over.
        assert_eq!(fill(&[400, 60], 300), vec![400, 0]);
        assert_eq!(fill(&[], 200), Vec::<usize>::new());
    }

    #[test]
    fn shares_give_short_sources_what_they_need_and_split_the_rest() {
        assert_eq!(shares(&[100, 100], 300), vec![100, 100]);
        assert_eq!(shares(&[50, 400, 400], 350), vec![50, 150, 150]);
        assert_eq!(shares(&[400, 60], 200), vec![140, 60]);
        assert_eq!(shares(&[], 200), Vec::<usize>::new());
    }
}
