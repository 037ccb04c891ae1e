//! `[[collector.alerts.webhook]]` and `[collector.alerts.amqp]`: where the notifiers
//! send alerts, their defaults, and the checked settings [`super::Notifier`] is made from.

use std::path::PathBuf;

use picket_common::amqp::{AmqpAuth, AmqpEndpoint, EndpointConfig};
use picket_common::config::KeyError;
use serde::Deserialize;

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

/// `[[collector.alerts.webhook]]`, checked.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: reqwest::Url,
    /// Slack-compatible `{"text": ...}` instead of the alert document.
    pub slack: bool,
    /// Alerts below this severity are not sent (`DEBUG` sends all).
    pub min_severity: mozdef::Severity,
}

impl WebhookConfig {
    pub fn build(&self) -> Result<WebhookSettings, KeyError> {
        const URL: &str = "collector.alerts.webhook.url";
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| KeyError::new(URL, format!("{:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(KeyError::new(
                URL,
                format!("{url} must be http:// or https://"),
            ));
        }
        let slack = match self.format.as_str() {
            "json" => false,
            "slack" => true,
            other => {
                return Err(KeyError::new(
                    "collector.alerts.webhook.format",
                    format!("{other:?} is not json or slack"),
                ));
            }
        };
        let min_severity = crate::alerts::severity_named(&self.min_severity).ok_or_else(|| {
            KeyError::new(
                "collector.alerts.webhook.min_severity",
                format!("{:?} is not a severity", self.min_severity),
            )
        })?;
        Ok(WebhookSettings {
            url,
            slack,
            min_severity,
        })
    }
}

/// `[collector.alerts.amqp]`: alerts published as `{_id, _index, _source}` to a topic
/// exchange, as MozDef does, so its bots keep working.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAmqpConfig {
    /// `amqp://` or `amqps://host:port/vhost`, without credentials.
    #[serde(default)]
    pub url: Option<String>,
    /// Or the nodes of a RabbitMQ cluster (set url or urls, not both).
    #[serde(default)]
    pub urls: Vec<String>,
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
    /// `plain` or `external` (the client certificate's name).
    #[serde(default)]
    pub auth: AmqpAuth,
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

/// `[collector.alerts.amqp]`, checked.
#[derive(Debug, Clone)]
pub struct AlertAmqpSettings {
    pub endpoint: AmqpEndpoint,
    /// The topic exchange (declared durable).
    pub exchange: String,
    pub routing_key: String,
}

impl AlertAmqpConfig {
    pub fn build(&self) -> Result<AlertAmqpSettings, KeyError> {
        let endpoint = AmqpEndpoint::build(EndpointConfig {
            table: "collector.alerts.amqp",
            url: &self.url,
            urls: &self.urls,
            username: &self.username,
            password_file: &self.password_file,
            password_env: "PICKET_COLLECTOR_AMQP_PASSWORD_FILE",
            auth: self.auth,
            ca_file: &self.ca_file,
            client_cert_file: &self.client_cert_file,
            client_key_file: &self.client_key_file,
            timeout: crate::amqp::config::CONNECT_TIMEOUT,
        })?;
        if self.exchange.is_empty() {
            return Err(KeyError::new(
                "collector.alerts.amqp.exchange",
                "must not be empty",
            ));
        }
        Ok(AlertAmqpSettings {
            endpoint,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
        })
    }
}
