//! `[collector.amqp]`: the RabbitMQ queue the collector consumes (MozDef's `eventtask`
//! layout), its defaults, and the checked [`AmqpSettings`] the consumer runs on.

use std::path::PathBuf;
use std::time::Duration;

use picket_common::amqp::{AmqpAuth, AmqpEndpoint, EndpointConfig, QueueType};
use picket_common::config::{KeyError, at_least_one};
use serde::Deserialize;

/// `[collector.amqp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://` or `amqps://host:port/vhost`, without credentials.
    #[serde(default)]
    pub url: Option<String>,
    /// Or the nodes of a RabbitMQ cluster: the consumer connects to the node that last
    /// took it, else to the next that answers, in order. Set url or urls, not both.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The queue consumed (declared durable).
    #[serde(default = "default_eventtask")]
    pub queue: String,
    /// `classic` (MozDef's) or `quorum` (replicated over a cluster's nodes), for the
    /// queue and the dead-letter queue. Must match the queues' type if they exist.
    #[serde(default)]
    pub queue_type: QueueType,
    /// The exchange the queue is bound to (declared direct and durable).
    #[serde(default = "default_eventtask")]
    pub exchange: String,
    /// The binding's routing key.
    #[serde(default = "default_eventtask")]
    pub routing_key: String,
    /// Where messages that are not events go, with the reason in a header (declared
    /// durable).
    #[serde(default = "default_dead_letter_queue")]
    pub dead_letter_queue: String,
    /// Most unacknowledged messages held at once; they are stored as one batch.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// User name for PLAIN login.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the password (env `PICKET_COLLECTOR_AMQP_PASSWORD_FILE`
    /// overrides).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `plain` or `external` (the client certificate's name).
    #[serde(default)]
    pub auth: AmqpAuth,
    /// PEM CA certificates the broker's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_eventtask() -> String {
    "eventtask".to_string()
}
fn default_dead_letter_queue() -> String {
    "eventtask.invalid".to_string()
}
fn default_prefetch() -> u16 {
    1000
}

/// The checked `[collector.amqp]`.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// The broker, its login and TLS.
    pub endpoint: AmqpEndpoint,
    pub queue: String,
    pub queue_type: QueueType,
    pub exchange: String,
    pub routing_key: String,
    pub dead_letter_queue: String,
    pub prefetch: u16,
}

/// Longest a connection attempt to the broker may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl AmqpConfig {
    pub fn build(&self) -> Result<AmqpSettings, KeyError> {
        let endpoint = AmqpEndpoint::build(EndpointConfig {
            table: "collector.amqp",
            url: &self.url,
            urls: &self.urls,
            username: &self.username,
            password_file: &self.password_file,
            password_env: "PICKET_COLLECTOR_AMQP_PASSWORD_FILE",
            auth: self.auth,
            ca_file: &self.ca_file,
            client_cert_file: &self.client_cert_file,
            client_key_file: &self.client_key_file,
            timeout: CONNECT_TIMEOUT,
        })?;
        for (key, value) in [
            ("collector.amqp.queue", &self.queue),
            ("collector.amqp.exchange", &self.exchange),
            ("collector.amqp.dead_letter_queue", &self.dead_letter_queue),
        ] {
            if value.is_empty() {
                return Err(KeyError::new(key, "must not be empty"));
            }
        }
        at_least_one("collector.amqp.prefetch", u64::from(self.prefetch))?;
        Ok(AmqpSettings {
            endpoint,
            queue: self.queue.clone(),
            queue_type: self.queue_type,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            dead_letter_queue: self.dead_letter_queue.clone(),
            prefetch: self.prefetch,
        })
    }
}
