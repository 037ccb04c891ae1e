//! `[agent.shippers.amqp]`: its keys, their defaults, and the checked settings the
//! AMQP shipper runs on.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::key::KeyError;
use crate::shippers::common::{
    TlsFiles, check_batch, check_timeout, default_batch_max_events, default_timeout_secs,
    read_secret, secret_path, tls_files,
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
    /// Most unconfirmed messages at once (one buffer batch).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Longest wait for the broker to connect or confirm, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// How the AMQP shipper logs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmqpAuth {
    #[default]
    Plain,
    External,
}

fn default_eventtask() -> String {
    "eventtask".to_string()
}

/// The checked AMQP shipper settings.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// Without credentials; they are added when connecting.
    pub url: reqwest::Url,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub auth: AmqpAuth,
    pub tls: TlsFiles,
    pub timeout: Duration,
}

impl AmqpShipperConfig {
    /// The checked settings and the batch size, or the key that is wrong.
    pub fn build(&self) -> Result<(AmqpSettings, usize), KeyError> {
        const KEY: &str = "agent.shippers.amqp.url";
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| KeyError::new(KEY, format!("{:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(KeyError::new(KEY, "must be an amqp:// or amqps:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(KeyError::new(
                KEY,
                "must not hold credentials: set username and password_file",
            ));
        }
        if self.exchange.is_empty() {
            return Err(KeyError::new(
                "agent.shippers.amqp.exchange",
                "must not be empty",
            ));
        }
        check_batch(
            "agent.shippers.amqp.batch_max_events",
            self.batch_max_events,
        )?;
        check_timeout("agent.shippers.amqp.timeout_secs", self.timeout_secs)?;
        let tls = tls_files(
            &[
                "agent.shippers.amqp.ca_file",
                "agent.shippers.amqp.client_cert_file",
                "agent.shippers.amqp.client_key_file",
            ],
            &self.ca_file,
            &self.client_cert_file,
            &self.client_key_file,
        )?;
        let password = secret_path("PICKET_AGENT_AMQP_PASSWORD_FILE", &self.password_file)
            .map(|path| read_secret("agent.shippers.amqp.password_file", &path))
            .transpose()?;
        match self.auth {
            AmqpAuth::External if tls.client.is_none() || url.scheme() != "amqps" => {
                return Err(KeyError::new(
                    "agent.shippers.amqp.auth",
                    "external needs an amqps:// URL and a client certificate",
                ));
            }
            AmqpAuth::Plain if self.username.is_some() != password.is_some() => {
                return Err(KeyError::new(
                    "agent.shippers.amqp.password_file",
                    "username and password_file go together",
                ));
            }
            _ => {}
        }
        let settings = AmqpSettings {
            url,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            queue: self.queue.clone(),
            username: self.username.clone(),
            password,
            auth: self.auth,
            tls,
            timeout: Duration::from_secs(self.timeout_secs),
        };
        Ok((settings, self.batch_max_events))
    }
}
