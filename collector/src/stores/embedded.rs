//! The embedded store: tantivy indices under `<data_dir>/events/`, one per UTC day.
//!
//! ## On disk
//!
//! `<data_dir>/events/YYYYMMDD/` is a tantivy index holding the events whose
//! `utctimestamp` falls on that day. Each document has the event's full JSON in the
//! stored field `_source` (what searches return) and these indexed fields:
//!
//! | field | kind |
//! |---|---|
//! | `eventid` | exact, by a bucket of its digest; with `eventid_digest` (u64, fast) ([`id_terms`]: days written before 2026-12-08 keep the id itself as the term) |
//! | `hostname`, `processname`, `severity`, `category`, `source`, `tags` | exact keyword (raw), fast |
//! | `summary` | full text (lower-cased words) |
//! | `processid` | i64, fast |
//! | `utctimestamp`, `receivedtimestamp` | date (µs), fast only (ranges and sorting; days written before 2026-12 have them indexed too) |
//! | `details` | JSON: strings exact, numbers and booleans typed; `a.b` keys are paths |
//!
//! ## Invariants
//!
//! - `eventid` is unique within a day, and the first copy wins (Elasticsearch's
//!   `create`): an event whose id that day already holds is not written again. A
//!   resend (the same body but for `receivedtimestamp`) counts as stored; a different
//!   body is refused as a conflict, so nobody can rewrite a stored event by sending its
//!   id. An event resent by an agent has the same id and the same time, so it lands on
//!   the same day. (An event whose time could not be read is filed under its reception
//!   day; a resend of it on another day is the one case that can make a second copy.)
//! - Writes go through a write-ahead log, `<data_dir>/events-log/` (a
//!   [`picket_common::wal`], the agent's disk buffer format): the log thread
//!   ([`log`]) decides each document against the index and the ids logged but not yet
//!   indexed, appends the new ones, fsyncs once for every request that arrived
//!   meanwhile, and then answers ([`Acknowledge::Logged`], the default) or leaves the
//!   answer to the indexer ([`Acknowledge::Indexed`]). [`EmbeddedStore::store`] never
//!   returns before the events are durable: a caller may acknowledge them then.
//! - The indexer thread ([`writer`]) owns every index writer; it adds documents as
//!   they are logged and commits at most once per `commit_interval`, then makes them
//!   searchable and acknowledges the log up to them. Searches see an event within
//!   about `commit_interval` of its answer (the searchable lag).
//! - At most [`OPEN_WRITERS`] writers stay open between commits (+1 while writing).
//! - Indexing may fall behind the log by `max_unindexed_bytes`; past that, writes are
//!   refused ([`StoreError::Busy`], a 503 with `Retry-After`) until it catches up.
//!
//! ## Recovery
//!
//! On open the log is recovered (CRC per record, a damaged stretch reported and
//! skipped) and what it holds past its acknowledged point is replayed through the same
//! decision as a write: documents a crash left logged but not committed are indexed;
//! those committed before the crash (the acknowledgement had not yet been written) are
//! found in the index by id and skipped. tantivy writes segments then atomically
//! replaces `meta.json`; on open, a day's leftover lock and uncommitted files are
//! cleaned up by tantivy itself.

pub mod config;
mod id_terms;
mod ids;
mod log;
mod search;
mod writer;

use self::config::{Acknowledge, EmbeddedSettings};
use self::id_terms::{IdKey, IdQuery, IdTerms};
use self::log::{Log, PendingIds, log_loop};
use self::writer::{index_loop, stored_source};

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use mozdef::Event;
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::schema::document::Value as _;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, JsonObjectOptions,
    NumericOptions, STORED, STRING, Schema, TEXT, TextFieldIndexing,
};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::{Document, SearchRequest, SearchResult, StoreError, Stored, same_document};

