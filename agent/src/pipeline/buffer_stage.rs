//! The buffer stage: between the inputs' channel and the disk buffer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picket_common::backoff::Backoff;
use picket_common::ratelog::LogLimiter;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::Stopping;
use crate::buffer::{BufferError, DiskBuffer};
use crate::checkpoint::{CheckpointStore, FileIdentity};
use crate::config::BufferSettings;
use crate::heartbeat;
use crate::host::HostIdentity;
use crate::inputs::Chunk;
use crate::metrics::Metrics;

/// The buffer stage: appends what the inputs read to the disk buffer, fsyncs in
/// groups (every `sync_interval` or 5,000 events), then advances the inputs'
/// checkpoints and wakes the shipper. While the buffer is full it stops taking from the
/// inputs (they block, keeping their positions) or, with `when_full = "drop_newest"`,
/// drops what arrives (counted, logged). When the disk cannot be written (full), what
/// was appended since the last fsync is undone and appended again once it can be; the
/// inputs wait meanwhile, so no line is skipped.
pub(super) async fn buffer_stage(
    mut events: mpsc::Receiver<Chunk>,
    stage: BufferStage,
    stop_rx: watch::Receiver<Stopping>,
) {
    let metrics = Arc::clone(&stage.metrics);
    fill(&mut events, stage, stop_rx).await;
    // Ended early (a stop while the disk cannot be written): what waits in the channel
    // is not buffered. Lines are read again after the restart; network messages are
    // lost, and said so.
    events.close();
    let mut network = 0;
    while let Ok(chunk) = events.try_recv() {
        network += network_reads(&chunk);
    }
    report_network_lost(network, &metrics);
}

/// Reads of `chunk` with no position (network messages: nothing reads them again).
fn network_reads(chunk: &Chunk) -> usize {
    chunk
        .reads()
        .iter()
        .filter(|read| !read.positioned())
        .count()
}

/// Counts and logs network messages that will never be buffered.
fn report_network_lost(events: usize, metrics: &Metrics) {
    if events == 0 {
        return;
    }
    metrics
        .syslog_messages_lost
        .fetch_add(events as u64, Ordering::Relaxed);
    error!(
        events,
        "Stopping while the disk buffer cannot be written: these syslog messages cannot be read again and are lost."
    );
}

/// [`buffer_stage`] until the inputs are gone or it must end early.
async fn fill(
    events: &mut mpsc::Receiver<Chunk>,
    stage: BufferStage,
    stop_rx: watch::Receiver<Stopping>,
) {
    let BufferStage {
        disk,
        checkpoints,
        synced,
        settings,
        metrics,
        heartbeat,
    } = stage;
    let mut store = Store {
        disk: &disk,
        checkpoints: &checkpoints,
        metrics: &metrics,
        stop_rx: &stop_rx,
        synced: &synced,
        positions: Positions::default(),
        pending: Vec::new(),
        unsynced: 0,
        last_sync: Instant::now(),
        line: Vec::with_capacity(4096),
        write_log: LogLimiter::every_minute(),
    };
    // A buffer that stays full fills and drains by the batch: say so once a minute.
    let full_log = LogLimiter::every_minute();
    // The first heartbeat goes out at start: a restarted agent says so at once.
    let mut next_heartbeat = Instant::now();
    loop {
        if let Some((every, host)) = &heartbeat
            && Instant::now() >= next_heartbeat
            && *stop_rx.borrow() == Stopping::No
        {
            next_heartbeat = Instant::now() + *every;
            match write_heartbeat(&disk, host, &metrics, &mut store.line) {
                Ok(true) => store.unsynced += 1,
                Ok(false) => {}
                Err(e) => {
                    if !store.settle(Err(e)).await {
                        return;
                    }
                }
            }
        }
        // Idle, the stage sleeps until events arrive or the next heartbeat is due: no
        // wake-ups while nothing waits for an fsync.
        let wait = if store.unsynced > 0 {
            settings
                .sync_interval
                .saturating_sub(store.last_sync.elapsed())
        } else if heartbeat.is_some() {
            next_heartbeat.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        };
        let received = match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(chunk)) => Some(chunk),
            Ok(None) => break,
            Err(_) => None,
        };
        if let Some(chunk) = received {
            match store.take(chunk, &settings, &full_log).await {
                Step::Stop => return,
                Step::Skip => continue,
                Step::Go => {}
            }
        }
        if store.unsynced > 0
            && (store.last_sync.elapsed() >= settings.sync_interval || store.unsynced >= 5_000)
        {
            let committed = store.commit();
            if !store.settle(committed).await {
                return;
            }
        }
    }
    // Stopping: on a failed fsync one more try, else the lines are read again after the
    // restart.
    let committed = store.commit();
    store.settle(committed).await;
}

