//! A test server that answers like an Elasticsearch (or OpenSearch) node, for the
//! collector's Elasticsearch store: Elasticsearch cannot be installed on the machines
//! tests run on.
//!
//! It follows the documented REST behaviour the store relies on, answers included:
//!
//! - `GET /`: name, cluster, `version.number` (and `distribution: opensearch`).
//! - `PUT /_index_template/<name>` (composable, 7.8+) and `PUT /_template/<name>`
//!   (legacy): kept; a new index takes the mapping of the highest-priority template
//!   whose pattern matches it.
//! - `PUT /<index>`: 200 `{"acknowledged":true,...}`, or 400
//!   `resource_already_exists_exception`. `DELETE /<index>`: 200, or 404
//!   `index_not_found_exception`. `GET /_cat/indices/<pattern>?format=json`.
//! - `GET /_alias/<name>`: `{index: {aliases: {name: {}}}}`, or 404 `alias [x] missing`.
//!   `POST /_aliases`: `add`/`remove` actions applied atomically; removing an alias an
//!   index lacks is 404 `aliases_not_found_exception`, naming a missing index 404
//!   `index_not_found_exception`, and then nothing changes.
//! - `POST /_bulk`: NDJSON that must end with a newline (400
//!   `illegal_argument_exception` otherwise); `create` and `index` actions; an index
//!   is created on first use (with its template); per-item results in order with
//!   `status` — 201 created, 409 `version_conflict_engine_exception` for a `create`
//!   whose `_id` exists, 400 `document_parsing_exception` (`mapper_parsing_exception`
//!   on OpenSearch and Elasticsearch before 8.8) for a value its mapping
//!   cannot take (an object where a value was mapped or the reverse, a bad `ip`,
//!   `long`, `date` without `ignore_malformed`, a `boolean` that is not one); top-level
//!   `errors` true when any item failed.
//! - `POST /<pattern>/_search`: `match_all`, `query_string` of `field:value` terms
//!   joined by AND, a `range` filter on a date field, `sort` on `utctimestamp`, `size`,
//!   `track_total_hits` (`hits.total.value`), and `terms` aggregations.
//! - Credentials, when set: 401 `security_exception` without the right
//!   `Authorization` header.
//!
//! Faults for tests: the next N items answered 429 `es_rejected_execution_exception`,
//! the next N `_bulk` requests answered with a status of the test's choosing, and
//! several nodes sharing one cluster (stop one to test failover).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};

/// One index: its mapping (field path → type; objects as `object`), its aliases, its
/// documents by id in insertion order.
#[derive(Debug, Default, Clone)]
pub struct Index {
    pub mapping: BTreeMap<String, FieldType>,
    pub aliases: Vec<String>,
    pub docs: BTreeMap<String, Value>,
}

/// A mapped field's type and whether malformed values are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldType {
    pub kind: String,
    pub ignore_malformed: bool,
}

/// The cluster's whole state, shared by its nodes; tests read and change it.
#[derive(Debug, Default)]
pub struct Cluster {
    pub version: String,
    pub opensearch: bool,
    /// `Authorization` header value every request must carry, when set.
    pub authorization: Option<String>,
    /// Templates by name: (API used: `index_template` or `template`, body).
    pub templates: BTreeMap<String, (String, Value)>,
    pub indices: BTreeMap<String, Index>,
    /// Items still to be refused with 429.
    pub reject_items: usize,
    /// `_bulk` requests still to be answered with this status (count, status).
    pub fail_bulk: (usize, u16),
    /// Every `_bulk` item seen: (index, id, status).
    pub bulk_log: Vec<(String, String, u16)>,
    /// Requests seen: "METHOD path".
    pub requests: Vec<String>,
}

/// A running node. Dropping it stops it.
pub struct Node {
    pub url: String,
    pub cluster: Arc<Mutex<Cluster>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// A one-node Elasticsearch cluster answering as `version` (e.g. `8.15.0`).
    pub fn start(version: &str) -> Node {
        let cluster = Cluster {
            version: version.to_string(),
            ..Cluster::default()
        };
        Node::join(Arc::new(Mutex::new(cluster)), None)
    }

