//! Korean answers that end as questions, ended as statements.
//!
//! Asked a Korean question, a small model often answers by writing the
//! question again with the fact put in, its ending and question mark
//! included: "고대사회에서 성경은 … 역사책으로도 권위가 상당했는가? [1]" for
//! "… 어떤 책으로도 권위가 상당했는가?", "여의도 시범아파트는 1790세대와
//! 24개동으로 구성되었나? [1]". The fact is right and its source holds it, but
//! the answer reads as a question, which no one would write.
//!
//! [`as_statements`] ends such a sentence as a statement. Its last word's
//! interrogative ending is taken off and the declarative one of the same
//! style put on, the question mark made a full stop:
//!
//! | ending | example | statement |
//! | --- | --- | --- |
//! | `-는가`, after a verb | 상당했는가, 말하는가, 받는가 | 상당했다, 말한다, 받는다 |
//! | `-(으)ㄴ가`, after an adjective or the copula | 많은가, 큰가, 역법인가 | 많다, 크다, 역법이다 |
//! | `-나`, `-니`, after a past tense or 있/없 | 구성되었나, 있니 | 구성되었다, 있다 |
//! | `-나요`, `-는가요` | 되었나요, 하나요 | 되었습니다, 합니다 |
//! | `-(으)ㄴ가요` | 많은가요, 인가요 | 많습니다, 입니다 |
//! | `-ㅂ니까`, `-습니까` | 됩니까, 있습니까 | 됩니다, 있습니다 |
//! | `-요` (해요체, the same in both) | 했어요, 이에요 | 했어요, 이에요 |
//!
//! Only a sentence that cites a source is rewritten: one that cites none
//! may be a question the model means to ask ("어떤 문서를 말씀하시는
//! 건가요?"). A sentence that still holds a question word (무엇, 누구, 언제,
//! 몇 …), or says nothing its question does not ([`crate::echo::says_more`]:
//! a yes-or-no question written back), did not answer and is left as it is,
//! so that no question is turned into a claim. So is a last word whose
//! ending is none of the above (`-나` after a present-tense stem may be the
//! noun 하나). The rewrite keeps what the model wrote in
//! [`SentenceSupport::model_text`].
//!
//! Reads text only: no IO, no model.

use crate::echo;
use crate::grounding::{self, SentenceSupport};

/// Words that ask: a sentence that holds one has not answered.
const QUESTION_WORDS: &[&str] = &[
    "무엇",
    "뭐",
    "누구",
    "누가",
    "어디",
    "언제",
    "몇",
    "어느",
    "어떤",
    "어떻게",
    "얼마",
    "왜",
];

const HANGUL_FIRST: u32 = 0xAC00;
const HANGUL_LAST: u32 = 0xD7A3;

/// Final consonants (받침), as their index in a Hangul syllable.
const NO_FINAL: u32 = 0;
const FINAL_N: u32 = 4; // ㄴ
const FINAL_L: u32 = 8; // ㄹ
const FINAL_B: u32 = 17; // ㅂ
const FINAL_BS: u32 = 18; // ㅄ (없)
const FINAL_SS: u32 = 20; // ㅆ (있, and the past tense: 았, 었, 했)

/// The final consonant of a Hangul syllable, `None` for anything else.
fn final_of(c: char) -> Option<u32> {
    let u = c as u32;
    (HANGUL_FIRST..=HANGUL_LAST)
        .contains(&u)
        .then(|| (u - HANGUL_FIRST) % 28)
}

/// `c` with its final consonant made `to` (`NO_FINAL` takes it off).
fn with_final(c: char, to: u32) -> char {
    let u = c as u32;
    let base = u - (u - HANGUL_FIRST) % 28;
    char::from_u32(base + to).unwrap_or(c)
}

/// A stem that ends in the past tense, 있 or 없: the ending goes straight on.
fn is_past_or_existential(last: char) -> bool {
    matches!(final_of(last), Some(FINAL_SS | FINAL_BS))
}

/// The plain statement of a verb's stem ("하" → "한다", "받" → "받는다",
/// "했" → "했다").
fn plain_verb(stem: &[char]) -> Option<String> {
    let (&last, before) = stem.split_last()?;
    let head: String = before.iter().collect();
    Some(match final_of(last)? {
        _ if is_past_or_existential(last) => format!("{head}{last}다"),
        NO_FINAL => format!("{head}{}다", with_final(last, FINAL_N)),
        // An ㄹ stem drops its ㄹ before -는 (사는가), so it never comes here.
        FINAL_L => return None,
        _ => format!("{head}{last}는다"),
    })
}

