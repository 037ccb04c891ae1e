//! The routes events come in by: `/events`, `/nxlog`, `/cef`, `/custom/<application>`
//! and `/_bulk`. A request is answered 200 only after its events are committed.

use std::ops::ControlFlow;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mozdef::wire::{self, ItemError};
use serde::Serialize;
use tracing::{debug, error, warn};

use crate::http::tls::Peer;
use crate::stores::{Document, StoreError};

use super::body::{BodyRead, Encoding, content_encoding, gunzip, read_body};
use super::{AppState, error_body};

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
}

impl Route {
    /// The `source` label of the route's metrics.
    fn source(&self) -> &'static str {
        match self {
            Route::Events => "events",
            Route::Endpoint(name) => name,
            Route::Custom(_) => "custom",
        }
    }

    /// The item to normalize.
    fn prepare(&self, value: serde_json::Value) -> serde_json::Value {
        match (self, value) {
            (Route::Endpoint(name), serde_json::Value::Object(mut object)) => {
                object.insert("endpoint".into(), serde_json::Value::String((*name).into()));
                serde_json::Value::Object(object)
            }
            (Route::Custom(application), serde_json::Value::Object(mut object)) => {
                object.insert(
                    "endpoint".into(),
                    serde_json::Value::String(application.clone()),
                );
                object.insert("customendpoint".into(), serde_json::Value::Bool(true));
                serde_json::Value::Object(object)
            }
            (_, value) => value,
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
                        replaces: false,
                    })
                }
                _ => Err(ItemError::Invalid(
                    "a custom document must be a JSON object".into(),
                )),
            };
        }
        let event =
            mozdef::normalize(value, received.at).map_err(|e| ItemError::Invalid(e.to_string()))?;
        Ok(finish_event(event, received))
    }
}

/// An item as read from a body: an event already in the schema's own shape, normalized
/// as it was read (what agents send; no `Value` on the way), or any other value.
#[allow(clippy::large_enum_variant)] // moved once, from the read to the store; a box would cost an allocation an event
enum ReadItem {
    Event(mozdef::Event),
    Value(serde_json::Value),
}

/// Reads one item of a body sent to `route`: `/events` items in the schema's own
/// shape straight into events ([`mozdef::normalize::normalize_canonical`]), the rest
/// as values.
fn read_item(
    route: &Route,
    bytes: &[u8],
    limit: usize,
    received: &Received<'_>,
) -> Result<ReadItem, ItemError> {
    if *route == Route::Events && bytes.len() <= limit {
        if let Some(event) = mozdef::normalize::normalize_canonical(bytes, received.at) {
            return event
                .map(ReadItem::Event)
                .map_err(|e| ItemError::Invalid(e.to_string()));
        }
    }
    wire::read_item(bytes, limit).map(ReadItem::Value)
}

/// A normalized event made ready to store: read again when it is raw syslog text,
/// `details.agentidentity` set from the client certificate (or removed), held to the
/// time window.
fn finish_event(mut event: mozdef::Event, received: &Received<'_>) -> Document {
    if received.reparser.apply(&mut event, received.at) {
        received.reparsed.set(received.reparsed.get() + 1);
    }
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
    Document::Event(event)
}

/// Where a client certificate's name is kept in each event.
const AGENT_IDENTITY: &str = "agentidentity";

/// What a request's items share: when and from whom they came, and the time window
/// they are held to.
pub(super) struct Received<'a> {
    pub(super) at: chrono::DateTime<Utc>,
    identity: Option<&'a str>,
    window: mozdef::normalize::TimeWindow,
    /// Events retimed so far (their time was outside the window).
    pub(super) retimed: std::cell::Cell<usize>,
    /// Parses raw syslog text again with the agent's parsers.
    reparser: &'a crate::reparse::Reparser,
    /// Events it changed (for `picket_events_reparsed_total`).
    pub(super) reparsed: std::cell::Cell<usize>,
}

impl<'a> Received<'a> {
    pub(super) fn now(state: &'a AppState, identity: Option<&'a str>) -> Received<'a> {
        Received {
            at: Utc::now(),
            identity,
            window: state.time_window,
            retimed: std::cell::Cell::new(0),
            reparser: &state.reparser,
            reparsed: std::cell::Cell::new(0),
        }
    }
}

