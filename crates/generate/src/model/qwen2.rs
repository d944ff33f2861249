//! The `qwen2` family (Qwen 2 and 2.5, their Coder and Math fine-tunes):
//! llama's pre-norm blocks and SwiGLU, with biases on the query, key and
//! value projections, rotary embeddings on the two halves of each head
//! (NeoX order) with the base from the file (1,000,000 for Qwen 2.5),
//! grouped-query attention, and an output matrix of its own or tied to the
//! token embeddings, whichever the file holds.

use super::decoder::{Activation, DecoderConfig, LayerAttention, RopeLayout};
use crate::gguf::GgufFile;
use crate::GenerateError;

pub fn config(file: &GgufFile) -> Result<DecoderConfig, GenerateError> {
    qwen_config(file, "qwen2", true, false)
}

/// Qwen 2 and Qwen 3 differ in their metadata prefix, the projection
/// biases (2) and the per-head norms of queries and keys (3). YaRN
/// scaling (for contexts past 32k) is not implemented: a file that asks
/// for it runs unscaled, which is exact within the trained context.
pub(super) fn qwen_config(
    file: &GgufFile,
    a: &str,
    qkv_bias: bool,
    qk_norm: bool,
) -> Result<DecoderConfig, GenerateError> {
    let s = super::shape(file, a)?;
    let rope_base = file
        .opt_f32(&format!("{a}.rope.freq_base"))?
        .unwrap_or(1_000_000.0);
    Ok(DecoderConfig {
        n_layer: s.n_layer,
        n_embd: s.n_embd,
        n_head: s.n_head,
        n_kv_head: s.n_kv_head,
        head_dim: s.head_dim,
        rms_eps: s.rms_eps,
        rope_layout: RopeLayout::Halves,
        activation: Activation::Silu,
        embed_scale: None,
        attn_scale: 1.0 / (s.head_dim as f64).sqrt(),
        qkv_bias,
        qk_norm,
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
