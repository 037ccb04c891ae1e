//! The HTTP API: MozDef loginput's `POST`/`PUT /events` (one JSON object, a JSON array,
//! or NDJSON; gzip bodies accepted), `/nxlog` and `/cef` (the same, with `endpoint`
//! set as MozDef does), `POST /_bulk` (Elasticsearch bulk bodies, action lines
//! skipped), `GET /status` and `GET /test`, and the search API `GET /api/events`. Bearer tokens and the request guards are in [`super::auth`].
//!
//! A request is answered 200 only after its events are committed to the store. Each
//! item refused (not JSON, not an object, too large) is reported by position while the
//! good ones are stored. Error bodies are JSON, `{"error": "..."}`, and say what was
//! wrong with the request, never internal details.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
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

use crate::ingest::auth::{self, Guards, Tokens};
use crate::metrics::Metrics;
use crate::search::parse_time_bound;
use crate::stores::{Document, SearchRequest, Store, TimeField};
use crate::tls::Peer;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
    /// Bearer tokens, when configured: nothing but health checks gets in without one.
    pub tokens: Option<Arc<Tokens>>,
    pub guards: Guards,
    pub metrics: Arc<Metrics>,
    /// Where alerts are kept, when alert rules run.
    pub alerts: Option<Arc<crate::alerts::AlertStore>>,
}

/// The most events one search returns.
pub const MAX_SEARCH_SIZE: usize = 10_000;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let guards = state.guards.clone();
    let tokens = state.tokens.clone();
    let mut router = Router::new()
        .route("/events", post(post_events).put(post_events))
        .route("/events/", post(post_events).put(post_events))
        .route("/nxlog", post(post_nxlog).put(post_nxlog))
        .route("/nxlog/", post(post_nxlog).put(post_nxlog))
        .route("/cef", post(post_cef).put(post_cef))
        .route("/cef/", post(post_cef).put(post_cef))
        .route("/custom/{application}", post(post_custom).put(post_custom))
        .route("/_bulk", post(post_bulk).put(post_bulk))
        .route("/status", get(status))
        .route("/test", get(status))
        .route("/api/events", get(search_events))
        .route("/api/search", post(search_json))
        .route("/api/alerts", get(search_alerts))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    if let Some(tokens) = tokens {
        router = router.layer(axum::middleware::from_fn_with_state(
            (tokens, Arc::clone(&state.metrics)),
            auth::require_token,
        ));
    }
    router.layer(axum::middleware::from_fn_with_state(guards, auth::guard))
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
    /// Taken, but refused for good by the store (Elasticsearch mapping conflicts):
    /// kept in the collector's dead-letter file, not searchable.
    #[serde(skip_serializing_if = "is_zero")]
    deadlettered: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// MozDef's loginput routes beside `/events`: what each does to an item before it is
/// normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// `/events`: as sent.
    Events,
    /// `/nxlog`, `/cef`: `endpoint` set to the route's name, as MozDef does (it lands in
    /// `details.endpoint`).
    Endpoint(&'static str),
    /// `/custom/<application>`: stored as sent, not normalized, with `endpoint` set to
    /// the application and `customendpoint: true`, as MozDef does.
    Custom(String),
    /// `/_bulk`: Elasticsearch bulk bodies; action lines (`{"index": {…}}`) skipped.
    Bulk,
}

impl Route {
    /// The `source` label of the route's metrics.
    fn source(&self) -> &'static str {
        match self {
            Route::Events => "events",
            Route::Endpoint(name) => name,
            Route::Custom(_) => "custom",
            Route::Bulk => "bulk",
        }
    }

    /// The item to normalize, or `None` for a bulk action line.
    fn prepare(&self, value: serde_json::Value) -> Option<serde_json::Value> {
        match (self, value) {
            (Route::Endpoint(name), serde_json::Value::Object(mut object)) => {
                object.insert("endpoint".into(), serde_json::Value::String((*name).into()));
                Some(serde_json::Value::Object(object))
            }
            (Route::Custom(application), serde_json::Value::Object(mut object)) => {
                object.insert(
                    "endpoint".into(),
                    serde_json::Value::String(application.clone()),
                );
                object.insert("customendpoint".into(), serde_json::Value::Bool(true));
                Some(serde_json::Value::Object(object))
            }
            (Route::Bulk, serde_json::Value::Object(object)) if is_bulk_action(&object) => None,
            (_, value) => Some(value),
        }
    }

    /// The document to store from a prepared item.
    fn document(
        &self,
        value: serde_json::Value,
        received_at: chrono::DateTime<Utc>,
        identity: Option<&String>,
    ) -> Result<Document, ItemError> {
        if let Route::Custom(_) = self {
            return match value {
                serde_json::Value::Object(source) => Ok(Document::Custom {
                    id: crate::alerts::new_id(),
                    received: received_at,
                    source,
                }),
                _ => Err(ItemError::Invalid(
                    "a custom document must be a JSON object".into(),
                )),
            };
        }
        let mut event =
            mozdef::normalize(value, received_at).map_err(|e| ItemError::Invalid(e.to_string()))?;
        if let Some(identity) = identity {
            event.details.insert(
                "agentidentity".into(),
                serde_json::Value::String(identity.clone()),
            );
        }
        Ok(Document::Event(event))
    }
}

