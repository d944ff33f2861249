//! What every handler shares.

use std::sync::Arc;

use docent_journal::Journal;
use docent_rag::Engine;

use crate::config::ServeConfig;
use crate::error::ApiError;
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
    /// Bounds the retrieval-only work (search, embeddings, the journal)
    /// running on the blocking pool at once: a thousand searches at once
    /// would otherwise start hundreds of threads to share the same cores.
    pub blocking_slots: tokio::sync::Semaphore,
}

impl AppState {
    /// Runs `f` on the blocking pool, a bounded number at a time; callers
    /// beyond the bound wait without holding a thread.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let unavailable = || {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the request stopped unexpectedly; try again",
            )
        };
        let _slot = self
            .blocking_slots
            .acquire()
            .await
            .map_err(|_| unavailable())?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| unavailable())
    }
}

pub type Shared = Arc<AppState>;
