//! Answers that only repeat their question.
//!
//! A small model sometimes answers with the question's own words: "Steam
//! [1]" for "What is the typical working fluid in a steam engine?", "General
//! Electric [1]" for "Who outbid General Electric …?", "Class sizes can make
//! keeping order difficult. [1]" for "What class sizes can make keeping
//! order difficult?". Such an answer names nothing the question did not, so
//! it cannot be the answer, yet the grounding check passes it: its words
//! are in the source, since the question's are.
//!
//! [`echo_of`] finds one: the answer's first sentence, when every word of
//! it is a word of the question (or the same English word with an
//! inflection's ending, "teachers" for "teacher's"), leaving out a few
//! function words. Hangul is compared by pairs of syllables, as the
//! grounding check does, after a closing copula ("입니다") is taken off, so
//! that "…이르는 말은 계산법과 천문상수의 체계입니다" for "…체계를 이르는 말은?"
//! is an echo while a Korean answer with a word of its own is not.
//! The engine then asks the model again ([`crate::Engine::answer`]), with
//! the template's `again` note and the echo's first word kept from
//! starting the answer ([`first_word_tokens`]); the second answer replaces
//! the first only if it says something the question does not
//! ([`says_more`]) and does not decline.

use std::collections::HashSet;

use docent_generate::tokenizer::GgufTokenizer;

use crate::grounding;

/// Words an answer may add to its question's and still only repeat it:
/// function words, and those that speak of the answer rather than give it
/// ("The answer is [1].").
const FUNCTION_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "by",
    "for",
    "from",
    "with",
    "as",
    "and",
    "or",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "its",
    "this",
    "that",
    "these",
    "those",
    "there",
    "answer",
    "question",
    "source",
    "sources",
    "document",
    "documents",
];

/// Endings of the copula that close a Korean answer ("서울입니다", "체계이다"):
/// taken off a Hangul word before it is compared, so that an answer which
/// only puts the question's own words before "입니다" is an echo. A word that
/// is nothing else is a function word.
const COPULA_ENDINGS: &[&str] = &[
    "이었습니다",
    "였습니다",
    "입니다",
    "이었다",
    "였다",
    "이에요",
    "예요",
    "이다",
];

/// Articles the answer's first word may be, after which its first content
/// word is what is kept from starting the second answer too.
const ARTICLES: &[&str] = &["a", "an", "the"];

/// The first sentence of `answer`, without citation marks and its closing
/// full stop, when it only repeats `question`'s words; `None` when it says
/// anything the question does not, or nothing at all.
pub fn echo_of(question: &str, answer: &str) -> Option<String> {
    let first = first_sentence(answer)?;
    let (content, new) = new_words(question, &first);
    (content > 0 && new == 0).then_some(first)
}

/// Whether the first sentence of `answer` says something `question` does
/// not: a word of its own beyond function words.
pub fn says_more(question: &str, answer: &str) -> bool {
    first_sentence(answer).is_some_and(|first| new_words(question, &first).1 > 0)
}

/// The first sentence of `answer`, without citation marks and its closing
/// full stop.
fn first_sentence(answer: &str) -> Option<String> {
    let (start, end) = grounding::sentences(answer).into_iter().next()?;
    let first = grounding::without_citations(&answer[start..end]);
    Some(
        first
            .trim()
            .trim_end_matches(['.', '!', '?', '。'])
            .trim()
            .to_string(),
    )
}

/// How many content words `sentence` has, and how many of them `question`
/// lacks (in any inflection).
fn new_words(question: &str, sentence: &str) -> (usize, usize) {
    let asked = words(question);
    let content: Vec<String> = words(sentence)
        .into_iter()
        .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()))
        .collect();
    let held =
        |w: &str| asked.contains(w) || asked.iter().any(|q| crate::quote::inflected(w, q.as_str()));
    let new = content.iter().filter(|w| !held(w)).count();
    (content.len(), new)
}

/// The lowercase units a text is compared by: its Latin words and numbers
/// whole, whatever their length ("L", "XX" and "50" count), and its Hangul
/// as pairs of syllables, without a closing copula.
fn words(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.chars().any(grounding::is_hangul) {
            let stem = COPULA_ENDINGS
                .iter()
                .find_map(|e| word.strip_suffix(e))
                .unwrap_or(word);
            out.extend(grounding::units(stem));
        } else if !word.is_empty() {
            out.insert(word.to_lowercase());
        }
    }
    out
}

