//! The agent's configuration: the `[agent]` table of the config file, mirrored by
//! `config.example.toml`. Raw values are read with serde (unknown keys are errors) and
//! checked by [`AgentConfig::build`] into [`Settings`] that later code does not
//! re-check.
//!
//! Each component's table lives beside the component and is built by it, giving a
//! [`key::KeyError`] that this root turns into a [`ConfigError`] naming the file:
//! `[agent.buffer]` in [`crate::buffer::config`], `[agent.inputs.file]` in
//! [`crate::inputs::file::config`], `[agent.inputs.journald]` in
//! [`crate::inputs::journald::config`]. (The shippers' tables are still here; issue 18
//! moves them next.)

pub mod key;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::datadir::{self, Owners};
use crate::host::{self, HostIdentity};
use crate::parsers::TimeZoneChoice;

pub use crate::buffer::config::{BufferConfig, BufferSettings, WhenFull};
pub use crate::inputs::StartAt;
pub use crate::inputs::file::config::{FileInputConfig, FileInputSettings};
pub use crate::inputs::journald::config::{JournaldInputConfig, JournaldMode, JournaldSettings};

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

/// The whole file; the collector's table may sit beside ours and is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The agent's settings.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The collector's settings, read by `picket-collector`.
    #[serde(default)]
    pub collector: Option<toml::Value>,
    /// The files it was read from (the main file, then its drop-ins).
    #[serde(skip)]
    pub sources: Sources,
}

/// The files a configuration was merged from, and which of them set each key: errors
/// name the file an operator has to edit.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The main file first, then the drop-ins in the order they were merged.
    pub files: Vec<PathBuf>,
    /// Dotted key (`agent.inputs.file.paths`) → index in `files` of the last file
    /// that set it.
    origins: std::collections::HashMap<String, usize>,
}

impl Sources {
    /// One file and nothing else.
    pub fn single(path: &Path) -> Sources {
        Sources {
            files: vec![path.to_path_buf()],
            origins: Default::default(),
        }
    }

    /// The file that set `key` (or the nearest table above it); the main file when
    /// none did (a default).
    pub fn file_for(&self, key: &str) -> &Path {
        let mut key = key;
        loop {
            if let Some(&index) = self.origins.get(key) {
                return &self.files[index];
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => return &self.files[0],
            }
        }
    }

    fn record(&mut self, prefix: &str, table: &toml::Table, index: usize) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let toml::Value::Table(inner) = value {
                self.record(&key, inner, index);
            }
            self.origins.insert(key, index);
        }
    }
}

/// The drop-in folder of a config file: `agent.d/` beside `agent.toml`.
pub fn dropin_dir(path: &Path) -> PathBuf {
    path.with_extension("d")
}

/// Merges `over` into `base`: tables merge key by key, any other value (arrays
/// included) replaces what was there.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (name, value) in over {
        match (base.get_mut(&name), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

/// `[agent]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Host name for lines that name none (default: this host's FQDN).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Stable host id, an input of every event id (default: /etc/machine-id).
    #[serde(default)]
    pub host_id: Option<String>,
    /// Where the state is kept (disk buffer, read positions, dead letters): owned by the
    /// agent's user or root, writable by no one else (see [`crate::datadir`]).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Zone of lines without one: an IANA name, `UTC` or `local`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `[agent.inputs]`.
    #[serde(default)]
    pub inputs: InputsConfig,
    /// `[agent.buffer]`.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// `[agent.shippers]`.
    #[serde(default)]
    pub shippers: ShippersConfig,
    /// Seconds between heartbeat events (0: none).
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
}

fn default_heartbeat_secs() -> u64 {
    60
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/picket-agent")
}
fn default_timezone() -> String {
    "local".to_string()
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            hostname: None,
            host_id: None,
            data_dir: default_data_dir(),
            timezone: default_timezone(),
            inputs: InputsConfig::default(),
            buffer: BufferConfig::default(),
            shippers: ShippersConfig::default(),
            heartbeat_secs: default_heartbeat_secs(),
        }
    }
}

