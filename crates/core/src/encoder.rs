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

/// Retrieval settings that depend on the encoder's similarity scale: each
/// encoder has its own, calibrated on Korean and English questions
/// (`scripts/calibrate_min_score.py`) and recorded with the index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalSettings {
    /// The cosine similarity below which a chunk is not given to the
    /// model (with none left, the question is declined), for a question in
    /// Latin script...
    pub min_score_latin: f32,
    /// ... and for one in Hangul, Han or kana (an encoder's cosines need not
    /// run on the same scale in both); mixed scripts in proportion.
    pub min_score_cjk: f32,
    /// The weight of the dense ranking in hybrid search for a question in
    /// Latin script (the lexical ranking has the rest)...
    pub dense_weight_latin: f32,
    /// ... and for one in Hangul, Han or kana; mixed scripts in proportion.
    pub dense_weight_cjk: f32,
    /// The cosine between an answer sentence and a source sentence in
    /// another script at or above which the grounding check takes the one
    /// for a translation of the other; `None` for an encoder that does not
    /// place languages side by side (and for indexes recorded before).
    #[serde(default)]
    pub min_translation_similarity: Option<f32>,
    /// The cosine a chunk in another script than the question (Korean
    /// question, English chunk, or the other way round) lets the question
    /// through the retrieval gate at: an encoder puts a question and a
    /// passage in two languages less close than in one. `None`: only the
    /// thresholds above.
    #[serde(default)]
    pub min_score_across: Option<f32>,
    /// How far a question is moved along the encoder's language direction
    /// (the index's `language_direction`) to search the chunks in the
    /// other of docent's two languages: an encoder puts a question nearer
    /// to chunks in its own language on a neighbouring subject than to the
    /// other language's chunk that answers it. `None`: not searched.
    #[serde(default)]
    pub language_shift: Option<f32>,
}

impl Default for RetrievalSettings {
    /// all-MiniLM-L6-v2's, which every index made before the settings were
    /// recorded was built with.
    fn default() -> Self {
        RetrievalSettings {
            min_score_latin: 0.40,
            min_score_cjk: 0.40,
            dense_weight_latin: 0.5,
            dense_weight_cjk: 0.0,
            min_translation_similarity: None,
            min_score_across: None,
            language_shift: None,
        }
    }
}

impl RetrievalSettings {
    /// The threshold for `query`, by its script.
    pub fn min_score(&self, query: &str) -> f32 {
        let cjk = crate::lexical::cjk_share(query);
        self.min_score_latin * (1.0 - cjk) + self.min_score_cjk * cjk
    }

    /// The dense ranking's weight for `query`, by its script.
    pub fn dense_weight(&self, query: &str) -> f32 {
        let cjk = crate::lexical::cjk_share(query);
        self.dense_weight_latin * (1.0 - cjk) + self.dense_weight_cjk * cjk
    }
}

/// What an index must know of the encoder that made its vectors: an index
/// only answers queries embedded by the same encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Put before a question (E5: `"query: "`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_prefix: String,
    /// Put before a passage (E5: `"passage: "`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub passage_prefix: String,
    /// Not a property of the vectors: [`EncoderInfo::same_vectors`] leaves
    /// it out.
    #[serde(default)]
    pub retrieval: RetrievalSettings,
}

impl EncoderInfo {
    /// Whether two encoders make the same vectors (their retrieval
    /// settings may differ).
    pub fn same_vectors(&self, other: &EncoderInfo) -> bool {
        EncoderInfo {
            retrieval: other.retrieval,
            ..self.clone()
        } == *other
    }

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