    /// An OpenSearch node answering as `version`.
    pub fn start_opensearch(version: &str) -> Node {
        let cluster = Cluster {
            version: version.to_string(),
            opensearch: true,
            ..Cluster::default()
        };
        Node::join(Arc::new(Mutex::new(cluster)), None)
    }

    /// Another node of `cluster`, on `port` when given (to come back where it was).
    pub fn join(cluster: Arc<Mutex<Cluster>>, port: Option<u16>) -> Node {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .expect("bind the test Elasticsearch node");
        listener.set_nonblocking(true).expect("nonblocking");
        let address: SocketAddr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&cluster);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, router(state))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Node {
            url: format!("http://{address}"),
            cluster,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// Stops answering (connections refused from now on).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Runs `f` on the cluster's state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().expect("cluster lock"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

type Shared = Arc<Mutex<Cluster>>;

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/_index_template/{name}", put(put_index_template))
        .route("/_template/{name}", put(put_legacy_template))
        .route("/_cat/indices/{pattern}", get(cat_indices))
        .route("/_alias/{name}", get(get_alias))
        .route("/_aliases", post(post_aliases))
        .route("/_bulk", post(bulk).put(bulk))
        .route("/_mget", post(mget).get(mget))
        .route("/{index}/_search", post(search).get(search))
        .route("/{index}", put(create_index).delete(delete_index))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// `_mget` with `{"docs": [{"_index", "_id"}]}`: each document's `_source` and
/// `found`, in order.
async fn mget(State(state): State<Shared>, body: axum::body::Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "parse_exception",
            "body is not JSON",
        );
    };
    let cluster = state.lock().expect("lock");
    let docs: Vec<Value> = request["docs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|doc| {
            let index = doc["_index"].as_str().unwrap_or_default();
            let id = doc["_id"].as_str().unwrap_or_default();
            match cluster.indices.get(index).and_then(|i| i.docs.get(id)) {
                Some(source) => {
                    json!({ "_index": index, "_id": id, "found": true, "_source": source })
                }
                None => json!({ "_index": index, "_id": id, "found": false }),
            }
        })
        .collect();
    axum::Json(json!({ "docs": docs })).into_response()
}

fn error(status: StatusCode, kind: &str, reason: &str) -> Response {
    let body = json!({
        "error": {
            "root_cause": [{ "type": kind, "reason": reason }],
            "type": kind,
            "reason": reason,
        },
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

async fn authenticate(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let wanted = {
        let mut cluster = state.lock().expect("lock");
        cluster.requests.push(format!("{method} {}", uri.path()));
        cluster.authorization.clone()
    };
    if let Some(wanted) = wanted {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(wanted.as_str()) {
            let reason = match given {
                None => format!(
                    "missing authentication credentials for REST request [{}]",
                    uri.path()
                ),
                Some(_) => "unable to authenticate user for REST request".to_string(),
            };
            let mut response = error(StatusCode::UNAUTHORIZED, "security_exception", &reason);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"security\" charset=\"UTF-8\""
                    .parse()
                    .expect("header"),
            );
            return response;
        }
    }
    next.run(request).await
}

async fn root(State(state): State<Shared>) -> Response {
    let cluster = state.lock().expect("lock");
    let mut version = json!({ "number": cluster.version, "lucene_version": "9.11.1" });
    let tagline = if cluster.opensearch {
        version["distribution"] = json!("opensearch");
        "The OpenSearch Project: https://opensearch.org/"
    } else {
        version["build_flavor"] = json!("default");
        "You Know, for Search"
    };
    axum::Json(json!({
        "name": "node-1",
        "cluster_name": "picket-test",
        "version": version,
        "tagline": tagline,
    }))
    .into_response()
}

/// The body as JSON, or the 400 Elasticsearch answers for a body it cannot parse.
#[allow(clippy::result_large_err)] // the error is the answer itself, built once
fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "x_content_parse_exception",
            &format!("failed to parse the request body: {e}"),
        )
    })
}

