//! The web console (`[collector.console]`): a page for analysts served by the
//! collector itself at `/console/`, on the API's listener and TLS, and the few routes
//! it needs beside the search API.
//!
//! - The page (`collector/console/`: one HTML file, one script, one style sheet, no
//!   build step, compiled into the binary) draws everything in the browser from JSON.
//! - Its session: `POST /console/api/login` (a user of `users_file`, or a bearer token
//!   pasted in when there is no users file), `GET /console/api/session`,
//!   `POST /console/api/logout`; see [`sessions`] for the cookie and CSRF rules and
//!   [`crate::http::auth`] for what each role may do (a shipper gets 403 here).
//! - What the API lacked: `GET /api/hosts` (every host heard from, its last heartbeat
//!   and agent state, events a minute), `GET /api/fields` (field names for the query
//!   box), `GET /api/alerts/<id>` and `POST /api/alerts/<id>/status` (triage, stored
//!   in the alert itself, MozDef's `status` field, on both stores).

pub mod config;
pub mod sessions;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{error, info, warn};

pub use self::config::{ConsoleConfig, ConsoleSettings};
use crate::http::auth::Caller;
use crate::http::role::Role;
use crate::http::{AppState, error_body};
use crate::stores::{SearchRequest, StoreError, TimeField};

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

/// The console's routes (its page, its session) and the API routes it added.
pub fn routes(settings: &ConsoleSettings) -> Router<AppState> {
    let api = Router::new()
        .route("/api/hosts", get(hosts))
        .route("/api/fields", get(fields))
        .route("/api/alerts/{id}", get(alert))
        .route("/api/alerts/{id}/status", post(alert_status));
    if !settings.enabled {
        return api;
    }
    api.route("/console", get(redirect_to_console))
        .route("/console/", get(page))
        .route("/console/index.html", get(page))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
        .route("/console/api/session", get(session))
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
}

async fn redirect_to_console() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, "/console/")],
    )
        .into_response()
}

/// A static asset, never cached stale (the binary may be upgraded under it), never
/// framed by another site, scripts only from here.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// Who the console is logged in as.
fn who(user: &str, role: Role, csrf: Option<&str>) -> Value {
    json!({ "user": user, "role": role.name(), "csrf": csrf })
}

/// `GET /console/api/session`: the session's user, role and CSRF token; 401 (saying
/// whether there are users to log in as) without one. With `open_reads`, anyone
/// reads as `anonymous`.
async fn session(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    let caller = caller.map(|c| c.0);
    if let Some(session) = caller.as_ref().and_then(|c| c.session.as_ref()) {
        return Json(who(&session.user, session.role, Some(&session.csrf))).into_response();
    }
    let grants = state.access.grants();
    if grants.open_reads {
        return Json(json!({ "user": "anonymous", "role": "reader", "csrf": null }))
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "error": "not logged in",
            "users": grants.users.is_some(),
        })),
    )
        .into_response()
}

