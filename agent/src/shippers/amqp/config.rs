//! `[agent.shippers.amqp]`: its keys, their defaults, and the checked settings the
//! AMQP shipper runs on.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use picket_common::amqp::AmqpAuth;
use picket_common::amqp::{AmqpEndpoint, EndpointConfig};
use picket_common::config::KeyError;

use crate::shippers::common::{
    Batching, check_timeout, default_batch_max_events, default_max_in_flight, default_timeout_secs,
};

/// `[agent.shippers.amqp]`: MozDef's RabbitMQ layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpShipperConfig {
    /// `amqp://` or `amqps://host:port/vhost` (no credentials in it: see below).
    pub url: String,
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
    /// Messages per batch (awaiting the broker's confirms together).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
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

/// The checked AMQP shipper settings.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// The broker, its login and TLS.
    pub endpoint: AmqpEndpoint,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
}

impl AmqpShipperConfig {
    /// The checked settings and how batches are cut, or the key that is wrong.
    pub fn build(&self) -> Result<(AmqpSettings, Batching), KeyError> {
        check_timeout("agent.shippers.amqp.timeout_secs", self.timeout_secs)?;
        let endpoint = AmqpEndpoint::build(EndpointConfig {
            table: "agent.shippers.amqp",
            url: &self.url,
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
        };
        Ok((settings, batching))
    }
}
