//! `[collector.http]`: the API's address, TLS, tokens and limits, their defaults, and the
//! checked [`HttpSettings`] the server and the handlers run on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use picket_common::config::{KeyError, at_least_one};
use serde::Deserialize;

use super::auth::Tokens;
use super::elasticsearch::{ElasticsearchConfig, Face};
use super::users::Users;

/// `[collector.http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on. MozDef's loginput uses port 8080. The default
    /// listens on loopback only: set client certificates or tokens before opening it up.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(
        default = "default_max_body_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub max_body_bytes: usize,
    /// Largest single event accepted, in bytes (its JSON text); larger ones are refused
    /// by position (413 when a request holds nothing else).
    #[serde(
        default = "default_max_event_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub max_event_bytes: usize,
    /// PEM certificate chain; with `tls_key_file`, the API speaks HTTPS only.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate it signed
    /// (mutual TLS), and its name is recorded in `details.agentidentity`.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// File of bearer tokens, one a line: `<token> [role]` (`#` comments). Roles:
    /// `shipper` (the default: may only send events), `reader` (may search events and
    /// alerts, read `/metrics`), `analyst` (a reader who may also triage). When set,
    /// every route but `/status` and `/test` needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// File of HTTP Basic users for shippers that cannot send a token (rsyslog's
    /// omelasticsearch, syslog-ng's elasticsearch-http) and of the console's users:
    /// `<user>:<hash> [role]` a line, bcrypt as `htpasswd -nB <user>` or
    /// `picket-collector hash-password` make them, or argon2 (`$argon2id$…`); same
    /// roles as the tokens. When set, sending needs a token or a user.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Let anyone who reaches the API search events (the behaviour before roles). Off
    /// by default: searches need a `reader` token, or the collector's own read token
    /// in `<data_dir>/read.token`, which `picket-collector search` uses.
    #[serde(default)]
    pub open_reads: bool,
    /// Longest a request may take, reading its body included, in seconds.
    #[serde(
        default = "default_request_timeout_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub request_timeout_secs: u64,
    /// Most requests handled at once; more wait for a slot (their bodies unread)
    /// up to `queue_timeout_ms`, then are answered 503 with `Retry-After`.
    /// Health checks (`/status`, `/test`) and `/metrics` are not counted.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Longest a request over `max_concurrent_requests` waits for a slot, in
    /// milliseconds. 0: refused at once.
    #[serde(
        default = "default_queue_timeout_ms",
        deserialize_with = "picket_common::units::millis"
    )]
    pub queue_timeout_ms: u64,
    /// Most events (items) one request may hold; more get 413.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Longest a client may take to send a request's headers, in seconds; then the
    /// connection is closed.
    #[serde(
        default = "default_header_timeout_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub header_timeout_secs: u64,
    /// A keep-alive connection with no request for this long is closed, in seconds.
    #[serde(
        default = "default_idle_timeout_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub idle_timeout_secs: u64,
    /// Slowest a request body may arrive, in bytes per second, after its first five
    /// seconds; slower gets 408 (a trickling body must not hold a request slot for the
    /// whole `request_timeout_secs`). 0: no minimum.
    #[serde(default = "default_min_body_bytes_per_sec")]
    pub min_body_bytes_per_sec: u64,
    /// Most connections open at once; more are closed as they are accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections open at once from one address. 0: no limit (behind a load
    /// balancer or NAT that shows one address for many senders).
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Largest search answer, in bytes of events: a search stops adding events once
    /// they reach it and says `"truncated": true`.
    #[serde(
        default = "default_max_response_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub max_response_bytes: usize,
    /// `[collector.http.elasticsearch]`: what the Elasticsearch face says of itself.
    #[serde(default)]
    pub elasticsearch: ElasticsearchConfig,
}

fn default_max_events_per_request() -> usize {
    100_000
}
fn default_header_timeout_secs() -> u64 {
    10
}
fn default_idle_timeout_secs() -> u64 {
    60
}
fn default_min_body_bytes_per_sec() -> u64 {
    1024
}
fn default_max_connections() -> usize {
    8192
}
fn default_max_connections_per_address() -> usize {
    256
}
fn default_max_response_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_string()
}
fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_max_event_bytes() -> usize {
    1024 * 1024
}
fn default_request_timeout_secs() -> u64 {
    60
}
/// 64: the work is CPU-bound, so more at once buys no speed, only memory (each
/// request holds its parsed events); the rest wait unread in their sockets.
fn default_max_concurrent_requests() -> usize {
    64
}
fn default_queue_timeout_ms() -> u64 {
    5_000
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            max_event_bytes: default_max_event_bytes(),
            tls_cert_file: None,
            tls_key_file: None,
            client_ca_file: None,
            tokens_file: None,
            users_file: None,
            open_reads: false,
            request_timeout_secs: default_request_timeout_secs(),
            max_concurrent_requests: default_max_concurrent_requests(),
            queue_timeout_ms: default_queue_timeout_ms(),
            max_events_per_request: default_max_events_per_request(),
            header_timeout_secs: default_header_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            min_body_bytes_per_sec: default_min_body_bytes_per_sec(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_response_bytes: default_max_response_bytes(),
            elasticsearch: ElasticsearchConfig::default(),
        }
    }
}

