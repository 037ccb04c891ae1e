//! `[agent.shippers.http]`: its keys, their defaults, and the checked settings the
//! HTTP shipper runs on.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use picket_common::config::KeyError;
use picket_common::secret::{Secret, configured_secret};
use picket_common::tls::{TlsFiles, TlsKeys, tls_files};

use crate::shippers::common::{
    Batching, check_timeout, default_batch_max_events, default_max_in_flight, default_timeout_secs,
};

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
    /// Requests sent before the first of them is answered (acknowledged in order).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Longest wait for one request, in seconds.
    #[serde(
        default = "default_timeout_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub timeout_secs: u64,
    /// Compress request bodies with gzip (about 8x fewer bytes on the wire for about
    /// 1.2 µs of CPU per event). Unset: on for a collector on another host, off for one
    /// on this host (a loopback URL), where it costs CPU and saves nothing.
    #[serde(default)]
    pub gzip: Option<bool>,
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

fn default_url() -> String {
    "http://127.0.0.1:8080/events".to_string()
}

impl Default for HttpShipperConfig {
    fn default() -> Self {
        HttpShipperConfig {
            url: None,
            urls: Vec::new(),
            batch_max_events: default_batch_max_events(),
            max_in_flight: default_max_in_flight(),
            timeout_secs: default_timeout_secs(),
            gzip: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            token_file: None,
        }
    }
}

/// The checked HTTP shipper settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub urls: Vec<reqwest::Url>,
    /// Whether bodies sent to each URL (same order) are compressed.
    pub gzip: Vec<bool>,
    pub tls: TlsFiles,
    pub token: Option<Secret>,
    pub timeout: Duration,
}

impl HttpShipperConfig {
    /// The checked settings and how batches are cut, or the key that is wrong.
    pub fn build(&self) -> Result<(HttpSettings, Batching), KeyError> {
        const KEY: &str = "agent.shippers.http.url";
        let texts: Vec<String> = match (&self.url, self.urls.is_empty()) {
            (Some(_), false) => {
                return Err(KeyError::new(KEY, "set url or urls, not both"));
            }
            (Some(url), true) => vec![url.clone()],
            (None, false) => self.urls.clone(),
            (None, true) => vec![default_url()],
        };
        let mut urls = Vec::with_capacity(texts.len());
        for text in &texts {
            let url = reqwest::Url::parse(text)
                .map_err(|e| KeyError::new(KEY, format!("{text:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(KeyError::new(
                    KEY,
                    format!("{text:?} must be an http:// or https:// URL"),
                ));
            }
            urls.push(url);
        }
        let batching = Batching::checked(
            "agent.shippers.http",
            self.batch_max_events,
            self.max_in_flight,
        )?;
        check_timeout("agent.shippers.http.timeout_secs", self.timeout_secs)?;
        let tls = tls_files(
            &TlsKeys::of("agent.shippers.http"),
            &self.ca_file,
            &self.client_cert_file,
            &self.client_key_file,
        )?;
        let token = configured_secret(
            "agent.shippers.http.token_file",
            "PICKET_AGENT_TOKEN_FILE",
            &self.token_file,
        )?;
        if token.is_some() && urls.iter().any(|u| u.scheme() == "http" && !is_loopback(u)) {
            return Err(KeyError::new(
                "agent.shippers.http.token_file",
                "a bearer token would cross the network in clear: use https:// URLs",
            ));
        }
        let settings = HttpSettings {
            gzip: urls
                .iter()
                .map(|url| self.gzip.unwrap_or_else(|| !is_loopback(url)))
                .collect(),
            urls,
            tls,
            token,
            timeout: Duration::from_secs(self.timeout_secs),
        };
        Ok((settings, batching))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_on_unless_the_collector_is_on_this_host() {
        let config = |gzip: Option<bool>| HttpShipperConfig {
            urls: vec![
                "http://127.0.0.1:8080/events".into(),
                "https://localhost/events".into(),
                "https://collector.example.org/events".into(),
                "http://[::1]:8080/events".into(),
            ],
            gzip,
            ..Default::default()
        };
        let (settings, _) = config(None).build().unwrap();
        assert_eq!(settings.gzip, [false, false, true, false]);
        let (settings, _) = config(Some(true)).build().unwrap();
        assert_eq!(settings.gzip, [true; 4]);
        let (settings, _) = config(Some(false)).build().unwrap();
        assert_eq!(settings.gzip, [false; 4]);
    }
}
