//! The writer thread: takes write requests, groups them, writes each day's documents,
//! commits at most once per `commit_interval`, answers each request after the commit
//! that holds it; prunes days; keeps at most a few day writers open.

use super::*;

/// The writer thread: groups requests, writes, commits, answers.
pub(super) fn writer_loop(
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
            let mut outcomes: Vec<Stored> = vec![Stored::default(); batch.len()];
            let result = write_batch(
                &shared,
                &mut writers,
                &mut recent,
                &batch,
                &mut outcomes,
                writer_memory_bytes,
            )
            .map_err(Arc::new);
            last_commit = Instant::now();
            let events: usize = batch.iter().map(|(events, _)| events.len()).sum();
            match &result {
                Ok(()) => debug!(requests = batch.len(), events, "Committed."),
                Err(e) => {
                    error!(error = %e, requests = batch.len(), events, "Commit failed; the senders are told to retry.")
                }
            }
            for ((events, done), outcome) in batch.into_iter().zip(outcomes) {
                let answer = match &result {
                    Ok(()) => Ok(Stored {
                        stored: events.len() - outcome.conflicts.len(),
                        ..outcome
                    }),
                    Err(e) => Err(StoreError::Commit(Arc::clone(e))),
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
pub(super) type Batch = (Vec<Document>, oneshot::Sender<Result<Stored, StoreError>>);

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

pub(super) fn write_batch(
    shared: &Shared,
    writers: &mut HashMap<u32, IndexWriter>,
    recent: &mut VecDeque<u32>,
    batch: &[Batch],
    outcomes: &mut [Stored],
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
            outcomes,
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

/// Writes one day's documents of a batch and commits them. First copy wins: a document
/// whose id is already stored that day (or earlier in this batch) is not written
/// again; if its body differs (but for the reception time) its position goes to
/// `conflicts`, else it was a resend and counts as stored.
pub(super) fn write_day(
    shared: &Shared,
    writers: &mut HashMap<u32, IndexWriter>,
    key: u32,
    batch: &[Batch],
    documents: &[(usize, usize, DateTime<Utc>)],
    outcomes: &mut [Stored],
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
            if same_document(&earlier, document) {
                outcomes[r].existing.push(d);
            } else {
                outcomes[r].conflicts.push(d);
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
pub(super) fn stored_source(
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
