//! The OpenAI-compatible routes: `/v1/chat/completions` (whole or
//! streamed as server-sent events), `/v1/models` and `/v1/embeddings`.
//!
//! A chat completion is a grounded answer: the last message is the
//! question, the user and assistant messages before it are the
//! conversation (system messages are ignored: docent's own instruction
//! grounds the answer), and the reply carries `[n]` citation marks with a
//! `docent` field that lists the sources, each sentence's support and the
//! trace id. Fields docent does not use (`n`, `logprobs`, `tools`, …) are
//! ignored, as OpenAI-compatible servers commonly do; `model` may name any
//! model and is answered by the server's own.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use docent_rag::{Answer, StopReason, Turn};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::run::{self, AskRequest, Streamed};
use crate::state::Shared;
use crate::view::AnswerExtras;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Value,
}

/// A message's text: a string, or the text parts of a list of parts.
fn text_of(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => {
                        if !out.is_empty() {
                            out.push('\n');
                        }
                        out.push_str(t);
                    }
                    _ => {
                        return Err(ApiError::bad_request(
                            "only text message parts are supported (no images or audio)",
                        ))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(ApiError::bad_request(
            "a message's content must be a string or a list of text parts",
        )),
    }
}

/// The question and the conversation before it.
fn conversation(messages: &[Message]) -> Result<(String, Vec<Turn>), ApiError> {
    let Some((last, earlier)) = messages.split_last() else {
        return Err(ApiError::bad_request(
            "messages is empty: send at least one user message",
        ));
    };
    if last.role != "user" {
        return Err(ApiError::bad_request(format!(
            "the last message must be the user's question, not a `{}` message",
            last.role
        )));
    }
    let question = text_of(&last.content)?;
    let mut turns = Vec::new();
    let mut pending: Option<String> = None;
    for m in earlier {
        match m.role.as_str() {
            "system" | "developer" => {}
            "user" => {
                // Two user messages in a row: the earlier one had no answer.
                if let Some(q) = pending.take() {
                    turns.push(Turn {
                        question: q,
                        answer: String::new(),
                    });
                }
                pending = Some(text_of(&m.content)?);
            }
            "assistant" => {
                let answer = text_of(&m.content)?;
                turns.push(Turn {
                    question: pending.take().unwrap_or_default(),
                    answer,
                });
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported message role `{other}` (use system, user or assistant)"
                )))
            }
        }
    }
    if let Some(q) = pending {
        turns.push(Turn {
            question: q,
            answer: String::new(),
        });
    }
    Ok((question, turns))
}

fn finish_reason(stop: Option<StopReason>) -> &'static str {
    match stop {
        Some(StopReason::MaxTokens) | Some(StopReason::ContextFull) => "length",
        _ => "stop",
    }
}

fn now_s() -> u64 {
    docent_rag::trace::unix_ms() / 1000
}

