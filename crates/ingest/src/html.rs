use docent_core::{Block, BlockKind};
use scraper::{Html, Node};

/// Elements whose text is not part of the document.
const SKIP: &[&str] = &[
    "head", "script", "style", "noscript", "template", "svg", "iframe", "object", "canvas",
];

/// Elements that end the current paragraph before and after them.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

struct Builder<'s> {
    source: &'s str,
    /// Where to look for the next block's text in the source, for lines.
    search_from: usize,
    last_line: u32,
    text: String,
    blocks: Vec<Block>,
    start: Option<usize>,
    pre: usize,
}

impl Builder<'_> {
    fn push_text(&mut self, t: &str) {
        if self.pre > 0 {
            if self.start.is_none() {
                let t = t.trim_start_matches('\n');
                if t.trim().is_empty() {
                    return;
                }
                self.start = Some(self.text.len());
                self.text.push_str(t);
            } else {
                self.text.push_str(t);
            }
            return;
        }
        for word in t.split_whitespace() {
            match self.start {
                None => self.start = Some(self.text.len()),
                Some(_) => {
                    if !self.text.ends_with(' ') {
                        self.text.push(' ');
                    }
                }
            }
            self.text.push_str(word);
        }
        if self.start.is_some() && t.ends_with(char::is_whitespace) && !self.text.ends_with(' ') {
            self.text.push(' ');
        }
    }

    /// The source line where `text` (a block's text) first appears after
    /// the previous block; html5ever keeps no positions, so they are found
    /// again by searching for the block's first word.
    fn line_of(&mut self, text: &str) -> u32 {
        let word = text.split_whitespace().next().unwrap_or("");
        if !word.is_empty() {
            if let Some(found) = self.source[self.search_from..].find(word) {
                let at = self.search_from + found;
                self.last_line += self.source[self.search_from..at].matches('\n').count() as u32;
                self.search_from = at;
            }
        }
        self.last_line
    }

    fn flush(&mut self, kind: BlockKind) {
        let Some(start) = self.start.take() else {
            return;
        };
        let trimmed = self.text.trim_end().len();
        self.text.truncate(trimmed);
        if trimmed > start {
            let block_text = self.text[start..].to_string();
            let line = self.line_of(&block_text);
            self.blocks.push(Block {
                range: start..trimmed,
                kind,
                line,
                page: None,
            });
        }
        self.text.push_str("\n\n");
    }

    fn walk(&mut self, node: ego_tree::NodeRef<'_, Node>) {
        match node.value() {
            Node::Text(t) => self.push_text(t),
            Node::Element(e) => {
                let name = e.name();
                if SKIP.contains(&name) {
                    return;
                }
                let heading = match name {
                    "h1" => Some(1),
                    "h2" => Some(2),
                    "h3" => Some(3),
                    "h4" => Some(4),
                    "h5" => Some(5),
                    "h6" => Some(6),
                    _ => None,
                };
                let block = heading.is_some() || BLOCK.contains(&name);
                if block {
                    self.flush(BlockKind::Paragraph);
                }
                if name == "pre" {
                    self.pre += 1;
                }
                for child in node.children() {
                    self.walk(child);
                }
                if name == "pre" {
                    self.pre -= 1;
                }
                if let Some(level) = heading {
                    let title = self
                        .start
                        .map(|s| self.text[s..].trim().to_string())
                        .unwrap_or_default();
                    self.flush(BlockKind::Heading { level, title });
                } else if block {
                    self.flush(BlockKind::Paragraph);
                }
            }
            _ => {
                for child in node.children() {
                    self.walk(child);
                }
            }
        }
    }
}

/// The visible text of an HTML page and its blocks: headings `h1`–`h6`
/// become headings, block elements end paragraphs, whitespace is collapsed
/// except inside `pre`, and scripts, styles and the `head` are dropped.
pub(crate) fn load(source: &str) -> (String, Vec<Block>) {
    let html = Html::parse_document(source);
    let mut b = Builder {
        source,
        search_from: 0,
        last_line: 1,
        text: String::new(),
        blocks: Vec::new(),
        start: None,
        pre: 0,
    };
    b.walk(html.tree.root());
    b.flush(BlockKind::Paragraph);
    let end = b.text.trim_end().len();
    b.text.truncate(end);
    (b.text, b.blocks)
}
