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
    /// File of bearer tokens, one a line (`#` comments); when set, every route but
    /// `/status` and `/test` needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// Longest a request may take, reading its body included, in seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Most requests handled at once; more are answered 503 with `Retry-After`.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
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
            request_timeout_secs: default_request_timeout_secs(),
            max_concurrent_requests: default_max_concurrent_requests(),
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
}

/// `[collector.stores.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedStoreConfig {
    /// Longest wait between commits while events are pending, in milliseconds. Ingest
    /// answers only after the commit that holds its events, so this bounds the added
    /// latency; larger values mean fewer, bigger commits.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Indexing memory per open daily index, in bytes (tantivy's minimum is 15 MB).
    #[serde(default = "default_writer_memory_bytes")]
    pub writer_memory_bytes: usize,
}

fn default_commit_interval_ms() -> u64 {
    1000
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
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub commit_interval: Duration,
    pub writer_memory_bytes: usize,
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
                    "needs tls_cert_file and tls_key_file (client certificates need TLS)"
                        .into(),
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
        if http.max_concurrent_requests == 0 {
            return Err(invalid(
                "collector.http.max_concurrent_requests",
                "must be at least 1".into(),
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
        Ok(Settings {
            data_dir: self.data_dir.clone(),
            listen,
            max_body_bytes: self.http.max_body_bytes,
            max_event_bytes: self.http.max_event_bytes,
            tls,
            client_certificates: http.client_ca_file.is_some(),
            tokens,
            request_timeout: Duration::from_secs(http.request_timeout_secs),
            max_concurrent_requests: http.max_concurrent_requests,
            commit_interval: Duration::from_millis(embedded.commit_interval_ms),
            writer_memory_bytes: embedded.writer_memory_bytes,
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
