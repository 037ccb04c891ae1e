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
//! | `eventid`, `hostname`, `processname`, `severity`, `category`, `source`, `tags` | exact keyword (raw), fast |
//! | `summary` | full text (lower-cased words) |
//! | `processid` | i64, fast |
//! | `utctimestamp`, `receivedtimestamp` | date (µs), fast |
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
//! - A batch is written day by day, each day committed before the next is opened;
//!   at most [`OPEN_WRITERS`] writers stay open between batches.
//! - [`EmbeddedStore::store`] returns only after a commit that holds the events: a
//!   caller may acknowledge them then. One writer thread owns every index writer and
//!   groups requests: it commits as soon as the previous commit is
//!   `commit_interval` old, with everything that arrived meanwhile.
//!
//! ## Recovery
//!
//! tantivy writes segments then atomically replaces `meta.json`; a crash before the
//! commit loses only what no caller was told was stored. On open, a day's leftover
//! lock and uncommitted files are cleaned up by tantivy itself.

pub mod config;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions,
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
    writer_thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    root: PathBuf,
    schema: Schema,
    fields: Fields,
    days: RwLock<BTreeMap<u32, Arc<Day>>>,
    /// The most index writers that were ever open at once (each holds threads and
    /// memory of its own); bounded by `OPEN_WRITERS + 1` however many days a batch spans.
    peak_writers: AtomicUsize,
}

struct Day {
    index: Index,
    reader: IndexReader,
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
}

enum WriteRequest {
    /// Store these, answer how many once committed.
    Write {
        events: Vec<Document>,
        done: oneshot::Sender<Result<Stored, String>>,
    },
    /// Delete every day before `before` or after `after` (`YYYYMMDD`); answer the
    /// days deleted.
    Prune {
        before: u32,
        after: u32,
        done: oneshot::Sender<Result<Vec<String>, String>>,
    },
}

