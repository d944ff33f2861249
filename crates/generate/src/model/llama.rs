//! The `llama` family (Llama 2 and 3, SmolLM, Mistral and their fine-tunes):
//! pre-norm blocks, SwiGLU, rotary embeddings on adjacent pairs.

use super::decoder::{Activation, DecoderConfig, LayerAttention, RopeLayout};
use crate::gguf::GgufFile;
use crate::GenerateError;

pub fn config(file: &GgufFile) -> Result<DecoderConfig, GenerateError> {
    let a = "llama";
    let s = super::shape(file, a)?;
    let rope_base = file
        .opt_f32(&format!("{a}.rope.freq_base"))?
        .unwrap_or(10_000.0);
    Ok(DecoderConfig {
        n_layer: s.n_layer,
        n_embd: s.n_embd,
        n_head: s.n_head,
        n_kv_head: s.n_kv_head,
        head_dim: s.head_dim,
        rms_eps: s.rms_eps,
        rope_layout: RopeLayout::Interleaved,
        activation: Activation::Silu,
        embed_scale: None,
        attn_scale: 1.0 / (s.head_dim as f64).sqrt(),
        qkv_bias: false,
        qk_norm: false,
        post_norms: false,
        layers: vec![
            LayerAttention {
                rope_base,
                rope_scale: super::linear_rope_scale(file, a)?,
                window: None,
            };
            s.n_layer
        ],
        train_context: s.train_context,
    })
}
