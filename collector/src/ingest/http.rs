//! The HTTP API: MozDef loginput's `POST`/`PUT /events` (one JSON object, a JSON array,
//! or NDJSON; gzip bodies accepted), `/nxlog` and `/cef` (the same, with `endpoint`
//! set as MozDef does), `POST /_bulk` (Elasticsearch bulk bodies, action lines
//! skipped), `GET /status` and `GET /test`, and the search API `GET /api/events`. Bearer tokens and the request guards are in [`super::auth`].
//!
//! A request is answered 200 only after its events are committed to the store. Each
//! item refused (not JSON, not an object, too large) is reported by position while the
//! good ones are stored. Error bodies are JSON, `{"error": "..."}`, and say what was
//! wrong with the request, never internal details.

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use http_body_util::BodyExt;
use mozdef::wire::{self, ItemError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, error, warn};

use crate::ingest::auth::{self, Access, Guards};
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
        .route("/_bulk", post(post_bulk).put(post_bulk))
        .route("/status", get(status))
        .route("/test", get(status))
        .route("/api/events", get(search_events))
        .route("/api/search", post(search_json))
        .route("/api/alerts", get(search_alerts))
        .route("/metrics", get(metrics))
        .with_state(state)
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

/// One refused item in an ingest answer.
#[derive(Debug, Serialize)]
struct Rejected {
    position: usize,
    reason: String,
}

/// The items a request refused: every one counted, the first [`MAX_REJECTIONS_SHOWN`]
/// named (a 10 KB gzip body of 5 million broken lines must not become a 360 MB answer).
#[derive(Debug, Default)]
struct Rejections {
    first: Vec<Rejected>,
    count: usize,
    too_large: usize,
    not_json: usize,
    invalid: usize,
}

/// Refused items an ingest answer names; the rest are only counted.
pub const MAX_REJECTIONS_SHOWN: usize = 100;

impl Rejections {
    fn push(&mut self, position: usize, error: &ItemError) {
        self.count += 1;
        match error {
            ItemError::TooLarge { .. } => self.too_large += 1,
            ItemError::NotJson(_) => self.not_json += 1,
            ItemError::Invalid(_) => self.invalid += 1,
        }
        if self.first.len() < MAX_REJECTIONS_SHOWN {
            self.first.push(Rejected {
                position,
                reason: error.to_string(),
            });
        }
    }

    fn by_reason(&self) -> [(&'static str, usize); 3] {
        [
            ("too_large", self.too_large),
            ("not_json", self.not_json),
            ("invalid", self.invalid),
        ]
    }
}

#[derive(Debug, Serialize)]
struct IngestAnswer {
    received: usize,
    stored: usize,
    /// The first [`MAX_REJECTIONS_SHOWN`] refused items.
    rejected: Vec<Rejected>,
    /// Every refused item, named or not.
    rejected_count: usize,
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