/// `[agent.inputs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsConfig {
    /// `[agent.inputs.file]`.
    #[serde(default)]
    pub file: FileInputConfig,
    /// `[agent.inputs.journald]`.
    #[serde(default)]
    pub journald: JournaldInputConfig,
}

/// `[agent.shippers]`: where events go. Configure one of `http` (the default, to
/// `http://127.0.0.1:8080/events`) or `amqp`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippersConfig {
    /// `[agent.shippers.http]`.
    #[serde(default)]
    pub http: Option<HttpShipperConfig>,
    /// `[agent.shippers.amqp]`.
    #[serde(default)]
    pub amqp: Option<AmqpShipperConfig>,
}

/// `[agent.shippers.http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpShipperConfig {
    /// The collector's ingest URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Several collector URLs, tried in order; on a network error or 5xx the next one
    /// takes over.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Most events per request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Longest wait for one request, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Compress request bodies with gzip (about 10x fewer bytes on the wire for about
    /// 1 µs of CPU per event: worth it on slow or metered links, not on a LAN).
    #[serde(default)]
    pub gzip: bool,
    /// PEM CA certificates the collector's certificate must chain to (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// File holding the bearer token (env `PICKET_AGENT_TOKEN_FILE` overrides).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[agent.shippers.amqp]`: MozDef's RabbitMQ layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpShipperConfig {
    /// `amqp://` or `amqps://host:port/vhost` (no credentials in it: see below).
    pub url: String,
    /// Exchange events are published to (declared direct and durable).
    #[serde(default = "default_eventtask")]
    pub exchange: String,
    /// Routing key of every message.
    #[serde(default = "default_eventtask")]
    pub routing_key: String,
    /// Queue declared durable and bound to the exchange with the routing key, so events
    /// wait in the broker until a consumer takes them; empty: declare none.
    #[serde(default = "default_eventtask")]
    pub queue: String,
    /// User name for PLAIN authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (env `PICKET_AGENT_AMQP_PASSWORD_FILE` overrides).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `plain` (user name and password) or `external` (the client certificate's name).
    #[serde(default)]
    pub auth: AmqpAuth,
    /// PEM CA certificates the broker's certificate must chain to (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Most unconfirmed messages at once (one buffer batch).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Longest wait for the broker to connect or confirm, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// How the AMQP shipper logs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmqpAuth {
    #[default]
    Plain,
    External,
}

fn default_eventtask() -> String {
    "eventtask".to_string()
}
fn default_url() -> String {
    "http://127.0.0.1:8080/events".to_string()
}
fn default_batch_max_events() -> usize {
    1000
}
fn default_timeout_secs() -> u64 {
    30
}

impl Default for HttpShipperConfig {
    fn default() -> Self {
        HttpShipperConfig {
            url: None,
            urls: Vec::new(),
            batch_max_events: default_batch_max_events(),
            timeout_secs: default_timeout_secs(),
            gzip: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            token_file: None,
        }
    }
}

/// TLS material for a shipper, read and checked at load time.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA bundle; `None` = the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and its key, read (and checked) at load time.
    pub client: Option<ClientCertificate>,
}

/// A client certificate chain and its key, PEM.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl ClientCertificate {
    /// The chain followed by the key: what reqwest's `Identity::from_pem` takes.
    pub fn identity_pem(&self) -> Vec<u8> {
        let mut pem = self.cert_pem.clone();
        pem.push(b'\n');
        pem.extend_from_slice(&self.key_pem);
        pem
    }
}

/// The checked HTTP shipper settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub urls: Vec<reqwest::Url>,
    pub gzip: bool,
    pub tls: TlsFiles,
    pub token: Option<String>,
    pub timeout: Duration,
}

/// The checked AMQP shipper settings.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// Without credentials; they are added when connecting.
    pub url: reqwest::Url,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub auth: AmqpAuth,
    pub tls: TlsFiles,
    pub timeout: Duration,
}

/// Which shipper runs.
#[derive(Debug, Clone)]
pub enum ShipperSettings {
    Http(HttpSettings),
    Amqp(AmqpSettings),
}

