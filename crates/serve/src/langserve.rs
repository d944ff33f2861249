//! The `ask` chain, served as LangServe serves a runnable:
//! `POST /ask/invoke`, `/ask/batch` and `/ask/stream`, with
//! `GET /ask/input_schema` and `/ask/output_schema`, so that LangServe's
//! `RemoteRunnable` and LangChain code can call docent as one of their
//! chains.
//!
//! The input is the question as a string, or an object with `question`,
//! an optional `conversation_id` (a conversation kept in the journal; `""`
//! starts one) and optional `k` and `max_tokens`. The output is the answer
//! with its sources, each sentence's support and the trace id. A stream
//! sends `metadata` (the run id, which is the trace's), then `data` events
//! (`{"answer": piece}` as the text comes, and last the whole output
//! without its text), then `end`.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::future::join_all;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::run::{self, AskRequest, Streamed};
use crate::state::Shared;
use crate::view::{sources, AskOutput};

/// `{"input": …}`. LangServe's `config` and `kwargs` (callbacks, run
/// names, tags) carry nothing the chain uses, and are ignored.
#[derive(Debug, Deserialize)]
pub struct InvokeRequest {
    pub input: Value,
}

/// `{"inputs": [...]}` (with `config` and `kwargs` ignored).
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    pub inputs: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AskInput {
    question: String,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    max_tokens: Option<usize>,
}

fn ask_request(input: Value) -> Result<AskRequest, ApiError> {
    let input = match input {
        Value::String(question) => AskInput {
            question,
            conversation_id: None,
            k: None,
            max_tokens: None,
        },
        v @ Value::Object(_) => serde_json::from_value(v).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                format!("the input does not match /ask/input_schema: {e}"),
            )
        })?,
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "the input must be the question as a string, or an object with `question`",
            ))
        }
    };
    Ok(AskRequest {
        question: input.question,
        history: Vec::new(),
        max_tokens: input.max_tokens,
        k: input.k,
        temperature: None,
        conversation: input.conversation_id,
    })
}

fn metadata(run_id: &str) -> Value {
    json!({"run_id": run_id, "feedback_tokens": []})
}

pub async fn invoke(
    State(state): State<Shared>,
    payload: Result<Json<InvokeRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = payload?;
    let rx = run::start(&state, ask_request(req.input)?)?;
    let (answer, conversation) = run::collect(rx).await?;
    Ok(Json(json!({
        "output": AskOutput::of(&answer, conversation),
        "metadata": metadata(&answer.trace.id),
    })))
}

pub async fn batch(
    State(state): State<Shared>,
    payload: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = payload?;
    let max = state.cfg.limits.max_batch;
    if req.inputs.is_empty() || req.inputs.len() > max {
        return Err(ApiError::bad_request(format!(
            "inputs must hold between 1 and {max} questions"
        )));
    }
    // Every question is checked before any is admitted.
    let asks = req
        .inputs
        .into_iter()
        .map(ask_request)
        .collect::<Result<Vec<_>, _>>()?;
    for a in &asks {
        run::answer_config(&state, a)?;
    }
    // Admitted together: a batch larger than the free queue is refused
    // whole rather than half answered.
    let receivers = asks
        .into_iter()
        .map(|a| run::start(&state, a))
        .collect::<Result<Vec<_>, _>>()?;
    let results = join_all(receivers.into_iter().map(run::collect)).await;
    let mut outputs = Vec::new();
    let mut run_ids = Vec::new();
    for r in results {
        let (answer, conversation) = r?;
        run_ids.push(answer.trace.id.clone());
        outputs.push(AskOutput::of(&answer, conversation));
    }
    Ok(Json(json!({
        "output": outputs,
        "metadata": {"run_ids": run_ids},
    })))
}