/// A template body, or the 400s Elasticsearch answers for one it cannot use.
#[allow(clippy::result_large_err)] // the error is the answer itself, built once
fn template_body(body: &Bytes) -> Result<Value, Response> {
    let body = parse_body(body)?;
    if !body["index_patterns"].is_array() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: index patterns are missing;",
        ));
    }
    Ok(body)
}

async fn put_index_template(
    State(state): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match template_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut cluster = state.lock().expect("lock");
    if !cluster.opensearch && version_before(&cluster.version, 7, 8) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "illegal_argument_exception",
            "Incorrect HTTP method for uri [/_index_template] and method [PUT]",
        );
    }
    cluster
        .templates
        .insert(name, ("index_template".into(), body));
    axum::Json(json!({ "acknowledged": true })).into_response()
}

async fn put_legacy_template(
    State(state): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match template_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    state
        .lock()
        .expect("lock")
        .templates
        .insert(name, ("template".into(), body));
    axum::Json(json!({ "acknowledged": true })).into_response()
}

fn version_before(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
}

/// `events-*` style patterns, comma-separated.
fn matches(pattern: &str, name: &str) -> bool {
    pattern.split(',').any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

impl Cluster {
    /// What a document its mapping cannot take is refused as: Elasticsearch renamed
    /// `mapper_parsing_exception` in 8.8; OpenSearch kept it (checked against a real
    /// OpenSearch by `tests/tests/opensearch.rs`).
    fn parsing_exception(&self) -> &'static str {
        if self.opensearch || version_before(&self.version, 8, 8) {
            "mapper_parsing_exception"
        } else {
            "document_parsing_exception"
        }
    }

    /// The mapping a new index `name` gets from the best matching template.
    fn template_mapping(&self, name: &str) -> BTreeMap<String, FieldType> {
        let mut best: Option<(i64, &Value)> = None;
        for (api, body) in self.templates.values() {
            let patterns = body["index_patterns"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !patterns
                .iter()
                .filter_map(|p| p.as_str())
                .any(|p| matches(p, name))
            {
                continue;
            }
            let (priority, mappings) = if api == "index_template" {
                (
                    body["priority"].as_i64().unwrap_or(0),
                    &body["template"]["mappings"],
                )
            } else {
                (body["order"].as_i64().unwrap_or(0), &body["mappings"])
            };
            if best.is_none_or(|(p, _)| priority > p) {
                best = Some((priority, mappings));
            }
        }
        let mut mapping = BTreeMap::new();
        if let Some((_, mappings)) = best {
            flatten_properties("", &mappings["properties"], &mut mapping);
        }
        mapping
    }

    fn create(&mut self, name: &str) {
        if !self.indices.contains_key(name) {
            let mapping = self.template_mapping(name);
            self.indices.insert(
                name.to_string(),
                Index {
                    mapping,
                    ..Index::default()
                },
            );
        }
    }

    /// Resolves an index name or alias.
    fn resolve(&self, name: &str) -> Vec<String> {
        self.indices
            .iter()
            .filter(|(index, body)| {
                matches(name, index) || body.aliases.iter().any(|a| matches(name, a))
            })
            .map(|(index, _)| index.clone())
            .collect()
    }
}

fn flatten_properties(prefix: &str, properties: &Value, out: &mut BTreeMap<String, FieldType>) {
    for (name, spec) in properties.as_object().into_iter().flatten() {
        let path = format!("{prefix}{name}");
        if spec.get("properties").is_some() {
            out.insert(
                path.clone(),
                FieldType {
                    kind: "object".into(),
                    ignore_malformed: false,
                },
            );
            flatten_properties(&format!("{path}."), &spec["properties"], out);
        } else {
            out.insert(
                path,
                FieldType {
                    kind: spec["type"].as_str().unwrap_or("object").to_string(),
                    ignore_malformed: spec["ignore_malformed"].as_bool().unwrap_or(false),
                },
            );
        }
    }
}

async fn create_index(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    if name.starts_with('_') || name.chars().any(|c| c.is_ascii_uppercase()) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_index_name_exception",
            &format!("Invalid index name [{name}]"),
        );
    }
    let mut cluster = state.lock().expect("lock");
    if cluster.indices.contains_key(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            "resource_already_exists_exception",
            &format!("index [{name}/abc123] already exists"),
        );
    }
    cluster.create(&name);
    axum::Json(json!({ "acknowledged": true, "shards_acknowledged": true, "index": name }))
        .into_response()
}

