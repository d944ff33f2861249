//! History-aware retrieval: a follow-up question ("그건 왜 CPU에서
//! 빠른가요?", "Why is it faster?") names its topic only through the
//! conversation, so retrieving with it alone finds the wrong passages.
//! Before retrieval, such a question is made standalone by putting the
//! question it follows in front of it; the model still sees the question
//! as asked, after the earlier turns.
//!
//! The rule is cheap (no model call, so no wait before the first token)
//! and was measured against retrieving with the question alone on
//! two-turn conversations in both languages (`tests/chat.rs`). A question
//! counts as a follow-up when it refers back (a pronoun or demonstrative:
//! "it", "that", "they", "그건", "이것", "그 …"), has no word of its own
//! ("Why?", "왜요?"), or goes on from the last answer ("And in Korean?",
//! "What about BM25?", "그럼 …"). A question that names a new topic is left
//! alone, however short ("What is quantization?").

use docent_generate::Turn;
use serde::{Deserialize, Serialize};

/// Whether retrieval rewrites follow-up questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryRewrite {
    /// Retrieve with the question as asked.
    Off,
    /// Put the question it follows in front of a follow-up (the default).
    #[default]
    FollowUp,
    /// Put the previous question in front of every question after the first.
    Always,
}

/// Words by which an English question refers back to an earlier one.
const EN_ANAPHORS: &[&str] = &[
    "it", "its", "it's", "itself", "that", "this", "these", "those", "they", "them", "their",
    "theirs", "he", "she", "his", "her", "him", "former", "latter", "there", "one", "ones", "such",
];

/// Korean words (or word starts) that refer back: demonstratives with
/// their particles (그건, 그것은, 이게, 저것을) and 그/이/저 before a noun.
const KO_ANAPHOR_STARTS: &[&str] = &[
    "그것", "그건", "그게", "그걸", "그거", "이것", "이건", "이게", "이걸", "이거", "저것", "저건",
    "저게", "그들", "그런", "그렇", "이런", "이렇", "거기", "여기", "그곳", "그러", "그럼", "둘",
    "두 ",
];
const KO_DETERMINERS: &[&str] = &["그", "이", "저", "해당", "위"];

/// English words that carry no topic.
const EN_STOP: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "so", "of", "in", "on", "at", "to", "for", "with", "by",
    "from", "about", "as", "is", "are", "was", "were", "be", "been", "do", "does", "did", "what",
    "why", "how", "when", "where", "who", "which", "whom", "whose", "can", "could", "should",
    "would", "will", "may", "might", "must", "more", "most", "than", "then", "also", "please",
    "explain", "tell", "me", "us", "you", "i", "we", "mean", "means", "use", "used", "work",
    "works", "compared", "else", "other", "again", "example", "instead", "not", "no", "yes",
    "really", "exactly",
];

/// Korean question words and verbs that carry no topic.
const KO_STOP_STARTS: &[&str] = &[
    "왜",
    "어떻게",
    "무엇",
    "뭐",
    "뭔",
    "어떤",
    "언제",
    "어디",
    "누가",
    "누구",
    "얼마",
    "몇",
    "있",
    "없",
    "하",
    "해",
    "되",
    "돼",
    "인가",
    "인지",
    "입니",
    "나요",
    "까요",
    "그리고",
    "또",
    "더",
    "좀",
    "설명",
    "알려",
    "말해",
    "예를",
    "예시",
    "차이",
    "다른",
];

/// The query retrieval should run for `question` after `history` (oldest
/// first): `Some(standalone)` when the question was rewritten, `None` when
/// it is used as asked.
pub fn standalone_query(question: &str, history: &[Turn], rule: QueryRewrite) -> Option<String> {
    if rule == QueryRewrite::Off || history.is_empty() {
        return None;
    }
    // The topic is the latest question that named one: earlier follow-ups
    // carry it on without piling up (a chain of them stays one topic and
    // one question long).
    let mut topic = history[0].question.trim();
    for turn in &history[1..] {
        let q = turn.question.trim();
        if rule == QueryRewrite::Always || !is_follow_up(q) {
            topic = q;
        }
    }
    let previous = topic.to_string();
    rewrite_one(question, &previous, rule)
}