/// The checked configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: HostIdentity,
    pub data_dir: PathBuf,
    pub timezone: TimeZoneChoice,
    pub file: FileInputSettings,
    /// The journal is read (mode `on`, or `auto` on a host whose log files are
    /// missing).
    pub journald: Option<JournaldSettings>,
    pub buffer: BufferSettings,
    pub shipper: ShipperSettings,
    /// Most events sent in one request (HTTP) or awaiting confirms at once (AMQP).
    pub batch_max_events: usize,
    /// Every this often an `agent heartbeat` event is emitted; `None`: never.
    pub heartbeat: Option<Duration>,
}

type Invalid<'a> = dyn Fn(&'static str, String) -> ConfigError + 'a;

impl ShippersConfig {
    fn build(&self, invalid: &Invalid<'_>) -> Result<(ShipperSettings, usize), ConfigError> {
        match (&self.http, &self.amqp) {
            (Some(_), Some(_)) => Err(invalid(
                "agent.shippers",
                "configure one shipper: [agent.shippers.http] or [agent.shippers.amqp]".into(),
            )),
            (None, Some(amqp)) => amqp.build(invalid),
            (http, None) => http
                .as_ref()
                .unwrap_or(&HttpShipperConfig::default())
                .build(invalid),
        }
    }
}

fn check_batch(key: &'static str, n: usize, invalid: &Invalid<'_>) -> Result<(), ConfigError> {
    if !(1..=100_000).contains(&n) {
        return Err(invalid(key, "must be between 1 and 100000".into()));
    }
    Ok(())
}

fn check_timeout(key: &'static str, secs: u64, invalid: &Invalid<'_>) -> Result<(), ConfigError> {
    if secs == 0 {
        return Err(invalid(key, "must be at least 1".into()));
    }
    Ok(())
}

/// A secret file's path: the environment variable wins over the config (so secrets can
/// live outside configuration management).
fn secret_path(env: &str, configured: &Option<PathBuf>) -> Option<PathBuf> {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.clone())
}

/// Reads a secret: the first line of the file that is neither blank nor a `#` comment,
/// trimmed.
fn read_secret(
    key: &'static str,
    path: &Path,
    invalid: &Invalid<'_>,
) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("")
        .to_string();
    if secret.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}

