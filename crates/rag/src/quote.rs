//! Short answers written as their source writes them.
//!
//! Asked for the fewest words, a small model copies the fact but not always
//! its wording: "2 [1]" where the source says "two", "1110" for "c1110",
//! "1/5" for "one-fifth", "Forster I, Forster II, Forster III" for "Forster
//! I, Forster II, and Forster III". The answer is right, but a reader who
//! looks for it in the source does not find it, and a measure that compares
//! words counts it wrong.
//!
//! A sentence's *claim* is its text between the citation marks that lead
//! or close it (a sentence with marks inside its claim is left alone). A
//! claim of at most [`MAX_CLAIM_WORDS`] words is rewritten as a run of its
//! source when
//!
//! * no source it is checked against holds the claim word for word
//!   (ignoring case and punctuation): then there is nothing to do;
//! * a run of one source's words, within one sentence of it, holds every
//!   word of the claim in order, beginning and ending on one, with at most
//!   [`MAX_EXTRA_WORDS`] words besides, each of them one of
//!   [`JOINING_WORDS`] ("and" in a list, "of" in a name): a word that says
//!   more ("the Nixon Administration" for "Nixon") is the model's to leave
//!   out;
//! * the claim is not stuck to a symbol (`70%`, `$5`), which the source
//!   may write as a word.
//!
//! Words match when they are the same ignoring case, when one is an English
//! number word and the other its digits ("two" and "2", "fifth" and "5"),
//! or when the claim's word is a number the source writes with a letter or
//! two ("c1110", "1990s", "5th"). The run found is the shortest, the first
//! of the shortest; the sources checked are those the sentence cites (after
//! [`crate::grounding::correct_citations`]). A sentence that cites none is
//! left alone: the prompt asks for the source's number after the answer,
//! and what comes without one is support, or a list's "1." standing as a
//! sentence of its own. Korean claims are rewritten only where their
//! words match exactly: a source's `서울에서` holds the answer `서울` with a
//! particle the answer rightly leaves out.
//!
//! Reads text only: no IO, no model.

use crate::grounding::{self, SentenceSupport};

/// Claims longer than this are sentences, which the model words as it
/// must; only short answers are rewritten.
pub const MAX_CLAIM_WORDS: usize = 6;

/// Source words a run may hold besides the claim's.
pub const MAX_EXTRA_WORDS: usize = 2;

/// The only words a run may hold besides the claim's: those that join
/// items of a list or parts of a name.
pub const JOINING_WORDS: &[&str] = &["and", "or", "of", "the", "a", "an"];

/// Words that bound or round the number after them, in English and Korean
/// (`약` is "about"): a claim that leaves one out states what its source
/// does not. Two-word ones are written with a space.
pub const QUALIFIERS: &[&str] = &[
    "about",
    "almost",
    "approximately",
    "around",
    "nearly",
    "over",
    "roughly",
    "some",
    "under",
    "at least",
    "at most",
    "fewer than",
    "less than",
    "more than",
    "up to",
    "약",
    "최대",
    "최소",
];

/// The shorter of two English words that differ by an inflection's ending
/// has at least this many letters ("news" is not "new" with an ending).
pub const MIN_STEM_LETTERS: usize = 4;

/// Endings that inflect an English word without changing what it names.
const INFLECTIONS: &[&str] = &["s", "es", "d", "ed"];

/// A word of a text and where it is.
#[derive(Debug, Clone, Copy)]
struct Word<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

/// The words of `text`: its runs of letters and digits.
fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (start, c.is_alphanumeric()) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.push(Word {
                    start: s,
                    end: i,
                    text: &text[s..i],
                });
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// The digits a word stands for: itself when it is digits, its number when
/// it is an English number word.
fn number(word: &str) -> Option<String> {
    if word.chars().all(|c| c.is_ascii_digit()) {
        return Some(word.to_string());
    }
    grounding::number_word(&word.to_lowercase()).map(str::to_string)
}

