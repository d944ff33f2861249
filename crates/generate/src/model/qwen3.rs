//! The `qwen3` family: Qwen 2's layout without the projection biases, with
//! a per-head RMSNorm of queries and keys before the rotary embedding, and a
//! head size of its own (`key_length`, not `embedding_length / heads`).

use super::decoder::DecoderConfig;
use crate::gguf::GgufFile;
use crate::GenerateError;

pub fn config(file: &GgufFile) -> Result<DecoderConfig, GenerateError> {
    super::qwen2::qwen_config(file, "qwen3", false, true)
}