/// Daily indices kept open for writing at once; older ones are closed after a commit.
const OPEN_WRITERS: usize = 3;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    /// The log thread, then the indexer thread: joined in that order on close.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    root: PathBuf,
    /// The schema of days this run creates: their ids are digests under `id_key`.
    schema: Schema,
    /// The digest key of days this run creates (each day keeps its own in its schema);
    /// a write for a day not yet created is decided with it.
    id_key: IdKey,
    fields: Fields,
    days: RwLock<BTreeMap<u32, Arc<Day>>>,
    /// The most index writers that were ever open at once (each holds threads and
    /// memory of its own); bounded by `OPEN_WRITERS + 1` however many days a batch spans.
    peak_writers: AtomicUsize,
    /// Ids logged, not yet committed (see [`log::decide`]).
    pending: Mutex<PendingIds>,
}

struct Day {
    index: Index,
    reader: IndexReader,
    /// How its index keeps ids.
    ids: IdTerms,
}

#[derive(Clone, Copy)]
struct Fields {
    eventid: Field,
    utctimestamp: Field,
    receivedtimestamp: Field,
    hostname: Field,
    processname: Field,
    processid: Field,
    severity: Field,
    summary: Field,
    category: Field,
    source: Field,
    tags: Field,
    details: Field,
    source_json: Field,
    /// Only in days of digests ([`IdTerms::Bucketed`]).
    id_digest: Field,
}

enum WriteRequest {
    /// Store these, answer how many once committed.
    Write {
        events: Vec<Document>,
        done: oneshot::Sender<Result<Stored, StoreError>>,
    },
    /// Delete every day before `before` or after `after` (`YYYYMMDD`); answer the
    /// days deleted.
    Prune {
        before: u32,
        after: u32,
        done: oneshot::Sender<Result<Vec<String>, StoreError>>,
    },
}