async fn delete_index(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let mut cluster = state.lock().expect("lock");
    if cluster.indices.remove(&name).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            &format!("no such index [{name}]"),
        );
    }
    axum::Json(json!({ "acknowledged": true })).into_response()
}

async fn cat_indices(State(state): State<Shared>, Path(pattern): Path<String>) -> Response {
    let cluster = state.lock().expect("lock");
    let rows: Vec<Value> = cluster
        .indices
        .keys()
        .filter(|name| matches(&pattern, name))
        .map(|name| json!({ "index": name }))
        .collect();
    axum::Json(Value::Array(rows)).into_response()
}

async fn get_alias(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let cluster = state.lock().expect("lock");
    let mut answer = Map::new();
    for (index, body) in &cluster.indices {
        if body.aliases.iter().any(|a| a == &name) {
            answer.insert(index.clone(), json!({ "aliases": { name.clone(): {} } }));
        }
    }
    if answer.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("alias [{name}] missing"), "status": 404 })),
        )
            .into_response();
    }
    axum::Json(Value::Object(answer)).into_response()
}

async fn post_aliases(State(state): State<Shared>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(actions) = body["actions"].as_array() else {
        return error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: no alias actions were added;",
        );
    };
    let mut cluster = state.lock().expect("lock");
    // Checked first, applied only when all are good: the call is atomic.
    let mut planned = Vec::new();
    for action in actions {
        let Some((verb, spec)) = action.as_object().and_then(|o| o.iter().next()) else {
            return error(StatusCode::BAD_REQUEST, "parsing_exception", "bad action");
        };
        let index = spec["index"].as_str().unwrap_or("").to_string();
        let alias = spec["alias"].as_str().unwrap_or("").to_string();
        let Some(existing) = cluster.indices.get(&index) else {
            return error(
                StatusCode::NOT_FOUND,
                "index_not_found_exception",
                &format!("no such index [{index}]"),
            );
        };
        match verb.as_str() {
            "add" => {}
            "remove" if existing.aliases.contains(&alias) => {}
            "remove" => {
                return error(
                    StatusCode::NOT_FOUND,
                    "aliases_not_found_exception",
                    &format!("aliases [{alias}] missing"),
                );
            }
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "parsing_exception",
                    &format!("unknown alias action [{other}]"),
                );
            }
        }
        planned.push((verb.clone(), index, alias));
    }
    for (verb, index, alias) in planned {
        let aliases = &mut cluster.indices.get_mut(&index).expect("checked").aliases;
        if verb == "add" {
            if !aliases.contains(&alias) {
                aliases.push(alias);
            }
        } else {
            aliases.retain(|a| a != &alias);
        }
    }
    axum::Json(json!({ "acknowledged": true })).into_response()
}

