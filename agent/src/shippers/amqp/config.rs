//! `[agent.shippers.amqp]`: its keys, their defaults, and the checked settings the
//! AMQP shipper runs on.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use picket_common::amqp::AmqpAuth;
use picket_common::amqp::{AmqpEndpoint, EndpointConfig, QueueType};
use picket_common::config::KeyError;

use crate::shippers::common::{
    Batching, check_timeout, default_batch_max_events, default_max_in_flight, default_timeout_secs,
};

/// `[agent.shippers.amqp]`: MozDef's RabbitMQ layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpShipperConfig {
    /// `amqp://` or `amqps://host:port/vhost` (no credentials in it: see below).
    #[serde(default)]
    pub url: Option<String>,
    /// Or the nodes of a RabbitMQ cluster: batches go to the node that last took them,
    /// else to the next that answers, in order. Set url or urls, not both.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Exchange events are published to (declared direct and durable).
    #[serde(default = "default_eventtask")]
    pub exchange: String,
    /// Routing key of every message.
    #[serde(default = "default_eventtask")]
    pub routing_key: String,
    /// Queue declared durable and bound to the exchange with the routing key, so events
    /// wait in the broker until a consumer takes them; empty: declare none.
    #[serde(default = "default_eventtask")]
    pub queue: String,
    /// `classic` (MozDef's) or `quorum` (replicated over a cluster's nodes; what a
    /// RabbitMQ cluster should run). Must match the queue's type if it exists.
    #[serde(default)]
    pub queue_type: QueueType,
    /// User name for PLAIN authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (env `PICKET_AGENT_AMQP_PASSWORD_FILE` overrides).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `plain` (user name and password) or `external` (the client certificate's name).
    #[serde(default)]
    pub auth: AmqpAuth,
    /// PEM CA certificates the broker's certificate must chain to (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Events per batch (their messages awaiting the broker's confirms together).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Events packed into one message: 1 (the default) is MozDef's layout, one JSON
    /// event per message, which MozDef's own workers read; more sends up to this many
    /// as newline-separated JSON (`content_type: application/x-ndjson`, at most 8 MiB a
    /// message), which only picket-collector reads. The broker's cost is per message:
    /// on 2 cores RabbitMQ confirms ~16,000 persistent messages a second, so 100 raises
    /// a queue's rate tenfold and more.
    #[serde(default = "default_events_per_message")]
    pub events_per_message: usize,
    /// Batches published before the first of them is confirmed (acknowledged in
    /// order).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Longest wait for the broker to connect or confirm, in seconds.
    #[serde(
        default = "default_timeout_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub timeout_secs: u64,
}

fn default_eventtask() -> String {
    "eventtask".to_string()
}

fn default_events_per_message() -> usize {
    1
}

/// Most events `events_per_message` may pack (a packed message is also cut at 8 MiB,
/// under RabbitMQ 4's 16 MiB default `max_message_size`).
pub const MAX_EVENTS_PER_MESSAGE: usize = 1000;

/// The checked AMQP shipper settings.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// The broker, its login and TLS.
    pub endpoint: AmqpEndpoint,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub queue_type: QueueType,
    /// Events per message (1: MozDef's layout; more: NDJSON).
    pub events_per_message: usize,
}

impl AmqpShipperConfig {
    /// The checked settings and how batches are cut, or the key that is wrong.
    pub fn build(&self) -> Result<(AmqpSettings, Batching), KeyError> {
        check_timeout("agent.shippers.amqp.timeout_secs", self.timeout_secs)?;
        let endpoint = AmqpEndpoint::build(EndpointConfig {
            table: "agent.shippers.amqp",
            url: &self.url,
            urls: &self.urls,
            username: &self.username,
            password_file: &self.password_file,
            password_env: "PICKET_AGENT_AMQP_PASSWORD_FILE",
            auth: self.auth,
            ca_file: &self.ca_file,
            client_cert_file: &self.client_cert_file,
            client_key_file: &self.client_key_file,
            timeout: Duration::from_secs(self.timeout_secs),
        })?;
        if self.exchange.is_empty() {
            return Err(KeyError::new(
                "agent.shippers.amqp.exchange",
                "must not be empty",
            ));
        }
        if !(1..=MAX_EVENTS_PER_MESSAGE).contains(&self.events_per_message) {
            return Err(KeyError::new(
                "agent.shippers.amqp.events_per_message",
                format!(
                    "must be 1 (one event per message, MozDef's layout) to {MAX_EVENTS_PER_MESSAGE}, not {}",
                    self.events_per_message
                ),
            ));
        }
        let batching = Batching::checked(
            "agent.shippers.amqp",
            self.batch_max_events,
            self.max_in_flight,
        )?;
        let settings = AmqpSettings {
            endpoint,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            queue: self.queue.clone(),
            queue_type: self.queue_type,
            events_per_message: self.events_per_message,
        };
        Ok((settings, batching))
    }
}
