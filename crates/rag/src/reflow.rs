//! Hard-wrapped lines joined into the paragraphs they belong to, before a
//! source goes into a prompt.
//!
//! Text files, Markdown and PDF pages are often wrapped at a fixed width,
//! so a sentence can run over two or three lines: `언어 모델은 사실을` /
//! `찾아보는 대신…`. A reader joins such lines without noticing; a small
//! language model reads a line break in the middle of a sentence as a
//! boundary, and the sentence splitters of the excerpts
//! ([`crate::excerpt`]) and the grounding check end a sentence there.
//! Markdown itself renders such a *soft* break as a space, and that is the
//! rule here: a line break inside a paragraph becomes one space.
//!
//! A break is kept where it means something: around blank lines, before
//! and after headings, list items, quotes, table rows and rule lines,
//! inside fenced code and before indented code, after a Markdown hard
//! break (two spaces or `\` at the end of the line), and after a short
//! line with no closing punctuation that the next line starts over from
//! with a capital (a title such as `Step 3: storing` on a PDF page).
//!
//! The only change is a line break, with the indentation after it,
//! replaced by one space; [`Reflowed::joins`] says where, so that a
//! position in the joined text can be mapped back to its line.

/// Text with its soft line breaks joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reflowed {
    pub text: String,
    /// Byte offsets in `text` of the spaces that replaced line breaks, in
    /// order.
    pub joins: Vec<usize>,
}

impl Reflowed {
    /// How many line breaks of the original come before byte `at` of the
    /// joined text.
    pub fn lines_before(&self, at: usize) -> usize {
        self.text[..at].matches('\n').count() + self.joins.partition_point(|&j| j < at)
    }
}

/// A title-like line is at most this many characters.
const SHORT_LINE: usize = 40;

/// `text` with every soft line break replaced by a space (see the module
/// documentation for which breaks are kept).
pub fn reflow(text: &str) -> Reflowed {
    let mut out = String::with_capacity(text.len());
    let mut joins = Vec::new();
    let mut in_fence = false;
    let mut prev: Option<&str> = None;
    for line in text.split('\n') {
        let fence = is_fence(line);
        match prev {
            None => {}
            Some(p) if !in_fence && !fence && soft_break(p, line) => {
                joins.push(out.len());
                out.push(' ');
                out.push_str(line.trim_start());
                prev = Some(line);
                continue;
            }
            Some(_) => out.push('\n'),
        }
        out.push_str(line);
        if fence {
            in_fence = !in_fence;
        }
        prev = Some(line);
    }
    Reflowed { text: out, joins }
}

/// Whether the break between lines `prev` and `next` of one paragraph is
/// only a wrap.
fn soft_break(prev: &str, next: &str) -> bool {
    let p = prev.trim();
    let n = next.trim_start();
    if p.is_empty() || n.is_empty() {
        return false;
    }
    if prev.ends_with("  ") || prev.ends_with('\\') {
        return false;
    }
    if structural(p) || structural(n) || next.starts_with('\t') || next.starts_with("    ") {
        return false;
    }
    // A title line, then its text.
    let closed = p.ends_with(['.', '!', '?', '。', ',', ';', ':', '-', '—']);
    let capital = n.chars().next().is_some_and(char::is_uppercase);
    !(p.chars().count() <= SHORT_LINE && !closed && capital)
}

/// A line that stands on its own in Markdown: a heading, list item, quote,
/// table row or rule.
fn structural(line: &str) -> bool {
    if line.starts_with(['#', '>', '|']) {
        return true;
    }
    if ["- ", "* ", "+ ", "• "].iter().any(|m| line.starts_with(m)) {
        return true;
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && (line[digits..].starts_with(". ") || line[digits..].starts_with(") ")) {
        return true;
    }
    line.len() >= 3 && line.chars().all(|c| matches!(c, '-' | '=' | '*' | '_'))
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_korean_and_english_lines_become_one_paragraph() {
        let text = "환각은 유창하고 자신 있어 보이지만 사실이 아니거나 근거가 없는 답입니다. 언어 모델은 사실을\n\
                    찾아보는 대신 그럴듯한 글을 만들어 냅니다.\n\n\
                    A new index is written beside the old one and switched in with one atomic\n  \
                    rename, so an interrupted run never damages it.";
        let r = reflow(text);
        assert_eq!(
            r.text,
            "환각은 유창하고 자신 있어 보이지만 사실이 아니거나 근거가 없는 답입니다. 언어 모델은 사실을 \
             찾아보는 대신 그럴듯한 글을 만들어 냅니다.\n\n\
             A new index is written beside the old one and switched in with one atomic \
             rename, so an interrupted run never damages it."
        );
        assert_eq!(r.joins.len(), 2);
        // Positions map back to the lines of the original.
        let second = r.text.find("A new").unwrap();
        assert_eq!(r.lines_before(second), 3);
        assert_eq!(r.lines_before(r.text.find("rename").unwrap()), 4);
    }

    #[test]
    fn markdown_structure_keeps_its_line_breaks() {
        let text = "## LangChain\n\
                    It provides components:\n\
                    - prompts and models\n\
                    - vector stores\n\
                    1. first\n\
                    | a | b |\n\
                    | - | - |\n\
                    > quoted\n\
                    hard break  \n\
                    next\n\
                    ```\n\
                    let x = 1;\n\
                    let y = 2;\n\
                    ```\n    \
                    indented code";
        assert_eq!(reflow(text).text, text);
        assert!(reflow(text).joins.is_empty());
    }

    #[test]
    fn a_title_line_stays_apart_from_its_text() {
        let text = "Step 3: storing\nChunks and their metadata are kept in a SQLite database, and the vectors\nin an HNSW graph.";
        assert_eq!(
            reflow(text).text,
            "Step 3: storing\nChunks and their metadata are kept in a SQLite database, and the vectors in an HNSW graph."
        );
    }

    #[test]
    fn joined_text_is_joined_again_unchanged() {
        let text = "one line that wraps\nonto the next\n\n## Heading\ntext";
        let once = reflow(text).text;
        assert_eq!(reflow(&once).text, once);
    }
}
