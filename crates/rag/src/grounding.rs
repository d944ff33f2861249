//! The grounding check: how well each sentence of an answer is supported
//! by the sources it cites (by all the sources when it cites none).
//!
//! A sentence's support is the share of its content that the sources it
//! cites hold between them: words of three letters or more outside a short
//! list of function words, and for Korean, whose words take particles and
//! endings (`서울에서`, `서울은`), the pairs of neighbouring Hangul
//! syllables within a word. A sentence that cites none, or cites sources
//! that do not hold it, is measured against the best of the sources: the
//! one that holds most of it, with a second (third…) beside it when that
//! one holds a real part of what the first does not, as a comparison draws
//! on one source for each side. The check reads text only: no IO, no
//! model.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Sentences whose support is below this are marked unsupported
/// (calibrated on the shared sets; see docs/benchmarks.md, "Grounding").
pub const DEFAULT_MIN_SUPPORT: f32 = 0.5;

/// One sentence of an answer and how well the sources support it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceSupport {
    pub text: String,
    /// Byte range in the answer.
    pub start: usize,
    pub end: usize,
    /// The sources it cites (`[n]`), in order.
    pub cites: Vec<usize>,
    /// Share of its content found in the best of the sources it cites (of
    /// all sources when it cites none), 0 to 1 (1 when it has no content to
    /// check, such as "Yes.").
    pub support: f32,
    /// `support >= min_support`.
    pub supported: bool,
    /// The source (`n`) that supports it best, cited or not, and how well
    /// it and [`best_sources`](Self::best_sources) do together: a sentence
    /// that cites `[1]` when `[2]` holds it is miscited rather than
    /// invented, and [`correct_citations`] points it at `[2]`.
    pub best_source: Option<usize>,
    pub best_support: f32,
    /// The sources that hold it best between them, best first: the best
    /// source alone, or with the others that each hold at least
    /// [`JOINT_SHARE`] of the sentence the ones before it do not ("HNSW is
    /// an index [2], while quantization stores weights in fewer bits [1]").
    #[serde(default)]
    pub best_sources: Vec<usize>,
    /// The sources the model cited, when docent corrected them
    /// ([`correct_citations`]); empty when the marks are the model's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_cites: Vec<usize>,
    /// What the model wrote, when docent rewrote the sentence: its claim
    /// as its source writes it ([`crate::quote`]: "2 [1]" made "two [1]"),
    /// or a Korean question's ending as a statement's
    /// ([`crate::statement`]: "…상당했는가? [1]" made "…상당했다. [1]").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_text: Option<String>,
    /// For a sentence the words leave unsupported and whose sources are in
    /// another script: the encoder's cosine to the closest sentence of the
    /// sources it is checked against ([`crate::crosslingual`]), which is
    /// its support when it reaches the encoder's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

/// A source joins the best source in supporting a sentence when it holds
/// at least this share of the sentence's content that the sources before
/// it do not: a real part of the sentence, not a stray word of it.
pub const JOINT_SHARE: f32 = 0.25;

/// Scores every sentence of `answer` against `sources` (numbered from 1).
pub fn check(answer: &str, sources: &[&str], min_support: f32) -> Vec<SentenceSupport> {
    let source_units: Vec<HashSet<String>> = sources.iter().map(|s| units(s)).collect();
    sentences(answer)
        .into_iter()
        .map(|(start, end)| {
            let text = &answer[start..end];
            let cites: Vec<usize> = citations(text)
                .into_iter()
                .filter(|&n| n >= 1 && n <= sources.len())
                .collect();
            let own = units(&strip_citations(text));
            let (best_sources, best_support) = best_sources(&own, &source_units);
            let support = if cites.is_empty() {
                best_support
            } else {
                held(&own, &source_units, &cites)
            };
            SentenceSupport {
                text: text.to_string(),
                start,
                end,
                cites,
                support,
                supported: support >= min_support,
                best_source: best_sources.first().copied(),
                best_support,
                best_sources,
                model_cites: Vec::new(),
                model_text: None,
                similarity: None,
            }
        })
        .collect()
}

