//! What every request passes through: the bearer token check and the
//! request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::Shared;

/// Paths served without the token: the page and the API's description
/// hold no data (the page asks for the token and sends it itself).
const OPEN_PATHS: &[&str] = &["/", "/openapi.json"];

/// Whether `header` carries `token` as a bearer token, compared in
/// constant time.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    given.trim().as_bytes().ct_eq(token.as_bytes()).into()
}

pub async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = state.cfg.token.as_deref() else {
        return next.run(req).await;
    };
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer_matches(given, token) {
        return next.run(req).await;
    }
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this server needs its token: send `Authorization: Bearer <token>`",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer".parse().expect("valid header"),
    );
    r
}

/// Refuses a body whose declared length is over the limit before reading
/// any of it, so that a client sending `Expect: 100-continue` learns it at
/// once and no time is spent receiving what will be refused (bodies
/// without a length are cut at the limit as they are read).
pub async fn body_limit(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let max = state.cfg.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > max as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body has {n} bytes; the most this server takes is {max} (--max-body-kb)"),
        )
        .into_response();
    }
    next.run(req).await
}

pub async fn measure(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let t = Instant::now();
    let r = next.run(req).await;
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(t.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: r.status().as_u16(),
        })
        .inc();
    r
}

#[cfg(test)]
mod tests {
    use super::bearer_matches;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cret2"), "s3cret"));
        assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }
}
