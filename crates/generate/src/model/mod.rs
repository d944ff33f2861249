//! Language models, chosen by the GGUF file's `general.architecture`.
//!
//! `llama`, `gemma3`, `qwen2` and `qwen3` run on docent's own decoder
//! ([`decoder`]), checked token for token against llama.cpp; each family's
//! file only reads its metadata into a [`decoder::DecoderConfig`]. `phi3`
//! runs on candle-transformers' quantised implementation as it is.

pub mod decoder;
pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_phi3;

use crate::gguf::GgufFile;
use crate::layouts::LayoutStore;
use crate::GenerateError;
use decoder::Decoder;

/// Architectures docent can run.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "gemma3", "qwen2", "qwen3", "phi3"];

enum Inner {
    Decoder(Box<Decoder>),
    Phi3(Box<quantized_phi3::ModelWeights>),
}

/// A loaded language model with its key/value cache.
pub struct Model {
    inner: Inner,
    architecture: String,
    context: usize,
    train_context: usize,
    pos: usize,
}

pub(crate) fn check_shape(
    file: &GgufFile,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    rope_dims: usize,
) -> Result<(), GenerateError> {
    let bad = |reason: String| GenerateError::BadModelFile {
        path: file.path().to_path_buf(),
        reason,
    };
    if n_head == 0 || n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) {
        return Err(bad(format!(
            "{n_head} attention heads cannot share {n_kv_head} key/value heads"
        )));
    }
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(bad(format!("head size {head_dim} is not even")));
    }
    if rope_dims != head_dim {
        return Err(bad(format!(
            "partial rotary embeddings ({rope_dims} of {head_dim} dimensions) are not supported"
        )));
    }
    Ok(())
}

/// The shape every family reads from the same keys: `{arch}.block_count`,
/// `embedding_length`, `attention.head_count`, `head_count_kv` (default:
/// all heads), `attention.key_length` (default: width / heads),
/// `rope.dimension_count` (default: the head size, the only value
/// supported), `attention.layer_norm_rms_epsilon` and `context_length`.
pub(crate) struct Shape {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub rms_eps: f64,
    pub train_context: usize,
}

pub(crate) fn shape(file: &GgufFile, a: &str) -> Result<Shape, GenerateError> {
    let n_layer = file.usize(&format!("{a}.block_count"))?;
    let n_embd = file.usize(&format!("{a}.embedding_length"))?;
    let n_head = file.usize(&format!("{a}.attention.head_count"))?;
    let n_kv_head = file
        .opt_usize(&format!("{a}.attention.head_count_kv"))?
        .unwrap_or(n_head);
    let head_dim = file
        .opt_usize(&format!("{a}.attention.key_length"))?
        .unwrap_or(n_embd / n_head.max(1));
    let rope_dims = file
        .opt_usize(&format!("{a}.rope.dimension_count"))?
        .unwrap_or(head_dim);
    check_shape(file, n_head, n_kv_head, head_dim, rope_dims)?;
    Ok(Shape {
        n_layer,
        n_embd,
        n_head,
        n_kv_head,
        head_dim,
        rms_eps: file.f32(&format!("{a}.attention.layer_norm_rms_epsilon"))? as f64,
        train_context: file.usize(&format!("{a}.context_length"))?,
    })
}

/// The rotary position scale of a file asking for linear scaling (1.0
/// otherwise; other scaling types run unscaled, exact within the trained
/// context).
pub(crate) fn linear_rope_scale(file: &GgufFile, a: &str) -> Result<f32, GenerateError> {
    Ok(match file.opt_f32(&format!("{a}.rope.scaling.factor"))? {
        Some(f)
            if f > 0.0
                && file
                    .opt_string(&format!("{a}.rope.scaling.type"))
                    .as_deref()
                    == Some("linear") =>
        {
            1.0 / f
        }
        _ => 1.0,
    })
}