/// The client certificate's name, when the request came with one.
pub(super) fn identity(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .and_then(|info| info.0.identity.clone())
}

/// An item sent to `/events` (or the Elasticsearch face) as the event to store.
pub(super) fn event_document(
    value: serde_json::Value,
    received: &Received<'_>,
) -> Result<Document, ItemError> {
    Route::Events.document(value, received)
}

/// An application name MozDef would take as a document type: letters, digits, `_`,
/// `-`, `.`; 1 to 64 of them.
fn valid_application(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

pub(super) async fn post_events(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Events).await
}

pub(super) async fn post_nxlog(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Endpoint("nxlog")).await
}

pub(super) async fn post_cef(state: State<AppState>, request: Request) -> Response {
    ingest(state, request, Route::Endpoint("cef")).await
}

pub(super) async fn post_custom(
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

async fn ingest(State(state): State<AppState>, request: Request, route: Route) -> Response {
    let identity = identity(&request);
    let (parts, body) = request.into_parts();
    let bytes = match read_request_body(&state, &parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let context = Received::now(&state, identity.as_deref());
    let items = match split_items(&state, &route, &bytes, &context) {
        Ok(items) => items,
        Err(answer) => return answer,
    };
    store_items(&state, &route, items).await
}

/// The request's body, read within the limits and decoded; else the answer that says
/// why not.
pub(super) async fn read_request_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Bytes, Response> {
    let metrics = &state.metrics;
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
        return Err(too_large());
    }
    let bytes = match read_body(body, state.max_body_bytes, state.min_body_bytes_per_sec).await {
        Ok(bytes) => bytes,
        Err(BodyRead::TooLarge) => return Err(too_large()),
        Err(BodyRead::TooSlow { bytes, seconds }) => {
            metrics.refused("slow_body");
            warn!(
                bytes,
                seconds, "A request body arrived too slowly; refused with 408."
            );
            return Err(error_body(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body arrived slower than {} bytes/s ({bytes} bytes in {seconds} s); collector.http.min_body_bytes_per_sec",
                    state.min_body_bytes_per_sec
                ),
            ));
        }
        Err(BodyRead::Failed) => return Err(bad_body("request body could not be read".into())),
    };
    match content_encoding(headers) {
        Encoding::Identity => Ok(bytes),
        Encoding::Gzip => match gunzip(&bytes, state.max_body_bytes) {
            Ok(Some(plain)) => Ok(plain),
            Ok(None) => Err(too_large()),
            Err(e) => Err(bad_body(format!("request body is not valid gzip: {e}"))),
        },
        Encoding::Other(name) => {
            metrics.refused("bad_body");
            Err(error_body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {name:?} is not supported (use gzip or none)"),
            ))
        }
    }
}

/// A request's items, checked: the documents to store and what was refused.
struct Items {
    /// Items in the request.
    received: usize,
    events: Vec<Document>,
    /// Each event's position in the request, for the store's per-event refusals.
    positions: Vec<usize>,
    rejected: Rejections,
    /// Every refused item was refused for its size (413 when nothing is left).
    all_too_large: bool,
}

