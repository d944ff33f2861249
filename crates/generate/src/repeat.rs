//! Stopping an answer that starts over: small models, once their answer is
//! written, tend to write it again, line by line or sentence by sentence,
//! until the token limit. A segment (a line, or a sentence within one)
//! that repeats an earlier one ends the answer, and is not shown.

/// Segments shorter than this (in characters, trimmed) may repeat: list
/// markers, "Yes.", a heading of one word.
const MIN_SEGMENT_CHARS: usize = 12;

/// Where `text` should be cut, if its last complete segment repeats an
/// earlier one: the byte offset where that segment starts. A sentence is
/// complete once the next has begun: tokenizers put the space after a full
/// stop in front of the next word (" 질문", " The"), so a text being
/// written seldom ends right after the space.
pub fn repeated_segment(text: &str) -> Option<usize> {
    let mut segments = segments(text);
    // Only a complete segment counts: one followed by its boundary.
    if !ends_segment(text) {
        segments.pop()?;
    }
    let (&(start, last), earlier) = segments.split_last()?;
    let last = last.trim();
    if last.chars().count() < MIN_SEGMENT_CHARS {
        return None;
    }
    earlier
        .iter()
        .any(|&(_, s)| s.trim() == last)
        .then_some(start)
}

/// Where streaming should pause: the start of the unfinished last segment
/// when it is still the beginning of an earlier segment, so that a repeat
/// is never shown before it is caught.
pub fn held_back_from(text: &str) -> Option<usize> {
    if ends_segment(text) {
        return None;
    }
    let segments = segments(text);
    let (&(start, last), earlier) = segments.split_last()?;
    let last = last.trim_start();
    if last.is_empty() {
        return None;
    }
    earlier
        .iter()
        .any(|&(_, s)| {
            let s = s.trim();
            s.chars().count() >= MIN_SEGMENT_CHARS && s.starts_with(last)
        })
        .then_some(start)
}

/// Whether `text` ends at a segment boundary.
fn ends_segment(text: &str) -> bool {
    let mut rev = text.chars().rev();
    match rev.next() {
        Some('\n') => true,
        Some(c) if c.is_whitespace() => matches!(
            rev.find(|c| !c.is_whitespace()),
            Some('.' | '!' | '?' | '。')
        ),
        _ => false,
    }
}

/// The segments of `text` with their byte offsets: lines, and within a
/// line the sentences ending in `.`, `!`, `?` or `。` followed by space.
fn segments(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_end = false;
    for (i, c) in text.char_indices() {
        if c == '\n' {
            out.push((start, &text[start..i]));
            start = i + 1;
            prev_end = false;
            continue;
        }
        if prev_end && c.is_whitespace() {
            out.push((start, &text[start..i]));
            start = i;
        }
        prev_end = matches!(c, '.' | '!' | '?' | '。');
    }
    if start < text.len() {
        out.push((start, &text[start..]));
    }
    out.retain(|(_, s)| !s.trim().is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_cut_where_it_starts() {
        let t = "LangServe deploys chains as a REST API [1].\n\
                 LangSmith records every step [2].\n\
                 LangServe deploys chains as a REST API [1].\n";
        let at = repeated_segment(t).expect("repeat");
        assert_eq!(
            &t[..at],
            "LangServe deploys chains as a REST API [1].\nLangSmith records every step [2].\n"
        );
    }

    #[test]
    fn a_repeated_sentence_within_a_line_is_cut() {
        let t = "양자화는 가중치를 적은 비트로 저장하는 방법입니다. 모델이 작아집니다. \
                 양자화는 가중치를 적은 비트로 저장하는 방법입니다. ";
        let at = repeated_segment(t).expect("repeat");
        assert_eq!(
            t[..at].trim_end(),
            "양자화는 가중치를 적은 비트로 저장하는 방법입니다. 모델이 작아집니다."
        );
    }

    /// Streamed token by token, the space after a full stop comes with the
    /// next word: the repeat is caught once the sentence after it begins,
    /// and nothing of it has been shown (it was held back while it could
    /// still be one).
    #[test]
    fn a_repeated_sentence_is_cut_when_the_next_one_begins() {
        let tokens = [
            "질문에",
            " 대한",
            " 답변을",
            " 작성합니다.",
            " 문서를",
            " 기반으로",
            " 합니다.",
            " 질문에",
            " 대한",
            " 답변을",
            " 작성합니다.",
            " 문서를",
        ];
        let mut text = String::new();
        let mut shown = 0;
        let mut cut = None;
        for t in tokens {
            text.push_str(t);
            if let Some(at) = repeated_segment(&text) {
                cut = Some(at);
                break;
            }
            shown = held_back_from(&text).unwrap_or(text.len()).max(shown);
        }
        let at = cut.expect("the repeat is caught");
        assert_eq!(
            &text[..at],
            "질문에 대한 답변을 작성합니다. 문서를 기반으로 합니다."
        );
        assert!(shown <= at, "{:?} was shown", &text[..shown]);
    }

    #[test]
    fn short_or_unfinished_or_new_segments_are_kept() {
        assert_eq!(repeated_segment("- Yes.\n- Yes.\n"), None);
        assert_eq!(
            repeated_segment("A long first sentence here. A long first sentence"),
            None
        );
        assert_eq!(
            repeated_segment("One sentence here [1].\nAnother sentence [2].\n"),
            None
        );
        assert_eq!(repeated_segment(""), None);
    }

    #[test]
    fn the_start_of_a_possible_repeat_is_held_back() {
        let t = "A long first sentence here.\nA long fir";
        assert_eq!(held_back_from(t), Some(28));
        assert_eq!(
            held_back_from("A long first sentence here.\nSomething else"),
            None
        );
        assert_eq!(held_back_from("A long first sentence here.\n"), None);
    }
}
