//! What a server is configured with: where it listens, who may call it,
//! how much it accepts and how many answers it makes at once.

use std::net::SocketAddr;
use std::time::Duration;

use docent_rag::AnswerConfig;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// The bearer token every request must carry. Required when `addr` is
    /// not a loopback address ([`ServeConfig::validate`]).
    pub token: Option<String>,
    pub limits: Limits,
    pub queue: QueueConfig,
    /// How answers are made when a request does not say otherwise; a
    /// request may lower `max_tokens` and `k`, never raise them past
    /// [`Limits`].
    pub answer: AnswerConfig,
}

/// Bounds on what one request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The longest question, in characters.
    pub max_question_chars: usize,
    /// The most questions in one `/ask/batch`, or texts in one
    /// `/v1/embeddings` request.
    pub max_batch: usize,
    /// The most earlier messages of a conversation a request may carry.
    pub max_history: usize,
    /// The longest answer a request may ask for, in tokens.
    pub max_tokens: usize,
    /// The most chunks a request may retrieve.
    pub max_k: usize,
    /// The longest a request may take to produce its response headers
    /// (a streamed answer then runs until it ends or its client leaves).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            max_question_chars: 2_000,
            max_batch: 16,
            max_history: 32,
            max_tokens: 1_024,
            max_k: 20,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// How many answers are made at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Answers generated at the same time. One generation already uses
    /// every core, so more than one only shares them.
    pub concurrent: usize,
    /// Answers that may wait for a turn; a request beyond them gets 429
    /// with `Retry-After`.
    pub depth: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            concurrent: 1,
            depth: 8,
        }
    }
}

impl ServeConfig {
    /// Checks the settings: a server reachable from other machines needs a
    /// token.
    pub fn validate(&self) -> Result<(), String> {
        if !self.addr.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "{} is reachable from other machines, so every request must carry a token: \
                 give one with --token or DOCENT_TOKEN, or listen on 127.0.0.1",
                self.addr
            ));
        }
        if self.queue.concurrent == 0 {
            return Err("at least one answer must be able to run at a time".into());
        }
        self.answer.validate().map_err(|e| e.to_string())?;
        Ok(())
    }
}
