//! The Picket collector: receives MozDef events over HTTP and AMQP, normalizes them with
//! the `mozdef` crate, stores them (embedded tantivy store by default), answers searches
//! and runs alert rules.
//!
//! One module per table of the config file, each with its `config.rs` (keys, defaults,
//! `build()` into checked settings); [`config`] is the root that names them.
//!
//! - [`http`] (`[collector.http]`): the router; [`http::ingest`]'s event routes,
//!   [`http::auth`]'s tokens and request guards, [`http::tls`], [`http::server`]
//!   (connections and their timeouts), [`http::connections`] (connection limits).
//! - [`amqp`] (`[collector.amqp]`): MozDef's RabbitMQ queue, consumed.
//! - [`stores`] (`[collector.stores]`): the one face of both stores;
//!   [`stores::embedded`]: the daily tantivy indices; [`stores::elasticsearch`]: `_bulk`
//!   into MozDef's index layout.
//! - [`alerts`] (`[collector.alerts]`): rules, the scheduler, the notifiers.
//! - [`metrics`]: the counters behind `GET /metrics`.
//! - [`search`]: time bounds as operators write them; [`query`]: the limits every
//!   query string and aggregation request is held to before it is parsed.
//! - [`cli`]: the commands that ask a running collector (`search`, `alerts test`)
//!   through [`cli::client`], or read the rules folder (`alerts list`).
//!
//! Plumbing shared with the agent (config files, secrets, TLS files, the HTTP client,
//! AMQP connections, backoff) is `picket_common`'s. `main.rs` parses the command line
//! and calls [`run`].

