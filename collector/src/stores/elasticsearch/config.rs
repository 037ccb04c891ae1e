//! `[collector.stores.elasticsearch]`: the cluster's nodes, login, CA and limits, their
//! defaults, and the checked [`ElasticSettings`] the store runs on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use picket_common::config::{KeyError, at_least_one};
use picket_common::secret::{Secret, configured_secret};
use picket_common::tls::{TlsFiles, TlsKeys, tls_files};
use reqwest::Url;
use serde::Deserialize;

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
    #[serde(
        default = "default_es_timeout_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub timeout_secs: u64,
    /// How long documents the cluster refuses for now (429, 5xx, down) are retried
    /// before the sender is told to retry later, in seconds.
    #[serde(
        default = "default_es_retry_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub retry_secs: u64,
    /// Largest `_bulk` request body, in bytes.
    #[serde(
        default = "default_es_bulk_max_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
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

/// The checked `[collector.stores.elasticsearch]`.
#[derive(Debug, Clone)]
pub struct ElasticSettings {
    /// Node URLs, tried in turn (`https://es1:9200/`).
    pub urls: Vec<Url>,
    pub credentials: Option<Credentials>,
    /// The CA bundle the nodes' certificates must chain to (else the system roots).
    pub tls: TlsFiles,
    /// One HTTP request's limit.
    pub timeout: Duration,
    /// How long a batch's refused-for-now items are retried before the sender is told
    /// to retry later.
    pub retry_for: Duration,
    /// Largest `_bulk` body; bigger batches are split.
    pub bulk_max_bytes: usize,
    /// Where refused documents go.
    pub dead_letter_path: PathBuf,
}

/// How the collector logs in to the cluster.
#[derive(Debug, Clone)]
pub enum Credentials {
    Basic {
        username: String,
        password: Secret,
    },
    /// The `encoded` value Elasticsearch returns when an API key is created.
    ApiKey(Secret),
}

impl ElasticsearchConfig {
    /// Checks the URLs and reads the secret and CA files; dead letters go to
    /// `data_dir`.
    pub fn build(&self, data_dir: &Path) -> Result<ElasticSettings, KeyError> {
        const URLS: &str = "collector.stores.elasticsearch.urls";
        if self.urls.is_empty() {
            return Err(KeyError::new(URLS, "must name at least one node URL"));
        }
        let urls = self
            .urls
            .iter()
            .map(|text| node_url(URLS, text))
            .collect::<Result<Vec<Url>, KeyError>>()?;
        let credentials = self.credentials()?;
        if credentials.is_some() {
            for url in &urls {
                let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if url.scheme() == "http" && !loopback {
                    return Err(KeyError::new(
                        URLS,
                        format!(
                            "{url} is plain http: credentials would cross the network in clear (use https://)"
                        ),
                    ));
                }
            }
        }
        let tls = tls_files(
            &TlsKeys::of("collector.stores.elasticsearch"),
            &self.ca_file,
            &None,
            &None,
        )?;
        at_least_one(
            "collector.stores.elasticsearch.timeout_secs",
            self.timeout_secs,
        )?;
        if self.bulk_max_bytes < 64 * 1024 {
            return Err(KeyError::new(
                "collector.stores.elasticsearch.bulk_max_bytes",
                "must be at least 65536",
            ));
        }
        Ok(ElasticSettings {
            urls,
            credentials,
            tls,
            timeout: Duration::from_secs(self.timeout_secs),
            retry_for: Duration::from_secs(self.retry_secs),
            bulk_max_bytes: self.bulk_max_bytes,
            dead_letter_path: data_dir.join("elasticsearch-dead-letter.ndjson"),
        })
    }

    /// Basic or API key login, from the secret files.
    fn credentials(&self) -> Result<Option<Credentials>, KeyError> {
        let password = configured_secret(
            "collector.stores.elasticsearch.password_file",
            "PICKET_COLLECTOR_ELASTICSEARCH_PASSWORD_FILE",
            &self.password_file,
        )?;
        let api_key = configured_secret(
            "collector.stores.elasticsearch.api_key_file",
            "PICKET_COLLECTOR_ELASTICSEARCH_API_KEY_FILE",
            &self.api_key_file,
        )?;
        match (&self.username, password, api_key) {
            (None, None, None) => Ok(None),
            (Some(username), Some(password), None) => Ok(Some(Credentials::Basic {
                username: username.clone(),
                password,
            })),
            (None, None, Some(key)) => Ok(Some(Credentials::ApiKey(key))),
            (_, _, Some(_)) => Err(KeyError::new(
                "collector.stores.elasticsearch.api_key_file",
                "use either an API key or username and password_file, not both",
            )),
            _ => Err(KeyError::new(
                "collector.stores.elasticsearch.password_file",
                "username and password_file go together",
            )),
        }
    }
}

/// A node URL: http(s), no credentials in it, its path ending in `/`.
fn node_url(key: &str, text: &str) -> Result<Url, KeyError> {
    let mut url = Url::parse(text).map_err(|e| KeyError::new(key, format!("{text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(KeyError::new(
            key,
            format!("{text:?} must be http:// or https://"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(KeyError::new(
            key,
            format!(
                "{text:?} must not hold credentials: set username and password_file, or api_key_file"
            ),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}
