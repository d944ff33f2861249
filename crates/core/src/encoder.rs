use serde::{Deserialize, Serialize};

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the token vectors, padding excluded.
    Mean,
    /// The first (`[CLS]`) token's vector.
    Cls,
    /// Element-wise maximum over tokens.
    Max,
    /// Sum of the token vectors divided by the square root of their count.
    MeanSqrtLen,
}

/// What an index must know of the encoder that made its vectors: an index
/// only answers queries embedded by the same encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// Hugging Face repository id.
    pub id: String,
    pub revision: String,
    pub dim: usize,
    pub pooling: Pooling,
    /// Whether the model itself L2-normalises its output.
    pub normalize: bool,
    /// Most tokens the encoder reads, special tokens included.
    pub max_seq_len: usize,
}

impl EncoderInfo {
    /// A one-line description for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}@{} ({} dimensions, {:?} pooling{}, {} tokens)",
            self.id,
            &self.revision[..self.revision.len().min(12)],
            self.dim,
            self.pooling,
            if self.normalize { ", normalised" } else { "" },
            self.max_seq_len
        )
    }
}