/// The checked `[collector.http]`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
    /// HTTPS, when configured (certificates already loaded and checked).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Client certificates are required (mutual TLS).
    pub client_certificates: bool,
    /// Bearer tokens, when configured.
    pub tokens: Option<Arc<Tokens>>,
    /// HTTP Basic users, when configured.
    pub users: Option<Arc<Users>>,
    /// Searches without a `reader` token are allowed.
    pub open_reads: bool,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub queue_timeout: Duration,
    pub max_events_per_request: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub min_body_bytes_per_sec: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_response_bytes: usize,
    pub elasticsearch: Arc<Face>,
}

impl HttpConfig {
    /// Checks every key, loads the certificates and the tokens file.
    pub fn build(&self) -> Result<HttpSettings, KeyError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            KeyError::new(
                "collector.http.listen",
                format!("{:?} is not an address:port ({e})", self.listen),
            )
        })?;
        if self.max_body_bytes < 1024 {
            return Err(KeyError::new(
                "collector.http.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.max_event_bytes < 256 || self.max_event_bytes > self.max_body_bytes {
            return Err(KeyError::new(
                "collector.http.max_event_bytes",
                "must be at least 256 and at most max_body_bytes",
            ));
        }
        let tls = self.tls()?;
        let tokens = match &self.tokens_file {
            Some(file) => {
                Some(Arc::new(Tokens::load(file).map_err(|e| {
                    KeyError::new("collector.http.tokens_file", e.to_string())
                })?))
            }
            None => None,
        };
        let users = match &self.users_file {
            Some(file) => {
                Some(Arc::new(Users::load(file).map_err(|e| {
                    KeyError::new("collector.http.users_file", e.to_string())
                })?))
            }
            None => None,
        };
        for (key, value) in [
            (
                "collector.http.request_timeout_secs",
                self.request_timeout_secs,
            ),
            (
                "collector.http.max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            (
                "collector.http.max_events_per_request",
                self.max_events_per_request as u64,
            ),
            (
                "collector.http.header_timeout_secs",
                self.header_timeout_secs,
            ),
            ("collector.http.idle_timeout_secs", self.idle_timeout_secs),
            (
                "collector.http.max_connections",
                self.max_connections as u64,
            ),
        ] {
            at_least_one(key, value)?;
        }
        if self.max_response_bytes < 64 * 1024 {
            return Err(KeyError::new(
                "collector.http.max_response_bytes",
                "must be at least 65536",
            ));
        }
        Ok(HttpSettings {
            listen,
            max_body_bytes: self.max_body_bytes,
            max_event_bytes: self.max_event_bytes,
            tls,
            client_certificates: self.client_ca_file.is_some(),
            tokens,
            users,
            open_reads: self.open_reads,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_concurrent_requests: self.max_concurrent_requests,
            queue_timeout: Duration::from_millis(self.queue_timeout_ms),
            max_events_per_request: self.max_events_per_request,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            min_body_bytes_per_sec: self.min_body_bytes_per_sec,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            max_response_bytes: self.max_response_bytes,
            elasticsearch: Arc::new(self.elasticsearch.build()?),
        })
    }

    /// The server's TLS settings, when `tls_cert_file` and `tls_key_file` are set.
    fn tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, KeyError> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Ok(Some(super::tls::server_config(
                cert,
                key,
                self.client_ca_file.as_deref(),
            )?)),
            (None, None) if self.client_ca_file.is_some() => Err(KeyError::new(
                "collector.http.client_ca_file",
                "needs tls_cert_file and tls_key_file (client certificates need TLS)",
            )),
            (None, None) => Ok(None),
            (Some(_), None) => Err(KeyError::new(
                "collector.http.tls_key_file",
                "must be set with tls_cert_file",
            )),
            (None, Some(_)) => Err(KeyError::new(
                "collector.http.tls_cert_file",
                "must be set with tls_key_file",
            )),
        }
    }
}
