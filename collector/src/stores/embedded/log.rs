//! The front of the store: the log thread takes write requests, decides each
//! document (new, a resend of one already stored or logged, or a conflict), appends
//! the new ones to the write-ahead log, fsyncs once for every request that arrived
//! meanwhile, and answers; the indexer ([`super::writer`]) indexes behind it. On start
//! it replays what the log holds that the index may not.

use std::borrow::Cow;

use picket_common::wal::{Batch as WalBatch, DiskBuffer, Position};

use super::ids::{IdFilters, day_filter, id_hash};

use super::*;

/// A document decided new and logged, on its way to the index.
pub(super) struct Logged {
    pub(super) document: Document,
    pub(super) key: u32,
    pub(super) at: DateTime<Utc>,
    /// Its JSON: the log's record, the index's `_source`, what a resend is compared to.
    pub(super) source: Arc<str>,
}

#[cfg(test)]
impl Logged {
    /// A document as a write logs it, filed by its own time.
    pub(super) fn new(document: Document) -> Logged {
        let (key, at) = Shared::event_day(&document);
        Logged {
            source: source_of(&document),
            document,
            key,
            at,
        }
    }
}

/// What the indexer is asked, in log order.
pub(super) enum IndexRequest {
    /// Index these; once committed, acknowledge the log up to `upto`.
    Documents {
        documents: Vec<Logged>,
        upto: Option<Position>,
    },
    /// Answer once everything sent before is committed (`acknowledge = "indexed"`).
    Answer {
        stored: Stored,
        done: oneshot::Sender<Result<Stored, StoreError>>,
    },
    Prune {
        before: u32,
        after: u32,
        done: oneshot::Sender<Result<Vec<String>, StoreError>>,
    },
}

/// Ids logged but not yet committed to the index, by day, with their JSON: with the
/// index's searcher, what decides whether an id is taken.
#[derive(Default)]
pub(super) struct PendingIds {
    /// foldhash (randomly seeded per map, as std's SipHash is): the ids are the
    /// senders', and SipHash was ~2% of the store's thread.
    by_day: HashMap<u32, HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>>,
    /// Which ids the days being written may hold (index or pending), to skip the
    /// index lookup for an id surely new.
    filters: IdFilters,
}

impl PendingIds {
    /// Whether the id of hash `id` ([`id_hash`]) is surely not taken on day `key`,
    /// whose index keeps ids as `ids` says (its filter says so; a day's filter is made
    /// from its searcher and these pending ids when it gets one).
    fn surely_new(
        &mut self,
        shared: &Shared,
        key: u32,
        ids: IdTerms,
        id: u64,
        now: std::time::Instant,
    ) -> Result<bool, StoreError> {
        let Self { by_day, filters } = self;
        let fill = || {
            let no_ids = HashMap::default();
            let pending = by_day.get(&key).unwrap_or(&no_ids);
            let day = shared.day(key, false)?;
            day_filter(
                day.map(|day| day.reader.searcher()).as_ref(),
                ids,
                shared.fields.eventid,
                pending.keys().map(|id| &**id),
                now,
            )
        };
        Ok(filters.may_hold(key, ids, id, now, fill)? == Some(false))
    }

    /// The JSON of `id` logged on day `key` and not yet committed.
    pub(super) fn source(&self, key: u32, id: &str) -> Option<Arc<str>> {
        self.by_day.get(&key).and_then(|d| d.get(id)).cloned()
    }

    fn insert(&mut self, key: u32, id: &str, source: Arc<str>) {
        self.by_day
            .entry(key)
            .or_default()
            .insert(id.into(), source);
    }

    /// Forgets `id` on day `key` if `source` is still what is pending for it (a
    /// replacement logged since is newer, and stays).
    pub(super) fn remove(&mut self, key: u32, id: &str, source: &Arc<str>) {
        if let Some(ids) = self.by_day.get_mut(&key) {
            if ids
                .get(id)
                .is_some_and(|pending| Arc::ptr_eq(pending, source))
            {
                ids.remove(id);
            }
            if ids.is_empty() {
                self.by_day.remove(&key);
            }
        }
    }
}

