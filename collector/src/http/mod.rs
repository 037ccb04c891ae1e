//! The HTTP API: MozDef loginput's `POST`/`PUT /events` (one JSON object, a JSON array,
//! or NDJSON; gzip bodies accepted), `/nxlog` and `/cef` (the same, with `endpoint`
//! set as MozDef does), `POST /_bulk` (Elasticsearch bulk bodies, action lines
//! skipped), `GET /status` and `GET /test`, and the search API `GET /api/events`.
//!
//! A request is answered 200 only after its events are committed to the store. Each
//! item refused (not JSON, not an object, too large) is reported by position while the
//! good ones are stored. Error bodies are JSON, `{"error": "..."}`, and say what was
//! wrong with the request, never internal details.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub mod auth;
mod body;
pub mod config;
pub mod connections;
pub mod elasticsearch;
pub mod ingest;
pub mod role;
pub mod search;
pub mod server;
pub mod tls;
pub mod users;

use self::auth::{Access, Guards};
use self::ingest::{post_cef, post_custom, post_events, post_nxlog};
use self::search::{search_alerts, search_events, search_json};
use crate::metrics::Metrics;
use crate::stores::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
    /// Who may send and who may search.
    pub access: Arc<Access>,
    pub guards: Guards,
    /// Most items one request may hold.
    pub max_events_per_request: usize,
    /// Slowest a body may arrive after its first seconds (0: no minimum).
    pub min_body_bytes_per_sec: u64,
    /// Largest search answer, in bytes of events.
    pub max_response_bytes: usize,
    /// How far from reception an event's time may be.
    pub time_window: mozdef::normalize::TimeWindow,
    pub metrics: Arc<Metrics>,
    /// Where alerts are kept, when alert rules run.
    pub alerts: Option<Arc<crate::alerts::AlertStore>>,
    /// What the Elasticsearch face says of itself.
    pub elasticsearch: Arc<elasticsearch::Face>,
    /// Parses raw syslog text from other shippers (shared with the AMQP consumer).
    pub reparser: Arc<crate::reparse::Reparser>,
    /// `[collector.console]`.
    pub console: Arc<crate::console::ConsoleSettings>,
}

/// The most events one search returns.
pub const MAX_SEARCH_SIZE: usize = 10_000;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let guards = state.guards.clone();
    let access = Arc::clone(&state.access);
    Router::new()
        .route("/events", post(post_events).put(post_events))
        .route("/events/", post(post_events).put(post_events))
        .route("/nxlog", post(post_nxlog).put(post_nxlog))
        .route("/nxlog/", post(post_nxlog).put(post_nxlog))
        .route("/cef", post(post_cef).put(post_cef))
        .route("/cef/", post(post_cef).put(post_cef))
        .route("/custom/{application}", post(post_custom).put(post_custom))
        .route("/status", get(status))
        .route("/test", get(status))
        .route("/api/events", get(search_events))
        .route("/api/search", post(search_json))
        .route("/api/alerts", get(search_alerts))
        .route("/metrics", get(metrics))
        .merge(crate::console::routes(&state.console))
        .merge(elasticsearch::routes())
        .with_state(state)
        .layer(axum::middleware::from_fn(explain_bare_errors))
        .layer(axum::middleware::from_fn_with_state(
            access,
            auth::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(guards, auth::guard))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn status() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "service": "loginput"}))
}

/// Gives the router's own 404 and 405 (no route, a method the route does not take) a
/// JSON body that says so, the 405 keeping its `Allow` header.
async fn explain_bare_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response.headers().get(header::ALLOW).cloned();
            let allowed = allow
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut answer = error_body(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path} (allowed: {allowed})"),
            );
            if let Some(allow) = allow {
                answer.headers_mut().insert(header::ALLOW, allow);
            }
            answer
        }
        StatusCode::NOT_FOUND => {
            error_body(StatusCode::NOT_FOUND, format!("no route {method} {path}"))
        }
        _ => response,
    }
}

pub(crate) fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// 503 with `Retry-After: 1`: the collector cannot take this now (too many requests at
/// once, or its store is behind), the sender waits a second and sends it again.
fn retry_shortly(message: &str) -> Response {
    let mut response = error_body(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod tests;