/// Splits the body into items and makes each a document (counting what is refused and
/// retimed); an answer instead when the request itself is refused.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn split_items(
    state: &AppState,
    route: &Route,
    bytes: &[u8],
    context: &Received<'_>,
) -> Result<Items, Response> {
    let metrics = &state.metrics;
    let mut items = Items {
        received: 0,
        events: Vec::new(),
        positions: Vec::new(),
        rejected: Rejections::default(),
        all_too_large: true,
    };
    let mut too_many = false;
    let read = |bytes: &[u8], limit| read_item(route, bytes, limit, context);
    let split = wire::for_each_item_read(bytes, state.max_event_bytes, read, |position, item| {
        items.received += 1;
        if items.received > state.max_events_per_request {
            too_many = true;
            return ControlFlow::Break(());
        }
        let document = item.and_then(|item| match item {
            ReadItem::Event(event) => Ok(finish_event(event, context)),
            ReadItem::Value(value) => route.document(route.prepare(value), context),
        });
        match document {
            Ok(document) => {
                items.events.push(document);
                items.positions.push(position);
            }
            Err(e) => {
                items.all_too_large &= matches!(e, ItemError::TooLarge { .. });
                items.rejected.push(position, &e);
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = split {
        metrics.refused("bad_body");
        return Err(error_body(StatusCode::BAD_REQUEST, e.to_string()));
    }
    if items.received == 0 {
        metrics.refused("bad_body");
        return Err(error_body(
            StatusCode::BAD_REQUEST,
            "the request holds no event (an empty JSON array)",
        ));
    }
    if too_many {
        metrics.refused("too_many_events");
        return Err(error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request holds more than {} events (collector.http.max_events_per_request); send smaller batches",
                state.max_events_per_request
            ),
        ));
    }
    for (reason, n) in items.rejected.by_reason() {
        metrics.rejected_n(reason, n);
    }
    metrics.reparsed(context.reparsed.get());
    if context.retimed.get() > 0 {
        metrics.retimed(context.retimed.get());
        debug!(
            retimed = context.retimed.get(),
            "Events timed at reception: their time was outside the accepted window."
        );
    }
    metrics.received(route.source(), items.received);
    if items.rejected.count > 0 {
        warn!(
            received = items.received,
            rejected = items.rejected.count,
            "Refused events in a request; the answer names them by position."
        );
    }
    Ok(items)
}

/// Stores the accepted items and answers: 200 once they are committed, 409 when every
/// one conflicts with a stored event, 503 when the store failed (the sender retries).
async fn store_items(state: &AppState, route: &Route, items: Items) -> Response {
    let metrics = &state.metrics;
    let Items {
        received,
        events,
        positions,
        mut rejected,
        all_too_large,
    } = items;
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
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(StoreError::Busy) => {
            // The store logged it (once per stretch); the sender waits and resends.
            metrics.refused("store_busy");
            return super::retry_shortly(
                "the collector is busy indexing what it was sent; retry shortly",
            );
        }
        Err(e) => {
            metrics.refused("store_failed");
            error!(error = %e, received, "Store failed; the sender is told to retry.");
            return error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "events could not be stored; retry later",
            );
        }
    };
    metrics.stored(route.source(), outcome.stored);
    metrics.rejected_n("store_refused", outcome.dead_lettered.len());
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
    let status = if outcome.stored == 0 && outcome.dead_lettered.is_empty() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let answer = IngestAnswer {
        received,
        stored: outcome.stored,
        rejected_count: rejected.count,
        rejected: rejected.first,
        deadlettered: outcome.dead_lettered.len(),
        error: (status != StatusCode::OK)
            .then(|| "no event in the request was accepted".to_string()),
    };
    (status, Json(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use picket_parsers::host::HostIdentity;
    use picket_parsers::{LineContext, LineParser, TimeZoneChoice};

    /// Every event the agent's parsers make of the fixtures' and the shared corpora's
    /// lines is read by the fast path (no `Value` on the way), and read as the general
    /// path reads it.
    #[test]
    fn agent_events_take_the_fast_path_and_agree_with_the_general_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for dir in [root.join("tests/fixtures"), root.join("../shared/corpus")] {
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "log") {
                        files.push(path);
                    }
                }
            }
        }
        assert!(files.len() > 10, "fixtures found: {files:?}");
        let parser = LineParser::new(
            HostIdentity::named("collector-test"),
            TimeZoneChoice::parse("UTC").unwrap(),
        );
        let received = chrono::Utc::now();
        let mut lines = 0;
        for file in files {
            let text = std::fs::read(&file).unwrap();
            for (offset, line) in text.split(|&b| b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let context = LineContext {
                    source: "/var/log/auth.log",
                    source_identity: "fixture",
                    offset: offset as u64,
                    read_at: received,
                };
                let sent = serde_json::to_string(&parser.parse(line, &context)).unwrap();
                let fast = mozdef::normalize::normalize_canonical(sent.as_bytes(), received)
                    .unwrap_or_else(|| panic!("not taken by the fast path: {sent}"));
                let general = mozdef::normalize(serde_json::from_str(&sent).unwrap(), received);
                assert_eq!(fast, general, "{}: {sent}", file.display());
                lines += 1;
            }
        }
        assert!(lines > 500, "{lines} lines");
    }
}