/// Whether `a` and `b` are one English word, one of them with an
/// inflection's ending.
pub(crate) fn inflected(a: &str, b: &str) -> bool {
    let latin = |w: &str| w.chars().all(|c| c.is_ascii_alphabetic());
    if !latin(a) || !latin(b) {
        return false;
    }
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= MIN_STEM_LETTERS
        && long
            .strip_prefix(short.as_str())
            .is_some_and(|ending| INFLECTIONS.contains(&ending))
}

/// Whether the claim's word `claim` is the source's word `source`.
fn same(claim: &str, source: &str) -> bool {
    if claim.to_lowercase() == source.to_lowercase() || inflected(claim, source) {
        return true;
    }
    let Some(n) = number(claim) else {
        return false;
    };
    if number(source).is_some_and(|m| m == n) {
        return true;
    }
    // A number the source writes with a letter or two: "c1110", "1990s".
    let digits: String = source.chars().filter(|c| c.is_ascii_digit()).collect();
    let letters = source.chars().filter(|c| c.is_ascii_alphabetic()).count();
    claim.chars().all(|c| c.is_ascii_digit())
        && digits == claim
        && (1..=2).contains(&letters)
        && digits.len() + letters == source.chars().count()
        && source.contains(claim)
}

/// Whether the text between two words of a source ends a sentence or a
/// line, so that a run may not span it.
fn breaks(between: &str) -> bool {
    between.contains('\n')
        || between.char_indices().any(|(i, c)| {
            matches!(c, '.' | '!' | '?' | '。')
                && between[i + c.len_utf8()..].starts_with(char::is_whitespace)
        })
}

/// Whether `source` holds the claim's words word for word.
fn holds(source: &[Word<'_>], claim: &[Word<'_>]) -> bool {
    !held_at(source, claim).is_empty()
}

/// Where `source` holds the claim's words word for word, as the index of
/// each run's first word.
fn held_at(source: &[Word<'_>], claim: &[Word<'_>]) -> Vec<usize> {
    (0..source.len().saturating_sub(claim.len() - 1))
        .filter(|&i| {
            source[i..i + claim.len()]
                .iter()
                .zip(claim)
                .all(|(s, c)| s.text.to_lowercase() == c.text.to_lowercase())
        })
        .collect()
}

/// The byte where the qualifier before the source's word `at` begins, when
/// one of [`QUALIFIERS`] stands right before it, spaces alone between.
fn qualifier_before(text: &str, source: &[Word<'_>], at: usize) -> Option<usize> {
    QUALIFIERS.iter().find_map(|q| {
        let n = q.split(' ').count();
        let first = at.checked_sub(n)?;
        let run = &source[first..at];
        let spaced = |a: &Word<'_>, b: &Word<'_>| text[a.end..b.start].chars().all(|c| c == ' ');
        let matches = run
            .iter()
            .zip(q.split(' '))
            .all(|(w, q)| w.text.eq_ignore_ascii_case(q))
            && run.windows(2).all(|p| spaced(&p[0], &p[1]))
            && spaced(&run[n - 1], &source[at]);
        matches.then_some(run[0].start)
    })
}

/// Whether the claim's first word is a number, in digits or a word.
fn begins_with_number(claim: &[Word<'_>]) -> bool {
    claim.first().is_some_and(|w| {
        w.text.starts_with(|c: char| c.is_ascii_digit()) || number(w.text).is_some()
    })
}

/// The claim, beginning with a number, with the qualifier its sources put
/// before it, when every place a source holds it has one: the text to
/// write, from the first source that holds it.
fn qualified<'t>(sources: &[(&'t str, &[Word<'_>])], claim: &[Word<'_>]) -> Option<&'t str> {
    if !begins_with_number(claim) {
        return None;
    }
    let mut found = None;
    for &(text, words) in sources {
        for i in held_at(words, claim) {
            let start = qualifier_before(text, words, i)?;
            found.get_or_insert(&text[start..words[i + claim.len() - 1].end]);
        }
    }
    found
}