/// Why a write to the disk buffer failed.
#[derive(Debug, Error)]
enum WriteError {
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("the disk buffer's lock is poisoned (a thread panicked holding it)")]
    Poisoned,
}

/// Locks the buffer.
fn lock(disk: &Mutex<DiskBuffer>) -> Result<std::sync::MutexGuard<'_, DiskBuffer>, WriteError> {
    disk.lock().map_err(|_| WriteError::Poisoned)
}

/// Appends a chunk's events to the buffer.
fn append_chunk(disk: &mut DiskBuffer, chunk: &Chunk) -> Result<(), WriteError> {
    for record in chunk.records() {
        disk.append(record)?;
    }
    Ok(())
}

/// What the buffer stage does after taking a chunk.
enum Step {
    /// Carry on (fsync when due).
    Go,
    /// A failed write was settled: wait for the next chunk.
    Skip,
    /// The stage ends (stopping while the disk cannot be written).
    Stop,
}

/// The buffer stage's writes: the buffer, the checkpoints, and what was appended since
/// the last fsync.
struct Store<'a> {
    disk: &'a Mutex<DiskBuffer>,
    checkpoints: &'a Mutex<CheckpointStore>,
    metrics: &'a Metrics,
    stop_rx: &'a watch::Receiver<Stopping>,
    /// Wakes the shipper after an fsync.
    synced: &'a tokio::sync::Notify,
    /// Input positions reached by what was appended, saved at the fsync.
    positions: Positions,
    /// Chunks appended since the last fsync, kept to be appended again after a failed
    /// write (at most one sync interval's or 5,000 events' worth).
    pending: Vec<Chunk>,
    unsynced: usize,
    last_sync: Instant,
    line: Vec<u8>,
    write_log: LogLimiter,
}

