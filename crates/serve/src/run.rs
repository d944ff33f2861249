//! Running an answer for a request: validated against the limits,
//! admitted by the queue, made on the blocking pool (the engine is
//! synchronous), streamed back through a channel, and cancelled when the
//! client goes away (the channel's receiver is dropped), then recorded in
//! the journal and the metrics.

use std::ops::ControlFlow;

use docent_journal::ConversationTurn;
use docent_rag::{Answer, AnswerConfig, Citation, Event, Turn};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::queue::Ticket;
use crate::state::Shared;

/// A question as a front end hands it over.
#[derive(Debug, Clone)]
pub struct AskRequest {
    pub question: String,
    /// Earlier turns, oldest first (ignored when `conversation` is given:
    /// the journal's turns are used).
    pub history: Vec<Turn>,
    /// Overrides of the server's answer settings.
    pub max_tokens: Option<usize>,
    pub k: Option<usize>,
    pub temperature: Option<f64>,
    /// Continue this conversation (`Some("")` starts a new one).
    pub conversation: Option<String>,
}

/// What a running answer sends.
#[derive(Debug)]
pub enum Streamed {
    /// The conversation the answer belongs to (first, when there is one).
    Conversation(String),
    Sources(Vec<Citation>),
    Text(String),
    Done(Box<Answer>),
    Failed(ApiError),
}

/// Checks a question against the limits.
pub fn check_question(state: &Shared, q: &str) -> Result<(), ApiError> {
    let limits = &state.cfg.limits;
    if q.trim().is_empty() {
        return Err(ApiError::bad_request("the question is empty"));
    }
    let n = q.chars().count();
    if n > limits.max_question_chars {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "question_too_long",
            format!(
                "the question has {n} characters; the most this server takes is {} (ask \
                 something shorter, or raise --max-question-chars)",
                limits.max_question_chars
            ),
        ));
    }
    Ok(())
}

/// Checks a number of chunks to retrieve against the limits.
pub fn check_k(state: &Shared, k: usize) -> Result<usize, ApiError> {
    let max = state.cfg.limits.max_k;
    if k == 0 || k > max {
        return Err(ApiError::bad_request(format!(
            "k must be between 1 and {max}"
        )));
    }
    Ok(k)
}

/// The answer settings for `req`, within the limits.
pub fn answer_config(state: &Shared, req: &AskRequest) -> Result<AnswerConfig, ApiError> {
    let limits = &state.cfg.limits;
    check_question(state, &req.question)?;
    if req.history.len() > limits.max_history {
        return Err(ApiError::bad_request(format!(
            "the conversation has {} earlier turns; the most this server takes is {}",
            req.history.len(),
            limits.max_history
        )));
    }
    let mut cfg = state.cfg.answer.clone();
    if let Some(m) = req.max_tokens {
        if m == 0 || m > limits.max_tokens {
            return Err(ApiError::bad_request(format!(
                "max_tokens must be between 1 and {}",
                limits.max_tokens
            )));
        }
        cfg.max_tokens = m;
    }
    if let Some(k) = req.k {
        cfg.retrieve.k = check_k(state, k)?;
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) || !t.is_finite() {
            return Err(ApiError::bad_request("temperature must be between 0 and 2"));
        }
        cfg.sampler.temperature = t;
    }
    cfg.validate().map_err(ApiError::from_rag)?;
    Ok(cfg)
}

