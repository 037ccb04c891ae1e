//! Indexing through the Elasticsearch face: `_bulk` bodies and single documents, each
//! item answered as Elasticsearch answers it.
//!
//! - An action's `_id` becomes the event's `eventid`, so a resend is the same event:
//!   `index` of a stored id answers 200 `updated` (nothing is rewritten), `create` of
//!   one answers 409 `version_conflict_engine_exception`, which shippers that use
//!   `create` (Beats, Logstash's data streams) take as delivered. Without `_id` the
//!   event's id comes from its content, so a resend still makes no second event.
//! - The same id with a different body is a 409 (stored events are not replaced).
//! - `update` and `delete` are refused item by item (400): stored events do not change.
//! - A line that is not an action (MozDef-era bodies of bare documents) is a document
//!   with an implied `index`.
//! - The whole request answers 200 once the events are committed, `errors: true` when
//!   any item failed; 503 when the store failed (clients retry the request).

use std::ops::ControlFlow;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mozdef::wire::{self, ItemError};
use serde_json::{Map, Value, json};
use tracing::{debug, error, warn};

use super::es_error;
use crate::http::AppState;
use crate::http::ingest::{Received, event_document, identity, read_request_body};
use crate::stores::{Document, StoreError};

/// The index named when an action and the path name none.
const DEFAULT_INDEX: &str = "events";

/// What an action asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Index,
    Create,
    Update,
    Delete,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        match name {
            "index" => Some(Op::Index),
            "create" => Some(Op::Create),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Index => "index",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One action: what it asked, and where its document is in the batch handed to the
/// store or why it has none.
struct Action {
    op: Op,
    index: String,
    id: Option<String>,
    outcome: Result<usize, Failure>,
}

/// An item that failed, in Elasticsearch's terms.
struct Failure {
    status: StatusCode,
    kind: &'static str,
    reason: String,
}

impl Failure {
    fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            kind,
            reason: reason.into(),
        }
    }

    /// A document that cannot be an event, with the metric reason it counts under.
    fn of_item(error: &ItemError) -> (Failure, &'static str) {
        match error {
            ItemError::TooLarge { .. } => (
                Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "document_parsing_exception",
                    error.to_string(),
                ),
                "too_large",
            ),
            ItemError::NotJson(_) => (
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "document_parsing_exception",
                    error.to_string(),
                ),
                "not_json",
            ),
            ItemError::Invalid(_) => (
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "document_parsing_exception",
                    error.to_string(),
                ),
                "invalid",
            ),
        }
    }
}

/// The actions of one request and the documents they bring.
struct Batch<'a> {
    actions: Vec<Action>,
    documents: Vec<Document>,
    received: Received<'a>,
    state: &'a AppState,
}

