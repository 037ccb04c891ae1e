//! `[collector.http.elasticsearch]`: the Elasticsearch face. Shippers written for
//! Elasticsearch (its official clients, Filebeat, Logstash, Fluent Bit, Vector,
//! rsyslog's `omelasticsearch`, syslog-ng's `elasticsearch-http()`) check that they talk
//! to an Elasticsearch node before they send, and read their answers item by item. This
//! answers them as an Elasticsearch 8 node would, for what they do at start-up and for
//! indexing; the documents become MozDef events like any other.
//!
//! - `GET`/`HEAD /`: the node's banner (`version.number` configurable), with
//!   `X-Elastic-Product: Elasticsearch` on every answer of this face (the official
//!   clients refuse a server without it).
//! - `/_bulk`, `/{index}/_bulk`: [`bulk`], answered `{"took","errors","items"}`.
//! - `/{index}/_doc[/{id}]`, `/{index}/_create/{id}`: one document.
//! - Answered harmlessly, kept nowhere: `GET /_license` (basic, active), `GET /_xpack`
//!   (no features), `GET /_nodes…`, `GET /_cluster/health…` (green),
//!   `PUT`/`POST`/`DELETE` of `_index_template`, `_template`, `_component_template`,
//!   `_ilm/policy`, `_ingest/pipeline` (acknowledged; `GET`/`HEAD` of them: 404, so a
//!   client puts its template again, harmlessly), `PUT /{index}` (acknowledged;
//!   `GET`/`HEAD`: 404), `_refresh`.
//!
//! The index a client names is not where the event goes (events go to the store's own
//! daily indices); it is only echoed in the answer.

pub mod bulk;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use picket_common::config::KeyError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;

/// `[collector.http.elasticsearch]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// The Elasticsearch version `GET /` reports. Clients compare it with their own:
    /// Beats and Logstash refuse a node older than themselves, the 7.x Python client
    /// wants 7.14 or later (or the tagline of an older node). Set it to your shippers'
    /// version when they are newer than the default.
    #[serde(default = "default_version")]
    pub version: String,
    /// The `cluster_name` reported.
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
}

fn default_version() -> String {
    "8.19.0".to_string()
}
fn default_cluster_name() -> String {
    "picket".to_string()
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            version: default_version(),
            cluster_name: default_cluster_name(),
        }
    }
}

/// The `build_hash` reported: which collector answers, not an Elasticsearch commit.
const BUILD_HASH: &str = concat!("picket-collector-", env!("CARGO_PKG_VERSION"));

/// What the face says of itself.
#[derive(Debug, Clone)]
pub struct Face {
    version: String,
    cluster_name: String,
    node_name: String,
    /// Stable for a cluster name, so a client that records it sees the same one.
    cluster_uuid: String,
}

impl ElasticsearchConfig {
    pub fn build(&self) -> Result<Face, KeyError> {
        let parts: Vec<&str> = self.version.split('.').collect();
        let numeric = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()));
        if !numeric || !matches!(parts[0], "6" | "7" | "8" | "9") {
            return Err(KeyError::new(
                "collector.http.elasticsearch.version",
                format!(
                    "{:?} is not an Elasticsearch version such as 8.19.0 (major 6 to 9)",
                    self.version
                ),
            ));
        }
        if self.cluster_name.trim().is_empty() {
            return Err(KeyError::new(
                "collector.http.elasticsearch.cluster_name",
                "must not be empty",
            ));
        }
        let node_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "picket-collector".into());
        Ok(Face {
            version: self.version.clone(),
            cluster_uuid: mozdef::eventid::event_id("picket", &self.cluster_name, ""),
            cluster_name: self.cluster_name.clone(),
            node_name,
        })
    }
}

impl Default for Face {
    fn default() -> Self {
        ElasticsearchConfig::default()
            .build()
            .expect("the defaults are valid")
    }
}

