//! A decoder-only transformer over quantised GGUF weights, written here so
//! that each family's details (rotary layout, normalisation placement,
//! activation, sliding windows, embedding scale) match llama.cpp's, which is
//! the reference docent is checked against.
//!
//! The families (`llama.rs`, `gemma3.rs`, `qwen2.rs`, `qwen3.rs`) only read their metadata into
//! a [`DecoderConfig`]; the computation is shared, and every operation in
//! it is a kernel of `docent-kernels` on buffers allocated once at load:
//! a step allocates only the logits it returns.

use std::collections::HashMap;

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use half::f16;
use rayon::prelude::*;

use docent_kernels::ops;
pub use docent_kernels::ops::RopeLayout;
use docent_kernels::quant::{matmul_many, Activations, Format, QMatrix};
use docent_kernels::Isa;

use crate::gguf::GgufFile;
use crate::layouts::LayoutStore;
use crate::GenerateError;

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
    /// Biases on the query, key and value projections (Qwen 2).
    pub qkv_bias: bool,
    /// Norms after attention and after the MLP (Gemma 2/3).
    pub post_norms: bool,
    pub layers: Vec<LayerAttention>,
    /// The context the model was trained for.
    pub train_context: usize,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    /// Query, key and value biases, when the family has them.
    qkv_bias: Option<[Vec<f32>; 3]>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
    post_ffn_norm: Option<Vec<f32>>,
    window: Option<usize>,
    /// Index into [`Decoder::rope`].
    rope: usize,
    /// Keys and values, `[kv head][position][head_dim]`, in f16 as
    /// llama.cpp keeps them.
    k_cache: Vec<f16>,
    v_cache: Vec<f16>,
}

/// cos/sin tables for one rotary setting, every position of the context.
struct Rope {
    base: f32,
    scale: f32,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// Buffers reused by every step.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    acts: Activations,
}

/// The loaded model and its key/value cache.
pub struct Decoder {
    cfg: DecoderConfig,
    isa: Isa,
    embeddings: QMatrix,
    /// `None`: the output projection is the embedding matrix.
    output: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    rope: Vec<Rope>,
    /// Positions already in the cache.
    pos: usize,
    context: usize,
    scratch: Scratch,
    /// The last position's residual stream after each layer of the last
    /// step (layers × width): what a probe reads.
    hidden: Vec<f32>,
}

fn format_of(name: &str, t: GgmlDType) -> Result<Format, GenerateError> {
    Ok(match t {
        GgmlDType::F32 => Format::F32,
        GgmlDType::F16 => Format::F16,
        GgmlDType::Q4_0 => Format::Q4_0,
        GgmlDType::Q4_1 => Format::Q4_1,
        GgmlDType::Q5_0 => Format::Q5_0,
        GgmlDType::Q5_1 => Format::Q5_1,
        GgmlDType::Q8_0 => Format::Q8_0,
        GgmlDType::Q4K => Format::Q4K,
        GgmlDType::Q5K => Format::Q5K,
        GgmlDType::Q6K => Format::Q6K,
        other => {
            return Err(GenerateError::Config(format!(
                "tensor {name} is stored as {other:?}, a format docent cannot multiply yet"
            )))
        }
    })
}

/// A weight matrix: laid out for the kernels ([`Use::Product`]) straight
/// from the mapped file, or copied as stored ([`Use::Lookup`]).
fn qmatrix(file: &GgufFile, name: &str, usage: Use, isa: Isa) -> Result<QMatrix, GenerateError> {
    let (dtype, dims, data) = file.tensor_slice(name)?;
    let fmt = format_of(name, dtype)?;
    let &[rows, cols] = dims.as_slice() else {
        return Err(GenerateError::BadModelFile {
            path: file.path().to_path_buf(),
            reason: format!("tensor {name} has shape {dims:?}, not a matrix"),
        });
    };
    let m = match usage {
        Use::Product => QMatrix::repacked_from(name, fmt, rows, cols, data, isa),
        Use::Lookup => QMatrix::new(name, fmt, rows, cols, data.to_vec()),
    };
    file.release(data);
    m.map_err(|e| GenerateError::Config(e.to_string()))
}