impl EmbeddedStore {
    /// Opens (or creates) the store under `data_dir` and starts its writer thread.
    pub fn open(
        data_dir: &Path,
        commit_interval: Duration,
        writer_memory_bytes: usize,
    ) -> Result<EmbeddedStore, StoreError> {
        let root = data_dir.join("events");
        std::fs::create_dir_all(&root).map_err(|source| StoreError::CreateDir {
            path: root.clone(),
            source,
        })?;
        let (schema, fields) = schema();
        let shared = Arc::new(Shared {
            root,
            schema,
            fields,
            days: RwLock::new(BTreeMap::new()),
            peak_writers: AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer_loop(thread_shared, rx, commit_interval, writer_memory_bytes))
            .map_err(|source| StoreError::CreateDir {
                path: shared.root.clone(),
                source,
            })?;
        info!(path = %shared.root.display(), "Embedded store opened.");
        Ok(EmbeddedStore {
            shared,
            requests: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
        })
    }

    /// Stores `events` and returns once they are committed: how many are stored, and
    /// which (by position) were refused because their id is stored with another body.
    pub async fn store<D: Into<Document>>(&self, events: Vec<D>) -> Result<Stored, StoreError> {
        if events.is_empty() {
            return Ok(Stored::default());
        }
        let events: Vec<Document> = events.into_iter().map(Into::into).collect();
        let (done, wait) = oneshot::channel();
        self.send(WriteRequest::Write { events, done })?;
        match wait.await {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(message)) => Err(StoreError::Write(tantivy::TantivyError::InternalError(
                message,
            ))),
            Err(_) => Err(StoreError::Closed),
        }
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
        match wait.await {
            Ok(Ok(days)) => Ok(days),
            Ok(Err(message)) => Err(StoreError::Write(tantivy::TantivyError::InternalError(
                message,
            ))),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn send(&self, request: WriteRequest) -> Result<(), StoreError> {
        let guard = self.requests.lock().map_err(|_| StoreError::Closed)?;
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        sender.send(request).map_err(|_| StoreError::Closed)
    }

    /// Runs a search (blocking: call it from a blocking thread).
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        self.shared.search(request)
    }

    /// The most index writers this store has had open at once since it was opened.
    pub fn peak_open_writers(&self) -> usize {
        self.shared.peak_writers.load(Ordering::Relaxed)
    }

    /// Stops accepting writes, commits what is pending and stops the writer thread.
    pub fn close(&self) {
        if let Ok(mut guard) = self.requests.lock() {
            guard.take();
        }
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            if handle.join().is_err() {
                error!("Embedded store writer thread panicked.");
            }
        }
        info!("Embedded store closed.");
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let keyword = STRING | FAST;
    let date = DateOptions::from(INDEXED)
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
        eventid: builder.add_text_field("eventid", STRING),
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
        let index = Index::open_or_create(directory, self.schema.clone()).map_err(open_err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(open_err)?;
        let day = Arc::new(Day { index, reader });
        let mut days = self.days.write().map_err(|_| StoreError::Closed)?;
        Ok(Some(Arc::clone(days.entry(key).or_insert(day))))
    }

    fn document(&self, document: &Document, at: DateTime<Utc>) -> TantivyDocument {
        match document {
            Document::Event(event) => self.event_document(event, at),
            Document::Custom { id, source, .. } => self.custom_document(id, source, at),
        }
    }

    fn event_document(&self, event: &Event, at: DateTime<Utc>) -> TantivyDocument {
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
        doc.add_field_value(
            f.details,
            &tantivy::schema::OwnedValue::from(event.details.clone()),
        );
        doc.add_text(
            f.source_json,
            serde_json::to_string(event).unwrap_or_default(),
        );
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
        doc.add_text(
            f.source_json,
            serde_json::to_string(source).unwrap_or_default(),
        );
        doc
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        request.check()?;
        let f = &self.fields;
        let mut parser = QueryParser::new(
            self.schema.clone(),
            vec![f.summary, f.hostname, f.processname, f.category, f.tags],
            TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        let text = request.query.trim();
        let matcher: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let ast = tantivy::query_grammar::parse_query(text)
                .map_err(|_| StoreError::BadQuery(format!("cannot parse {text:?}")))?;
            self.build_query(&parser, lift_negations(ast))?
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, matcher)];
        if request.from.is_some() || request.to.is_some() {
            let field = match request.time_field {
                super::TimeField::UtcTimestamp => f.utctimestamp,
                super::TimeField::ReceivedTimestamp => f.receivedtimestamp,
            };
            let bound = |t: Option<DateTime<Utc>>| match t {
                Some(t) => Bound::Included(Term::from_field_date(field, tantivy_time(t))),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(request.from), bound(request.to))),
            ));
        }
        let query = BooleanQuery::new(clauses);
        // Days are filed by utctimestamp; an event received late sits in an earlier
        // day than its reception, so a reception-time search looks a day further back.
        let days = match request.time_field {
            super::TimeField::UtcTimestamp => self.days_between(request.from, request.to)?,
            super::TimeField::ReceivedTimestamp => {
                self.days_between(request.from.map(|t| t - chrono::Duration::days(1)), None)?
            }
        };
        let size = request.size.max(1);

        let mut total = 0;
        let mut found: Vec<(i64, usize, DocAddress)> = Vec::new();
        // One searcher per day for both the search and the document fetch: a commit in
        // between reloads the reader, and addresses from one searcher are meaningless
        // (out of bounds) in the next.
        let searchers: Vec<_> = days.iter().map(|day| day.reader.searcher()).collect();
        for (i, searcher) in searchers.iter().enumerate() {
            let top = TopDocs::with_limit(size)
                .order_by_fast_field::<tantivy::DateTime>("utctimestamp", Order::Desc);
            let (count, docs) = searcher
                .search(&query, &(Count, top))
                .map_err(search_error)?;
            total += count;
            for (at, address) in docs {
                let micros = at.map(|t| t.into_timestamp_micros()).unwrap_or(i64::MIN);
                found.push((micros, i, address));
            }
        }
        found.sort_by_key(|hit| std::cmp::Reverse(hit.0));
        found.truncate(request.size);

        let mut hits = Vec::with_capacity(found.len());
        let mut bytes = 0usize;
        let mut truncated = false;
        for (_, i, address) in found {
            let doc: TantivyDocument = searchers[i].doc(address).map_err(StoreError::Search)?;
            let source = doc
                .get_first(f.source_json)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            bytes = bytes.saturating_add(source.len());
            if request.max_bytes > 0 && bytes > request.max_bytes && !hits.is_empty() {
                truncated = true;
                break;
            }
            match serde_json::from_str(&source) {
                Ok(value) => hits.push(value),
                Err(e) => warn!(error = %e, "Stored event is not JSON; skipped."),
            }
        }
        let aggregations = match &request.aggs {
            Some(aggs) => Some(aggregate(&searchers, &query, aggs)?),
            None => None,
        };
        Ok(SearchResult {
            total,
            hits,
            aggregations,
            truncated,
        })
    }

    /// The query for a parsed query string. Leaves are built by tantivy's parser, but
    /// wildcard terms (`hostname:web*`, `details.username:adm?n`), which it would look
    /// up as the literal text `web*` and silently find nothing, become regular
    /// expressions over the field's terms, `details.*` paths included. The AST is at
    /// most [`crate::query::MAX_QUERY_DEPTH`] deep (checked before parsing).
    fn build_query(
        &self,
        parser: &QueryParser,
        ast: UserInputAst,
    ) -> Result<Box<dyn Query>, StoreError> {
        let bad = |e: tantivy::query::QueryParserError| StoreError::BadQuery(e.to_string());
        match ast {
            UserInputAst::Clause(items) => {
                let mut clauses = Vec::with_capacity(items.len());
                for (occur, child) in items {
                    // The parser's conjunction default: a bare term is required.
                    clauses.push((
                        occur.unwrap_or(Occur::Must),
                        self.build_query(parser, child)?,
                    ));
                }
                if clauses.is_empty() {
                    return Ok(Box::new(tantivy::query::EmptyQuery));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            UserInputAst::Boost(child, boost) => Ok(Box::new(tantivy::query::BoostQuery::new(
                self.build_query(parser, *child)?,
                boost.into_inner() as f32,
            ))),
            UserInputAst::Leaf(leaf) => match *leaf {
                UserInputLeaf::Literal(literal)
                    if literal.delimiter == tantivy::query_grammar::Delimiter::None
                        && literal.phrase.contains(['*', '?']) =>
                {
                    self.wildcard_query(literal.field_name.as_deref(), &literal.phrase)
                }
                UserInputLeaf::Range {
                    field: Some(field),
                    lower,
                    upper,
                } if field.starts_with("details.") && mixed_bounds(&lower, &upper) => {
                    Err(StoreError::BadQuery(format!(
                        "the range on {field} mixes a number and text ({} TO {}); give both ends as numbers, or both as text",
                        lower.term_str(),
                        upper.term_str()
                    )))
                }
                leaf => parser
                    .build_query_from_user_input_ast(UserInputAst::Leaf(Box::new(leaf)))
                    .map_err(bad),
            },
        }
    }

    /// `field:pattern` where `*` is any run of characters and `?` any one; with no
    /// field, over the default fields (summary, hostname, processname, category, tags).
    fn wildcard_query(
        &self,
        field: Option<&str>,
        pattern: &str,
    ) -> Result<Box<dyn Query>, StoreError> {
        let f = &self.fields;
        let regex = |glob: &str| {
            let mut out = String::with_capacity(glob.len() * 2);
            for c in glob.chars() {
                match c {
                    '*' => out.push_str(".*"),
                    '?' => out.push('.'),
                    c if "\\.+()|[]{}^$#&-~".contains(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out
        };
        let regex_query = |pattern: String, field: Field| {
            tantivy::query::RegexQuery::from_pattern(&pattern, field)
                .map(|q| Box::new(q) as Box<dyn Query>)
                .map_err(|e| StoreError::BadQuery(format!("wildcard {pattern:?}: {e}")))
        };
        let Some(name) = field else {
            let mut any = Vec::new();
            for field in [f.summary, f.hostname, f.processname, f.category, f.tags] {
                let glob = if field == f.summary {
                    pattern.to_lowercase()
                } else {
                    pattern.to_string()
                };
                any.push((Occur::Should, regex_query(regex(&glob), field)?));
            }
            return Ok(Box::new(BooleanQuery::new(any)));
        };
        if let Some(path) = name.strip_prefix("details.") {
            // A JSON field's terms are the path (segments joined by 0x01), 0x00, the
            // value's type (`s` for text), then the value as stored (raw).
            let mut full = String::new();
            for (i, segment) in path.split('.').enumerate() {
                if i > 0 {
                    full.push_str("\\x01");
                }
                full.push_str(&regex(&segment.replace(['*', '?'], "")));
            }
            full.push_str("\\x00s");
            full.push_str(&regex(pattern));
            return regex_query(full, f.details);
        }
        let field = match name {
            "hostname" => f.hostname,
            "processname" => f.processname,
            "severity" => f.severity,
            "category" => f.category,
            "source" => f.source,
            "tags" => f.tags,
            "eventid" => f.eventid,
            "summary" => return regex_query(regex(&pattern.to_lowercase()), f.summary),
            other => {
                return Err(StoreError::BadQuery(format!(
                    "wildcards work on text fields and details.*, not on {other:?}"
                )));
            }
        };
        regex_query(regex(pattern), field)
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

/// Runs Elasticsearch-style aggregations over every day's matches and merges them
/// (tantivy's distributed collector: per-index intermediate results, merged, then
/// finished once, so a `terms` count spans days exactly).
fn aggregate(
    searchers: &[tantivy::Searcher],
    query: &dyn Query,
    aggs: &serde_json::Value,
) -> Result<serde_json::Value, StoreError> {
    use tantivy::aggregation::agg_req::Aggregations;
    use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
    use tantivy::aggregation::{
        AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector,
    };
    let request: Aggregations = serde_json::from_value(aggs.clone())
        .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
    // The budget is one search's, shared by its days: each day's collection may take
    // its share (tantivy frees a day's count when the day is done, while its results
    // stay in the merge), so a search over 365 days cannot take 365 budgets.
    let per_day = (AGGREGATION_MEMORY_BYTES / searchers.len().max(1) as u64).max(1 << 20);
    let limits = || AggregationLimitsGuard::new(Some(AGGREGATION_MEMORY_BYTES), None);
    let mut merged: Option<IntermediateAggregationResults> = None;
    for searcher in searchers {
        let collector = DistributedAggregationCollector::from_aggs(
            request.clone(),
            AggContextParams::new(
                AggregationLimitsGuard::new(Some(per_day), None),
                TokenizerManager::default(),
            ),
        );
        let fruit = searcher
            .search(query, &collector)
            .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
        merged = Some(match merged {
            None => fruit,
            Some(mut so_far) => {
                so_far
                    .merge_fruits(fruit)
                    .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
                so_far
            }
        });
    }
    let merged = merged.unwrap_or_default();
    let result = merged
        .into_final_result(request, limits())
        .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
    serde_json::to_value(result).map_err(|e| StoreError::BadAggregation(e.to_string()))
}

/// The most memory one search's aggregations may take.
const AGGREGATION_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// A failed search: the query's fault (a field it cannot be run on) or the store's.
fn search_error(error: tantivy::TantivyError) -> StoreError {
    use tantivy::TantivyError as E;
    match error {
        E::SchemaError(message) | E::InvalidArgument(message) => StoreError::BadQuery(message),
        E::FieldNotFound(field) => StoreError::BadQuery(format!("no field {field:?}")),
        other => StoreError::Search(other),
    }
}

/// Whether a range's two ends are a number and text: tantivy panics running such a
/// range over a JSON field.
fn mixed_bounds(
    lower: &tantivy::query_grammar::UserInputBound,
    upper: &tantivy::query_grammar::UserInputBound,
) -> bool {
    use tantivy::query_grammar::UserInputBound;
    let numeric = |bound: &UserInputBound| match bound {
        UserInputBound::Unbounded => None,
        bound => Some(bound.term_str().parse::<f64>().is_ok()),
    };
    matches!((numeric(lower), numeric(upper)), (Some(a), Some(b)) if a != b)
}

/// Makes `a AND NOT b` mean what Lucene users expect. tantivy's grammar reads it as
/// `+a +(-b)`, and a clause holding only negations matches nothing; Lucene reads it as
/// `+a -b`. Purely negative clauses under a required parent are lifted into it, and a
/// query that is only negations matches everything else (`NOT category:session`).
fn lift_negations(ast: UserInputAst) -> UserInputAst {
    let UserInputAst::Clause(items) = ast else {
        return ast;
    };
    let only_negations = |ast: &UserInputAst| match ast {
        UserInputAst::Clause(inner) => {
            !inner.is_empty() && inner.iter().all(|(o, _)| *o == Some(Occur::MustNot))
        }
        _ => false,
    };
    let mut lifted = Vec::with_capacity(items.len());
    for (occur, child) in items {
        let child = lift_negations(child);
        if occur != Some(Occur::Should) && only_negations(&child) {
            if let UserInputAst::Clause(inner) = child {
                lifted.extend(inner);
            }
        } else {
            lifted.push((occur, child));
        }
    }
    if !lifted.is_empty() && lifted.iter().all(|(o, _)| *o == Some(Occur::MustNot)) {
        lifted.push((
            Some(Occur::Must),
            UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
        ));
    }
    UserInputAst::Clause(lifted)
}

/// The writer thread: groups requests, writes, commits, answers.
fn writer_loop(
    shared: Arc<Shared>,
    requests: mpsc::Receiver<WriteRequest>,
    commit_interval: Duration,
    writer_memory_bytes: usize,
) {
    let mut writers: HashMap<u32, IndexWriter> = HashMap::new();
    let mut recent: VecDeque<u32> = VecDeque::new();
    let mut last_commit = Instant::now() - commit_interval;
    let mut open = true;
    while open {
        let first = match requests.recv() {
            Ok(request) => request,
            Err(_) => break,
        };
        let mut batch = Vec::new();
        let mut prunes = Vec::new();
        match first {
            WriteRequest::Write { events, done } => batch.push((events, done)),
            WriteRequest::Prune {
                before,
                after,
                done,
            } => prunes.push((before, after, done)),
        }
        if !batch.is_empty() {
            let deadline = last_commit + commit_interval;
            loop {
                let now = Instant::now();
                let wait = deadline.saturating_duration_since(now);
                match requests.recv_timeout(wait) {
                    Ok(WriteRequest::Write { events, done }) => batch.push((events, done)),
                    Ok(WriteRequest::Prune {
                        before,
                        after,
                        done,
                    }) => prunes.push((before, after, done)),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        }
        if !batch.is_empty() {
            let mut conflicts: Vec<Vec<usize>> = vec![Vec::new(); batch.len()];
            let result = write_batch(
                &shared,
                &mut writers,
                &mut recent,
                &batch,
                &mut conflicts,
                writer_memory_bytes,
            );
            last_commit = Instant::now();
            let events: usize = batch.iter().map(|(events, _)| events.len()).sum();
            match &result {
                Ok(()) => debug!(requests = batch.len(), events, "Committed."),
                Err(e) => {
                    error!(error = %e, requests = batch.len(), events, "Commit failed; the senders are told to retry.")
                }
            }
            for ((events, done), conflicts) in batch.into_iter().zip(conflicts) {
                let answer = match &result {
                    Ok(()) => Ok(Stored {
                        stored: events.len() - conflicts.len(),
                        dead_lettered: 0,
                        conflicts,
                    }),
                    Err(e) => Err(e.to_string()),
                };
                // A sender that gave up waiting is not an error here.
                let _ = done.send(answer);
            }
        }
        for (before, after, done) in prunes {
            let _ = done.send(prune_days(
                &shared,
                &mut writers,
                &mut recent,
                before,
                after,
            ));
        }
    }
    for (key, writer) in writers {
        if let Err(e) = writer.wait_merging_threads() {
            warn!(day = key, error = %e, "Index merge did not finish cleanly.");
        }
    }
}

/// Documents of one request and where to answer.
type Batch = (Vec<Document>, oneshot::Sender<Result<Stored, String>>);

/// Deletes the days before `before` and after `after`: their writers closed, their
/// readers forgotten, their directories removed (searches still holding one finish on
/// the open files).
fn prune_days(
    shared: &Shared,
    writers: &mut HashMap<u32, IndexWriter>,
    recent: &mut VecDeque<u32>,
    before: u32,
    after: u32,
) -> Result<Vec<String>, String> {
    let mut keys: Vec<u32> = std::fs::read_dir(&shared.root)
        .map_err(|e| format!("cannot list {}: {e}", shared.root.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
        })
        .filter(|key| *key < before || *key > after)
        .collect();
    keys.sort_unstable();
    let mut deleted = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(writer) = writers.remove(&key) {
            let _ = writer.wait_merging_threads();
        }
        recent.retain(|k| *k != key);
        if let Ok(mut days) = shared.days.write() {
            days.remove(&key);
        }
        let path = shared.day_path(key);
        std::fs::remove_dir_all(&path)
            .map_err(|e| format!("cannot delete {}: {e}", path.display()))?;
        info!(day = key, path = %path.display(), "Deleted a day past retention (or ahead of the accepted time window).");
        deleted.push(format!("{key:08}"));
    }
    Ok(deleted)
}

fn write_batch(
    shared: &Shared,
    writers: &mut HashMap<u32, IndexWriter>,
    recent: &mut VecDeque<u32>,
    batch: &[Batch],
    conflicts: &mut [Vec<usize>],
    writer_memory_bytes: usize,
) -> Result<(), StoreError> {
    // Each request's documents by day, in order: a day is written and committed
    // whole, then the next, so however many days a batch spans, at most
    // OPEN_WRITERS + 1 writers (each with its threads and memory) exist at once. (One
    // batch of 200 distinct days once opened 200 writers: 1,420 threads, 1.6 GB.)
    let mut by_day: BTreeMap<u32, Vec<(usize, usize, DateTime<Utc>)>> = BTreeMap::new();
    for (r, (events, _)) in batch.iter().enumerate() {
        for (d, event) in events.iter().enumerate() {
            let (key, at) = Shared::event_day(event);
            by_day.entry(key).or_default().push((r, d, at));
        }
    }
    // Newest days first: they are the ones kept open for the next batch.
    for (key, documents) in by_day.into_iter().rev() {
        let written = write_day(
            shared,
            writers,
            key,
            batch,
            &documents,
            conflicts,
            writer_memory_bytes,
        );
        recent.retain(|k| *k != key);
        recent.push_front(key);
        if let Err(e) = written {
            // Nothing of a failed day may ride along with the next commit.
            if let Some(writer) = writers.get_mut(&key) {
                let _ = writer.rollback();
            }
            close_old_writers(writers, recent);
            return Err(e);
        }
        close_old_writers(writers, recent);
    }
    Ok(())
}

/// Keeps the writers of the [`OPEN_WRITERS`] days written most recently.
fn close_old_writers(writers: &mut HashMap<u32, IndexWriter>, recent: &mut VecDeque<u32>) {
    while recent.len() > OPEN_WRITERS {
        if let Some(old) = recent.pop_back() {
            if let Some(writer) = writers.remove(&old) {
                if let Err(e) = writer.wait_merging_threads() {
                    warn!(day = old, error = %e, "Index merge did not finish cleanly.");
                }
                debug!(day = old, "Closed the writer of an older day.");
            }
        }
    }
}

/// Writes one day's documents of a batch and commits them. First copy wins: a document
/// whose id is already stored that day (or earlier in this batch) is not written
/// again; if its body differs (but for the reception time) its position goes to
/// `conflicts`, else it was a resend and counts as stored.
fn write_day(
    shared: &Shared,
    writers: &mut HashMap<u32, IndexWriter>,
    key: u32,
    batch: &[Batch],
    documents: &[(usize, usize, DateTime<Utc>)],
    conflicts: &mut [Vec<usize>],
    writer_memory_bytes: usize,
) -> Result<(), StoreError> {
    let day = shared.day(key, true)?.ok_or(StoreError::Closed)?;
    let open_writers = writers.len() + usize::from(!writers.contains_key(&key));
    let writer = match writers.entry(key) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => {
            let writer = day
                .index
                .writer_with_num_threads(1, writer_memory_bytes)
                .map_err(|source| StoreError::Open {
                    path: shared.day_path(key),
                    source,
                })?;
            entry.insert(writer)
        }
    };
    shared
        .peak_writers
        .fetch_max(open_writers, Ordering::Relaxed);
    let searcher = day.reader.searcher();
    let mut added: HashMap<&str, (usize, usize)> = HashMap::with_capacity(documents.len());
    for &(r, d, at) in documents {
        let document = &batch[r].0[d];
        let id = document.id();
        let earlier = match added.get(id) {
            Some(&(r0, d0)) => Some(batch[r0].0[d0].source_json()),
            None => stored_source(shared, &searcher, id)?,
        };
        if let Some(earlier) = earlier {
            if !same_document(&earlier, document) {
                conflicts[r].push(d);
            }
            continue;
        }
        added.insert(id, (r, d));
        writer
            .add_document(shared.document(document, at))
            .map_err(StoreError::Write)?;
    }
    writer.commit().map_err(StoreError::Write)?;
    day.reader.reload().map_err(StoreError::Write)?;
    Ok(())
}

/// The stored JSON of the document with this id in a day, if any.
fn stored_source(
    shared: &Shared,
    searcher: &tantivy::Searcher,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let term = Term::from_field_text(shared.fields.eventid, id);
    // A term dictionary lookup per segment: the common case (a new id) ends here.
    if searcher.doc_freq(&term).map_err(StoreError::Search)? == 0 {
        return Ok(None);
    }
    let query = tantivy::query::TermQuery::new(term, IndexRecordOption::Basic);
    let found = searcher
        .search(&query, &tantivy::collector::DocSetCollector)
        .map_err(StoreError::Search)?;
    let Some(address) = found.into_iter().next() else {
        return Ok(None);
    };
    let doc: TantivyDocument = searcher.doc(address).map_err(StoreError::Search)?;
    Ok(doc
        .get_first(shared.fields.source_json)
        .and_then(|v| v.as_str().map(str::to_string)))
}

#[cfg(test)]
mod tests;
