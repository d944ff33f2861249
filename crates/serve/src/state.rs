//! What every handler shares.

use std::sync::Arc;

use docent_journal::Journal;
use docent_rag::Engine;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::queue::Queue;

pub struct AppState {
    pub engine: Arc<Engine>,
    /// Where traces and conversations are kept. Answers are still served
    /// when a write to it fails (the failure is logged).
    pub journal: Arc<Journal>,
    pub queue: Arc<Queue>,
    pub metrics: Metrics,
    pub cfg: ServeConfig,
    /// The language model's name, as `/v1/models` lists it.
    pub model_id: String,
    /// The sentence encoder's name.
    pub encoder_id: String,
}

pub type Shared = Arc<AppState>;