impl Store<'_> {
    /// Takes one chunk from the inputs: appends it (after waiting, fsynced, while the
    /// buffer is full), or with `drop_newest` and a full buffer drops it (counted,
    /// logged). [`Step::Stop`] when the stage must end.
    async fn take(
        &mut self,
        chunk: Chunk,
        settings: &BufferSettings,
        full_log: &LogLimiter,
    ) -> Step {
        let full = self.disk.lock().map(|d| d.is_full()).unwrap_or(false);
        if full && settings.drop_newest {
            let dropped = self
                .metrics
                .events_dropped
                .fetch_add(chunk.len() as u64, Ordering::Relaxed)
                + chunk.len() as u64;
            if full_log.due() {
                error!(
                    events_dropped_in_all = dropped,
                    "Disk buffer full; dropping the newest events (when_full = drop_newest)."
                );
            }
            // Their lines are passed: the positions move on.
            self.positions.take(&chunk);
            chunk.recycle();
        } else {
            if full {
                if full_log.due() {
                    warn!(
                        max_bytes = settings.max_bytes,
                        "Disk buffer full; inputs wait until the collector takes events."
                    );
                }
                // What fills the buffer must be durable, or the shipper cannot
                // take it and nothing ever frees the space.
                if self.unsynced > 0 {
                    let committed = self.commit();
                    if !self.settle(committed).await {
                        report_network_lost(network_reads(&chunk), self.metrics);
                        return Step::Stop;
                    }
                }
                while self.disk.lock().map(|d| d.is_full()).unwrap_or(false)
                    && *self.stop_rx.borrow() == Stopping::No
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if let Err(e) = self.append(chunk) {
                if !self.settle(Err(e)).await {
                    return Step::Stop;
                }
                return Step::Skip;
            }
        }
        Step::Go
    }

    /// Appends a chunk (kept in `pending` until the fsync).
    fn append(&mut self, chunk: Chunk) -> Result<(), WriteError> {
        self.positions.take(&chunk);
        self.unsynced += chunk.len();
        // Called on the worker, not through block_in_place: an append copies into the
        // writer's buffer and writes to the page cache every 256 KiB (tens of µs), while
        // handing the worker's core to another thread per chunk cost more than that. The
        // fdatasync (milliseconds) goes through block_in_place in `commit`. A write the
        // kernel throttles (too many dirty pages) holds this worker; the other runs
        // the shipper meanwhile.
        let appended = lock(self.disk).and_then(|mut disk| append_chunk(&mut disk, &chunk));
        self.pending.push(chunk);
        appended
    }

    /// fsyncs the buffer, then moves the inputs' checkpoints to what it now holds. On
    /// a failed fsync the checkpoints stay and the error is returned.
    fn commit(&mut self) -> Result<(), WriteError> {
        let (disk, checkpoints, metrics) = (self.disk, self.checkpoints, self.metrics);
        let positions = &mut self.positions;
        tokio::task::block_in_place(|| {
            // The fdatasync runs unlocked: the shipper reads and acknowledges meanwhile.
            let pending = lock(disk)?.begin_sync()?;
            pending.sync()?;
            lock(disk)?.end_sync(pending);
            metrics.buffer_syncs.fetch_add(1, Ordering::Relaxed);
            let Ok(mut store) = checkpoints.lock() else {
                return Ok(());
            };
            for (identity, (path, offset)) in positions.files.drain() {
                store.set(&identity, &path, offset);
            }
            if let Some(cursor) = positions.cursor.take() {
                store.set_journal_cursor(&cursor);
            }
            if let Err(e) = store.save() {
                error!(error = %e, "Cannot save checkpoints; lines may be read again after a restart.");
            }
            Ok(())
        })
    }

    /// After a commit or a failed write: on failure recovers first; then the
    /// appended events are durable and the shipper is woken. False when a stop came
    /// during recovery (the caller ends without committing).
    async fn settle(&mut self, result: Result<(), WriteError>) -> bool {
        if let Err(error) = result
            && !self.recover(error).await
        {
            return false;
        }
        self.pending.drain(..).for_each(Chunk::recycle);
        self.unsynced = 0;
        self.last_sync = Instant::now();
        self.synced.notify_one();
        true
    }

    /// After a failed write: undoes what the buffer took since the last fsync (and
    /// reclaims the newest segment once all of it is acknowledged), appends `pending`
    /// again and commits, retrying (0.1 s doubling to 5 s) until that works.
    /// The inputs wait meanwhile (nothing is taken from them). False when a stop came
    /// first: the positions are dropped unsaved, so those lines are read again after
    /// the restart.
    async fn recover(&mut self, mut error: WriteError) -> bool {
        let events: usize = self.pending.iter().map(Chunk::len).sum();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            self.metrics.health.buffer_write.set(&error);
            if self.write_log.due() {
                error!(
                    error = %error,
                    events,
                    "Cannot write the disk buffer (disk full?); inputs wait, retrying."
                );
            }
            let disk = self.disk;
            // Undone, and when the shipper has acknowledged everything, the newest
            // segment's space given back: on a disk it alone fills, waiting frees nothing.
            let undone = tokio::task::block_in_place(|| {
                let mut d = lock(disk)?;
                d.rollback()?;
                d.reclaim(0)?;
                Ok::<(), WriteError>(())
            });
            if *self.stop_rx.borrow() != Stopping::No {
                if let Err(e) = undone {
                    error!(error = %e, "Cannot undo a failed write in the disk buffer.");
                }
                self.positions = Positions::default();
                let network: usize = self.pending.iter().map(network_reads).sum();
                warn!(
                    events = events - network,
                    "Stopping while the disk buffer cannot be written; these lines are read again after the restart."
                );
                report_network_lost(network, self.metrics);
                return false;
            }
            tokio::time::sleep(backoff.next_delay()).await;
            let pending = &self.pending;
            let appended = undone.and_then(|()| {
                tokio::task::block_in_place(|| {
                    let mut disk = lock(disk)?;
                    pending
                        .iter()
                        .try_for_each(|chunk| append_chunk(&mut disk, chunk))
                })
            });
            match appended.and_then(|()| self.commit()) {
                Ok(()) => {
                    self.metrics.health.buffer_write.clear();
                    info!(events, "Disk buffer writable again; inputs resume.");
                    return true;
                }
                Err(e) => error = e,
            }
        }
    }
}

