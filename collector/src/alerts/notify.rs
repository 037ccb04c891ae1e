//! Telling people: each notifier gets every alert on its own task, retries a few
//! times, and never holds up a rule or another notifier.
//!
//! - Webhook: `POST` of the alert as JSON (`{"_id", "_index", "_source"}`, the shape
//!   MozDef's bots receive), or Slack's `{"text": "SEVERITY: category summary"}`.
//! - AMQP: the same JSON published to the topic exchange `alerts` with routing key
//!   `mozdef.alert` (persistent, publisher-confirmed), where MozDef's bots listen.
//! - IRC: `SEVERITY: category summary` in the rule's channel or the default one
//!   ([`super::irc`]).

pub mod config;

use std::time::Duration;

use picket_common::amqp::AmqpError;
use picket_common::http_client::HttpClientError;
use picket_common::tls::TlsFiles;
use serde_json::json;
use thiserror::Error;

use super::engine::Alert;

pub use self::config::{AlertAmqpSettings, WebhookSettings};

/// A way of telling people. A handful exist per collector, made once.
#[allow(clippy::large_enum_variant)]
pub enum Notifier {
    Webhook {
        settings: WebhookSettings,
        client: reqwest::Client,
    },
    Irc(super::irc::Irc),
    Amqp {
        settings: Box<AlertAmqpSettings>,
        /// Connected on first use, dropped on any failure and made again.
        session: tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
    },
}

/// Why an alert did not reach a notifier (after its retries).
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error(transparent)]
    Connect(#[from] AmqpError),
    #[error("cannot open a channel: {0}")]
    Channel(lapin::Error),
    #[error("no publisher confirms: {0}")]
    Confirms(lapin::Error),
    #[error("cannot declare exchange {exchange}: {source}")]
    Exchange {
        exchange: String,
        source: lapin::Error,
    },
    #[error("publish failed: {0}")]
    Publish(lapin::Error),
    #[error("no confirm within 30 s")]
    ConfirmTimeout,
    #[error("the broker refused the alert (nack)")]
    Nacked,
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("{0}")]
    Request(reqwest::Error),
}

/// Up to 4 tries, 1 s, 2 s, 4 s apart; the last error when every one failed.
async fn with_retries<F, Fut>(mut once: F) -> Result<(), NotifyError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), NotifyError>>,
{
    let mut attempt = 0u32;
    loop {
        match once().await {
            Ok(()) => return Ok(()),
            Err(e) if attempt == 3 => return Err(e),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        attempt += 1;
    }
}

/// The alert as MozDef publishes it: `{_id, _index, _source}`.
pub fn envelope(alert: &Alert) -> serde_json::Value {
    let month = alert.document["utctimestamp"]
        .as_str()
        .map(|t| t.get(..7).unwrap_or("").replace('-', ""))
        .unwrap_or_default();
    json!({
        "_id": alert.id,
        "_index": format!("alerts-{month}"),
        "_source": alert.document,
    })
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
    pub fn webhook(settings: WebhookSettings) -> Result<Notifier, HttpClientError> {
        let client = picket_common::http_client::build_http_client(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("picket-collector/", env!("CARGO_PKG_VERSION"))),
            [settings.url.as_str()],
            &TlsFiles::default(),
        )?;
        Ok(Notifier::Webhook { settings, client })
    }

    pub fn amqp(settings: AlertAmqpSettings) -> Notifier {
        Notifier::Amqp {
            settings: Box::new(settings),
            session: tokio::sync::Mutex::new(None),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Notifier::Webhook { settings, .. } => {
                format!("webhook {}", settings.url.host_str().unwrap_or("?"))
            }
            Notifier::Amqp { settings, .. } => format!("amqp {}", settings.endpoint.describe()),
            Notifier::Irc(irc) => irc.name(),
        }
    }

    /// One publish on the current session (made first when there is none).
    async fn publish(
        settings: &AlertAmqpSettings,
        session: &tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
        body: &[u8],
    ) -> Result<(), NotifyError> {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let mut guard = session.lock().await;
        if guard.is_none() {
            let connection = settings
                .endpoint
                .connect(concat!("picket-collector/", env!("CARGO_PKG_VERSION")))
                .await?;
            let channel = connection
                .create_channel()
                .await
                .map_err(NotifyError::Channel)?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(NotifyError::Confirms)?;
            picket_common::amqp::declare_exchange(
                &channel,
                &settings.exchange,
                lapin::ExchangeKind::Topic,
            )
            .await
            .map_err(|source| NotifyError::Exchange {
                exchange: settings.exchange.clone(),
                source,
            })?;
            *guard = Some((connection, channel));
        }
        let (_, channel) = guard.as_ref().expect("set above");
        let outcome = async {
            let confirm = channel
                .basic_publish(
                    settings.exchange.as_str().into(),
                    settings.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    lapin::BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await
                .map_err(NotifyError::Publish)?;
            let confirm = tokio::time::timeout(Duration::from_secs(30), confirm)
                .await
                .map_err(|_| NotifyError::ConfirmTimeout)?
                .map_err(NotifyError::Publish)?;
            if confirm.is_nack() {
                return Err(NotifyError::Nacked);
            }
            Ok(())
        }
        .await;
        if outcome.is_err() {
            *guard = None;
        }
        outcome
    }

    /// Sends `alert`: up to 4 tries, 1 s, 2 s, 4 s apart.
    pub async fn send(&self, alert: &Alert) -> Result<(), NotifyError> {
        match self {
            Notifier::Irc(irc) => {
                irc.say(alert.document["channel"].as_str(), &one_line(alert))
                    .await;
                Ok(())
            }
            Notifier::Amqp { settings, session } => {
                let body = envelope(alert).to_string().into_bytes();
                with_retries(|| Notifier::publish(settings, session, &body)).await
            }
            Notifier::Webhook { settings, client } => {
                // An alert of an unknown severity counts as DEBUG. Lower discriminants
                // are more severe.
                let severity = alert.document["severity"]
                    .as_str()
                    .and_then(super::severity_named)
                    .unwrap_or(mozdef::Severity::Debug);
                if severity > settings.min_severity {
                    return Ok(());
                }
                let body = if settings.slack {
                    json!({ "text": one_line(alert) })
                } else {
                    envelope(alert)
                };
                with_retries(|| async {
                    match client.post(settings.url.clone()).json(&body).send().await {
                        Ok(response) if response.status().is_success() => Ok(()),
                        Ok(response) => Err(NotifyError::Status(response.status())),
                        Err(e) => Err(NotifyError::Request(e)),
                    }
                })
                .await
            }
        }
    }
}