impl EmbeddedStore {
    /// Opens (or creates) the store under `data_dir`, answering writes once they are
    /// indexed (read-after-write: what tests and the alert store want); see
    /// [`EmbeddedStore::open_with`].
    pub fn open(
        data_dir: &Path,
        commit_interval: Duration,
        writer_memory_bytes: usize,
    ) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(
            data_dir,
            &EmbeddedSettings::indexed(commit_interval, writer_memory_bytes),
        )
    }

    /// Opens (or creates) the store under `data_dir`, recovers its write-ahead log,
    /// starts its indexer thread, replays what the log holds past its acknowledged point
    /// (before this returns), then starts the log thread.
    pub fn open_with(
        data_dir: &Path,
        settings: &EmbeddedSettings,
    ) -> Result<EmbeddedStore, StoreError> {
        let root = data_dir.join("events");
        std::fs::create_dir_all(&root).map_err(|source| StoreError::CreateDir {
            path: root.clone(),
            source,
        })?;
        let log_dir = data_dir.join("events-log");
        let segment_bytes = (settings.max_unindexed_bytes / 4).clamp(1 << 20, 64 << 20);
        let (wal, recovery) = picket_common::wal::DiskBuffer::open(
            &log_dir,
            segment_bytes,
            settings.max_unindexed_bytes,
        )
        .map_err(|e| StoreError::Log(e.to_string()))?;
        if !recovery.lost.is_empty() {
            error!(
                path = %log_dir.display(),
                records = recovery.lost_records(),
                bytes = recovery.lost_bytes(),
                "The store's write-ahead log had damaged stretches; the events in them are lost."
            );
        }
        let wal = Arc::new(Mutex::new(wal));
        let id_key = IdKey::random()?;
        let (schema, fields) = schema(&id_key.tokenizer_name());
        let shared = Arc::new(Shared {
            root,
            schema,
            id_key,
            fields,
            days: RwLock::new(BTreeMap::new()),
            peak_writers: AtomicUsize::new(0),
            pending: Mutex::new(PendingIds::default()),
        });
        let spawn_error = |source| StoreError::CreateDir {
            path: shared.root.clone(),
            source,
        };
        let (index_tx, index_rx) = mpsc::channel();
        let indexer = {
            let (shared, wal) = (Arc::clone(&shared), Arc::clone(&wal));
            let (interval, memory) = (settings.commit_interval, settings.writer_memory_bytes);
            std::thread::Builder::new()
                .name("embedded-store-indexer".into())
                .spawn(move || index_loop(shared, index_rx, wal, interval, memory))
                .map_err(spawn_error)?
        };
        let (tx, rx) = mpsc::channel();
        let log = Log {
            wal,
            index: index_tx,
            acknowledge: settings.acknowledge,
            max_unindexed_bytes: settings.max_unindexed_bytes,
            busy_since: None,
        };
        // Before any write: a write's acknowledgement must not pass what replay has not
        // sent. A failed replay fails the open (the log keeps everything; the indexer
        // commits and acknowledges only what it was sent).
        if let Err(e) = log::replay(&shared, &log) {
            drop(log);
            let _ = indexer.join();
            error!(path = %log_dir.display(), error = %e, "Replaying the store's write-ahead log failed; nothing in it is lost, the store does not open.");
            return Err(e);
        }
        let thread_shared = Arc::clone(&shared);
        let logger = std::thread::Builder::new()
            .name("embedded-store-log".into())
            .spawn(move || log_loop(thread_shared, rx, log))
            .map_err(spawn_error)?;
        info!(path = %shared.root.display(), log = %log_dir.display(), "Embedded store opened.");
        Ok(EmbeddedStore {
            shared,
            requests: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![logger, indexer]),
        })
    }

    /// Stores `events` and returns once they are durable (logged, or indexed: see
    /// `acknowledge`): how many are stored, and which (by position) were refused
    /// because their id is stored (or logged) with another body.
    pub async fn store<D: Into<Document>>(&self, events: Vec<D>) -> Result<Stored, StoreError> {
        if events.is_empty() {
            return Ok(Stored::default());
        }
        let events: Vec<Document> = events.into_iter().map(Into::into).collect();
        let (done, wait) = oneshot::channel();
        self.send(WriteRequest::Write { events, done })?;
        wait.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Deletes the daily indices of days before `oldest_kept` or after `newest_kept`;
    /// returns their names. The writer thread does it between commits, so no write is
    /// lost to it (an event for a deleted day arriving later makes that day again,
    /// until the next prune).
    pub async fn prune(
        &self,
        oldest_kept: NaiveDate,
        newest_kept: NaiveDate,
    ) -> Result<Vec<String>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.send(WriteRequest::Prune {
            before: day_key(oldest_kept),
            after: day_key(newest_kept),
            done,
        })?;
        wait.await.unwrap_or(Err(StoreError::Closed))
    }

    fn send(&self, request: WriteRequest) -> Result<(), StoreError> {
        let guard = self.requests.lock().map_err(|_| StoreError::Closed)?;
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        sender.send(request).map_err(|_| StoreError::Closed)
    }

    /// Runs a search on this thread (blocking; a panic in the engine is not caught:
    /// see [`super::guarded_search`]).
    pub fn search_blocking(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        self.shared.search(request)
    }

    /// Runs a search on a blocking thread, a panic in the engine refused as a bad
    /// query: the same shape as [`super::elasticsearch::ElasticStore::search`].
    pub async fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        let shared = Arc::clone(&self.shared);
        let request = request.clone();
        tokio::task::spawn_blocking(move || super::guarded(&request, || shared.search(&request)))
            .await
            .map_err(|e| StoreError::Unavailable(format!("search task failed: {e}")))?
    }

    /// Stores alert documents (`(id, document)`), as the Elasticsearch store does in
    /// `alerts-*`; this store is the alerts' own.
    pub async fn store_alerts(
        &self,
        alerts: &[(String, serde_json::Value)],
    ) -> Result<Stored, StoreError> {
        let received = Utc::now();
        let documents: Vec<Document> = alerts
            .iter()
            .map(|(id, document)| Document::Custom {
                id: id.clone(),
                received,
                source: document.as_object().cloned().unwrap_or_default(),
                replaces: false,
            })
            .collect();
        self.store(documents).await
    }

    /// A custom document (an alert) by id: the newest JSON stored or logged for it, and
    /// the time that filed it. `None`: no such document.
    pub async fn find_custom(
        &self,
        id: &str,
    ) -> Result<Option<(DateTime<Utc>, serde_json::Value)>, StoreError> {
        let shared = Arc::clone(&self.shared);
        let id = id.to_string();
        tokio::task::spawn_blocking(move || shared.find_custom(&id))
            .await
            .map_err(|e| StoreError::Unavailable(format!("search task failed: {e}")))?
    }

    /// Replaces the custom document `id`, filed at `at` (what [`Self::find_custom`]
    /// said), with `source`: the old one is deleted in the commit that adds the new.
    pub async fn replace_custom(
        &self,
        id: &str,
        at: DateTime<Utc>,
        source: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Stored, StoreError> {
        self.store(vec![Document::Custom {
            id: id.to_string(),
            received: at,
            source,
            replaces: true,
        }])
        .await
    }

    /// Searches stored alerts: this store holds only alerts.
    pub async fn search_alerts(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        self.search(request).await
    }

    /// The most index writers this store has had open at once since it was opened.
    pub fn peak_open_writers(&self) -> usize {
        self.shared.peak_writers.load(Ordering::Relaxed)
    }

    /// Stops accepting writes, commits what is pending and stops the log and indexer
    /// threads.
    pub fn close(&self) {
        if let Ok(mut guard) = self.requests.lock() {
            guard.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for handle in threads {
            if handle.join().is_err() {
                error!("An embedded store thread panicked.");
            }
        }
        info!("Embedded store closed.");
    }
}

/// The schema of a new day, its `eventid` indexed by the tokenizer named
/// `id_tokenizer` (a digest's: [`IdKey::tokenizer_name`]).
fn schema(id_tokenizer: &str) -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = tantivy::schema::TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(id_tokenizer)
            .set_index_option(IndexRecordOption::Basic),
    );
    let keyword = STRING | FAST;
    // Times are fast fields only, not in the term index: at µs nearly every event has
    // a value of its own, and a term per document was ~10-15% of the indexing cost.
    // Ranges (every search's time bounds) and sorting run on the fast field; a bare
    // `utctimestamp:X` is made a range ([`search`]). Days written before this have the
    // times indexed as well, and are opened with their own schema.
    let date = DateOptions::default()
        .set_fast()
        .set_precision(DateTimePrecision::Microseconds);
    let json = JsonObjectOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_expand_dots_enabled()
        .set_fast("raw");
    let fields = Fields {
        eventid: builder.add_text_field("eventid", id),
        utctimestamp: builder.add_date_field("utctimestamp", date.clone()),
        receivedtimestamp: builder.add_date_field("receivedtimestamp", date),
        hostname: builder.add_text_field("hostname", keyword.clone()),
        processname: builder.add_text_field("processname", keyword.clone()),
        processid: builder.add_i64_field(
            "processid",
            NumericOptions::default().set_indexed().set_fast(),
        ),
        severity: builder.add_text_field("severity", keyword.clone()),
        summary: builder.add_text_field("summary", TEXT),
        category: builder.add_text_field("category", keyword.clone()),
        source: builder.add_text_field("source", keyword.clone()),
        tags: builder.add_text_field("tags", keyword),
        details: builder.add_json_field("details", json),
        source_json: builder.add_text_field("_source", STORED),
        id_digest: builder.add_u64_field(id_terms::DIGEST_FIELD, FAST),
    };
    (builder.build(), fields)
}