/// The write-ahead log's records: `E`, the time that files the event under its day
/// (RFC 3339, µs), a newline and the event's JSON; or `C`, a custom document's id, its
/// reception time and its JSON, each after a newline (`R` the same for a custom
/// document that replaces the one of its id). The time is kept so that a
/// replay files a document under the day it was first filed under, whatever the clock
/// says then (an event with no time of its own is filed at its reception).
pub(super) fn encode(logged: &Logged, record: &mut Vec<u8>) {
    use std::io::Write as _;
    record.clear();
    let at = logged
        .at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    match &logged.document {
        Document::Event(_) => {
            let _ = writeln!(record, "E{at}");
        }
        Document::Custom { id, replaces, .. } => {
            let kind = if *replaces { 'R' } else { 'C' };
            let _ = write!(record, "{kind}{id}\n{at}\n");
        }
    }
    record.extend_from_slice(logged.source.as_bytes());
}

/// A record back as the document it was and the time that filed it (`None`: not one
/// this store wrote).
pub(super) fn decode(record: &[u8]) -> Option<(Document, DateTime<Utc>)> {
    let (&kind, rest) = record.split_first()?;
    let rest = std::str::from_utf8(rest).ok()?;
    let time = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    match kind {
        b'E' => {
            let (at, json) = rest.split_once('\n')?;
            let event = serde_json::from_str::<Event>(json).ok()?;
            Some((Document::Event(event), time(at)?))
        }
        b'C' | b'R' => {
            let mut parts = rest.splitn(3, '\n');
            let id = parts.next()?.to_string();
            let received = time(parts.next()?)?;
            let source = serde_json::from_str(parts.next()?).ok()?;
            Some((
                Document::Custom {
                    id,
                    received,
                    source,
                    replaces: kind == b'R',
                },
                received,
            ))
        }
        _ => None,
    }
}

/// A document's JSON, as searches return it.
pub(super) fn source_of(document: &Document) -> Arc<str> {
    match document {
        // The line writer the agent's hot path uses: byte for byte serde's output
        // (mozdef's tests hold it to that), at a fraction of its cost.
        Document::Event(event) => {
            let mut line = Vec::with_capacity(512);
            event.write_json_line(&mut line);
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            String::from_utf8(line)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
                .into()
        }
        Document::Custom { source, .. } => serde_json::to_string(source).unwrap_or_default().into(),
    }
}

/// What the log thread needs beyond [`Shared`].
pub(super) struct Log {
    pub(super) wal: Arc<Mutex<DiskBuffer>>,
    pub(super) index: mpsc::Sender<IndexRequest>,
    pub(super) acknowledge: Acknowledge,
    pub(super) max_unindexed_bytes: u64,
    /// Since when writes are refused (indexing is behind by the bound): logged when it
    /// starts and when it ends, not per request.
    pub(super) busy_since: Option<Instant>,
}

/// Documents of one write request and where to answer.
type Batch = (Vec<Document>, oneshot::Sender<Result<Stored, StoreError>>);

/// How long writes wait for indexing to fall back under the bound before they are
/// refused.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// Most requests answered by one fsync.
const MAX_GROUP: usize = 1024;