/// Reads and checks CA and client certificate files.
fn tls_files(
    prefix: &'static [&'static str; 3],
    ca_file: &Option<PathBuf>,
    cert_file: &Option<PathBuf>,
    key_file: &Option<PathBuf>,
    invalid: &Invalid<'_>,
) -> Result<TlsFiles, ConfigError> {
    let [ca_key, cert_key, key_key] = *prefix;
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
    };
    let ca_pem = match ca_file {
        Some(path) => {
            let pem = read(ca_key, path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| invalid(ca_key, format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(invalid(
                    ca_key,
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let client = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let client = ClientCertificate {
                cert_pem: read(cert_key, cert)?,
                key_pem: read(key_key, key)?,
            };
            reqwest::Identity::from_pem(&client.identity_pem()).map_err(|e| {
                invalid(
                    key_key,
                    format!(
                        "{} and {} are not a PEM certificate and key: {e}",
                        cert.display(),
                        key.display()
                    ),
                )
            })?;
            Some(client)
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                key_key,
                "must be set with the client certificate".into(),
            ));
        }
        (None, Some(_)) => return Err(invalid(cert_key, "must be set with the client key".into())),
    };
    Ok(TlsFiles { ca_pem, client })
}

impl HttpShipperConfig {
    fn build(&self, invalid: &Invalid<'_>) -> Result<(ShipperSettings, usize), ConfigError> {
        const KEY: &str = "agent.shippers.http.url";
        let texts: Vec<String> = match (&self.url, self.urls.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(KEY, "set url or urls, not both".into()));
            }
            (Some(url), true) => vec![url.clone()],
            (None, false) => self.urls.clone(),
            (None, true) => vec![default_url()],
        };
        let mut urls = Vec::with_capacity(texts.len());
        for text in &texts {
            let url =
                reqwest::Url::parse(text).map_err(|e| invalid(KEY, format!("{text:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    KEY,
                    format!("{text:?} must be an http:// or https:// URL"),
                ));
            }
            urls.push(url);
        }
        check_batch(
            "agent.shippers.http.batch_max_events",
            self.batch_max_events,
            invalid,
        )?;
        check_timeout(
            "agent.shippers.http.timeout_secs",
            self.timeout_secs,
            invalid,
        )?;
        let tls = tls_files(
            &[
                "agent.shippers.http.ca_file",
                "agent.shippers.http.client_cert_file",
                "agent.shippers.http.client_key_file",
            ],
            &self.ca_file,
            &self.client_cert_file,
            &self.client_key_file,
            invalid,
        )?;
        let token = secret_path("PICKET_AGENT_TOKEN_FILE", &self.token_file)
            .map(|path| read_secret("agent.shippers.http.token_file", &path, invalid))
            .transpose()?;
        if token.is_some() && urls.iter().any(|u| u.scheme() == "http" && !is_loopback(u)) {
            return Err(invalid(
                "agent.shippers.http.token_file",
                "a bearer token would cross the network in clear: use https:// URLs".into(),
            ));
        }
        let settings = HttpSettings {
            urls,
            gzip: self.gzip,
            tls,
            token,
            timeout: Duration::from_secs(self.timeout_secs),
        };
        Ok((ShipperSettings::Http(settings), self.batch_max_events))
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

impl AmqpShipperConfig {
    fn build(&self, invalid: &Invalid<'_>) -> Result<(ShipperSettings, usize), ConfigError> {
        const KEY: &str = "agent.shippers.amqp.url";
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| invalid(KEY, format!("{:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(invalid(KEY, "must be an amqp:// or amqps:// URL".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                KEY,
                "must not hold credentials: set username and password_file".into(),
            ));
        }
        if self.exchange.is_empty() {
            return Err(invalid(
                "agent.shippers.amqp.exchange",
                "must not be empty".into(),
            ));
        }
        check_batch(
            "agent.shippers.amqp.batch_max_events",
            self.batch_max_events,
            invalid,
        )?;
        check_timeout(
            "agent.shippers.amqp.timeout_secs",
            self.timeout_secs,
            invalid,
        )?;
        let tls = tls_files(
            &[
                "agent.shippers.amqp.ca_file",
                "agent.shippers.amqp.client_cert_file",
                "agent.shippers.amqp.client_key_file",
            ],
            &self.ca_file,
            &self.client_cert_file,
            &self.client_key_file,
            invalid,
        )?;
        let password = secret_path("PICKET_AGENT_AMQP_PASSWORD_FILE", &self.password_file)
            .map(|path| read_secret("agent.shippers.amqp.password_file", &path, invalid))
            .transpose()?;
        match self.auth {
            AmqpAuth::External if tls.client.is_none() || url.scheme() != "amqps" => {
                return Err(invalid(
                    "agent.shippers.amqp.auth",
                    "external needs an amqps:// URL and a client certificate".into(),
                ));
            }
            AmqpAuth::Plain if self.username.is_some() != password.is_some() => {
                return Err(invalid(
                    "agent.shippers.amqp.password_file",
                    "username and password_file go together".into(),
                ));
            }
            _ => {}
        }
        let settings = AmqpSettings {
            url,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            queue: self.queue.clone(),
            username: self.username.clone(),
            password,
            auth: self.auth,
            tls,
            timeout: Duration::from_secs(self.timeout_secs),
        };
        Ok((ShipperSettings::Amqp(settings), self.batch_max_events))
    }
}

