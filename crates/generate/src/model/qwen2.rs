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
/// biases (2) and the per-head norms of queries and keys (3).
pub(super) fn qwen_config(
    file: &GgufFile,
    a: &str,
    qkv_bias: bool,
    qk_norm: bool,
) -> Result<DecoderConfig, GenerateError> {
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
    super::check_shape(file, n_head, n_kv_head, head_dim, rope_dims)?;
    let rope_base = file
        .opt_f32(&format!("{a}.rope.freq_base"))?
        .unwrap_or(1_000_000.0);
    // YaRN scaling (for contexts past 32k) is not implemented: a file that
    // asks for it runs unscaled, which is exact within the trained context.
    let rope_scale = match file.opt_f32(&format!("{a}.rope.scaling.factor"))? {
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
    };
    Ok(DecoderConfig {
        n_layer,
        n_embd,
        n_head,
        n_kv_head,
        head_dim,
        rms_eps: file.f32(&format!("{a}.attention.layer_norm_rms_epsilon"))? as f64,
        rope_layout: RopeLayout::Halves,
        activation: Activation::Silu,
        embed_scale: None,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        qkv_bias,
        qk_norm,
        post_norms: false,
        layers: vec![
            LayerAttention {
                rope_base,
                rope_scale,
                window: None,
            };
            n_layer
        ],
        train_context: file.usize(&format!("{a}.context_length"))?,
    })
}
