//! The collector's counters, served as `GET /metrics` in the Prometheus text format.
//!
//! - `picket_events_received_total{source}`: items taken in, by way in (`events`,
//!   `nxlog`, `cef`, `bulk`, `amqp`).
//! - `picket_events_stored_total{source}`: committed to the store.
//! - `picket_events_rejected_total{reason}`: items refused (`not_json`, `too_large`,
//!   `invalid`) — by HTTP position or moved to the AMQP dead-letter queue.
//! - `picket_requests_refused_total{reason}`: whole requests refused (`unauthorized`,
//!   `forbidden`, `body_too_large`, `bad_body`, `overloaded`, `timeout`,
//!   `store_failed`, `store_busy`, …).
//! - `picket_events_retimed_total`: events timed at reception because the time they
//!   carried was outside `collector.max_event_age_days` / `max_event_future_secs`.
//! - `picket_events_reparsed_total`: raw syslog text other shippers sent, parsed at the
//!   collector with the agent's parsers ([`crate::reparse`]).
//! - `picket_store_seconds`: time from handing events to the store to their commit
//!   (a histogram); `picket_store_queue_depth`: writes waiting for a commit now.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Ways events come in.
pub const SOURCES: [&str; 6] = ["events", "nxlog", "cef", "custom", "bulk", "amqp"];
/// Why an item is refused.
/// `store_refused`: the store will never take it (an Elasticsearch mapping conflict);
/// it went to the dead-letter file.
/// `conflict`: an `eventid` already stored with a different body (the first copy wins).
pub const ITEM_REASONS: [&str; 5] = [
    "not_json",
    "too_large",
    "invalid",
    "store_refused",
    "conflict",
];
/// Why a whole request is refused.
/// `too_many_events`: over `max_events_per_request`; `slow_body`: a body arriving
/// slower than `min_body_bytes_per_sec`; `connection_limit`: a connection closed at
/// accept, over `max_connections` or `max_connections_per_address`; `idle`: a
/// keep-alive connection closed after `idle_timeout_secs` without a request;
/// `store_busy`: the embedded store's indexing was behind its log by
/// `max_unindexed_bytes` (a 503 with `Retry-After`, a 429 on `_bulk`);
/// `login_throttled`: a console login from an address with too many wrong ones lately.
pub const REQUEST_REASONS: [&str; 13] = [
    "unauthorized",
    "forbidden",
    "body_too_large",
    "bad_body",
    "overloaded",
    "timeout",
    "store_failed",
    "too_many_events",
    "slow_body",
    "connection_limit",
    "idle",
    "store_busy",
    "login_throttled",
];
/// Upper bounds of the store latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every counter, shared by all ingest paths.
#[derive(Debug, Default)]
pub struct Metrics {
    received: [AtomicU64; SOURCES.len()],
    stored: [AtomicU64; SOURCES.len()],
    rejected: [AtomicU64; ITEM_REASONS.len()],
    refused: [AtomicU64; REQUEST_REASONS.len()],
    store_buckets: [AtomicU64; BUCKETS.len()],
    store_count: AtomicU64,
    store_micros: AtomicU64,
    queue_depth: AtomicI64,
    retimed: AtomicU64,
    reparsed: AtomicU64,
    /// The alert scheduler's counters.
    pub alerts: std::sync::Arc<AlertMetrics>,
}

fn index(names: &[&str], name: &str) -> usize {
    names.iter().position(|n| *n == name).unwrap_or_else(|| {
        debug_assert!(false, "unknown metric label {name}");
        0
    })
}

