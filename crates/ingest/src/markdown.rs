use docent_core::{Block, BlockKind};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::text::{line_at, paragraphs};

/// Blocks of a Markdown document. The document's text is the Markdown
/// source itself, so spans and lines point into the file; pulldown-cmark
/// finds the headings (ATX and setext), and the text between headings is cut
/// into paragraphs at blank lines.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let mut headings = Vec::new();
    let mut current: Option<(usize, usize, u8, String)> = None;
    for (event, range) in Parser::new_ext(text, Options::all()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((range.start, range.end, level as u8, String::new()));
            }
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) => {
                if let Some((_, _, _, title)) = current.as_mut() {
                    title.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, _, title)) = current.as_mut() {
                    title.push(' ');
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((s, e, level, title)) = current.take() {
                    headings.push((s, e, level, title.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut pos = 0;
    for (s, e, level, title) in headings {
        if s < pos {
            continue;
        }
        out.extend(paragraphs(text, pos..s, None));
        let raw = &text[s..e];
        let start = s + (raw.len() - raw.trim_start().len());
        let end = s + raw.trim_end().len();
        if start < end {
            out.push(Block {
                range: start..end,
                kind: BlockKind::Heading { level, title },
                line: line_at(text, start),
                page: None,
            });
        }
        pos = e.max(pos);
    }
    out.extend(paragraphs(text, pos..text.len(), None));
    out
}