/// What [`load_matrices`] does with a matrix once read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Multiplied: laid out for the kernels (see [`QMatrix::repacked`]).
    Product,
    /// Only rows looked up: kept as stored.
    Lookup,
}

/// Reads the named matrices laid out for the kernels: from `layouts` when
/// it holds them for this file, else built from the file and saved there.
///
/// Building runs in parallel: on one thread it took about a second for
/// Qwen2.5 0.5B. The rows are read from the mapped file, whose pages each
/// matrix releases once laid out, so the load peaks at the loaded model's
/// size plus a matrix per thread.
fn load_matrices(
    file: &GgufFile,
    names: Vec<(String, Use)>,
    isa: Isa,
    layouts: Option<&LayoutStore>,
) -> Result<HashMap<String, QMatrix>, GenerateError> {
    let listed: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
    if let Some(mats) = layouts.and_then(|l| l.load(file, &listed, isa)) {
        return Ok(mats);
    }
    let mats = names
        .into_par_iter()
        .map(|(name, usage)| Ok((name.clone(), qmatrix(file, &name, usage, isa)?)))
        .collect::<Result<HashMap<_, _>, GenerateError>>()?;
    if let Some(l) = layouts {
        l.save(file, isa, &mats);
    }
    Ok(mats)
}

/// Takes a matrix [`load_matrices`] read.
fn take(mats: &mut HashMap<String, QMatrix>, name: &str) -> QMatrix {
    mats.remove(name)
        .unwrap_or_else(|| unreachable!("{name} was listed for load_matrices"))
}

/// Hands the file's copies of repacked matrices back to the system.
/// glibc keeps memory freed by rayon's threads in their own arenas, and
/// after its first large free it serves even large buffers from them, so
/// without this a model stayed a third larger in memory than its weights
/// (Qwen2.5 0.5B: 920 MB resident for 610 MB of weights and cache).
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn vector(file: &mut GgufFile, name: &str, len: usize) -> Result<Vec<f32>, GenerateError> {
    let v: Vec<f32> = file
        .tensor(name)?
        .dequantize(&Device::Cpu)?
        .flatten_all()?
        .to_vec1()?;
    if v.len() != len {
        return Err(GenerateError::BadModelFile {
            path: file.path().to_path_buf(),
            reason: format!("{name} has {} values, expected {len}", v.len()),
        });
    }
    Ok(v)
}

