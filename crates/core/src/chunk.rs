//! Token-aware chunking with overlap.
//!
//! A document is first cut into *sections* at its headings, so that no chunk
//! straddles two headings. Each section is cut into *pieces*, each of which
//! fits the token budget: whole paragraphs when they fit, else sentences
//! (Unicode sentence boundaries, which handle Korean `다.` endings and CJK
//! full stops; a line break inside a paragraph counts as a space, since
//! text wrapped at a fixed width breaks lines mid-sentence), else lines,
//! else words, else grapheme clusters (so emoji and Hangul syllables are
//! never broken). Pieces are then packed greedily into chunks; the next
//! chunk starts far enough back to repeat up to `overlap_tokens` tokens of
//! the previous one, at the start of a sentence: the last whole sentences
//! that fit, else the last sentence alone if it is at most twice that, else
//! (a sentence longer still) the last words. A chunk that starts in the
//! middle of a sentence (`is written beside the old one…`) reads badly to
//! the language model and to the user who opens the source. Every chunk's
//! real token count is checked with the counter before it is emitted, so
//! the budget holds even when a tokenizer is not additive over pieces.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::{BlockKind, Document};

/// Changes whenever the same document and [`ChunkConfig`] would be cut
/// differently, so that an index re-chunks its files (and embeds them
/// again) rather than mix chunks of two rules. 2: the overlap starts at a
/// sentence.
pub const CHUNKER_VERSION: u32 = 2;

/// Counts tokens the way the encoder will see them (without special tokens).
pub trait TokenCounter: Sync {
    fn count(&self, text: &str) -> usize;
}

/// How documents are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    /// Most tokens in a chunk, special tokens not included.
    pub max_tokens: usize,
    /// Most tokens that consecutive chunks of one section share; a single
    /// sentence of up to twice this is repeated whole rather than cut.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 200,
            overlap_tokens: 32,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkConfigError {
    #[error("chunk size of {0} tokens is too small (at least 16)")]
    TooSmall(usize),
    #[error("overlap of {overlap} tokens must be less than half the chunk size of {max} tokens")]
    OverlapTooLarge { overlap: usize, max: usize },
}

impl ChunkConfig {
    pub fn validate(&self) -> Result<(), ChunkConfigError> {
        if self.max_tokens < 16 {
            return Err(ChunkConfigError::TooSmall(self.max_tokens));
        }
        if self.overlap_tokens * 2 >= self.max_tokens {
            return Err(ChunkConfigError::OverlapTooLarge {
                overlap: self.overlap_tokens,
                max: self.max_tokens,
            });
        }
        Ok(())
    }
}

/// A retrievable span of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Source path, relative to the indexed folder.
    pub path: String,
    /// Position of the chunk within its document, from 0.
    pub ordinal: u32,
    /// Exactly `document.text[byte_span]`.
    pub text: String,
    pub byte_span: Range<usize>,
    /// The same span in `char`s (Unicode scalar values) of the document text.
    pub char_span: Range<usize>,
    /// 1-based line where the chunk starts (within the page for PDFs).
    pub line: u32,
    pub page: Option<u32>,
    /// Titles of the enclosing headings, outermost first.
    pub heading_path: Vec<String>,
    /// Tokens in `text` as counted by the encoder's tokenizer.
    pub tokens: u32,
}

#[derive(Debug, Clone)]
struct Piece {
    range: Range<usize>,
    tokens: usize,
    block: usize,
    /// Part of a heading: never the last piece of a chunk that has more.
    heading: bool,
}

struct Section {
    blocks: Range<usize>,
    heading_path: Vec<String>,
}

fn sections(doc: &Document) -> Vec<Section> {
    let mut out = Vec::new();
    let mut stack: Vec<(u8, String)> = Vec::new();
    let mut start = 0;
    for (i, block) in doc.blocks.iter().enumerate() {
        if let BlockKind::Heading { level, title } = &block.kind {
            if i > start {
                out.push(Section {
                    blocks: start..i,
                    heading_path: stack.iter().map(|(_, t)| t.clone()).collect(),
                });
            }
            while stack.last().is_some_and(|(l, _)| *l >= *level) {
                stack.pop();
            }
            stack.push((*level, title.clone()));
            start = i;
        }
    }
    if start < doc.blocks.len() {
        out.push(Section {
            blocks: start..doc.blocks.len(),
            heading_path: stack.iter().map(|(_, t)| t.clone()).collect(),
        });
    }
    out
}

