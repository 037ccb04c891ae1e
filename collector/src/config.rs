//! The collector's configuration: the `[collector]` table of the config file, mirrored
//! by `config.example.toml`. Raw values are read with serde (unknown keys are errors)
//! and checked by [`CollectorConfig::build`] into runtime values that later code does
//! not re-check.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub use crate::ingest::amqp::AmqpSettings;
use crate::ingest::auth::Tokens;

/// Why a configuration could not be used. The binary exits with 78 (`EX_CONFIG`).
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: key {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// The whole file. The agent's table may sit beside ours (one file for a demo or a
/// small site); the collector ignores it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The collector's settings.
    #[serde(default)]
    pub collector: CollectorConfig,
    /// The agent's settings, read by `picket-agent`.
    #[serde(default)]
    pub agent: Option<toml::Value>,
}

/// `[collector]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Where the collector keeps its state (the embedded store's indices).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `[collector.http]`: the HTTP ingest and search API.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[collector.stores]`: where events are stored.
    #[serde(default)]
    pub stores: StoresConfig,
    /// `[collector.amqp]`: consume MozDef's RabbitMQ queue (off when absent).
    #[serde(default)]
    pub amqp: Option<AmqpConfig>,
    /// `[collector.alerts]`: scheduled alert rules and notifications.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Events whose time is more than this many days before their reception are timed
    /// at reception, the time they carried kept in `details.timestamperror` (and
    /// counted in `picket_events_retimed_total`): a batch cannot make the store open
    /// an index per day of the last century. 0: no limit but the store's (1677–2262).
    #[serde(default = "default_max_event_age_days")]
    pub max_event_age_days: u32,
    /// The same for times ahead of reception, in hours (clock skew, a wrong time zone).
    #[serde(default = "default_max_event_future_hours")]
    pub max_event_future_hours: u32,
}

fn default_max_event_age_days() -> u32 {
    365
}
fn default_max_event_future_hours() -> u32 {
    24
}

/// `[collector.alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Run the rules (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The rules folder (`*.toml`, MozDef generic `*.json`); default
    /// `/etc/picket/rules`, where the package installs the shipped detections. A
    /// missing default folder turns alerts off with a log line; a missing configured
    /// one is an error.
    #[serde(default)]
    pub rules_dir: Option<PathBuf>,
    /// `[[collector.alerts.webhook]]`: where alerts are POSTed.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// `[collector.alerts.amqp]`: publish alerts for MozDef's bots.
    #[serde(default)]
    pub amqp: Option<AlertAmqpConfig>,
    /// `[collector.alerts.irc]`: say alerts in an IRC channel.
    #[serde(default)]
    pub irc: Option<IrcConfig>,
}

/// `[collector.alerts.irc]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// `host:port` (6697 is the usual TLS port).
    pub server: String,
    /// TLS (default true).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// PEM CA certificates for the server's certificate (default: system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_irc_nick")]
    pub nick: String,
    /// The channel alerts go to unless their rule names one (`channel`).
    pub channel: String,
    /// File whose first line is the server password, when it wants one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}
fn default_irc_nick() -> String {
    "picket".into()
}

/// `[collector.alerts.amqp]`: alerts published as `{_id, _index, _source}` to a topic
/// exchange, as MozDef does, so its bots keep working.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAmqpConfig {
    /// `amqp://` or `amqps://host:port/vhost`, without credentials.
    pub url: String,
    /// The topic exchange (declared durable).
    #[serde(default = "default_alerts_exchange")]
    pub exchange: String,
    #[serde(default = "default_alerts_routing_key")]
    pub routing_key: String,
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the password (env `PICKET_COLLECTOR_AMQP_PASSWORD_FILE`
    /// overrides, as for `[collector.amqp]`).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_plain")]
    pub auth: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_alerts_exchange() -> String {
    "alerts".into()
}
fn default_alerts_routing_key() -> String {
    "mozdef.alert".into()
}

/// `[[collector.alerts.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://...`
    pub url: String,
    /// `json` (the alert as `{_id, _index, _source}`) or `slack` (`{"text": ...}`).
    #[serde(default = "default_webhook_format")]
    pub format: String,
    /// Least severity sent (default `DEBUG`: everything).
    #[serde(default = "default_min_severity")]
    pub min_severity: String,
}