pub async fn stream(
    State(state): State<Shared>,
    payload: Result<Json<InvokeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = payload?;
    let rx = run::start(&state, ask_request(req.input)?)?;
    Ok(Sse::new(events(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `metadata`, then `data` events, then `end` (or `error`).
fn events(
    rx: tokio::sync::mpsc::Receiver<Streamed>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let run_id = docent_rag::trace::new_trace_id();
    let data = |v: Value| SseEvent::default().event("data").data(v.to_string());
    let first = SseEvent::default()
        .event("metadata")
        .data(metadata(&run_id).to_string());
    // `streamed`: whether any of the answer's text went out already.
    let rest = stream::unfold(
        (rx, false, false),
        move |(mut rx, ended, mut streamed)| async move {
            if ended {
                return None;
            }
            let events = match rx.recv().await {
                Some(Streamed::Conversation(id)) => vec![data(json!({"conversation_id": id}))],
                Some(Streamed::Sources(c)) => vec![data(json!({"sources": sources(&c)}))],
                Some(Streamed::Text(t)) => {
                    streamed = true;
                    vec![data(json!({"answer": t}))]
                }
                Some(Streamed::Done(a)) => {
                    let mut v = Vec::new();
                    // An answer declined before the model ran streamed no text
                    // (one the model's check declined streamed the decline).
                    if !streamed && !a.text.is_empty() {
                        v.push(data(json!({"answer": a.text})));
                    }
                    let mut out = serde_json::to_value(AskOutput::of(&a, None)).unwrap_or_default();
                    if let Some(o) = out.as_object_mut() {
                        o.remove("answer");
                        o.remove("conversation_id");
                        // The final text, which --strict may have shortened.
                        o.insert("final_answer".into(), Value::String(a.text.clone()));
                    }
                    v.push(data(out));
                    v.push(SseEvent::default().event("end"));
                    return Some((v, (rx, true, streamed)));
                }
                Some(Streamed::Failed(e)) => {
                    return Some((
                        vec![
                            SseEvent::default().event("error").data(
                                json!({"status_code": e.status.as_u16(), "message": e.message})
                                    .to_string(),
                            ),
                            SseEvent::default().event("end"),
                        ],
                        (rx, true, streamed),
                    ))
                }
                None => return None,
            };
            Some((events, (rx, false, streamed)))
        },
    );
    stream::once(async move { first })
        .chain(rest.flat_map(stream::iter))
        .map(Ok)
}

pub async fn input_schema() -> Json<Value> {
    Json(json!({
        "title": "AskInput",
        "anyOf": [
            {"type": "string", "description": "The question"},
            {
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "The question, in Korean or English"},
                    "conversation_id": {"type": "string", "description": "Continue this conversation; \"\" starts a new one"},
                    "k": {"type": "integer", "minimum": 1, "description": "Chunks to retrieve"},
                    "max_tokens": {"type": "integer", "minimum": 1, "description": "Longest answer, in tokens"}
                },
                "required": ["question"],
                "additionalProperties": false
            }
        ]
    }))
}

pub async fn output_schema() -> Json<Value> {
    Json(json!({
        "title": "AskOutput",
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "The answer, with [n] citation marks"},
            "trace_id": {"type": "string"},
            "conversation_id": {"type": "string"},
            "abstained": {"type": "boolean", "description": "True when the documents do not hold the answer"},
            "abstention": {"type": "object"},
            "retrieval_query": {"type": "string", "description": "The standalone query of a rewritten follow-up"},
            "sources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "n": {"type": "integer"},
                        "chunk_id": {"type": "integer"},
                        "path": {"type": "string"},
                        "line": {"type": "integer"},
                        "page": {"type": "integer"},
                        "heading": {"type": "array", "items": {"type": "string"}},
                        "score": {"type": "number"},
                        "similarity": {"type": "number"},
                        "url": {"type": "string"}
                    },
                    "required": ["n", "chunk_id", "path", "line", "url"]
                }
            },
            "support": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "support": {"type": "number"},
                        "supported": {"type": "boolean"},
                        "best_source": {"type": "integer"},
                        "best_sources": {"type": "array", "items": {"type": "integer"}}
                    }
                }
            }
        },
        "required": ["answer", "trace_id", "sources", "support", "abstained"]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_a_string_or_an_object_with_a_question() {
        assert_eq!(ask_request(json!("RAG?")).unwrap().question, "RAG?");
        let r = ask_request(json!({"question": "q", "k": 3, "conversation_id": ""})).unwrap();
        assert_eq!((r.k, r.conversation.as_deref()), (Some(3), Some("")));
        for bad in [
            json!(3),
            json!({"q": "x"}),
            json!({"question": "x", "extra": 1}),
            json!(null),
        ] {
            assert_eq!(ask_request(bad).err().unwrap().status.as_u16(), 422);
        }
    }
}