/// `POST /console/api/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// `POST /console/api/login`: a user of `users_file` and its password, or a bearer
/// token; sets the session cookie. A shipper may not log in.
async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<crate::http::tls::Peer>>>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let address = peer.map(|p| p.0.0.address.ip());
    if let Some(Err(wait)) = address.map(|a| state.access.sessions.login_allowed(a)) {
        state.metrics.refused("login_throttled");
        let mut response = error_body(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many wrong logins from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let Json(login) = match body {
        Ok(body) => body,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let grants = state.access.grants();
    let (name, role) = match (&login.user, &login.password, &login.token) {
        (Some(user), Some(password), None) if !user.is_empty() => {
            let Some(users) = &grants.users else {
                return error_body(
                    StatusCode::UNAUTHORIZED,
                    "there are no users to log in as (collector.http.users_file); log in with a reader or analyst token",
                );
            };
            (user.clone(), users.role_of(user, password).await)
        }
        (None, None, Some(token)) if !token.trim().is_empty() => {
            ("token".to_string(), state.access.token_role(token.trim()))
        }
        _ => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "send {\"user\": ..., \"password\": ...} or {\"token\": ...}",
            );
        }
    };
    let peer = address.map(|a| a.to_string()).unwrap_or_default();
    let Some(role) = role else {
        state.metrics.refused("unauthorized");
        if let Some(address) = address {
            state.access.sessions.login_failed(address);
        }
        warn!(user = %name, peer = %peer, "A console login with a wrong user name, password or token was refused.");
        return error_body(
            StatusCode::UNAUTHORIZED,
            "the user name and password (or the token) are not accepted",
        );
    };
    if !role.reads() {
        state.metrics.refused("forbidden");
        warn!(user = %name, role = role.name(), peer = %peer, "A console login with a role that may not read was refused.");
        return error_body(
            StatusCode::FORBIDDEN,
            format!(
                "a {} may not use the console (it may only send events)",
                role.name()
            ),
        );
    }
    if let Some(address) = address {
        state.access.sessions.login_succeeded(address);
    }
    let (id, session) = state.access.sessions.start(&name, role);
    info!(user = %name, role = role.name(), peer = %peer, "Console login.");
    let mut response = Json(who(&session.user, session.role, Some(&session.csrf))).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&sessions::set_cookie(&id, state.console.session_max))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /console/api/logout`: ends the session (CSRF-checked like every POST).
async fn logout(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let id = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(sessions::cookie_value);
    if let Some(id) = id {
        state.access.sessions.end(id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&sessions::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A search failure as the answer: 400 for the request's fault, else 503.
fn search_failed(e: StoreError) -> Response {
    if e.is_bad_request() {
        return error_body(StatusCode::BAD_REQUEST, e.to_string());
    }
    error!(error = %e, "A console search failed.");
    error_body(
        StatusCode::SERVICE_UNAVAILABLE,
        "search failed; retry later",
    )
}

fn search(query: &str, from: DateTime<Utc>, size: usize, aggs: Option<Value>) -> SearchRequest {
    SearchRequest {
        query: query.to_string(),
        from: Some(from),
        to: None,
        size,
        time_field: TimeField::UtcTimestamp,
        aggs,
        max_bytes: 0,
    }
}

/// Most hosts `/api/hosts` lists.
const MAX_HOSTS: usize = 10_000;
/// Silent hosts whose last heartbeat is looked up one by one, at most.
const MAX_SILENT_LOOKUPS: usize = 200;
/// Hosts given a sparkline (the busiest): 60 minutes each keeps the aggregation under
/// the bucket limit of both stores (tantivy's 65,000, Elasticsearch's 65,536).
const MAX_SPARKLINES: usize = 1_000;

/// What `/api/hosts` says of a host.
#[derive(Default)]
struct Host {
    last_heartbeat: Option<String>,
    heartbeat: Option<Value>,
    last_event: Option<String>,
    per_minute: Vec<u64>,
}

/// `GET /api/hosts`: every host heard from in the last 7 days (a heartbeat) or the
/// last 24 hours (any event): its last heartbeat and what that said of the agent
/// (version, buffer), its last event, its events a minute over the last hour; hosts
/// whose heartbeat is older than `silent_after_secs` first, then by name. Sparklines
/// for the busiest 1,000 hosts of the hour (`events_per_minute` null for the others).
async fn hosts(State(state): State<AppState>) -> Response {
    match hosts_answer(&state).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => search_failed(e),
    }
}

async fn hosts_answer(state: &AppState) -> Result<Value, StoreError> {
    let now = Utc::now();
    let store = &state.store;
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();

    // Heartbeats: every agent's last one time, a week back.
    let week = now - Duration::days(7);
    for (name, last) in last_per_host(state, "category:heartbeat", week).await? {
        hosts.entry(name).or_default().last_heartbeat = last;
    }
    // What the last heartbeats said: the newest heartbeats of the live hosts in one
    // search, the silent ones' one by one (few, in a healthy fleet).
    let silent_after = Duration::from_std(state.console.silent_after).unwrap_or_default();
    let recent = now - silent_after * 2;
    let live = hosts
        .values()
        .filter(|h| is_after(&h.last_heartbeat, recent))
        .count();
    if live > 0 {
        let newest = store
            .search(search(
                "category:heartbeat",
                recent,
                (live * 4).min(crate::http::MAX_SEARCH_SIZE),
                None,
            ))
            .await?;
        for hit in newest.hits {
            let Some(name) = hit["hostname"].as_str() else {
                continue;
            };
            if let Some(host) = hosts.get_mut(name) {
                if host.heartbeat.is_none() {
                    host.heartbeat = Some(hit);
                }
            }
        }
    }
    let missing: Vec<String> = hosts
        .iter()
        .filter(|(_, h)| h.last_heartbeat.is_some() && h.heartbeat.is_none())
        .map(|(name, _)| name.clone())
        .take(MAX_SILENT_LOOKUPS)
        .collect();
    for name in missing {
        // Best effort: a host whose last heartbeat cannot be read is still listed.
        let query = format!("category:heartbeat AND hostname:\"{}\"", quoted(&name));
        let Ok(found) = store.search(search(&query, week, 1, None)).await else {
            continue;
        };
        if let (Some(hit), Some(host)) = (found.hits.into_iter().next(), hosts.get_mut(&name)) {
            host.heartbeat = Some(hit);
        }
    }

    // Events: each host's last one in a day, and a minute at a time over the hour.
    let day = now - Duration::days(1);
    for (name, last) in last_per_host(state, "*", day).await? {
        hosts.entry(name).or_default().last_event = last;
    }
    let this_minute = now.timestamp() / 60 * 60;
    let hour_start = DateTime::<Utc>::from_timestamp(this_minute - 59 * 60, 0).unwrap_or(now);
    let minutes = json!({ "hosts": {
        "terms": { "field": "hostname", "size": MAX_SPARKLINES },
        "aggs": { "minutes": { "date_histogram": { "field": "utctimestamp", "fixed_interval": "1m" } } }
    }});
    let found = store
        .search(search("*", hour_start, 0, Some(minutes)))
        .await?;
    let aggregations = found.aggregations.unwrap_or_default();
    let busiest = aggregations["hosts"]["buckets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sparklines_full = busiest.len() >= MAX_SPARKLINES;
    for bucket in busiest {
        let Some(name) = bucket["key"].as_str() else {
            continue;
        };
        let mut per_minute = vec![0u64; 60];
        for minute in bucket["minutes"]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (Some(key), Some(count)) = (minute["key"].as_f64(), minute["doc_count"].as_u64())
            else {
                continue;
            };
            let index = (key as i64 / 1000 - hour_start.timestamp()) / 60;
            if let Some(slot) = usize::try_from(index)
                .ok()
                .and_then(|i| per_minute.get_mut(i))
            {
                *slot += count;
            }
        }
        if let Some(host) = hosts.get_mut(name) {
            host.per_minute = per_minute;
        }
    }

    let silent_since = now - silent_after;
    let mut listed: Vec<Value> = hosts
        .into_iter()
        .map(|(name, host)| {
            let silent =
                host.last_heartbeat.is_some() && !is_after(&host.last_heartbeat, silent_since);
            let details = host.heartbeat.as_ref().map(|h| &h["details"]);
            let detail = |key: &str| details.map(|d| d[key].clone()).unwrap_or(Value::Null);
            // No sparkline (null) past the busiest [`MAX_SPARKLINES`] hosts of the hour,
            // zeros for a host with no event in it.
            let per_minute: Option<Vec<u64>> = if host.per_minute.is_empty() && sparklines_full {
                None
            } else {
                let mut per_minute = host.per_minute;
                per_minute.resize(60, 0);
                Some(per_minute)
            };
            json!({
                "hostname": name,
                "silent": silent,
                "last_heartbeat": host.last_heartbeat,
                "last_event": host.last_event,
                "agent_version": detail("agentversion"),
                "buffer_bytes": detail("bufferbytes"),
                "buffer_oldest_age_secs": detail("bufferoldestage"),
                "events_per_minute": per_minute,
            })
        })
        .collect();
    listed.sort_by_key(|h| !h["silent"].as_bool().unwrap_or(false));
    Ok(json!({
        "silent_after_secs": state.console.silent_after.as_secs(),
        "hosts": listed,
    }))
}

/// Each host's newest `utctimestamp` among the events matching `query` since `from`.
async fn last_per_host(
    state: &AppState,
    query: &str,
    from: DateTime<Utc>,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    let last = json!({ "hosts": {
        "terms": { "field": "hostname", "size": MAX_HOSTS },
        "aggs": { "last": { "max": { "field": "utctimestamp" } } }
    }});
    let found = state
        .store
        .search(search(query, from, 0, Some(last)))
        .await?;
    let aggregations = found.aggregations.unwrap_or_default();
    Ok(aggregations["hosts"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|bucket| {
            let name = bucket["key"].as_str()?;
            Some((name.to_string(), millis_to_time(&bucket["last"]["value"])))
        })
        .collect())
}

/// A `max` aggregation's value over a date as RFC 3339: epoch milliseconds from
/// Elasticsearch, nanoseconds from the embedded store (tantivy's unit for dates).
fn millis_to_time(value: &Value) -> Option<String> {
    let number = value.as_f64()?;
    let millis = if number.abs() > 1e15 {
        number / 1e6
    } else {
        number
    };
    DateTime::<Utc>::from_timestamp_millis(millis as i64).map(mozdef::time::format_utc)
}

fn is_after(time: &Option<String>, bound: DateTime<Utc>) -> bool {
    time.as_deref()
        .and_then(|t| mozdef::time::parse_str(t).ok())
        .is_some_and(|t| t.with_timezone(&Utc) >= bound)
}

/// `text` for inside a quoted query term.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The event schema's fields, offered first.
const SCHEMA_FIELDS: &[&str] = &[
    "utctimestamp",
    "receivedtimestamp",
    "hostname",
    "processname",
    "processid",
    "severity",
    "summary",
    "category",
    "source",
    "tags",
    "eventid",
];

/// `GET /api/fields`: the schema's fields, then the `details.*` keys of the newest
/// 500 events of the last day, most used first.
async fn fields(State(state): State<AppState>) -> Response {
    let found = match state
        .store
        .search(search("*", Utc::now() - Duration::days(1), 500, None))
        .await
    {
        Ok(found) => found,
        Err(e) => return search_failed(e),
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for hit in &found.hits {
        if let Some(details) = hit["details"].as_object() {
            for key in details.keys() {
                *counts.entry(format!("details.{key}")).or_default() += 1;
            }
        }
    }
    let mut details: Vec<(String, usize)> = counts.into_iter().collect();
    details.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut seen = BTreeSet::new();
    let fields: Vec<String> = SCHEMA_FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(details.into_iter().map(|(k, _)| k))
        .filter(|f| seen.insert(f.clone()))
        .collect();
    Json(json!({ "fields": fields })).into_response()
}

fn alerts_off() -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        "alerts are off (no rules folder: collector.alerts.rules_dir)",
    )
}

/// `GET /api/alerts/<id>`.
async fn alert(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(alerts) = state.alerts.clone() else {
        return alerts_off();
    };
    match alerts.get(&id).await {
        Ok(Some(alert)) => Json(alert).into_response(),
        Ok(None) => error_body(StatusCode::NOT_FOUND, format!("no alert {id:?}")),
        Err(e) => search_failed(e),
    }
}

/// `POST /api/alerts/<id>/status` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

/// `POST /api/alerts/<id>/status` (analysts): `{"status": "ACKNOWLEDGED"}`, `CLOSED`
/// or `NEW`; the alert as it now is.
async fn alert_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<StatusChange>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(change) = match body {
        Ok(body) => body,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(status) = crate::alerts::Status::named(&change.status) else {
        return error_body(
            StatusCode::BAD_REQUEST,
            format!(
                "status {:?} is not NEW, ACKNOWLEDGED or CLOSED",
                change.status
            ),
        );
    };
    let Some(alerts) = state.alerts.clone() else {
        return alerts_off();
    };
    let by = caller
        .map(|c| c.0.name)
        .unwrap_or_else(|| "anonymous".into());
    match alerts.set_status(&id, status, &by, Utc::now()).await {
        Ok(Some(alert)) => {
            info!(alert = %id, status = status.as_str(), by = %by, "Alert status changed.");
            Json(alert).into_response()
        }
        Ok(None) => error_body(StatusCode::NOT_FOUND, format!("no alert {id:?}")),
        Err(e) => search_failed(e),
    }
}