fn default_webhook_format() -> String {
    "json".into()
}
fn default_min_severity() -> String {
    "DEBUG".into()
}

/// The checked `[collector.alerts]`.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// The rules folder, when alerts run.
    pub rules_dir: Option<PathBuf>,
    pub webhooks: Vec<crate::alerts::notify::WebhookSettings>,
    /// The broker connection (its queue fields unused), exchange and routing key.
    pub amqp: Option<AmqpSettings>,
    pub irc: Option<crate::alerts::irc::IrcSettings>,
}

impl AlertsConfig {
    fn build(
        &self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<AlertSettings, ConfigError> {
        let rules_dir = if self.enabled == Some(false) {
            None
        } else {
            match &self.rules_dir {
                Some(dir) => {
                    if !dir.is_dir() {
                        return Err(invalid(
                            "collector.alerts.rules_dir",
                            format!("{} is not a folder", dir.display()),
                        ));
                    }
                    Some(dir.clone())
                }
                None => {
                    let default = PathBuf::from("/etc/picket/rules");
                    default.is_dir().then_some(default)
                }
            }
        };
        if let Some(dir) = &rules_dir {
            crate::alerts::rules::load_dir(dir)
                .map_err(|e| invalid("collector.alerts.rules_dir", e.to_string()))?;
        }
        let mut webhooks = Vec::new();
        for hook in &self.webhook {
            let url = reqwest::Url::parse(&hook.url).map_err(|e| {
                invalid(
                    "collector.alerts.webhook.url",
                    format!("{:?}: {e}", hook.url),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    "collector.alerts.webhook.url",
                    format!("{url} must be http:// or https://"),
                ));
            }
            let slack = match hook.format.as_str() {
                "json" => false,
                "slack" => true,
                other => {
                    return Err(invalid(
                        "collector.alerts.webhook.format",
                        format!("{other:?} is not json or slack"),
                    ));
                }
            };
            let min_severity =
                crate::alerts::severity_named(&hook.min_severity).ok_or_else(|| {
                    invalid(
                        "collector.alerts.webhook.min_severity",
                        format!("{:?} is not a severity", hook.min_severity),
                    )
                })?;
            webhooks.push(crate::alerts::notify::WebhookSettings {
                url,
                slack,
                min_severity,
            });
        }
        let amqp = match &self.amqp {
            Some(a) => {
                let as_consumer = AmqpConfig {
                    url: a.url.clone(),
                    queue: "unused".into(),
                    exchange: a.exchange.clone(),
                    routing_key: a.routing_key.clone(),
                    dead_letter_queue: "unused".into(),
                    prefetch: 1,
                    username: a.username.clone(),
                    password_file: a.password_file.clone(),
                    auth: a.auth.clone(),
                    ca_file: a.ca_file.clone(),
                    client_cert_file: a.client_cert_file.clone(),
                    client_key_file: a.client_key_file.clone(),
                };
                let renamed = |key: &'static str, message: String| {
                    let key = match key {
                        "collector.amqp.url" => "collector.alerts.amqp.url",
                        "collector.amqp.exchange" => "collector.alerts.amqp.exchange",
                        "collector.amqp.password_file" => "collector.alerts.amqp.password_file",
                        "collector.amqp.auth" => "collector.alerts.amqp.auth",
                        "collector.amqp.ca_file" => "collector.alerts.amqp.ca_file",
                        "collector.amqp.client_cert_file" => {
                            "collector.alerts.amqp.client_cert_file"
                        }
                        "collector.amqp.client_key_file" => "collector.alerts.amqp.client_key_file",
                        other => other,
                    };
                    invalid(key, message)
                };
                Some(as_consumer.build(&renamed)?)
            }
            None => None,
        };
        let irc = match &self.irc {
            Some(irc) => {
                let (host, port) = irc
                    .server
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                    .filter(|(h, _)| !h.is_empty())
                    .ok_or_else(|| {
                        invalid(
                            "collector.alerts.irc.server",
                            format!("{:?} is not host:port", irc.server),
                        )
                    })?;
                let valid_name = |n: &str| {
                    !n.is_empty()
                        && n.len() <= 50
                        && !n.chars().any(|c| c.is_whitespace() || c == ',' || c == ':')
                };
                if !(irc.channel.starts_with('#') || irc.channel.starts_with('&'))
                    || !valid_name(&irc.channel)
                {
                    return Err(invalid(
                        "collector.alerts.irc.channel",
                        format!("{:?} is not a channel name (#name)", irc.channel),
                    ));
                }
                if !valid_name(&irc.nick) || irc.nick.starts_with('#') {
                    return Err(invalid(
                        "collector.alerts.irc.nick",
                        format!("{:?} is not a nick", irc.nick),
                    ));
                }
                let ca_pem = match &irc.ca_file {
                    Some(path) => {
                        crate::tls::read_certificates(path)
                            .map_err(|e| invalid("collector.alerts.irc.ca_file", e))?;
                        Some(std::fs::read(path).map_err(|e| {
                            invalid(
                                "collector.alerts.irc.ca_file",
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })?)
                    }
                    None => None,
                };
                let password = irc
                    .password_file
                    .as_ref()
                    .map(|p| read_secret("collector.alerts.irc.password_file", p, invalid))
                    .transpose()?;
                Some(crate::alerts::irc::IrcSettings {
                    host,
                    port,
                    tls: irc.tls,
                    ca_pem,
                    nick: irc.nick.clone(),
                    channel: irc.channel.clone(),
                    password,
                })
            }
            None => None,
        };
        Ok(AlertSettings {
            rules_dir,
            webhooks,
            amqp,
            irc,
        })
    }
}

/// `[collector.amqp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://` or `amqps://host:port/vhost`, without credentials.
    pub url: String,
    /// The queue consumed (declared durable).
    #[serde(default = "default_eventtask")]
    pub queue: String,
    /// The exchange the queue is bound to (declared direct and durable).
    #[serde(default = "default_eventtask")]
    pub exchange: String,
    /// The binding's routing key.
    #[serde(default = "default_eventtask")]
    pub routing_key: String,
    /// Where messages that are not events go, with the reason in a header (declared
    /// durable).
    #[serde(default = "default_dead_letter_queue")]
    pub dead_letter_queue: String,
    /// Most unacknowledged messages held at once; they are stored as one batch.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// User name for PLAIN login.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the password (env `PICKET_COLLECTOR_AMQP_PASSWORD_FILE`
    /// overrides).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `plain` or `external` (the client certificate's name).
    #[serde(default = "default_plain")]
    pub auth: String,
    /// PEM CA certificates the broker's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_eventtask() -> String {
    "eventtask".to_string()
}
fn default_dead_letter_queue() -> String {
    "eventtask.invalid".to_string()
}
fn default_prefetch() -> u16 {
    1000
}
fn default_plain() -> String {
    "plain".to_string()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/picket-collector")
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            data_dir: default_data_dir(),
            http: HttpConfig::default(),
            stores: StoresConfig::default(),
            amqp: None,
            alerts: AlertsConfig::default(),
            max_event_age_days: default_max_event_age_days(),
            max_event_future_hours: default_max_event_future_hours(),
        }
    }
}

