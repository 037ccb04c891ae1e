//! Where events are kept: the [`embedded`] store (tantivy, one index per day), the
//! default that needs no other service, or an [`elasticsearch`] cluster (or OpenSearch)
//! in MozDef's layout. [`Store`] is the one face both show the rest of the collector:
//! store a batch durably (answer only once it is stored), search with aggregations,
//! delete old days.

pub mod config;
pub mod elasticsearch;
pub mod embedded;

use chrono::{DateTime, Utc};
use mozdef::Event;
use serde::Serialize;
use thiserror::Error;

use self::elasticsearch::ElasticStore;
use self::embedded::EmbeddedStore;

/// A search over stored events.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Lucene-style query string over top-level fields and `details.*`; empty or `*`
    /// matches everything.
    pub query: String,
    /// Earliest `utctimestamp`, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Latest `utctimestamp`, inclusive.
    pub to: Option<DateTime<Utc>>,
    /// Most events to return, newest first (0: only the count and aggregations).
    pub size: usize,
    /// The time `from` and `to` bound.
    pub time_field: TimeField,
    /// Elasticsearch aggregation JSON (`terms`, `cardinality`, `date_histogram`, …),
    /// computed over every matching event.
    pub aggs: Option<serde_json::Value>,
    /// Most bytes of events to return (0: no limit); the result says `truncated` when
    /// it stopped there.
    pub max_bytes: usize,
}

impl SearchRequest {
    /// Refuses, before anything parses them, a query string or aggregations too long or
    /// too deeply nested to parse safely ([`crate::query`]'s limits).
    pub fn check(&self) -> Result<(), StoreError> {
        crate::query::check(&self.query).map_err(|e| StoreError::BadQuery(e.to_string()))?;
        if let Some(aggs) = &self.aggs {
            crate::query::check_aggregations(aggs)
                .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
        }
        Ok(())
    }
}

/// The timestamp a search's time range applies to (alert rules choose; MozDef's
/// alerts match on either).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeField {
    /// When the event happened.
    #[default]
    UtcTimestamp,
    /// When the collector received it.
    ReceivedTimestamp,
}

impl TimeField {
    pub fn name(self) -> &'static str {
        match self {
            TimeField::UtcTimestamp => "utctimestamp",
            TimeField::ReceivedTimestamp => "receivedtimestamp",
        }
    }
}

/// Matching events, newest first, how many matched in all, and the aggregations asked
/// for, in Elasticsearch's response shape.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub hits: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregations: Option<serde_json::Value>,
    /// Fewer hits than asked for were returned: they reached the response size limit
    /// (`collector.http.max_response_bytes`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// What is stored: a normalized event, or a `/custom/<application>` document kept as
/// it was sent (MozDef stores those without normalizing them).
#[derive(Debug, Clone)]
// Nearly every document is an event: boxing it would cost an allocation each to save
// space only in the rare custom ones.
#[allow(clippy::large_enum_variant)]
pub enum Document {
    Event(Event),
    Custom {
        /// The document's id in the store (a fresh UUID-like id: custom documents carry
        /// no `eventid`).
        id: String,
        /// When the collector received it: its day and its place in time searches.
        received: DateTime<Utc>,
        source: serde_json::Map<String, serde_json::Value>,
        /// Replaces the document of this id (an alert whose triage status changed)
        /// instead of being refused as a conflicting resend: the embedded store
        /// deletes the old one in the same commit. `received` must be the old one's,
        /// so that both are filed under the same day.
        replaces: bool,
    },
}

impl From<Event> for Document {
    fn from(event: Event) -> Document {
        Document::Event(event)
    }
}

impl Document {
    /// The instant that files the document under a day: the event's `utctimestamp`,
    /// else its reception.
    pub fn day_time(&self) -> DateTime<Utc> {
        match self {
            Document::Event(event) => event
                .utc()
                .or_else(|| {
                    event
                        .receivedtimestamp
                        .as_deref()
                        .and_then(|t| mozdef::time::parse_str(t).ok())
                        .map(|t| t.with_timezone(&Utc))
                })
                .unwrap_or_else(Utc::now),
            Document::Custom { received, .. } => *received,
        }
    }

    /// The store's id: `eventid`, which makes a resent event the same document.
    pub fn id(&self) -> &str {
        match self {
            Document::Event(event) => &event.eventid,
            Document::Custom { id, .. } => id,
        }
    }

    /// The JSON kept and returned by searches.
    pub fn source_json(&self) -> String {
        match self {
            Document::Event(event) => serde_json::to_string(event).unwrap_or_default(),
            Document::Custom { source, .. } => serde_json::to_string(source).unwrap_or_default(),
        }
    }
}

/// What a store did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Documents now in the store (a resend of one already there counts: it is stored).
    pub stored: usize,
    /// Documents the store refused for good (Elasticsearch mapping errors), by position
    /// in the batch, with the reason; they were written to the dead-letter file.
    pub dead_lettered: Vec<(usize, String)>,
    /// Positions (in the batch handed to the store) of documents refused because a
    /// document with the same id and a different body is already stored: the first
    /// copy wins, an event cannot be rewritten by sending its id again.
    pub conflicts: Vec<usize>,
    /// Positions of documents that were already stored with the same body (resends,
    /// or a repeat within the batch): counted in `stored`, nothing new written.
    pub existing: Vec<usize>,
}

