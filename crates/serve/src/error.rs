//! Errors as the client sees them: a 4xx status with a JSON body that says
//! what was wrong and what to do, in the shape OpenAI's clients read
//! (`{"error": {"message", "type", "code"}}`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use docent_journal::JournalError;
use docent_rag::RagError;
use serde_json::json;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A short machine-readable kind: `invalid_request`, `not_found`, …
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before trying again (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn busy(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!(
                    "every answer slot and the queue behind them are taken; try again in \
                     {retry_after} s"
                ),
            )
        }
    }

    /// An engine error: what the client can fix is a 4xx; a damaged or
    /// missing index and a model that cannot load are 503 (the server's
    /// operator must act), never a 500.
    pub fn from_rag(e: RagError) -> ApiError {
        match e {
            RagError::Config(m) => ApiError::bad_request(m),
            e @ RagError::EmptyQuestion => ApiError::bad_request(e.to_string()),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the server cannot answer now: {other}"),
            ),
        }
    }

    pub fn from_journal(e: JournalError) -> ApiError {
        match e {
            JournalError::NotFound { .. } => ApiError::not_found(e.to_string()),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the journal cannot be read now: {other}"),
            ),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.code,
                "code": self.status.as_u16(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "send the body as JSON with `Content-Type: application/json`".to_string()
            }
            _ => format!("the body is not a valid request: {}", r.body_text()),
        };
        ApiError::new(status, "invalid_request", message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("the query string is not valid: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(format!("the path is not valid: {}", r.body_text()))
    }
}
