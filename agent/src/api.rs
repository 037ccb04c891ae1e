//! The agent's local API (`[agent.api] listen`, off by default): `GET /metrics` in the
//! Prometheus text format and `GET /health`, 200 or 503 with the reasons. It outlives
//! reloads (the counters are the process's), and reads the running pipeline's state
//! from [`Metrics`] and its [`crate::metrics::Health`].

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use picket_common::prometheus::{CONTENT_TYPE, Exposition, Kind};
use serde_json::json;
use thiserror::Error;
use tracing::{error, info};

pub use self::config::{ApiConfig, ApiSettings};
use crate::heartbeat;
use crate::metrics::Metrics;

/// The API listener could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on agent.api.listen {address}: {source}")]
pub struct ApiError {
    pub address: SocketAddr,
    pub source: std::io::Error,
}

/// A running API listener; stops when dropped.
#[derive(Debug)]
pub struct Api {
    settings: ApiSettings,
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// `unhealthy_after` in milliseconds, changed by a reload in place.
    unhealthy_after_ms: Arc<AtomicU64>,
}

struct Shared {
    metrics: Arc<Metrics>,
    unhealthy_after_ms: Arc<AtomicU64>,
}

impl Shared {
    fn unhealthy_after(&self) -> Duration {
        Duration::from_millis(self.unhealthy_after_ms.load(Ordering::Relaxed))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Api {
    /// Binds `settings.listen` and serves it until dropped.
    pub async fn start(settings: ApiSettings, metrics: Arc<Metrics>) -> Result<Api, ApiError> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ApiError {
                address: settings.listen,
                source,
            })?;
        let address = listener.local_addr().unwrap_or(settings.listen);
        let unhealthy_after_ms = Arc::new(AtomicU64::new(millis(settings.unhealthy_after)));
        let shared = Arc::new(Shared {
            metrics,
            unhealthy_after_ms: Arc::clone(&unhealthy_after_ms),
        });
        let app = axum::Router::new()
            .route("/metrics", get(metrics_page))
            .route("/health", get(health_page))
            .with_state(shared);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                error!(error = %e, "The API listener failed.");
            }
        });
        info!(listen = %address, "Agent API on: GET /metrics, GET /health.");
        Ok(Api {
            settings,
            address,
            task,
            unhealthy_after_ms,
        })
    }

    /// What it runs with.
    pub fn settings(&self) -> &ApiSettings {
        &self.settings
    }

    /// Takes a reload's settings on the same address (no new socket).
    pub fn update(&mut self, settings: ApiSettings) {
        self.unhealthy_after_ms
            .store(millis(settings.unhealthy_after), Ordering::Relaxed);
        self.settings = settings;
    }

    /// The address it listens on (the port the kernel chose for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The disk buffer as the gauges see it.
#[derive(Debug, Default, Clone, Copy)]
struct BufferView {
    bytes: u64,
    max_bytes: u64,
    oldest_age_secs: f64,
    full: bool,
}

/// Reads the running pipeline's disk buffer (off the async workers: it reads a record).
async fn buffer_view(metrics: &Arc<Metrics>) -> Option<BufferView> {
    let metrics = Arc::clone(metrics);
    tokio::task::spawn_blocking(move || {
        let (disk, max_bytes) = metrics.health.buffer.lock().ok()?.clone()?;
        let disk = disk.lock().ok()?;
        let oldest = disk
            .peek_oldest()
            .ok()
            .flatten()
            .and_then(|record| heartbeat::record_time(&record));
        let oldest_age_secs = oldest.map_or(0.0, |t| {
            ((chrono::Utc::now() - t).num_milliseconds().max(0) as f64) / 1000.0
        });
        Some(BufferView {
            bytes: disk.unacked_bytes(),
            max_bytes,
            oldest_age_secs,
            full: disk.is_full(),
        })
    })
    .await
    .ok()
    .flatten()
}