/// `20261124` for 2026-11-24.
fn day_key(date: NaiveDate) -> u32 {
    (date.year().max(0) as u32) * 10_000 + date.month() * 100 + date.day()
}

/// The index's time for `at`. tantivy keeps nanoseconds in an i64, which holds
/// 1677-09-21 to 2262-04-11: times beyond are clamped to those ends (a search
/// `to=9999-…` means "no upper bound", not "before 1970" after an overflow). Ingest
/// never stores such times (events are held to a window around their reception).
fn tantivy_time(at: DateTime<Utc>) -> tantivy::DateTime {
    const LIMIT: i64 = i64::MAX / 1_000;
    tantivy::DateTime::from_timestamp_micros(at.timestamp_micros().clamp(-LIMIT, LIMIT))
}

impl Shared {
    /// The day a document is filed under, and the instant that decides it.
    fn event_day(document: &Document) -> (u32, DateTime<Utc>) {
        let at = document.day_time();
        (day_key(at.date_naive()), at)
    }

    fn day_path(&self, key: u32) -> PathBuf {
        self.root.join(format!("{key:08}"))
    }

    /// The open day `key`, opening (and, when `create`, creating) its index.
    fn day(&self, key: u32, create: bool) -> Result<Option<Arc<Day>>, StoreError> {
        if let Some(day) = self.days.read().ok().and_then(|d| d.get(&key).cloned()) {
            return Ok(Some(day));
        }
        let path = self.day_path(key);
        if !create && !path.join("meta.json").exists() {
            return Ok(None);
        }
        std::fs::create_dir_all(&path).map_err(|source| StoreError::CreateDir {
            path: path.clone(),
            source,
        })?;
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let directory =
            MmapDirectory::open(&path).map_err(|e| open_err(tantivy::TantivyError::from(e)))?;
        // An existing day keeps the schema it was created with (one written before the
        // times left the term index has them there too; one written before the id
        // digests has the ids raw, and lacks the last field, `eventid_digest`): the
        // fields are the same, in the same order, so `Fields` holds for all (and a day
        // of raw ids is never given a digest).
        let index = if Index::exists(&directory).map_err(|e| open_err(e.into()))? {
            Index::open(directory)
        } else {
            Index::create(
                directory,
                self.schema.clone(),
                tantivy::IndexSettings::default(),
            )
        }
        .map_err(open_err)?;
        let schema = index.schema();
        let ids = IdTerms::of(&schema);
        if let (IdTerms::Bucketed(key), Some(name)) = (ids, id_terms::eventid_tokenizer(&schema)) {
            // Before any writer: a segment writer takes its tokenizers when made. Under
            // the name the schema gives, as it gives it.
            index.tokenizers().register(name, key.tokenizer());
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(open_err)?;
        let day = Arc::new(Day { index, reader, ids });
        let mut days = self.days.write().map_err(|_| StoreError::Closed)?;
        Ok(Some(Arc::clone(days.entry(key).or_insert(day))))
    }

    /// The index's document for `document`, filed at `at`, keeping `json` (its JSON)
    /// as `_source`, for a day that keeps ids as `ids` says.
    fn document(
        &self,
        document: Document,
        at: DateTime<Utc>,
        json: &str,
        ids: IdTerms,
    ) -> TantivyDocument {
        let digest = match ids {
            IdTerms::Bucketed(key) => Some(key.digest(document.id()).value),
            IdTerms::Raw => None,
        };
        let mut doc = match document {
            Document::Event(event) => self.event_document(event, at),
            Document::Custom { id, source, .. } => self.custom_document(&id, &source, at),
        };
        doc.add_text(self.fields.source_json, json);
        if let Some(value) = digest {
            doc.add_u64(self.fields.id_digest, value);
        }
        doc
    }

    /// Takes the event: its `details` become the index's JSON value without a copy.
    fn event_document(&self, event: Event, at: DateTime<Utc>) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.eventid, &event.eventid);
        doc.add_date(f.utctimestamp, tantivy_time(at));
        if let Some(received) = event
            .receivedtimestamp
            .as_deref()
            .and_then(|t| mozdef::time::parse_str(t).ok())
        {
            doc.add_date(
                f.receivedtimestamp,
                tantivy_time(received.with_timezone(&Utc)),
            );
        }
        doc.add_text(f.hostname, &event.hostname);
        doc.add_text(f.processname, &event.processname);
        doc.add_i64(f.processid, event.processid);
        doc.add_text(f.severity, &event.severity);
        doc.add_text(f.summary, &event.summary);
        doc.add_text(f.category, &event.category);
        doc.add_text(f.source, &event.source);
        for tag in &event.tags {
            doc.add_text(f.tags, tag);
        }
        doc.add_field_value(f.details, &tantivy::schema::OwnedValue::from(event.details));
        doc
    }

    /// A `/custom/<application>` document: kept as sent; its top-level fields that
    /// have the event schema's names and types are indexed under them (so
    /// `endpoint`-less searches such as `hostname:x` still find it), its `details`
    /// object too, and it is placed in time by its reception.
    fn custom_document(
        &self,
        id: &str,
        source: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.eventid, id);
        doc.add_date(f.utctimestamp, tantivy_time(at));
        doc.add_date(f.receivedtimestamp, tantivy_time(at));
        let text = |name: &str| source.get(name).and_then(|v| v.as_str());
        for (field, name) in [
            (f.hostname, "hostname"),
            (f.processname, "processname"),
            (f.severity, "severity"),
            (f.summary, "summary"),
            (f.category, "category"),
            (f.source, "source"),
        ] {
            if let Some(value) = text(name) {
                doc.add_text(field, value);
            }
        }
        if let Some(pid) = source.get("processid").and_then(|v| v.as_i64()) {
            doc.add_i64(f.processid, pid);
        }
        if let Some(tags) = source.get("tags").and_then(|v| v.as_array()) {
            for tag in tags.iter().filter_map(|t| t.as_str()) {
                doc.add_text(f.tags, tag);
            }
        }
        let mut details = source
            .get("details")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        // MozDef's custom route adds `endpoint` at the top; index it where the event
        // routes put theirs, so `details.endpoint:<application>` finds both.
        if let Some(endpoint) = source.get("endpoint") {
            details.insert("endpoint".into(), endpoint.clone());
        }
        doc.add_field_value(f.details, &tantivy::schema::OwnedValue::from(details));
        doc
    }

    /// The custom document `id` (its newest JSON: pending, else indexed) and the time
    /// that filed it.
    fn find_custom(
        &self,
        id: &str,
    ) -> Result<Option<(DateTime<Utc>, serde_json::Value)>, StoreError> {
        let days = self.days_between(None, None)?;
        // Under this lock the indexer neither reloads a reader nor forgets a pending
        // id (as for `decide`): the newest version is pending or in the searcher.
        let pending = self.pending.lock().map_err(|_| StoreError::Closed)?;
        let query = IdQuery::new(self.fields.eventid, id);
        for day in days {
            let searcher = day.reader.searcher();
            let found = searcher
                .search(&query, &tantivy::collector::DocSetCollector)
                .map_err(StoreError::Search)?;
            let Some(address) = found.into_iter().next() else {
                continue;
            };
            let column = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .date("utctimestamp")
                .map_err(StoreError::Search)?;
            let Some(at) = column
                .first(address.doc_id)
                .and_then(|t| DateTime::from_timestamp_micros(t.into_timestamp_micros()))
            else {
                continue;
            };
            // A replacement logged and not yet committed is the newest.
            let source = match pending.source(day_key(at.date_naive()), id) {
                Some(source) => source.to_string(),
                None => {
                    let doc: TantivyDocument = searcher.doc(address).map_err(StoreError::Search)?;
                    doc.get_first(self.fields.source_json)
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                }
            };
            let source = serde_json::from_str(&source)
                .map_err(|e| StoreError::Log(format!("document {id}: {e}")))?;
            return Ok(Some((at, source)));
        }
        Ok(None)
    }

    /// Day indices that exist on disk and may hold events between `from` and `to`,
    /// newest first.
    fn days_between(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<Arc<Day>>, StoreError> {
        let low = from.map(|t| day_key(t.date_naive())).unwrap_or(0);
        let high = to.map(|t| day_key(t.date_naive())).unwrap_or(u32::MAX);
        let mut keys: Vec<u32> = std::fs::read_dir(&self.root)
            .map_err(|source| StoreError::CreateDir {
                path: self.root.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
            })
            .filter(|key| (low..=high).contains(key))
            .collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        let mut days = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(day) = self.day(key, false)? {
                days.push(day);
            }
        }
        Ok(days)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wal_tests;
