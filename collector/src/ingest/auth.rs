//! Who may send: bearer tokens read from a file and compared in constant time, plus the
//! request guards every route shares (concurrency cap, request timeout).
//!
//! Mutual TLS is enforced in the handshake (`crate::tls`); a client without a good
//! certificate never reaches these guards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::metrics::Metrics;

/// The accepted bearer tokens.
#[derive(Debug)]
pub struct Tokens {
    tokens: Vec<Vec<u8>>,
}

impl Tokens {
    /// Reads one token a line; blank lines and `#` comments are skipped. A file with no
    /// token is an error (it would lock every sender out).
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Tokens from the text of a tokens file.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let tokens: Vec<Vec<u8>> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect();
        if tokens.is_empty() {
            return Err("holds no token".into());
        }
        if let Some(short) = tokens.iter().find(|t| t.len() < 16) {
            return Err(format!(
                "a token of {} characters is too short to be secret (at least 16)",
                short.len()
            ));
        }
        Ok(Tokens { tokens })
    }

    /// Whether `presented` is one of the tokens. Every token is compared, each in
    /// constant time, so timing tells nothing about which or how much matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.tokens.iter().fold(0u8, |found, t| {
            found | t.as_slice().ct_eq(presented).unwrap_u8()
        }) == 1
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"picket\""),
        );
    }
    response
}

/// Routes anyone may call: health checks.
fn is_open_route(path: &str) -> bool {
    matches!(path, "/status" | "/test" | "/status/" | "/test/")
}

/// 401 without a bearer token, 403 with a wrong one.
pub async fn require_token(
    State((tokens, metrics)): State<(Arc<Tokens>, Arc<Metrics>)>,
    request: Request,
    next: Next,
) -> Response {
    if is_open_route(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => {
            metrics.refused("unauthorized");
            refuse(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer <token>)",
            )
        }
        Some(token) if tokens.accepts(token.as_bytes()) => next.run(request).await,
        Some(_) => {
            metrics.refused("forbidden");
            warn!("A request with a wrong bearer token was refused.");
            refuse(StatusCode::FORBIDDEN, "the bearer token is not accepted")
        }
    }
}

/// The shared request guards.
#[derive(Clone)]
pub struct Guards {
    pub slots: Arc<Semaphore>,
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// At most `slots` requests at once (more get 503 with `Retry-After: 1`), each within
/// `timeout` (then 408), so slow clients cannot pin the collector.
pub async fn guard(State(guards): State<Guards>, request: Request, next: Next) -> Response {
    let Ok(_slot) = guards.slots.clone().try_acquire_owned() else {
        guards.metrics.refused("overloaded");
        let mut response = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests at once; retry shortly",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(guards.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            guards.metrics.refused("timeout");
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request took too long (the body arrived too slowly or the store is stalled)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_rules() {
        let tokens =
            Tokens::parse("# fleet\n0123456789abcdef0123\n\n  fedcba9876543210fedc  \n").unwrap();
        assert!(tokens.accepts(b"0123456789abcdef0123"));
        assert!(tokens.accepts(b"fedcba9876543210fedc"));
        assert!(!tokens.accepts(b"0123456789abcdef012"));
        assert!(!tokens.accepts(b""));
        assert!(Tokens::parse("# none\n").is_err());
        assert!(Tokens::parse("short\n").unwrap_err().contains("too short"));
    }
}