pub mod alerts;
pub mod amqp;
pub mod cli;
pub mod config;
pub mod console;
pub mod http;
pub mod metrics;
pub mod query;
pub mod reparse;
pub mod search;
pub mod stores;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::http::auth::{Access, Guards};
use crate::http::tls::{TlsListener, TlsState};
use crate::http::{AppState, router};
use crate::stores::elasticsearch::ElasticStore;
use crate::stores::embedded::EmbeddedStore;
use crate::stores::{Store, StoreError};

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
    #[error("cannot set up the Elasticsearch store: {0}")]
    Elasticsearch(#[from] crate::stores::elasticsearch::ElasticSetupError),
    #[error("cannot open the alert store: {0}")]
    AlertStore(StoreError),
    #[error("cannot start the alert rules: {0}")]
    Alerts(#[from] crate::alerts::rules::RuleError),
    #[error("cannot set up an alert webhook: {0}")]
    Webhook(#[from] picket_common::http_client::HttpClientError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot read or make the read token {0}: {1}")]
    ReadToken(std::path::PathBuf, std::io::Error),
}

/// Runs the collector until `shutdown` resolves, then drains: stops accepting,
/// finishes requests in flight, commits pending events.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    App::build(settings)?.run(shutdown).await
}

/// A collector built from its settings: the store open, the socket bound, the alert
/// rules loaded. Nothing is served until [`App::run`].
pub struct App {
    settings: Settings,
    store: Arc<Store>,
    listener: TcpListener,
    address: SocketAddr,
    metrics: Arc<crate::metrics::Metrics>,
    /// The scheduler, when alert rules run.
    scheduler: Option<crate::alerts::Scheduler<Arc<Store>>>,
    alert_store: Option<Arc<crate::alerts::AlertStore>>,
    access: Arc<Access>,
    /// Reads the configuration again on SIGHUP ([`App::reloading`]).
    reload: Option<Reload>,
}

/// Reads the configuration again, as at start.
pub type Reload = Box<dyn FnMut() -> Result<Settings, crate::config::ConfigError> + Send + 'static>;

impl App {
    /// Opens the store, binds the listening socket, loads the rules and tokens: every
    /// failure a fresh start can have, before anything runs.
    pub fn build(settings: Settings) -> Result<App, RunError> {
        let store = Arc::new(open_store(&settings)?);
        let http = &settings.http;
        let listener = listen(http.listen).map_err(|source| RunError::Bind {
            address: http.listen,
            source,
        })?;
        let address = listener.local_addr().map_err(RunError::Serve)?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (scheduler, alert_store) = match &settings.alerts.rules_dir {
            Some(rules_dir) => {
                let alert_store = Arc::new(
                    crate::alerts::AlertStore::for_store(&store, &settings.data_dir)
                        .map_err(RunError::AlertStore)?,
                );
                let mut scheduler = crate::alerts::Scheduler::new(
                    rules_dir,
                    Arc::clone(&store),
                    Some(Arc::clone(&alert_store)),
                    notifiers(&settings.alerts)?,
                    Some(settings.data_dir.join("alerts").join("ledger")),
                )?;
                scheduler.metrics = Arc::clone(&metrics.alerts);
                // Collectors sharing a cluster run the rules one at a time.
                if let Store::Elasticsearch(es) = &*store {
                    let lease =
                        crate::alerts::lease::Lease::new(Arc::clone(es), settings.alerts.lease);
                    scheduler = scheduler.with_lease(lease, Arc::clone(es));
                }
                (Some(scheduler), Some(alert_store))
            }
            None => (None, None),
        };
        let access = access(&settings, &metrics)?;
        Ok(App {
            settings,
            store,
            listener,
            address,
            metrics,
            scheduler,
            alert_store,
            access,
            reload: None,
        })
    }

    /// On SIGHUP, `reload` reads the configuration again: the TLS certificate, key
    /// and client CA, the tokens and users files and `open_reads` take effect for new
    /// connections and requests (a configuration that does not load is refused and
    /// logged; the running one stays); the alert rules reload either way.
    pub fn reloading(mut self, reload: Reload) -> App {
        self.reload = Some(reload);
        self
    }

    /// The address it listens on (the port, when the config asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let App {
            settings,
            store,
            listener,
            address,
            metrics,
            scheduler,
            alert_store,
            access,
            reload,
        } = self;
        log_start(&settings, address, &store);
        let http = &settings.http;
        // One stop signal for every task.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let rules_reload = Arc::new(tokio::sync::Notify::new());
        let tls = http
            .tls
            .clone()
            .map(|config| TlsState::new(config, http.client_certificates));
        on_sighup(Reloader {
            load: reload,
            rules: scheduler.is_some().then(|| Arc::clone(&rules_reload)),
            access: Arc::clone(&access),
            tls: tls.clone(),
        });
        let alerts = scheduler.map(|scheduler| {
            tokio::spawn(crate::alerts::run(scheduler, rules_reload, stop_rx.clone()))
        });
        // One for HTTP and AMQP: what a host's earlier lines said is known on its later
        // ones whichever way they came.
        let reparser = Arc::new(crate::reparse::Reparser::new());
        let state = AppState {
            store: Arc::clone(&store),
            max_body_bytes: http.max_body_bytes,
            max_event_bytes: http.max_event_bytes,
            access,
            max_events_per_request: http.max_events_per_request,
            min_body_bytes_per_sec: http.min_body_bytes_per_sec,
            max_response_bytes: http.max_response_bytes,
            time_window: settings.time_window,
            guards: Guards {
                slots: Arc::new(tokio::sync::Semaphore::new(http.max_concurrent_requests)),
                timeout: http.request_timeout,
                queue_timeout: http.queue_timeout,
                metrics: Arc::clone(&metrics),
            },
            metrics: Arc::clone(&metrics),
            alerts: alert_store.clone(),
            elasticsearch: Arc::clone(&http.elasticsearch),
            reparser: Arc::clone(&reparser),
            console: Arc::new(settings.console.clone()),
        };
        let upkeep = tokio::spawn(upkeep(
            Arc::clone(&store),
            settings.stores.retention_days,
            settings.time_window.max_future,
            stop_rx.clone(),
        ));
        let amqp = settings.amqp.clone().map(|amqp| {
            tokio::spawn(crate::amqp::run(
                amqp,
                Arc::clone(&store),
                Arc::clone(&metrics),
                Arc::clone(&reparser),
                settings.time_window,
                stop_rx.clone(),
            ))
        });
        let connections = crate::http::connections::Connections::new(
            crate::http::connections::Limits {
                header_timeout: http.header_timeout,
                idle_timeout: http.idle_timeout,
                max_connections: http.max_connections,
                max_connections_per_address: http.max_connections_per_address,
            },
            Arc::clone(&metrics),
        );
        let incoming = match tls {
            Some(tls) => crate::http::server::Incoming::Tls(TlsListener::new(
                listener,
                tls,
                Arc::clone(&connections),
            )),
            None => crate::http::server::Incoming::Plain(listener),
        };
        let served =
            crate::http::server::serve(incoming, router(state), connections, stop_rx.clone()).await;
        if let Some(amqp) = amqp {
            let _ = amqp.await;
        }
        let _ = upkeep.await;
        if let Some(task) = alerts {
            let _ = task.await;
        }
        if let Some(alert_store) = alert_store {
            let _ = tokio::task::spawn_blocking(move || alert_store.close()).await;
        }
        info!("Shutting down; committing pending events.");
        store.close().await;
        served.map_err(RunError::Serve)
    }
}

