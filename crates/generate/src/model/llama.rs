//! The `llama` family (Llama 2 and 3, SmolLM, Mistral and their fine-tunes):
//! pre-norm blocks, SwiGLU, rotary embeddings on adjacent pairs.

use super::decoder::{Activation, DecoderConfig, LayerAttention, RopeLayout};
use crate::gguf::GgufFile;
use crate::GenerateError;

pub fn config(file: &GgufFile) -> Result<DecoderConfig, GenerateError> {
    let a = "llama";
    let n_layer = file.usize(&format!("{a}.block_count"))?;
    let n_embd = file.usize(&format!("{a}.embedding_length"))?;
    let n_head = file.usize(&format!("{a}.attention.head_count"))?;
    let n_kv_head = file
        .opt_usize(&format!("{a}.attention.head_count_kv"))?
        .unwrap_or(n_head);
    let head_dim = n_embd / n_head.max(1);
    let rope_dims = file
        .opt_usize(&format!("{a}.rope.dimension_count"))?
        .unwrap_or(head_dim);
    super::check_shape(file, n_head, n_kv_head, head_dim, rope_dims)?;
    let rope_base = file
        .opt_f32(&format!("{a}.rope.freq_base"))?
        .unwrap_or(10_000.0);
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
        rope_layout: RopeLayout::Interleaved,
        activation: Activation::Silu,
        embed_scale: None,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        qkv_bias: false,
        qk_norm: false,
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
