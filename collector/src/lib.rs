//! The Picket collector: receives MozDef events over HTTP, normalizes them with the
//! `mozdef` crate, stores them (embedded tantivy store by default) and answers
//! searches.
//!
//! - [`config`]: the `[collector]` config table and its checked [`config::Settings`].
//! - [`ingest::http`]: the HTTP routes (`/events`, `/status`, `/api/events`).
//! - [`stores::embedded`]: the daily tantivy indices.
//! - [`search`]: time bounds as operators write them.
//! - [`client`]: what `picket-collector search` uses to ask a running collector.
//!
//! `main.rs` parses the command line and calls [`run`].

pub mod client;
pub mod config;
pub mod ingest;
pub mod search;
pub mod stores;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::Settings;
use crate::ingest::http::{AppState, router};
use crate::stores::embedded::{EmbeddedStore, StoreError};

/// Why the collector stopped with a failure.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the embedded store: {0}")]
    Store(#[from] StoreError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the collector until `shutdown` resolves, then drains: stops accepting,
/// finishes requests in flight, commits pending events.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let store = Arc::new(EmbeddedStore::open(
        &settings.data_dir,
        settings.commit_interval,
        settings.writer_memory_bytes,
    )?);
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| RunError::Bind {
            address: settings.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(RunError::Serve)?;
    info!(address = %address, data_dir = %settings.data_dir.display(), "Collector listening for events and searches.");
    let state = AppState {
        store: Arc::clone(&store),
        max_body_bytes: settings.max_body_bytes,
        max_event_bytes: settings.max_event_bytes,
    };
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    info!("Shutting down; committing pending events.");
    let closing = Arc::clone(&store);
    if let Err(e) = tokio::task::spawn_blocking(move || closing.close()).await {
        error!(error = %e, "Store did not close cleanly.");
    }
    served.map_err(RunError::Serve)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C will stop the collector.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received."),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received."),
    }
}
