//! A RabbitMQ endpoint as a config table names it (`url`, `username`,
//! `password_file`, `auth`, `ca_file`, `client_cert_file`, `client_key_file`), checked
//! once, and the connection to it. The agent's shipper, the collector's consumer and
//! its alert notifier all connect through [`AmqpEndpoint::connect`]; what each declares
//! on the channel is its own.

use std::path::PathBuf;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;
use thiserror::Error;

use crate::config::KeyError;
use crate::secret::{Secret, configured_secret};
use crate::tls::{TlsFiles, TlsKeys, tls_files};

/// How the client logs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmqpAuth {
    /// User name and password.
    #[default]
    Plain,
    /// The client certificate's name (RabbitMQ's `rabbitmq_auth_mechanism_ssl`).
    External,
}

/// Why a connection failed.
#[derive(Debug, Error)]
pub enum AmqpError {
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(lapin::Error),
}

/// The endpoint keys of a config table, as read by serde.
pub struct EndpointConfig<'a> {
    /// The table (`collector.amqp`), for the keys in errors.
    pub table: &'a str,
    pub url: &'a str,
    pub username: &'a Option<String>,
    pub password_file: &'a Option<PathBuf>,
    /// The environment variable naming a password file that wins over `password_file`.
    pub password_env: &'a str,
    pub auth: AmqpAuth,
    pub ca_file: &'a Option<PathBuf>,
    pub client_cert_file: &'a Option<PathBuf>,
    pub client_key_file: &'a Option<PathBuf>,
    /// Longest a connection attempt may take.
    pub timeout: Duration,
}

/// A checked endpoint. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct AmqpEndpoint {
    /// As configured, without credentials: safe to log.
    pub url: reqwest::Url,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub auth: AmqpAuth,
    pub tls: TlsFiles,
    pub timeout: Duration,
}

impl AmqpEndpoint {
    /// Checks the table's endpoint keys and reads its files.
    pub fn build(config: EndpointConfig<'_>) -> Result<AmqpEndpoint, KeyError> {
        let key = |name: &str| format!("{}.{name}", config.table);
        let url = reqwest::Url::parse(config.url)
            .map_err(|e| KeyError::new(key("url"), format!("{:?}: {e}", config.url)))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(KeyError::new(
                key("url"),
                "must be an amqp:// or amqps:// URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(KeyError::new(
                key("url"),
                "must not hold credentials: set username and password_file",
            ));
        }
        let tls = tls_files(
            &TlsKeys::of(config.table),
            config.ca_file,
            config.client_cert_file,
            config.client_key_file,
        )?;
        let password = configured_secret(
            &key("password_file"),
            config.password_env,
            config.password_file,
        )?;
        match config.auth {
            AmqpAuth::External if tls.client.is_none() || url.scheme() != "amqps" => {
                return Err(KeyError::new(
                    key("auth"),
                    "external needs an amqps:// URL and a client certificate",
                ));
            }
            AmqpAuth::Plain if config.username.is_some() != password.is_some() => {
                return Err(KeyError::new(
                    key("password_file"),
                    "username and password_file go together",
                ));
            }
            _ => {}
        }
        Ok(AmqpEndpoint {
            url,
            username: config.username.clone(),
            password,
            auth: config.auth,
            tls,
            timeout: config.timeout,
        })
    }

    /// The URI lapin connects with: credentials, login mechanism, heartbeat and
    /// connect timeout added to the configured URL. Never log it.
    pub fn uri(&self) -> String {
        let mut url = self.url.clone();
        if self.auth == AmqpAuth::Plain
            && let (Some(user), Some(password)) = (&self.username, &self.password)
        {
            let _ = url.set_username(user);
            let _ = url.set_password(Some(password.expose()));
        }
        let mechanism = match self.auth {
            AmqpAuth::Plain => "plain",
            AmqpAuth::External => "external",
        };
        let timeout_ms = self.timeout.as_millis().to_string();
        url.query_pairs_mut()
            .append_pair("auth_mechanism", mechanism)
            .append_pair("heartbeat", "30")
            .append_pair("connection_timeout", &timeout_ms);
        url.to_string()
    }

    /// Connects, as `client` (`picket-agent/0.1.0`: the connection name the broker's
    /// management UI shows).
    pub async fn connect(&self, client: &str) -> Result<Connection, AmqpError> {
        // Read at load time: a reconnect does not go back to the disk.
        let config = OwnedTLSConfig {
            identity: self.tls.client.as_ref().map(|c| OwnedIdentity::PKCS8 {
                pem: c.cert_pem.clone(),
                key: c.key_pem.clone(),
            }),
            cert_chain: self
                .tls
                .ca_pem
                .as_ref()
                .map(|pem| String::from_utf8_lossy(pem).into_owned()),
        };
        let runtime = lapin::runtime::default_runtime().map_err(AmqpError::Connect)?;
        let properties = ConnectionProperties::default().with_connection_name(client.into());
        let uri = self.uri();
        let connect = Connection::connect_with_config(&uri, properties, config, runtime);
        tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| AmqpError::Timeout(self.timeout))?
            .map_err(AmqpError::Connect)
    }
}

