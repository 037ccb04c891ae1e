//! The agent's counters, in one place. Every line dropped, cut, retried or refused is
//! counted here and logged where it happens; the totals are logged at shutdown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use picket_parsers::ParseCounts;
use tracing::info;

use crate::buffer::DiskBuffer;

/// Counters shared by the input and the shipper.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lines read and turned into events.
    pub lines_read: AtomicU64,
    /// Input records that could not be read at all (a journal line that is not JSON),
    /// logged and skipped.
    pub parse_failures: AtomicU64,
    /// Lines longer than `max_line_bytes`, kept cut.
    pub lines_truncated: AtomicU64,
    /// Files that left their path: renamed away (rotated) or deleted.
    pub rotations: AtomicU64,
    /// Files found shorter than the read position.
    pub truncations: AtomicU64,
    /// Watched paths not read because they are not regular files or are symbolic links
    /// the agent must not follow (each counted once while it stays so).
    pub files_refused: AtomicU64,
    /// Events the collector acknowledged.
    pub events_shipped: AtomicU64,
    /// Bytes of the delivered events' JSON lines (uncompressed; without HTTP or AMQP
    /// framing).
    pub bytes_shipped: AtomicU64,
    /// Events the collector refused (logged with the reason, kept in the dead-letter
    /// file); not retried.
    pub events_rejected: AtomicU64,
    /// Refused events the dead-letter file could not take (disk error): lost.
    pub events_lost: AtomicU64,
    /// Events dropped because the disk buffer was full (`when_full = "drop_newest"`).
    pub events_dropped: AtomicU64,
    /// Bytes of the buffer found unreadable at start (corrupt) and skipped: data lost.
    pub buffer_bytes_lost: AtomicU64,
    /// Events in those bytes: lost.
    pub buffer_records_lost: AtomicU64,
    /// The lost stretches (segment, offset) already counted: a reload reopens the
    /// buffer and finds them again until the records ahead of them are delivered.
    pub buffer_lost_counted: Mutex<HashSet<(u64, u64)>>,
    /// fdatasyncs of the disk buffer.
    pub buffer_syncs: AtomicU64,
    /// Requests that failed and were retried.
    pub retries: AtomicU64,
    /// Messages the syslog listener took (also in `lines_read`).
    pub syslog_messages: AtomicU64,
    /// TCP and TLS connections the syslog listener accepted.
    pub syslog_connections: AtomicU64,
    /// Connections closed at once for `max_connections`.
    pub syslog_connections_refused: AtomicU64,
    /// Connections and datagrams from senders not in `allowed_senders`.
    pub syslog_senders_refused: AtomicU64,
    /// TLS handshakes that failed (or did not finish in time).
    pub syslog_tls_failures: AtomicU64,
    /// Connections closed because their octet counting broke (what came before kept).
    pub syslog_framing_errors: AtomicU64,
    /// Datagrams the kernel dropped on the UDP listeners' sockets (receive buffer
    /// full).
    pub udp_datagrams_dropped: AtomicU64,
    /// Syslog messages read but never buffered: the buffer stage was gone, or a stop
    /// came while the disk could not be written (logged where it happened).
    pub syslog_messages_lost: AtomicU64,
    /// What each parser read and did not recognise, per input.
    pub parsed_file: Arc<ParseCounts>,
    pub parsed_journald: Arc<ParseCounts>,
    pub parsed_syslog: Arc<ParseCounts>,
    /// What `/health` reports.
    pub health: Health,
    /// When the process started (the counters count from then).
    pub started: Started,
}

/// When the counters started: made with them.
#[derive(Debug, Clone, Copy)]
pub struct Started(pub SystemTime);

impl Default for Started {
    fn default() -> Self {
        Started(SystemTime::now())
    }
}

/// The running pipeline's state for `/health` and `/metrics`' gauges: set where it
/// changes, read by the API.
#[derive(Default)]
pub struct Health {
    /// A pipeline runs (false at start, between the pipelines of a reload, and after
    /// the stop).
    pub running: AtomicBool,
    /// The running pipeline's disk buffer and its `max_bytes`.
    pub buffer: Mutex<Option<(Arc<Mutex<DiskBuffer>>, u64)>>,
    /// Delivery has failed since, and the last reason (cleared by a delivery).
    pub delivery: Trouble,
    /// Writing the disk buffer has failed since, and why (cleared when it works).
    pub buffer_write: Trouble,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("running", &self.running)
            .field("delivery", &self.delivery)
            .field("buffer_write", &self.buffer_write)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// A pipeline runs on `buffer`.
    pub fn started(&self, buffer: &Arc<Mutex<DiskBuffer>>, max_bytes: u64) {
        if let Ok(mut held) = self.buffer.lock() {
            *held = Some((Arc::clone(buffer), max_bytes));
        }
        // A new pipeline (after a reload) has neither trouble until it meets it.
        self.buffer_write.clear();
        self.delivery.clear();
        self.running.store(true, Ordering::Relaxed);
    }

    /// The pipeline stops (a reload's next one, if any, says so again).
    pub fn stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
        if let Ok(mut held) = self.buffer.lock() {
            *held = None;
        }
    }
}

/// A trouble that lasts until it is cleared: since when, and the latest reason.
#[derive(Debug, Default)]
pub struct Trouble(Mutex<Option<(SystemTime, String)>>);

impl Trouble {
    /// The trouble is (still) there, for `reason`.
    pub fn set(&self, reason: impl std::fmt::Display) {
        if let Ok(mut state) = self.0.lock() {
            let since = state
                .as_ref()
                .map_or_else(SystemTime::now, |(since, _)| *since);
            *state = Some((since, reason.to_string()));
        }
    }

    /// The trouble has passed.
    pub fn clear(&self) {
        if let Ok(mut state) = self.0.lock()
            && state.is_some()
        {
            *state = None;
        }
    }

    /// Since when, and why; `None` when there is none.
    pub fn get(&self) -> Option<(SystemTime, String)> {
        self.0.lock().ok().and_then(|state| state.clone())
    }
}

impl Metrics {
    /// Logs the totals at INFO.
    pub fn log_totals(&self) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        info!(
            lines_read = get(&self.lines_read),
            lines_truncated = get(&self.lines_truncated),
            parse_failures = get(&self.parse_failures),
            rotations = get(&self.rotations),
            truncations = get(&self.truncations),
            files_refused = get(&self.files_refused),
            events_shipped = get(&self.events_shipped),
            bytes_shipped = get(&self.bytes_shipped),
            events_rejected = get(&self.events_rejected),
            events_lost = get(&self.events_lost),
            retries = get(&self.retries),
            events_dropped = get(&self.events_dropped),
            buffer_bytes_lost = get(&self.buffer_bytes_lost),
            buffer_records_lost = get(&self.buffer_records_lost),
            buffer_syncs = get(&self.buffer_syncs),
            "Agent totals."
        );
        if get(&self.syslog_messages) > 0 || get(&self.syslog_connections) > 0 {
            info!(
                messages = get(&self.syslog_messages),
                connections = get(&self.syslog_connections),
                connections_refused = get(&self.syslog_connections_refused),
                senders_refused = get(&self.syslog_senders_refused),
                tls_failures = get(&self.syslog_tls_failures),
                framing_errors = get(&self.syslog_framing_errors),
                udp_datagrams_dropped = get(&self.udp_datagrams_dropped),
                lost = get(&self.syslog_messages_lost),
                "Syslog listener totals."
            );
        }
    }
}