impl ConfigFile {
    /// Reads and parses a config file and its drop-ins (syntax and key names only).
    ///
    /// Drop-ins are the `*.toml` files of [`dropin_dir`] (`/etc/picket/agent.d/`),
    /// merged over the main file in byte order of their names: a table merges key by
    /// key, any other value (a list too) replaces the one before. Each file must be
    /// valid on its own, so a typo is reported with the file that holds it. Other
    /// files there (`.dpkg-old`, editor backups) are skipped.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let mut files = vec![path.to_path_buf()];
        let dir = dropin_dir(path);
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let mut dropins: Vec<PathBuf> = entries
                    .filter_map(|entry| entry.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "toml") && !is_hidden(p))
                    .collect();
                dropins.sort();
                files.extend(dropins);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path: dir, source }),
        }
        let mut merged = toml::Table::new();
        let mut sources = Sources::default();
        for (index, file) in files.iter().enumerate() {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            let parse_error = |e: toml::de::Error| ConfigError::Parse {
                path: file.clone(),
                message: e.to_string(),
            };
            let table: toml::Table = toml::from_str(&text).map_err(parse_error)?;
            // Alone first: unknown keys and wrong types are the fault of this file.
            toml::Value::Table(table.clone())
                .try_into::<ConfigFile>()
                .map_err(parse_error)?;
            sources.record("", &table, index);
            merge(&mut merged, table);
        }
        sources.files = files;
        let mut config: ConfigFile =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        config.sources = sources;
        Ok(config)
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

impl AgentConfig {
    /// Checks every value and resolves the host's identity; `path` names the file in
    /// errors.
    pub fn build(&self, path: &Path) -> Result<Settings, ConfigError> {
        self.build_from(&Sources::single(path))
    }

    /// Like [`AgentConfig::build`] for a merged configuration: an error names the file
    /// that set the bad key.
    pub fn build_from(&self, sources: &Sources) -> Result<Settings, ConfigError> {
        self.build_with(sources, Owners::Agent)
    }

