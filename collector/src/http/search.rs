//! The search API: `GET /api/events`, `POST /api/search`, `GET /api/alerts`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use tracing::error;

use crate::search::parse_time_bound;
use crate::stores::{SearchRequest, Store, TimeField};

use super::{AppState, MAX_SEARCH_SIZE, error_body};

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

pub(super) async fn search_events(
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
pub(super) async fn search_alerts(
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

pub(super) async fn search_json(
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