impl<'a> Batch<'a> {
    fn new(state: &'a AppState, received: Received<'a>) -> Batch<'a> {
        Batch {
            actions: Vec::new(),
            documents: Vec::new(),
            received,
            state,
        }
    }

    /// Adds an action with its document (or what was wrong with it).
    fn push(
        &mut self,
        op: Op,
        index: String,
        id: Option<String>,
        source: Option<Result<Value, ItemError>>,
    ) {
        let metrics = &self.state.metrics;
        let outcome = match (op, source) {
            (Op::Update, _) => {
                metrics.rejected("invalid");
                Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "illegal_argument_exception",
                    "update is not supported: stored events are not changed",
                ))
            }
            (Op::Delete, _) => {
                metrics.rejected("invalid");
                Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "illegal_argument_exception",
                    "delete is not supported: stored events are not deleted",
                ))
            }
            (_, None) => {
                metrics.rejected("invalid");
                Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "action_request_validation_exception",
                    format!("the {} action has no document line after it", op.name()),
                ))
            }
            (_, Some(source)) => match self.document(source, id.as_deref()) {
                Ok(document) => {
                    self.documents.push(document);
                    Ok(self.documents.len() - 1)
                }
                Err(e) => {
                    let (failure, reason) = Failure::of_item(&e);
                    metrics.rejected(reason);
                    Err(failure)
                }
            },
        };
        self.actions.push(Action {
            op,
            index,
            id,
            outcome,
        });
    }

    /// The event of a document line; an action's `_id` is its `eventid`.
    fn document(
        &self,
        source: Result<Value, ItemError>,
        id: Option<&str>,
    ) -> Result<Document, ItemError> {
        let mut object = match source? {
            Value::Object(object) => object,
            _ => {
                return Err(ItemError::Invalid(
                    "the document must be a JSON object".into(),
                ));
            }
        };
        if let Some(id) = id {
            object.retain(|key, _| !key.trim_start_matches('@').eq_ignore_ascii_case("eventid"));
            object.insert("eventid".into(), Value::String(id.to_string()));
        }
        event_document(Value::Object(object), &self.received)
    }

    /// Stores the documents; each action's answer, or the answer for the whole
    /// request when the store failed.
    async fn store(self) -> Result<Vec<Answered>, Response> {
        let Batch {
            actions,
            documents,
            received,
            state,
        } = self;
        let metrics = &state.metrics;
        metrics.received("bulk", actions.len());
        metrics.reparsed(received.reparsed.get());
        if received.retimed.get() > 0 {
            metrics.retimed(received.retimed.get());
        }
        let ids: Vec<String> = documents.iter().map(|d| d.id().to_string()).collect();
        let outcome = if documents.is_empty() {
            Default::default()
        } else {
            metrics.store_started();
            let started = Instant::now();
            let stored = state.store.store(documents).await;
            metrics.store_finished(started.elapsed());
            match stored {
                Ok(outcome) => outcome,
                Err(StoreError::Busy) => {
                    // What Elasticsearch answers when its write queue is full: clients
                    // back off and resend on a 429.
                    metrics.refused("store_busy");
                    return Err(es_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "es_rejected_execution_exception",
                        "the collector is busy indexing what it was sent; retry shortly",
                    ));
                }
                Err(e) => {
                    metrics.refused("store_failed");
                    error!(error = %e, actions = actions.len(), "Store failed; the sender is told to retry.");
                    return Err(es_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable_shards_exception",
                        "events could not be stored; retry later",
                    ));
                }
            }
        };
        metrics.stored("bulk", outcome.stored);
        metrics.rejected_n("store_refused", outcome.dead_lettered.len());
        metrics.rejected_n("conflict", outcome.conflicts.len());
        if !outcome.conflicts.is_empty() {
            warn!(
                conflicts = outcome.conflicts.len(),
                "Refused events whose id is already stored with a different body (the first copy wins)."
            );
        }
        // What the store did with each document, by position: looked up once, not per
        // action in the store's lists (a resent batch of 10,000 lists 10,000 as existing).
        let mut fates = vec![Fate::Created; ids.len()];
        for &i in &outcome.existing {
            fates[i] = Fate::Existed;
        }
        for (i, reason) in outcome.dead_lettered {
            fates[i] = Fate::Refused(reason);
        }
        for &i in &outcome.conflicts {
            fates[i] = Fate::Conflict;
        }
        let answered = actions
            .into_iter()
            .map(|action| {
                let (id, result) = match action.outcome {
                    Err(failure) => (action.id, Err(failure)),
                    Ok(position) => {
                        let id = ids[position].clone();
                        let result = fates[position].answer(action.op, &id);
                        (Some(id), result)
                    }
                };
                Answered {
                    op: action.op,
                    index: action.index,
                    id,
                    result,
                }
            })
            .collect();
        Ok(answered)
    }
}

/// What the store did with one document.
#[derive(Clone)]
enum Fate {
    Created,
    /// Already stored with the same body (a resend).
    Existed,
    /// Another body is stored under its id.
    Conflict,
    /// Refused for good by the store (dead-lettered), with the reason.
    Refused(String),
}