/// An application name MozDef would take as a document type: letters, digits, `_`,
/// `-`, `.`; 1 to 64 of them.
fn valid_application(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `{"index": {...}}` and its kin: one key, an action, whose value is an object.
fn is_bulk_action(object: &serde_json::Map<String, serde_json::Value>) -> bool {
    object.len() == 1
        && object.iter().all(|(key, value)| {
            matches!(key.as_str(), "index" | "create" | "update" | "delete") && value.is_object()
        })
}

async fn post_events(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Events).await
}

async fn post_nxlog(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Endpoint("nxlog")).await
}

async fn post_cef(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Endpoint("cef")).await
}

async fn post_custom(
    state: State<AppState>,
    axum::extract::Path(application): axum::extract::Path<String>,
    request: Request,
) -> Response {
    if !valid_application(&application) {
        state.metrics.refused("bad_body");
        return error_body(
            StatusCode::BAD_REQUEST,
            format!(
                "{application:?} is not an application name (letters, digits, _ - . and at most 64 of them)"
            ),
        );
    }
    ingest(state, request, Route::Custom(application)).await
}

async fn post_bulk(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Bulk).await
}

async fn ingest(State(state): State<AppState>, request: Request, route: Route) -> Response {
    let identity = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .and_then(|info| info.0.identity.clone());
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let metrics = Arc::clone(&state.metrics);
    let bad_body = |message: String| {
        metrics.refused("bad_body");
        error_body(StatusCode::BAD_REQUEST, message)
    };
    let too_large = || {
        metrics.refused("body_too_large");
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
        Err(_) => return bad_body("request body could not be read".into()),
    };
    let bytes = match content_encoding(headers) {
        Encoding::Identity => bytes,
        Encoding::Gzip => match gunzip(&bytes, state.max_body_bytes) {
            Ok(Some(plain)) => plain,
            Ok(None) => return too_large(),
            Err(e) => return bad_body(format!("request body is not valid gzip: {e}")),
        },
        Encoding::Other(name) => {
            metrics.refused("bad_body");
            return error_body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {name:?} is not supported (use gzip or none)"),
            );
        }
    };
    let items = match wire::split_body(&bytes, state.max_event_bytes) {
        Ok(items) => items,
        Err(e) => return bad_body(e.to_string()),
    };
    let received_at = Utc::now();
    let mut received = 0;
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut all_too_large = true;
    for (position, item) in items {
        let item = match item {
            Ok(value) => match route.prepare(value) {
                Some(value) => Ok(value),
                None => continue,
            },
            Err(e) => Err(e),
        };
        received += 1;
        let outcome = item.and_then(|value| route.document(value, received_at, identity.as_ref()));
        match outcome {
            Ok(document) => events.push(document),
            Err(e) => {
                all_too_large &= matches!(e, ItemError::TooLarge { .. });
                metrics.rejected(match e {
                    ItemError::TooLarge { .. } => "too_large",
                    ItemError::NotJson(_) => "not_json",
                    ItemError::Invalid(_) => "invalid",
                });
                rejected.push(Rejected {
                    position,
                    reason: e.to_string(),
                });
            }
        }
    }
    metrics.received(route.source(), received);
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
            deadlettered: 0,
            error: Some("no event in the request was accepted".into()),
        };
        return (status, Json(answer)).into_response();
    }
    metrics.store_started();
    let started = std::time::Instant::now();
    let outcome = state.store.store(events).await;
    metrics.store_finished(started.elapsed());
    match outcome {
        Ok(outcome) => {
            metrics.stored(route.source(), outcome.stored);
            for _ in 0..outcome.dead_lettered {
                metrics.rejected("store_refused");
            }
            debug!(received, stored = outcome.stored, "Stored a request.");
            let answer = IngestAnswer {
                received,
                stored: outcome.stored,
                rejected,
                deadlettered: outcome.dead_lettered,
                error: None,
            };
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(e) => {
            metrics.refused("store_failed");
            error!(error = %e, received, "Store failed; the sender is told to retry.");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "events could not be stored; retry later",
            )
        }
    }
}

enum Encoding {
    Identity,
    Gzip,
    Other(String),
}