/// The face's routes (they need the ingest role, as every sending route does).
pub fn routes() -> Router<AppState> {
    let ignored = || {
        get(not_kept)
            .head(not_kept)
            .put(acknowledged)
            .post(acknowledged)
            .delete(acknowledged)
    };
    Router::new()
        .route("/", get(banner).head(banner))
        .route("/_license", get(license))
        .route("/_xpack", get(xpack))
        .route("/_nodes", get(nodes))
        .route("/_nodes/{*rest}", get(nodes))
        .route("/_cluster/health", get(health))
        .route("/_cluster/health/{*rest}", get(health))
        .route("/_index_template/{name}", ignored())
        .route("/_template/{name}", ignored())
        .route("/_component_template/{name}", ignored())
        .route("/_ilm/policy/{name}", ignored())
        .route("/_ingest/pipeline/{name}", ignored())
        .route("/_refresh", post(refreshed).get(refreshed))
        .route("/{index}/_refresh", post(refreshed).get(refreshed))
        .route("/{index}", put(index_created).get(no_index).head(no_index))
        .route("/_bulk", post(bulk::post_bulk).put(bulk::post_bulk))
        .route(
            "/{index}/_bulk",
            post(bulk::post_index_bulk).put(bulk::post_index_bulk),
        )
        .route("/{index}/_doc", post(bulk::post_doc))
        .route(
            "/{index}/_doc/{id}",
            put(bulk::put_doc_id).post(bulk::put_doc_id),
        )
        .route(
            "/{index}/_create/{id}",
            put(bulk::put_create_id).post(bulk::put_create_id),
        )
        .layer(axum::middleware::map_response(product_header))
}

/// `X-Elastic-Product: Elasticsearch` on every answer of the face.
async fn product_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

/// An error in Elasticsearch's shape: `{"error": {"root_cause", "type", "reason"}, "status"}`.
pub(super) fn es_error(status: StatusCode, kind: &str, reason: impl Into<String>) -> Response {
    let reason = reason.into();
    let cause = json!({ "type": kind, "reason": reason });
    (
        status,
        axum::Json(json!({
            "error": { "root_cause": [cause], "type": kind, "reason": reason },
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

async fn banner(State(state): State<AppState>) -> axum::Json<Value> {
    let face = &state.elasticsearch;
    axum::Json(json!({
        "name": face.node_name,
        "cluster_name": face.cluster_name,
        "cluster_uuid": face.cluster_uuid,
        "version": {
            "number": face.version,
            "build_flavor": "default",
            "build_type": "deb",
            "build_hash": BUILD_HASH,
            "build_date": "2026-01-01T00:00:00.000000000Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
        "picket": { "version": env!("CARGO_PKG_VERSION") },
    }))
}

async fn license(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "license": {
            "status": "active",
            "uid": state.elasticsearch.cluster_uuid,
            "type": "basic",
            "issue_date": "2026-01-01T00:00:00.000Z",
            "issue_date_in_millis": 1_767_225_600_000u64,
            "max_nodes": 1000,
            "max_resource_units": null,
            "issued_to": state.elasticsearch.cluster_name,
            "issuer": "elasticsearch",
            "start_date_in_millis": -1,
        }
    }))
}

async fn xpack(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "build": { "hash": BUILD_HASH, "date": "2026-01-01T00:00:00.000Z" },
        "license": {
            "uid": state.elasticsearch.cluster_uuid,
            "type": "basic",
            "mode": "basic",
            "status": "active",
        },
        "features": {},
        "tagline": "You know, for X",
    }))
}

async fn nodes(State(state): State<AppState>) -> axum::Json<Value> {
    let face = &state.elasticsearch;
    axum::Json(json!({
        "_nodes": { "total": 1, "successful": 1, "failed": 0 },
        "cluster_name": face.cluster_name,
        "nodes": {
            face.cluster_uuid.clone(): {
                "name": face.node_name,
                "version": face.version,
                "roles": ["data", "ingest", "master"],
            }
        }
    }))
}

async fn health(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "cluster_name": state.elasticsearch.cluster_name,
        "status": "green",
        "timed_out": false,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 0,
        "active_shards": 0,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0,
    }))
}

/// A template, policy or pipeline put: acknowledged, not kept (events are stored with
/// the collector's own mapping).
async fn acknowledged() -> axum::Json<Value> {
    axum::Json(json!({ "acknowledged": true }))
}

/// A template, policy or pipeline asked for: there is none.
async fn not_kept(Path(name): Path<String>) -> Response {
    es_error(
        StatusCode::NOT_FOUND,
        "resource_not_found_exception",
        format!(
            "[{name}] is not kept: picket-collector acknowledges templates, policies and pipelines and ignores them"
        ),
    )
}

async fn index_created(Path(index): Path<String>) -> axum::Json<Value> {
    axum::Json(json!({ "acknowledged": true, "shards_acknowledged": true, "index": index }))
}

/// No index of a client's naming exists (events go to the store's own indices); a
/// client that wants one puts it, which is acknowledged.
async fn no_index(Path(index): Path<String>) -> Response {
    es_error(
        StatusCode::NOT_FOUND,
        "index_not_found_exception",
        format!("no such index [{index}]"),
    )
}

/// Documents are searchable once answered: a refresh has nothing to do.
async fn refreshed() -> axum::Json<Value> {
    axum::Json(json!({ "_shards": { "total": 1, "successful": 1, "failed": 0 } }))
}

#[cfg(test)]
mod tests;
