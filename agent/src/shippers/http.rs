//! The HTTP(S) shipper: POSTs a batch of events as NDJSON (gzip unless the collector is
//! on this host, or as configured) to the collector's `/events` and reads its answer
//! into an [`Outcome`].
//!
//! - TLS with rustls: the collector's certificate checked against the system's roots or
//!   a configured CA bundle only; a client certificate for mutual TLS; a bearer token.
//! - Connections are kept alive between batches by reqwest's pool.
//! - Several URLs: a network error, a timeout or a 5xx moves the next attempt to the
//!   next URL (logged); a 429 stays, honouring `Retry-After`.

pub mod config;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use picket_common::http_client::{HttpClientError, build_http_client, error_chain};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tracing::warn;

use self::config::HttpSettings;
use super::Outcome;
use crate::buffer::Records;

/// Why the shipper could not be built: its client (with no CA file configured and none
/// on the host, set `agent.shippers.http.ca_file`).
pub type HttpShipperError = HttpClientError;

/// Sends batches to the collector URLs in order of preference; several may be in
/// flight at once (`&self`), on one pool of keep-alive connections (one HTTP/2
/// connection when the collector speaks it).
#[derive(Debug, Clone)]
pub struct HttpShipper {
    client: reqwest::Client,
    urls: Vec<reqwest::Url>,
    /// The URL in use, shared by the requests in flight.
    current: Arc<AtomicUsize>,
    /// Per URL: compress bodies sent there.
    gzip: Vec<bool>,
    authorization: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    rejected: Vec<RejectedItem>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RejectedItem {
    position: usize,
    reason: String,
}

impl HttpShipper {
    /// A shipper for the checked settings.
    pub fn build(settings: &HttpSettings) -> Result<HttpShipper, HttpShipperError> {
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            // Under the collector's idle_timeout_secs (60 by default): the agent lets an
            // idle connection go before the collector closes it under a request.
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("picket-agent/", env!("CARGO_PKG_VERSION")));
        let client = build_http_client(
            builder,
            settings.urls.iter().map(|u| u.as_str()),
            &settings.tls,
        )?;
        Ok(HttpShipper {
            client,
            urls: settings.urls.clone(),
            current: Arc::new(AtomicUsize::new(0)),
            gzip: settings.gzip.clone(),
            authorization: settings
                .token
                .as_ref()
                .map(|t| format!("Bearer {}", t.expose())),
        })
    }

    /// The collector URL the next batch goes to.
    pub fn url(&self) -> &reqwest::Url {
        &self.urls[self.current.load(Ordering::Relaxed)]
    }

