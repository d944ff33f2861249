use std::ops::Range;

use docent_core::{Block, BlockKind};

/// 1-based line of byte `at` in `text`.
pub(crate) fn line_at(text: &str, at: usize) -> u32 {
    1 + text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u32
}

/// Cuts `range` of `text` into paragraphs at blank lines.
pub(crate) fn paragraphs(text: &str, range: Range<usize>, page: Option<u32>) -> Vec<Block> {
    let mut out = Vec::new();
    let mut para: Option<(usize, usize, u32)> = None;
    let mut pos = range.start;
    let first = line_at(text, range.start);
    for (line, l) in (first..).zip(text[range.clone()].split_inclusive('\n')) {
        let start = pos;
        pos += l.len();
        if l.trim().is_empty() {
            if let Some((s, e, ln)) = para.take() {
                out.push(block(s..e, ln, page));
            }
        } else {
            let end = start + l.trim_end().len();
            let lead = l.len() - l.trim_start().len();
            para = Some(match para {
                Some((s, _, ln)) => (s, end, ln),
                None => (start + lead, end, line),
            });
        }
    }
    if let Some((s, e, ln)) = para {
        out.push(block(s..e, ln, page));
    }
    out
}

fn block(range: Range<usize>, line: u32, page: Option<u32>) -> Block {
    Block {
        range,
        kind: BlockKind::Paragraph,
        line,
        page,
    }
}
