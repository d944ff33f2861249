//! Questions that compare two things need a source for each.
//!
//! "What is the difference between LangServe and LangSmith?" ranks the
//! chunks about whichever of the two the encoder and BM25 favour, and with
//! a small `k` the other may be left out: the model then describes one from
//! the other's source. [`compared`] finds the two things such a question
//! names (English and Korean phrasings), and [`cover`] puts, for each one
//! no kept chunk is about, its best lexical match second: at most two
//! chunks more, and only for these questions.

use docent_index::Index;

use crate::RagError;

/// The two things a comparison question names, as written, or `None` for
/// any other question.
pub fn compared(question: &str) -> Option<[String; 2]> {
    english(question).or_else(|| korean(question))
}

fn english(question: &str) -> Option<[String; 2]> {
    // ASCII lower-casing keeps every byte offset, so that positions found
    // in `lower` cut `question` at the same places.
    let lower = question.to_ascii_lowercase();
    // (what comes before the first thing, what joins the two, what may end
    // the second)
    const FORMS: &[(&str, &[&str])] = &[
        ("difference between ", &[" and "]),
        ("differences between ", &[" and "]),
        ("compare ", &[" and ", " with ", " to "]),
        ("how does ", &[" differ from "]),
        ("how do ", &[" differ from "]),
        ("", &[" vs. ", " vs ", " versus "]),
    ];
    for (lead, joins) in FORMS {
        let start = match lower.find(lead) {
            Some(i) => i + lead.len(),
            None => continue,
        };
        for join in *joins {
            let Some(j) = lower[start..].find(join).map(|j| start + j) else {
                continue;
            };
            let first = if lead.is_empty() {
                last_phrase(&question[..j])
            } else {
                question[start..j].to_string()
            };
            let second = first_phrase(&question[j + join.len()..]);
            if let Some(pair) = pair(&first, &second) {
                return Some(pair);
            }
        }
    }
    None
}

fn korean(question: &str) -> Option<[String; 2]> {
    // "A와 B의 차이", "A과 B는 어떻게 다른가", "A랑 B를 비교".
    const CUES: &[&str] = &["차이", "다른", "다릅", "비교", "다르"];
    if !CUES.iter().any(|c| question.contains(c)) {
        return None;
    }
    for join in ["와 ", "과 ", "랑 ", "하고 ", "및 "] {
        let Some(j) = question.find(join) else {
            continue;
        };
        let before: Vec<&str> = question[..j].split_whitespace().collect();
        let rest = &question[j + join.len()..];
        let word = rest.split_whitespace().next().unwrap_or("");
        // "A은 B과 무엇이 다른가요?": the things are the two words before the
        // join, the first with its topic particle.
        if ["무엇", "어떻게", "어떤", "뭐"]
            .iter()
            .any(|w| word.starts_with(w))
        {
            if let [.., a, b] = before.as_slice() {
                let a = ["은", "는", "이", "가"]
                    .iter()
                    .find_map(|p| a.strip_suffix(p))
                    .unwrap_or(a);
                if let Some(pair) = pair(a, b) {
                    return Some(pair);
                }
            }
            continue;
        }
        let first = before.last().copied().unwrap_or("");
        // The particle after the second thing: "B의", "B는", "B를", "B가".
        let second = ["의", "는", "은", "를", "을", "가", "이"]
            .iter()
            .find_map(|p| word.strip_suffix(p))
            .unwrap_or(word);
        if let Some(pair) = pair(first, second) {
            return Some(pair);
        }
    }
    None
}

/// The last few words before a join ("is LangServe" in "is LangServe vs
/// LangSmith"): the last word, or two when the last is short.
fn last_phrase(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] => String::new(),
        [.., a, b] if b.chars().count() <= 2 => format!("{a} {b}"),
        [.., b] => b.to_string(),
    }
}

