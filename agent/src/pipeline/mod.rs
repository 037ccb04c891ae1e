//! One pipeline on one set of settings ([`run_once`]): the input threads (files, and
//! the journal and the syslog listener when configured) parse lines into chunks → a bounded channel → the
//! buffer stage (`buffer_stage.rs`: append to the disk buffer, group fsync, then
//! advance the inputs' checkpoints) → the disk buffer → the ship stage
//! (`ship_stage.rs`: batch, send, acknowledge). What `[agent.buffer]`'s keys do is
//! implemented in the buffer stage and [`crate::buffer`].

mod buffer_stage;
mod ship_stage;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use self::buffer_stage::{BufferStage, buffer_stage};
use self::ship_stage::{Delivery, ShipStage, StopControl};
use crate::buffer::BufferError;
use crate::buffer::DiskBuffer;
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::config::Settings;
use crate::deadletter::DeadLetter;
use crate::inputs::Chunk;
use crate::inputs::file::FileInput;
use crate::inputs::journald::JournaldInput;
use crate::inputs::syslog::{ListenError, Sockets, SyslogInput};
use crate::metrics::Metrics;
use crate::parsers::LineParser;
use crate::shippers::Shipper;
use crate::shippers::http::HttpShipperError;
use crate::{buffer, datadir, footprint};

/// How long a stopping agent keeps trying to deliver what it has read.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the agent stopped with a failure.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot set up the shipper: {0}")]
    Shipper(#[from] HttpShipperError),
    #[error("cannot start an input thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("cannot listen for {name}: {source}")]
    Signal {
        name: &'static str,
        source: std::io::Error,
    },
    #[error("untrusted agent.data_dir: {0}")]
    DataDir(#[from] datadir::DataDirError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
}

/// What the pipeline has been asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopping {
    /// Keep running.
    No,
    /// Stop reading and try for [`DRAIN_TIMEOUT`] to deliver what was read.
    Exit,
    /// Stop reading and finish the requests in flight (no retries); the buffer is
    /// shipped by the pipeline that follows.
    Reload,
}

