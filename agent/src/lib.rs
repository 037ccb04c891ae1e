//! The Picket agent: follows log files, parses each line into a MozDef event, and ships
//! events to a collector, checkpointing read positions only after delivery.
//!
//! - [`config`]: the `[agent]` config table and its checked [`config::Settings`].
//! - [`host`]: this host's FQDN and stable id.
//! - [`parsers`]: one line → one event.
//! - [`inputs::file`]: following files (its own thread).
//! - [`shippers`]: NDJSON batches to the collector over HTTP(S) ([`shippers::http`]) or
//!   messages to RabbitMQ ([`shippers::amqp`]).
//! - [`deadletter`]: events the collector refused, kept with the reason.
//! - [`heartbeat`]: the agent's own periodic event.
//! - [`checkpoint`]: read positions on disk.
//! - [`datadir`]: whether `data_dir` can be trusted with them and the buffer.
//! - [`buffer`]: the disk buffer (segment log).
//! - [`metrics`]: the counters.
//! - [`footprint`]: giving back the pages start-up mapped.
//!
//! [`run`] wires them: input threads → bounded channel → buffer stage (append, group
//! fsync, then input checkpoints) → disk buffer → ship stage (batch, send, acknowledge).
//! `main.rs` parses the command line and calls it.

pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod datadir;
pub mod deadletter;
pub mod footprint;
pub mod heartbeat;
pub mod host;
pub mod inputs;
pub mod metrics;
pub mod parsers;
pub mod shippers;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::buffer::{Batch, BufferError, DiskBuffer, Records};
use crate::checkpoint::{CheckpointError, CheckpointStore, FileIdentity};
use crate::config::Settings;
use crate::deadletter::DeadLetter;
use crate::host::HostIdentity;
use crate::inputs::Chunk;
use crate::inputs::file::FileInput;
use crate::inputs::journald::JournaldInput;
use crate::metrics::Metrics;
use crate::parsers::LineParser;
use crate::shippers::{Outcome, Shipper};

/// How long a stopping agent keeps trying to deliver what it has read.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two tries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the agent stopped with a failure.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot set up the shipper: {0}")]
    Shipper(String),
    #[error("cannot start an input thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("{0}")]
    Signal(String),
    #[error("untrusted agent.data_dir: {0}")]
    DataDir(#[from] datadir::DataDirError),
}

/// Runs the agent until `shutdown` resolves, then stops reading, fsyncs what was read
/// into the disk buffer, tries for [`DRAIN_TIMEOUT`] to deliver it and returns. What
/// was not delivered stays in the buffer for the next start.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = watch::channel(Stopping::No);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(Stopping::Exit);
    });
    let metrics = Arc::new(Metrics::default());
    let result = run_once(settings, Arc::clone(&metrics), stop_rx).await;
    metrics.log_totals();
    info!("Agent stopped.");
    result
}

