//! The collector's connection limits: at most `max_connections` open at once and at
//! most `max_connections_per_address` from one address; a connection over a limit is
//! closed as it is accepted (before any TLS handshake), counted and logged at most
//! once a minute. The server (`server.rs`) and the TLS listener (`tls.rs`) take a
//! [`Slot`] for each connection they accept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picket_common::ratelog::LogLimiter;
use tokio::sync::Notify;
use tracing::warn;

use crate::metrics::Metrics;

/// The server's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// 0: no limit per address.
    pub max_connections_per_address: usize,
}

/// Open connections, in all and by address.
pub struct Connections {
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    /// Refusals are logged once a minute.
    refusal_log: LogLimiter,
    closed: Notify,
}

/// One accepted connection's place; given back when dropped.
pub struct Slot {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let c = &self.connections;
        if let Ok(mut by_address) = c.by_address.lock() {
            if let Some(n) = by_address.get_mut(&self.address) {
                *n -= 1;
                if *n == 0 {
                    by_address.remove(&self.address);
                }
            }
        }
        if c.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            c.closed.notify_waiters();
        }
    }
}

impl Connections {
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            metrics,
            open: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
            refusal_log: LogLimiter::every_minute(),
            closed: Notify::new(),
        })
    }

    /// A place for a connection from `address`, or `None` (the caller closes it) when
    /// it would be over a limit.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let per_address = self.limits.max_connections_per_address;
        let mut by_address = self.by_address.lock().ok()?;
        let from_there = by_address.get(&address).copied().unwrap_or(0);
        let open = self.open.load(Ordering::Acquire);
        let refusal = if open >= self.limits.max_connections {
            Some(format!(
                "{open} connections are open, the limit (collector.http.max_connections)"
            ))
        } else if per_address > 0 && from_there >= per_address {
            Some(format!(
                "{from_there} connections are open from {address}, the limit (collector.http.max_connections_per_address)"
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            drop(by_address);
            self.metrics.refused("connection_limit");
            if self.refusal_log.due() {
                warn!(peer = %address, "Closed a new connection: {why}. (Logged at most once a minute; counted in picket_requests_refused_total{{reason=\"connection_limit\"}}.)");
            }
            return None;
        }
        *by_address.entry(address).or_insert(0) += 1;
        self.open.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            connections: Arc::clone(self),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until every connection is closed, or `limit` passes.
    pub(crate) async fn drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                warn!(
                    open = self.open(),
                    "Connections still open after the shutdown grace period; closing them."
                );
                return;
            }
        }
    }
}