/// Why `value` at `path` does not fit the index's mapping (learning new fields as
/// dynamic mapping does).
fn check_mapping(
    mapping: &mut BTreeMap<String, FieldType>,
    prefix: &str,
    object: &Map<String, Value>,
) -> Result<(), String> {
    for (name, value) in object {
        let path = format!("{prefix}{name}");
        let known = mapping.get(&path).cloned();
        // An array maps as its elements do; an empty one adds nothing (as in
        // Elasticsearch).
        if let Value::Array(items) = value {
            for item in items {
                let mut one = Map::new();
                one.insert(name.clone(), item.clone());
                check_mapping(mapping, prefix, &one)?;
            }
            continue;
        }
        match (value, known) {
            (Value::Null, _) => {}
            (Value::Object(_), Some(field)) if field.kind != "object" => {
                return Err(format!(
                    "failed to parse field [{path}] of type [{}]: tried to parse an object",
                    field.kind
                ));
            }
            (Value::Object(inner), _) => {
                mapping.insert(
                    path.clone(),
                    FieldType {
                        kind: "object".into(),
                        ignore_malformed: false,
                    },
                );
                check_mapping(mapping, &format!("{path}."), inner)?;
            }
            (_, Some(field)) if field.kind == "object" => {
                return Err(format!(
                    "object mapping for [{path}] tried to parse field [{name}] as object, but found a concrete value"
                ));
            }
            (value, Some(field)) => {
                let values: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for value in values {
                    if !fits(&field.kind, value) && !field.ignore_malformed {
                        return Err(format!(
                            "failed to parse field [{path}] of type [{}]: {value}",
                            field.kind
                        ));
                    }
                }
            }
            (_, None) => {
                // Dynamic templates in these tests map strings and numbers to keyword.
                mapping.insert(
                    path,
                    FieldType {
                        kind: "keyword".into(),
                        ignore_malformed: false,
                    },
                );
            }
        }
    }
    Ok(())
}

fn fits(kind: &str, value: &Value) -> bool {
    match kind {
        "ip" => value
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "long" => {
            value.is_i64()
                || value.is_u64()
                || value
                    .as_str()
                    .is_some_and(|s| s.trim().parse::<i64>().is_ok())
        }
        "boolean" => value.is_boolean() || matches!(value.as_str(), Some("true" | "false" | "")),
        "date" => value.is_i64() || value.as_str().is_some_and(chrono_like_date),
        _ => !value.is_object(),
    }
}

/// `strict_date_optional_time`: `YYYY-MM-DD` optionally followed by `T` and a time.
fn chrono_like_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..7].iter().all(u8::is_ascii_digit)
        && bytes[7] == b'-'
        && bytes[8..10].iter().all(u8::is_ascii_digit)
        && (bytes.len() == 10 || bytes[10] == b'T')
}