    /// Like [`AgentConfig::build_from`], with `owners` allowed to own `data_dir`
    /// ([`Owners::Anyone`]: `validate` run as root, which cannot tell the service's user).
    pub fn build_with(&self, sources: &Sources, owners: Owners) -> Result<Settings, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: sources.file_for(key).to_path_buf(),
            key,
            message,
        };
        let timezone =
            TimeZoneChoice::parse(&self.timezone).map_err(|e| invalid("agent.timezone", e))?;
        let file = self
            .inputs
            .file
            .build()
            .map_err(|e| invalid(e.key, e.message))?;
        let (shipper, batch_max_events) = self.shippers.build(&invalid)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("agent.data_dir", "must not be empty".into()));
        }
        datadir::check(&self.data_dir, owners)
            .map_err(|e| invalid("agent.data_dir", e.to_string()))?;
        if self
            .hostname
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            return Err(invalid(
                "agent.hostname",
                "must not be empty when set".into(),
            ));
        }
        let journald = self
            .inputs
            .journald
            .build(!file.discovery.scan().is_empty())
            .map_err(|e| invalid(e.key, e.message))?;
        let buffer = self.buffer.build().map_err(|e| invalid(e.key, e.message))?;
        let host = host::identity(self.hostname.as_deref(), self.host_id.as_deref());
        Ok(Settings {
            host,
            data_dir: self.data_dir.clone(),
            timezone,
            journald,
            buffer,
            file,
            shipper,
            batch_max_events,
            heartbeat: (self.heartbeat_secs > 0).then(|| Duration::from_secs(self.heartbeat_secs)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_builds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
        let mut file = ConfigFile::load(&path).unwrap();
        assert!(file.collector.is_some());
        assert_eq!(file.agent.data_dir, default_data_dir());
        // Not this host's /var/lib/picket-agent, which an installed package owns.
        let state = tempfile::tempdir().unwrap();
        file.agent.data_dir = state.path().to_path_buf();
        let settings = file.agent.build(&path).unwrap();
        assert_eq!(settings.file.start_at, StartAt::End);
        let ShipperSettings::Http(http) = &settings.shipper else {
            panic!("the example ships over HTTP");
        };
        assert_eq!(http.urls[0].as_str(), "http://127.0.0.1:8080/events");
    }

    #[test]
    fn a_data_dir_others_can_write_to_is_a_config_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("checkpoints.json"), b"{}").unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let text = format!("[agent]\ndata_dir = {:?}\n", state.display().to_string());
        let file: ConfigFile = toml::from_str(&text).unwrap();
        let err = file
            .agent
            .build(Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.data_dir") && err.contains("0777"),
            "{err}"
        );
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        file.agent.build(Path::new("a.toml")).unwrap();
    }

    #[test]
    fn a_typo_is_refused_with_its_name() {
        let err = toml::from_str::<ConfigFile>("[agent.inputs.file]\npath = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[agent]\ntimezone = \"Mars/Olympus\"\n", "agent.timezone"),
            (
                "[agent.inputs.file]\npaths = [\"relative.log\"]\n",
                "agent.inputs.file.paths",
            ),
            (
                "[agent.inputs.file]\npaths = []\n",
                "agent.inputs.file.paths",
            ),
            (
                "[agent.shippers.http]\nurl = \"ftp://x/\"\n",
                "agent.shippers.http.url",
            ),
            (
                "[agent.shippers.http]\nurl = \"not a url\"\n",
                "agent.shippers.http.url",
            ),
            (
                "[agent.inputs.file]\npoll_interval_ms = 0\n",
                "agent.inputs.file.poll_interval_ms",
            ),
        ];
        for (text, key) in cases {
            let file: ConfigFile = toml::from_str(text).unwrap();
            let err = file
                .agent
                .build(Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    fn dropin_setup(main: &str, dropins: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, main).unwrap();
        let dropin_dir = dir.path().join("agent.d");
        std::fs::create_dir(&dropin_dir).unwrap();
        for (name, text) in dropins {
            std::fs::write(dropin_dir.join(name), text).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn dropins_merge_over_the_main_file_in_name_order() {
        let (_dir, path) = dropin_setup(
            "[agent]\nhostname = \"main\"\ntimezone = \"UTC\"\n\
             [agent.inputs.file]\npaths = [\"/var/log/auth.log\"]\npoll_interval_ms = 300\n",
            &[
                // Written out of order: names decide, not creation.
                ("20-later.toml", "[agent]\nhostname = \"twenty\"\n"),
                (
                    "10-paths.toml",
                    "[agent]\nhostname = \"ten\"\n[agent.inputs.file]\npaths = [\"/var/log/secure\"]\n",
                ),
                // Not drop-ins: skipped.
                ("30-old.toml.dpkg-old", "[agent]\nhostname = \"dpkg\"\n"),
                (".40-hidden.toml", "[agent]\nhostname = \"hidden\"\n"),
            ],
        );
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.agent.hostname.as_deref(), Some("twenty"));
        // A list is replaced, not appended to; the table's other keys stay.
        assert_eq!(
            file.agent.inputs.file.paths,
            [PathBuf::from("/var/log/secure")]
        );
        assert_eq!(file.agent.inputs.file.poll_interval_ms, 300);
        assert_eq!(file.agent.timezone, "UTC");
        let names: Vec<String> = file
            .sources
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["agent.toml", "10-paths.toml", "20-later.toml"]);
        file.agent.build_from(&file.sources).unwrap();
    }

    #[test]
    fn a_dropin_typo_names_the_dropin() {
        let (_dir, path) = dropin_setup(
            "[agent]\n",
            &[("50-typo.toml", "[agent.inputs.file]\npath = []\n")],
        );
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("50-typo.toml") && err.contains("path"),
            "{err}"
        );
        let (_dir, path) = dropin_setup("[agent]\n", &[("60-syntax.toml", "[agent\n")]);
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("60-syntax.toml"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_file_that_set_it() {
        let (_dir, path) = dropin_setup(
            "[agent]\ntimezone = \"UTC\"\n[agent.inputs.file]\npaths = [\"/var/log/auth.log\"]\n",
            &[
                ("10-tz.toml", "[agent]\ntimezone = \"Mars/Olympus\"\n"),
                ("20-other.toml", "[agent]\nheartbeat_secs = 30\n"),
            ],
        );
        let file = ConfigFile::load(&path).unwrap();
        let err = file
            .agent
            .build_from(&file.sources)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10-tz.toml") && err.contains("agent.timezone"),
            "{err}"
        );
        // A key in a table only a drop-in has is blamed on that drop-in.
        let (_dir, path) = dropin_setup(
            "[agent]\n",
            &[("10-url.toml", "[agent.shippers.http]\nurl = \"ftp://x/\"\n")],
        );
        let file = ConfigFile::load(&path).unwrap();
        let err = file
            .agent
            .build_from(&file.sources)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10-url.toml"), "{err}");
    }
}
