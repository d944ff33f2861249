use docent_core::{ChunkConfig, EncoderInfo};
use serde::{Deserialize, Serialize};

/// Version of the on-disk format this docent writes and reads.
/// 2 added the lexical (FTS5) table, 3 its vocabulary table, 4 the removed
/// ids, the store checksum and incremental graph updates.
pub const FORMAT_VERSION: u32 = 4;

/// Parameters of the HNSW graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours per node and layer (hnsw_rs's `max_nb_connection`; at most 256).
    pub m: usize,
    pub ef_construction: usize,
    /// Default search breadth; a query may ask for more.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// What an index knows of how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format: u32,
    pub encoder: EncoderInfo,
    pub chunking: ChunkConfig,
    /// [`docent_core::CHUNKER_VERSION`] of the chunks; 0 in indexes built
    /// before it was recorded.
    #[serde(default)]
    pub chunker: u32,
    pub hnsw: HnswParams,
    /// The indexed folder, as given to `docent index`, made absolute.
    pub root: String,
    pub docent_version: String,
    /// The encoder's language direction, from English towards Korean: the
    /// mean vector of Korean sentences minus that of their English
    /// translations (`docent_rag::shift`), computed when the index is
    /// built by an encoder with a `language_shift`. `None` in indexes
    /// built before, until their next `docent index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_direction: Option<Vec<f32>>,
}

/// One indexed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Relative to the indexed folder, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// `text`, `markdown`, `html` or `pdf`.
    pub kind: String,
    pub chunks: u32,
}
