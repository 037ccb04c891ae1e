//! The Elasticsearch store (OpenSearch too): events indexed with hand-written `_bulk`
//! requests into MozDef's layout, so MozDef's Kibana dashboards and alert queries keep
//! working.
//!
//! ## Layout in the cluster
//!
//! - Daily indices `events-YYYYMMDD` (the day of the event's `utctimestamp`, as the
//!   embedded store files it), with the aliases MozDef's tools query: `events` (today),
//!   `events-previous` (yesterday), `events-weekly` (the last seven days). Today's,
//!   yesterday's and tomorrow's indices are created ahead; the aliases move at the first
//!   upkeep after midnight UTC ([`ElasticStore::maintain`], every few minutes).
//! - Alerts in monthly `alerts-YYYYMM` with the alias `alerts` (current month).
//! - Index templates `picket-events` (`events-*`) and `picket-alerts` (`alerts-*`) with
//!   MozDef's mapping in today's terms: strings and numbers not named below are
//!   `keyword` (MozDef mapped every dynamic value as a not-analyzed string, which keeps
//!   one sender's number from breaking another's string), `summary` is `text`, the
//!   timestamps are `date`, `details.sourceipaddress`/`destinationipaddress`/`srcip`/
//!   `dstip` are `ip`, the ports and `processid` `long` (the event contract's integer:
//!   ranges and sums on it are numeric, as in the embedded store), `details.success`
//!   `boolean`. Malformed IPs,
//!   numbers and dates are kept in `_source` but not indexed (`ignore_malformed`), so
//!   they do not cost the event.
//!
//! ## Writing
//!
//! Each document is a `create` with `_id` = `eventid`: a resent event finds its first
//! copy and gets 409. Those are fetched back (`_mget`): the same body (but for
//! `receivedtimestamp` and `alert_names`) was a resend and counts as stored; another
//! body is refused as a conflict (the first copy wins). Per item: 2xx are stored; 429 and 5xx are retried, those items only, with backoff
//! (0.5 s doubling to 8 s) for up to `retry_secs`; any other 4xx is a document the
//! cluster will never take (a mapping conflict): it goes to
//! `<data_dir>/elasticsearch-dead-letter.ndjson` with the reason, fsynced, and is
//! counted. A whole request that fails (connection refused, timeout, 502/503/504) is
//! sent to the next node URL; a search refused as too big (OpenSearch's 503
//! `too_many_buckets_exception`) is not: it is the asker's 400. Nothing is answered as
//! stored before the cluster or the dead-letter file has it; when retries run out the
//! caller is told to retry later.
//!
//! Versions: Elasticsearch 7.x and 8.x (composable templates from 7.8, legacy
//! `_template` before) and OpenSearch 1.x/2.x, told apart by `GET /`.

mod answers;
pub mod config;
mod indices;
mod search;
pub use self::search::{FoundAlert, Versioned};

use self::answers::*;
pub use self::config::{Credentials, ElasticSettings};
pub use self::indices::mapping;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike, Days, NaiveDate, Utc};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::{Document, SearchRequest, SearchResult, StoreError, Stored};
use picket_common::backoff::Backoff;
use picket_common::http_client::error_chain;

/// What `GET /` said the cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flavor {
    opensearch: bool,
    major: u32,
    minor: u32,
}

impl Flavor {
    /// Composable index templates (`_index_template`): Elasticsearch 7.8+, OpenSearch.
    fn composable_templates(self) -> bool {
        self.opensearch || self.major > 7 || (self.major == 7 && self.minor >= 8)
    }
}

#[derive(Debug, Default)]
struct Prepared {
    flavor: Option<Flavor>,
    templates: bool,
    /// The UTC day the aliases were last moved for.
    rotated: Option<NaiveDate>,
}

/// The Elasticsearch store. Cheap to share behind an `Arc`.
pub struct ElasticStore {
    settings: Arc<ElasticSettings>,
    client: reqwest::Client,
    /// The node tried first: the last one that answered.
    current: AtomicUsize,
    prepared: tokio::sync::Mutex<Prepared>,
    dead_letter: std::sync::Mutex<()>,
}

/// A request that got no usable answer from any node.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unreachable(String);

/// Why a whole `_bulk` request must be retried.
#[derive(Debug, thiserror::Error)]
enum BulkError {
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    #[error("_bulk answered {status}: {reason}")]
    Status { status: StatusCode, reason: String },
    #[error("_bulk answered {got} items for {sent} documents")]
    ItemCount { got: usize, sent: usize },
}

