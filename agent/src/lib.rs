//! The Picket agent: follows log files, parses each line into a MozDef event, and ships
//! events to a collector, checkpointing read positions only after delivery.
//!
//! - [`config`]: the `[agent]` config table and its checked [`config::Settings`].
//! - [`host`]: this host's FQDN and stable id.
//! - [`parsers`]: one line → one event.
//! - [`inputs::file`]: following files (its own thread).
//! - [`shippers::http`]: NDJSON batches to the collector.
//! - [`checkpoint`]: read positions on disk.
//! - [`buffer`]: the disk buffer (segment log), not yet between inputs and shippers.
//! - [`metrics`]: the counters.
//!
//! [`run`] wires them: input thread → bounded channel → batches → shipper → checkpoints.
//! `main.rs` parses the command line and calls it.

pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod host;
pub mod inputs;
pub mod metrics;
pub mod parsers;
pub mod shippers;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::checkpoint::{CheckpointError, CheckpointStore, FileIdentity};
use crate::config::Settings;
use crate::inputs::ReadEvent;
use crate::inputs::file::FileInput;
use crate::inputs::journald::JournaldInput;
use crate::metrics::Metrics;
use crate::parsers::LineParser;
use crate::shippers::Outcome;
use crate::shippers::http::{HttpShipper, HttpShipperError};

/// How long a stopping agent keeps trying to deliver what it has read.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two tries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the agent stopped with a failure.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Shipper(#[from] HttpShipperError),
    #[error("cannot start the file input thread: {0}")]
    Thread(std::io::Error),
}

/// Runs the agent until `shutdown` resolves, then stops reading, tries for
/// [`DRAIN_TIMEOUT`] to deliver what was read, saves checkpoints and returns. What was
/// not delivered is read again at the next start.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let checkpoints = Arc::new(Mutex::new(CheckpointStore::load(&settings.data_dir)?));
    let metrics = Arc::new(Metrics::default());
    let shipper = HttpShipper::build(settings.url.clone(), settings.timeout)?;
    let (events_tx, events_rx) = mpsc::channel::<Vec<ReadEvent>>(8);
    let stop_input = Arc::new(AtomicBool::new(false));

    let input = FileInput {
        discovery: settings.discovery.clone(),
        literal_paths: settings
            .paths
            .iter()
            .filter(|p| !p.to_string_lossy().contains(['*', '?', '[', '{']))
            .cloned()
            .collect(),
        start_at: settings.start_at,
        poll_interval: settings.poll_interval,
        scan_interval: settings.scan_interval,
        rotated_idle: settings.rotated_idle,
        partial_flush: settings.partial_flush,
        max_line_bytes: settings.max_line_bytes,
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

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    info!(
        url = %shipper.url(),
        hostname = %settings.host.fqdn,
        files = settings.paths.len(),
        "Agent started."
    );

    let mut pipeline = Pipeline {
        shipper,
        checkpoints,
        metrics: Arc::clone(&metrics),
        events: events_rx,
        buffer: VecDeque::new(),
        stop_rx,
        stop_input,
        drain_deadline: None,
        batch_max_events: settings.batch_max_events,
        batch_max_wait: settings.batch_max_wait,
    };
    pipeline.run().await;

    pipeline.stop_input.store(true, Ordering::Relaxed);
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
    metrics.log_totals();
    info!("Agent stopped.");
    Ok(())
}

struct Pipeline {
    shipper: HttpShipper,
    checkpoints: Arc<Mutex<CheckpointStore>>,
    metrics: Arc<Metrics>,
    events: mpsc::Receiver<Vec<ReadEvent>>,
    buffer: VecDeque<ReadEvent>,
    stop_rx: watch::Receiver<bool>,
    stop_input: Arc<AtomicBool>,
    drain_deadline: Option<Instant>,
    batch_max_events: usize,
    batch_max_wait: Duration,
}

impl Pipeline {
    async fn run(&mut self) {
        while let Some(batch) = self.next_batch().await {
            if batch.is_empty() {
                continue;
            }
            if !self.ship(&batch).await {
                warn!(
                    events = batch.len(),
                    "Stopping before the collector took every event; they will be read again at the next start."
                );
                return;
            }
            self.checkpoint(&batch).await;
        }
    }

    fn stopping(&self) -> bool {
        self.drain_deadline.is_some()
    }