/// The formal statement of a stem ("되었" → "되었습니다", "하" → "합니다").
fn formal(stem: &[char]) -> Option<String> {
    let (&last, before) = stem.split_last()?;
    let head: String = before.iter().collect();
    Some(match final_of(last)? {
        NO_FINAL => format!("{head}{}니다", with_final(last, FINAL_B)),
        FINAL_L => return None,
        _ => format!("{head}{last}습니다"),
    })
}

/// The statement a Korean word that ends as a question ends as, if its
/// ending is one [`as_statements`] knows.
pub fn statement_of(word: &str) -> Option<String> {
    let w: Vec<char> = word.chars().collect();
    let ends = |suffix: &str| {
        let s: Vec<char> = suffix.chars().collect();
        w.len() > s.len() && w.ends_with(&s)
    };
    let cut = |n: usize| &w[..w.len() - n];
    let text = |cs: &[char]| cs.iter().collect::<String>();
    // Formal: 됩니까, 있습니까.
    if ends("니까") && final_of(w[w.len() - 3]) == Some(FINAL_B) {
        return Some(format!("{}니다", text(cut(2))));
    }
    // The polite style asks and states alike: 했어요, 이에요.
    if ends("요") && !ends("나요") && !ends("가요") && !ends("까요") {
        return Some(word.to_string());
    }
    if ends("는가요") {
        return formal(cut(3));
    }
    if ends("나요") {
        return formal(cut(2));
    }
    if ends("은가요") {
        return formal(cut(3));
    }
    if ends("가요") {
        // 인가요, 큰가요: the ㄴ is the ending's.
        let stem = cut(2);
        let (&last, before) = stem.split_last()?;
        if final_of(last)? != FINAL_N || last == '는' || last == '은' {
            return None;
        }
        let mut stem = before.to_vec();
        stem.push(with_final(last, NO_FINAL));
        return formal(&stem);
    }
    if ends("는가") {
        return plain_verb(cut(2));
    }
    if ends("은가") {
        return Some(format!("{}다", text(cut(2))));
    }
    if ends("가") {
        // 역법인가, 큰가.
        let stem = cut(1);
        let (&last, before) = stem.split_last()?;
        if final_of(last)? != FINAL_N || last == '는' || last == '은' {
            return None;
        }
        return Some(format!("{}{}다", text(before), with_final(last, NO_FINAL)));
    }
    if ends("나") || ends("니") {
        let stem = cut(1);
        return is_past_or_existential(*stem.last()?).then(|| format!("{}다", text(stem)));
    }
    None
}

/// The sentence `text` ended as a statement, if it ends as a question in
/// Korean that [`statement_of`] knows and holds no question word.
fn restate(text: &str) -> Option<String> {
    // The question mark, before any citation marks and spaces after it.
    let mut end = text.trim_end().len();
    while let Some(&(open, close)) = grounding::marks(&text[..end]).last() {
        if close != end {
            break;
        }
        end = text[..open].trim_end().len();
    }
    let claim = &text[..end];
    let mark = claim.chars().last().filter(|&c| c == '?' || c == '？')?;
    let body = &claim[..claim.len() - mark.len_utf8()];
    let word_start = body
        .char_indices()
        .rev()
        .take_while(|&(_, c)| final_of(c).is_some())
        .last()
        .map(|(i, _)| i)?;
    let has_question_word = body.split_whitespace().any(|w| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        QUESTION_WORDS.iter().any(|q| w.starts_with(q))
    });
    if has_question_word {
        return None;
    }
    let statement = statement_of(&body[word_start..])?;
    Some(format!(
        "{}{statement}.{}",
        &body[..word_start],
        &text[end..]
    ))
}

