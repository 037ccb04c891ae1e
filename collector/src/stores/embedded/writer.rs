//! The indexer thread: takes the documents the log thread logged, in log order, adds
//! them to their days' index writers as they come, commits at most once per
//! `commit_interval` (and before a new day's writer would pass the open-writer bound),
//! then makes them searchable, forgets their pending ids and acknowledges the log up
//! to them; answers writes that wait for the index; prunes days. A failed commit is
//! rolled back and retried with what it held (the log keeps it meanwhile).

use picket_common::wal::{DiskBuffer, Position};

use super::log::{IndexRequest, Logged};
use super::*;

/// Longest wait between two attempts at a commit that failed.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Most documents handed to a day's index writer at once. One hand-off per document
/// cost the log thread ~10% of its time in the channel to tantivy's indexing thread;
/// a bound keeps what waits in that channel (10,000 hand-offs) small.
const HAND_OFF_DOCUMENTS: usize = 1_000;

/// The indexer's state between commits.
struct Indexer<'a> {
    shared: &'a Shared,
    wal: &'a Mutex<DiskBuffer>,
    writer_memory_bytes: usize,
    writers: HashMap<u32, IndexWriter>,
    /// Documents made for a day's writer and not yet handed to it (see
    /// [`Indexer::hand_off`]).
    made: HashMap<u32, Vec<tantivy::indexer::UserOperation>>,
    recent: VecDeque<u32>,
    /// Added to writers, not yet committed, in log order.
    uncommitted: Vec<Added>,
    /// Days with uncommitted documents.
    dirty: BTreeSet<u32>,
    /// The log position the uncommitted documents reach.
    upto: Option<Position>,
    /// Writes answered once everything before them is committed.
    waiting: Vec<(Stored, oneshot::Sender<Result<Stored, StoreError>>)>,
    last_commit: Instant,
    /// After a failed commit: when to try again, and the wait after that.
    retry: Option<(Instant, Duration)>,
    /// Committed, but their day's searcher could not be reloaded: their ids stay
    /// pending (else a resend would be found in neither place) until a reload works.
    unseen: Vec<Added>,
}

/// A document added to a writer and not yet committed: what forgets its pending id once
/// committed, and makes it again for a retry. Its JSON, not the parsed document (a
/// fraction of the memory; a second of events can wait here).
struct Added {
    key: u32,
    at: DateTime<Utc>,
    id: Box<str>,
    custom: bool,
    /// A custom document that replaces the one of its id.
    replaces: bool,
    source: Arc<str>,
}

impl Added {
    fn new(logged: &Logged) -> Added {
        Added {
            key: logged.key,
            at: logged.at,
            id: logged.document.id().into(),
            custom: matches!(logged.document, Document::Custom { .. }),
            replaces: matches!(logged.document, Document::Custom { replaces: true, .. }),
            source: Arc::clone(&logged.source),
        }
    }

    /// The document again, from its JSON.
    fn document(&self) -> Result<Document, StoreError> {
        let unreadable = |e: serde_json::Error| StoreError::Log(format!("event {}: {e}", self.id));
        Ok(if self.custom {
            Document::Custom {
                id: self.id.to_string(),
                received: self.at,
                source: serde_json::from_str(&self.source).map_err(unreadable)?,
                replaces: self.replaces,
            }
        } else {
            Document::Event(serde_json::from_str(&self.source).map_err(unreadable)?)
        })
    }
}

