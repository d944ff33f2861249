//! The routes that are not a chain: search, chunks, traces and their
//! ratings, conversations, health, metrics, the page and the API's
//! description.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use docent_journal::Rating;
use docent_rag::{RetrieveConfig, SearchMode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::run::{check_k, check_question};
use crate::state::Shared;

const PAGE: &str = include_str!("../assets/index.html");
const OPENAPI: &str = include_str!("../assets/openapi.json");

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page loads nothing from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline' 'self'; img-src 'self' data:",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn health(State(state): State<Shared>) -> Response {
    let engine = state.engine.clone();
    let index = state.blocking(move || engine.index()).await;
    match index {
        Ok(Ok(ix)) => Json(json!({
            "status": "ok",
            "index": {"root": ix.meta().root, "generation": ix.generation(), "chunks": ix.len()},
            "model": state.model_id,
            "encoder": state.encoder_id,
            "queue": {"depth": state.queue.depth(), "waiting": state.queue.waiting()},
        }))
        .into_response(),
        Ok(Err(e)) => ApiError::from_rag(e).into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the index could not be checked",
        )
        .into_response(),
    }
}

pub async fn metrics(State(state): State<Shared>) -> Response {
    state.metrics.queue_depth.set(state.queue.depth() as i64);
    state
        .metrics
        .queue_waiting
        .set(state.queue.waiting() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    #[serde(default)]
    pub k: Option<usize>,
    #[serde(default)]
    pub mode: Option<SearchMode>,
}

/// Retrieval only: never waits behind generation.
pub async fn search(
    State(state): State<Shared>,
    payload: Result<Json<SearchRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = payload?;
    check_question(&state, &req.query)?;
    let k = check_k(&state, req.k.unwrap_or(5))?;
    let cfg = RetrieveConfig {
        k,
        mode: req.mode.unwrap_or_default(),
        ef: None,
        ..RetrieveConfig::default()
    };
    let engine = state.engine.clone();
    let query = req.query.clone();
    let r = state
        .blocking(move || engine.retrieve(&query, &cfg))
        .await?
        .map_err(ApiError::from_rag)?;
    let results: Vec<Value> = r
        .hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let c = &h.chunk.chunk;
            json!({
                "rank": i + 1,
                "chunk_id": h.chunk.id,
                "path": c.path,
                "line": c.line,
                "page": c.page,
                "heading": c.heading_path,
                "score": h.score,
                "similarity": h.similarity,
                "text": c.text,
                "url": format!("/chunks/{}", h.chunk.id),
            })
        })
        .collect();
    Ok(Json(
        json!({"query": req.query, "k": k, "results": results}),
    ))
}

/// One indexed chunk, by id: the only way the server shows a document.
pub async fn chunk(
    State(state): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let engine = state.engine.clone();
    let found = state
        .blocking(move || -> Result<_, ApiError> {
            let ix = engine.index().map_err(ApiError::from_rag)?;
            ix.chunk(id).map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            })
        })
        .await??;
    let Some(c) = found else {
        return Err(ApiError::not_found(format!(
            "no chunk {id} in the index (it may have been re-indexed since)"
        )));
    };
    Ok(Json(json!({
        "chunk_id": c.id,
        "path": c.chunk.path,
        "line": c.chunk.line,
        "page": c.chunk.page,
        "heading": c.chunk.heading_path,
        "text": c.chunk.text,
    })))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
}

pub async fn traces(
    State(state): State<Shared>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(50).min(500);
    let j = state.journal.clone();
    let list = state
        .blocking(move || j.list(limit, q.offset.unwrap_or(0)))
        .await?
        .map_err(ApiError::from_journal)?;
    Ok(Json(json!({"traces": list})))
}

/// Trace ids are hex digits (24 of them as the engine makes them).
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found(format!(
            "no trace or conversation has the id {id:?}"
        )));
    }
    Ok(())
}

pub async fn trace(
    State(state): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    check_id(&id)?;
    let j = state.journal.clone();
    let key = id.clone();
    let found = state
        .blocking(move || j.get(&key))
        .await?
        .map_err(ApiError::from_journal)?;
    match found {
        Some((trace, rating)) => Ok(Json(json!({"trace": trace, "rating": rating}))),
        None => Err(ApiError::not_found(format!(
            "no trace has the id {id} (traces are kept up to the retention limit)"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    pub up: bool,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn rate(
    State(state): State<Shared>,
    id: Result<Path<String>, PathRejection>,
    payload: Result<Json<RatingRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    check_id(&id)?;
    let Json(req) = payload?;
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 2_000) {
        return Err(ApiError::bad_request(
            "the note is longer than 2,000 characters",
        ));
    }
    let rating = Rating {
        up: req.up,
        note: req.note.filter(|n| !n.trim().is_empty()),
    };
    let j = state.journal.clone();
    let key = id.clone();
    let r = rating.clone();
    state
        .blocking(move || j.rate(&key, &r))
        .await?
        .map_err(ApiError::from_journal)?;
    Ok(Json(json!({"trace_id": id, "rating": rating})))
}

pub async fn conversations(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let j = state.journal.clone();
    let list = state
        .blocking(move || j.conversations(100))
        .await?
        .map_err(ApiError::from_journal)?;
    Ok(Json(json!({"conversations": list})))
}

pub async fn conversation(
    State(state): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    check_id(&id)?;
    let j = state.journal.clone();
    let key = id.clone();
    let turns = state
        .blocking(move || j.turns(&key))
        .await?
        .map_err(ApiError::from_journal)?;
    Ok(Json(json!({"id": id, "turns": turns})))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /openapi.json lists them")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; GET /openapi.json lists them",
    )
}