/// The log thread: groups requests, decides, logs, fsyncs, answers.
pub(super) fn log_loop(shared: Arc<Shared>, requests: mpsc::Receiver<WriteRequest>, mut log: Log) {
    let mut record = Vec::with_capacity(4096);
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(group.len());
        let mut prunes = Vec::new();
        for request in group {
            match request {
                WriteRequest::Write { events, done } => writes.push((events, done)),
                prune @ WriteRequest::Prune { .. } => prunes.push(prune),
            }
        }
        if !writes.is_empty() {
            write_group(&shared, &mut log, writes, &mut record);
        }
        for prune in prunes {
            if let WriteRequest::Prune {
                before,
                after,
                done,
            } = prune
            {
                // After the documents logged before it, as the requests came.
                if let Err(mpsc::SendError(IndexRequest::Prune { done, .. })) =
                    log.index.send(IndexRequest::Prune {
                        before,
                        after,
                        done,
                    })
                {
                    let _ = done.send(Err(StoreError::Closed));
                }
            }
        }
    }
}

/// Decides, logs and answers one group of write requests.
fn write_group(shared: &Shared, log: &mut Log, mut writes: Vec<Batch>, record: &mut Vec<u8>) {
    // Behind by the bound: wait a little for the indexer (the requests queue meanwhile,
    // as they did for commits before the log), then refuse.
    let unindexed = || log.wal.lock().map(|w| w.unacked_bytes()).unwrap_or(0);
    let waited = Instant::now();
    let mut unindexed_bytes = unindexed();
    while unindexed_bytes >= log.max_unindexed_bytes && waited.elapsed() < BUSY_WAIT {
        std::thread::sleep(Duration::from_millis(5));
        unindexed_bytes = unindexed();
    }
    if unindexed_bytes >= log.max_unindexed_bytes {
        let unindexed = unindexed_bytes;
        if log.busy_since.is_none() {
            warn!(
                unindexed_bytes = unindexed,
                "Indexing is behind the write-ahead log by max_unindexed_bytes; writes are refused (503, Retry-After) until it catches up."
            );
            log.busy_since = Some(Instant::now());
        }
        for (_, done) in writes {
            let _ = done.send(Err(StoreError::Busy));
        }
        return;
    }
    if let Some(since) = log.busy_since.take() {
        info!(
            refused_for_ms = since.elapsed().as_millis() as u64,
            "Indexing caught up; writes are accepted again."
        );
    }
    let mut outcomes = vec![Stored::default(); writes.len()];
    let mut logged = Vec::new();
    let counts: Vec<usize> = writes.iter().map(|(events, _)| events.len()).collect();
    let decided = decide(
        shared,
        writes.iter_mut().map(|(events, _)| std::mem::take(events)),
        None,
        &mut outcomes,
        &mut logged,
    );
    let appended = decided.and_then(|()| append(log, &logged, record));
    let upto = match appended {
        Ok(upto) => upto,
        Err(e) => {
            error!(error = %e, requests = writes.len(), "Writing to the store's log failed; the senders are told to retry.");
            if let Ok(mut pending) = shared.pending.lock() {
                for l in &logged {
                    pending.remove(l.key, l.document.id(), &l.source);
                }
            }
            let e = Arc::new(e);
            for (_, done) in writes {
                let _ = done.send(Err(StoreError::Commit(Arc::clone(&e))));
            }
            return;
        }
    };
    if !logged.is_empty() {
        let sent = log.index.send(IndexRequest::Documents {
            documents: logged,
            upto,
        });
        if sent.is_err() {
            for (_, done) in writes {
                let _ = done.send(Err(StoreError::Closed));
            }
            return;
        }
    }
    for (((_, done), outcome), count) in writes.into_iter().zip(outcomes).zip(counts) {
        let stored = Stored {
            stored: count - outcome.conflicts.len(),
            ..outcome
        };
        match log.acknowledge {
            Acknowledge::Logged => {
                // A sender that gave up waiting is not an error here.
                let _ = done.send(Ok(stored));
            }
            Acknowledge::Indexed => {
                if let Err(mpsc::SendError(IndexRequest::Answer { done, .. })) =
                    log.index.send(IndexRequest::Answer { stored, done })
                {
                    let _ = done.send(Err(StoreError::Closed));
                }
            }
        }
    }
}