pub async fn chat_completions(
    State(state): State<Shared>,
    payload: Result<Json<ChatRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = payload?;
    if req.messages.len() > state.cfg.limits.max_history * 2 + 8 {
        return Err(ApiError::bad_request(format!(
            "the conversation has {} messages; the most this server takes is {}",
            req.messages.len(),
            state.cfg.limits.max_history * 2 + 8
        )));
    }
    let (question, history) = conversation(&req.messages)?;
    let ask = AskRequest {
        question,
        history,
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        k: None,
        temperature: req.temperature,
        conversation: None,
    };
    let _ = req.model;
    let rx = run::start(&state, ask)?;
    let model = state.model_id.clone();
    if !req.stream {
        let (answer, _) = run::collect(rx).await?;
        let t = &answer.trace.timings;
        let prompt_tokens = t.prompt_tokens;
        return Ok(Json(json!({
            "id": format!("chatcmpl-{}", answer.trace.id),
            "object": "chat.completion",
            "created": now_s(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": finish_reason(answer.stop),
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": t.decode_tokens,
                "total_tokens": prompt_tokens + t.decode_tokens,
                "prompt_tokens_details": {"cached_tokens": t.cached_tokens},
            },
            "docent": AnswerExtras::of(&answer, None),
        }))
        .into_response());
    }
    Ok(Sse::new(chunks(rx, model))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The completion as `chat.completion.chunk` events, then `[DONE]`.
fn chunks(
    rx: tokio::sync::mpsc::Receiver<Streamed>,
    model: String,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let id = format!("chatcmpl-{}", docent_rag::trace::new_trace_id());
    let created = now_s();
    let chunk = move |delta: Value, finish: Option<&str>, extra: Option<Value>| {
        let mut v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(x) = extra {
            v["docent"] = x;
        }
        SseEvent::default().data(v.to_string())
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
    // `streamed`: the answer's text sent so far.
    let rest = stream::unfold(
        (rx, false, String::new()),
        move |(mut rx, ended, mut streamed)| {
            let chunk = chunk.clone();
            async move {
                if ended {
                    return None;
                }
                let events = match rx.recv().await {
                    Some(Streamed::Text(t)) => {
                        streamed.push_str(&t);
                        vec![chunk(json!({"content": t}), None, None)]
                    }
                    Some(Streamed::Done(a)) => {
                        let mut extras = serde_json::to_value(AnswerExtras::of(&a, None)).ok();
                        let mut v = Vec::new();
                        let after = after_stream(&streamed, &a);
                        match after {
                            // An answer declined before the model ran
                            // streamed no text (one the model's check
                            // declined streamed the decline).
                            AfterStream::Whole => {
                                v.push(chunk(json!({"content": a.text}), None, None))
                            }
                            // The answer that streamed was replaced: the
                            // model was asked again, or docent declined it
                            // once written. A client keeps what it was
                            // sent, so the final answer follows it.
                            AfterStream::Replaced => v.push(chunk(
                                json!({"content": format!("\n\n{}", a.text)}),
                                None,
                                None,
                            )),
                            AfterStream::Same | AfterStream::Amended => {}
                        }
                        // Whenever the final text is not what streamed,
                        // the last chunk carries it whole.
                        if after != AfterStream::Same {
                            if let Some(Value::Object(x)) = extras.as_mut() {
                                x.insert("text".into(), json!(a.text));
                            }
                        }
                        v.push(chunk(json!({}), Some(finish_reason(a.stop)), extras));
                        v.push(SseEvent::default().data("[DONE]"));
                        return Some((v, (rx, true, streamed)));
                    }
                    Some(Streamed::Failed(e)) => {
                        return Some((
                            vec![
                                SseEvent::default().data(e.body().to_string()),
                                SseEvent::default().data("[DONE]"),
                            ],
                            (rx, true, streamed),
                        ))
                    }
                    Some(_) => Vec::new(),
                    None => return None,
                };
                Some((events, (rx, false, streamed)))
            }
        },
    );
    stream::once(async move { first })
        .chain(rest.flat_map(stream::iter))
        .map(Ok)
}

/// What the end of a streamed completion adds to the text already sent.
#[derive(Debug, PartialEq, Eq)]
enum AfterStream {
    /// The final text is what streamed.
    Same,
    /// Nothing streamed: the whole answer goes out now.
    Whole,
    /// Another answer replaced the one that streamed (the model was asked
    /// again, or docent declined it once written): it follows.
    Replaced,
    /// Touched up after the check (a citation corrected, a short answer
    /// written as its source writes it, a Korean question's ending made a
    /// statement's, an unsupported sentence removed):
    /// only the last chunk's `docent.text` holds it, since sending it again
    /// would repeat the answer.
    Amended,
}

fn after_stream(streamed: &str, a: &Answer) -> AfterStream {
    let (sent, text) = (streamed.trim(), a.text.trim());
    if sent == text {
        AfterStream::Same
    } else if sent.is_empty() {
        AfterStream::Whole
    } else if a.trace.asked_again.is_some() || a.abstained.is_some() {
        AfterStream::Replaced
    } else {
        AfterStream::Amended
    }
}

pub async fn models(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [
            {"id": state.model_id, "object": "model", "created": 0, "owned_by": "docent"},
            {"id": state.encoder_id, "object": "model", "created": 0, "owned_by": "docent"},
        ],
    }))
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub input: Value,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: Option<String>,
}

pub async fn embeddings(
    State(state): State<Shared>,
    payload: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = payload?;
    if req.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(ApiError::bad_request(
            "only encoding_format \"float\" is supported",
        ));
    }
    let texts: Vec<String> = match req.input {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::bad_request(
                    "input must be a string or a list of strings (token arrays are not supported)",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad_request(
                "input must be a string or a list of strings",
            ))
        }
    };
    if texts.is_empty() || texts.len() > state.cfg.limits.max_batch {
        return Err(ApiError::bad_request(format!(
            "input must hold between 1 and {} texts",
            state.cfg.limits.max_batch
        )));
    }
    for t in &texts {
        if t.chars().count() > state.cfg.limits.max_question_chars * 8 {
            return Err(ApiError::bad_request(format!(
                "a text is longer than {} characters",
                state.cfg.limits.max_question_chars * 8
            )));
        }
    }
    let _ = req.model;
    let st = state.clone();
    let vectors = state
        .blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            st.engine.encoder().embed(&refs)
        })
        .await?
        .map_err(|e| {
            ApiError::bad_request(format!("the encoder could not embed this input: {e}"))
        })?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": state.encoder_id,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str, content: Value) -> Message {
        Message {
            role: role.into(),
            content,
        }
    }

    #[test]
    fn messages_become_a_question_and_its_conversation() {
        let (q, turns) = conversation(&[
            m("system", json!("be brief")),
            m("user", json!("양자화란 무엇인가요?")),
            m(
                "assistant",
                json!([{"type": "text", "text": "가중치를 적은 비트로 저장합니다."}]),
            ),
            m("user", json!("그건 왜 CPU에서 빠른가요?")),
        ])
        .unwrap();
        assert_eq!(q, "그건 왜 CPU에서 빠른가요?");
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].question, "양자화란 무엇인가요?");
        assert!(conversation(&[]).is_err());
        assert!(conversation(&[m("assistant", json!("hi"))]).is_err());
        assert!(conversation(&[m("tool", json!("x")), m("user", json!("q"))]).is_err());
        assert!(conversation(&[m("user", json!([{"type": "image_url"}]))]).is_err());
    }
}