/// Why the agent is not healthy; empty when it is.
fn troubles(shared: &Shared, buffer: Option<BufferView>) -> Vec<String> {
    let health = &shared.metrics.health;
    let mut reasons = Vec::new();
    if !health.running.load(Ordering::Relaxed) {
        reasons.push("no pipeline running (starting, reloading or stopping)".to_string());
    }
    let ago = |since: SystemTime| since.elapsed().unwrap_or_default().as_secs();
    if let Some((since, reason)) = health.buffer_write.get() {
        reasons.push(format!(
            "cannot write the disk buffer for {}s (inputs wait): {reason}",
            ago(since)
        ));
    }
    if let Some(buffer) = buffer.filter(|b| b.full) {
        reasons.push(format!(
            "disk buffer full ({} of {} bytes): inputs wait or new events are dropped (agent.buffer.when_full)",
            buffer.bytes, buffer.max_bytes
        ));
    }
    if let Some((since, reason)) = health.delivery.get()
        && since.elapsed().unwrap_or_default() >= shared.unhealthy_after()
    {
        reasons.push(format!("delivery failing for {}s: {reason}", ago(since)));
    }
    reasons
}

async fn health_page(State(shared): State<Arc<Shared>>) -> Response {
    let buffer = buffer_view(&shared.metrics).await;
    let reasons = troubles(&shared, buffer);
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if reasons.is_empty() { "ok" } else { "unhealthy" },
        "reasons": reasons,
        "version": env!("CARGO_PKG_VERSION"),
        "buffer_bytes": buffer.map(|b| b.bytes),
        "buffer_oldest_age_seconds": buffer.map(|b| b.oldest_age_secs),
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics_page(State(shared): State<Arc<Shared>>) -> Response {
    let buffer = buffer_view(&shared.metrics).await;
    let healthy = troubles(&shared, buffer).is_empty();
    let text = render(&shared, buffer, healthy);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

fn count(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

/// The exposition: every counter of [`Metrics`], the buffer's gauges, health.
fn render(shared: &Shared, buffer: Option<BufferView>, healthy: bool) -> String {
    let m = &*shared.metrics;
    let mut out = Exposition::default();
    out.family(
        "picket_agent_info",
        Kind::Gauge,
        "The agent's version (value 1).",
        [(&[("version", env!("CARGO_PKG_VERSION"))][..], 1.0)],
    );
    let started = m
        .started
        .0
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    out.single(
        "picket_agent_start_time_seconds",
        Kind::Gauge,
        "When the agent process started (Unix time).",
        started.as_secs_f64(),
    );
    out.single(
        "picket_agent_healthy",
        Kind::Gauge,
        "1 when GET /health answers 200, 0 when 503.",
        u8::from(healthy),
    );
    let failing = m.health.delivery.get().map_or(0.0, |(since, _)| {
        since.elapsed().unwrap_or_default().as_secs_f64()
    });
    out.single(
        "picket_agent_delivery_failing_seconds",
        Kind::Gauge,
        "How long delivery has failed without a success (0 while it works).",
        failing,
    );
    render_inputs(m, &mut out);
    render_delivery(m, &mut out);
    render_buffer(m, buffer, &mut out);
    render_syslog(m, &mut out);
    out.finish()
}

fn render_inputs(m: &Metrics, out: &mut Exposition) {
    out.single(
        "picket_agent_lines_read_total",
        Kind::Counter,
        "Lines (files, journal entries, syslog messages) read and turned into events.",
        count(&m.lines_read),
    );
    let inputs = [
        ("file", &m.parsed_file),
        ("journald", &m.parsed_journald),
        ("syslog", &m.parsed_syslog),
    ];
    let mut parsed = Vec::new();
    let mut failed = Vec::new();
    for (input, counts) in inputs {
        for (parser, read, unrecognised) in counts.snapshot() {
            parsed.push(([("input", input), ("parser", parser)], read as f64));
            if parser != picket_parsers::SYSLOG_PARSER {
                failed.push(([("input", input), ("parser", parser)], unrecognised as f64));
            }
        }
    }
    out.family(
        "picket_agent_events_parsed_total",
        Kind::Counter,
        "Events by the parser that read them (syslog: no parser recognised the line).",
        parsed.iter().map(|(labels, v)| (&labels[..], *v)),
    );
    out.family(
        "picket_agent_parse_failures_total",
        Kind::Counter,
        "Lines handed to a parser (by program name, or CEF by its text) that matched none of its shapes; they became syslog events.",
        failed.iter().map(|(labels, v)| (&labels[..], *v)),
    );
    out.single(
        "picket_agent_unreadable_records_total",
        Kind::Counter,
        "Input records that could not be read at all (a journal entry that is not JSON), logged and skipped.",
        count(&m.parse_failures),
    );
    out.single(
        "picket_agent_lines_truncated_total",
        Kind::Counter,
        "Lines longer than max_line_bytes (or max_message_bytes), kept cut.",
        count(&m.lines_truncated),
    );
    out.single(
        "picket_agent_file_rotations_total",
        Kind::Counter,
        "Files that left their path (rotated away or deleted).",
        count(&m.rotations),
    );
    out.single(
        "picket_agent_file_truncations_total",
        Kind::Counter,
        "Files found shorter than the read position (truncated in place).",
        count(&m.truncations),
    );
    out.single(
        "picket_agent_files_refused_total",
        Kind::Counter,
        "Watched paths not read: not regular files, or links the agent must not follow.",
        count(&m.files_refused),
    );
}

fn render_delivery(m: &Metrics, out: &mut Exposition) {
    out.single(
        "picket_agent_events_shipped_total",
        Kind::Counter,
        "Events the collector or broker acknowledged.",
        count(&m.events_shipped),
    );
    out.single(
        "picket_agent_shipped_bytes_total",
        Kind::Counter,
        "Bytes of the acknowledged events' JSON lines (before compression and framing).",
        count(&m.bytes_shipped),
    );
    out.single(
        "picket_agent_ship_retries_total",
        Kind::Counter,
        "Deliveries that failed and were retried.",
        count(&m.retries),
    );
    out.single(
        "picket_agent_events_rejected_total",
        Kind::Counter,
        "Events the collector refused (kept in the dead-letter file, not retried).",
        count(&m.events_rejected),
    );
    out.family(
        "picket_agent_events_dropped_total",
        Kind::Counter,
        "Events lost, by why: buffer_full (when_full = drop_newest), dead_letter_unwritable, buffer_corrupt (found unreadable in the disk buffer), syslog_unbuffered (read from the network, never buffered), udp_receive_buffer (datagrams the kernel dropped).",
        [
            (&[("reason", "buffer_full")][..], count(&m.events_dropped)),
            (&[("reason", "dead_letter_unwritable")][..], count(&m.events_lost)),
            (&[("reason", "buffer_corrupt")][..], count(&m.buffer_records_lost)),
            (&[("reason", "syslog_unbuffered")][..], count(&m.syslog_messages_lost)),
            (&[("reason", "udp_receive_buffer")][..], count(&m.udp_datagrams_dropped)),
        ],
    );
}

fn render_buffer(m: &Metrics, buffer: Option<BufferView>, out: &mut Exposition) {
    let buffer = buffer.unwrap_or_default();
    out.single(
        "picket_agent_buffer_bytes",
        Kind::Gauge,
        "Bytes of events in the disk buffer not yet acknowledged.",
        buffer.bytes as f64,
    );
    out.single(
        "picket_agent_buffer_max_bytes",
        Kind::Gauge,
        "agent.buffer.max_bytes.",
        buffer.max_bytes as f64,
    );
    out.single(
        "picket_agent_buffer_oldest_age_seconds",
        Kind::Gauge,
        "Age of the oldest event still in the disk buffer (0 when it is empty).",
        buffer.oldest_age_secs,
    );
    out.single(
        "picket_agent_buffer_full",
        Kind::Gauge,
        "1 while the disk buffer is full.",
        u8::from(buffer.full),
    );
    out.single(
        "picket_agent_buffer_syncs_total",
        Kind::Counter,
        "fdatasyncs of the disk buffer.",
        count(&m.buffer_syncs),
    );
    out.single(
        "picket_agent_buffer_lost_bytes_total",
        Kind::Counter,
        "Bytes of the disk buffer found unreadable (corrupt) at start and skipped.",
        count(&m.buffer_bytes_lost),
    );
}

fn render_syslog(m: &Metrics, out: &mut Exposition) {
    out.single(
        "picket_agent_syslog_messages_total",
        Kind::Counter,
        "Messages the syslog listener took (also in picket_agent_lines_read_total).",
        count(&m.syslog_messages),
    );
    out.single(
        "picket_agent_syslog_connections_total",
        Kind::Counter,
        "TCP and TLS connections the syslog listener accepted.",
        count(&m.syslog_connections),
    );
    out.family(
        "picket_agent_syslog_refused_total",
        Kind::Counter,
        "Connections and datagrams refused: sender (not in allowed_senders), max_connections.",
        [
            (
                &[("reason", "sender")][..],
                count(&m.syslog_senders_refused),
            ),
            (
                &[("reason", "max_connections")][..],
                count(&m.syslog_connections_refused),
            ),
        ],
    );
    out.family(
        "picket_agent_syslog_errors_total",
        Kind::Counter,
        "Connections that failed: tls_handshake, framing (a broken octet count).",
        [
            (
                &[("kind", "tls_handshake")][..],
                count(&m.syslog_tls_failures),
            ),
            (&[("kind", "framing")][..], count(&m.syslog_framing_errors)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            metrics: Arc::new(Metrics::default()),
            unhealthy_after_ms: Arc::new(AtomicU64::new(60_000)),
        }
    }

    #[test]
    fn health_names_each_trouble() {
        let shared = shared();
        let health = &shared.metrics.health;
        assert_eq!(troubles(&shared, None).len(), 1, "not running yet");
        health.running.store(true, Ordering::Relaxed);
        assert!(troubles(&shared, None).is_empty());
        // A delivery failure is a trouble only once it lasts unhealthy_after.
        health.delivery.set("connection refused");
        assert!(troubles(&shared, None).is_empty());
        let quick = Shared {
            metrics: Arc::clone(&shared.metrics),
            unhealthy_after_ms: Arc::new(AtomicU64::new(0)),
        };
        let reasons = troubles(&quick, None);
        assert!(reasons[0].contains("connection refused"), "{reasons:?}");
        health.delivery.clear();
        health.buffer_write.set("No space left on device");
        let full = BufferView {
            bytes: 10,
            max_bytes: 10,
            oldest_age_secs: 3.0,
            full: true,
        };
        let reasons = troubles(&quick, Some(full));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("No space left"), "{reasons:?}");
        assert!(reasons[1].contains("disk buffer full"), "{reasons:?}");
    }

    #[test]
    fn every_counter_is_in_the_exposition() {
        let shared = shared();
        shared.metrics.lines_read.store(7, Ordering::Relaxed);
        shared
            .metrics
            .udp_datagrams_dropped
            .store(3, Ordering::Relaxed);
        let text = render(&shared, None, true);
        assert!(
            text.contains("\npicket_agent_lines_read_total 7\n"),
            "{text}"
        );
        assert!(
            text.contains("picket_agent_events_dropped_total{reason=\"udp_receive_buffer\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("picket_agent_parse_failures_total{input=\"file\",parser=\"sshd\"} 0\n")
        );
        assert!(!text.contains("parse_failures_total{input=\"file\",parser=\"syslog\"}"));
    }
}