async fn bulk(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-ndjson")
        && !content_type.starts_with("application/json")
    {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "media_type_header_exception",
            &format!("Content-Type header [{content_type}] is not supported"),
        );
    }
    if !body.ends_with(b"\n") {
        return error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    let mut cluster = state.lock().expect("lock");
    if cluster.fail_bulk.0 > 0 {
        cluster.fail_bulk.0 -= 1;
        let status = StatusCode::from_u16(cluster.fail_bulk.1).expect("status");
        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
            "es_rejected_execution_exception"
        } else {
            "unavailable_shards_exception"
        };
        return error(status, kind, "injected by the test");
    }
    let text = String::from_utf8_lossy(&body);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut items = Vec::new();
    let mut errors = false;
    let mut seq = 0;
    while let Some(action_line) = lines.next() {
        let action: Value = match serde_json::from_str(action_line) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "x_content_parse_exception",
                    &format!("Malformed action/metadata line: {e}"),
                );
            }
        };
        let Some((verb, meta)) = action.as_object().and_then(|o| o.iter().next()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                "Malformed action/metadata line",
            );
        };
        let verb = verb.clone();
        let index = meta["_index"].as_str().unwrap_or("").to_string();
        let id = meta["_id"].as_str().unwrap_or("").to_string();
        let Some(source_line) = lines.next() else {
            return error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            );
        };
        if verb == "update" {
            let source: Value = serde_json::from_str(source_line).unwrap_or(Value::Null);
            let name = source["script"]["params"]["name"].clone();
            let found = cluster
                .indices
                .get_mut(&index)
                .and_then(|i| i.docs.get_mut(&id));
            let (status, error) = match found {
                Some(doc) if name.is_string() => {
                    let names = doc
                        .as_object_mut()
                        .expect("documents are objects")
                        .entry("alert_names")
                        .or_insert_with(|| json!([]));
                    if let Some(list) = names.as_array_mut()
                        && !list.contains(&name)
                    {
                        list.push(name);
                    }
                    (200, Value::Null)
                }
                Some(_) => (
                    400,
                    json!({"type": "illegal_argument_exception", "reason": "this test node runs only the alert_names script"}),
                ),
                None => (
                    404,
                    json!({"type": "document_missing_exception", "reason": format!("[{id}]: document missing"), "index": index}),
                ),
            };
            cluster.bulk_log.push((index.clone(), id.clone(), status));
            let mut item = json!({ "_index": index, "_id": id, "status": status });
            if status == 200 {
                item["result"] = json!("updated");
            } else {
                errors = true;
                item["error"] = error;
            }
            items.push(json!({ verb: item }));
            continue;
        }
        let (status, result) = if cluster.reject_items > 0 {
            cluster.reject_items -= 1;
            (
                429,
                json!({ "type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation" }),
            )
        } else {
            match serde_json::from_str::<Value>(source_line) {
                Err(e) => (
                    400,
                    json!({ "type": cluster.parsing_exception(), "reason": format!("failed to parse: {e}") }),
                ),
                Ok(Value::Object(source)) => {
                    let parsing_exception = cluster.parsing_exception();
                    cluster.create(&index);
                    let entry = cluster.indices.get_mut(&index).expect("created");
                    if verb == "create" && entry.docs.contains_key(&id) {
                        (
                            409,
                            json!({ "type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists (current version [1])"), "index": index }),
                        )
                    } else {
                        let mut mapping = entry.mapping.clone();
                        match check_mapping(&mut mapping, "", &source) {
                            Ok(()) => {
                                entry.mapping = mapping;
                                entry.docs.insert(id.clone(), Value::Object(source));
                                (201, Value::Null)
                            }
                            Err(reason) => {
                                (400, json!({ "type": parsing_exception, "reason": reason }))
                            }
                        }
                    }
                }
                Ok(_) => (
                    400,
                    json!({ "type": cluster.parsing_exception(), "reason": "not an object" }),
                ),
            }
        };
        seq += 1;
        cluster.bulk_log.push((index.clone(), id.clone(), status));
        let mut item = json!({ "_index": index, "_id": id, "status": status });
        if status == 201 {
            item["_version"] = json!(1);
            item["result"] = json!("created");
            item["_seq_no"] = json!(seq);
            item["_primary_term"] = json!(1);
            item["_shards"] = json!({ "total": 1, "successful": 1, "failed": 0 });
        } else {
            errors = true;
            item["error"] = result;
        }
        items.push(json!({ verb: item }));
    }
    axum::Json(json!({ "took": 3, "errors": errors, "items": items })).into_response()
}