/// The Elasticsearch store when one is configured, else the embedded one.
fn open_store(settings: &Settings) -> Result<Store, RunError> {
    Ok(match &settings.stores.elasticsearch {
        Some(es) => Store::Elasticsearch(Arc::new(ElasticStore::new(es.clone())?)),
        None => Store::Embedded(EmbeddedStore::open_with(
            &settings.data_dir,
            &settings.stores.embedded,
        )?),
    })
}

/// The notifiers `[collector.alerts]` names, made once.
fn notifiers(
    alerts: &crate::alerts::config::AlertSettings,
) -> Result<Vec<Arc<crate::alerts::notify::Notifier>>, RunError> {
    use crate::alerts::notify::Notifier;
    let mut notifiers = Vec::new();
    for hook in &alerts.webhooks {
        notifiers.push(Arc::new(Notifier::webhook(hook.clone())?));
    }
    if let Some(irc) = &alerts.irc {
        notifiers.push(Arc::new(Notifier::Irc(crate::alerts::irc::Irc::start(
            irc.clone(),
        ))));
    }
    if let Some(amqp) = &alerts.amqp {
        notifiers.push(Arc::new(Notifier::amqp(amqp.clone())));
    }
    Ok(notifiers)
}

/// Who may send and search: the configured tokens, and the collector's own read token
/// (made on first start) for `picket-collector search`.
fn access(
    settings: &Settings,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Result<Arc<Access>, RunError> {
    let read_token = crate::http::auth::local_read_token(&settings.data_dir).map_err(|e| {
        RunError::ReadToken(
            settings.data_dir.join(crate::http::auth::READ_TOKEN_FILE),
            e,
        )
    })?;
    let mut readers = crate::http::auth::Tokens::default();
    readers.add(read_token.as_bytes(), crate::http::auth::Role::Reader);
    Ok(Arc::new(Access::new(
        grants(&settings.http),
        readers,
        Arc::clone(metrics),
        crate::console::sessions::Sessions::new(
            settings.console.session_idle,
            settings.console.session_max,
        ),
    )))
}

/// What `[collector.http]` grants (tokens, users, open reads).
fn grants(http: &crate::http::config::HttpSettings) -> crate::http::auth::Grants {
    crate::http::auth::Grants {
        tokens: http.tokens.clone(),
        users: http.users.clone(),
        open_reads: http.open_reads,
    }
}

/// Says where it listens, what guards the API and where events go.
fn log_start(settings: &Settings, address: SocketAddr, store: &Store) {
    let http = &settings.http;
    let scheme = if http.tls.is_some() { "https" } else { "http" };
    info!(
        url = %format!("{scheme}://{address}"),
        data_dir = %settings.data_dir.display(),
        client_certificates = http.tls.is_some() && http.client_certificates,
        bearer_tokens = http.tokens.is_some(),
        basic_users = http.users.is_some(),
        open_reads = http.open_reads,
        "Collector listening for events and searches (POST /events, /nxlog, /cef, /custom/<application>, /_bulk; GET /api/events, /metrics, /status)."
    );
    let retention_days = settings.stores.retention_days;
    match store {
        Store::Elasticsearch(es) => {
            info!(nodes = %es.urls(), retention_days, "Storing events in Elasticsearch.")
        }
        Store::Embedded(_) => {
            info!(path = %settings.data_dir.join("events").display(), retention_days, "Storing events in the embedded store.")
        }
    }
    if http.tls.is_none()
        && http.tokens.is_none()
        && http.users.is_none()
        && !address.ip().is_loopback()
    {
        warn!(address = %address, "The API is open to anyone who can reach this address: no TLS client certificates, bearer tokens or users are configured.");
    }
    if settings.alerts.rules_dir.is_none() {
        info!(
            "No alert rules folder (collector.alerts.rules_dir, default /etc/picket/rules): alerts are off."
        );
    }
}

/// What SIGHUP reloads.
struct Reloader {
    /// Reads the configuration again (none: only the rules reload).
    load: Option<Reload>,
    /// Wakes the scheduler to read the rules folder again (alerts on).
    rules: Option<Arc<tokio::sync::Notify>>,
    access: Arc<Access>,
    /// HTTPS's settings, when it is on.
    tls: Option<TlsState>,
}

impl Reloader {
    /// Applies a configuration read again: credentials and TLS material; what else
    /// changed needs a restart.
    fn apply(&self, new: &Settings) {
        self.access.replace(grants(&new.http));
        let tls = match (&self.tls, &new.http.tls) {
            (Some(state), Some(config)) => {
                state.replace(Arc::clone(config), new.http.client_certificates);
                "certificate, key and client CA reloaded"
            }
            (None, None) => "plain HTTP",
            (Some(_), None) | (None, Some(_)) => {
                warn!(
                    "HTTPS was turned on or off in collector.http: that applies at restart; the listener stays as it is."
                );
                "unchanged (restart to turn HTTPS on or off)"
            }
        };
        info!(
            tls,
            bearer_tokens = new.http.tokens.is_some(),
            basic_users = new.http.users.is_some(),
            open_reads = new.http.open_reads,
            "Configuration reloaded (SIGHUP): TLS material, tokens and users apply to new connections and requests; other settings (listen address, stores, AMQP, limits) apply at restart."
        );
    }
}

/// SIGHUP (`systemctl reload`), the one place it is received: the configuration is
/// read again ([`Reloader::apply`]) and the alert rules reload. It must never end the
/// process, as its default action would.
fn on_sighup(mut reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(e) => {
            error!(error = %e, "Cannot listen for SIGHUP; reloading needs a restart.");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Some(load) = reloader.load.as_mut() {
                // Reading certificates and token files is blocking I/O, and brief.
                match tokio::task::block_in_place(load) {
                    Ok(new) => reloader.apply(&new),
                    Err(e) => error!("Reload refused, the running configuration stays: {e}"),
                }
            }
            match &reloader.rules {
                Some(rules) => rules.notify_one(),
                None => info!("SIGHUP: alerts are off, no rules to reload."),
            }
        }
    });
}

/// The store's upkeep until `stop`: Elasticsearch's templates and daily aliases every
/// five minutes (the first at once), retention every hour (the first at once).
async fn upkeep(
    store: Arc<Store>,
    retention_days: u32,
    future: chrono::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        store.maintain().await;
        let due = last_prune.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600));
        if due {
            last_prune = Some(std::time::Instant::now());
            match store.prune(retention_days, future).await {
                Ok(deleted) if !deleted.is_empty() => {
                    info!(retention_days, deleted = %deleted.join(", "), "Retention: deleted old days.")
                }
                Ok(_) => {}
                Err(e) => {
                    error!(error = %e, retention_days, "Retention failed; retried in an hour.")
                }
            }
        }
    }
}

/// The listening socket, with a deep accept queue: a fleet reconnecting at once (1,000
/// agents after a collector restart) overflowed tokio's default of 1,024 while the
/// runtime was busy, and the kernel's SYN cookies then reset some of them. The kernel
/// caps the backlog at `net.core.somaxconn`.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connections the kernel may hold for us before we accept them.
const LISTEN_BACKLOG: u32 = 8192;

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