/// The second thing: up to the end of the clause.
fn first_phrase(text: &str) -> String {
    let end = text
        .find(['?', '.', ',', ';', ':', '!', '\n'])
        .unwrap_or(text.len());
    let clause = &text[..end];
    // "LangSmith in practice", "LangSmith for tracing": stop at a
    // preposition that starts a new phrase.
    let mut words = Vec::new();
    for w in clause.split_whitespace() {
        if !words.is_empty()
            && matches!(
                w.to_lowercase().as_str(),
                "in" | "for" | "when" | "if" | "on" | "at" | "as" | "and" | "or"
            )
        {
            break;
        }
        words.push(w);
    }
    words.join(" ")
}

fn pair(first: &str, second: &str) -> Option<[String; 2]> {
    let clean = |s: &str| {
        let s = s.trim_matches(|c: char| !c.is_alphanumeric() && c != '(' && c != ')');
        let s = ["the ", "a ", "an "]
            .iter()
            .find_map(|a| s.strip_prefix(a))
            .unwrap_or(s);
        s.trim().to_string()
    };
    let (a, b) = (clean(first), clean(second));
    let ok = |s: &str| !s.is_empty() && s.split_whitespace().count() <= 4;
    (ok(&a) && ok(&b) && !a.eq_ignore_ascii_case(&b)).then_some([a, b])
}

/// Adds to `ranked` (the kept chunks, best first), right after the best,
/// the best lexical match of each compared thing that none of them is among
/// the best matches for. Returns the ids added.
pub fn cover(
    index: &Index,
    things: &[String; 2],
    ranked: &mut Vec<(u64, f32)>,
) -> Result<Vec<u64>, RagError> {
    let mut added = Vec::new();
    for thing in things {
        let matches = index.lexical(thing, 3)?;
        let Some(&(best, _)) = matches.first() else {
            continue;
        };
        if matches
            .iter()
            .any(|(id, _)| ranked.iter().any(|(r, _)| r == id))
        {
            continue;
        }
        // Right after the best chunk, so that a prompt too short for every
        // source still holds one for each side.
        let at = (1 + added.len()).min(ranked.len());
        let score = ranked.get(at.saturating_sub(1)).map_or(0.0, |r| r.1);
        ranked.insert(at, (best, score));
        added.push(best);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::compared;

    fn pair(a: &str, b: &str) -> Option<[String; 2]> {
        Some([a.to_string(), b.to_string()])
    }

    #[test]
    fn comparisons_are_found_in_english_and_korean() {
        assert_eq!(
            compared("What is the difference between LangServe and LangSmith?"),
            pair("LangServe", "LangSmith")
        );
        assert_eq!(
            compared("Compare dense retrieval with BM25 in practice."),
            pair("dense retrieval", "BM25")
        );
        assert_eq!(
            compared("How does Q4_1 differ from Q4_K?"),
            pair("Q4_1", "Q4_K")
        );
        assert_eq!(
            compared("HNSW vs brute force: which is faster?"),
            pair("HNSW", "brute force")
        );
        // Letters whose lower case is longer do not shift the cut.
        assert_eq!(
            compared("What is the difference between İstanbul and Ankara?"),
            pair("İstanbul", "Ankara")
        );
        assert_eq!(
            compared("LangServe와 LangSmith의 차이는 무엇인가요?"),
            pair("LangServe", "LangSmith")
        );
        assert_eq!(
            compared("검색기와 생성기는 어떻게 다른가요?"),
            pair("검색기", "생성기")
        );
        assert_eq!(
            compared("Q4_1은 Q4_0과 무엇이 다른가요?"),
            pair("Q4_1", "Q4_0")
        );
    }

    #[test]
    fn other_questions_are_not_comparisons() {
        for q in [
            "What is retrieval-augmented generation?",
            "What are LangChain and LangServe used for?",
            "양자화란 무엇인가요?",
            "RAG에서 검색기(retriever)의 역할은 무엇인가요?",
            "What is the difference?",
        ] {
            assert_eq!(compared(q), None, "{q}");
        }
    }
}