/// `answer` to `question` with each sentence that cites a source, says
/// more than the question and ends as a Korean question ended as a
/// statement (see the module's overview), and its support; a rewritten
/// sentence keeps what the model wrote in [`SentenceSupport::model_text`].
/// `support` is the grounding check of `answer` against `sources`; nothing
/// changes when no sentence is rewritten.
pub fn as_statements(
    question: &str,
    answer: &str,
    support: Vec<SentenceSupport>,
    sources: &[&str],
    min_support: f32,
) -> (String, Vec<SentenceSupport>) {
    grounding::rewrite_sentences(
        answer,
        support,
        sources,
        min_support,
        |s, text| {
            if s.cites.is_empty() || !echo::says_more(question, text) {
                return None;
            }
            restate(text)
        },
        |new, old| {
            if new.model_text.is_none() {
                new.model_text = Some(old.text.clone());
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ending_becomes_the_statement_of_its_style() {
        for (question, statement) in [
            ("상당했는가", "상당했다"),
            ("되었는가", "되었다"),
            ("말하는가", "말한다"),
            ("받는가", "받는다"),
            ("있는가", "있다"),
            ("없는가", "없다"),
            ("많은가", "많다"),
            ("큰가", "크다"),
            ("역법인가", "역법이다"),
            ("구성되었나", "구성되었다"),
            ("있니", "있다"),
            ("되었나요", "되었습니다"),
            ("하나요", "합니다"),
            ("먹나요", "먹습니다"),
            ("많은가요", "많습니다"),
            ("인가요", "입니다"),
            ("됩니까", "됩니다"),
            ("있습니까", "있습니다"),
            ("했어요", "했어요"),
            ("이에요", "이에요"),
        ] {
            assert_eq!(
                statement_of(question).as_deref(),
                Some(statement),
                "{question}"
            );
        }
    }

    #[test]
    fn endings_it_cannot_tell_are_left_alone() {
        // 하나 is also "one"; 할까요 proposes; a lone ending is no word.
        for word in ["하나", "오니", "할까요", "는가", "가", "서울", "살다"] {
            assert_eq!(statement_of(word), None, "{word}");
        }
    }

    #[test]
    fn a_cited_sentence_that_ends_as_a_question_is_ended_as_a_statement() {
        let source =
            "고대사회에서 성경은 교리를 다루는 책일 뿐만 아니라 역사책으로도 권위가 상당했다.";
        let answer = "고대사회에서 성경은 교리를 다루는 책일 뿐만 아니라 역사책으로도 권위가 상당했는가? [1]";
        let min = grounding::DEFAULT_MIN_SUPPORT;
        let support = grounding::check(answer, &[source], min);
        let question =
            "고대사회에서 성경은 교리를 다루는 책일 뿐만 아니라 어떤 책으로도 권위가 상당했는가?";
        let (text, support) = as_statements(question, answer, support, &[source], min);
        assert_eq!(
            text,
            "고대사회에서 성경은 교리를 다루는 책일 뿐만 아니라 역사책으로도 권위가 상당했다. [1]"
        );
        assert_eq!(support[0].model_text.as_deref(), Some(answer));
        assert!(support[0].supported);
        // Two sentences, the second the question: only it changes.
        let answer = "1790세대입니다. [1] 여의도 시범아파트는 1790세대로 구성되었나? [1, 2]";
        let sources = ["여의도 시범아파트는 1790세대로 구성되었다.", "시범아파트"];
        let support = grounding::check(answer, &sources, min);
        let question = "여의도 시범아파트는 몇 세대로 구성되었나?";
        let (text, _) = as_statements(question, answer, support, &sources, min);
        assert_eq!(
            text,
            "1790세대입니다. [1] 여의도 시범아파트는 1790세대로 구성되었다. [1, 2]"
        );
    }

    #[test]
    fn questions_that_did_not_answer_or_cite_nothing_are_left_alone() {
        let min = grounding::DEFAULT_MIN_SUPPORT;
        let source = "이 아파트는 1964년 11월 30일에 완성되었다.";
        let question = "이 아파트는 언제 완성되었나?";
        for answer in [
            // The question written back: no claim of its own.
            "이 아파트는 완성되었나? [1]",
            // Still asks.
            "이 아파트는 언제 완성되었는가? [1]",
            // Cites nothing: the model's own question.
            "어느 아파트를 말씀하시는 건가요?",
            "이 아파트는 1964년에 완성되었는가?",
            // English, and a Korean statement.
            "Was it completed in 1964? [1]",
            "이 아파트는 1964년 11월 30일에 완성되었다. [1]",
        ] {
            let support = grounding::check(answer, &[source], min);
            let (text, support) = as_statements(question, answer, support, &[source], min);
            assert_eq!(text, answer);
            assert!(support.iter().all(|s| s.model_text.is_none()));
        }
    }
}