/// The indexer thread: indexes, commits, acknowledges, answers, prunes.
pub(super) fn index_loop(
    shared: Arc<Shared>,
    requests: mpsc::Receiver<IndexRequest>,
    wal: Arc<Mutex<DiskBuffer>>,
    commit_interval: Duration,
    writer_memory_bytes: usize,
) {
    let mut indexer = Indexer {
        shared: &shared,
        wal: &wal,
        writer_memory_bytes,
        writers: HashMap::new(),
        made: HashMap::new(),
        recent: VecDeque::new(),
        uncommitted: Vec::new(),
        dirty: BTreeSet::new(),
        upto: None,
        waiting: Vec::new(),
        // (A machine up for less than the interval has no instant that far back.)
        last_commit: Instant::now()
            .checked_sub(commit_interval)
            .unwrap_or_else(Instant::now),
        retry: None,
        unseen: Vec::new(),
    };
    loop {
        let due = indexer.due(commit_interval);
        let request = match due {
            None => match requests.recv() {
                Ok(request) => Some(request),
                Err(_) => break,
            },
            Some(due) => match requests.recv_timeout(due.saturating_duration_since(Instant::now()))
            {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match request {
            Some(IndexRequest::Documents { documents, upto }) => {
                for logged in documents {
                    indexer.add(logged);
                }
                indexer.hand_off_or_fail();
                indexer.upto = indexer.upto.max(upto);
            }
            Some(IndexRequest::Answer { stored, done }) => indexer.waiting.push((stored, done)),
            Some(IndexRequest::Prune {
                before,
                after,
                done,
            }) => {
                indexer.commit();
                let _ = done.send(prune_days(
                    &shared,
                    &mut indexer.writers,
                    &mut indexer.recent,
                    before,
                    after,
                ));
            }
            None => {}
        }
        // Due or past it: commit now, even while requests keep coming (waiting for
        // the channel to run dry would starve commits under a steady load).
        if indexer
            .due(commit_interval)
            .is_some_and(|due| Instant::now() >= due)
        {
            indexer.commit();
        }
    }
    // Everything logged is committed before the store closes (else the log replays
    // it); after a failure, one more attempt now.
    if let Some((_, wait)) = indexer.retry {
        indexer.retry = Some((Instant::now(), wait));
    }
    indexer.commit();
    if !indexer.uncommitted.is_empty() {
        error!(
            events = indexer.uncommitted.len(),
            "Closing with events not indexed; they stay in the write-ahead log and are indexed at the next start."
        );
    }
    for (key, writer) in indexer.writers {
        if let Err(e) = writer.wait_merging_threads() {
            warn!(day = key, error = %e, "Index merge did not finish cleanly.");
        }
    }
}

impl Indexer<'_> {
    /// When the next commit is due: a retry's time, or a commit interval after the
    /// last one while anything is added, answered or acknowledged pending; `None` when
    /// there is nothing to do.
    fn due(&self, commit_interval: Duration) -> Option<Instant> {
        if let Some((at, _)) = self.retry {
            Some(at)
        } else if self.uncommitted.is_empty()
            && self.waiting.is_empty()
            && self.upto.is_none()
            && self.unseen.is_empty()
        {
            None
        } else {
            Some(self.last_commit + commit_interval)
        }
    }

    /// Adds a document to its day's writer, committing first when opening that writer
    /// would pass the bound on open writers (each holds threads and memory of its own:
    /// one batch of 200 distinct days once opened 200 writers, 1,420 threads, 1.6 GB).
    fn add(&mut self, logged: Logged) {
        let added = Added::new(&logged);
        if self.retry.is_none() {
            if !self.writers.contains_key(&logged.key) && self.writers.len() > OPEN_WRITERS {
                self.commit();
            }
            if self.retry.is_none() {
                if let Err(e) = self.write(logged.key, logged.document, logged.at, &logged.source) {
                    self.failed(e);
                }
            }
        }
        self.uncommitted.push(added);
    }

    fn write(
        &mut self,
        key: u32,
        document: Document,
        at: DateTime<Utc>,
        source: &str,
    ) -> Result<(), StoreError> {
        let day = self.shared.day(key, true)?.ok_or(StoreError::Closed)?;
        if !self.writers.contains_key(&key) {
            let writer = day
                .index
                .writer_with_num_threads(1, self.writer_memory_bytes)
                .map_err(|source| StoreError::Open {
                    path: self.shared.day_path(key),
                    source,
                })?;
            self.writers.insert(key, writer);
            self.shared
                .peak_writers
                .fetch_max(self.writers.len(), Ordering::Relaxed);
        }
        self.recent.retain(|k| *k != key);
        self.recent.push_front(key);
        self.dirty.insert(key);
        let made = self.made.entry(key).or_default();
        if let Document::Custom {
            id, replaces: true, ..
        } = &document
        {
            // Deletes what was added before it (in this batch too: handed to the writer
            // first), not after. By query: a day of digests has no term of the id alone.
            let writer = self.writers.get(&key).ok_or(StoreError::Closed)?;
            writer
                .run(std::mem::take(made))
                .map_err(StoreError::Write)?;
            writer
                .delete_query(Box::new(IdQuery::new(self.shared.fields.eventid, id)))
                .map_err(StoreError::Write)?;
        }
        made.push(tantivy::indexer::UserOperation::Add(
            self.shared.document(document, at, source, day.ids),
        ));
        if made.len() >= HAND_OFF_DOCUMENTS {
            let made = std::mem::take(made);
            let writer = self.writers.get(&key).ok_or(StoreError::Closed)?;
            writer.run(made).map_err(StoreError::Write)?;
        }
        Ok(())
    }

    /// Hands the documents made so far to their days' writers, a batch per day (one
    /// send on tantivy's channel instead of one per document).
    fn hand_off(&mut self) -> Result<(), StoreError> {
        for (key, made) in self.made.iter_mut().filter(|(_, m)| !m.is_empty()) {
            let made = std::mem::take(made);
            let writer = self.writers.get(key).ok_or(StoreError::Closed)?;
            writer.run(made).map_err(StoreError::Write)?;
        }
        Ok(())
    }

    /// [`Indexer::hand_off`], a failure handled as a failed write is.
    fn hand_off_or_fail(&mut self) {
        if self.retry.is_none() {
            if let Err(e) = self.hand_off() {
                self.failed(e);
            }
        }
    }

    /// Commits what was added (or, after a failure, when its retry is due: adds it
    /// again and commits), then makes it searchable, forgets its pending ids,
    /// acknowledges the log and answers the writes waiting.
    fn commit(&mut self) {
        if let Some((at, _)) = self.retry {
            if Instant::now() < at {
                return;
            }
            let mut added = std::mem::take(&mut self.uncommitted);
            let mut rewritten = Ok(());
            // Each made again from its JSON once. One that cannot be never will be:
            // reported and dropped, rather than holding every other one back for good.
            added.retain(|a| match a.document() {
                Ok(document) => {
                    if rewritten.is_ok() {
                        rewritten = self.write(a.key, document, a.at, &a.source);
                    }
                    true
                }
                Err(e) => {
                    error!(error = %e, "An event logged could not be made again for indexing; it is lost.");
                    if let Ok(mut pending) = self.shared.pending.lock() {
                        pending.remove(a.key, &a.id, &a.source);
                    }
                    false
                }
            });
            self.uncommitted = added;
            if let Err(e) = rewritten.and_then(|()| self.hand_off()) {
                self.failed(e);
                return;
            }
        }
        if let Err(e) = self.hand_off() {
            self.failed(e);
            return;
        }
        match self.try_commit() {
            Ok(()) => {
                if self.retry.take().is_some() {
                    info!("Indexing works again; what waited in the log is indexed.");
                }
            }
            Err(e) => self.failed(e),
        }
        self.last_commit = Instant::now();
    }

    fn try_commit(&mut self) -> Result<(), StoreError> {
        let events = self.uncommitted.len();
        let started = Instant::now();
        self.reload_unseen();
        // Day by day: once a day's commit holds its documents they are done with,
        // whatever happens to the next day's, so a retry never writes them twice.
        while let Some(key) = self.dirty.pop_first() {
            if let Some(writer) = self.writers.get_mut(&key) {
                if let Err(e) = writer.commit() {
                    self.dirty.insert(key);
                    return Err(StoreError::Write(e));
                }
            }
            let (done, rest): (Vec<Added>, Vec<Added>) = std::mem::take(&mut self.uncommitted)
                .into_iter()
                .partition(|added| added.key == key);
            self.uncommitted = rest;
            self.unseen.extend(done);
        }
        let committed = started.elapsed();
        self.reload_unseen();
        if !self.uncommitted.is_empty() {
            // Added but in no commit (written before a failure and not yet again):
            // neither the log nor the writes waiting may be told they are indexed.
            return Err(StoreError::Unavailable(
                "events were added to the index but are in no commit".into(),
            ));
        }
        if let Some(upto) = self.upto.take() {
            let acked = self.wal.lock().map_err(|_| StoreError::Closed)?.ack(upto);
            if let Err(e) = acked {
                // Committed all the same; acknowledged again with the next commit.
                self.upto = Some(upto);
                warn!(error = %e, "Could not acknowledge the store's write-ahead log; a restart replays what the index already holds.");
            }
        }
        if events > 0 {
            debug!(
                events,
                commit_ms = committed.as_millis() as u64,
                with_reload_ms = started.elapsed().as_millis() as u64,
                "Committed."
            );
        }
        for (stored, done) in self.waiting.drain(..) {
            // A sender that gave up waiting is not an error here.
            let _ = done.send(Ok(stored));
        }
        close_old_writers(&mut self.writers, &mut self.recent);
        Ok(())
    }

    /// Reloads the searchers of the days of committed documents and forgets their ids,
    /// together under the pending lock (see `log::decide`); a day whose searcher cannot
    /// be reloaded keeps its ids pending until the next try.
    fn reload_unseen(&mut self) {
        if self.unseen.is_empty() {
            return;
        }
        let Ok(mut pending) = self.shared.pending.lock() else {
            return;
        };
        let days: BTreeSet<u32> = self.unseen.iter().map(|a| a.key).collect();
        for key in days {
            let reloaded = match self.shared.day(key, false) {
                Ok(Some(day)) => day.reader.reload().map_err(StoreError::Write),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            match reloaded {
                Ok(()) => self.unseen.retain(|added| {
                    if added.key == key {
                        pending.remove(key, &added.id, &added.source);
                        false
                    } else {
                        true
                    }
                }),
                Err(e) => {
                    error!(day = key, error = %e, "Could not reload a day's searcher after a commit; tried again at the next.")
                }
            }
        }
    }

    /// After a failed write or commit: nothing of it may ride along with a later
    /// commit, so every writer is rolled back; what it held stays in the log and in
    /// `uncommitted`, and is written again after a wait that doubles up to
    /// [`MAX_RETRY`]. Writes waiting for the index are told it failed.
    fn failed(&mut self, e: StoreError) {
        for writer in self.writers.values_mut() {
            let _ = writer.rollback();
        }
        self.made.clear();
        self.dirty.clear();
        let wait = self
            .retry
            .map(|(_, wait)| (wait * 2).min(MAX_RETRY))
            .unwrap_or(Duration::from_secs(1));
        error!(
            error = %e,
            events = self.uncommitted.len(),
            retry_in_s = wait.as_secs(),
            "Indexing failed; the events stay in the write-ahead log and are indexed again."
        );
        self.retry = Some((Instant::now() + wait, wait));
        let e = Arc::new(e);
        for (_, done) in self.waiting.drain(..) {
            let _ = done.send(Err(StoreError::Commit(Arc::clone(&e))));
        }
    }
}

/// Deletes the days before `before` and after `after`: their writers closed, their
/// readers forgotten, their directories removed (searches still holding one finish on
/// the open files).
pub(super) fn prune_days(
    shared: &Shared,
    writers: &mut HashMap<u32, IndexWriter>,
    recent: &mut VecDeque<u32>,
    before: u32,
    after: u32,
) -> Result<Vec<String>, StoreError> {
    let mut keys: Vec<u32> = std::fs::read_dir(&shared.root)
        .map_err(|source| StoreError::List {
            path: shared.root.clone(),
            source,
        })?
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
        std::fs::remove_dir_all(&path).map_err(|source| StoreError::Delete {
            path: path.clone(),
            source,
        })?;
        info!(day = key, path = %path.display(), "Deleted a day past retention (or ahead of the accepted time window).");
        deleted.push(format!("{key:08}"));
    }
    Ok(deleted)
}

/// Keeps the writers of the [`OPEN_WRITERS`] days written most recently.
pub(super) fn close_old_writers(
    writers: &mut HashMap<u32, IndexWriter>,
    recent: &mut VecDeque<u32>,
) {
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

/// The stored JSON of the document with this id in a day, if any.
pub(super) fn stored_source(
    shared: &Shared,
    searcher: &tantivy::Searcher,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let query = IdQuery::new(shared.fields.eventid, id);
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