/// The shortest run of `text`, whose words are `source`, (first of the
/// shortest) that holds the claim's words in order, as byte range and
/// number of words.
fn find_run(
    text: &str,
    source: &[Word<'_>],
    said: &str,
    claim: &[Word<'_>],
) -> Option<(usize, usize, usize)> {
    // A word matched only through an inflection must be joined to the one
    // before as the claim's is: the source's "11-year" (a compound) is not
    // the claim's "11 years".
    let joined = |t: &str, a: &Word<'_>, b: &Word<'_>| t[a.end..b.start].contains('-');
    let fits = |m: usize, j: usize| {
        let (c, w) = (claim[m].text, source[j].text);
        if c.to_lowercase() == w.to_lowercase() || !inflected(c, w) {
            return true;
        }
        let claim_joined = m > 0 && joined(said, &claim[m - 1], &claim[m]);
        let source_joined = j > 0 && joined(text, &source[j - 1], &source[j]);
        claim_joined == source_joined
    };
    let longest = claim.len() + MAX_EXTRA_WORDS;
    let mut best: Option<(usize, usize, usize)> = None;
    for i in 0..source.len() {
        if !same(claim[0].text, source[i].text) || !fits(0, i) {
            continue;
        }
        let mut matched = 1;
        let mut j = i;
        while matched < claim.len() && j + 1 < source.len() && j + 1 - i < longest {
            if breaks(&text[source[j].end..source[j + 1].start]) {
                break;
            }
            j += 1;
            if same(claim[matched].text, source[j].text) && fits(matched, j) {
                matched += 1;
            } else if !JOINING_WORDS.contains(&source[j].text.to_lowercase().as_str()) {
                break;
            }
        }
        if matched == claim.len() {
            let len = j - i + 1;
            if best.is_none_or(|(_, _, b)| len < b) {
                best = Some((source[i].start, source[j].end, len));
            }
        }
    }
    best
}

/// The sentence `sentence` with its claim written as `sources` (each text
/// with its words) write it, or `None` when it is left as it is.
fn requote(sentence: &str, sources: &[(&str, &[Word<'_>])]) -> Option<String> {
    let marks = grounding::marks(sentence);
    let all = words(sentence);
    let claim: Vec<Word<'_>> = all
        .into_iter()
        .filter(|w| !marks.iter().any(|&(s, e)| w.start >= s && w.end <= e))
        .collect();
    let (first, last) = (claim.first()?, claim.last()?);
    let free = |c: Option<char>| {
        c.is_none_or(|c| {
            c.is_whitespace()
                || matches!(
                    c,
                    '.' | ',' | ';' | ':' | '!' | '?' | '[' | ']' | '(' | ')' | '"'
                )
        })
    };
    if claim.len() > MAX_CLAIM_WORDS
        || marks.iter().any(|&(s, e)| s > first.start && e < last.end)
        || !free(sentence[..first.start].chars().next_back())
        || !free(sentence[last.end..].chars().next())
    {
        return None;
    }
    let rewrite = |run: &str| {
        format!(
            "{}{}{}",
            &sentence[..first.start],
            run,
            &sentence[last.end..]
        )
    };
    if let Some(run) = qualified(sources, &claim) {
        return Some(rewrite(run));
    }
    if sources.iter().any(|(_, w)| holds(w, &claim)) {
        return None;
    }
    let (text, words, (start, end, _)) = sources
        .iter()
        .filter_map(|&(text, w)| find_run(text, w, sentence, &claim).map(|run| (text, w, run)))
        .min_by_key(|(_, _, (_, _, len))| *len)?;
    // A number found in other words ("two" for "2") keeps its bound too.
    let start = match words.iter().position(|w| w.start == start) {
        Some(at) if begins_with_number(&claim) => {
            qualifier_before(text, words, at).unwrap_or(start)
        }
        _ => start,
    };
    Some(rewrite(&text[start..end]))
}

/// `answer` with each short claim written as its source writes it (see the
/// module's overview), and its support; a rewritten sentence keeps what the
/// model wrote in [`SentenceSupport::model_text`]. `support` is the
/// grounding check of `answer` against `sources`; nothing changes when no
/// claim is rewritten.
pub fn quote_sources(
    answer: &str,
    support: Vec<SentenceSupport>,
    sources: &[&str],
    min_support: f32,
) -> (String, Vec<SentenceSupport>) {
    let source_words: Vec<Vec<Word<'_>>> = sources.iter().map(|s| words(s)).collect();
    grounding::rewrite_sentences(
        answer,
        support,
        sources,
        min_support,
        |s, text| {
            let cited: Vec<(&str, &[Word<'_>])> = s
                .cites
                .iter()
                .map(|&n| (sources[n - 1], source_words[n - 1].as_slice()))
                .collect();
            requote(text, &cited)
        },
        |new, old| new.model_text = Some(old.text.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: f32 = grounding::DEFAULT_MIN_SUPPORT;

    fn quoted(answer: &str, sources: &[&str]) -> String {
        let support = grounding::check(answer, sources, MIN);
        quote_sources(answer, support, sources, MIN).0
    }

    #[test]
    fn numbers_are_written_as_the_source_writes_them() {
        let warsaw = "Warsaw lies on two geomorphologic formations: the plain moraine plateau and the Vistula Valley.";
        assert_eq!(quoted("2 [1]", &[warsaw]), "two [1]");
        let berlin = "By 1700, one-fifth of the city's population was French speaking.";
        assert_eq!(quoted("1/5 [1]", &[berlin]), "one-fifth [1]");
        let candlestick = "The Gloucester Candlestick, c1110, is gilt bronze.";
        assert_eq!(quoted("1110 [1]", &[candlestick]), "c1110 [1]");
        assert_eq!(quoted("[1] 1110.", &[candlestick]), "[1] c1110.");
    }

    #[test]
    fn a_list_takes_the_sources_words_between_its_items() {
        let codex = "The Codex Forster consists of three parchment-bound manuscripts, known as Forster I, Forster II, and Forster III, quite small in size.";
        let (text, support) = {
            let answer = "Forster I, Forster II, Forster III [1]";
            let support = grounding::check(answer, &[codex], MIN);
            quote_sources(answer, support, &[codex], MIN)
        };
        assert_eq!(text, "Forster I, Forster II, and Forster III [1]");
        assert_eq!(
            support[0].model_text.as_deref(),
            Some("Forster I, Forster II, Forster III [1]")
        );
        assert!(support[0].supported);
    }

    #[test]
    fn what_the_source_holds_word_for_word_is_left_alone() {
        let s = "The Broncos defeated the Panthers 24–10 to earn their third Super Bowl title.";
        for answer in [
            "24–10 [1]",
            "the Panthers [1].",
            "Third [1]",
            "[1] Super Bowl",
        ] {
            let support = grounding::check(answer, &[s], MIN);
            let (text, support) = quote_sources(answer, support.clone(), &[s], MIN);
            assert_eq!(text, answer);
            assert!(support.iter().all(|s| s.model_text.is_none()));
        }
        // "3" for "third" when the source also has "3" word for word.
        let both = "It was the third title in 3 appearances.";
        assert_eq!(quoted("3 [1]", &[both]), "3 [1]");
    }

    #[test]
    fn runs_keep_order_stay_short_and_stay_in_one_sentence() {
        // Out of order: "Broncos of Denver" is not "Denver Broncos".
        let s = "The Broncos of Denver won.";
        assert_eq!(quoted("Denver Broncos [1]", &[s]), "Denver Broncos [1]");
        // Three words besides the claim's are too many.
        let s = "Newcastle, a city with Gateshead, hosts it.";
        assert_eq!(
            quoted("Newcastle Gateshead [1]", &[s]),
            "Newcastle Gateshead [1]"
        );
        // A run does not cross a sentence's end or a line.
        let s = "It ended in 1870. Two theatres opened.\nTwo more followed.";
        assert_eq!(quoted("1870 2 [1]", &[s]), "1870 2 [1]");
        // A word that says more than the claim is not added.
        let s = "The Nixon Administration began talks.";
        assert_eq!(
            quoted("Nixon began talks [1]", &[s]),
            "Nixon began talks [1]"
        );
        // Nor is a symbol the source writes as a word.
        let s = "Seventy percent of it was sold.";
        assert_eq!(quoted("70% [1]", &[s]), "70% [1]");
        // A sentence answer is the model's to word.
        let s = "Luther devised the catechism as a method of imparting the basics of Christianity to the congregations.";
        let answer = "Luther devised the catechism to teach the basics of Christianity to 2 congregations. [1]";
        assert_eq!(quoted(answer, &[s]), answer);
    }

    #[test]
    fn only_the_sources_a_sentence_cites_are_read() {
        let one = "There were five lines.";
        let two = "Two lines were closed.";
        // Cites [2], which does not say "five": left alone, though [1] does.
        assert_eq!(quoted("5 [2]", &[one, two]), "5 [2]");
        // Cites nothing: left alone, as is a list's number.
        assert_eq!(quoted("5 lines", &[one, two]), "5 lines");
        let first = "It was the first ray; ten years passed.";
        assert_eq!(quoted("1. 10 years [1]", &[first]), "1. ten years [1]");
    }

    #[test]
    fn words_match_across_an_inflection() {
        let tesla = "Tesla suggested a two-phased system to Adams.";
        assert_eq!(
            quoted("Two-phase system [1]", &[tesla]),
            "two-phased system [1]"
        );
        let np = "Such problems are called NP-intermediate problems.";
        assert_eq!(
            quoted("NP-intermediate problem [1]", &[np]),
            "NP-intermediate problems [1]"
        );
        // A compound is not the words it joins.
        let s = "He served an 11-year term.";
        assert_eq!(quoted("11 years [1]", &[s]), "11 years [1]");
        // Three letters are too few to tell an ending from another word.
        let news = "The news spread.";
        assert_eq!(quoted("new [1]", &[news]), "new [1]");
        // Other endings change the word.
        let s = "A proposal was printed.";
        assert_eq!(quoted("Proposing [1]", &[s]), "Proposing [1]");
        // The source holding the claim word for word wins, even in a title.
        let s = "Steam engine\n\nSteam engines drove the mills.";
        assert_eq!(quoted("Steam engine [1]", &[s]), "Steam engine [1]");
    }

    #[test]
    fn a_number_keeps_the_word_its_source_bounds_it_by() {
        let s = "The network carries over 37 million passengers a year.";
        assert_eq!(quoted("37 million [1]", &[s]), "over 37 million [1]");
        assert_eq!(
            quoted("37 million passengers [1].", &[s]),
            "over 37 million passengers [1]."
        );
        let s = "It seats more than 1,200 people.";
        assert_eq!(quoted("1,200 [1]", &[s]), "more than 1,200 [1]");
        let s = "It took about two weeks.";
        assert_eq!(quoted("2 weeks [1]", &[s]), "about two weeks [1]");
        // A source that also states it bare leaves it bare.
        let s = "Over 300 came in 1990; in 1991, 300 came.";
        assert_eq!(quoted("300 [1]", &[s]), "300 [1]");
        // Words that are not a bound, and claims that are not a number.
        let s = "In 1862 both courts opened; the wing followed.";
        assert_eq!(quoted("1862 [1]", &[s]), "1862 [1]");
        let s = "Only the Broncos won over Carolina.";
        assert_eq!(quoted("Carolina [1]", &[s]), "Carolina [1]");
        let s = "행사에는 약 3만 명이 모였다.";
        assert_eq!(quoted("3만 [1]", &[s]), "약 3만 [1]");
        // A qualifier the model wrote itself is left as it wrote it.
        let s = "It carries over 37 million passengers.";
        assert_eq!(quoted("about 37 million [1]", &[s]), "about 37 million [1]");
        // Only the source the sentence cites is read.
        let other = "Some 40 lines ran.";
        let cited = "Forty lines ran.";
        assert_eq!(quoted("40 lines [2]", &[other, cited]), "Forty lines [2]");
    }

    #[test]
    fn korean_claims_keep_their_words() {
        let s = "1989년에 서울에서 열렸다.";
        assert_eq!(quoted("서울 [1]", &[s]), "서울 [1]");
        assert_eq!(quoted("1989 [1]", &[s]), "1989 [1]");
    }

    #[test]
    fn marks_inside_a_claim_leave_it_alone() {
        let one = "There were five lines.";
        let two = "And four stations.";
        assert_eq!(quoted("5 [1] 4 [2]", &[one, two]), "5 [1] 4 [2]");
    }
}
