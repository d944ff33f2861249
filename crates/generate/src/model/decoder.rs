//! A decoder-only transformer over quantised GGUF weights, written here so
//! that each family's details (rotary layout, normalisation placement,
//! activation, sliding windows, embedding scale) match llama.cpp's, which is
//! the reference docent is checked against.
//!
//! The families in `llama.rs` and `gemma3.rs` only read their metadata into
//! a [`DecoderConfig`]; the computation is shared.

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::kv_cache::KvCache;

use crate::gguf::GgufFile;
use crate::quant::QMatrix;
use crate::GenerateError;

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs (llama.cpp's `NORM`; GGUF llama weights are permuted for it).
    Interleaved,
    /// First half with second half (llama.cpp's `NEOX`; Gemma, Qwen).
    Halves,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU with the tanh approximation.
    GeluTanh,
}

/// Per-layer attention settings.
#[derive(Debug, Clone, Copy)]
pub struct LayerAttention {
    pub rope_base: f32,
    /// Rotary position scale (1.0 = none).
    pub rope_scale: f32,
    /// Only the last `window` positions are visible, if set.
    pub window: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub rms_eps: f64,
    pub rope_layout: RopeLayout,
    pub activation: Activation,
    /// Multiply token embeddings by this (Gemma: √n_embd).
    pub embed_scale: Option<f64>,
    /// Multiply queries by this before `QKᵀ`.
    pub attn_scale: f64,
    /// Per-head RMSNorm of queries and keys (Gemma 3, Qwen 3).
    pub qk_norm: bool,
    /// Norms after attention and after the MLP (Gemma 2/3).
    pub post_norms: bool,
    pub layers: Vec<LayerAttention>,
    /// The context the model was trained for.
    pub train_context: usize,
}

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(file: &mut GgufFile, name: &str, eps: f64) -> Result<Self, GenerateError> {
        let weight = file.tensor(name)?.dequantize(&Device::Cpu)?;
        Ok(Self { weight, eps })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)
    }
}

/// Token embeddings kept in their quantised form; rows are dequantised on
/// lookup, so a 262k-token vocabulary does not cost a gigabyte of f32.
struct Embeddings {
    dtype: GgmlDType,
    data: Vec<u8>,
    row_bytes: usize,
    dim: usize,
    rows: usize,
}

impl Embeddings {
    fn new(q: &QTensor) -> Result<Self, GenerateError> {
        let (rows, dim) = q.shape().dims2()?;
        let dtype = q.dtype();
        let data = q.data()?.into_owned();
        let row_bytes = dim / dtype.block_size() * dtype.type_size();
        Ok(Self {
            dtype,
            data,
            row_bytes,
            dim,
            rows,
        })
    }

    fn lookup(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            let id = id as usize;
            if id >= self.rows {
                candle_core::bail!("token id {id} is outside the vocabulary ({})", self.rows);
            }
            let raw = &self.data[id * self.row_bytes..(id + 1) * self.row_bytes];
            let q = qtensor_from_ggml(self.dtype, raw, vec![self.dim], &Device::Cpu)?;
            rows.push(q.dequantize(&Device::Cpu)?);
        }
        Tensor::stack(&rows, 0)
    }
}

struct Layer {
    attn_norm: RmsNorm,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    post_attn_norm: Option<RmsNorm>,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Option<RmsNorm>,
    attention: LayerAttention,
    cache: KvCache,
}

/// The loaded model and its key/value cache.
pub struct Decoder {
    cfg: DecoderConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    /// Positions already in the cache.
    pos: usize,
    context: usize,
}

/// A linear layer over a quantised weight matrix.
struct Linear(QMatrix);

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = *dims.last().expect("non-scalar input");
        let n = x.elem_count() / k;
        let flat: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let out = self.0.matmul(&flat, n);
        let mut shape = dims;
        *shape.last_mut().expect("non-scalar input") = self.0.rows();
        Tensor::from_vec(out, shape, &Device::Cpu)
    }
}

fn linear(file: &mut GgufFile, name: &str) -> Result<Linear, GenerateError> {
    Ok(Linear(QMatrix::from_qtensor(name, &file.tensor(name)?)?))
}

