//! The HTTP server under the API: accepts connections, holds each to its limits and
//! hands requests to the router.
//!
//! What a client cannot do to it:
//!
//! - **Hold connections open for nothing.** A keep-alive connection with no request
//!   for `idle_timeout` is closed (2,000 idle connections once made the collector
//!   unreachable, with nothing logged); a client has `header_timeout` to send a
//!   request's headers.
//! - **Take every connection.** At most `max_connections` are open at once, and at
//!   most `max_connections_per_address` from one address; more are closed as they are
//!   accepted (before any TLS handshake), counted in
//!   `picket_requests_refused_total{reason="connection_limit"}` and logged (at most once
//!   a minute).
//!
//! Slow bodies are the ingest handler's (a minimum rate), and the concurrency cap the
//! router's ([`crate::http::auth::guard`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::http::connections::{Connections, Slot};
use crate::http::tls::{Peer, TlsListener};

/// Where connections come from.
pub enum Incoming {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Serves `router` on `incoming` until `stop` turns true, then stops accepting, lets
/// requests in flight finish (up to 30 s) and returns.
pub async fn serve(
    incoming: Incoming,
    router: Router,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(connections.limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    match incoming {
        Incoming::Plain(tcp) => loop {
            let accepted = tokio::select! {
                accepted = tcp.accept() => accepted,
                _ = stop.wait_for(|s| *s) => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    debug!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = connections.admit(remote.ip()) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let peer = Peer {
                address: remote,
                identity: None,
            };
            spawn_connection(&builder, &router, &connections, stream, peer, slot, &stop);
        },
        Incoming::Tls(mut tls) => loop {
            let (stream, peer, slot) = tokio::select! {
                accepted = tls.accept() => accepted,
                _ = stop.wait_for(|s| *s) => break,
            };
            spawn_connection(&builder, &router, &connections, stream, peer, slot, &stop);
        },
    }
    info!(
        open = connections.open(),
        "Stopped accepting connections; finishing requests in flight."
    );
    connections.drained(Duration::from_secs(30)).await;
    Ok(())
}

/// Serves one connection in its own task: requests go to the router with the peer as
/// `ConnectInfo`; the connection is closed when idle too long or at shutdown.
fn spawn_connection<S>(
    builder: &Arc<auto::Builder<TokioExecutor>>,
    router: &Router,
    connections: &Arc<Connections>,
    stream: S,
    peer: Peer,
    slot: Slot,
    stop: &watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = Arc::clone(builder);
    let router = router.clone();
    let idle_timeout = connections.limits.idle_timeout;
    let metrics = Arc::clone(&connections.metrics);
    let mut stop = stop.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let activity = Arc::new(Activity::default());
        let service_activity = Arc::clone(&activity);
        let address = peer.address;
        let service = tower::service_fn(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer.clone()));
                let mut router = router.clone();
                let busy = service_activity.begin();
                async move {
                    let response = tower::Service::call(&mut router, request).await;
                    drop(busy);
                    response
                }
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut closing = false;
        let mut check = tokio::time::interval(Duration::from_secs(1).min(idle_timeout));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        debug!(peer = %address, error = %e, "Connection ended with an error.");
                    }
                    return;
                }
                _ = check.tick(), if !closing => {
                    if activity.idle_for() >= idle_timeout {
                        debug!(peer = %address, "Closing a connection idle for {idle_timeout:?}.");
                        metrics.refused("idle");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = stop.wait_for(|s| *s), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    });
}

/// A connection's requests in flight and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        }
    }
}

/// A request in flight; ends when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut since) = self.0.since.lock() {
            *since = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    /// How long the connection has had no request in flight (zero while it has one).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        self.since.lock().map(|t| t.elapsed()).unwrap_or_default()
    }
}
