//! BERT's forward pass on `docent-kernels`, for BERT and XLM-RoBERTa.
//!
//! From safetensors, the weights of the six kinds of dense layers are
//! quantised to `Q8_0` at load; from an E5S1 file ([`crate::e5s1`]) they
//! stay in its `Q4_0` blocks, and so does the word embedding table, whose
//! rows are decoded as tokens need them. Either way the dense weights are
//! interleaved for the CPU's kernels at load, and activations are quantised
//! per 32 values before each product, as in the decoder. Everything else —
//! embeddings, layer norms, attention, GELU, pooling — stays in f32. The
//! texts of a batch are laid end to end, not padded: the dense layers see
//! one row per real token, and attention runs per text.
//!
//! Checked against sentence-transformers in `tests/encoder.rs` and by
//! `benches/embed_peer.py` (cosine of every embedding).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use docent_kernels::ops;
use docent_kernels::quant::{matmul_many, quantize_q8_0, Activations, Format, QMatrix};
use docent_kernels::Isa;
use rayon::prelude::*;
use serde::Deserialize;

use crate::e5s1::{E5s1, E5s1Error, E5s1Type};
use crate::EmbedError;

/// The fields of a BERT `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
    /// `bert`, `xlm-roberta`, …: RoBERTa models number positions from
    /// `pad_token_id + 1`.
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub pad_token_id: Option<usize>,
}

impl BertConfig {
    /// The row of the position table that position 0 reads.
    pub fn position_offset(&self) -> usize {
        match self.model_type.as_str() {
            "roberta" | "xlm-roberta" | "camembert" => self.pad_token_id.unwrap_or(1) + 1,
            _ => 0,
        }
    }
}

fn default_act() -> String {
    "gelu".into()
}

fn default_eps() -> f64 {
    1e-12
}

fn default_position() -> String {
    "absolute".into()
}

struct Linear {
    m: QMatrix,
    bias: Vec<f32>,
}

struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

/// The word embedding table.
enum Table {
    F32(Vec<f32>),
    /// Quantised rows, decoded one token at a time.
    Quant(QMatrix),
}

impl Table {
    fn row(&self, id: usize, h: usize, out: &mut [f32]) {
        match self {
            Table::F32(v) => out.copy_from_slice(&v[id * h..(id + 1) * h]),
            Table::Quant(m) => m.dequantize_row(id, out),
        }
    }
}

pub(crate) struct Bert {
    cfg: BertConfig,
    isa: Isa,
    word: Table,
    /// Positions from the first usable row (RoBERTa's offset taken out).
    pos: Vec<f32>,
    /// Positions a sequence may have.
    max_len: usize,
    /// Token type 0 (sentence-transformers encodes single texts).
    typ: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    tanh_gelu: bool,
}

