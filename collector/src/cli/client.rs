//! The client side of `picket-collector search`: asks a running collector's
//! `GET /api/events` and prints what it answers.

use std::fmt::Write as _;

use serde_json::Value;
use thiserror::Error;

pub use picket_common::http_client::{HttpClientError, build_http_client, error_chain};
use picket_common::tls::TlsFiles;

/// Why a search through a running collector failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the collector at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the collector refused the search: {0}")]
    Refused(String),
    #[error("the collector answered something that is not a search result: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Client(#[from] HttpClientError),
    #[error("the token is not valid in an HTTP header")]
    BadToken,
}

/// A client builder that sends `Authorization: Bearer <token>` on every request.
pub fn with_token(
    builder: reqwest::ClientBuilder,
    token: Option<&str>,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let Some(token) = token else {
        return Ok(builder);
    };
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ClientError::BadToken)?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(builder.default_headers(headers))
}

/// A running collector the commands ask: its API, a reader token, the CA to trust.
#[derive(Clone)]
pub struct Remote {
    pub base_url: String,
    /// A bearer token with the reader role.
    pub token: Option<String>,
    pub tls: TlsFiles,
}

impl Remote {
    /// An HTTP client that sends the token and trusts the CA.
    pub fn client(&self) -> Result<reqwest::Client, ClientError> {
        let builder = with_token(reqwest::Client::builder(), self.token.as_deref())?;
        Ok(build_http_client(
            builder,
            [self.base_url.as_str()],
            &self.tls,
        )?)
    }
}

/// One search, as the command line gives it.
#[derive(Clone)]
pub struct RemoteSearch {
    pub remote: Remote,
    pub query: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub size: usize,
}

/// Runs the search; returns (total, hits).
pub async fn search(request: &RemoteSearch) -> Result<(u64, Vec<Value>), ClientError> {
    let url = format!(
        "{}/api/events",
        request.remote.base_url.trim_end_matches('/')
    );
    let mut params: Vec<(&str, String)> = vec![
        ("q", request.query.clone()),
        ("size", request.size.to_string()),
    ];
    if let Some(from) = &request.from {
        params.push(("from", from.clone()));
    }
    if let Some(to) = &request.to {
        params.push(("to", to.clone()));
    }
    let client = request.remote.client()?;
    let unreachable = |source| ClientError::Unreachable {
        url: url.clone(),
        source,
    };
    let response = client
        .get(&url)
        .query(&params)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    if !status.is_success() {
        let message = body["error"]
            .as_str()
            .unwrap_or("no reason given")
            .to_string();
        return Err(ClientError::Refused(format!("{status}: {message}")));
    }
    let total = body["total"]
        .as_u64()
        .ok_or_else(|| ClientError::BadAnswer("no total".into()))?;
    let hits = match body.get("hits") {
        Some(Value::Array(hits)) => hits.clone(),
        _ => return Err(ClientError::BadAnswer("no hits".into())),
    };
    Ok((total, hits))
}

/// One event as one readable line: time, host, program[pid], category, summary.
pub fn format_line(event: &Value) -> String {
    let text = |key: &str| event[key].as_str().unwrap_or("-").to_string();
    let mut line = String::new();
    let _ = write!(
        line,
        "{} {} {}[{}] {} {}: {}",
        text("utctimestamp"),
        text("hostname"),
        text("processname"),
        event["processid"].as_i64().unwrap_or(0),
        text("severity"),
        text("category"),
        text("summary"),
    );
    line
}

/// A running collector as the alert engine's event source (`picket-collector alerts
/// test`): `POST /api/search`.
pub struct RemoteSource {
    pub base_url: String,
    pub client: reqwest::Client,
}

impl crate::alerts::engine::EventSource for RemoteSource {
    type Error = ClientError;

    async fn search(
        &self,
        request: crate::stores::SearchRequest,
    ) -> Result<crate::stores::SearchResult, ClientError> {
        let url = format!("{}/api/search", self.base_url.trim_end_matches('/'));
        let mut body = serde_json::json!({
            "query": request.query,
            "size": request.size,
            "time_field": request.time_field.name(),
        });
        if let Some(from) = request.from {
            body["from"] = mozdef::time::format_utc(from).into();
        }
        if let Some(to) = request.to {
            body["to"] = mozdef::time::format_utc(to).into();
        }
        if let Some(aggs) = request.aggs {
            body["aggs"] = aggs;
        }
        let response = self
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| ClientError::BadAnswer(format!("not JSON: {e}")))?;
        if !status.is_success() {
            return Err(ClientError::Refused(format!(
                "{status}: {}",
                answer["error"].as_str().unwrap_or("")
            )));
        }
        Ok(crate::stores::SearchResult {
            total: answer["total"].as_u64().unwrap_or(0) as usize,
            hits: answer["hits"].as_array().cloned().unwrap_or_default(),
            aggregations: answer.get("aggregations").cloned(),
            truncated: answer["truncated"].as_bool().unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_line_shows_the_fields_an_operator_scans() {
        let event = json!({
            "utctimestamp": "2026-11-22T08:14:03+00:00",
            "hostname": "web1",
            "processname": "sshd",
            "processid": 42,
            "severity": "INFO",
            "category": "authentication",
            "summary": "Accepted publickey for alice",
        });
        assert_eq!(
            format_line(&event),
            "2026-11-22T08:14:03+00:00 web1 sshd[42] INFO authentication: Accepted publickey for alice"
        );
    }
}