/// Runs the agent as a service: until SIGTERM or SIGINT, reloading on SIGHUP.
///
/// On SIGHUP `load` reads the configuration again. A configuration that does not load
/// (or moves `data_dir`, which holds the buffer and the read positions) is refused with
/// an error log and the agent runs on unchanged. A good one replaces the running
/// inputs, parsers and shipper: reading stops, what was read is fsynced into the disk
/// buffer with its read positions, the batch in flight finishes, and the pipeline starts
/// again on the new settings from those positions and that buffer — no line is lost or
/// read twice, and the process (its counters included) stays.
pub async fn serve(
    mut settings: Settings,
    mut load: impl FnMut() -> Result<Settings, String>,
) -> Result<(), RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| RunError::Signal(format!("cannot listen for {name}: {e}")))
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    let metrics = Arc::new(Metrics::default());
    let result = loop {
        let (stop_tx, stop_rx) = watch::channel(Stopping::No);
        let running = run_once(settings.clone(), Arc::clone(&metrics), stop_rx);
        tokio::pin!(running);
        let mut next = None;
        let ended = loop {
            tokio::select! {
                ended = &mut running => break ended,
                _ = term.recv() => {
                    info!("SIGTERM received.");
                    let _ = stop_tx.send(Stopping::Exit);
                }
                _ = int.recv() => {
                    info!("SIGINT received.");
                    let _ = stop_tx.send(Stopping::Exit);
                }
                _ = hup.recv(), if *stop_tx.borrow() == Stopping::No => {
                    info!("SIGHUP received: reading the configuration again.");
                    match load() {
                        Ok(new) if new.data_dir != settings.data_dir => error!(
                            running = %settings.data_dir.display(),
                            configured = %new.data_dir.display(),
                            "Reload refused: agent.data_dir cannot change while the agent runs (it holds the buffer and read positions); the running configuration stays."
                        ),
                        // What `run_once` would fail on at start (a client certificate
                        // that does not load, say) is refused here, while the old
                        // pipeline still runs.
                        Ok(new) => match Shipper::build(&new.shipper) {
                            Err(e) => error!(
                                "Reload refused, the running configuration stays: cannot set up the shipper: {e}"
                            ),
                            Ok(_) => {
                                next = Some(new);
                                let _ = stop_tx.send(Stopping::Reload);
                            }
                        },
                        Err(e) => error!(
                            "Reload refused, the running configuration stays: {e}"
                        ),
                    }
                }
            }
        };
        match (ended, next) {
            (Ok(()), Some(new)) if *stop_tx.borrow() == Stopping::Reload => {
                settings = new;
                info!("Configuration reloaded.");
            }
            (ended, _) => break ended,
        }
    };
    metrics.log_totals();
    info!("Agent stopped.");
    result
}

/// What the pipeline has been asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    /// Keep running.
    No,
    /// Stop reading and try for [`DRAIN_TIMEOUT`] to deliver what was read.
    Exit,
    /// Stop reading and finish the batch in flight; the buffer is shipped by the
    /// pipeline that follows.
    Reload,
}