/// The share of `own` that the sources `ns` (numbered from 1) hold between
/// them; 1 when there is nothing to check.
fn held(own: &HashSet<String>, source_units: &[HashSet<String>], ns: &[usize]) -> f32 {
    if own.is_empty() {
        return 1.0;
    }
    let found = own
        .iter()
        .filter(|u| ns.iter().any(|&n| source_units[n - 1].contains(*u)))
        .count();
    found as f32 / own.len() as f32
}

/// The sources that hold `own` best between them, best first, and the
/// share they hold: the source that holds most of it, then, while one
/// holds at least [`JOINT_SHARE`] of it that those before do not, the
/// one that holds most. No source when none holds any of it.
fn best_sources(own: &HashSet<String>, source_units: &[HashSet<String>]) -> (Vec<usize>, f32) {
    if source_units.is_empty() {
        return (Vec::new(), 0.0);
    }
    if own.is_empty() {
        return (vec![1], 1.0);
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut left: Vec<&String> = own.iter().collect();
    loop {
        // The first source with the most of what is left (ties go to the
        // better-ranked source).
        let best = (1..=source_units.len())
            .filter(|n| !chosen.contains(n))
            .map(|n| {
                let adds = left
                    .iter()
                    .filter(|u| source_units[n - 1].contains(**u))
                    .count();
                (n, adds)
            })
            .fold(None, |a: Option<(usize, usize)>, b| match a {
                Some(a) if a.1 >= b.1 => Some(a),
                _ => Some(b),
            });
        let Some((n, adds)) = best else { break };
        let enough = if chosen.is_empty() {
            adds > 0
        } else {
            adds >= 2 && adds as f32 >= JOINT_SHARE * own.len() as f32
        };
        if !enough {
            break;
        }
        chosen.push(n);
        left.retain(|u| !source_units[n - 1].contains(*u));
    }
    let support = (own.len() - left.len()) as f32 / own.len() as f32;
    (chosen, support)
}

/// The sources a sentence should cite instead of those it does, in
/// order, if any: the ones that hold it best, when those it cites do not
/// hold it (it is miscited) or hold a real part less of it
/// ([`JOINT_SHARE`]: "LangServe deploys chains, while LangSmith traces
/// them [1]" where [2] is LangServe's, or "19 yards [2]" where [2] says
/// "yards" and [1] says "19 yards").
fn recited(s: &SentenceSupport, min_support: f32) -> Option<Vec<usize>> {
    if s.cites.is_empty() || s.best_sources.is_empty() || s.best_support < min_support {
        return None;
    }
    if s.supported && s.best_support - s.support < JOINT_SHARE {
        return None;
    }
    let mut ns = s.best_sources.clone();
    ns.sort_unstable();
    let mut cites = s.cites.clone();
    cites.sort_unstable();
    cites.dedup();
    (ns != cites).then_some(ns)
}

/// `answer` with the citation marks of each miscited sentence (it cites
/// sources that do not hold it, and others do) pointed at the sources that
/// hold it, and of each sentence that leaves out a source holding a real
/// part of it ([`JOINT_SHARE`]) given that one too; and the support of
/// the result. A corrected sentence records the marks the model wrote in
/// [`SentenceSupport::model_cites`]. With two sources in its prompt a small
/// model often numbers a sentence after the other one ("1985 [2]" where
/// [1] says it), or a comparison after one side; the sentence is right,
/// its citation is not. `support` is `check(answer, sources,
/// min_support)`; nothing changes when no sentence is miscited.
pub fn correct_citations(
    answer: &str,
    support: Vec<SentenceSupport>,
    sources: &[&str],
    min_support: f32,
) -> (String, Vec<SentenceSupport>) {
    rewrite_sentences(
        answer,
        support,
        sources,
        min_support,
        |s, text| {
            recited(s, min_support).map(|ns| {
                let ns: Vec<String> = ns.iter().map(usize::to_string).collect();
                replace_marks(text, &format!("[{}]", ns.join(", ")))
            })
        },
        |new, old| new.model_cites = old.cites.clone(),
    )
}

/// `answer` with each sentence that `rewrite` (given its support and text)
/// returns a new text for replaced by it, and the support of the result.
/// `mark` records, on each rewritten sentence's new support, what it was
/// (given the old support); what earlier rewrites recorded carries over.
/// Nothing changes when no sentence is rewritten.
pub(crate) fn rewrite_sentences(
    answer: &str,
    support: Vec<SentenceSupport>,
    sources: &[&str],
    min_support: f32,
    mut rewrite: impl FnMut(&SentenceSupport, &str) -> Option<String>,
    mark: impl Fn(&mut SentenceSupport, &SentenceSupport),
) -> (String, Vec<SentenceSupport>) {
    let mut out = String::with_capacity(answer.len());
    let mut last = 0;
    let mut rewritten = false;
    for s in &support {
        out.push_str(&answer[last..s.start]);
        let text = &answer[s.start..s.end];
        match rewrite(s, text) {
            Some(new) => {
                out.push_str(&new);
                rewritten = true;
            }
            None => out.push_str(text),
        }
        last = s.end;
    }
    if !rewritten {
        return (answer.to_string(), support);
    }
    out.push_str(&answer[last..]);
    let mut checked = check(&out, sources, min_support);
    if checked.len() == support.len() {
        for (new, old) in checked.iter_mut().zip(&support) {
            new.model_cites.clone_from(&old.model_cites);
            new.model_text.clone_from(&old.model_text);
            if new.text != old.text {
                mark(new, old);
            }
        }
    }
    (out, checked)
}

/// `text` with every citation mark (`[2]`, `[1, 2]`) made `with`.
fn replace_marks(text: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in marks(text) {
        out.push_str(&text[last..start]);
        out.push_str(with);
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Byte ranges of the citation marks (`[2]`, `[1, 2]`) in `text`.
pub(crate) fn marks(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|i| from + i) {
        let after = open + 1;
        match text[after..].find(']') {
            Some(close) if is_mark(&text[after..after + close]) => {
                out.push((open, after + close + 1));
                from = after + close + 1;
            }
            _ => from = after,
        }
    }
    out
}

/// Whether `inside` the brackets is a citation mark's: numbers, commas and
/// spaces.
pub(crate) fn is_mark(inside: &str) -> bool {
    !inside.is_empty()
        && inside
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
}

/// Whether `answer` says nothing but citation marks and punctuation
/// ("[1] [2]"), which a small model sometimes writes instead of an answer.
pub fn says_nothing(answer: &str) -> bool {
    !strip_citations(answer).chars().any(char::is_alphanumeric)
}

/// The answer with only its supported sentences.
pub fn supported_text(answer: &str, support: &[SentenceSupport]) -> String {
    let kept: Vec<&str> = support
        .iter()
        .filter(|s| s.supported)
        .map(|s| answer[s.start..s.end].trim())
        .collect();
    kept.join(" ")
}

/// Function words that say nothing about the facts of a sentence.
const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "was",
    "were",
    "are",
    "is",
    "its",
    "it's",
    "that",
    "this",
    "these",
    "those",
    "with",
    "from",
    "into",
    "onto",
    "than",
    "then",
    "there",
    "their",
    "they",
    "them",
    "which",
    "who",
    "whom",
    "whose",
    "what",
    "when",
    "where",
    "why",
    "how",
    "has",
    "have",
    "had",
    "been",
    "being",
    "but",
    "not",
    "can",
    "could",
    "would",
    "should",
    "will",
    "shall",
    "may",
    "might",
    "also",
    "such",
    "some",
    "any",
    "all",
    "each",
    "both",
    "more",
    "most",
    "other",
    "about",
    "over",
    "after",
    "before",
    "between",
    "during",
    "while",
    "his",
    "her",
    "him",
    "she",
    "our",
    "your",
    "you",
    "per",
    "via",
    "does",
    "did",
    "done",
    "source",
    "sources",
    "answer",
    "question",
    "document",
    "documents",
];

/// Pairs of syllables from the polite endings an answer adds to what its
/// source says (`…입니다`, `…했습니다`), which say nothing of its facts.
const ENDING_PAIRS: &[&str] = &[
    "입니", "니다", "습니", "합니", "됩니", "있습", "었습", "였습", "했습", "됐습", "겠습", "세요",
    "이에", "에요", "예요", "인가", "는가",
];

pub(crate) fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

/// How a run of characters in a word is read: its script decides, so that
/// `베이징TV` and `c1110` are taken run by run.
#[derive(Clone, Copy, PartialEq)]
enum Run {
    Hangul,
    Digits,
    Letters,
}

fn run_of(c: char) -> Run {
    if is_hangul(c) {
        Run::Hangul
    } else if c.is_ascii_digit() {
        Run::Digits
    } else {
        Run::Letters
    }
}

/// English number words, cardinal and ordinal, read as the digits an answer
/// often writes instead ("2" for "two formations", "1/5" for "one-fifth").
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("first", "1"),
    ("two", "2"),
    ("second", "2"),
    ("three", "3"),
    ("third", "3"),
    ("four", "4"),
    ("fourth", "4"),
    ("five", "5"),
    ("fifth", "5"),
    ("six", "6"),
    ("sixth", "6"),
    ("seven", "7"),
    ("seventh", "7"),
    ("eight", "8"),
    ("eighth", "8"),
    ("nine", "9"),
    ("ninth", "9"),
    ("ten", "10"),
    ("tenth", "10"),
    ("eleven", "11"),
    ("eleventh", "11"),
    ("twelve", "12"),
    ("twelfth", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
];

/// The digits a lowercase English number word stands for ("two" → "2",
/// "fifth" → "5").
pub(crate) fn number_word(word: &str) -> Option<&'static str> {
    NUMBER_WORDS
        .iter()
        .find(|(n, _)| *n == word)
        .map(|&(_, digits)| digits)
}