/// Byte ranges of the sentences of `text`, a line break counting as a
/// space: text wrapped at a fixed width (plain text, Markdown, PDF lines)
/// breaks lines inside its sentences, and Unicode's rules end a sentence
/// at every line break.
fn sentences(text: &str) -> Vec<Range<usize>> {
    // The same bytes, line breaks as spaces: offsets stay valid.
    let flat = text.replace(['\n', '\r'], " ");
    flat.split_sentence_bound_indices()
        .map(|(o, s)| o..o + s.len())
        .collect()
}

/// Narrows `range` of `text` to exclude leading and trailing whitespace.
fn trim(text: &str, range: Range<usize>) -> Range<usize> {
    let s = &text[range.clone()];
    let start = range.start + (s.len() - s.trim_start().len());
    let end = range.end - (s.len() - s.trim_end().len());
    if start >= end {
        start..start
    } else {
        start..end
    }
}

struct Splitter<'a> {
    text: &'a str,
    max: usize,
    counter: &'a dyn TokenCounter,
    out: Vec<Piece>,
    heading: bool,
}

impl Splitter<'_> {
    fn push_if_fits(&mut self, range: Range<usize>, block: usize) -> bool {
        let range = trim(self.text, range);
        if range.is_empty() {
            return true;
        }
        let tokens = self.counter.count(&self.text[range.clone()]);
        if tokens <= self.max {
            self.out.push(Piece {
                range,
                tokens,
                block,
                heading: self.heading,
            });
            true
        } else {
            false
        }
    }

    fn block(&mut self, range: Range<usize>, block: usize) {
        if self.push_if_fits(range.clone(), block) {
            return;
        }
        let base = range.start;
        for s in sentences(&self.text[range]) {
            let r = base + s.start..base + s.end;
            if !self.push_if_fits(r.clone(), block) {
                self.lines(r, block);
            }
        }
    }

    /// A sentence too long for a chunk, at its line breaks (code, lists).
    fn lines(&mut self, range: Range<usize>, block: usize) {
        let base = range.start;
        let text = self.text;
        let mut off = 0;
        for l in text[range].split_inclusive('\n') {
            let r = base + off..base + off + l.len();
            off += l.len();
            if !self.push_if_fits(r.clone(), block) {
                self.sentence(r, block);
            }
        }
    }

    fn sentence(&mut self, range: Range<usize>, block: usize) {
        let base = range.start;
        let text = self.text;
        for (off, w) in text[range].split_word_bound_indices() {
            let r = base + off..base + off + w.len();
            if !self.push_if_fits(r.clone(), block) {
                self.word(r, block);
            }
        }
    }

    /// Splits an over-long word at grapheme boundaries, taking the longest
    /// prefix that fits each time (found by binary search).
    fn word(&mut self, range: Range<usize>, block: usize) {
        let text = self.text;
        let bounds: Vec<usize> = text[range.clone()]
            .grapheme_indices(true)
            .map(|(o, _)| range.start + o)
            .chain(std::iter::once(range.end))
            .collect();
        let mut i = 0;
        while i + 1 < bounds.len() {
            // Largest j in (i, len) with count(bounds[i]..bounds[j]) <= max.
            let (mut lo, mut hi) = (i + 1, bounds.len() - 1);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if self.counter.count(&text[bounds[i]..bounds[mid]]) <= self.max {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let r = bounds[i]..bounds[lo];
            let tokens = self.counter.count(&text[r.clone()]);
            self.out.push(Piece {
                range: r,
                tokens,
                block,
                heading: self.heading,
            });
            i = lo;
        }
    }
}

struct Positions {
    char_starts: Vec<usize>,
    newlines: Vec<usize>,
}