async fn search(
    State(state): State<Shared>,
    Path(index): Path<String>,
    QueryParams(params): QueryParams<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = if body.is_empty() {
        json!({})
    } else {
        match parse_body(&body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let cluster = state.lock().expect("lock");
    let targets = cluster.resolve(&index);
    if targets.is_empty() && params.get("allow_no_indices").map(String::as_str) == Some("false") {
        return error(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            &format!("no such index [{index}]"),
        );
    }
    let bool_query = &body["query"]["bool"];
    let musts: Vec<Value> = bool_query["must"].as_array().cloned().unwrap_or_default();
    let filters: Vec<Value> = bool_query["filter"].as_array().cloned().unwrap_or_default();
    let mut queries: Vec<Query> = Vec::new();
    for clause in &musts {
        if let Some(text) = clause["query_string"]["query"].as_str() {
            match parse_query(text) {
                Ok(q) => queries.push(q),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "query_shard_exception",
                        &format!("Failed to parse query [{text}]: {e}"),
                    );
                }
            }
        }
    }
    let mut hits: Vec<(String, String, Value)> = Vec::new();
    for name in &targets {
        for (id, doc) in &cluster.indices[name].docs {
            let term_ok = queries.iter().all(|q| q.matches(doc));
            let range_ok = filters.iter().all(|f| {
                let Some((field, range)) = f["range"].as_object().and_then(|o| o.iter().next())
                else {
                    return true;
                };
                let Some(at) = lookup(doc, field).and_then(|v| v.as_str()) else {
                    return false;
                };
                let at = normalize_time(at);
                range["gte"]
                    .as_str()
                    .is_none_or(|g| at >= normalize_time(g))
                    && range["lte"]
                        .as_str()
                        .is_none_or(|l| at <= normalize_time(l))
            });
            if term_ok && range_ok {
                hits.push((name.clone(), id.clone(), doc.clone()));
            }
        }
    }
    hits.sort_by(|a, b| {
        let key = |d: &Value| normalize_time(d["utctimestamp"].as_str().unwrap_or(""));
        key(&b.2).cmp(&key(&a.2))
    });
    let total = hits.len();
    let mut aggregations = Map::new();
    for (name, spec) in body["aggs"].as_object().into_iter().flatten() {
        let Some(field) = spec["terms"]["field"].as_str() else {
            return error(
                StatusCode::BAD_REQUEST,
                "parsing_exception",
                &format!("unsupported aggregation [{name}]"),
            );
        };
        let size = spec["terms"]["size"].as_u64().unwrap_or(10) as usize;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (_, _, doc) in &hits {
            if let Some(value) = lookup(doc, field) {
                let key = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                *counts.entry(key).or_default() += 1;
            }
        }
        let mut buckets: Vec<(String, u64)> = counts.into_iter().collect();
        buckets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let other: u64 = buckets.iter().skip(size).map(|b| b.1).sum();
        buckets.truncate(size);
        aggregations.insert(
            name.clone(),
            json!({
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": other,
                "buckets": buckets.iter().map(|(k, n)| json!({ "key": k, "doc_count": n })).collect::<Vec<_>>(),
            }),
        );
    }
    let size = body["size"].as_u64().unwrap_or(10) as usize;
    let shown: Vec<Value> = hits
        .into_iter()
        .take(size)
        .map(|(index, id, doc)| json!({ "_index": index, "_id": id, "_score": null, "_source": doc }))
        .collect();
    let mut answer = json!({
        "took": 1,
        "timed_out": false,
        "_shards": { "total": targets.len(), "successful": targets.len(), "skipped": 0, "failed": 0 },
        "hits": { "total": { "value": total, "relation": "eq" }, "max_score": null, "hits": shown },
    });
    if !aggregations.is_empty() {
        answer["aggregations"] = Value::Object(aggregations);
    }
    axum::Json(answer).into_response()
}

/// `details.username` in a document.
fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = doc;
    for part in path.split('.') {
        at = at.get(part)?;
    }
    Some(at)
}

/// Timestamps compared as UTC text: `+00:00` and `Z` made one, fractions padded.
fn normalize_time(text: &str) -> String {
    let text = text.replace("+00:00", "Z");
    let (main, zone) = text.split_at(text.len().saturating_sub(1));
    if zone != "Z" {
        return text;
    }
    let (seconds, fraction) = main.split_once('.').unwrap_or((main, ""));
    format!("{seconds}.{fraction:0<9}Z")
}

/// A query-string query as this test node understands it: `field:value`,
/// `field:"a phrase"`, `field:*`, AND / OR / NOT / `-`, parentheses; terms without an
/// operator are ANDed (the store sends `default_operator: AND`). `summary` is text
/// (a word, any case); other fields are keywords (whole value, exact), numbers and
/// booleans compared as written.
#[derive(Debug, Clone)]
pub enum Query {
    Term(String, String),
    Exists(String),
    All,
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
}