fn rewrite_one(question: &str, previous: &str, rule: QueryRewrite) -> Option<String> {
    let q = question.trim();
    if previous.is_empty() || q.is_empty() {
        return None;
    }
    let follows = match rule {
        QueryRewrite::Off => false,
        QueryRewrite::Always => true,
        QueryRewrite::FollowUp => is_follow_up(q),
    };
    follows.then(|| format!("{previous} {q}"))
}

/// Whether `question` refers back or is too short to name a topic.
pub fn is_follow_up(question: &str) -> bool {
    let words: Vec<String> = question
        .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let mut content = 0;
    for (i, w) in words.iter().enumerate() {
        let hangul = w.chars().any(is_hangul);
        if hangul {
            if KO_ANAPHOR_STARTS
                .iter()
                .any(|a| w.starts_with(a.trim_end()))
            {
                return true;
            }
            // 그/이/저 before a noun ("그 모델은"): a determiner on its own.
            if KO_DETERMINERS.contains(&w.as_str()) && i + 1 < words.len() {
                return true;
            }
            if !KO_STOP_STARTS.iter().any(|s| w.starts_with(s)) {
                content += 1;
            }
        } else {
            if EN_ANAPHORS.contains(&w.as_str()) {
                return true;
            }
            if !EN_STOP.contains(&w.as_str()) {
                content += 1;
            }
        }
    }
    // Nothing of its own ("Why?", "왜요?"), or it goes on from the last
    // answer ("And in Korean?", "What about BM25?", "그럼 …").
    let continues = matches!(
        words.first().map(String::as_str),
        Some("and" | "also" | "so" | "then" | "그럼" | "그러면" | "그리고" | "또" | "그래서")
    ) || question.to_lowercase().starts_with("what about")
        || question.to_lowercase().starts_with("how about");
    content == 0 || continues
}

fn is_hangul(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(q: &str) -> Turn {
        Turn {
            question: q.into(),
            answer: "…".into(),
        }
    }

    #[test]
    fn follow_ups_are_recognised_in_both_languages() {
        for q in [
            "그건 왜 CPU에서 빠른가요?",
            "그 모델은 몇 개의 층을 가지나요?",
            "이것의 단점은 무엇인가요?",
            "Why is it faster on a CPU?",
            "What are its drawbacks?",
            "And in Korean?",
            "How does that work?",
            "왜요?",
            "What about BM25?",
        ] {
            assert!(is_follow_up(q), "{q}");
        }
        for q in [
            "양자화란 무엇인가요?",
            "What is quantization?",
            "환각이란?",
            "What is retrieval-augmented generation?",
            "What is the difference between LangServe and LangSmith?",
            "HNSW 그래프는 어떻게 검색하나요?",
            "How does BM25 rank passages for a query?",
        ] {
            assert!(!is_follow_up(q), "{q}");
        }
    }

    #[test]
    fn a_chain_of_follow_ups_keeps_its_topic() {
        let history = [turn("양자화란 무엇인가요?"), turn("그건 왜 빠른가요?")];
        let q = standalone_query("그 단점은요?", &history, QueryRewrite::FollowUp).unwrap();
        assert_eq!(q, "양자화란 무엇인가요? 그 단점은요?");
        assert_eq!(
            standalone_query(
                "HNSW 그래프는 어떻게 검색하나요?",
                &history,
                QueryRewrite::FollowUp
            ),
            None
        );
        assert_eq!(
            standalone_query("그건 왜요?", &[], QueryRewrite::FollowUp),
            None
        );
        assert_eq!(
            standalone_query("그건 왜요?", &history, QueryRewrite::Off),
            None
        );
    }
}
