//! The HTTP shipper: POSTs a batch of events as NDJSON to the collector's `/events`
//! and reads its answer into an [`Outcome`]. Connections are kept alive between
//! batches by reqwest's pool.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use thiserror::Error;

use super::Outcome;

/// Why the shipper could not be built.
#[derive(Debug, Error)]
pub enum HttpShipperError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// Sends batches to one collector URL.
#[derive(Debug, Clone)]
pub struct HttpShipper {
    client: reqwest::Client,
    url: reqwest::Url,
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
    /// A shipper for `url` with a per-request `timeout`.
    pub fn build(url: reqwest::Url, timeout: Duration) -> Result<HttpShipper, HttpShipperError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("picket-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpShipperError::Client)?;
        Ok(HttpShipper { client, url })
    }

    /// The collector URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Sends an NDJSON body (events already serialized, one per line).
    pub async fn send_body(&self, body: Vec<u8>) -> Outcome {
        let response = match self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("request failed: {e}"),
                    after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let answer: Option<Answer> = serde_json::from_str(&text).ok();
        let reason = |answer: &Option<Answer>| {
            let said = answer
                .as_ref()
                .and_then(|a| a.error.clone())
                .unwrap_or_else(|| "no reason given".to_string());
            format!("collector answered {status}: {said}")
        };
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
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Outcome::Retry {
                reason: reason(&answer),
                after: retry_after,
            };
        }
        Outcome::Reject {
            reason: reason(&answer),
            too_large: status == StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}