impl Query {
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Query::All => true,
            Query::Not(q) => !q.matches(doc),
            Query::And(qs) => qs.iter().all(|q| q.matches(doc)),
            Query::Or(qs) => qs.iter().any(|q| q.matches(doc)),
            Query::Exists(field) => lookup(doc, field).is_some_and(|v| !v.is_null()),
            Query::Term(field, value) => {
                let Some(got) = lookup(doc, field) else {
                    return false;
                };
                let values: Vec<&Value> = match got {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                values.iter().any(|v| {
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    if field == "summary" {
                        let want = value.to_lowercase();
                        text.to_lowercase()
                            .split(|c: char| !c.is_alphanumeric())
                            .any(|w| w == want)
                    } else {
                        &text == value
                    }
                })
            }
        }
    }
}

/// Parses a query string (see [`Query`]).
pub fn parse_query(text: &str) -> Result<Query, String> {
    let tokens = tokenize(text)?;
    let mut at = 0;
    let query = parse_or(&tokens, &mut at)?;
    if at != tokens.len() {
        return Err(format!("unexpected {:?}", tokens[at]));
    }
    Ok(query)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' {
            tokens.push(Token::Open);
            i += 1;
            continue;
        }
        if c == ')' {
            tokens.push(Token::Close);
            i += 1;
            continue;
        }
        if c == '-' && tokens.last() != Some(&Token::Not) {
            tokens.push(Token::Not);
            i += 1;
            continue;
        }
        // A word, with quoted parts kept whole (quotes removed).
        let mut word = String::new();
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '(' && chars[i] != ')' {
            if chars[i] == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unclosed quote".into());
                }
                i += 1;
            } else {
                word.push(chars[i]);
                i += 1;
            }
        }
        tokens.push(match word.as_str() {
            "AND" | "&&" => Token::And,
            "OR" | "||" => Token::Or,
            "NOT" => Token::Not,
            _ => Token::Word(word),
        });
    }
    Ok(tokens)
}

fn parse_or(tokens: &[Token], at: &mut usize) -> Result<Query, String> {
    let mut parts = vec![parse_and(tokens, at)?];
    while tokens.get(*at) == Some(&Token::Or) {
        *at += 1;
        parts.push(parse_and(tokens, at)?);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Query::Or(parts)
    })
}

fn parse_and(tokens: &[Token], at: &mut usize) -> Result<Query, String> {
    let mut parts = vec![parse_unary(tokens, at)?];
    loop {
        match tokens.get(*at) {
            Some(Token::And) => {
                *at += 1;
                parts.push(parse_unary(tokens, at)?);
            }
            Some(Token::Open | Token::Not | Token::Word(_)) => parts.push(parse_unary(tokens, at)?),
            _ => break,
        }
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Query::And(parts)
    })
}

fn parse_unary(tokens: &[Token], at: &mut usize) -> Result<Query, String> {
    match tokens.get(*at).cloned() {
        Some(Token::Not) => {
            *at += 1;
            Ok(Query::Not(Box::new(parse_unary(tokens, at)?)))
        }
        Some(Token::Open) => {
            *at += 1;
            let inner = parse_or(tokens, at)?;
            if tokens.get(*at) != Some(&Token::Close) {
                return Err("missing )".into());
            }
            *at += 1;
            Ok(inner)
        }
        Some(Token::Word(word)) => {
            *at += 1;
            if word == "*" {
                return Ok(Query::All);
            }
            match word.split_once(':') {
                Some((field, "*")) => Ok(Query::Exists(field.to_string())),
                Some((field, value)) if !field.is_empty() => {
                    Ok(Query::Term(field.to_string(), value.to_string()))
                }
                _ => Ok(Query::Term("summary".into(), word)),
            }
        }
        other => Err(format!("unexpected {other:?}")),
    }
}
