//! The agent as a process: [`run`] one pipeline until a shutdown future resolves, or
//! [`serve`] it until SIGTERM/SIGINT, reloading the configuration on SIGHUP. Either way
//! a stop drains: reading stops, what was read is fsynced into the disk buffer with its
//! read positions, and delivery is tried for [`crate::DRAIN_TIMEOUT`].

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use crate::api::Api;
use crate::config::{ConfigError, Settings};
use crate::inputs::syslog::Sockets;
use crate::metrics::Metrics;
use crate::pipeline::{self, RunError, Stopping};
use crate::shippers::Shipper;

/// Runs the agent until `shutdown` resolves, then stops reading, fsyncs what was read
/// into the disk buffer, tries for [`crate::DRAIN_TIMEOUT`] to deliver it and returns. What
/// was not delivered stays in the buffer for the next start.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = watch::channel(Stopping::No);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(Stopping::Exit);
    });
    let metrics = Arc::new(Metrics::default());
    let sockets = Sockets::default();
    let result = pipeline::run_once(settings, Arc::clone(&metrics), &sockets, stop_rx).await;
    metrics.log_totals();
    info!("Agent stopped.");
    result
}

/// Runs the agent as a service: until SIGTERM or SIGINT, reloading on SIGHUP.
///
/// On SIGHUP `load` reads the configuration again. A configuration that does not load
/// (or moves `data_dir`, which holds the buffer and the read positions) is refused with
/// an error log and the agent runs on unchanged. A good one replaces the running
/// inputs, parsers and shipper (the syslog listener's sockets stay bound): reading stops, what was read is fsynced into the disk
/// buffer with its read positions, the batch in flight finishes, and the pipeline starts
/// again on the new settings from those positions and that buffer — no line is lost or
/// read twice, and the process (its counters included) stays.
pub async fn serve(
    mut settings: Settings,
    mut load: impl FnMut() -> Result<Settings, ConfigError>,
) -> Result<(), RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| RunError::Signal { name, source })
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    let metrics = Arc::new(Metrics::default());
    // The syslog listener's sockets stay bound across reloads, and so does the API's.
    let sockets = Sockets::default();
    let mut api = match &settings.api {
        Some(api) => Some(Api::start(api.clone(), Arc::clone(&metrics)).await?),
        None => None,
    };
    let result = loop {
        let (stop_tx, stop_rx) = watch::channel(Stopping::No);
        let running = pipeline::run_once(settings.clone(), Arc::clone(&metrics), &sockets, stop_rx);
        tokio::pin!(running);
        let mut next = None;
        let ended = loop {
            tokio::select! {
                ended = &mut running => break ended,
                _ = term.recv() => {
                    info!("SIGTERM received.");
                    let _ = stop_tx.send(Stopping::Exit);
                }
                _ = int.recv() => {
                    info!("SIGINT received.");
                    let _ = stop_tx.send(Stopping::Exit);
                }
                _ = hup.recv(), if *stop_tx.borrow() == Stopping::No => {
                    info!("SIGHUP received: reading the configuration again.");
                    match load() {
                        Ok(new) if new.data_dir != settings.data_dir => error!(
                            running = %settings.data_dir.display(),
                            configured = %new.data_dir.display(),
                            "Reload refused: agent.data_dir cannot change while the agent runs (it holds the buffer and read positions); the running configuration stays."
                        ),
                        // What `run_once` would fail on at start (a client certificate
                        // that does not load, say) is refused here, while the old
                        // pipeline still runs.
                        Ok(new) => match Shipper::build(&new.shipper) {
                            Err(e) => error!(
                                "Reload refused, the running configuration stays: cannot set up the shipper: {e}"
                            ),
                            // A new listen address is bound before the old pipeline
                            // stops: one that cannot be is refused here.
                            Ok(_) if let Some(Err(e)) = new.syslog.as_ref().map(|syslog| {
                                sockets.bind(&syslog.listen, syslog.udp_receive_buffer_bytes)
                            }) => error!(
                                "Reload refused, the running configuration stays: {e}"
                            ),
                            Ok(_) => match restart_api(&mut api, &new, &metrics).await {
                                Err(e) => error!(
                                    "Reload refused, the running configuration stays: {e}"
                                ),
                                Ok(()) => {
                                    next = Some(new);
                                    let _ = stop_tx.send(Stopping::Reload);
                                }
                            },
                        },
                        Err(e) => error!(
                            "Reload refused, the running configuration stays: {e}"
                        ),
                    }
                }
            }
        };
        match (ended, next) {
            (Ok(()), Some(new)) if *stop_tx.borrow() == Stopping::Reload => {
                settings = new;
                info!("Configuration reloaded.");
            }
            (ended, _) => break ended,
        }
    };
    metrics.log_totals();
    info!("Agent stopped.");
    result
}

/// Moves the API listener to the reloaded settings: a new address is bound before the
/// old listener stops (an error leaves it running); the same address keeps its socket
/// and takes the new `unhealthy_after`; no `[agent.api]` stops it.
async fn restart_api(
    api: &mut Option<Api>,
    new: &Settings,
    metrics: &Arc<Metrics>,
) -> Result<(), crate::api::ApiError> {
    match (api.as_mut(), &new.api) {
        (Some(running), Some(wanted)) if running.settings().listen == wanted.listen => {
            running.update(wanted.clone());
        }
        (_, Some(wanted)) => {
            *api = Some(Api::start(wanted.clone(), Arc::clone(metrics)).await?);
        }
        (_, None) => *api = None,
    }
    Ok(())
}