impl Model {
    /// Loads the weights of `file`, with a cache for at most `max_context`
    /// positions (less if the model was trained for less).
    pub fn load(
        mut file: GgufFile,
        max_context: usize,
        layouts: Option<&LayoutStore>,
    ) -> Result<Self, GenerateError> {
        let arch = file.architecture()?;
        let train_context = file
            .opt_usize(&format!("{arch}.context_length"))?
            .unwrap_or(2048);
        let context = max_context.min(train_context).max(1);
        let inner = match arch.as_str() {
            "llama" => {
                let cfg = llama::config(&file)?;
                Inner::Decoder(Box::new(Decoder::load(&mut file, cfg, context, layouts)?))
            }
            "gemma3" => {
                let cfg = gemma3::config(&file)?;
                Inner::Decoder(Box::new(Decoder::load(&mut file, cfg, context, layouts)?))
            }
            "qwen2" => {
                let cfg = qwen2::config(&file)?;
                Inner::Decoder(Box::new(Decoder::load(&mut file, cfg, context, layouts)?))
            }
            "qwen3" => {
                let cfg = qwen3::config(&file)?;
                Inner::Decoder(Box::new(Decoder::load(&mut file, cfg, context, layouts)?))
            }
            "phi3" => {
                let path = file.path().to_path_buf();
                let (content, mut reader) = file.into_parts();
                Inner::Phi3(Box::new(
                    quantized_phi3::ModelWeights::from_gguf(
                        false,
                        content,
                        &mut reader,
                        &Device::Cpu,
                    )
                    .map_err(|e| GenerateError::BadModelFile {
                        path,
                        reason: e.to_string(),
                    })?,
                ))
            }
            other => {
                return Err(GenerateError::UnsupportedArchitecture {
                    architecture: other.to_string(),
                })
            }
        };
        Ok(Self {
            inner,
            architecture: arch,
            context,
            train_context,
            pos: 0,
        })
    }

    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Positions the cache holds: prompt and answer together must fit.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The context length the model was trained for.
    pub fn train_context(&self) -> usize {
        self.train_context
    }

    /// Tokens already in the cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forgets everything seen so far.
    pub fn reset(&mut self) {
        self.pos = 0;
        match &mut self.inner {
            Inner::Decoder(d) => d.reset(),
            Inner::Phi3(_) => {}
        }
    }

    /// Feeds the next tokens; returns the logits for the token after them.
    pub fn forward(&mut self, ids: &[u32]) -> Result<Vec<f32>, GenerateError> {
        if self.pos + ids.len() > self.context {
            return Err(GenerateError::ContextFull {
                needed: self.pos + ids.len(),
                context: self.context,
            });
        }
        let logits = match &mut self.inner {
            Inner::Decoder(d) => d.forward(ids)?,
            Inner::Phi3(m) => {
                let x = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
                m.forward(&x, self.pos)?
                    .flatten_all()?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec1()?
            }
        };
        self.pos += ids.len();
        Ok(logits)
    }

    /// Feeds the next tokens; returns the logits after each of them (one
    /// vocabulary-long row per token), or `None` for a model that gives
    /// only the last (candle-transformers' phi3, whose cache is then left
    /// as it was).
    pub fn forward_each(&mut self, ids: &[u32]) -> Result<Option<Vec<f32>>, GenerateError> {
        // The decoder checks the room left itself.
        let logits = match &mut self.inner {
            Inner::Decoder(d) => d.forward_rows(ids, ids.len())?,
            Inner::Phi3(_) => return Ok(None),
        };
        self.pos += ids.len();
        Ok(Some(logits))
    }

    /// The last position's residual stream after each layer of the last
    /// step (layers × width, one row per layer), or `None` for a model that
    /// does not expose it (candle-transformers' phi3).
    pub fn hidden(&self) -> Option<&[f32]> {
        match &self.inner {
            Inner::Decoder(d) => Some(d.hidden()),
            Inner::Phi3(_) => None,
        }
    }

    /// How many rows [`Model::hidden`] gives and how wide each is (its
    /// layers and its residual stream), or `None` as for `hidden`.
    pub fn hidden_shape(&self) -> Option<(usize, usize)> {
        match &self.inner {
            Inner::Decoder(d) => Some(d.hidden_shape()),
            Inner::Phi3(_) => None,
        }
    }

    /// Whether [`Model::rewind`] can go back (docent's own decoder can;
    /// candle-transformers' phi3 cannot).
    pub fn can_rewind(&self) -> bool {
        matches!(self.inner, Inner::Decoder(_))
    }

    /// Forgets the tokens from position `pos` on, keeping those before, so
    /// that the model can go on from `pos` as if it had seen nothing else.
    /// `false` for a model whose cache cannot go back (nothing changes).
    pub fn rewind(&mut self, pos: usize) -> bool {
        match &mut self.inner {
            Inner::Decoder(d) => {
                d.rewind(pos);
                self.pos = self.pos.min(pos);
                true
            }
            Inner::Phi3(_) => false,
        }
    }
}
