//! The HTTP API: MozDef loginput's `POST`/`PUT /events` (one JSON object, a JSON array,
//! or NDJSON), `GET /status`, and the search API `GET /api/events`.
//!
//! A request is answered 200 only after its events are committed to the store. Each
//! item refused (not JSON, not an object, too large) is reported by position while the
//! good ones are stored. Error bodies are JSON, `{"error": "..."}`, and say what was
//! wrong with the request, never internal details.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mozdef::wire::{self, ItemError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, error, warn};

use crate::search::parse_time_bound;
use crate::stores::SearchRequest;
use crate::stores::embedded::{EmbeddedStore, StoreError};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<EmbeddedStore>,
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
}

/// The most events one search returns.
pub const MAX_SEARCH_SIZE: usize = 10_000;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", post(post_events).put(post_events))
        .route("/events/", post(post_events).put(post_events))
        .route("/status", get(status))
        .route("/api/events", get(search_events))
        .with_state(state)
}

async fn status() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "service": "loginput"}))
}

/// One refused item in an ingest answer.
#[derive(Debug, Serialize)]
struct Rejected {
    position: usize,
    reason: String,
}

#[derive(Debug, Serialize)]
struct IngestAnswer {
    received: usize,
    stored: usize,
    rejected: Vec<Rejected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn post_events(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let too_large = || {
        error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is over the limit of {} bytes",
                state.max_body_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return too_large();
    }
    let bytes: Bytes = match Limited::new(body, state.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return too_large(),
        Err(_) => return error_body(StatusCode::BAD_REQUEST, "request body could not be read"),
    };
    let items = match wire::split_body(&bytes, state.max_event_bytes) {
        Ok(items) => items,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let received_at = Utc::now();
    let received = items.len();
    let mut events = Vec::with_capacity(received);
    let mut rejected = Vec::new();
    let mut all_too_large = true;
    for (position, item) in items {
        let outcome = item.and_then(|value| {
            mozdef::normalize(value, received_at).map_err(|e| ItemError::Invalid(e.to_string()))
        });
        match outcome {
            Ok(event) => events.push(event),
            Err(e) => {
                all_too_large &= matches!(e, ItemError::TooLarge { .. });
                rejected.push(Rejected {
                    position,
                    reason: e.to_string(),
                });
            }
        }
    }
    if !rejected.is_empty() {
        warn!(
            received,
            rejected = rejected.len(),
            "Refused events in a request; the answer names them by position."
        );
    }
    if events.is_empty() {
        let status = if all_too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        let answer = IngestAnswer {
            received,
            stored: 0,
            rejected,
            error: Some("no event in the request was accepted".into()),
        };
        return (status, Json(answer)).into_response();
    }
    match state.store.store(events).await {
        Ok(stored) => {
            debug!(received, stored, "Stored a request.");
            let answer = IngestAnswer {
                received,
                stored,
                rejected,
                error: None,
            };
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(e) => {
            error!(error = %e, received, "Store failed; the sender is told to retry.");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "events could not be stored; retry later",
            )
        }
    }
}

/// `GET /api/events` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Query string; empty matches everything.
    #[serde(default)]
    pub q: String,
    /// Earliest time (ISO 8601, epoch, `now-1h` or `1h`).
    pub from: Option<String>,
    /// Latest time, same forms.
    pub to: Option<String>,
    /// Most events to return (default 100).
    pub size: Option<usize>,
}

async fn search_events(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(params) => params,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let now = Utc::now();
    let bound = |text: &Option<String>| {
        text.as_deref()
            .map(|t| parse_time_bound(t, now))
            .transpose()
    };
    let from = match bound(&params.from) {
        Ok(t) => t,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    let to = match bound(&params.to) {
        Ok(t) => t,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let size = params.size.unwrap_or(100);
    if size == 0 || size > MAX_SEARCH_SIZE {
        return error_body(
            StatusCode::BAD_REQUEST,
            format!("size must be between 1 and {MAX_SEARCH_SIZE}"),
        );
    }
    let request = SearchRequest {
        query: params.q,
        from,
        to,
        size,
    };
    let store = Arc::clone(&state.store);
    match tokio::task::spawn_blocking(move || store.search(&request)).await {
        Ok(Ok(result)) => (StatusCode::OK, Json(result)).into_response(),
        Ok(Err(StoreError::BadQuery(message))) => {
            error_body(StatusCode::BAD_REQUEST, format!("invalid query: {message}"))
        }
        Ok(Err(e)) => {
            error!(error = %e, "Search failed.");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "search failed; retry later",
            )
        }
        Err(e) => {
            error!(error = %e, "Search task failed.");
            error_body(StatusCode::INTERNAL_SERVER_ERROR, "search failed")
        }
    }
}

#[cfg(test)]
mod tests;
