//! Sentence encoders: text in, one vector per text out.
//!
//! [`Encoder`] runs a BERT-family sentence-transformers model (by default
//! `sentence-transformers/all-MiniLM-L6-v2`) on the CPU with docent's own
//! forward pass ([`bert`]: dense layers quantised to 8 bits on
//! `docent-kernels`, the rest in f32), reproducing what the Python
//! `sentence-transformers` library computes for the same model to a cosine
//! of 0.999 or better:
//!
//! * the pipeline is read from the model's own files: `modules.json` (is
//!   there a `Normalize` module?), `1_Pooling/config.json` (mean, CLS, max or
//!   mean-sqrt-len pooling) and `sentence_bert_config.json` (`max_seq_length`,
//!   `do_lower_case`);
//! * texts are truncated to `max_seq_length` tokens *including* `[CLS]` and
//!   `[SEP]`, as sentence-transformers does, whatever truncation and padding
//!   the raw `tokenizer.json` carries (all-MiniLM-L6-v2's says 128 and fixed
//!   padding to 128, which sentence-transformers overrides with 256);
//! * the texts of a batch are laid end to end rather than padded, so no
//!   time is spent on padding and pooling sees only real tokens.
//!
//! The products run on rayon's global pool; callers must not call
//! [`Encoder::embed`] from inside a rayon parallel iterator.
//!
//! [`Encoder::token_counter`] exposes the same tokenizer to the chunker, so
//! that chunk budgets are counted in the encoder's own tokens.
//!
//! This crate reads the model files it is given and nothing else.

use std::path::Path;

pub mod bert;

use bert::{Bert, BertConfig};
use docent_core::{EncoderInfo, Pooling, TokenCounter};
use serde::Deserialize;
use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("encoder file {path} is missing")]
    Missing { path: String },
    #[error("encoder file {path} could not be read: {message}")]
    Invalid { path: String, message: String },
    #[error("the encoder's weights could not be read: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the tokenizer failed: {0}")]
    Tokenizer(String),
}

/// Settings of an [`Encoder`].
#[derive(Debug, Clone, Copy)]
pub struct EncoderConfig {
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig { batch_size: 32 }
    }
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SbertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, EmbedError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EmbedError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| EmbedError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// A BERT sentence encoder.
pub struct Encoder {
    model: Bert,
    /// Truncates to `max_seq_len`, adds special tokens, no padding.
    tokenizer: Tokenizer,
    /// No truncation: counts tokens for the chunker.
    counter: Tokenizer,
    info: EncoderInfo,
    lowercase: bool,
    config: EncoderConfig,
}

