//! The ship stage: from the disk buffer to the collector, with up to `max_in_flight`
//! batches sent before the first is answered. Answers are taken in order, and a batch
//! is acknowledged in the buffer only once it and every batch before it were
//! delivered, so the buffer's ack point never passes an undelivered event; a restart
//! resends at most the batches that were in flight (event ids make that harmless).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use picket_common::backoff;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::DRAIN_TIMEOUT;
use super::Stopping;
use crate::buffer::{Batch, DiskBuffer, Records};
use crate::deadletter::DeadLetter;
use crate::metrics::Metrics;
use crate::shippers::common::Batching;
use crate::shippers::{Outcome, Shipper};

/// Longest wait between two tries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The wait after the first failure, doubled per failure after it.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The ship stage: reads batches from the disk buffer, sends them, acknowledges them
/// in the buffer after a 2xx.
pub(super) struct ShipStage {
    pub(super) delivery: Delivery,
    pub(super) disk: Arc<Mutex<DiskBuffer>>,
    pub(super) synced: Arc<tokio::sync::Notify>,
    pub(super) stop: StopControl,
    pub(super) batching: Batching,
    /// Batches not in flight; their memory is reused for the next reads.
    pub(super) spare: Vec<Batch>,
    pub(super) writer_done: bool,
}

/// What every batch in flight shares to deliver itself.
pub(super) struct Delivery {
    pub(super) shipper: Shipper,
    pub(super) dead_letter: Mutex<DeadLetter>,
    pub(super) metrics: Arc<Metrics>,
    /// The drain deadline, once stopping: batches waiting to retry give up after it.
    pub(super) deadline: watch::Sender<Option<Instant>>,
}

/// The stop request as the ship stage sees it.
pub(super) struct StopControl {
    pub(super) stop_rx: watch::Receiver<Stopping>,
    pub(super) stop_input: Arc<AtomicBool>,
}

/// A batch back from delivery: whether it was delivered (false only when stopping
/// ran out of time).
type Shipped = (Batch, bool);

impl ShipStage {
    pub(super) async fn run(&mut self, writer: &mut tokio::task::JoinHandle<()>) {
        let delivery = &self.delivery;
        let mut in_flight = FuturesOrdered::new();
        loop {
            let stopping = delivery.deadline.borrow().is_some();
            let past_deadline = delivery
                .deadline
                .borrow()
                .is_some_and(|deadline| Instant::now() >= deadline);
            // Fill the window from what the buffer has made durable.
            let mut drained = false;
            while !past_deadline && in_flight.len() < self.batching.max_in_flight {
                let mut batch = self.spare.pop().unwrap_or_default();
                if let Err(e) = read(&self.disk, self.batching.max_events, &mut batch) {
                    error!(error = %e, "Cannot read the disk buffer.");
                    batch = Batch::default();
                }
                if batch.is_empty() {
                    self.spare.push(batch);
                    drained = true;
                    break;
                }
                in_flight.push_back(delivery.deliver(batch));
            }
            if in_flight.is_empty() && (past_deadline || self.writer_done) {
                return;
            }
            // Woken by a batch's answer, the buffer stage's fsync (a stored permit: no
            // wake-up is lost between the read above and this wait), the writer's end,
            // or stop.
            tokio::select! {
                Some((batch, shipped)) = in_flight.next(), if !in_flight.is_empty() => {
                    if !shipped {
                        warn!(
                            events = batch.len(),
                            batches_after_it = in_flight.len(),
                            "Stopping before the collector took every event; they stay in the disk buffer."
                        );
                        return;
                    }
                    if let Some(last) = batch.last() {
                        acknowledge(&self.disk, last);
                    }
                    self.spare.push(batch);
                }
                _ = self.synced.notified(), if drained && !past_deadline => {}
                done = &mut *writer, if !self.writer_done => {
                    let _ = done;
                    self.writer_done = true;
                }
                changed = self.stop.stop_rx.changed(), if !stopping => {
                    if let Some(deadline) = self.stop.requested(changed.is_err()) {
                        delivery.deadline.send_replace(Some(deadline));
                    }
                }
            }
        }
    }
}

/// Runs `f` on the locked disk buffer (outside the async workers' budget: it does I/O).
fn with_disk<T>(
    disk: &Mutex<DiskBuffer>,
    f: impl FnOnce(&mut DiskBuffer) -> Result<T, crate::buffer::BufferError>,
) -> Result<T, String> {
    tokio::task::block_in_place(|| {
        disk.lock()
            .map_err(|_| "buffer lock poisoned".to_string())
            .and_then(|mut d| f(&mut d).map_err(|e| e.to_string()))
    })
}