impl Metrics {
    pub fn received(&self, source: &str, n: usize) {
        self.received[index(&SOURCES, source)].fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn stored(&self, source: &str, n: usize) {
        self.stored[index(&SOURCES, source)].fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected_n(reason, 1);
    }

    pub fn rejected_n(&self, reason: &str, n: usize) {
        self.rejected[index(&ITEM_REASONS, reason)].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Events whose time was too far from their reception: timed at reception, the
    /// time sent kept in `details.timestamperror`.
    pub fn retimed(&self, n: usize) {
        self.retimed.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Raw syslog text parsed at the collector.
    pub fn reparsed(&self, n: usize) {
        self.reparsed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: &str) {
        self.refused[index(&REQUEST_REASONS, reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// A write handed to the store (queue depth up).
    pub fn store_started(&self) {
        self.queue_depth.fetch_add(1, Ordering::Relaxed);
    }

    /// A write answered after `took` (queue depth down, latency observed).
    pub fn store_finished(&self, took: Duration) {
        self.queue_depth.fetch_sub(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.store_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.store_count.fetch_add(1, Ordering::Relaxed);
        self.store_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let families: [Family<'_>; 4] = [
            (
                "picket_events_received_total",
                "Events taken in, by way in.",
                "source",
                &SOURCES,
                &self.received,
            ),
            (
                "picket_events_stored_total",
                "Events committed to the store, by way in.",
                "source",
                &SOURCES,
                &self.stored,
            ),
            (
                "picket_events_rejected_total",
                "Items refused one by one, by reason.",
                "reason",
                &ITEM_REASONS,
                &self.rejected,
            ),
            (
                "picket_requests_refused_total",
                "Whole requests refused, by reason.",
                "reason",
                &REQUEST_REASONS,
                &self.refused,
            ),
        ];
        for (name, help, label, names, values) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (n, v) in names.iter().zip(values) {
                let _ = writeln!(out, "{name}{{{label}=\"{n}\"}} {}", get(v));
            }
        }
        self.render_store(&mut out);
        self.alerts.render(&mut out);
        out
    }

    /// The store's commit latency histogram, queue depth and retimed events.
    fn render_store(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP picket_store_seconds Time from handing events to the store to their commit.\n# TYPE picket_store_seconds histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.store_buckets) {
            let _ = writeln!(
                out,
                "picket_store_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.store_count);
        let _ = writeln!(out, "picket_store_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "picket_store_seconds_sum {}",
            get(&self.store_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "picket_store_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP picket_store_queue_depth Writes waiting for a commit.\n# TYPE picket_store_queue_depth gauge\npicket_store_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed).max(0)
        );
        let _ = writeln!(
            out,
            "# HELP picket_events_retimed_total Events whose time was too far from their reception (timed at reception, details.timestamperror kept).\n# TYPE picket_events_retimed_total counter\npicket_events_retimed_total {}",
            get(&self.retimed)
        );
        let _ = writeln!(
            out,
            "# HELP picket_events_reparsed_total Raw syslog text from other shippers parsed at the collector with the agent's parsers.\n# TYPE picket_events_reparsed_total counter\npicket_events_reparsed_total {}",
            get(&self.reparsed)
        );
    }
}

/// A labelled counter family: name, help, label, label values, counters.
type Family<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a [AtomicU64]);

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The alert scheduler's counters behind `/metrics`.
#[derive(Debug, Default)]
pub struct AlertMetrics {
    pub runs: AtomicU64,
    pub fired: AtomicU64,
    pub failures: AtomicU64,
    pub missed_runs: AtomicU64,
    pub catch_up_runs: AtomicU64,
    pub notify_failures: AtomicU64,
}

impl AlertMetrics {
    fn render(&self, out: &mut String) {
        for (name, help, value) in [
            (
                "picket_alert_rule_runs_total",
                "Alert rule runs.",
                &self.runs,
            ),
            ("picket_alerts_fired_total", "Alerts fired.", &self.fired),
            (
                "picket_alert_rule_failures_total",
                "Alert rule runs that failed (bad query, store down, alert not stored).",
                &self.failures,
            ),
            (
                "picket_alert_runs_missed_total",
                "Scheduled alert rule runs skipped because an earlier one ran late.",
                &self.missed_runs,
            ),
            (
                "picket_alert_catch_up_runs_total",
                "Scheduled alert rule runs missed (failed or late) and made when the rule ran again.",
                &self.catch_up_runs,
            ),
            (
                "picket_alert_notifications_failed_total",
                "Notifications given up after retries.",
                &self.notify_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(value)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_series() {
        let m = Metrics::default();
        m.received("cef", 3);
        m.stored("cef", 2);
        m.rejected("not_json");
        m.refused("forbidden");
        m.store_started();
        m.store_finished(Duration::from_millis(30));
        let text = m.render();
        for line in [
            "picket_events_received_total{source=\"cef\"} 3",
            "picket_events_stored_total{source=\"cef\"} 2",
            "picket_events_stored_total{source=\"amqp\"} 0",
            "picket_events_rejected_total{reason=\"not_json\"} 1",
            "picket_requests_refused_total{reason=\"forbidden\"} 1",
            "picket_store_seconds_bucket{le=\"0.025\"} 0",
            "picket_store_seconds_bucket{le=\"0.05\"} 1",
            "picket_store_seconds_bucket{le=\"+Inf\"} 1",
            "picket_store_seconds_count 1",
            "picket_store_queue_depth 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