impl Positions {
    fn new(text: &str) -> Self {
        Positions {
            char_starts: text.char_indices().map(|(i, _)| i).collect(),
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
        }
    }
    fn char_index(&self, byte: usize) -> usize {
        self.char_starts.partition_point(|&b| b < byte)
    }
    fn newlines_before(&self, byte: usize) -> usize {
        self.newlines.partition_point(|&b| b < byte)
    }
}

/// Cuts `doc` into chunks of at most `config.max_tokens` tokens.
///
/// The returned chunks are in document order; consecutive chunks of the same
/// section share at most `config.overlap_tokens` tokens, or one whole
/// sentence of at most twice that. A single grapheme
/// cluster longer than the budget (which no real tokenizer produces for a
/// budget of 16 or more) would be emitted alone rather than dropped.
pub fn chunk_document(
    doc: &Document,
    config: &ChunkConfig,
    counter: &dyn TokenCounter,
) -> Vec<Chunk> {
    let max = config.max_tokens.max(1);
    let pos = Positions::new(&doc.text);
    let mut chunks = Vec::new();
    for section in sections(doc) {
        let mut splitter = Splitter {
            text: &doc.text,
            max,
            counter,
            out: Vec::new(),
            heading: false,
        };
        for bi in section.blocks.clone() {
            splitter.heading = matches!(doc.blocks[bi].kind, BlockKind::Heading { .. });
            splitter.block(doc.blocks[bi].range.clone(), bi);
        }
        let pieces = splitter.out;
        let text = doc.text.as_str();
        let n = pieces.len();
        let mut i = 0;
        // Start and tokens of the overlap carried into the next chunk when it
        // begins inside a piece (at a word boundary).
        let mut carry: Option<(usize, usize, usize)> = None;
        while i < n {
            let (mut start, mut sum, mut first_block) =
                carry
                    .take()
                    .unwrap_or((pieces[i].range.start, 0, pieces[i].block));
            let mut j = i;
            while j < n && sum + pieces[j].tokens <= max {
                sum += pieces[j].tokens;
                j += 1;
            }
            let mut j = j.max(i + 1);
            // A heading belongs with the text under it, not at a chunk's end.
            while j < n && j > i + 1 && pieces[j - 1].heading {
                j -= 1;
            }
            let tokens = loop {
                let actual = counter.count(&text[start..pieces[j - 1].range.end]);
                if actual <= max {
                    break actual;
                }
                if j > i + 1 {
                    j -= 1;
                } else if start != pieces[i].range.start {
                    start = pieces[i].range.start;
                    first_block = pieces[i].block;
                } else {
                    break actual;
                }
            };
            let span = start..pieces[j - 1].range.end;
            let block = &doc.blocks[first_block];
            let line = block.line as usize + pos.newlines_before(span.start)
                - pos.newlines_before(block.range.start);
            chunks.push(Chunk {
                path: doc.path.clone(),
                ordinal: chunks.len() as u32,
                text: text[span.clone()].to_string(),
                char_span: pos.char_index(span.start)..pos.char_index(span.end),
                byte_span: span.clone(),
                line: line as u32,
                page: block.page,
                heading_path: section.heading_path.clone(),
                tokens: tokens as u32,
            });
            if j >= n {
                break;
            }
            // Overlap: step back over whole pieces (sentences, paragraphs)
            // when they fit the overlap, leaving room for the next piece so
            // that every chunk makes progress…
            let next = pieces[j].tokens;
            let mut k = j;
            let mut overlap = 0;
            while k > i + 1
                && overlap + pieces[k - 1].tokens <= config.overlap_tokens
                && overlap + pieces[k - 1].tokens + next <= max
            {
                overlap += pieces[k - 1].tokens;
                k -= 1;
            }
            if k < j || config.overlap_tokens == 0 {
                i = k;
                continue;
            }
            // …else repeat the sentences at the end of the last piece (a
            // paragraph), or its last sentence alone when that is up to
            // twice the overlap, so that the next chunk starts where a
            // sentence does…
            let last = pieces[j - 1].range.clone();
            let from = last.start.max(span.start);
            let fits = |at: usize, limit: usize| {
                let c = counter.count(&text[at..last.end]);
                (c <= limit && c + next <= max).then_some(c)
            };
            let starts: Vec<usize> = sentences(&text[from..last.end])
                .into_iter()
                .map(|r| trim(text, from + r.start..from + r.end))
                .filter(|r| !r.is_empty())
                .map(|r| r.start)
                .filter(|&at| at > from || from > span.start)
                .collect();
            let mut best = None;
            for &at in starts.iter().rev() {
                match fits(at, config.overlap_tokens) {
                    Some(c) => best = Some((at, c, pieces[j - 1].block)),
                    None => break,
                }
            }
            if best.is_none() {
                if let Some(&at) = starts.last() {
                    best =
                        fits(at, 2 * config.overlap_tokens).map(|c| (at, c, pieces[j - 1].block));
                }
            }
            if best.is_some() {
                carry = best;
                i = j;
                continue;
            }
            // …else repeat the words at the end of the last piece.
            for (off, w) in text[from..last.end].split_word_bound_indices().rev() {
                if w.trim().is_empty() {
                    continue;
                }
                let at = from + off;
                let c = counter.count(&text[at..last.end]);
                if c > config.overlap_tokens || c + next > max {
                    break;
                }
                best = Some((at, c, pieces[j - 1].block));
            }
            carry = best;
            i = j;
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Block, SourceKind};

    /// Counts whitespace-separated words, and each CJK character as one.
    struct Words;
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace()
                .map(|w| w.chars().count().div_ceil(4))
                .sum()
        }
    }

    fn doc(text: &str, blocks: Vec<(Range<usize>, BlockKind)>) -> Document {
        let d = Document {
            path: "t.md".into(),
            kind: SourceKind::Markdown,
            text: text.into(),
            blocks: blocks
                .into_iter()
                .map(|(range, kind)| Block {
                    line: 1 + text[..range.start].matches('\n').count() as u32,
                    range,
                    kind,
                    page: None,
                })
                .collect(),
        };
        d.check().unwrap();
        d
    }

    #[test]
    fn headings_start_new_chunks_and_build_paths() {
        let text = "# A\nalpha one\n## B\nbeta two\n# C\ngamma";
        let d = doc(
            text,
            vec![
                (
                    0..3,
                    BlockKind::Heading {
                        level: 1,
                        title: "A".into(),
                    },
                ),
                (4..13, BlockKind::Paragraph),
                (
                    14..18,
                    BlockKind::Heading {
                        level: 2,
                        title: "B".into(),
                    },
                ),
                (19..27, BlockKind::Paragraph),
                (
                    28..31,
                    BlockKind::Heading {
                        level: 1,
                        title: "C".into(),
                    },
                ),
                (32..37, BlockKind::Paragraph),
            ],
        );
        let c = chunk_document(&d, &ChunkConfig::default(), &Words);
        let paths: Vec<_> = c.iter().map(|c| c.heading_path.join("/")).collect();
        assert_eq!(paths, ["A", "A/B", "C"]);
        assert_eq!(c[1].text, "## B\nbeta two");
        assert_eq!(c[1].line, 3);
        assert_eq!(c[2].line, 5);
    }

    #[test]
    fn overlap_never_loops_forever() {
        let text = "aaaa ".repeat(400);
        let d = doc(&text, vec![(0..text.len(), BlockKind::Paragraph)]);
        let cfg = ChunkConfig {
            max_tokens: 16,
            overlap_tokens: 7,
        };
        let c = chunk_document(&d, &cfg, &Words);
        assert!(c.iter().all(|c| c.tokens <= 16));
        assert_eq!(c.last().unwrap().byte_span.end, text.trim_end().len());
        assert!(c.len() < 400);
    }

    #[test]
    fn config_validation() {
        assert!(ChunkConfig::default().validate().is_ok());
        assert_eq!(
            ChunkConfig {
                max_tokens: 8,
                overlap_tokens: 0
            }
            .validate(),
            Err(ChunkConfigError::TooSmall(8))
        );
        assert!(ChunkConfig {
            max_tokens: 64,
            overlap_tokens: 32
        }
        .validate()
        .is_err());
    }
}