/// One pipeline on one set of settings, until `stop_rx` says stop. Returns once
/// everything it read is in the disk buffer with its read positions saved.
async fn run_once(
    settings: Settings,
    metrics: Arc<Metrics>,
    stop_rx: watch::Receiver<Stopping>,
) -> Result<(), RunError> {
    datadir::prepare(&settings.data_dir)?;
    let checkpoints = Arc::new(Mutex::new(CheckpointStore::load(&settings.data_dir)?));
    let shipper = Shipper::build(&settings.shipper).map_err(RunError::Shipper)?;
    // Two chunks of 500 events in flight keep the buffer stage busy; more only holds
    // memory (parsed events are about 1 KiB each).
    let (events_tx, events_rx) = mpsc::channel::<Chunk>(2);
    let stop_input = Arc::new(AtomicBool::new(false));

    let input = FileInput {
        settings: settings.file.clone(),
        parser: LineParser::new(settings.host.clone(), settings.timezone),
        checkpoints: Arc::clone(&checkpoints),
        metrics: Arc::clone(&metrics),
    };
    let mut input_threads = Vec::new();
    if let Some(journal) = &settings.journald {
        let journald = JournaldInput {
            settings: journal.clone(),
            parser: LineParser::new(settings.host.clone(), settings.timezone),
            checkpoints: Arc::clone(&checkpoints),
            metrics: Arc::clone(&metrics),
        };
        let journald_tx = events_tx.clone();
        let journald_stop = Arc::clone(&stop_input);
        input_threads.push(
            std::thread::Builder::new()
                .name("journald-input".into())
                .spawn(move || journald.run(journald_tx, journald_stop))
                .map_err(RunError::Thread)?,
        );
        info!("Reading the journal (journald input on).");
    }
    let input_stop = Arc::clone(&stop_input);
    input_threads.push(
        std::thread::Builder::new()
            .name("file-input".into())
            .spawn(move || input.run(events_tx, input_stop))
            .map_err(RunError::Thread)?,
    );

    info!(
        destination = %shipper.destination(),
        hostname = %settings.host.fqdn,
        "Agent started."
    );

    let opened = DiskBuffer::open(
        &settings.data_dir.join("buffer"),
        settings.buffer.segment_max_bytes,
        settings.buffer.max_bytes,
    );
    let (disk, recovery) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            stop_input.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
    };
    report_lost(&recovery, &metrics);
    if recovery.torn_bytes > 0 {
        // A write cut by a crash was never fsynced, so the checkpoints of its lines did
        // not move: the inputs read them again.
        warn!(
            bytes = recovery.torn_bytes,
            "Disk buffer had a torn tail from a crash; cut it (its lines are read again)."
        );
    }
    if recovery.records > 0 {
        info!(
            events = recovery.records,
            "Disk buffer holds undelivered events; shipping them first."
        );
    }
    let disk = Arc::new(Mutex::new(disk));
    let synced = Arc::new(tokio::sync::Notify::new());
    let mut writer = tokio::spawn(buffer_stage(
        events_rx,
        BufferStage {
            disk: Arc::clone(&disk),
            checkpoints: Arc::clone(&checkpoints),
            synced: Arc::clone(&synced),
            settings: settings.buffer.clone(),
            metrics: Arc::clone(&metrics),
            heartbeat: settings
                .heartbeat
                .map(|every| (every, settings.host.clone())),
        },
        stop_rx.clone(),
    ));
    let mut pipeline = Pipeline {
        shipper,
        dead_letter: DeadLetter::new(&settings.data_dir),
        disk,
        synced,
        metrics: Arc::clone(&metrics),
        stop_rx,
        stop_input,
        drain_deadline: None,
        batch_max_events: settings.batch_max_events,
        batch: Batch::default(),
        writer_done: false,
    };
    // Start-up's code need not stay mapped in an agent that then idles.
    let release = tokio::spawn(async {
        tokio::time::sleep(footprint::AFTER_START).await;
        let released = tokio::task::spawn_blocking(footprint::release_startup_pages).await;
        debug!(
            bytes = released.unwrap_or(0),
            "Released the pages start-up mapped."
        );
    });
    pipeline.run(&mut writer).await;
    release.abort();

    pipeline.stop_input.store(true, Ordering::Relaxed);
    let writer_done = pipeline.writer_done;
    drop(pipeline);
    let joined = tokio::task::spawn_blocking(move || {
        input_threads
            .into_iter()
            .all(|thread| thread.join().is_ok())
    })
    .await;
    if !matches!(joined, Ok(true)) {
        error!("An input thread did not stop cleanly.");
    }
    // The inputs are gone, so the buffer stage takes what they left in the channel,
    // fsyncs it and saves the read positions, then ends.
    if !writer_done && writer.await.is_err() {
        error!("The buffer stage did not stop cleanly.");
    }
    Ok(())
}

/// Logs at ERROR and counts the events the disk buffer's recovery found unreadable;
/// each stretch once per process (a reload opens the buffer again).
fn report_lost(recovery: &buffer::Recovery, metrics: &Metrics) {
    let Ok(mut counted) = metrics.buffer_lost_counted.lock() else {
        return;
    };
    let new: Vec<&buffer::LostStretch> = recovery
        .lost
        .iter()
        .filter(|lost| counted.insert((lost.segment, lost.offset)))
        .collect();
    if new.is_empty() {
        return;
    }
    for lost in new.iter().take(10) {
        error!(
            segment = lost.segment,
            offset = lost.offset,
            bytes = lost.bytes,
            events = lost.records,
            "Disk buffer has an unreadable stretch (corrupt); skipped it, those events are lost, what follows is kept."
        );
    }
    let events: u64 = new.iter().map(|lost| lost.records).sum();
    let bytes: u64 = new.iter().map(|lost| lost.bytes).sum();
    metrics
        .buffer_records_lost
        .fetch_add(events, Ordering::Relaxed);
    metrics
        .buffer_bytes_lost
        .fetch_add(bytes, Ordering::Relaxed);
    error!(
        stretches = new.len(),
        events, bytes, "Disk buffer recovery lost events to corruption."
    );
}

/// Settings of the disk buffer (`[agent.buffer]`, checked).
pub use crate::config::BufferSettings;