    /// The document to store from a prepared item. `details.agentidentity` is the
    /// client certificate's name, or absent: whatever the sender put there is
    /// replaced or removed, on every route, so no sender can pass as another.
    fn document(
        &self,
        value: serde_json::Value,
        received: &Received<'_>,
    ) -> Result<Document, ItemError> {
        if let Route::Custom(_) = self {
            return match value {
                serde_json::Value::Object(mut source) => {
                    source.remove(AGENT_IDENTITY);
                    let identity = received.identity.map(serde_json::Value::from);
                    match (source.get_mut("details"), identity) {
                        (Some(serde_json::Value::Object(details)), identity) => {
                            details.remove(AGENT_IDENTITY);
                            if let Some(identity) = identity {
                                details.insert(AGENT_IDENTITY.into(), identity);
                            }
                        }
                        (None, Some(identity)) => {
                            source.insert(
                                "details".into(),
                                serde_json::json!({ AGENT_IDENTITY: identity }),
                            );
                        }
                        (Some(_), Some(identity)) => {
                            source.insert(AGENT_IDENTITY.into(), identity);
                        }
                        (_, None) => {}
                    }
                    Ok(Document::Custom {
                        id: crate::alerts::new_id(),
                        received: received.at,
                        source,
                    })
                }
                _ => Err(ItemError::Invalid(
                    "a custom document must be a JSON object".into(),
                )),
            };
        }
        let mut event =
            mozdef::normalize(value, received.at).map_err(|e| ItemError::Invalid(e.to_string()))?;
        match received.identity {
            Some(identity) => {
                event
                    .details
                    .insert(AGENT_IDENTITY.into(), serde_json::Value::from(identity));
            }
            None => {
                event.details.remove(AGENT_IDENTITY);
            }
        }
        if received.window.hold(&mut event, received.at) {
            received.retimed.set(received.retimed.get() + 1);
        }
        Ok(Document::Event(event))
    }
}

/// Where a client certificate's name is kept in each event.
const AGENT_IDENTITY: &str = "agentidentity";

/// What a request's items share: when and from whom they came, and the time window
/// they are held to.
struct Received<'a> {
    at: chrono::DateTime<Utc>,
    identity: Option<&'a str>,
    window: mozdef::normalize::TimeWindow,
    /// Events retimed so far (their time was outside the window).
    retimed: std::cell::Cell<usize>,
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
    let bytes: Bytes = match read_body(body, state.max_body_bytes, state.min_body_bytes_per_sec)
        .await
    {
        Ok(bytes) => bytes,
        Err(BodyRead::TooLarge) => return too_large(),
        Err(BodyRead::TooSlow { bytes, seconds }) => {
            metrics.refused("slow_body");
            warn!(
                bytes,
                seconds, "A request body arrived too slowly; refused with 408."
            );
            return error_body(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body arrived slower than {} bytes/s ({bytes} bytes in {seconds} s); collector.http.min_body_bytes_per_sec",
                    state.min_body_bytes_per_sec
                ),
            );
        }
        Err(BodyRead::Failed) => return bad_body("request body could not be read".into()),
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
    let context = Received {
        at: Utc::now(),
        identity: identity.as_deref(),
        window: state.time_window,
        retimed: std::cell::Cell::new(0),
    };
    let mut received = 0;
    let mut events = Vec::new();
    // Each event's position in the request, for the store's per-event refusals.
    let mut positions = Vec::new();
    let mut rejected = Rejections::default();
    let mut all_too_large = true;
    let mut too_many = false;
    let split = wire::for_each_item(&bytes, state.max_event_bytes, |position, item| {
        let item = match item {
            Ok(value) => match route.prepare(value) {
                Some(value) => Ok(value),
                None => return ControlFlow::Continue(()),
            },
            Err(e) => Err(e),
        };
        received += 1;
        if received > state.max_events_per_request {
            too_many = true;
            return ControlFlow::Break(());
        }
        match item.and_then(|value| route.document(value, &context)) {
            Ok(document) => {
                events.push(document);
                positions.push(position);
            }
            Err(e) => {
                all_too_large &= matches!(e, ItemError::TooLarge { .. });
                rejected.push(position, &e);
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = split {
        return bad_body(e.to_string());
    }
    if too_many {
        metrics.refused("too_many_events");
        return error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request holds more than {} events (collector.http.max_events_per_request); send smaller batches",
                state.max_events_per_request
            ),
        );
    }
    for (reason, n) in rejected.by_reason() {
        metrics.rejected_n(reason, n);
    }
    if context.retimed.get() > 0 {
        metrics.retimed(context.retimed.get());
        debug!(
            retimed = context.retimed.get(),
            "Events timed at reception: their time was outside the accepted window."
        );
    }
    metrics.received(route.source(), received);
    if rejected.count > 0 {
        warn!(
            received,
            rejected = rejected.count,
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
            rejected_count: rejected.count,
            rejected: rejected.first,
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
            if !outcome.conflicts.is_empty() {
                metrics.rejected_n("conflict", outcome.conflicts.len());
                warn!(
                    conflicts = outcome.conflicts.len(),
                    "Refused events whose eventid is already stored with a different body (the first copy wins)."
                );
                let mut conflicts = outcome.conflicts.clone();
                conflicts.sort_unstable();
                for i in conflicts {
                    rejected.push(
                        positions[i],
                        &ItemError::Invalid(
                            "an event with this eventid is already stored with a different body; stored events are not replaced".into(),
                        ),
                    );
                }
                rejected.first.sort_by_key(|r| r.position);
            }
            debug!(received, stored = outcome.stored, "Stored a request.");
            let status = if outcome.stored == 0 && outcome.dead_lettered == 0 {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            let answer = IngestAnswer {
                received,
                stored: outcome.stored,
                rejected_count: rejected.count,
                rejected: rejected.first,
                deadlettered: outcome.dead_lettered,
                error: (status != StatusCode::OK)
                    .then(|| "no event in the request was accepted".to_string()),
            };
            (status, Json(answer)).into_response()
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

/// Why a body could not be read.
enum BodyRead {
    TooLarge,
    TooSlow { bytes: usize, seconds: u64 },
    Failed,
}

/// How long any body may take before the minimum rate applies.
const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a body of at most `limit` bytes, arriving at `min_rate` bytes/s or faster
/// after its first [`BODY_GRACE`] (0: no minimum): a client trickling a body a byte at
/// a time is cut off in seconds, not after the whole request timeout, so a few
/// hundred of them cannot hold every request slot.
async fn read_body(
    mut body: axum::body::Body,
    limit: usize,
    min_rate: u64,
) -> Result<Bytes, BodyRead> {
    let started = tokio::time::Instant::now();
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let frame = if min_rate == 0 {
            body.frame().await
        } else {
            let allowed = BODY_GRACE
                + std::time::Duration::from_secs_f64(buffer.len() as f64 / min_rate as f64);
            match tokio::time::timeout_at(started + allowed, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    return Err(BodyRead::TooSlow {
                        bytes: buffer.len(),
                        seconds: started.elapsed().as_secs(),
                    });
                }
            }
        };
        match frame {
            None => return Ok(Bytes::from(buffer)),
            Some(Err(_)) => return Err(BodyRead::Failed),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buffer.len() + data.len() > limit {
                        return Err(BodyRead::TooLarge);
                    }
                    buffer.extend_from_slice(&data);
                }
            }
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
        Ok(body) => {
            run_search(
                Searched::Events(&state.store),
                body,
                state.max_response_bytes,
            )
            .await
        }
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
        Ok(body) => run_search(Searched::Alerts(alerts), body, state.max_response_bytes).await,
        Err(response) => response,
    }
}

async fn search_json(
    State(state): State<AppState>,
    body: Result<Json<SearchBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => {
            run_search(
                Searched::Events(&state.store),
                body,
                state.max_response_bytes,
            )
            .await
        }
        Err(e) => error_body(StatusCode::BAD_REQUEST, e.body_text()),
    }
}

/// What a search runs over.
enum Searched<'a> {
    Events(&'a Arc<Store>),
    Alerts(Arc<crate::alerts::AlertStore>),
}

async fn run_search(searched: Searched<'_>, body: SearchBody, max_bytes: usize) -> Response {
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
        max_bytes,
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