    /// After a failure at URL number `from` that may be the collector's own: the next
    /// URL takes over (once, however many requests in flight failed there).
    fn fail_over(&self, from: usize, reason: &str) {
        if self.urls.len() < 2 {
            return;
        }
        let to = (from + 1) % self.urls.len();
        if self
            .current
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            warn!(from = %self.urls[from], to = %self.urls[to], reason, "Switching collector.");
        }
    }

    /// Sends serialized events (one JSON line each) as one request.
    pub async fn send(&self, records: Records<'_>) -> Outcome {
        let at = self.current.load(Ordering::Relaxed);
        let url = self.urls[at].clone();
        let mut request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson");
        if self.gzip[at] {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(records.bytes().len() / 6),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(records.bytes());
            let body = encoder.finish().unwrap_or_default();
            request = request.header(CONTENT_ENCODING, "gzip").body(body);
        } else {
            request = request.body(records.shared_bytes());
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let reason = format!("request to {url} failed: {}", error_chain(&e));
                self.fail_over(at, &reason);
                return Outcome::Retry {
                    reason,
                    after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        let answer: Option<Answer> = serde_json::from_str(&text).ok();
        let said = answer
            .as_ref()
            .and_then(|a| a.error.clone())
            .unwrap_or_else(|| "no reason given".to_string());
        let reason = format!("{url} answered {status}: {said}");
        if status.is_success() {
            let rejected = answer
                .map(|a| {
                    a.rejected
                        .into_iter()
                        .map(|r| (r.position, r.reason))
                        .collect()
                })
                .unwrap_or_default();
            return Outcome::Delivered { rejected };
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
            return Outcome::Retry {
                reason,
                after: retry_after,
            };
        }
        if status.is_server_error() {
            self.fail_over(at, &reason);
            return Outcome::Retry {
                reason,
                after: retry_after,
            };
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // A credential problem is fixed by an operator, not by dropping events:
            // keep them and keep asking (slowly).
            return Outcome::Retry {
                reason: format!("{reason} (check the agent's token or client certificate)"),
                after: Some(Duration::from_secs(30)),
            };
        }
        Outcome::Reject {
            reason,
            too_large: status == StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl HttpShipper {
    /// `validate --connect`: an empty batch POSTed to every URL with the configured TLS
    /// and token. A Picket collector refuses it with 400 "holds no event" only once the
    /// connection, the certificates and the token have passed ("request body is empty");
    /// a MozDef one takes it.
    /// Per URL: what was checked, or what failed and what to look at.
    pub async fn check(&self) -> Vec<(String, Result<String, String>)> {
        let mut results = Vec::new();
        for url in &self.urls {
            let mut request = self
                .client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/x-ndjson")
                .body(Vec::new());
            if let Some(authorization) = &self.authorization {
                request = request.header(AUTHORIZATION, authorization);
            }
            let result = match request.send().await {
                Err(e) => Err(unreachable_reason(&error_chain(&e))),
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let said = serde_json::from_str::<Answer>(&text)
                        .ok()
                        .and_then(|a| a.error)
                        .unwrap_or_else(|| text.chars().take(200).collect());
                    self.judge(url, status, &said)
                }
            };
            results.push((url.to_string(), result));
        }
        results
    }

    /// What an answer to the empty batch says about the connection.
    fn judge(&self, url: &reqwest::Url, status: StatusCode, said: &str) -> Result<String, String> {
        let tls = if url.scheme() == "https" {
            "TLS verified, "
        } else {
            ""
        };
        let token = match &self.authorization {
            // (A collector that checks none takes any.)
            Some(_) => "token accepted",
            None => "no token sent (none configured)",
        };
        // A Picket collector checks the connection and the token before the body.
        let empty_refused = status == StatusCode::BAD_REQUEST
            && (said.contains("body is empty") || said.contains("holds no event"));
        if status.is_success() || empty_refused {
            return Ok(format!(
                "reachable, {tls}{token} (an empty batch answered {status})"
            ));
        }
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "the collector refused the credentials ({status}: {said}): check agent.shippers.http.token_file (or PICKET_AGENT_TOKEN_FILE) against the collector's tokens_file"
            ),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => format!(
                "no ingest route at this URL ({status}): a Picket or MozDef collector takes events at /events"
            ),
            _ => format!("answered {status}: {said}"),
        })
    }
}

/// A request that got no answer, with what to look at.
fn unreachable_reason(chain: &str) -> String {
    let hint = if chain.contains("certificate") || chain.contains("Certificate") {
        "check agent.shippers.http.ca_file (the CA that signed the collector's certificate) and, for mutual TLS, client_cert_file and client_key_file"
    } else if chain.contains("Connection refused") {
        "nothing listens there: is the collector running, on that port?"
    } else if chain.contains("dns error") || chain.contains("failed to lookup") {
        "the host name does not resolve"
    } else if chain.contains("timed out") || chain.contains("deadline") {
        "no answer in timeout_secs: a firewall, or the wrong address"
    } else {
        "the connection failed"
    };
    format!("cannot reach the collector: {chain} ({hint})")
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(wait.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = chrono::Utc::now() + chrono::Duration::seconds(120);
        let later = parse_retry_after(&soon.to_rfc2822()).unwrap();
        assert!(later >= Duration::from_secs(118) && later <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