/// The content units of a text (see the module's overview). A word that
/// mixes scripts (`베이징TV`, `4번`) or letters and digits (`c1110`, `5th`)
/// is taken run by run: pairs of syllables from its Hangul, numbers from
/// its digits, whole words from the rest. A number word counts as its
/// digits.
pub(crate) fn units(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let mut rest = word;
        while let Some(first) = rest.chars().next() {
            let kind = run_of(first);
            let end = rest
                .char_indices()
                .find(|&(_, c)| run_of(c) != kind)
                .map_or(rest.len(), |(i, _)| i);
            let run = &rest[..end];
            rest = &rest[end..];
            match kind {
                Run::Hangul => {
                    let syllables: Vec<char> = run.chars().collect();
                    if syllables.len() == 1 {
                        out.insert(run.to_string());
                    }
                    for pair in syllables.windows(2) {
                        let pair: String = pair.iter().collect();
                        if !ENDING_PAIRS.contains(&pair.as_str()) {
                            out.insert(pair);
                        }
                    }
                }
                Run::Digits => {
                    out.insert(run.to_string());
                }
                Run::Letters => {
                    let w = run.to_lowercase();
                    if let Some(digits) = number_word(&w) {
                        out.insert(digits.to_string());
                    } else if w.chars().count() >= 3 && !STOPWORDS.contains(&w.as_str()) {
                        out.insert(w);
                    }
                }
            }
        }
    }
    out
}