/// Sorts each document of `requests` into new (into `logged`, its id now pending),
/// a resend of a stored or logged one (`existing`) or a conflict (`conflicts`). First
/// copy wins: within the requests too, in order.
fn decide(
    shared: &Shared,
    requests: impl Iterator<Item = Vec<Document>>,
    times: Option<&[DateTime<Utc>]>,
    outcomes: &mut [Stored],
    logged: &mut Vec<Logged>,
) -> Result<(), StoreError> {
    // Under this lock the indexer neither reloads a reader nor forgets a pending id:
    // an id is seen either pending or in the searcher, never in neither.
    let mut guard = shared.pending.lock().map_err(|_| StoreError::Closed)?;
    let pending = &mut *guard;
    let mut searchers: HashMap<u32, Option<tantivy::Searcher>> = HashMap::new();
    // How each day keeps ids: as its index says, or (a day not yet made) as the days
    // this run makes do, which is how the indexer will make it.
    let mut id_terms: HashMap<u32, IdTerms> = HashMap::new();
    let now = std::time::Instant::now();
    for (r, documents) in requests.enumerate() {
        for (d, document) in documents.into_iter().enumerate() {
            // Replayed documents keep the time that filed them first (`times`).
            let (key, at) = match times.and_then(|t| t.get(d)) {
                Some(at) => (day_key(at.date_naive()), *at),
                None => Shared::event_day(&document),
            };
            let id = document.id();
            let ids = match id_terms.entry(key) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => *e.insert(
                    shared
                        .day(key, false)?
                        .map_or(IdTerms::Bucketed(shared.id_key), |day| day.ids),
                ),
            };
            let hash = id_hash(ids, id);
            let replaces = matches!(document, Document::Custom { replaces: true, .. });
            let is_pending = pending.by_day.get(&key).is_some_and(|d| d.contains_key(id));
            let earlier: Option<Cow<str>> = if replaces {
                None
            } else if is_pending {
                pending.by_day[&key]
                    .get(id)
                    .map(|source| Cow::Borrowed(&**source))
            } else if pending.surely_new(shared, key, ids, hash, now)? {
                None
            } else {
                let searcher = match searchers.entry(key) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        e.insert(shared.day(key, false)?.map(|day| day.reader.searcher()))
                    }
                };
                match searcher {
                    Some(searcher) => stored_source(shared, searcher, id)?.map(Cow::Owned),
                    None => None,
                }
            };
            if let Some(earlier) = earlier {
                if same_document(&earlier, &document) {
                    outcomes[r].existing.push(d);
                } else {
                    outcomes[r].conflicts.push(d);
                }
                continue;
            }
            let source = source_of(&document);
            pending.insert(key, id, Arc::clone(&source));
            pending.filters.insert(key, ids, hash);
            logged.push(Logged {
                document,
                key,
                at,
                source,
            });
        }
    }
    Ok(())
}

/// Appends `logged` to the log and fsyncs (without holding the lock through the
/// fsync, so the indexer can acknowledge meanwhile); the position after the last.
fn append(
    log: &Log,
    logged: &[Logged],
    record: &mut Vec<u8>,
) -> Result<Option<Position>, StoreError> {
    if logged.is_empty() {
        return Ok(None);
    }
    let wal_error = |e: picket_common::wal::BufferError| StoreError::Log(e.to_string());
    let mut wal = log.wal.lock().map_err(|_| StoreError::Closed)?;
    let mut upto = None;
    let mut appended = || -> Result<_, StoreError> {
        for l in logged {
            encode(l, record);
            upto = Some(wal.append(record).map_err(wal_error)?);
        }
        wal.begin_sync().map_err(wal_error)
    };
    let syncing = match appended() {
        Ok(syncing) => syncing,
        Err(e) => {
            let _ = wal.rollback();
            return Err(e);
        }
    };
    drop(wal);
    let synced = syncing.sync().map_err(wal_error);
    let mut wal = log.wal.lock().map_err(|_| StoreError::Closed)?;
    match synced {
        Ok(()) => {
            wal.end_sync(syncing);
            Ok(upto)
        }
        Err(e) => {
            let _ = wal.rollback();
            Err(e)
        }
    }
}