impl Decoder {
    /// Loads the weights named as llama.cpp names them, with room for
    /// `context` positions in the cache.
    pub fn load(
        file: &mut GgufFile,
        cfg: DecoderConfig,
        context: usize,
    ) -> Result<Self, GenerateError> {
        let eps = cfg.rms_eps;
        let embd = file.tensor("token_embd.weight")?;
        let embeddings = Embeddings::new(&embd)?;
        let output = if file.has_tensor("output.weight") {
            linear(file, "output.weight")?
        } else {
            Linear(QMatrix::from_qtensor("token_embd.weight", &embd)?)
        };
        let norm = RmsNorm::load(file, "output_norm.weight", eps)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blk.{i}");
            let opt_norm = |file: &mut GgufFile, on: bool, n: &str| -> Result<_, GenerateError> {
                if on {
                    Ok(Some(RmsNorm::load(file, &format!("{p}.{n}.weight"), eps)?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: RmsNorm::load(file, &format!("{p}.attn_norm.weight"), eps)?,
                wq: linear(file, &format!("{p}.attn_q.weight"))?,
                wk: linear(file, &format!("{p}.attn_k.weight"))?,
                wv: linear(file, &format!("{p}.attn_v.weight"))?,
                wo: linear(file, &format!("{p}.attn_output.weight"))?,
                q_norm: opt_norm(file, cfg.qk_norm, "attn_q_norm")?,
                k_norm: opt_norm(file, cfg.qk_norm, "attn_k_norm")?,
                post_attn_norm: opt_norm(file, cfg.post_norms, "post_attention_norm")?,
                ffn_norm: RmsNorm::load(file, &format!("{p}.ffn_norm.weight"), eps)?,
                gate: linear(file, &format!("{p}.ffn_gate.weight"))?,
                up: linear(file, &format!("{p}.ffn_up.weight"))?,
                down: linear(file, &format!("{p}.ffn_down.weight"))?,
                post_ffn_norm: opt_norm(file, cfg.post_norms, "post_ffw_norm")?,
                attention: cfg.layers[i],
                cache: KvCache::new(2, context),
            });
        }
        Ok(Self {
            cfg,
            embeddings,
            layers,
            norm,
            output,
            pos: 0,
            context,
        })
    }

    pub fn context(&self) -> usize {
        self.context
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn reset(&mut self) {
        self.pos = 0;
        for l in &mut self.layers {
            l.cache.reset();
        }
    }

    /// Runs `ids` (the next tokens after those already seen) and returns the
    /// logits that predict the token after the last one.
    pub fn forward(&mut self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let seq = ids.len();
        if seq == 0 {
            candle_core::bail!("no tokens to run");
        }
        if self.pos + seq > self.context {
            candle_core::bail!(
                "{} tokens do not fit in the {}-token context",
                self.pos + seq,
                self.context
            );
        }
        let cfg = &self.cfg;
        let mut x = self.embeddings.lookup(ids)?.unsqueeze(0)?;
        if let Some(s) = cfg.embed_scale {
            x = (x * s)?;
        }
        let start = self.pos;
        let total = start + seq;
        let mut tables: Vec<StepTables> = Vec::new();
        for layer in &mut self.layers {
            let t = match tables.iter().find(|t| t.same(&layer.attention)) {
                Some(t) => t.clone(),
                None => {
                    let t = StepTables::new(cfg, layer.attention, start, seq)?;
                    tables.push(t.clone());
                    t
                }
            };
            let residual = x.clone();
            let h = layer.attn_norm.forward(&x)?;
            let h = attention(cfg, layer, &h, start, &t)?;
            let h = match &layer.post_attn_norm {
                Some(n) => n.forward(&h)?,
                None => h,
            };
            x = (h + residual)?;
            let residual = x.clone();
            let h = layer.ffn_norm.forward(&x)?;
            let gate = layer.gate.forward(&h)?;
            let gate = match cfg.activation {
                Activation::Silu => candle_nn::ops::silu(&gate)?,
                Activation::GeluTanh => gelu_f16_table(&gate)?,
            };
            let h = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            let h = match &layer.post_ffn_norm {
                Some(n) => n.forward(&h)?,
                None => h,
            };
            x = (h + residual)?;
        }
        self.pos = total;
        let last = x.narrow(1, seq - 1, 1)?;
        let last = self.norm.forward(&last)?;
        let logits = self.output.forward(&last)?;
        logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()
    }
}

/// cos and sin tables for positions `start..start+seq`.
fn rope_tables(
    head_dim: usize,
    base: f32,
    scale: f32,
    start: usize,
    seq: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(seq * half);
    let mut sin = Vec::with_capacity(seq * half);
    for p in start..start + seq {
        for i in 0..half {
            let theta = base.powf(-2.0 * i as f32 / head_dim as f32);
            let angle = p as f32 * scale * theta;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (seq, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (seq, half), &Device::Cpu)?,
    ))
}

/// Additive mask (0 or -inf) of shape (seq, total) for queries at
/// `start..start+seq` over keys `0..total`.
fn mask(
    start: usize,
    seq: usize,
    total: usize,
    window: Option<usize>,
) -> candle_core::Result<Tensor> {
    let mut m = Vec::with_capacity(seq * total);
    for i in 0..seq {
        let q = start + i;
        for k in 0..total {
            let visible = k <= q && window.is_none_or(|w| q - k < w);
            m.push(if visible { 0f32 } else { f32::NEG_INFINITY });
        }
    }
    Tensor::from_vec(m, (seq, total), &Device::Cpu)
}

/// What attention needs for one step that depends only on a layer's
/// attention settings: rotary tables and the additive mask (None when every
/// key is visible). Built once per distinct setting per step, not per layer.
#[derive(Clone)]
struct StepTables {
    settings: LayerAttention,
    cos: Tensor,
    sin: Tensor,
    /// Keys before this position are outside the window.
    first: usize,
    mask: Option<Tensor>,
}

impl StepTables {
    fn new(
        cfg: &DecoderConfig,
        a: LayerAttention,
        start: usize,
        seq: usize,
    ) -> candle_core::Result<Self> {
        let (cos, sin) = rope_tables(cfg.head_dim, a.rope_base, a.rope_scale, start, seq)?;
        let total = start + seq;
        // Keys that some query of this step can see.
        let first = match a.window {
            Some(w) => (start + 1).saturating_sub(w),
            None => 0,
        };
        let mask = if seq > 1 || first > 0 {
            let n_rep = cfg.n_head / cfg.n_kv_head;
            Some(
                mask(start, seq, total, a.window)?
                    .narrow(1, first, total - first)?
                    .repeat((n_rep, 1))?,
            )
        } else {
            None
        };
        Ok(Self {
            settings: a,
            cos,
            sin,
            first,
            mask,
        })
    }

    fn same(&self, a: &LayerAttention) -> bool {
        let s = &self.settings;
        s.rope_base == a.rope_base && s.rope_scale == a.rope_scale && s.window == a.window
    }
}

fn attention(
    cfg: &DecoderConfig,
    layer: &mut Layer,
    x: &Tensor,
    start: usize,
    t: &StepTables,
) -> candle_core::Result<Tensor> {
    let (b, seq, _) = x.dims3()?;
    let hd = cfg.head_dim;
    let q = layer
        .wq
        .forward(x)?
        .reshape((b, seq, cfg.n_head, hd))?
        .transpose(1, 2)?;
    let k = layer
        .wk
        .forward(x)?
        .reshape((b, seq, cfg.n_kv_head, hd))?
        .transpose(1, 2)?;
    let v = layer
        .wv
        .forward(x)?
        .reshape((b, seq, cfg.n_kv_head, hd))?
        .transpose(1, 2)?
        .contiguous()?;
    let q = match &layer.q_norm {
        Some(n) => n.forward(&q)?,
        None => q.contiguous()?,
    };
    let k = match &layer.k_norm {
        Some(n) => n.forward(&k)?,
        None => k.contiguous()?,
    };
    let (cos, sin) = (&t.cos, &t.sin);
    let (q, k) = match cfg.rope_layout {
        RopeLayout::Interleaved => (
            candle_nn::rotary_emb::rope_i(&q, cos, sin)?,
            candle_nn::rotary_emb::rope_i(&k, cos, sin)?,
        ),
        RopeLayout::Halves => (
            candle_nn::rotary_emb::rope(&q, cos, sin)?,
            candle_nn::rotary_emb::rope(&k, cos, sin)?,
        ),
    };
    // llama.cpp keeps the cache in f16 and runs QKᵀ and PV in f16 inputs
    // with f32 sums; rounding the same values the same way keeps greedy
    // decoding on llama.cpp's path (and halves the cache).
    let (k, v) = layer.cache.append(&f16_round(k)?, &f16_round(v)?)?;
    let total = start + seq;
    let first = t.first;
    let (k, v) = if first > 0 {
        (
            k.narrow(2, first, total - first)?,
            v.narrow(2, first, total - first)?,
        )
    } else {
        (k, v)
    };
    // Grouped-query attention without copying keys and values per head:
    // the query heads that share a key/value head are stacked along the
    // sequence axis (heads are grouped consecutively), one product per group.
    let n_rep = cfg.n_head / cfg.n_kv_head;
    let q = f16_round((q * cfg.attn_scale)?)?.contiguous()?.reshape((
        b,
        cfg.n_kv_head,
        n_rep * seq,
        hd,
    ))?;
    let k = k.contiguous()?;
    let v = v.contiguous()?;
    let mut scores = q.matmul(&k.t()?)?;
    if let Some(m) = &t.mask {
        scores = scores.broadcast_add(m)?;
    }
    let probs = f16_round(candle_nn::ops::softmax_last_dim(&scores)?)?;
    let out = probs
        .matmul(&v)?
        .reshape((b, cfg.n_head, seq, hd))?
        .transpose(1, 2)?
        .reshape((b, seq, cfg.n_head * hd))?;
    layer.wo.forward(&out)
}

/// GELU (tanh) as ggml computes it on the CPU: through a table indexed by
/// the f16 value of the input and holding f16 results, with the tails cut
/// at ±10.
/// Rounds to f16 and back, as llama.cpp's f16 cache and f16 attention
/// inputs do.
fn f16_round(t: Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::F16)?.to_dtype(DType::F32)
}

fn gelu_f16_table(x: &Tensor) -> candle_core::Result<Tensor> {
    let shape = x.dims().to_vec();
    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let out: Vec<f32> = v
        .into_iter()
        .map(|x| {
            if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x
            } else {
                let x = half::f16::from_f32(x).to_f32();
                let g = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh());
                half::f16::from_f32(g).to_f32()
            }
        })
        .collect();
    Tensor::from_vec(out, shape, &Device::Cpu)
}
