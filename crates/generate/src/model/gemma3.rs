//! The `gemma3` family: sandwich norms (before and after attention and MLP),
//! per-head RMSNorm of queries and keys, GELU (tanh) gating, embeddings
//! scaled by √d, and five sliding-window layers (local rotary base 10,000)
//! for every global one.
//!
//! GGUF files already carry Gemma's `1 + w` norm weights, so plain RMSNorm
//! applies. candle-transformers' own quantised Gemma 3 uses SiLU and sizes
//! its rotary tables for 131,072 positions; this one follows llama.cpp.

use super::decoder::{Activation, DecoderConfig, LayerAttention, RopeLayout};
use crate::gguf::GgufFile;
use crate::GenerateError;

/// One global-attention layer in every this many, as llama.cpp fixes it.
const SWA_PATTERN: usize = 6;
const LOCAL_ROPE_BASE: f32 = 10_000.0;

pub fn config(file: &GgufFile) -> Result<DecoderConfig, GenerateError> {
    let a = "gemma3";
    let s = super::shape(file, a)?;
    let (n_layer, n_embd, head_dim) = (s.n_layer, s.n_embd, s.head_dim);
    let window = file.opt_usize(&format!("{a}.attention.sliding_window"))?;
    let global_base = file
        .opt_f32(&format!("{a}.rope.freq_base"))?
        .unwrap_or(1_000_000.0);
    let local_base = file
        .opt_f32(&format!("{a}.rope.local_freq_base"))?
        .unwrap_or(LOCAL_ROPE_BASE);
    let global_scale = match file.opt_f32(&format!("{a}.rope.scaling.factor"))? {
        Some(f) if f > 0.0 => 1.0 / f,
        _ => 1.0,
    };
    let layers = (0..n_layer)
        .map(|i| {
            if i % SWA_PATTERN < SWA_PATTERN - 1 && window.is_some() {
                LayerAttention {
                    rope_base: local_base,
                    rope_scale: 1.0,
                    window,
                }
            } else {
                LayerAttention {
                    rope_base: global_base,
                    rope_scale: global_scale,
                    window: None,
                }
            }
        })
        .collect();
    Ok(DecoderConfig {
        n_layer,
        n_embd,
        n_head: s.n_head,
        n_kv_head: s.n_kv_head,
        head_dim,
        rms_eps: s.rms_eps,
        rope_layout: RopeLayout::Halves,
        activation: Activation::GeluTanh,
        embed_scale: Some((n_embd as f64).sqrt()),
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        qkv_bias: false,
        qk_norm: true,
        post_norms: true,
        layers,
        train_context: s.train_context,
    })
}