impl Fate {
    /// The item's `result` and status, or its failure, for an action `op` on `id`.
    fn answer(&self, op: Op, id: &str) -> Result<(&'static str, StatusCode), Failure> {
        match self {
            Fate::Created => Ok(("created", StatusCode::CREATED)),
            Fate::Existed if op != Op::Create => Ok(("updated", StatusCode::OK)),
            Fate::Existed => Err(Failure::new(
                StatusCode::CONFLICT,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists (current version [1])"),
            )),
            Fate::Conflict => Err(Failure::new(
                StatusCode::CONFLICT,
                "version_conflict_engine_exception",
                format!(
                    "[{id}]: version conflict, a different document with this id is already stored (stored events are not replaced)"
                ),
            )),
            Fate::Refused(reason) => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "document_parsing_exception",
                reason.clone(),
            )),
        }
    }
}

/// What became of one action.
struct Answered {
    op: Op,
    index: String,
    id: Option<String>,
    /// `result` and status, or the failure.
    result: Result<(&'static str, StatusCode), Failure>,
}

impl Answered {
    /// The item as `_bulk` answers it (without the action's name around it).
    fn body(&self) -> Value {
        match &self.result {
            Ok((result, status)) => json!({
                "_index": self.index,
                "_id": self.id,
                "_version": 1,
                "result": result,
                "_shards": { "total": 1, "successful": 1, "failed": 0 },
                "_seq_no": 0,
                "_primary_term": 1,
                "status": status.as_u16(),
            }),
            Err(failure) => json!({
                "_index": self.index,
                "_id": self.id,
                "status": failure.status.as_u16(),
                "error": { "type": failure.kind, "reason": failure.reason },
            }),
        }
    }
}

/// `{"index": {...}}` and its kin: one key naming an action, whose value is an object.
fn as_action(value: &Value) -> Option<(Op, &Map<String, Value>)> {
    let object = value.as_object().filter(|o| o.len() == 1)?;
    let (name, meta) = object.iter().next()?;
    Some((Op::parse(name)?, meta.as_object()?))
}

/// An `_id` as Elasticsearch takes it: a string (a number is read as its text).
fn action_id(meta: &Map<String, Value>) -> Option<String> {
    match meta.get("_id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(in crate::http) async fn post_bulk(state: State<AppState>, request: Request) -> Response {
    bulk(state, request, None).await
}

pub(in crate::http) async fn post_index_bulk(
    state: State<AppState>,
    Path(index): Path<String>,
    request: Request,
) -> Response {
    bulk(state, request, Some(index)).await
}

async fn bulk(
    State(state): State<AppState>,
    request: Request,
    path_index: Option<String>,
) -> Response {
    let started = Instant::now();
    let identity = identity(&request);
    let (parts, body) = request.into_parts();
    let bytes = match read_request_body(&state, &parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let default_index = path_index.as_deref().unwrap_or(DEFAULT_INDEX);
    let mut batch = Batch::new(&state, Received::now(&state, identity.as_deref()));
    if let Some(refusal) = read_actions(&state, &bytes, default_index, &mut batch) {
        return refusal;
    }
    let answered = match batch.store().await {
        Ok(answered) => answered,
        Err(answer) => return answer,
    };
    let errors = answered.iter().any(|a| a.result.is_err());
    if errors {
        let failed = answered.iter().filter(|a| a.result.is_err()).count();
        debug!(
            failed,
            of = answered.len(),
            "A bulk request had items that failed; the answer names them."
        );
    }
    let items: Vec<Value> = answered
        .iter()
        .map(|a| json!({ a.op.name(): a.body() }))
        .collect();
    axum::Json(json!({
        "took": started.elapsed().as_millis() as u64,
        "errors": errors,
        "items": items,
    }))
    .into_response()
}

/// Pushes the body's actions and documents onto `batch` in order; returns the answer
/// that refuses the whole request instead (unreadable, too many actions, none).
fn read_actions(
    state: &AppState,
    bytes: &[u8],
    default_index: &str,
    batch: &mut Batch,
) -> Option<Response> {
    // An action waiting for its document line.
    let mut waiting: Option<(Op, String, Option<String>)> = None;
    let mut too_many = false;
    // A body that starts with an action is Elasticsearch's: a line that cannot be read
    // where an action belongs may have been one, and guessing would pair the wrong
    // answers with the client's actions, so the request is refused whole (as
    // Elasticsearch does). A readable object there is a bare document, as in the
    // MozDef-era bodies of bare documents.
    let mut actions_first: Option<bool> = None;
    let mut malformed: Option<usize> = None;
    let split = wire::for_each_item(bytes, state.max_event_bytes, |position, item| {
        if let Some((op, index, id)) = waiting.take() {
            batch.push(op, index, id, Some(item));
            return ControlFlow::Continue(());
        }
        if batch.actions.len() >= state.max_events_per_request {
            too_many = true;
            return ControlFlow::Break(());
        }
        let action = item.as_ref().ok().and_then(as_action);
        let first = *actions_first.get_or_insert(action.is_some());
        if first && item.is_err() {
            malformed = Some(position + 1);
            return ControlFlow::Break(());
        }
        match action {
            Some((op, meta)) => {
                let index = meta
                    .get("_index")
                    .and_then(Value::as_str)
                    .unwrap_or(default_index)
                    .to_string();
                let id = action_id(meta);
                if op == Op::Delete {
                    batch.push(op, index, id, None);
                } else {
                    waiting = Some((op, index, id));
                }
            }
            // A bare document: an implied `index`.
            None => batch.push(Op::Index, default_index.to_string(), None, Some(item)),
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = split {
        state.metrics.refused("bad_body");
        return Some(es_error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            e.to_string(),
        ));
    }
    if let Some(line) = malformed {
        state.metrics.refused("bad_body");
        return Some(es_error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("Malformed action/metadata line [{line}]: it is not a JSON object"),
        ));
    }
    if too_many {
        state.metrics.refused("too_many_events");
        return Some(es_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "illegal_argument_exception",
            format!(
                "the request holds more than {} actions (collector.http.max_events_per_request); send smaller batches",
                state.max_events_per_request
            ),
        ));
    }
    if let Some((op, index, id)) = waiting {
        batch.push(op, index, id, None);
    }
    if batch.actions.is_empty() {
        state.metrics.refused("bad_body");
        return Some(es_error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "the request holds no action",
        ));
    }
    None
}

pub(in crate::http) async fn post_doc(
    state: State<AppState>,
    Path(index): Path<String>,
    request: Request,
) -> Response {
    one(state, request, Op::Index, index, None).await
}

pub(in crate::http) async fn put_doc_id(
    state: State<AppState>,
    Path((index, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    one(state, request, Op::Index, index, Some(id)).await
}

pub(in crate::http) async fn put_create_id(
    state: State<AppState>,
    Path((index, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    one(state, request, Op::Create, index, Some(id)).await
}

/// One document (`/{index}/_doc`, `/{index}/_doc/{id}`, `/{index}/_create/{id}`),
/// answered as Elasticsearch answers it: the item's body with its status, or its error.
async fn one(
    State(state): State<AppState>,
    request: Request,
    op: Op,
    index: String,
    id: Option<String>,
) -> Response {
    let identity = identity(&request);
    let (parts, body) = request.into_parts();
    let bytes = match read_request_body(&state, &parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let source = if bytes.len() > state.max_event_bytes {
        Err(ItemError::TooLarge {
            bytes: bytes.len(),
            limit: state.max_event_bytes,
        })
    } else {
        serde_json::from_slice::<Value>(&bytes).map_err(|e| ItemError::NotJson(e.to_string()))
    };
    let mut batch = Batch::new(&state, Received::now(&state, identity.as_deref()));
    batch.push(op, index, id, Some(source));
    let answered = match batch.store().await {
        Ok(mut answered) => answered.remove(0),
        Err(answer) => return answer,
    };
    match &answered.result {
        Ok((_, status)) => {
            let mut body = answered.body();
            if let Some(object) = body.as_object_mut() {
                object.remove("status");
            }
            (*status, axum::Json(body)).into_response()
        }
        Err(failure) => es_error(failure.status, failure.kind, failure.reason.clone()),
    }
}