/// One pipeline on one set of settings, until `stop_rx` says stop. Returns once
/// everything it read is in the disk buffer with its read positions saved.
pub(crate) async fn run_once(
    settings: Settings,
    metrics: Arc<Metrics>,
    sockets: &Sockets,
    stop_rx: watch::Receiver<Stopping>,
) -> Result<(), RunError> {
    datadir::prepare(&settings.data_dir)?;
    let syslog = match &settings.syslog {
        Some(syslog) => Some(SyslogInput::new(
            syslog.clone(),
            settings.host.clone(),
            settings.timezone,
            Arc::clone(&metrics),
            sockets,
        )?),
        None => {
            sockets.close_all("no listener configured");
            None
        }
    };
    let checkpoints = Arc::new(Mutex::new(CheckpointStore::load(&settings.data_dir)?));
    let shipper = Shipper::build(&settings.shipper)?;
    // Two chunks of 500 events in flight keep the buffer stage busy; more only holds
    // memory (parsed events are about 1 KiB each).
    let (events_tx, events_rx) = mpsc::channel::<Chunk>(2);
    let stop_input = Arc::new(AtomicBool::new(false));

    let input_threads = start_inputs(
        &settings,
        &checkpoints,
        &metrics,
        syslog,
        events_tx,
        &stop_input,
        &stop_rx,
    )?;

    info!(
        destination = %shipper.destination(),
        hostname = %settings.host.fqdn,
        "Agent started."
    );

    let disk = match open_buffer(&settings, &metrics) {
        Ok(disk) => disk,
        Err(e) => {
            stop_input.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
    };
    let disk = Arc::new(Mutex::new(disk));
    metrics.health.started(&disk, settings.buffer.max_bytes);
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
    let mut ship = ShipStage {
        delivery: Delivery {
            shipper,
            dead_letter: Mutex::new(DeadLetter::new(&settings.data_dir)),
            metrics: Arc::clone(&metrics),
            deadline: watch::Sender::new(None),
        },
        disk,
        synced,
        stop: StopControl {
            stop_rx,
            stop_input,
        },
        batching: settings.batching,
        spare: Vec::new(),
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
    ship.run(&mut writer).await;
    release.abort();
    metrics.health.stopped();

    ship.stop.stop_input.store(true, Ordering::Relaxed);
    let writer_done = ship.writer_done;
    drop(ship);
    join_inputs(input_threads).await;
    // The inputs are gone, so the buffer stage takes what they left in the channel,
    // fsyncs it and saves the read positions, then ends.
    if !writer_done && writer.await.is_err() {
        error!("The buffer stage did not stop cleanly.");
    }
    Ok(())
}

/// Starts the input threads (the syslog listener's and the journal's when they run,
/// then the files'), each with its own parsers, sending to `events_tx` until
/// `stop_input` is set.
fn start_inputs(
    settings: &Settings,
    checkpoints: &Arc<Mutex<CheckpointStore>>,
    metrics: &Arc<Metrics>,
    syslog: Option<SyslogInput>,
    events_tx: mpsc::Sender<Chunk>,
    stop_input: &Arc<AtomicBool>,
    stop_rx: &watch::Receiver<Stopping>,
) -> Result<Vec<std::thread::JoinHandle<()>>, RunError> {
    let input = FileInput {
        settings: settings.file.clone(),
        parser: LineParser::new(settings.host.clone(), settings.timezone)
            .counting(Arc::clone(&metrics.parsed_file)),
        checkpoints: Arc::clone(checkpoints),
        metrics: Arc::clone(metrics),
    };
    let mut input_threads = Vec::new();
    if let Some(syslog) = syslog {
        let syslog_tx = events_tx.clone();
        let syslog_stop = Arc::clone(stop_input);
        let stop_rx = stop_rx.clone();
        let reloading = move || *stop_rx.borrow() == Stopping::Reload;
        input_threads.push(
            std::thread::Builder::new()
                .name("syslog-input".into())
                .spawn(move || syslog.run(syslog_tx, syslog_stop, reloading))
                .map_err(RunError::Thread)?,
        );
    }
    if let Some(journal) = &settings.journald {
        let journald = JournaldInput {
            settings: journal.clone(),
            parser: LineParser::new(settings.host.clone(), settings.timezone)
                .counting(Arc::clone(&metrics.parsed_journald)),
            checkpoints: Arc::clone(checkpoints),
            metrics: Arc::clone(metrics),
        };
        let journald_tx = events_tx.clone();
        let journald_stop = Arc::clone(stop_input);
        input_threads.push(
            std::thread::Builder::new()
                .name("journald-input".into())
                .spawn(move || journald.run(journald_tx, journald_stop))
                .map_err(RunError::Thread)?,
        );
        info!("Reading the journal (journald input on).");
    }
    let input_stop = Arc::clone(stop_input);
    input_threads.push(
        std::thread::Builder::new()
            .name("file-input".into())
            .spawn(move || input.run(events_tx, input_stop))
            .map_err(RunError::Thread)?,
    );
    Ok(input_threads)
}

/// Opens the disk buffer under `data_dir`, saying what its recovery found (lost
/// stretches, a torn tail, undelivered events).
fn open_buffer(settings: &Settings, metrics: &Metrics) -> Result<DiskBuffer, BufferError> {
    let opened = DiskBuffer::open(
        &settings.data_dir.join("buffer"),
        settings.buffer.segment_max_bytes,
        settings.buffer.max_bytes,
    );
    let (disk, recovery) = opened?;
    report_lost(&recovery, metrics);
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
    Ok(disk)
}

/// Waits (off the runtime's threads) for the input threads to end.
async fn join_inputs(input_threads: Vec<std::thread::JoinHandle<()>>) {
    let joined = tokio::task::spawn_blocking(move || {
        input_threads
            .into_iter()
            .all(|thread| thread.join().is_ok())
    })
    .await;
    if !matches!(joined, Ok(true)) {
        error!("An input thread did not stop cleanly.");
    }
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