/// Validates, admits and starts an answer; its pieces arrive on the
/// returned channel. Dropping the receiver cancels it, in the queue or
/// while generating.
pub fn start(state: &Shared, req: AskRequest) -> Result<mpsc::Receiver<Streamed>, ApiError> {
    let cfg = answer_config(state, &req)?;
    let mut ticket = state.queue.admit()?;
    let (tx, rx) = mpsc::channel::<Streamed>(256);
    let state = state.clone();
    tokio::spawn(async move {
        state.metrics.queue_depth.set(state.queue.depth() as i64);
        tokio::select! {
            _ = ticket.run() => {}
            // The client left while waiting.
            _ = tx.closed() => return,
        }
        state
            .metrics
            .queue_waiting
            .set(state.queue.waiting() as i64);
        let st = state.clone();
        let done =
            tokio::task::spawn_blocking(move || answer_blocking(&st, req, &cfg, &tx, ticket)).await;
        if done.is_err() {
            state.metrics.failed();
        }
        state.metrics.queue_depth.set(state.queue.depth() as i64);
        state
            .metrics
            .queue_waiting
            .set(state.queue.waiting() as i64);
    });
    Ok(rx)
}

fn answer_blocking(
    state: &Shared,
    req: AskRequest,
    cfg: &AnswerConfig,
    tx: &mpsc::Sender<Streamed>,
    ticket: Ticket,
) {
    let journal = &state.journal;
    // The conversation, and its turns as the history.
    let (conversation, history) = match req.conversation.as_deref() {
        None => (None, req.history.clone()),
        Some("") => match journal.start_conversation(&req.question) {
            Ok(id) => (Some(id), Vec::new()),
            Err(e) => {
                let _ = tx.blocking_send(Streamed::Failed(ApiError::from_journal(e)));
                return;
            }
        },
        Some(id) => match journal.turns(id) {
            Ok(turns) => {
                let keep = turns.len().saturating_sub(state.cfg.limits.max_history);
                let history = turns[keep..]
                    .iter()
                    .map(|t| Turn {
                        question: t.question.clone(),
                        answer: t.answer.clone(),
                    })
                    .collect();
                (Some(id.to_string()), history)
            }
            Err(e) => {
                let _ = tx.blocking_send(Streamed::Failed(ApiError::from_journal(e)));
                return;
            }
        },
    };
    if let Some(id) = &conversation {
        if tx
            .blocking_send(Streamed::Conversation(id.clone()))
            .is_err()
        {
            return;
        }
    }
    let result = state
        .engine
        .answer(&req.question, &history, cfg, &mut |event| {
            let sent = match event {
                Event::Sources(c) => tx.blocking_send(Streamed::Sources(c.to_vec())),
                Event::Text(t) => tx.blocking_send(Streamed::Text(t.to_string())),
                _ => Ok(()),
            };
            // The receiver is gone: the client left.
            if sent.is_err() || tx.is_closed() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
    // The slot is free before anything says the answer ended, so a client
    // that has its answer (or saw it cancelled) can ask again at once.
    drop(ticket);
    match result {
        Ok(answer) => {
            state.metrics.answer(&answer);
            if let Err(e) = journal.record(&answer.trace, conversation.as_deref()) {
                log::warn!("the trace {} was not kept: {e}", answer.trace.id);
            }
            if let Some(id) = &conversation {
                let turn = ConversationTurn {
                    question: req.question.clone(),
                    answer: answer.text.clone(),
                    trace_id: Some(answer.trace.id.clone()),
                };
                if let Err(e) = journal.add_turn(id, &turn) {
                    log::warn!("the turn was not kept in {id}: {e}");
                }
            }
            let _ = tx.blocking_send(Streamed::Done(Box::new(answer)));
        }
        Err(e) => {
            state.metrics.failed();
            let _ = tx.blocking_send(Streamed::Failed(ApiError::from_rag(e)));
        }
    }
}

/// Waits for the whole answer (the request's own future holds the
/// receiver, so a client that leaves cancels it).
pub async fn collect(
    mut rx: mpsc::Receiver<Streamed>,
) -> Result<(Box<Answer>, Option<String>), ApiError> {
    let mut conversation = None;
    while let Some(m) = rx.recv().await {
        match m {
            Streamed::Conversation(id) => conversation = Some(id),
            Streamed::Done(a) => return Ok((a, conversation)),
            Streamed::Failed(e) => return Err(e),
            _ => {}
        }
    }
    Err(ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the answer stopped unexpectedly; try again",
    ))
}
