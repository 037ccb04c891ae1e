//! The ship stage: from the disk buffer to the collector.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picket_common::backoff;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::DRAIN_TIMEOUT;
use super::Stopping;
use crate::buffer::{Batch, DiskBuffer, Records};
use crate::deadletter::DeadLetter;
use crate::metrics::Metrics;
use crate::shippers::{Outcome, Shipper};

/// Longest wait between two tries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The wait after the first failure, doubled per failure after it.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The ship stage: reads batches from the disk buffer, sends them, acknowledges them
/// in the buffer after a 2xx.
pub(super) struct ShipStage {
    pub(super) shipper: Shipper,
    pub(super) dead_letter: DeadLetter,
    pub(super) disk: Arc<Mutex<DiskBuffer>>,
    pub(super) synced: Arc<tokio::sync::Notify>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stop_rx: watch::Receiver<Stopping>,
    pub(super) stop_input: Arc<AtomicBool>,
    pub(super) drain_deadline: Option<Instant>,
    pub(super) batch_max_events: usize,
    /// The batch being shipped; its memory is reused for the next.
    pub(super) batch: Batch,
    pub(super) writer_done: bool,
}

impl ShipStage {
    pub(super) async fn run(&mut self, writer: &mut tokio::task::JoinHandle<()>) {
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
                        let delay = after
                            .unwrap_or_else(|| backoff::delay(FIRST_BACKOFF, MAX_BACKOFF, attempt))
                            .min(MAX_BACKOFF);
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