/// Sends what the log holds past its acknowledged point to the indexer, through the
/// same decision as a write: what a crash left logged but not committed is indexed,
/// what was committed before the crash is found in the index and skipped. Runs before
/// the store takes writes (their acknowledgements would pass what it had not sent); an
/// error fails the store's open.
pub(super) fn replay(shared: &Shared, log: &Log) -> Result<(), StoreError> {
    let mut batch = WalBatch::default();
    let (mut records, mut skipped, mut unreadable) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    loop {
        log.wal
            .lock()
            .map_err(|_| StoreError::Closed)?
            .read_into(10_000, &mut batch)
            .map_err(|e| StoreError::Log(e.to_string()))?;
        if batch.is_empty() {
            break;
        }
        let mut documents = Vec::with_capacity(batch.len());
        let mut times = Vec::with_capacity(batch.len());
        for record in batch.records().iter() {
            match decode(record) {
                Some((document, at)) => {
                    documents.push(document);
                    times.push(at);
                }
                None => unreadable += 1,
            }
        }
        records += batch.len() as u64;
        let mut outcome = [Stored::default()];
        let mut logged = Vec::new();
        let count = documents.len();
        decide(
            shared,
            std::iter::once(documents),
            Some(&times),
            &mut outcome,
            &mut logged,
        )?;
        skipped += (count - logged.len()) as u64;
        log.index
            .send(IndexRequest::Documents {
                documents: logged,
                upto: batch.last(),
            })
            .map_err(|_| StoreError::Closed)?;
        if records % 100_000 < 10_000 && records >= 100_000 {
            info!(records, "Replaying the store's write-ahead log…");
        }
    }
    if records > 0 {
        info!(
            records,
            already_indexed = skipped,
            took_ms = started.elapsed().as_millis() as u64,
            "Replayed the store's write-ahead log: what it held and the index did not is being indexed."
        );
    }
    if unreadable > 0 {
        error!(
            records = unreadable,
            "Records of the store's write-ahead log could not be read back as events; they are lost."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_the_documents_they_were() {
        let event: Event = serde_json::from_str(
            r#"{"eventid":"e1","utctimestamp":"2026-12-06T10:00:00+00:00","timestamp":"2026-12-06T10:00:00+00:00","receivedtimestamp":"2026-12-06T10:00:01+00:00","hostname":"h","processname":"sshd","processid":7,"severity":"INFO","summary":"s\nmore","category":"authentication","source":"authlog","tags":["a"],"details":{"sourceipaddress":"10.0.0.1","n":3}}"#,
        )
        .unwrap();
        let custom = Document::Custom {
            id: "c1".into(),
            received: DateTime::parse_from_rfc3339("2026-12-06T10:00:02.5+00:00")
                .unwrap()
                .with_timezone(&Utc),
            source: serde_json::from_str(r#"{"endpoint":"x","line":"a\nb"}"#).unwrap(),
            replaces: false,
        };
        let mut record = Vec::new();
        for document in [Document::Event(event), custom] {
            let logged = Logged::new(document);
            let (key, at) = (logged.key, logged.at);
            encode(&logged, &mut record);
            let (back, filed) = decode(&record).expect("decodes");
            assert_eq!(back.id(), logged.document.id());
            assert_eq!(filed, at);
            assert_eq!(Shared::event_day(&back), (key, at));
            assert_eq!(source_of(&back), logged.source);
        }
        assert!(decode(b"").is_none());
        assert!(decode(b"X{}").is_none());
        assert!(decode(b"E{not json").is_none());
        assert!(decode(b"E2026-12-06T10:00:00Z{}").is_none(), "no newline");
        assert!(decode(b"Cid-only").is_none());
    }
}