/// What the buffer stage works with.
pub(super) struct BufferStage {
    pub(super) disk: Arc<Mutex<DiskBuffer>>,
    pub(super) checkpoints: Arc<Mutex<CheckpointStore>>,
    pub(super) synced: Arc<tokio::sync::Notify>,
    pub(super) settings: BufferSettings,
    pub(super) metrics: Arc<Metrics>,
    /// How often, and as which host, to write heartbeats.
    pub(super) heartbeat: Option<(Duration, HostIdentity)>,
}

/// Appends a heartbeat to the buffer (unless it is full: a heartbeat never takes the
/// place of a log line). True when one was written; an error when the write failed.
fn write_heartbeat(
    disk: &Mutex<DiskBuffer>,
    host: &HostIdentity,
    metrics: &Metrics,
    line: &mut Vec<u8>,
) -> Result<bool, WriteError> {
    tokio::task::block_in_place(|| {
        let Ok(mut disk) = disk.lock() else {
            return Ok(false);
        };
        if disk.is_full() {
            return Ok(false);
        }
        let oldest = match disk.peek_oldest() {
            Ok(record) => record.as_deref().and_then(heartbeat::record_time),
            Err(e) => {
                warn!(error = %e, "Cannot read the oldest buffered event for the heartbeat.");
                None
            }
        };
        let snapshot = heartbeat::Snapshot {
            buffer_bytes: disk.unacked_bytes(),
            oldest,
        };
        let event = heartbeat::event(host, metrics, &snapshot, chrono::Utc::now());
        line.clear();
        event.write_json_line(line);
        // A failed append may leave part of a record: the caller undoes it.
        Ok(disk.append(line).map(|_| true)?)
    })
}

/// Input positions reached by events now in the buffer.
#[derive(Default)]
struct Positions {
    files: HashMap<FileIdentity, (String, u64)>,
    cursor: Option<String>,
}

impl Positions {
    fn take(&mut self, chunk: &Chunk) {
        let reads = chunk.reads();
        // One map update per run of events from one file, not per event.
        let mut run_end = 0;
        for (i, read) in reads.iter().enumerate() {
            if !read.positioned() {
                // A network message: nothing to read again.
                continue;
            }
            if let Some(cursor) = &read.cursor {
                self.cursor = Some(cursor.to_string());
                continue;
            }
            run_end = run_end.max(read.next_offset);
            if reads.get(i + 1).is_some_and(|next| {
                next.positioned() && next.cursor.is_none() && next.identity == read.identity
            }) {
                continue;
            }
            let end = self
                .files
                .entry(read.identity)
                .or_insert_with(|| (chunk.path(read).to_string(), 0));
            end.1 = end.1.max(run_end);
            run_end = 0;
        }
    }
}