fn content_encoding(headers: &HeaderMap) -> Encoding {
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Encoding::Identity,
        Some(v) if v.is_empty() || v == "identity" => Encoding::Identity,
        Some(v) if v == "gzip" || v == "x-gzip" => Encoding::Gzip,
        Some(v) => Encoding::Other(v),
    }
}

/// Inflates a gzip body; `None` when it would exceed `limit` bytes (a zip bomb stops
/// there, not at the end of memory).
fn gunzip(compressed: &[u8], limit: usize) -> std::io::Result<Option<Bytes>> {
    use std::io::Read as _;
    let mut plain = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)?;
    if plain.len() > limit {
        return Ok(None);
    }
    Ok(Some(Bytes::from(plain)))
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

/// `POST /api/search` body: the same as `GET /api/events`, plus Elasticsearch
/// aggregations (`terms`, `cardinality`, `date_histogram`, …) over every match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    #[serde(default)]
    pub query: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Most events to return (default 100; 0 for only the count and aggregations).
    pub size: Option<usize>,
    pub aggs: Option<serde_json::Value>,
    /// `utctimestamp` (default) or `receivedtimestamp`: what `from`/`to` bound.
    #[serde(default)]
    pub time_field: Option<String>,
}

async fn search_events(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(params) => params,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match params_body(params) {
        Ok(body) => run_search(Searched::Events(&state.store), body).await,
        Err(response) => response,
    }
}

/// The `GET` parameters as a search body (`size` 0 is refused there: a `GET` search
/// returns events).
#[allow(clippy::result_large_err)] // the error is the answer itself
fn params_body(params: SearchParams) -> Result<SearchBody, Response> {
    if params.size == Some(0) {
        return Err(error_body(
            StatusCode::BAD_REQUEST,
            format!("size must be between 1 and {MAX_SEARCH_SIZE}"),
        ));
    }
    Ok(SearchBody {
        query: params.q,
        from: params.from,
        to: params.to,
        size: params.size,
        aggs: None,
        time_field: None,
    })
}

/// `GET /api/alerts`: stored alerts, newest first; the same parameters as
/// `/api/events`, over the alert documents (`details.rule:ssh-bruteforce`,
/// `severity:ERROR`).
async fn search_alerts(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(params) => params,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(alerts) = state.alerts.clone() else {
        return error_body(
            StatusCode::NOT_FOUND,
            "alerts are off (no rules folder: collector.alerts.rules_dir)",
        );
    };
    match params_body(params) {
        Ok(body) => run_search(Searched::Alerts(alerts), body).await,
        Err(response) => response,
    }
}

async fn search_json(
    State(state): State<AppState>,
    body: Result<Json<SearchBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => run_search(Searched::Events(&state.store), body).await,
        Err(e) => error_body(StatusCode::BAD_REQUEST, e.body_text()),
    }
}

/// What a search runs over.
enum Searched<'a> {
    Events(&'a Arc<Store>),
    Alerts(Arc<crate::alerts::AlertStore>),
}

async fn run_search(searched: Searched<'_>, body: SearchBody) -> Response {
    let now = Utc::now();
    let bound = |text: &Option<String>| {
        text.as_deref()
            .map(|t| parse_time_bound(t, now))
            .transpose()
    };
    let from = match bound(&body.from) {
        Ok(t) => t,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    let to = match bound(&body.to) {
        Ok(t) => t,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let size = body.size.unwrap_or(100);
    if size > MAX_SEARCH_SIZE {
        return error_body(
            StatusCode::BAD_REQUEST,
            format!("size must be at most {MAX_SEARCH_SIZE}"),
        );
    }
    if body.aggs.as_ref().is_some_and(|a| !a.is_object()) {
        return error_body(StatusCode::BAD_REQUEST, "aggs must be a JSON object");
    }
    let time_field = match body.time_field.as_deref() {
        None | Some("utctimestamp") => TimeField::UtcTimestamp,
        Some("receivedtimestamp") => TimeField::ReceivedTimestamp,
        Some(other) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                format!("time_field {other:?} is not utctimestamp or receivedtimestamp"),
            );
        }
    };
    let request = SearchRequest {
        query: body.query,
        from,
        to,
        size,
        time_field,
        aggs: body.aggs,
    };
    let result = match searched {
        Searched::Events(store) => store.search(request).await,
        Searched::Alerts(alerts) => alerts.search(request).await,
    };
    match result {
        Ok(result) => (StatusCode::OK, Json(result)).into_response(),
        Err(e) if e.is_bad_request() => error_body(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            error!(error = %e, "Search failed.");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "search failed; retry later",
            )
        }
    }
}

#[cfg(test)]
mod tests;