/// Declares the durable exchange `name` of `kind` (an existing one must match).
pub async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> lapin::Result<()> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Declares the durable queue `queue`, bound to `exchange` with `routing_key` when a
/// binding is given: messages wait in the broker until a consumer takes them.
pub async fn declare_queue(
    channel: &Channel,
    queue: &str,
    binding: Option<(&str, &str)>,
) -> lapin::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    if let Some((exchange, routing_key)) = binding {
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(
        url: &str,
        username: &Option<String>,
        auth: AmqpAuth,
    ) -> Result<AmqpEndpoint, KeyError> {
        AmqpEndpoint::build(EndpointConfig {
            table: "collector.alerts.amqp",
            url,
            username,
            password_file: &None,
            password_env: "PICKET_TEST_UNSET_PASSWORD_FILE",
            auth,
            ca_file: &None,
            client_cert_file: &None,
            client_key_file: &None,
            timeout: Duration::from_secs(5),
        })
    }

    #[test]
    fn keys_in_errors_are_the_tables() {
        let err = endpoint("http://x/", &None, AmqpAuth::Plain).unwrap_err();
        assert_eq!(err.key, "collector.alerts.amqp.url");
        let err = endpoint("amqp://u:p@x/", &None, AmqpAuth::Plain).unwrap_err();
        assert!(err.message.contains("credentials"), "{err}");
        let err = endpoint("amqp://x/", &Some("u".into()), AmqpAuth::Plain).unwrap_err();
        assert_eq!(err.key, "collector.alerts.amqp.password_file");
        let err = endpoint("amqp://x/", &None, AmqpAuth::External).unwrap_err();
        assert_eq!(err.key, "collector.alerts.amqp.auth");
        let ok = endpoint("amqp://x:5672/%2f", &None, AmqpAuth::Plain).unwrap();
        assert!(
            ok.uri().contains("auth_mechanism=plain")
                && ok.uri().contains("connection_timeout=5000")
        );
    }
}

/// Packed messages: several events in one message, one JSON object a line (the agent's
/// `events_per_message`; only picket-collector reads them). RabbitMQ's cost is per
/// message, so packing multiplies what a queue carries.
pub mod packed {
    /// The content type of a packed message.
    pub const CONTENT_TYPE: &str = "application/x-ndjson";
    /// The header giving a packed message's event count (for people looking at a queue).
    pub const EVENTS_HEADER: &str = "x-picket-events";

    /// Whether a message's `content_type` says it is packed (parameters such as
    /// `; charset=utf-8` and case ignored).
    pub fn is_packed(content_type: Option<&str>) -> bool {
        content_type.is_some_and(|t| {
            let media_type = t.split(';').next().unwrap_or_default();
            media_type.trim().eq_ignore_ascii_case(CONTENT_TYPE)
        })
    }

    /// A packed message's events with their line numbers (from 1), blank lines skipped.
    pub fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
        data.split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn packed_is_told_by_the_media_type_and_blank_lines_are_no_events() {
            assert!(is_packed(Some("application/x-ndjson")));
            assert!(is_packed(Some("Application/X-NDJSON; charset=utf-8")));
            assert!(!is_packed(Some("application/json")));
            assert!(!is_packed(None));
            let lines: Vec<_> = lines(b"{\"a\":1}\r\n\n  \n{\"b\":2}").collect();
            assert_eq!(lines, [(1, &b"{\"a\":1}"[..]), (4, &b"{\"b\":2}"[..])]);
        }
    }
}