impl Decoder {
    /// Loads the weights named as llama.cpp names them, with room for
    /// `context` positions in the cache.
    pub fn load(
        file: &mut GgufFile,
        cfg: DecoderConfig,
        context: usize,
        layouts: Option<&LayoutStore>,
    ) -> Result<Self, GenerateError> {
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let isa = Isa::detect();
        let tied = !file.has_tensor("output.weight");
        let mut names = vec![(
            "token_embd.weight".to_string(),
            // Token embeddings only serve lookups when the model has its
            // own output matrix: repacking them would only cost memory.
            if tied { Use::Product } else { Use::Lookup },
        )];
        if !tied {
            names.push(("output.weight".to_string(), Use::Product));
        }
        for i in 0..cfg.n_layer {
            for m in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ] {
                names.push((format!("blk.{i}.{m}.weight"), Use::Product));
            }
        }
        let mut mats = load_matrices(file, names, isa, layouts)?;
        release_freed_memory();
        let embeddings = take(&mut mats, "token_embd.weight");
        if embeddings.cols() != d {
            return Err(GenerateError::BadModelFile {
                path: file.path().to_path_buf(),
                reason: format!("token embeddings are {} wide, not {d}", embeddings.cols()),
            });
        }
        let output = (!tied).then(|| take(&mut mats, "output.weight"));
        let norm = vector(file, "output_norm.weight", d)?;
        let mut rope: Vec<Rope> = Vec::new();
        let mut layers = Vec::with_capacity(cfg.n_layer);
        let kv_len = cfg.n_kv_head * context * hd;
        for i in 0..cfg.n_layer {
            let p = format!("blk.{i}");
            let a = cfg.layers[i];
            let rope_at = match rope
                .iter()
                .position(|r| r.base == a.rope_base && r.scale == a.rope_scale)
            {
                Some(at) => at,
                None => {
                    let (cos, sin) = ops::rope_tables(hd, a.rope_base, a.rope_scale, context);
                    rope.push(Rope {
                        base: a.rope_base,
                        scale: a.rope_scale,
                        cos,
                        sin,
                    });
                    rope.len() - 1
                }
            };
            let qkv_bias = if cfg.qkv_bias {
                let (nq, nkv) = (cfg.n_head * hd, cfg.n_kv_head * hd);
                Some([
                    vector(file, &format!("{p}.attn_q.bias"), nq)?,
                    vector(file, &format!("{p}.attn_k.bias"), nkv)?,
                    vector(file, &format!("{p}.attn_v.bias"), nkv)?,
                ])
            } else {
                None
            };
            let mut opt = |on: bool, n: &str, len: usize| -> Result<_, GenerateError> {
                Ok(if on {
                    Some(vector(file, &format!("{p}.{n}.weight"), len)?)
                } else {
                    None
                })
            };
            let q_norm = opt(cfg.qk_norm, "attn_q_norm", hd)?;
            let k_norm = opt(cfg.qk_norm, "attn_k_norm", hd)?;
            let post_attn_norm = opt(cfg.post_norms, "post_attention_norm", d)?;
            let post_ffn_norm = opt(cfg.post_norms, "post_ffw_norm", d)?;
            let layer = Layer {
                attn_norm: vector(file, &format!("{p}.attn_norm.weight"), d)?,
                wq: take(&mut mats, &format!("{p}.attn_q.weight")),
                wk: take(&mut mats, &format!("{p}.attn_k.weight")),
                wv: take(&mut mats, &format!("{p}.attn_v.weight")),
                wo: take(&mut mats, &format!("{p}.attn_output.weight")),
                qkv_bias,
                q_norm,
                k_norm,
                post_attn_norm,
                ffn_norm: vector(file, &format!("{p}.ffn_norm.weight"), d)?,
                gate: take(&mut mats, &format!("{p}.ffn_gate.weight")),
                up: take(&mut mats, &format!("{p}.ffn_up.weight")),
                down: take(&mut mats, &format!("{p}.ffn_down.weight")),
                post_ffn_norm,
                window: a.window,
                rope: rope_at,
                k_cache: vec![f16::ZERO; kv_len],
                v_cache: vec![f16::ZERO; kv_len],
            };
            let shapes = [
                ("attn_q", &layer.wq, cfg.n_head * hd, d),
                ("attn_k", &layer.wk, cfg.n_kv_head * hd, d),
                ("attn_v", &layer.wv, cfg.n_kv_head * hd, d),
                ("attn_output", &layer.wo, d, cfg.n_head * hd),
                ("ffn_up", &layer.up, layer.gate.rows(), d),
                ("ffn_down", &layer.down, d, layer.gate.rows()),
            ];
            for (n, m, rows, cols) in shapes {
                if m.rows() != rows || m.cols() != cols {
                    return Err(GenerateError::BadModelFile {
                        path: file.path().to_path_buf(),
                        reason: format!(
                            "{p}.{n} is {} × {}, expected {rows} × {cols}",
                            m.rows(),
                            m.cols()
                        ),
                    });
                }
            }
            layers.push(layer);
        }
        Ok(Self {
            cfg,
            isa,
            embeddings,
            output,
            norm,
            layers,
            rope,
            pos: 0,
            context,
            scratch: Scratch::default(),
            hidden: Vec::new(),
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
    }

    /// The last position's residual stream after each layer of the last
    /// step, one `n_embd`-long row per layer.
    pub fn hidden(&self) -> &[f32] {
        &self.hidden
    }

    /// The layers and the width of [`Decoder::hidden`].
    pub fn hidden_shape(&self) -> (usize, usize) {
        (self.layers.len(), self.cfg.n_embd)
    }

    /// Forgets the positions from `pos` on (the cache keeps the earlier
    /// ones; later steps overwrite the rest).
    pub fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Runs `ids` (the next tokens after those already seen) and returns the
    /// logits that predict the token after the last one.
    ///
    /// The step runs on a thread of rayon's pool: called from outside the
    /// pool, each of its parallel products would otherwise wake the pool
    /// and park the caller, a cost paid hundreds of times per token.
    pub fn forward(&mut self, ids: &[u32]) -> Result<Vec<f32>, GenerateError> {
        self.forward_rows(ids, 1)
    }

    /// Runs `ids` like [`Decoder::forward`] and returns the logits after
    /// each of the last `rows` of them, one row after another (`rows` ×
    /// the vocabulary): what the model expected at each of those places,
    /// for scoring a text the model reads rather than writes.
    pub fn forward_rows(&mut self, ids: &[u32], rows: usize) -> Result<Vec<f32>, GenerateError> {
        if rayon::current_thread_index().is_some() {
            self.step(ids, rows)
        } else {
            rayon::scope(|_| self.step(ids, rows))
        }
    }

    fn step(&mut self, ids: &[u32], rows: usize) -> Result<Vec<f32>, GenerateError> {
        let seq = ids.len();
        if seq == 0 {
            return Err(GenerateError::Config("no tokens to run".into()));
        }
        if self.pos + seq > self.context {
            return Err(GenerateError::ContextFull {
                needed: self.pos + seq,
                context: self.context,
            });
        }
        let vocab = self.embeddings.rows();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(GenerateError::Config(format!(
                "token id {bad} is outside the vocabulary ({vocab})"
            )));
        }
        let cfg = &self.cfg;
        let isa = self.isa;
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let (nq, nkv) = (cfg.n_head * hd, cfg.n_kv_head * hd);
        let eps = cfg.rms_eps as f32;
        let s = &mut self.scratch;
        s.x.resize(seq * d, 0.0);
        for (row, &id) in s.x.chunks_exact_mut(d).zip(ids) {
            self.embeddings.dequantize_row(id as usize, row);
            if let Some(scale) = cfg.embed_scale {
                ops::scale_in_place(row, scale as f32);
            }
        }
        let start = self.pos;
        let total = start + seq;
        s.xn.resize(seq * d, 0.0);
        s.q.resize(seq * nq, 0.0);
        s.k.resize(seq * nkv, 0.0);
        s.v.resize(seq * nkv, 0.0);
        s.attn.resize(seq * nq, 0.0);
        s.o.resize(seq * d, 0.0);
        self.hidden.resize(self.layers.len() * d, 0.0);
        for (li, layer) in self.layers.iter_mut().enumerate() {
            ops::rms_norm(&s.x, &layer.attn_norm, eps, &mut s.xn);
            matmuls(
                &mut [
                    (&layer.wq, &mut s.q),
                    (&layer.wk, &mut s.k),
                    (&layer.wv, &mut s.v),
                ],
                &s.xn,
                &mut s.acts,
                isa,
            );
            if let Some([bq, bk, bv]) = &layer.qkv_bias {
                ops::add_bias(&mut s.q, bq);
                ops::add_bias(&mut s.k, bk);
                ops::add_bias(&mut s.v, bv);
            }
            if let Some(w) = &layer.q_norm {
                ops::rms_norm_in_place(&mut s.q, w, eps);
            }
            if let Some(w) = &layer.k_norm {
                ops::rms_norm_in_place(&mut s.k, w, eps);
            }
            let rope = &self.rope[layer.rope];
            let half = hd / 2;
            for i in 0..seq {
                let p = start + i;
                let (cos, sin) = (
                    &rope.cos[p * half..(p + 1) * half],
                    &rope.sin[p * half..(p + 1) * half],
                );
                ops::rope(
                    &mut s.q[i * nq..(i + 1) * nq],
                    hd,
                    cos,
                    sin,
                    cfg.rope_layout,
                );
                ops::rope(
                    &mut s.k[i * nkv..(i + 1) * nkv],
                    hd,
                    cos,
                    sin,
                    cfg.rope_layout,
                );
            }
            // llama.cpp keeps the cache in f16 and runs QKᵀ and PV on f16
            // inputs with f32 sums; rounding the same values the same way
            // keeps greedy decoding on llama.cpp's path.
            ops::scale_in_place(&mut s.q, cfg.attn_scale as f32);
            ops::round_f16(&mut s.q);
            for i in 0..seq {
                for g in 0..cfg.n_kv_head {
                    let at = (g * self.context + start + i) * hd;
                    let from = i * nkv + g * hd;
                    ops::f32_to_f16(&s.k[from..from + hd], &mut layer.k_cache[at..at + hd]);
                    ops::f32_to_f16(&s.v[from..from + hd], &mut layer.v_cache[at..at + hd]);
                }
            }
            // Keys some query of this step can see.
            let first = match layer.window {
                Some(w) => (start + 1).saturating_sub(w),
                None => 0,
            };
            let n = total - first;
            let n_rep = cfg.n_head / cfg.n_kv_head;
            let (q, window) = (&s.q, layer.window);
            let (kc, vc) = (&layer.k_cache, &layer.v_cache);
            let head = |(t, out): (usize, &mut [f32]), scores: &mut Vec<f32>| {
                let (i, h) = (t / cfg.n_head, t % cfg.n_head);
                let g = h / n_rep;
                let p = start + i;
                let lo = match window {
                    Some(w) => (p + 1).saturating_sub(w),
                    None => 0,
                }
                .max(first);
                let base = g * self.context * hd;
                let (a, b) = (lo * hd, (p + 1) * hd);
                scores.resize(n, 0.0);
                ops::attend(
                    isa,
                    &q[i * nq + h * hd..i * nq + (h + 1) * hd],
                    &kc[base + a..base + b],
                    &vc[base + a..base + b],
                    scores,
                    out,
                );
            };
            if seq * cfg.n_head > 1 && n * seq >= 256 {
                s.attn
                    .par_chunks_mut(hd)
                    .enumerate()
                    .for_each_init(Vec::new, |scores, t| head(t, scores));
            } else {
                let mut scores = Vec::new();
                for t in s.attn.chunks_mut(hd).enumerate() {
                    head(t, &mut scores);
                }
            }
            layer.wo.matmul(&s.attn, &mut s.acts, &mut s.o, isa);
            if let Some(w) = &layer.post_attn_norm {
                ops::rms_norm_in_place(&mut s.o, w, eps);
            }
            ops::add_in_place(&mut s.x, &s.o);

            ops::rms_norm(&s.x, &layer.ffn_norm, eps, &mut s.xn);
            let ff = layer.gate.rows();
            s.gate.resize(seq * ff, 0.0);
            s.up.resize(seq * ff, 0.0);
            matmuls(
                &mut [(&layer.gate, &mut s.gate), (&layer.up, &mut s.up)],
                &s.xn,
                &mut s.acts,
                isa,
            );
            match cfg.activation {
                Activation::Silu => ops::silu_mul(&mut s.gate, &s.up),
                Activation::GeluTanh => ops::gelu_mul(&mut s.gate, &s.up),
            }
            layer.down.matmul(&s.gate, &mut s.acts, &mut s.o, isa);
            if let Some(w) = &layer.post_ffn_norm {
                ops::rms_norm_in_place(&mut s.o, w, eps);
            }
            ops::add_in_place(&mut s.x, &s.o);
            self.hidden[li * d..(li + 1) * d].copy_from_slice(&s.x[(seq - 1) * d..seq * d]);
        }
        self.pos = total;
        let rows = rows.clamp(1, seq);
        let out = self.output.as_ref().unwrap_or(&self.embeddings);
        let vocab = out.rows();
        let mut logits = vec![0f32; rows * vocab];
        let mut normed = vec![0f32; d];
        for (r, row) in logits.chunks_mut(vocab).enumerate() {
            let at = seq - rows + r;
            ops::rms_norm(&s.x[at * d..(at + 1) * d], &self.norm, eps, &mut normed);
            out.matmul(&normed, &mut s.acts, row, isa);
        }
        Ok(logits)
    }
}

/// `out = x · mᵀ` for each `(m, out)`: in one parallel pass when all the
/// matrices pair with the same activation quantisation, else one by one.
fn matmuls(products: &mut [(&QMatrix, &mut [f32])], x: &[f32], acts: &mut Activations, isa: Isa) {
    let (m0, _) = &products[0];
    let n = x.len() / m0.cols();
    acts.quantize(x, m0.cols(), m0.format(), isa);
    if products
        .iter()
        .all(|(m, _)| acts.suits(m.format(), m.cols(), n))
    {
        matmul_many(products, acts, isa);
    } else {
        for (m, out) in products.iter_mut() {
            m.matmul(x, acts, out, isa);
        }
    }
}