struct Weights {
    path: String,
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Weights {
    fn get(&self, name: &str, len: usize) -> Result<Vec<f32>, EmbedError> {
        let invalid = |message: String| EmbedError::Invalid {
            path: self.path.clone(),
            message,
        };
        let full = format!("{}{name}", self.prefix);
        let t = self
            .tensors
            .get(&full)
            .ok_or_else(|| invalid(format!("tensor {full} is missing")))?;
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        if v.len() != len {
            return Err(invalid(format!(
                "tensor {full} has {} values, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    }

    fn linear(&self, name: &str, rows: usize, cols: usize, isa: Isa) -> Result<Linear, EmbedError> {
        let w = self.get(&format!("{name}.weight"), rows * cols)?;
        let m = QMatrix::new(name, Format::Q8_0, rows, cols, quantize_q8_0(&w)).map_err(|e| {
            EmbedError::Invalid {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(Linear {
            m: m.repacked(isa),
            bias: self.get(&format!("{name}.bias"), rows)?,
        })
    }

    fn norm(&self, name: &str, len: usize) -> Result<Norm, EmbedError> {
        // Older checkpoints call them gamma and beta.
        let w = self
            .get(&format!("{name}.weight"), len)
            .or_else(|_| self.get(&format!("{name}.gamma"), len))?;
        let b = self
            .get(&format!("{name}.bias"), len)
            .or_else(|_| self.get(&format!("{name}.beta"), len))?;
        Ok(Norm { w, b })
    }
}

impl Bert {
    pub(crate) fn load(weights: &Path, cfg: BertConfig, isa: Isa) -> Result<Bert, EmbedError> {
        let path = weights.display().to_string();
        let invalid = |message: String| EmbedError::Invalid {
            path: path.clone(),
            message,
        };
        let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
        if heads == 0 || !h.is_multiple_of(heads) || !h.is_multiple_of(32) {
            return Err(invalid(format!(
                "hidden size {h} with {heads} heads is not supported"
            )));
        }
        if !cfg.intermediate_size.is_multiple_of(32) {
            return Err(invalid(format!(
                "intermediate size {} is not a multiple of 32",
                cfg.intermediate_size
            )));
        }
        if cfg.position_embedding_type != "absolute" {
            return Err(invalid(format!(
                "{} position embeddings are not supported",
                cfg.position_embedding_type
            )));
        }
        let tanh_gelu = match cfg.hidden_act.as_str() {
            "gelu" => false,
            "gelu_new" | "gelu_pytorch_tanh" => true,
            other => return Err(invalid(format!("activation {other} is not supported"))),
        };
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)?;
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let w = Weights {
            path: path.clone(),
            tensors,
            prefix,
        };
        let word = Table::F32(w.get("embeddings.word_embeddings.weight", cfg.vocab_size * h)?);
        let offset = cfg.position_offset();
        if offset >= cfg.max_position_embeddings {
            return Err(invalid(format!(
                "the position offset {offset} leaves no positions"
            )));
        }
        let pos = w.get(
            "embeddings.position_embeddings.weight",
            cfg.max_position_embeddings * h,
        )?[offset * h..]
            .to_vec();
        let max_len = cfg.max_position_embeddings - offset;
        let typ_all = w
            .tensors
            .get(&format!("{prefix}embeddings.token_type_embeddings.weight"))
            .ok_or_else(|| invalid("token type embeddings are missing".into()))?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if typ_all.len() < h {
            return Err(invalid("token type embeddings are too short".into()));
        }
        let typ = typ_all[..h].to_vec();
        let emb_norm = w.norm("embeddings.LayerNorm", h)?;
        let ff = cfg.intermediate_size;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                q: w.linear(&format!("{p}.attention.self.query"), h, h, isa)?,
                k: w.linear(&format!("{p}.attention.self.key"), h, h, isa)?,
                v: w.linear(&format!("{p}.attention.self.value"), h, h, isa)?,
                o: w.linear(&format!("{p}.attention.output.dense"), h, h, isa)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                inter: w.linear(&format!("{p}.intermediate.dense"), ff, h, isa)?,
                out: w.linear(&format!("{p}.output.dense"), h, ff, isa)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Bert {
            cfg,
            isa,
            word,
            pos,
            max_len,
            typ,
            emb_norm,
            layers,
            tanh_gelu,
        })
    }

    /// The encoder of an E5S1 file (XLM-R, `Q4_0` weights, positions
    /// already from 0).
    pub(crate) fn load_e5s1(file: &E5s1, path: &str, isa: Isa) -> Result<Bert, EmbedError> {
        let invalid = |e: E5s1Error| EmbedError::Invalid {
            path: path.to_string(),
            message: e.to_string(),
        };
        let sh = file.shape;
        let (h, ff) = (sh.hidden, sh.ff);
        let q4 = |name: &str, rows: usize, cols: usize| -> Result<QMatrix, EmbedError> {
            let bytes = file
                .tensor(name, E5s1Type::Q4_0, rows * cols)
                .map_err(invalid)?;
            QMatrix::new(name, Format::Q4_0, rows, cols, bytes.to_vec()).map_err(|e| {
                EmbedError::Invalid {
                    path: path.to_string(),
                    message: e.to_string(),
                }
            })
        };
        let vector = |name: &str, len: usize| file.vector(name, len).map_err(invalid);
        let linear = |p: &str, rows: usize, cols: usize| -> Result<Linear, EmbedError> {
            Ok(Linear {
                m: q4(&format!("{p}.w"), rows, cols)?.repacked(isa),
                bias: vector(&format!("{p}.b"), rows)?,
            })
        };
        let norm = |p: &str| -> Result<Norm, EmbedError> {
            Ok(Norm {
                w: vector(&format!("{p}.w"), h)?,
                b: vector(&format!("{p}.b"), h)?,
            })
        };
        let mut layers = Vec::with_capacity(sh.layers);
        for i in 0..sh.layers {
            let p = format!("l{i}");
            layers.push(Layer {
                q: linear(&format!("{p}.q"), h, h)?,
                k: linear(&format!("{p}.k"), h, h)?,
                v: linear(&format!("{p}.v"), h, h)?,
                o: linear(&format!("{p}.ao"), h, h)?,
                attn_norm: norm(&format!("{p}.aln"))?,
                inter: linear(&format!("{p}.fi"), ff, h)?,
                out: linear(&format!("{p}.fo"), h, ff)?,
                out_norm: norm(&format!("{p}.oln"))?,
            });
        }
        let typ_values = file
            .tensor_values("emb.type")
            .filter(|n| *n >= h && n % h == 0)
            .ok_or_else(|| invalid(E5s1Error::Invalid("tensor emb.type is missing".into())))?;
        let typ = vector("emb.type", typ_values)?[..h].to_vec();
        let cfg = BertConfig {
            vocab_size: sh.vocab,
            hidden_size: h,
            num_hidden_layers: sh.layers,
            num_attention_heads: sh.heads,
            intermediate_size: ff,
            hidden_act: "gelu".into(),
            max_position_embeddings: sh.positions,
            layer_norm_eps: sh.eps as f64,
            position_embedding_type: "absolute".into(),
            model_type: "xlm-roberta".into(),
            pad_token_id: None,
        };
        Ok(Bert {
            word: Table::Quant(q4("emb.word", sh.vocab, h)?),
            pos: vector("emb.pos", sh.positions * h)?,
            max_len: sh.positions,
            typ,
            emb_norm: norm("emb.ln")?,
            layers,
            tanh_gelu: false,
            isa,
            cfg,
        })
    }

    /// Most tokens a sequence may have, special tokens included.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The last hidden states of every token of every sequence, one row of
    /// `hidden_size` per token, sequences one after another.
    pub(crate) fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<f32>, EmbedError> {
        if rayon::current_thread_index().is_some() {
            self.run(seqs)
        } else {
            // Run on a pool thread, so that each product shares out work
            // instead of waking the pool and parking this thread.
            rayon::scope(|_| self.run(seqs))
        }
    }

    fn run(&self, seqs: &[&[u32]]) -> Result<Vec<f32>, EmbedError> {
        let h = self.cfg.hidden_size;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let eps = self.cfg.layer_norm_eps as f32;
        let isa = self.isa;
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let mut starts = Vec::with_capacity(seqs.len());
        let mut x = vec![0f32; total * h];
        let mut row = 0;
        for seq in seqs {
            if seq.len() > self.max_len {
                return Err(EmbedError::Tokenizer(format!(
                    "{} tokens exceed the encoder's {} positions",
                    seq.len(),
                    self.max_len
                )));
            }
            starts.push(row);
            for (p, &id) in seq.iter().enumerate() {
                let id = id as usize;
                if id >= self.cfg.vocab_size {
                    return Err(EmbedError::Tokenizer(format!(
                        "token id {id} is outside the vocabulary"
                    )));
                }
                let out = &mut x[row * h..(row + 1) * h];
                self.word.row(id, h, out);
                let pv = &self.pos[p * h..(p + 1) * h];
                for ((o, &b), &c) in out.iter_mut().zip(pv).zip(&self.typ) {
                    *o += b + c;
                }
                row += 1;
            }
        }
        ops::layer_norm_in_place(&mut x, &self.emb_norm.w, &self.emb_norm.b, eps);
        let ff = self.cfg.intermediate_size;
        let mut acts = Activations::new();
        let (mut q, mut k, mut v) = (
            vec![0f32; total * h],
            vec![0f32; total * h],
            vec![0f32; total * h],
        );
        let mut attn = vec![0f32; total * h];
        let mut o = vec![0f32; total * h];
        let mut inter = vec![0f32; total * ff];
        let scale = 1.0 / (hd as f32).sqrt();
        for layer in &self.layers {
            acts.quantize(&x, h, layer.q.m.format(), isa);
            matmul_many(
                &mut [
                    (&layer.q.m, &mut q),
                    (&layer.k.m, &mut k),
                    (&layer.v.m, &mut v),
                ],
                &mut acts,
                isa,
            );
            ops::add_bias(&mut q, &layer.q.bias);
            ops::add_bias(&mut k, &layer.k.bias);
            ops::add_bias(&mut v, &layer.v.bias);
            // Attention per text and head, on gathered contiguous heads.
            let jobs: Vec<(usize, usize)> = (0..seqs.len())
                .flat_map(|s| (0..heads).map(move |hh| (s, hh)))
                .collect();
            let results: Vec<Vec<f32>> = jobs
                .par_iter()
                .map_init(Vec::new, |scratch, &(s, hh)| {
                    let (start, n) = (starts[s], seqs[s].len());
                    let mut qkv = vec![0f32; 4 * n * hd];
                    let (qh, rest) = qkv.split_at_mut(n * hd);
                    let (kh, rest) = rest.split_at_mut(n * hd);
                    let (vh, out) = rest.split_at_mut(n * hd);
                    for t in 0..n {
                        let at = (start + t) * h + hh * hd;
                        qh[t * hd..(t + 1) * hd].copy_from_slice(&q[at..at + hd]);
                        kh[t * hd..(t + 1) * hd].copy_from_slice(&k[at..at + hd]);
                        vh[t * hd..(t + 1) * hd].copy_from_slice(&v[at..at + hd]);
                    }
                    ops::attention_f32(isa, qh, kh, vh, hd, scale, scratch, out);
                    // Keep only the output, the last quarter.
                    qkv.drain(..3 * n * hd);
                    qkv
                })
                .collect();
            for (&(s, hh), out) in jobs.iter().zip(results) {
                for t in 0..seqs[s].len() {
                    let at = (starts[s] + t) * h + hh * hd;
                    attn[at..at + hd].copy_from_slice(&out[t * hd..(t + 1) * hd]);
                }
            }
            layer.o.m.matmul(&attn, &mut acts, &mut o, isa);
            ops::add_bias(&mut o, &layer.o.bias);
            ops::add_in_place(&mut x, &o);
            ops::layer_norm_in_place(&mut x, &layer.attn_norm.w, &layer.attn_norm.b, eps);
            layer.inter.m.matmul(&x, &mut acts, &mut inter, isa);
            ops::add_bias(&mut inter, &layer.inter.bias);
            if self.tanh_gelu {
                for g in inter.iter_mut() {
                    let y = *g;
                    *g = 0.5 * y * (1.0 + (0.797_884_6 * y * (1.0 + 0.044_715 * y * y)).tanh());
                }
            } else {
                ops::gelu_erf_in_place(&mut inter);
            }
            layer.out.m.matmul(&inter, &mut acts, &mut o, isa);
            ops::add_bias(&mut o, &layer.out.bias);
            ops::add_in_place(&mut x, &o);
            ops::layer_norm_in_place(&mut x, &layer.out_norm.w, &layer.out_norm.b, eps);
        }
        Ok(x)
    }
}