impl Encoder {
    /// Loads a sentence-transformers BERT model from a folder holding its
    /// repository files.
    pub fn load(
        dir: &Path,
        id: &str,
        revision: &str,
        config: EncoderConfig,
    ) -> Result<Encoder, EmbedError> {
        let need = |name: &str| {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(EmbedError::Missing {
                    path: p.display().to_string(),
                })
            }
        };
        let bert: BertConfig = read_json(&need("config.json")?)?.expect("checked above");
        let modules: Vec<Module> = read_json(&dir.join("modules.json"))?.unwrap_or_default();
        let pooling_dir = modules
            .iter()
            .find(|m| m.kind.ends_with("Pooling"))
            .map(|m| m.path.clone())
            .unwrap_or_else(|| "1_Pooling".into());
        let pooling = match read_json::<PoolingConfig>(&dir.join(pooling_dir).join("config.json"))?
        {
            Some(p) if p.pooling_mode_cls_token => Pooling::Cls,
            Some(p) if p.pooling_mode_max_tokens => Pooling::Max,
            Some(p) if p.pooling_mode_mean_sqrt_len_tokens && !p.pooling_mode_mean_tokens => {
                Pooling::MeanSqrtLen
            }
            _ => Pooling::Mean,
        };
        let normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));
        let sbert: Option<SbertConfig> = read_json(&dir.join("sentence_bert_config.json"))?;
        let max_seq_len = sbert
            .as_ref()
            .and_then(|s| s.max_seq_length)
            .unwrap_or(bert.max_position_embeddings)
            .min(bert.max_position_embeddings);
        let lowercase = sbert.is_some_and(|s| s.do_lower_case);

        let tok_path = need("tokenizer.json")?;
        let mut counter = Tokenizer::from_file(&tok_path).map_err(|e| EmbedError::Invalid {
            path: tok_path.display().to_string(),
            message: e.to_string(),
        })?;
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;

        let hidden = bert.hidden_size;
        let model = Bert::load(&need("model.safetensors")?, bert)?;
        Ok(Encoder {
            model,
            tokenizer,
            counter,
            info: EncoderInfo {
                id: id.into(),
                revision: revision.into(),
                dim: hidden,
                pooling,
                normalize,
                max_seq_len,
            },
            lowercase,
            config,
        })
    }

    pub fn info(&self) -> &EncoderInfo {
        &self.info
    }

    /// Most tokens of text the encoder reads without truncating, special
    /// tokens excluded.
    pub fn max_input_tokens(&self) -> usize {
        self.info.max_seq_len
            - self
                .counter
                .get_post_processor()
                .map_or(2, |p| p.added_tokens(false))
    }

    /// Counts tokens with the encoder's tokenizer, without special tokens.
    pub fn token_counter(&self) -> &(dyn TokenCounter + '_) {
        self
    }

    /// Tokens of `text` including special tokens, before truncation.
    pub fn count_with_special(&self, text: &str) -> usize {
        self.counter
            .encode(text, true)
            .map(|e| e.len())
            .unwrap_or(0)
    }

    /// Embeds texts, one vector of [`EncoderInfo::dim`] per text, in order.
    /// Texts longer than the encoder's limit are truncated, as
    /// sentence-transformers does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let lowered: Vec<String>;
        let inputs: Vec<&str> = if self.lowercase {
            lowered = texts.iter().map(|t| t.to_lowercase()).collect();
            lowered.iter().map(String::as_str).collect()
        } else {
            texts.to_vec()
        };
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut out = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(self.config.batch_size.max(1)) {
            let vectors = self.forward(batch.iter().map(|&i| encodings[i].get_ids()))?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward<'a>(
        &self,
        ids: impl Iterator<Item = &'a [u32]> + Clone,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let seqs: Vec<&[u32]> = ids.collect();
        let hidden = self.model.forward(&seqs)?;
        let h = self.info.dim;
        let mut out = Vec::with_capacity(seqs.len());
        let mut row = 0;
        for seq in &seqs {
            let n = seq.len();
            let rows = &hidden[row * h..(row + n) * h];
            row += n;
            let mut v = vec![0f32; h];
            match self.info.pooling {
                Pooling::Cls => v.copy_from_slice(&rows[..h.min(rows.len())]),
                Pooling::Mean | Pooling::MeanSqrtLen => {
                    for r in rows.chunks_exact(h) {
                        for (a, b) in v.iter_mut().zip(r) {
                            *a += b;
                        }
                    }
                    let denom = if self.info.pooling == Pooling::Mean {
                        (n as f32).max(1e-9)
                    } else {
                        (n as f32).sqrt().max(1e-9)
                    };
                    v.iter_mut().for_each(|a| *a /= denom);
                }
                Pooling::Max => {
                    v.fill(f32::NEG_INFINITY);
                    for r in rows.chunks_exact(h) {
                        for (a, &b) in v.iter_mut().zip(r) {
                            *a = a.max(b);
                        }
                    }
                }
            }
            if self.info.normalize {
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|a| *a /= norm);
            }
            out.push(v);
        }
        Ok(out)
    }
}

impl TokenCounter for Encoder {
    fn count(&self, text: &str) -> usize {
        let lowered;
        let text = if self.lowercase {
            lowered = text.to_lowercase();
            &lowered
        } else {
            text
        };
        self.counter
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or(usize::MAX)
    }
}