/// Whether `stored` (a stored document's JSON) is the same document as `new`, a
/// resend of it: equal but for `receivedtimestamp` (when it reached the collector) and
/// `alert_names` (which alert rules add to stored events), and, for an event timed at its reception (`details.timestamperror`), its times.
pub fn same_document(stored: &str, new: &Document) -> bool {
    let Ok(stored) = serde_json::from_str::<serde_json::Value>(stored) else {
        return false;
    };
    let new = match new {
        Document::Event(event) => serde_json::to_value(event).unwrap_or_default(),
        Document::Custom { source, .. } => serde_json::Value::Object(source.clone()),
    };
    let comparable = |mut value: serde_json::Value| {
        if let Some(object) = value.as_object_mut() {
            object.remove("receivedtimestamp");
            // Added to stored events by the alert rules that counted them.
            object.remove("alert_names");
            let retimed = object
                .get("details")
                .and_then(|d| d.get(mozdef::fields::details::TIMESTAMPERROR))
                .is_some();
            if retimed {
                object.remove("utctimestamp");
                object.remove("timestamp");
            }
        }
        value
    };
    comparable(stored) == comparable(new)
}

/// Why a store could not do what was asked.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open index {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("index write failed: {0}")]
    Write(tantivy::TantivyError),
    /// The commit of the writes this request was one of failed (shared by each).
    #[error(transparent)]
    Commit(std::sync::Arc<StoreError>),
    #[error("cannot list {path}: {source}")]
    List {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot delete {path}: {source}")]
    Delete {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("search failed: {0}")]
    Search(tantivy::TantivyError),
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("invalid aggregation: {0}")]
    BadAggregation(String),
    /// The store is down or refuses for now (Elasticsearch unreachable, 429, 5xx);
    /// the caller should retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The embedded store's write-ahead log could not be written or read.
    #[error("write-ahead log: {0}")]
    Log(String),
    /// Indexing is behind the write-ahead log by more than its bound: retry shortly.
    #[error("the store is busy indexing what it was sent; retry shortly")]
    Busy,
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    /// The request was wrong (say so with a 400), rather than the store failing.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            StoreError::BadQuery(_) | StoreError::BadAggregation(_)
        )
    }
}

/// Runs an embedded search, turning a panic inside the search engine (a query shape
/// it does not expect) into a refused query instead of a failed search.
pub fn guarded_search(
    store: &EmbeddedStore,
    request: &SearchRequest,
) -> Result<SearchResult, StoreError> {
    guarded(request, || store.search_blocking(request))
}

/// Runs `search`, a panic inside it refused as a bad query (see [`guarded_search`]).
pub(crate) fn guarded(
    request: &SearchRequest,
    search: impl FnOnce() -> Result<SearchResult, StoreError>,
) -> Result<SearchResult, StoreError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(search)) {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(query = %request.query.chars().take(200).collect::<String>(), "The search engine could not run a query; refused as a bad request.");
            Err(StoreError::BadQuery(
                "this query cannot be run by the embedded store; rewrite it".into(),
            ))
        }
    }
}

/// The store the collector runs with.
pub enum Store {
    Embedded(EmbeddedStore),
    /// Shared with the alert store, which keeps `alerts-*` in the same cluster.
    Elasticsearch(std::sync::Arc<ElasticStore>),
}

impl Store {
    /// Stores `documents`; returns once they are durable (in the embedded store's
    /// write-ahead log, or acknowledged by Elasticsearch), never before.
    pub async fn store(&self, documents: Vec<Document>) -> Result<Stored, StoreError> {
        match self {
            Store::Embedded(store) => store.store(documents).await,
            Store::Elasticsearch(store) => store.store(documents).await,
        }
    }

    /// Searches stored events.
    pub async fn search(
        self: &std::sync::Arc<Self>,
        request: SearchRequest,
    ) -> Result<SearchResult, StoreError> {
        request.check()?;
        match &**self {
            Store::Embedded(store) => store.search(&request).await,
            Store::Elasticsearch(store) => store.search(&request).await,
        }
    }

    /// Deletes the days (indices) older than `keep_days` days before today (UTC), and
    /// those more than `future` ahead of now (no event is filed there any more: their
    /// times are held to the window; an older collector may have left some); returns
    /// the names deleted. `keep_days` 0 keeps every past day.
    pub async fn prune(
        self: &std::sync::Arc<Self>,
        keep_days: u32,
        future: chrono::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let now = Utc::now();
        let oldest_kept = if keep_days == 0 {
            chrono::NaiveDate::MIN
        } else {
            now.date_naive() - chrono::Days::new(u64::from(keep_days))
        };
        let newest_kept = (now + future).date_naive();
        match &**self {
            Store::Embedded(store) => store.prune(oldest_kept, newest_kept).await,
            Store::Elasticsearch(store) => store.prune(oldest_kept, newest_kept).await,
        }
    }

    /// Periodic upkeep: Elasticsearch's daily indices and aliases.
    pub async fn maintain(&self) {
        if let Store::Elasticsearch(store) = self {
            store.maintain().await;
        }
    }

    /// Finishes pending writes and stops.
    pub async fn close(self: &std::sync::Arc<Self>) {
        if let Store::Embedded(_) = &**self {
            let this = std::sync::Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || {
                if let Store::Embedded(store) = &*this {
                    store.close();
                }
            })
            .await;
        }
    }

    /// `embedded` or `elasticsearch`, for logs and `/status`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Embedded(_) => "embedded",
            Store::Elasticsearch(_) => "elasticsearch",
        }
    }
}