/// The `n` of every citation mark (`[1]`, `[1, 2]`) in `text`.
fn citations(text: &str) -> Vec<usize> {
    let mut out: Vec<usize> = marks(text)
        .into_iter()
        .flat_map(|(start, end)| {
            text[start + 1..end - 1]
                .split(',')
                .filter_map(|n| n.trim().parse::<usize>().ok())
        })
        .collect();
    out.dedup();
    out
}

fn strip_citations(text: &str) -> String {
    replace_marks(text, "")
}

/// `text` without its citation marks, its spaces made single: what an
/// answer says, for a question about it.
pub(crate) fn without_citations(text: &str) -> String {
    strip_citations(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `text` ends with a capital letter standing alone, whose full
/// stop is a name's initial ("Dwight D. Eisenhower"), not a sentence's end.
pub(crate) fn ends_with_initial(text: &str) -> bool {
    let mut last = text.chars().rev();
    matches!(last.next(), Some(c) if c.is_ascii_uppercase())
        && last.next().is_none_or(|c| c.is_whitespace() || c == '(')
}

/// Byte ranges of the sentences of `text`: a sentence ends at a line break,
/// or after `.`, `!`, `?` or `。` and any citation marks that follow, where
/// whitespace comes next (so `3.5` and `e.g.x` stay whole), unless the full
/// stop follows a name's initial ("James E. Webb").
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().expect("in bounds");
        let next = i + c.len_utf8();
        if c == '\n' {
            out.push((start, i));
            start = next;
        } else if matches!(c, '.' | '!' | '?' | '。')
            && !(c == '.' && ends_with_initial(&text[..i]))
        {
            // Citation marks after the full stop belong to the sentence.
            let mut end = next;
            while bytes.get(end) == Some(&b' ') || bytes.get(end) == Some(&b'[') {
                let rest = &text[end..];
                let trimmed = rest.trim_start_matches(' ');
                if !trimmed.starts_with('[') {
                    break;
                }
                match trimmed.find(']') {
                    Some(close) if !citations(&trimmed[..=close]).is_empty() => {
                        end = text.len() - trimmed.len() + close + 1;
                    }
                    _ => break,
                }
            }
            if end >= text.len() || text[end..].starts_with(char::is_whitespace) {
                out.push((start, end));
                start = end;
                i = end;
                continue;
            }
        }
        i = next;
    }
    out.push((start, text.len()));
    out.into_iter()
        .map(|(s, e)| {
            let t = &text[s..e];
            let lead = t.len() - t.trim_start().len();
            (s + lead, s + lead + t.trim().len())
        })
        .filter(|(s, e)| e > s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: &str = "LangServe deploys LangChain chains as a REST API. \
                      LangSmith records every step of a chain run for tracing.";
    const KO: &str = "양자화는 모델의 가중치를 4비트나 8비트처럼 더 적은 비트로 저장하는 기술이다.";

    #[test]
    fn a_miscited_sentence_is_pointed_at_the_source_that_holds_it() {
        let other = "LangChain is a framework for building applications on language models.";
        let answer = "LangServe deploys chains as a REST API [2]. LangChain is a framework [2].";
        let support = check(answer, &[EN, other], 0.5);
        assert!(!support[0].supported);
        let (fixed, support) = correct_citations(answer, support, &[EN, other], 0.5);
        assert_eq!(
            fixed,
            "LangServe deploys chains as a REST API [1]. LangChain is a framework [2]."
        );
        assert!(support.iter().all(|s| s.supported), "{support:?}");
        assert_eq!(support[0].cites, [1]);
        assert_eq!(support[0].model_cites, [2]);
        assert!(support[1].model_cites.is_empty());
        // An invented sentence keeps its mark: no source holds it.
        let invented = "A LangSmith subscription costs $100 per month [1].";
        let support = check(invented, &[EN, other], 0.5);
        let (same, _) = correct_citations(invented, support, &[EN, other], 0.5);
        assert_eq!(same, invented);
    }

    #[test]
    fn citation_marks_alone_say_nothing() {
        assert!(says_nothing("[1] [2]"));
        assert!(says_nothing(" [1]. "));
        assert!(!says_nothing("1685 [2]"));
        assert!(!says_nothing("서울 [1]"));
        assert!(!says_nothing("[1] Sky [1]"));
    }

    #[test]
    fn sentences_keep_their_citations_and_numbers() {
        let t = "It costs 3.5 dollars [1]. It is cheap [2][3]! 정말입니다.\nNext line";
        let s: Vec<&str> = sentences(t).into_iter().map(|(a, b)| &t[a..b]).collect();
        assert_eq!(
            s,
            [
                "It costs 3.5 dollars [1].",
                "It is cheap [2][3]!",
                "정말입니다.",
                "Next line"
            ]
        );
        assert_eq!(citations("a [1, 2] b [3] [x] [10]"), [1, 2, 3, 10]);
        // A name's initial ends no sentence (nor, the price of it, "Plan
        // B."); a word in capitals does.
        let t = "James E. Webb led NASA. It grew. Plan B. Then (C. Smith) left.";
        let s: Vec<&str> = sentences(t).into_iter().map(|(a, b)| &t[a..b]).collect();
        assert_eq!(
            s,
            [
                "James E. Webb led NASA.",
                "It grew.",
                "Plan B. Then (C. Smith) left."
            ]
        );
    }

    #[test]
    fn a_sentence_the_source_says_is_supported_and_an_invented_one_is_not() {
        let answer = "LangServe deploys chains as a REST API [1]. \
                      LangSmith was founded in Paris by Napoleon [1].";
        let s = check(answer, &[EN], DEFAULT_MIN_SUPPORT);
        assert_eq!(s.len(), 2);
        assert!(s[0].supported && s[0].support > 0.9, "{s:?}");
        assert!(!s[1].supported, "{s:?}");
        assert_eq!(s[0].best_source, Some(1));
        assert_eq!(
            supported_text(answer, &s),
            "LangServe deploys chains as a REST API [1]."
        );
    }

    #[test]
    fn korean_particles_do_not_hide_support() {
        // Different endings and particles, same content.
        let good = "양자화는 가중치를 더 적은 비트로 저장하는 기술입니다 [1].";
        let bad = "양자화는 서버를 클라우드에 배포하는 방법입니다 [1].";
        let s = check(&format!("{good} {bad}"), &[KO], DEFAULT_MIN_SUPPORT);
        assert!(s[0].supported, "{s:?}");
        assert!(!s[1].supported, "{s:?}");
    }

    #[test]
    fn a_miscited_sentence_is_unsupported_but_names_the_source_that_holds_it() {
        let s = check(
            "LangSmith records every step for tracing [1].",
            &[KO, EN],
            DEFAULT_MIN_SUPPORT,
        );
        assert!(!s[0].supported, "{s:?}");
        assert_eq!(s[0].best_source, Some(2));
        assert!(s[0].best_support >= DEFAULT_MIN_SUPPORT);
    }

    #[test]
    fn words_that_mix_scripts_are_checked_run_by_run() {
        let source = "2012년 베이징TV(BTV)가 노아의 방주 발견을 보도했다.";
        let s = check("BTV [1]", &[source], DEFAULT_MIN_SUPPORT);
        assert!(s[0].supported, "{s:?}");
        let s = check("2012년 베이징TV입니다 [1].", &[source], DEFAULT_MIN_SUPPORT);
        assert!(s[0].supported, "{s:?}");
        let s = check("KBS [1]", &[source], DEFAULT_MIN_SUPPORT);
        assert!(!s[0].supported, "{s:?}");
    }

    #[test]
    fn numbers_match_whether_written_in_digits_or_words() {
        // Short answers from SQuAD 1.1 that were declined as unsupported
        // before number words and letter-digit words were read as numbers.
        let warsaw = "Warsaw is located on two main geomorphologic formations.";
        assert!(check("2 [1]", &[warsaw], DEFAULT_MIN_SUPPORT)[0].supported);
        let berlin = "By 1700, one-fifth of the city's population was French speaking.";
        assert!(check("1/5 [1]", &[berlin], DEFAULT_MIN_SUPPORT)[0].supported);
        let candlestick = "The Gloucester Candlestick (c1110) is made of gilt bronze.";
        assert!(check("1110 [1]", &[candlestick], DEFAULT_MIN_SUPPORT)[0].supported);
        let france = "Some one million Protestants live in France today.";
        let s = check("1 million [1]", &[france], DEFAULT_MIN_SUPPORT);
        assert!(s[0].supported && s[0].support > 0.99, "{s:?}");
        // A different number is still not supported.
        assert!(!check("3 [1]", &[warsaw], DEFAULT_MIN_SUPPORT)[0].supported);
        assert!(!check("1120 [1]", &[candlestick], DEFAULT_MIN_SUPPORT)[0].supported);
    }

    #[test]
    fn a_sentence_that_draws_on_two_sources_is_held_by_them_together() {
        // `corpus/`: "What is the difference between HNSW and
        // quantization?" was withdrawn as unsupported, each source
        // holding only its own half of the model's one sentence.
        let quantization = "Quantization stores a model's weights with fewer bits, \
                            for example 4 or 8 bits instead of 16 or 32.";
        let retriever = "Dense retrievers embed text with a sentence encoder and search \
                         the vectors with an approximate nearest-neighbour index such as HNSW.";
        let sources = [quantization, retriever];
        let answer = "HNSW is a type of approximate nearest-neighbour index, while \
                      quantization is a technique used to store model weights with fewer \
                      bits. [1]";
        let s = check(answer, &sources, DEFAULT_MIN_SUPPORT);
        assert!(!s[0].supported && s[0].support < 0.4, "{s:?}");
        assert_eq!(s[0].best_sources, [1, 2], "{s:?}");
        assert!(s[0].best_support >= 0.6, "{s:?}");
        // Cited as the two, it is supported; the citation is corrected to
        // name both.
        let both = answer.replace("[1]", "[1, 2]");
        assert!(check(&both, &sources, DEFAULT_MIN_SUPPORT)[0].supported);
        let (fixed, support) = correct_citations(answer, s, &sources, DEFAULT_MIN_SUPPORT);
        assert_eq!(fixed, both);
        assert!(
            support[0].supported && support[0].model_cites == [1],
            "{support:?}"
        );
        // Supported by the one it cites, it is given the other too when
        // that holds a real part of it; a source that holds only a stray
        // word of it gives way to the one that holds it all.
        let run = ["He ran 19 yards.", "Ten yards."];
        let s = check("19 yards [2].", &run, 0.5);
        assert!(s[0].supported && s[0].best_sources == [1], "{s:?}");
        let (fixed, _) = correct_citations("19 yards [2].", s, &run, 0.5);
        assert_eq!(fixed, "19 yards [1].");
        let half = "HNSW is an approximate nearest-neighbour index, while quantization \
                    stores model weights with fewer bits [1].";
        let s = check(half, &sources, DEFAULT_MIN_SUPPORT);
        assert!(s[0].supported && s[0].support < 0.7, "{s:?}");
        let (fixed, _) = correct_citations(half, s, &sources, DEFAULT_MIN_SUPPORT);
        assert_eq!(fixed, half.replace("[1]", "[1, 2]"));
        // Each half alone keeps one source.
        let s = check(
            "Quantization stores weights with fewer bits.",
            &sources,
            0.5,
        );
        assert_eq!(s[0].best_sources, [1]);
        // A stray word of another source does not join it: the invented
        // rest stays unsupported.
        let invented = "Quantization was invented in Paris by Napoleon for every index.";
        let s = check(invented, &sources, DEFAULT_MIN_SUPPORT);
        assert_eq!(s[0].best_sources, [1], "{s:?}");
        assert!(
            !s[0].supported && s[0].best_support < DEFAULT_MIN_SUPPORT,
            "{s:?}"
        );
    }

    #[test]
    fn an_uncited_sentence_is_checked_against_every_source() {
        let s = check(
            "LangSmith records every step for tracing.",
            &[KO, EN],
            DEFAULT_MIN_SUPPORT,
        );
        assert_eq!(s[0].best_source, Some(2));
        assert!(s[0].supported);
        // A citation out of range is ignored.
        let s = check(
            "LangSmith records every step [7].",
            &[EN],
            DEFAULT_MIN_SUPPORT,
        );
        assert!(s[0].cites.is_empty() && s[0].supported);
    }
}