    fn begin_stop(&mut self) {
        if self.drain_deadline.is_none() {
            info!(
                timeout_secs = DRAIN_TIMEOUT.as_secs(),
                "Stopping: no more reading, delivering what was read."
            );
            self.stop_input.store(true, Ordering::Relaxed);
            self.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
        }
    }

    /// Waits for the next batch: up to `batch_max_events`, sent once full or
    /// `batch_max_wait` after its first event. `None` once the input has stopped and
    /// everything it sent was taken.
    async fn next_batch(&mut self) -> Option<Vec<ReadEvent>> {
        if self.buffer.is_empty() {
            tokio::select! {
                chunk = self.events.recv() => match chunk {
                    Some(chunk) => self.buffer.extend(chunk),
                    None => return None,
                },
                changed = self.stop_rx.changed(), if !self.stopping() => {
                    if changed.is_err() || *self.stop_rx.borrow() {
                        self.begin_stop();
                    }
                    return Some(Vec::new());
                }
            }
        }
        let wait = if self.stopping() {
            Duration::ZERO
        } else {
            self.batch_max_wait
        };
        let deadline = Instant::now() + wait;
        while self.buffer.len() < self.batch_max_events {
            tokio::select! {
                chunk = self.events.recv() => match chunk {
                    Some(chunk) => self.buffer.extend(chunk),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
                changed = self.stop_rx.changed(), if !self.stopping() => {
                    if changed.is_err() || *self.stop_rx.borrow() {
                        self.begin_stop();
                    }
                }
            }
        }
        let take = self.buffer.len().min(self.batch_max_events);
        Some(self.buffer.drain(..take).collect())
    }

    /// Delivers `batch`, retrying what may pass and splitting what is too large.
    /// Returns false only when stopping ran out of time.
    async fn ship(&mut self, batch: &[ReadEvent]) -> bool {
        let mut work: Vec<&[ReadEvent]> = vec![batch];
        let mut attempt: u32 = 0;
        while let Some(part) = work.pop() {
            loop {
                let events: Vec<&mozdef::Event> = part.iter().map(|r| &r.event).collect();
                match self.shipper.send(&events).await {
                    Outcome::Delivered { rejected } => {
                        let refused = rejected.len() as u64;
                        for (position, reason) in &rejected {
                            error!(position, reason = %reason, "Collector refused an event; it is dropped.");
                        }
                        self.metrics
                            .events_rejected
                            .fetch_add(refused, Ordering::Relaxed);
                        self.metrics
                            .events_shipped
                            .fetch_add(part.len() as u64 - refused, Ordering::Relaxed);
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
                        error!(events = part.len(), reason = %reason, "Collector refused a batch; its events are dropped.");
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
                if changed.is_err() || *self.stop_rx.borrow() {
                    self.begin_stop();
                }
            }
        }
        self.drain_deadline
            .is_none_or(|deadline| Instant::now() < deadline)
    }

    /// Records the end of every delivered line and saves the checkpoints.
    async fn checkpoint(&self, batch: &[ReadEvent]) {
        let mut ends: HashMap<FileIdentity, (&str, u64)> = HashMap::new();
        let mut cursor: Option<String> = None;
        for read in batch {
            if let Some(at) = &read.cursor {
                // Journal entries arrive in order: the last one is the furthest.
                cursor = Some(at.to_string());
                continue;
            }
            let end = ends.entry(read.identity).or_insert((&read.path, 0));
            end.1 = end.1.max(read.next_offset);
        }
        let updates: Vec<(FileIdentity, String, u64)> = ends
            .into_iter()
            .map(|(identity, (path, offset))| (identity, path.to_string(), offset))
            .collect();
        let checkpoints = Arc::clone(&self.checkpoints);
        let saved = tokio::task::spawn_blocking(move || {
            let mut store = checkpoints
                .lock()
                .map_err(|_| "checkpoint lock poisoned".to_string())?;
            for (identity, path, offset) in &updates {
                store.set(identity, path, *offset);
            }
            if let Some(cursor) = &cursor {
                store.set_journal_cursor(cursor);
            }
            store.save().map_err(|e| e.to_string())
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(error = %e, "Cannot save checkpoints; lines may be read again after a restart.")
            }
            Err(e) => error!(error = %e, "Checkpoint task failed."),
        }
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

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C will stop the agent.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received."),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received."),
    }
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
