//! `docent serve`: the answering engine (`docent-rag`) on the network.
//!
//! The server is a front end like the CLI: it turns requests into the
//! engine's configuration and the engine's answers into responses, and
//! owns no retrieval, prompt or generation logic. It speaks the APIs that
//! existing clients already use:
//!
//! * **OpenAI** (`openai.rs`): `POST /v1/chat/completions`, whole or
//!   streamed as server-sent events, with the citations as `[n]` marks and
//!   a `docent` field (sources, each sentence's support, the trace id);
//!   `GET /v1/models`; `POST /v1/embeddings` with the index's encoder.
//! * **LangServe** (`langserve.rs`): the `ask` chain's `invoke`, `batch`,
//!   `stream` (`metadata`, `data`, `end` events), `input_schema` and
//!   `output_schema`, as `RemoteRunnable` calls them.
//! * **docent's own** (`routes.rs`): `POST /search` (retrieval only),
//!   `GET /chunks/{id}`, `/traces`, `/traces/{id}` and
//!   `POST /traces/{id}/rating`, `/conversations`, `/health`, `/metrics`
//!   (Prometheus), `/openapi.json`, and the web page at `/`
//!   (`assets/index.html`, served from the binary).
//!
//! # Invariants
//!
//! * **Generation is admitted, never piled up** (`queue.rs`): a bounded
//!   number of answers run, a bounded number wait, and a request beyond
//!   them gets 429 with `Retry-After`. Retrieval-only requests (search,
//!   embeddings, chunks, traces) never pass through the queue, so they
//!   never wait behind generation.
//! * **A client that leaves cancels its answer** (`run.rs`): the answer
//!   streams through a channel whose receiver is the response; when the
//!   connection drops, so does the receiver, and the engine's callback
//!   stops generation at the next token, or the request leaves the queue.
//! * **No request names a file.** Documents are shown by chunk id, from
//!   the index; paths in responses are labels, never inputs.
//! * **Every bad request is a 4xx with a JSON message** (`error.rs`),
//!   including malformed JSON, oversized bodies, unknown routes and
//!   methods; failures of the index or the model are 503. Nothing a client
//!   sends is meant to produce a 500.
//! * **Off loopback, a token is required** (`config.rs`), compared in
//!   constant time (`middleware.rs`).
//! * Every answer's trace is kept in the journal (`docent-journal`), as the
//!   CLI keeps its own; a failed write is logged, not fatal.
//! * A new index generation is picked up by the next request (the
//!   engine's own check), so `docent index` or `--watch` never needs a
//!   restart.

mod config;
mod error;
mod langserve;
mod metrics;
mod middleware;
mod openai;
mod queue;
mod routes;
mod run;
mod state;
mod view;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use docent_journal::Journal;
use docent_rag::Engine;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

pub use config::{Limits, QueueConfig, ServeConfig};
pub use error::ApiError;
pub use state::AppState;

/// The application: every route with its layers, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.cfg.limits;
    Router::new()
        .route("/", get(routes::page))
        .route("/openapi.json", get(routes::openapi))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/ask/invoke", post(langserve::invoke))
        .route("/ask/batch", post(langserve::batch))
        .route("/ask/stream", post(langserve::stream))
        .route("/ask/input_schema", get(langserve::input_schema))
        .route("/ask/output_schema", get(langserve::output_schema))
        .route("/search", post(routes::search))
        .route("/chunks/{id}", get(routes::chunk))
        .route("/traces", get(routes::traces))
        .route("/traces/{id}", get(routes::trace))
        .route("/traces/{id}/rating", post(routes::rate))
        .route("/conversations", get(routes::conversations))
        .route("/conversations/{id}", get(routes::conversation))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::body_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::measure,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

/// Builds the shared state of a server over `engine`.
pub fn state(
    engine: Arc<Engine>,
    journal: Arc<Journal>,
    cfg: ServeConfig,
    model_id: String,
    encoder_id: String,
) -> Arc<AppState> {
    Arc::new(AppState {
        engine,
        journal,
        queue: Arc::new(queue::Queue::new(cfg.queue)),
        metrics: metrics::Metrics::default(),
        cfg,
        model_id,
        encoder_id,
        // Twice the cores: enough to keep them busy while some requests
        // wait on SQLite.
        blocking_slots: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
        ),
    })
}

/// Serves `state` on `listener` until Ctrl-C (or SIGTERM); answers under
/// way are cancelled when their connections close.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