/// The buffer stage: appends what the inputs read to the disk buffer, fsyncs in
/// groups (every `sync_interval` or 5,000 events), then advances the inputs'
/// checkpoints and wakes the shipper. While the buffer is full it stops taking from the
/// inputs (they block, keeping their positions) or, with `when_full = "drop_newest"`,
/// drops what arrives (counted, logged). When the disk cannot be written (full), what
/// was appended since the last fsync is undone and appended again once it can be; the
/// inputs wait meanwhile, so no line is skipped.
async fn buffer_stage(
    mut events: mpsc::Receiver<Chunk>,
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
        write_log: EveryMinute::default(),
    };
    // A buffer that stays full fills and drains by the batch: say so once a minute.
    let mut full_log = EveryMinute::default();
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
            let full = disk.lock().map(|d| d.is_full()).unwrap_or(false);
            if full && settings.drop_newest {
                let dropped = metrics
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
                store.positions.take(&chunk);
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
                    if store.unsynced > 0 {
                        let committed = store.commit();
                        if !store.settle(committed).await {
                            return;
                        }
                    }
                    while disk.lock().map(|d| d.is_full()).unwrap_or(false)
                        && *stop_rx.borrow() == Stopping::No
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                if let Err(e) = store.append(chunk) {
                    if !store.settle(Err(e)).await {
                        return;
                    }
                    continue;
                }
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

/// Appends a chunk's events to the buffer.
fn append_chunk(disk: &mut DiskBuffer, chunk: &Chunk) -> Result<(), String> {
    for record in chunk.records() {
        disk.append(record).map_err(|e| e.to_string())?;
    }
    Ok(())
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
    write_log: EveryMinute,
}

impl Store<'_> {
    /// Appends a chunk (kept in `pending` until the fsync).
    fn append(&mut self, chunk: Chunk) -> Result<(), String> {
        self.positions.take(&chunk);
        self.unsynced += chunk.len();
        // Called on the worker, not through block_in_place: an append copies into the
        // writer's buffer and writes to the page cache every 256 KiB (tens of µs), while
        // handing the worker's core to another thread per chunk cost more than that. The
        // fdatasync (milliseconds) goes through block_in_place in `commit`. A write the
        // kernel throttles (too many dirty pages) holds this worker; the other runs
        // the shipper meanwhile.
        let appended = self
            .disk
            .lock()
            .map_err(|_| "buffer lock poisoned".to_string())
            .and_then(|mut disk| append_chunk(&mut disk, &chunk));
        self.pending.push(chunk);
        appended
    }

    /// fsyncs the buffer, then moves the inputs' checkpoints to what it now holds. On
    /// a failed fsync the checkpoints stay and the error is returned.
    fn commit(&mut self) -> Result<(), String> {
        let (disk, checkpoints, metrics) = (self.disk, self.checkpoints, self.metrics);
        let positions = &mut self.positions;
        tokio::task::block_in_place(|| {
            let lock = || disk.lock().map_err(|_| "buffer lock poisoned".to_string());
            // The fdatasync runs unlocked: the shipper reads and acknowledges meanwhile.
            let pending = lock()?.begin_sync().map_err(|e| e.to_string())?;
            pending.sync().map_err(|e| e.to_string())?;
            lock()?.end_sync(pending);
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
    async fn settle(&mut self, result: Result<(), String>) -> bool {
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
    async fn recover(&mut self, mut error: String) -> bool {
        let events: usize = self.pending.iter().map(Chunk::len).sum();
        let mut delay = Duration::from_millis(100);
        loop {
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
                let mut d = disk
                    .lock()
                    .map_err(|_| "buffer lock poisoned".to_string())?;
                d.rollback()
                    .and_then(|()| d.reclaim(0))
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
            if *self.stop_rx.borrow() != Stopping::No {
                if let Err(e) = undone {
                    error!(error = %e, "Cannot undo a failed write in the disk buffer.");
                }
                self.positions = Positions::default();
                warn!(
                    events,
                    "Stopping while the disk buffer cannot be written; these lines are read again after the restart."
                );
                return false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            let pending = &self.pending;
            let appended = undone.and_then(|()| {
                tokio::task::block_in_place(|| {
                    let mut disk = disk
                        .lock()
                        .map_err(|_| "buffer lock poisoned".to_string())?;
                    pending
                        .iter()
                        .try_for_each(|chunk| append_chunk(&mut disk, chunk))
                })
            });
            match appended.and_then(|()| self.commit()) {
                Ok(()) => {
                    info!(events, "Disk buffer writable again; inputs resume.");
                    return true;
                }
                Err(e) => error = e,
            }
        }
    }
}

/// Lets a repeated condition be logged once, then at most once a minute.
#[derive(Default)]
struct EveryMinute {
    last: Option<Instant>,
}

impl EveryMinute {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(60))
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// What the buffer stage works with.
struct BufferStage {
    disk: Arc<Mutex<DiskBuffer>>,
    checkpoints: Arc<Mutex<CheckpointStore>>,
    synced: Arc<tokio::sync::Notify>,
    settings: BufferSettings,
    metrics: Arc<Metrics>,
    /// How often, and as which host, to write heartbeats.
    heartbeat: Option<(Duration, HostIdentity)>,
}

/// Appends a heartbeat to the buffer (unless it is full: a heartbeat never takes the
/// place of a log line). True when one was written; an error when the write failed.
fn write_heartbeat(
    disk: &Mutex<DiskBuffer>,
    host: &HostIdentity,
    metrics: &Metrics,
    line: &mut Vec<u8>,
) -> Result<bool, String> {
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
        disk.append(line).map(|_| true).map_err(|e| e.to_string())
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
            if let Some(cursor) = &read.cursor {
                self.cursor = Some(cursor.to_string());
                continue;
            }
            run_end = run_end.max(read.next_offset);
            if reads
                .get(i + 1)
                .is_some_and(|next| next.cursor.is_none() && next.identity == read.identity)
            {
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

/// The ship stage: reads batches from the disk buffer, sends them, acknowledges them
/// in the buffer after a 2xx.
struct Pipeline {
    shipper: Shipper,
    dead_letter: DeadLetter,
    disk: Arc<Mutex<DiskBuffer>>,
    synced: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    stop_rx: watch::Receiver<Stopping>,
    stop_input: Arc<AtomicBool>,
    drain_deadline: Option<Instant>,
    batch_max_events: usize,
    /// The batch being shipped; its memory is reused for the next.
    batch: Batch,
    writer_done: bool,
}

impl Pipeline {
    async fn run(&mut self, writer: &mut tokio::task::JoinHandle<()>) {
        loop {
            if let Some(deadline) = self.drain_deadline
                && Instant::now() >= deadline
            {
                return;
            }
            let mut batch = std::mem::take(&mut self.batch);
            let read = tokio::task::block_in_place(|| {
                self.disk
                    .lock()
                    .map_err(|_| "buffer lock poisoned".to_string())
                    .and_then(|mut d| {
                        d.read_into(self.batch_max_events, &mut batch)
                            .map_err(|e| e.to_string())
                    })
            });
            if let Err(e) = read {
                error!(error = %e, "Cannot read the disk buffer.");
                batch = Batch::default();
            }
            if batch.is_empty() {
                self.batch = batch;
                if self.writer_done {
                    return;
                }
                // Woken by the buffer stage's fsync (a stored permit: no wake-up is
                // lost between the read above and this wait), the writer's end, or stop.
                tokio::select! {
                    _ = self.synced.notified() => {}
                    done = &mut *writer => {
                        let _ = done;
                        self.writer_done = true;
                    }
                    changed = self.stop_rx.changed(), if !self.stopping() => {
                        self.stop_requested(changed.is_err());
                    }
                }
                continue;
            }
            let last = batch.last();
            let records = batch.records();
            let shipped = self.ship(records).await;
            let events = batch.len();
            self.batch = batch;
            if !shipped {
                warn!(
                    events,
                    "Stopping before the collector took every event; they stay in the disk buffer."
                );
                return;
            }
            if let Some(last) = last {
                let acked = tokio::task::block_in_place(|| {
                    self.disk
                        .lock()
                        .map_err(|_| "buffer lock poisoned".to_string())
                        .and_then(|mut d| d.ack(last).map_err(|e| e.to_string()))
                });
                if let Err(e) = acked {
                    error!(error = %e, "Cannot record the delivery in the disk buffer; events may be sent again.");
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// Acts on a change of the stop request (`gone`: its sender was dropped, which
    /// means exit).
    fn stop_requested(&mut self, gone: bool) {
        let request = if gone {
            Stopping::Exit
        } else {
            *self.stop_rx.borrow()
        };
        if request == Stopping::No || self.drain_deadline.is_some() {
            return;
        }
        self.stop_input.store(true, Ordering::Relaxed);
        if request == Stopping::Reload {
            info!("Reloading: no more reading; the buffer is shipped on the new configuration.");
            self.drain_deadline = Some(Instant::now());
        } else {
            info!(
                timeout_secs = DRAIN_TIMEOUT.as_secs(),
                "Stopping: no more reading, delivering what was read."
            );
            self.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
        }
    }

    /// Delivers `records`, retrying what may pass and splitting what is too large.
    /// Returns false only when stopping ran out of time.
    async fn ship(&mut self, records: Records<'_>) -> bool {
        let mut work: Vec<Records<'_>> = vec![records];
        let mut attempt: u32 = 0;
        while let Some(part) = work.pop() {
            loop {
                match self.shipper.send(part).await {
                    Outcome::Delivered { rejected } => {
                        let refused = rejected.len() as u64;
                        for (position, reason) in &rejected {
                            let record = part.get(*position).unwrap_or(b"");
                            self.dead_letter(reason, std::slice::from_ref(&record));
                        }
                        self.metrics
                            .events_rejected
                            .fetch_add(refused, Ordering::Relaxed);
                        self.metrics
                            .events_shipped
                            .fetch_add(part.len() as u64 - refused, Ordering::Relaxed);
                        self.metrics
                            .bytes_shipped
                            .fetch_add(part.bytes().len() as u64, Ordering::Relaxed);
                        debug!(events = part.len(), "Batch delivered.");
                        attempt = 0;
                        break;
                    }
                    Outcome::Reject {
                        too_large: true, ..
                    } if part.len() > 1 => {
                        let (first, second) = part.split_at(part.len() / 2);
                        debug!(
                            events = part.len(),
                            "Batch too large for the collector; splitting it."
                        );
                        work.push(second);
                        work.push(first);
                        break;
                    }
                    Outcome::Reject { reason, .. } => {
                        let records: Vec<&[u8]> = part.iter().collect();
                        self.dead_letter(&reason, &records);
                        self.metrics
                            .events_rejected
                            .fetch_add(part.len() as u64, Ordering::Relaxed);
                        break;
                    }
                    Outcome::Retry { reason, after } => {
                        self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                        let delay = after.unwrap_or_else(|| backoff(attempt)).min(MAX_BACKOFF);
                        attempt = attempt.saturating_add(1);
                        warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, attempt, "Delivery failed; retrying.");
                        if !self.wait_or_give_up(delay).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Keeps refused events in the dead-letter file, logged and counted.
    fn dead_letter(&mut self, reason: &str, records: &[&[u8]]) {
        error!(
            events = records.len(),
            reason,
            file = %self.dead_letter.path().display(),
            "Collector refused events; they are kept in the dead-letter file."
        );
        for record in records {
            if let Err(e) = self.dead_letter.write(reason, record) {
                error!(error = %e, "Cannot write the dead-letter file; a refused event is lost.");
                self.metrics.events_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sleeps `delay` (cut short by a stop request); false when the drain deadline
    /// has passed.
    async fn wait_or_give_up(&mut self, delay: Duration) -> bool {
        let mut until = Instant::now() + delay;
        if let Some(deadline) = self.drain_deadline {
            if Instant::now() >= deadline {
                return false;
            }
            until = until.min(deadline);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            changed = self.stop_rx.changed(), if !self.stopping() => {
                self.stop_requested(changed.is_err());
            }
        }
        self.drain_deadline
            .is_none_or(|deadline| Instant::now() < deadline)
    }
}

/// 0.5 s doubled per attempt, at most [`MAX_BACKOFF`], with ±20 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(10));
    let base = base.min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.8 + f64::from(nanos % 400) / 1000.0;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(400) && backoff(0) <= Duration::from_millis(600)
        );
        assert!(backoff(3) >= Duration::from_millis(3200));
        assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