/// Reads up to `max` durable records into `batch` (empty when there are none).
fn read(disk: &Mutex<DiskBuffer>, max: usize, batch: &mut Batch) -> Result<(), String> {
    with_disk(disk, |d| d.read_into(max, batch))
}

/// Moves the buffer's ack point to `last` (after a delivered batch).
fn acknowledge(disk: &Mutex<DiskBuffer>, last: crate::buffer::Position) {
    if let Err(e) = with_disk(disk, |d| d.ack(last)) {
        error!(error = %e, "Cannot record the delivery in the disk buffer; events may be sent again.");
    }
}

impl StopControl {
    /// Acts on a change of the stop request (`gone`: its sender was dropped, which
    /// means exit): stops the inputs and returns the drain deadline, when it is a stop.
    fn requested(&mut self, gone: bool) -> Option<Instant> {
        let request = if gone {
            Stopping::Exit
        } else {
            *self.stop_rx.borrow()
        };
        if request == Stopping::No {
            return None;
        }
        self.stop_input.store(true, Ordering::Relaxed);
        if request == Stopping::Reload {
            info!("Reloading: no more reading; the buffer is shipped on the new configuration.");
            Some(Instant::now())
        } else {
            info!(
                timeout_secs = DRAIN_TIMEOUT.as_secs(),
                "Stopping: no more reading, delivering what was read."
            );
            Some(Instant::now() + DRAIN_TIMEOUT)
        }
    }
}

impl Delivery {
    /// Delivers one batch and hands it back (its memory is reused).
    async fn deliver(&self, batch: Batch) -> Shipped {
        let shipped = self.ship(batch.records()).await;
        (batch, shipped)
    }

    /// Delivers `records`, retrying what may pass and splitting what is too large.
    /// Returns false only when stopping ran out of time.
    async fn ship(&self, records: Records<'_>) -> bool {
        let mut deadline = self.deadline.subscribe();
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
                        self.metrics.health.delivery.clear();
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
                        // The collector answered: delivery works.
                        self.metrics.health.delivery.clear();
                        let records: Vec<&[u8]> = part.iter().collect();
                        self.dead_letter(&reason, &records);
                        self.metrics
                            .events_rejected
                            .fetch_add(part.len() as u64, Ordering::Relaxed);
                        break;
                    }
                    Outcome::Retry { reason, after } => {
                        self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                        self.metrics.health.delivery.set(&reason);
                        let delay = after
                            .unwrap_or_else(|| backoff::delay(FIRST_BACKOFF, MAX_BACKOFF, attempt))
                            .min(MAX_BACKOFF);
                        attempt = attempt.saturating_add(1);
                        warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, attempt, "Delivery failed; retrying.");
                        if !wait_or_give_up(&mut deadline, delay).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Keeps refused events in the dead-letter file, logged and counted.
    fn dead_letter(&self, reason: &str, records: &[&[u8]]) {
        let Ok(mut dead_letter) = self.dead_letter.lock() else {
            error!(
                events = records.len(),
                reason, "The dead-letter file's lock is poisoned; refused events are lost."
            );
            self.metrics
                .events_lost
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            return;
        };
        error!(
            events = records.len(),
            reason,
            file = %dead_letter.path().display(),
            "Collector refused events; they are kept in the dead-letter file."
        );
        for record in records {
            if let Err(e) = dead_letter.write(reason, record) {
                error!(error = %e, "Cannot write the dead-letter file; a refused event is lost.");
                self.metrics.events_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sleeps `delay`, cut short by the drain deadline; false when that has passed.
async fn wait_or_give_up(deadline: &mut watch::Receiver<Option<Instant>>, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    loop {
        let current = *deadline.borrow_and_update();
        if let Some(at) = current
            && Instant::now() >= at
        {
            return false;
        }
        let wake = current.map_or(until, |at| until.min(at));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            changed = deadline.changed() => {
                if changed.is_ok() {
                    continue;
                }
                // The stage is gone (it owns the sender): nothing will shorten the wait.
                tokio::time::sleep_until(wake).await;
            }
        }
        return deadline.borrow().is_none_or(|at| Instant::now() < at);
    }
}