/// `[collector.http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on. MozDef's loginput uses port 8080. The default
    /// listens on loopback only: set client certificates or tokens before opening it up.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest single event accepted, in bytes (its JSON text); larger ones are refused
    /// by position (413 when a request holds nothing else).
    #[serde(default = "default_max_event_bytes")]
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
    /// Let anyone who reaches the API search events (the behaviour before roles). Off
    /// by default: searches need a `reader` token, or the collector's own read token
    /// in `<data_dir>/read.token`, which `picket-collector search` uses.
    #[serde(default)]
    pub open_reads: bool,
    /// Longest a request may take, reading its body included, in seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Most requests handled at once; more are answered 503 with `Retry-After`.
    /// Health checks (`/status`, `/test`) and `/metrics` are not counted.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Most events (items) one request may hold; more get 413.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Longest a client may take to send a request's headers, in seconds; then the
    /// connection is closed.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// A keep-alive connection with no request for this long is closed, in seconds.
    #[serde(default = "default_idle_timeout_secs")]
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
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
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
fn default_max_concurrent_requests() -> usize {
    256
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
            open_reads: false,
            request_timeout_secs: default_request_timeout_secs(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_events_per_request: default_max_events_per_request(),
            header_timeout_secs: default_header_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            min_body_bytes_per_sec: default_min_body_bytes_per_sec(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

/// `[collector.stores]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoresConfig {
    /// `[collector.stores.embedded]`: the built-in store, used when no other is set.
    #[serde(default)]
    pub embedded: EmbeddedStoreConfig,
    /// `[collector.stores.elasticsearch]`: index into an Elasticsearch or OpenSearch
    /// cluster instead of the embedded store.
    #[serde(default)]
    pub elasticsearch: Option<ElasticsearchConfig>,
    /// Days of events kept: older days (embedded day indices, Elasticsearch
    /// `events-YYYYMMDD`) are deleted once an hour. 0 keeps everything.
    #[serde(default)]
    pub retention_days: u32,
}

/// `[collector.stores.elasticsearch]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Node URLs (`https://es1.example.com:9200`), tried in turn when one fails.
    pub urls: Vec<String>,
    /// User for basic authentication (with `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the password (env
    /// `PICKET_COLLECTOR_ELASTICSEARCH_PASSWORD_FILE` overrides).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// File whose first line is an API key's `encoded` value (env
    /// `PICKET_COLLECTOR_ELASTICSEARCH_API_KEY_FILE` overrides).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// PEM CA certificates the nodes' certificates must chain to (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Longest one request to the cluster may take, in seconds.
    #[serde(default = "default_es_timeout_secs")]
    pub timeout_secs: u64,
    /// How long documents the cluster refuses for now (429, 5xx, down) are retried
    /// before the sender is told to retry later, in seconds.
    #[serde(default = "default_es_retry_secs")]
    pub retry_secs: u64,
    /// Largest `_bulk` request body, in bytes.
    #[serde(default = "default_es_bulk_max_bytes")]
    pub bulk_max_bytes: usize,
}

fn default_es_timeout_secs() -> u64 {
    30
}
fn default_es_retry_secs() -> u64 {
    30
}
fn default_es_bulk_max_bytes() -> usize {
    10 * 1024 * 1024
}

/// `[collector.stores.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedStoreConfig {
    /// Shortest time between two commits, in milliseconds; requests arriving meanwhile
    /// share the next commit. Ingest answers only after the commit that holds its
    /// events, so this bounds the added latency and, for one sender sending batch after
    /// batch, the rate (a batch per interval); larger values mean fewer, bigger commits.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Indexing memory per open daily index, in bytes (tantivy's minimum is 15 MB).
    #[serde(default = "default_writer_memory_bytes")]
    pub writer_memory_bytes: usize,
}

