use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The kind of file a [`Document`] was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Text => "text",
            SourceKind::Markdown => "markdown",
            SourceKind::Html => "html",
            SourceKind::Pdf => "pdf",
        }
    }
}

/// What a [`Block`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// A heading of the given level (1 is the top) and its plain title.
    Heading { level: u8, title: String },
    /// Body text: a paragraph, list item, code block, table cell…
    Paragraph,
}

/// A contiguous piece of a document's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Byte range into [`Document::text`]. Always on `char` boundaries.
    pub range: Range<usize>,
    pub kind: BlockKind,
    /// 1-based line in the source (for PDFs, the line within the page's
    /// extracted text) where the block starts.
    pub line: u32,
    /// 1-based page, for paged formats.
    pub page: Option<u32>,
}

/// A loaded document: the text that will be searched, and its structure.
///
/// Loaders guarantee that `blocks` are sorted, do not overlap, lie on `char`
/// boundaries, and together cover every non-whitespace character of `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Path relative to the indexed folder, with `/` separators.
    pub path: String,
    pub kind: SourceKind,
    pub text: String,
    pub blocks: Vec<Block>,
}

impl Document {
    /// Checks the invariants loaders promise; used by tests and debug builds.
    pub fn check(&self) -> Result<(), String> {
        let mut end = 0;
        for (i, b) in self.blocks.iter().enumerate() {
            if b.range.start < end || b.range.end < b.range.start {
                return Err(format!("block {i} {:?} overlaps or is reversed", b.range));
            }
            if b.range.end > self.text.len()
                || !self.text.is_char_boundary(b.range.start)
                || !self.text.is_char_boundary(b.range.end)
            {
                return Err(format!("block {i} {:?} is not on char boundaries", b.range));
            }
            if let Some(c) = self.text[end..b.range.start]
                .chars()
                .find(|c| !c.is_whitespace())
            {
                return Err(format!("{c:?} before block {i} is not covered"));
            }
            end = b.range.end;
        }
        if self.text[end..].chars().any(|c| !c.is_whitespace()) {
            return Err("text after the last block is not covered".into());
        }
        Ok(())
    }
}
