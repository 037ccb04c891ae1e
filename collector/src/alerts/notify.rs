//! Telling people: each notifier gets every alert on its own task, retries a few
//! times, and never holds up a rule or another notifier.
//!
//! - Webhook: `POST` of the alert as JSON (`{"_id", "_index", "_source"}`, the shape
//!   MozDef's bots receive), or Slack's `{"text": "SEVERITY: category summary"}`.

use std::time::Duration;

use serde_json::json;

use super::engine::Alert;

/// `[[collector.alerts.webhook]]`, checked.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: reqwest::Url,
    /// Slack-compatible `{"text": ...}` instead of the alert document.
    pub slack: bool,
    /// Alerts below this severity are not sent (`DEBUG` sends all).
    pub min_severity: String,
}

/// A way of telling people.
pub enum Notifier {
    Webhook {
        settings: WebhookSettings,
        client: reqwest::Client,
    },
}

const SEVERITIES: [&str; 8] = [
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
];

fn rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
}

/// MozDef's one-line form: `SEVERITY: category summary`.
pub fn one_line(alert: &Alert) -> String {
    let d = &alert.document;
    format!(
        "{}: {} {}",
        d["severity"].as_str().unwrap_or(""),
        d["category"].as_str().unwrap_or(""),
        d["summary"].as_str().unwrap_or("")
    )
}

impl Notifier {
    pub fn webhook(settings: WebhookSettings) -> Result<Notifier, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("picket-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Notifier::Webhook { settings, client })
    }

    pub fn name(&self) -> String {
        match self {
            Notifier::Webhook { settings, .. } => {
                format!("webhook {}", settings.url.host_str().unwrap_or("?"))
            }
        }
    }

    /// Sends `alert`: up to 4 tries, 1 s, 2 s, 4 s apart.
    pub async fn send(&self, alert: &Alert) -> Result<(), String> {
        match self {
            Notifier::Webhook { settings, client } => {
                let severity = alert.document["severity"].as_str().unwrap_or("");
                if rank(severity) < rank(&settings.min_severity) {
                    return Ok(());
                }
                let body = if settings.slack {
                    json!({ "text": one_line(alert) })
                } else {
                    let month = alert.document["utctimestamp"]
                        .as_str()
                        .map(|t| t.get(..7).unwrap_or("").replace('-', ""))
                        .unwrap_or_default();
                    json!({
                        "_id": alert.id,
                        "_index": format!("alerts-{month}"),
                        "_source": alert.document,
                    })
                };
                let mut last = String::new();
                for attempt in 0..4u32 {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                    }
                    match client.post(settings.url.clone()).json(&body).send().await {
                        Ok(response) if response.status().is_success() => return Ok(()),
                        Ok(response) => last = format!("answered {}", response.status()),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(last)
            }
        }
    }
}