fn default_commit_interval_ms() -> u64 {
    100
}
fn default_writer_memory_bytes() -> usize {
    20_000_000
}

impl Default for EmbeddedStoreConfig {
    fn default() -> Self {
        EmbeddedStoreConfig {
            commit_interval_ms: default_commit_interval_ms(),
            writer_memory_bytes: default_writer_memory_bytes(),
        }
    }
}

/// The checked configuration the collector runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
    /// HTTPS, when configured (certificates already loaded and checked).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Client certificates are required (mutual TLS).
    pub client_certificates: bool,
    /// Bearer tokens, when configured.
    pub tokens: Option<Arc<Tokens>>,
    /// Searches without a `reader` token are allowed.
    pub open_reads: bool,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_events_per_request: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub min_body_bytes_per_sec: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_response_bytes: usize,
    /// How far from its reception an event's time may be before it is retimed.
    pub time_window: mozdef::normalize::TimeWindow,
    pub commit_interval: Duration,
    pub writer_memory_bytes: usize,
    pub amqp: Option<AmqpSettings>,
    /// The Elasticsearch store, when configured (else the embedded one).
    pub elasticsearch: Option<crate::stores::elasticsearch::ElasticSettings>,
    /// Days kept; 0 keeps everything.
    pub retention_days: u32,
    pub alerts: AlertSettings,
}