/// A per-item outcome of `_bulk`.
enum ItemOutcome {
    Stored,
    /// 409 to a `create`: a document with this id is there already.
    Exists,
    Retry(String),
    Refused(String),
}

/// Why the Elasticsearch store could not be set up (nothing is sent to the cluster yet).
#[derive(Debug, thiserror::Error)]
pub enum ElasticSetupError {
    #[error("cannot create {path}: {source}")]
    DeadLetterDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] picket_common::http_client::HttpClientError),
}

impl ElasticStore {
    /// Builds the client; nothing is sent until the first write or [`Self::maintain`]
    /// (a cluster that is down at start delays events, it does not stop the collector).
    pub fn new(settings: ElasticSettings) -> Result<ElasticStore, ElasticSetupError> {
        if let Some(dir) = settings.dead_letter_path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ElasticSetupError::DeadLetterDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("picket-collector/", env!("CARGO_PKG_VERSION")));
        let client = picket_common::http_client::build_http_client(
            builder,
            settings.urls.iter().map(|u| u.as_str()),
            &settings.tls,
        )?;
        Ok(ElasticStore {
            settings: Arc::new(settings),
            client,
            current: AtomicUsize::new(0),
            prepared: tokio::sync::Mutex::new(Prepared::default()),
            dead_letter: std::sync::Mutex::new(()),
        })
    }

    /// The node URLs, for logs.
    pub fn urls(&self) -> String {
        self.settings
            .urls
            .iter()
            .map(|u| u.as_str().trim_end_matches('/'))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Sends one request, trying every node from the current one: a network error, a
    /// timeout or 502/503/504 moves on to the next (but a 503 refusing the request
    /// itself, `too_many_buckets_exception`, is returned). Returns the first other answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(StatusCode, Value), Unreachable> {
        let nodes = self.settings.urls.len();
        let first = self.current.load(Ordering::Relaxed) % nodes;
        let mut last_error = String::new();
        for step in 0..nodes {
            let node = (first + step) % nodes;
            let url = match self.settings.urls[node].join(path.trim_start_matches('/')) {
                Ok(url) => url,
                Err(e) => return Err(Unreachable(format!("bad path {path}: {e}"))),
            };
            let mut request = self.client.request(method.clone(), url.clone());
            request = match &self.settings.credentials {
                Some(Credentials::Basic { username, password }) => {
                    request.basic_auth(username, Some(password.expose()))
                }
                Some(Credentials::ApiKey(key)) => request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("ApiKey {}", key.expose()),
                ),
                None => request,
            };
            if let Some((content_type, bytes)) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(bytes.clone());
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if matches!(status.as_u16(), 502..=504) {
                        // A node that cannot serve: the next may. But a search the
                        // cluster refuses as too big answers 503 too, and every node
                        // would refuse it: that answer is the caller's. (Its body is
                        // read for 2 s at most: a stalled proxy must not hold failover.)
                        let body = if status == StatusCode::SERVICE_UNAVAILABLE {
                            tokio::time::timeout(Duration::from_secs(2), response.bytes())
                                .await
                                .ok()
                                .and_then(Result::ok)
                        } else {
                            None
                        };
                        let value = body.as_deref().map(answer_json).unwrap_or(Value::Null);
                        if is_request_fault(&value) {
                            self.current.store(node, Ordering::Relaxed);
                            return Ok((status, value));
                        }
                        last_error = format!("{} answered {status}", host(&url));
                        continue;
                    }
                    self.current.store(node, Ordering::Relaxed);
                    let bytes = response.bytes().await.map_err(|e| {
                        Unreachable(format!("{}: reading the answer: {e}", host(&url)))
                    })?;
                    return Ok((status, answer_json(&bytes)));
                }
                Err(e) => {
                    last_error = format!("{}: {}", host(&url), error_chain(&e));
                }
            }
        }
        Err(Unreachable(last_error))
    }

    /// Stores `documents` with `_bulk` `create`s; see the module's documentation.
    pub async fn store(&self, documents: Vec<Document>) -> Result<Stored, StoreError> {
        if documents.is_empty() {
            return Ok(Stored::default());
        }
        self.prepare(Utc::now().date_naive()).await?;
        let lines: Vec<Vec<u8>> = documents.iter().map(bulk_lines).collect();
        let started = Instant::now();
        let mut outcome = Stored::default();
        let mut pending: Vec<usize> = (0..documents.len()).collect();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        let mut existing = Vec::new();
        loop {
            let mut retry = Vec::new();
            let mut last_reason = String::new();
            for chunk in chunks(&pending, &lines, self.settings.bulk_max_bytes) {
                let mut body = Vec::with_capacity(chunk.iter().map(|&i| lines[i].len()).sum());
                for &i in &chunk {
                    body.extend_from_slice(&lines[i]);
                }
                match self.bulk(body, chunk.len()).await {
                    Ok(items) => {
                        let mut refused = Vec::new();
                        for (&i, item) in chunk.iter().zip(items) {
                            match item {
                                ItemOutcome::Stored => outcome.stored += 1,
                                ItemOutcome::Exists => existing.push(i),
                                ItemOutcome::Retry(reason) => {
                                    last_reason = reason;
                                    retry.push(i);
                                }
                                ItemOutcome::Refused(reason) => refused.push((i, reason)),
                            }
                        }
                        if !refused.is_empty() {
                            self.write_dead_letters(&documents, &refused)?;
                            outcome.dead_lettered.extend(refused);
                        }
                    }
                    Err(reason) => {
                        last_reason = reason.to_string();
                        retry.extend(chunk);
                    }
                }
            }
            if retry.is_empty() {
                if !existing.is_empty() {
                    outcome.conflicts = self.conflicting(&documents, &existing).await?;
                    outcome.stored += existing.len() - outcome.conflicts.len();
                    let conflicts: std::collections::HashSet<usize> =
                        outcome.conflicts.iter().copied().collect();
                    existing.retain(|i| !conflicts.contains(i));
                    outcome.existing = existing;
                }
                return Ok(outcome);
            }
            // Retried for the whole window: the last wait is cut to its end.
            let left = self.settings.retry_for.saturating_sub(started.elapsed());
            let delay = backoff.next_delay().min(left);
            if delay.is_zero() {
                return Err(StoreError::Unavailable(format!(
                    "{} of {} documents not stored after {:?}: {last_reason}",
                    retry.len(),
                    documents.len(),
                    started.elapsed()
                )));
            }
            warn!(
                retrying = retry.len(),
                of = documents.len(),
                reason = %last_reason,
                "Elasticsearch refused documents for now; retrying those."
            );
            tokio::time::sleep(delay).await;
            pending = retry;
        }
    }

    /// Of the documents at `positions`, whose ids the cluster already holds (409), the
    /// positions of those whose stored body differs: the first copy stays, so those are
    /// refused as conflicts; the others were resends and count as stored.
    async fn conflicting(
        &self,
        documents: &[Document],
        positions: &[usize],
    ) -> Result<Vec<usize>, StoreError> {
        let docs: Vec<Value> = positions
            .iter()
            .map(|&i| {
                let document = &documents[i];
                json!({ "_index": events_index(document.day_time().date_naive()), "_id": document.id() })
            })
            .collect();
        let body = json!({ "docs": docs }).to_string().into_bytes();
        let (status, answer) = self
            .request(Method::POST, "/_mget", Some(("application/json", body)))
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "_mget answered {status}: {}",
                reason(&answer)
            )));
        }
        let found = answer["docs"].as_array().cloned().unwrap_or_default();
        let mut conflicts = Vec::new();
        for (&i, doc) in positions
            .iter()
            .zip(found.iter().chain(std::iter::repeat(&Value::Null)))
        {
            let same = doc["found"].as_bool() == Some(true)
                && super::same_document(&doc["_source"].to_string(), &documents[i]);
            if !same {
                conflicts.push(i);
            }
        }
        Ok(conflicts)
    }

    /// One `_bulk` request: per-item outcomes in order, or why the whole request must
    /// be retried.
    async fn bulk(&self, body: Vec<u8>, count: usize) -> Result<Vec<ItemOutcome>, BulkError> {
        let (status, answer) = self
            .request(Method::POST, "/_bulk", Some(("application/x-ndjson", body)))
            .await?;
        if !status.is_success() {
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                error!(status = %status, "Elasticsearch refuses the collector's credentials; check username/password_file or api_key_file.");
            }
            return Err(BulkError::Status {
                status,
                reason: reason(&answer),
            });
        }
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        if items.len() != count {
            return Err(BulkError::ItemCount {
                got: items.len(),
                sent: count,
            });
        }
        Ok(items.iter().map(item_outcome).collect())
    }

    /// Indexes alert documents into `alerts-YYYYMM` (by their `utctimestamp`), `_id`
    /// the alert's id (a retry overwrites, never doubles). All must be taken.
    pub async fn store_alerts(&self, alerts: &[(String, Value)]) -> Result<Stored, StoreError> {
        if alerts.is_empty() {
            return Ok(Stored::default());
        }
        self.prepare(Utc::now().date_naive()).await?;
        let mut body = Vec::new();
        for (id, document) in alerts {
            let month = document["utctimestamp"]
                .as_str()
                .and_then(|t| t.get(..7))
                .map(|m| m.replace('-', ""))
                .unwrap_or_else(|| Utc::now().format("%Y%m").to_string());
            // `create`: an alert stored again (recovered from a ledger's pending ones)
            // is left as it is, its triage kept; a 409 is `Exists`.
            let action = json!({ "create": { "_index": format!("alerts-{month}"), "_id": id } });
            body.extend_from_slice(action.to_string().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(document.to_string().as_bytes());
            body.push(b'\n');
        }
        let outcomes = self
            .bulk(body, alerts.len())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        for outcome in outcomes {
            match outcome {
                ItemOutcome::Stored | ItemOutcome::Exists => {}
                ItemOutcome::Retry(reason) | ItemOutcome::Refused(reason) => {
                    return Err(StoreError::Unavailable(format!(
                        "alert not stored: {reason}"
                    )));
                }
            }
        }
        Ok(Stored {
            stored: alerts.len(),
            ..Stored::default()
        })
    }

    /// Adds `rule` to the `alert_names` of each (index, id), as MozDef does for the
    /// events behind an alert (a painless script: no duplicate name, no lost name).
    pub async fn tag_alerted(
        &self,
        rule: &str,
        documents: &[(String, String)],
    ) -> Result<(), StoreError> {
        if documents.is_empty() {
            return Ok(());
        }
        let script = json!({
            "script": {
                "lang": "painless",
                "source": "if (ctx._source.alert_names == null) { ctx._source.alert_names = []; } if (!ctx._source.alert_names.contains(params.name)) { ctx._source.alert_names.add(params.name); }",
                "params": { "name": rule },
            }
        })
        .to_string();
        let mut body = Vec::new();
        for (index, id) in documents {
            let action =
                json!({ "update": { "_index": index, "_id": id, "retry_on_conflict": 3 } });
            body.extend_from_slice(action.to_string().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(script.as_bytes());
            body.push(b'\n');
        }
        let outcomes = self
            .bulk(body, documents.len())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let failed: Vec<String> = outcomes
            .into_iter()
            .filter_map(|o| match o {
                ItemOutcome::Stored | ItemOutcome::Exists => None,
                ItemOutcome::Retry(r) | ItemOutcome::Refused(r) => Some(r),
            })
            .collect();
        match failed.first() {
            None => Ok(()),
            Some(first) => Err(StoreError::Unavailable(format!(
                "{} of {} events not tagged: {first}",
                failed.len(),
                documents.len()
            ))),
        }
    }

    fn write_dead_letters(
        &self,
        documents: &[Document],
        refused: &[(usize, String)],
    ) -> Result<(), StoreError> {
        let _guard = self.dead_letter.lock().map_err(|_| StoreError::Closed)?;
        let mut text = Vec::new();
        let now = mozdef::time::format_utc(Utc::now());
        for (i, reason) in refused {
            let document = &documents[*i];
            let source: Value =
                serde_json::from_str(&document.source_json()).unwrap_or(Value::Null);
            let line = json!({
                "time": now,
                "index": events_index(document.day_time().date_naive()),
                "id": document.id(),
                "reason": reason,
                "document": source,
            });
            text.extend_from_slice(line.to_string().as_bytes());
            text.push(b'\n');
            warn!(id = document.id(), reason = %reason, file = %self.settings.dead_letter_path.display(), "Elasticsearch refused a document for good; it went to the dead-letter file.");
        }
        let written = (|| {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.settings.dead_letter_path)?;
            file.write_all(&text)?;
            file.sync_data()
        })();
        written.map_err(|e| {
            error!(error = %e, file = %self.settings.dead_letter_path.display(), "Cannot write the dead-letter file; the sender is told to retry.");
            StoreError::Unavailable(format!("dead-letter file: {e}"))
        })
    }
}

/// `events-20261124`.
pub fn events_index(day: NaiveDate) -> String {
    format!("events-{:04}{:02}{:02}", day.year(), day.month(), day.day())
}

/// The action line and the source line of one document.
fn bulk_lines(document: &Document) -> Vec<u8> {
    let index = events_index(document.day_time().date_naive());
    let action = json!({ "create": { "_index": index, "_id": document.id() } });
    let mut bytes = action.to_string().into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(document.source_json().as_bytes());
    bytes.push(b'\n');
    bytes
}