/// The first word an echo's second answer may not begin with: its first
/// word, or the one after an article (which is returned too).
pub fn first_words(echo: &str) -> Vec<String> {
    let mut words = echo
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase);
    let Some(first) = words.next() else {
        return Vec::new();
    };
    if ARTICLES.contains(&first.as_str()) {
        words.next().into_iter().chain([first]).collect()
    } else {
        vec![first]
    }
}

/// The tokens that would begin `echo`'s first word again, in any case and
/// with or without a space before it: every token whose text is the word or
/// the start of it (two letters at least), and the article before it.
pub fn first_word_tokens(tokenizer: &GgufTokenizer, echo: &str) -> Vec<u32> {
    let words = first_words(echo);
    let Some(word) = words.first() else {
        return Vec::new();
    };
    let article = words.get(1);
    (0..tokenizer.vocab_size() as u32)
        .filter(|&t| {
            let text = tokenizer.decode(&[t]);
            let text = text.trim().to_lowercase();
            if text.is_empty() || !text.chars().all(char::is_alphanumeric) {
                return false;
            }
            let starts = word.starts_with(text.as_str())
                && (text.chars().count() >= 2 || text.len() == word.len());
            starts || article == Some(&text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_the_questions_own_words_is_an_echo() {
        let q = "What is the typical working fluid in a steam engine?";
        assert_eq!(echo_of(q, "Steam [1]."), Some("Steam".into()));
        let q = "What class sizes can make keeping order difficult?";
        assert_eq!(
            echo_of(q, "Class sizes can make keeping order difficult. [1]"),
            Some("Class sizes can make keeping order difficult".into())
        );
        // An inflection's ending, and a number the question holds.
        let q = "Who could be the subjects of a teacher's college investigation?";
        assert_eq!(echo_of(q, "Teachers [1]"), Some("Teachers".into()));
        assert!(echo_of("What is the Roman numeral for 50?", "50 [1]").is_some());
    }

    #[test]
    fn an_answer_with_one_word_of_its_own_is_not() {
        let q = "What is the typical working fluid in a steam engine?";
        assert_eq!(echo_of(q, "Water [1]"), None);
        // Short words count: a numeral's letters, a name's article.
        let q = "In what Super Bowl did Rivera play?";
        assert_eq!(echo_of(q, "Super Bowl XX [1]"), None);
        let q = "What French City was New Rochelle named after?";
        assert_eq!(echo_of(q, "La Rochelle [1]"), None);
        // Only the first sentence is read: what follows is support.
        let q = "Who outbid General Electric?";
        assert!(echo_of(q, "General Electric [1]. Westinghouse bid less.").is_some());
        assert_eq!(echo_of(q, "Westinghouse [1]. General Electric lost."), None);
        // Nothing but marks and function words is not an answer to retry.
        assert_eq!(echo_of(q, "[1]"), None);
        assert_eq!(echo_of(q, "The [1]"), None);
        // Nor is a sentence about the answer one to take in its place.
        assert!(!says_more(q, "The answer is [1]. Westinghouse bid less."));
        assert!(!says_more(q, "General Electric [1]"));
        assert!(says_more(q, "Westinghouse [1]"));
    }

    #[test]
    fn a_korean_answer_is_an_echo_only_if_it_adds_no_syllables() {
        let q = "한국의 수도는 어디인가?";
        assert_eq!(echo_of(q, "서울입니다. [1]"), None);
        assert!(echo_of(q, "한국의 수도 [1]").is_some());
        // The question's words before a copula: an echo. With the fact
        // between them, or a particle of its own, not.
        let q = "달력을 만들 때 기초가 되는 계산법과 천문상수의 체계를 이르는 말은?";
        assert!(echo_of(q, "이르는 말은 계산법과 천문상수의 체계입니다. [1]").is_some());
        assert_eq!(echo_of(q, "역법입니다. [1]"), None);
        let q = "마리 앙투아네트에게 생긴 비난 어린 별명은 무엇인가?";
        assert!(echo_of(q, "별명은 \"마리 앙투아네트\"입니다. [1]").is_some());
        assert_eq!(echo_of(q, "\"적자 부인\"이었다 [1]"), None);
        let q = "노아의 방주는 총 몇층으로 되어 있었는가?";
        assert_eq!(
            echo_of(q, "노아의 방주는 총 3층으로 되어 있었습니다. [1]"),
            None
        );
    }

    #[test]
    fn the_word_kept_from_starting_again_skips_an_article() {
        assert_eq!(first_words("Steam"), vec!["steam"]);
        assert_eq!(
            first_words("The Normans' main enemy"),
            vec!["normans", "the"]
        );
        assert!(first_words("").is_empty());
    }
}