impl ConfigFile {
    /// Reads and parses a config file (no checks beyond the syntax and key names).
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

impl CollectorConfig {
    /// Checks every value; `path` names the file in errors.
    pub fn build(&self, path: &Path) -> Result<Settings, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let listen: SocketAddr = self.http.listen.parse().map_err(|e| {
            invalid(
                "collector.http.listen",
                format!("{:?} is not an address:port ({e})", self.http.listen),
            )
        })?;
        if self.http.max_body_bytes < 1024 {
            return Err(invalid(
                "collector.http.max_body_bytes",
                "must be at least 1024".into(),
            ));
        }
        if self.http.max_event_bytes < 256 || self.http.max_event_bytes > self.http.max_body_bytes {
            return Err(invalid(
                "collector.http.max_event_bytes",
                "must be at least 256 and at most max_body_bytes".into(),
            ));
        }
        let http = &self.http;
        let tls = match (&http.tls_cert_file, &http.tls_key_file) {
            (Some(cert), Some(key)) => Some(
                crate::tls::server_config(cert, key, http.client_ca_file.as_deref())
                    .map_err(|(key, message)| invalid(key, message))?,
            ),
            (None, None) if http.client_ca_file.is_some() => {
                return Err(invalid(
                    "collector.http.client_ca_file",
                    "needs tls_cert_file and tls_key_file (client certificates need TLS)".into(),
                ));
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "collector.http.tls_key_file",
                    "must be set with tls_cert_file".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "collector.http.tls_cert_file",
                    "must be set with tls_key_file".into(),
                ));
            }
        };
        let tokens = match &http.tokens_file {
            Some(file) => Some(Arc::new(
                Tokens::load(file).map_err(|e| invalid("collector.http.tokens_file", e))?,
            )),
            None => None,
        };
        if http.request_timeout_secs == 0 {
            return Err(invalid(
                "collector.http.request_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        for (key, value) in [
            (
                "collector.http.max_concurrent_requests",
                http.max_concurrent_requests as u64,
            ),
            (
                "collector.http.max_events_per_request",
                http.max_events_per_request as u64,
            ),
            (
                "collector.http.header_timeout_secs",
                http.header_timeout_secs,
            ),
            ("collector.http.idle_timeout_secs", http.idle_timeout_secs),
            (
                "collector.http.max_connections",
                http.max_connections as u64,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if http.max_response_bytes < 64 * 1024 {
            return Err(invalid(
                "collector.http.max_response_bytes",
                "must be at least 65536".into(),
            ));
        }
        let embedded = &self.stores.embedded;
        if !(10..=60_000).contains(&embedded.commit_interval_ms) {
            return Err(invalid(
                "collector.stores.embedded.commit_interval_ms",
                "must be between 10 and 60000".into(),
            ));
        }
        if embedded.writer_memory_bytes < 15_000_000 {
            return Err(invalid(
                "collector.stores.embedded.writer_memory_bytes",
                "must be at least 15000000 (tantivy's minimum)".into(),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("collector.data_dir", "must not be empty".into()));
        }
        let amqp = self.amqp.as_ref().map(|a| a.build(&invalid)).transpose()?;
        let elasticsearch = self
            .stores
            .elasticsearch
            .as_ref()
            .map(|es| es.build(&self.data_dir, &invalid))
            .transpose()?;
        Ok(Settings {
            data_dir: self.data_dir.clone(),
            listen,
            max_body_bytes: self.http.max_body_bytes,
            max_event_bytes: self.http.max_event_bytes,
            tls,
            client_certificates: http.client_ca_file.is_some(),
            tokens,
            open_reads: http.open_reads,
            request_timeout: Duration::from_secs(http.request_timeout_secs),
            max_concurrent_requests: http.max_concurrent_requests,
            max_events_per_request: http.max_events_per_request,
            header_timeout: Duration::from_secs(http.header_timeout_secs),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            min_body_bytes_per_sec: http.min_body_bytes_per_sec,
            max_connections: http.max_connections,
            max_connections_per_address: http.max_connections_per_address,
            max_response_bytes: http.max_response_bytes,
            time_window: mozdef::normalize::TimeWindow {
                max_age: (self.max_event_age_days > 0)
                    .then(|| chrono::Duration::days(i64::from(self.max_event_age_days))),
                max_future: chrono::Duration::hours(i64::from(self.max_event_future_hours)),
            },
            commit_interval: Duration::from_millis(embedded.commit_interval_ms),
            writer_memory_bytes: embedded.writer_memory_bytes,
            amqp,
            elasticsearch,
            retention_days: self.stores.retention_days,
            alerts: self.alerts.build(&invalid)?,
        })
    }
}

/// The first line of a secret file that is not blank or a `#` comment.
fn read_secret(
    key: &'static str,
    path: &Path,
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .ok_or_else(|| invalid(key, format!("{} holds no secret", path.display())))
}

/// A secret file's path: the environment variable's when set, else the config's.
fn secret_path(env: &str, configured: &Option<PathBuf>) -> Option<PathBuf> {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.clone())
}

impl ElasticsearchConfig {
    fn build(
        &self,
        data_dir: &Path,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<crate::stores::elasticsearch::ElasticSettings, ConfigError> {
        use crate::stores::elasticsearch::{Credentials, ElasticSettings};
        const URLS: &str = "collector.stores.elasticsearch.urls";
        if self.urls.is_empty() {
            return Err(invalid(URLS, "must name at least one node URL".into()));
        }
        let mut urls = Vec::with_capacity(self.urls.len());
        for text in &self.urls {
            let mut url =
                reqwest::Url::parse(text).map_err(|e| invalid(URLS, format!("{text:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    URLS,
                    format!("{text:?} must be http:// or https://"),
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid(
                    URLS,
                    format!(
                        "{text:?} must not hold credentials: set username and password_file, or api_key_file"
                    ),
                ));
            }
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            urls.push(url);
        }
        let password = secret_path(
            "PICKET_COLLECTOR_ELASTICSEARCH_PASSWORD_FILE",
            &self.password_file,
        )
        .map(|p| read_secret("collector.stores.elasticsearch.password_file", &p, invalid))
        .transpose()?;
        let api_key = secret_path(
            "PICKET_COLLECTOR_ELASTICSEARCH_API_KEY_FILE",
            &self.api_key_file,
        )
        .map(|p| read_secret("collector.stores.elasticsearch.api_key_file", &p, invalid))
        .transpose()?;
        let credentials = match (&self.username, password, api_key) {
            (None, None, None) => None,
            (Some(username), Some(password), None) => Some(Credentials::Basic {
                username: username.clone(),
                password,
            }),
            (None, None, Some(key)) => Some(Credentials::ApiKey(key)),
            (_, _, Some(_)) => {
                return Err(invalid(
                    "collector.stores.elasticsearch.api_key_file",
                    "use either an API key or username and password_file, not both".into(),
                ));
            }
            _ => {
                return Err(invalid(
                    "collector.stores.elasticsearch.password_file",
                    "username and password_file go together".into(),
                ));
            }
        };
        if credentials.is_some() {
            for url in &urls {
                let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if url.scheme() == "http" && !loopback {
                    return Err(invalid(
                        URLS,
                        format!(
                            "{url} is plain http: credentials would cross the network in clear (use https://)"
                        ),
                    ));
                }
            }
        }
        let ca_pem = match &self.ca_file {
            Some(path) => {
                crate::tls::read_certificates(path)
                    .map_err(|e| invalid("collector.stores.elasticsearch.ca_file", e))?;
                Some(std::fs::read(path).map_err(|e| {
                    invalid(
                        "collector.stores.elasticsearch.ca_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?)
            }
            None => None,
        };
        if self.timeout_secs == 0 {
            return Err(invalid(
                "collector.stores.elasticsearch.timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if self.bulk_max_bytes < 64 * 1024 {
            return Err(invalid(
                "collector.stores.elasticsearch.bulk_max_bytes",
                "must be at least 65536".into(),
            ));
        }
        Ok(ElasticSettings {
            urls,
            credentials,
            ca_pem,
            timeout: Duration::from_secs(self.timeout_secs),
            retry_for: Duration::from_secs(self.retry_secs),
            bulk_max_bytes: self.bulk_max_bytes,
            dead_letter_path: data_dir.join("elasticsearch-dead-letter.ndjson"),
        })
    }
}

impl AmqpConfig {
    fn build(
        &self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<AmqpSettings, ConfigError> {
        let mut url = reqwest::Url::parse(&self.url)
            .map_err(|e| invalid("collector.amqp.url", format!("{:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(invalid(
                "collector.amqp.url",
                "must be an amqp:// or amqps:// URL".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "collector.amqp.url",
                "must not hold credentials: set username and password_file".into(),
            ));
        }
        for (key, value) in [
            ("collector.amqp.queue", &self.queue),
            ("collector.amqp.exchange", &self.exchange),
            ("collector.amqp.dead_letter_queue", &self.dead_letter_queue),
        ] {
            if value.is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if self.prefetch == 0 {
            return Err(invalid(
                "collector.amqp.prefetch",
                "must be at least 1".into(),
            ));
        }
        let display_url = url.to_string();
        let read = |key: &'static str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
        };
        let ca_pem = match &self.ca_file {
            Some(path) => {
                let pem = read("collector.amqp.ca_file", path)?;
                crate::tls::read_certificates(path)
                    .map_err(|e| invalid("collector.amqp.ca_file", e))?;
                Some(String::from_utf8_lossy(&pem).into_owned())
            }
            None => None,
        };
        let identity = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some((
                read("collector.amqp.client_cert_file", cert)?,
                read("collector.amqp.client_key_file", key)?,
            )),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "collector.amqp.client_key_file",
                    "client_cert_file and client_key_file go together".into(),
                ));
            }
        };
        let password_path = secret_path("PICKET_COLLECTOR_AMQP_PASSWORD_FILE", &self.password_file);
        let password = match password_path {
            Some(path) => {
                let text = read("collector.amqp.password_file", &path)?;
                let text = String::from_utf8_lossy(&text);
                let line = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                Some(line.unwrap_or("").to_string())
            }
            None => None,
        };
        let mechanism = match self.auth.as_str() {
            "plain" => {
                if self.username.is_some() != password.is_some() {
                    return Err(invalid(
                        "collector.amqp.password_file",
                        "username and password_file go together".into(),
                    ));
                }
                if let (Some(user), Some(password)) = (&self.username, &password) {
                    let _ = url.set_username(user);
                    let _ = url.set_password(Some(password));
                }
                "plain"
            }
            "external" => {
                if identity.is_none() || url.scheme() != "amqps" {
                    return Err(invalid(
                        "collector.amqp.auth",
                        "external needs an amqps:// URL and a client certificate".into(),
                    ));
                }
                "external"
            }
            other => {
                return Err(invalid(
                    "collector.amqp.auth",
                    format!("{other:?} is not plain or external"),
                ));
            }
        };
        url.query_pairs_mut()
            .append_pair("auth_mechanism", mechanism)
            .append_pair("heartbeat", "30")
            .append_pair("connection_timeout", "30000");
        Ok(AmqpSettings {
            uri: url.to_string(),
            display_url,
            queue: self.queue.clone(),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            dead_letter_queue: self.dead_letter_queue.clone(),
            prefetch: self.prefetch,
            ca_pem,
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_builds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
        let file = ConfigFile::load(&path).unwrap();
        assert!(file.agent.is_some(), "the example documents the agent too");
        let settings = file.collector.build(&path).unwrap();
        assert_eq!(settings.listen.port(), 8080);
    }

    #[test]
    fn a_typo_is_refused_with_its_name() {
        let err = toml::from_str::<ConfigFile>("[collector.http]\nlisten_addr = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let file: ConfigFile = toml::from_str("[collector.http]\nlisten = \"nope\"\n").unwrap();
        let err = file
            .collector
            .build(Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("collector.http.listen") && err.contains("c.toml"),
            "{err}"
        );
    }
}
