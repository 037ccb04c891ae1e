//! A RabbitMQ endpoint as a config table names it (`url` or `urls`, `username`,
//! `password_file`, `auth`, `ca_file`, `client_cert_file`, `client_key_file`), checked
//! once, and the connection to it. With `urls` (the nodes of a cluster), a connection
//! goes to the node that last worked, else to the next that answers, in order. The agent's shipper, the collector's consumer and
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
    #[error("no node connected: {0}")]
    Nodes(String),
}

/// The endpoint keys of a config table, as read by serde.
pub struct EndpointConfig<'a> {
    /// The table (`collector.amqp`), for the keys in errors.
    pub table: &'a str,
    /// One broker...
    pub url: &'a Option<String>,
    /// ...or the nodes of a cluster (one of the two).
    pub urls: &'a [String],
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
    /// As configured, without credentials: safe to log. The first is `url`'s, or the
    /// first of `urls`.
    pub url: reqwest::Url,
    /// Every node, `url` first.
    pub urls: Vec<reqwest::Url>,
    /// The node that connected last (an index into `urls`): tried first next time.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
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
        let (name, texts): (&str, Vec<&str>) = match (config.url, config.urls.is_empty()) {
            (Some(_), false) => {
                return Err(KeyError::new(key("urls"), "set url or urls, not both"));
            }
            (Some(url), true) => ("url", vec![url.as_str()]),
            (None, false) => ("urls", config.urls.iter().map(String::as_str).collect()),
            (None, true) => {
                return Err(KeyError::new(
                    key("url"),
                    "set url (one broker) or urls (the nodes of a cluster)",
                ));
            }
        };
        let mut urls = Vec::with_capacity(texts.len());
        for text in texts {
            let url = reqwest::Url::parse(text)
                .map_err(|e| KeyError::new(key(name), format!("{text:?}: {e}")))?;
            if !matches!(url.scheme(), "amqp" | "amqps") {
                return Err(KeyError::new(
                    key(name),
                    format!("{text:?} must be an amqp:// or amqps:// URL"),
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(KeyError::new(
                    key(name),
                    "must not hold credentials: set username and password_file",
                ));
            }
            urls.push(url);
        }
        let url = urls[0].clone();
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
            AmqpAuth::External
                if tls.client.is_none() || urls.iter().any(|u| u.scheme() != "amqps") =>
            {
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
            urls,
            current: Default::default(),
            username: config.username.clone(),
            password,
            auth: config.auth,
            tls,
            timeout: config.timeout,
        })
    }

    /// Every node, for logs: `amqps://a:5671/%2f, amqps://b:5671/%2f`.
    pub fn describe(&self) -> String {
        self.urls
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// After a session on the current node failed (a node that takes connections but
    /// cannot serve them: a partitioned minority, a queue it cannot reach), the next
    /// connection starts at the next node.
    pub fn pass_over(&self) {
        if self.urls.len() > 1 {
            self.current
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The node connected to last (or the first): safe to log.
    pub fn current_url(&self) -> &reqwest::Url {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed) % self.urls.len();
        &self.urls[i]
    }

    /// The URI lapin connects with: credentials, login mechanism, heartbeat and
    /// connect timeout added to the configured URL. Never log it.
    pub fn uri(&self) -> String {
        self.uri_of(&self.url)
    }

    fn uri_of(&self, url: &reqwest::Url) -> String {
        let mut url = url.clone();
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
    /// management UI shows), to the node that worked last, else to the next node that
    /// answers, in order (each within the timeout).
    pub async fn connect(&self, client: &str) -> Result<Connection, AmqpError> {
        let nodes = self.urls.len();
        let first = self.current.load(std::sync::atomic::Ordering::Relaxed) % nodes;
        let mut failures = Vec::new();
        for step in 0..nodes {
            let i = (first + step) % nodes;
            match self.connect_to(&self.urls[i], client).await {
                Ok(connection) => {
                    self.current.store(i, std::sync::atomic::Ordering::Relaxed);
                    return Ok(connection);
                }
                Err(e) if nodes == 1 => return Err(e),
                Err(e) => {
                    tracing::warn!(node = %self.urls[i], error = %e, "A RabbitMQ node did not take the connection; trying the next.");
                    failures.push(format!("{}: {e}", self.urls[i]));
                }
            }
        }
        Err(AmqpError::Nodes(failures.join("; ")))
    }

    async fn connect_to(&self, url: &reqwest::Url, client: &str) -> Result<Connection, AmqpError> {
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
        let uri = self.uri_of(url);
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

/// The kind of queue declared (`queue_type` in the config tables).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueType {
    /// RabbitMQ's classic queue, MozDef's: on one node of a cluster.
    #[default]
    Classic,
    /// A quorum queue, replicated on the cluster's nodes (Raft): it survives the loss
    /// of a minority of them. A queue's type is fixed when it is first declared: a
    /// classic `eventtask` must be deleted (or another name used) to become quorum.
    Quorum,
}

/// What an operator should know about a failed declaration, to follow its error:
/// RabbitMQ refuses (`406 PRECONDITION_FAILED`, "inequivalent arg") a queue or
/// exchange declared with other arguments than the existing one's, and a queue's type
/// never changes. Empty for any other error.
pub fn setup_hint(error: &lapin::Error) -> &'static str {
    let text = error.to_string();
    if text.contains("inequivalent arg 'x-queue-type'") {
        "; the queue exists with another type (a queue's type is fixed when first declared: \
         a classic queue never becomes quorum, nor the reverse). Drain it and delete it \
         (`rabbitmqctl delete_queue NAME`), or set `queue_type` to its type, or use another queue name"
    } else if text.contains("inequivalent arg") {
        "; the queue or exchange exists with other settings than this configuration's. \
         Delete it once drained, or use another name"
    } else {
        ""
    }
}

/// Declares the durable queue `queue` of `kind`, bound to `exchange` with
/// `routing_key` when a binding is given: messages wait in the broker until a consumer
/// takes them.
pub async fn declare_queue(
    channel: &Channel,
    queue: &str,
    kind: QueueType,
    binding: Option<(&str, &str)>,
) -> lapin::Result<()> {
    let mut arguments = FieldTable::default();
    if kind == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            lapin::types::AMQPValue::LongString("quorum".into()),
        );
    }
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
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
            url: &Some(url.to_string()),
            urls: &[],
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

    /// An endpoint of `url` or `urls` with no login or TLS.
    fn nodes(url: Option<&str>, urls: &[String]) -> Result<AmqpEndpoint, KeyError> {
        AmqpEndpoint::build(EndpointConfig {
            table: "agent.shippers.amqp",
            url: &url.map(str::to_string),
            urls,
            username: &None,
            password_file: &None,
            password_env: "PICKET_TEST_UNSET_PASSWORD_FILE",
            auth: AmqpAuth::Plain,
            ca_file: &None,
            client_cert_file: &None,
            client_key_file: &None,
            timeout: Duration::from_secs(5),
        })
    }

    #[test]
    fn a_cluster_is_its_nodes_in_order() {
        let list = |urls: &[&str]| urls.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let cluster = nodes(None, &list(&["amqp://a:5672/%2f", "amqp://b:5672/%2f"])).unwrap();
        assert_eq!(cluster.url.host_str(), Some("a"));
        assert_eq!(cluster.describe(), "amqp://a:5672/%2f, amqp://b:5672/%2f");
        assert_eq!(cluster.current_url().host_str(), Some("a"));
        let both = nodes(Some("amqp://a/"), &list(&["amqp://b/"])).unwrap_err();
        assert_eq!(both.key, "agent.shippers.amqp.urls");
        let none = nodes(None, &[]).unwrap_err();
        assert_eq!(none.key, "agent.shippers.amqp.url");
        let bad = nodes(None, &list(&["amqp://a/", "http://b/"])).unwrap_err();
        assert!(bad.message.contains("http://b/"), "{bad}");
    }

    #[tokio::test]
    async fn a_node_that_does_not_answer_is_passed_over() {
        // Two ports nothing listens on: both are tried, and the error names both.
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (a, b) = (free(), free());
        let endpoint = nodes(
            None,
            &[
                format!("amqp://127.0.0.1:{a}/%2f"),
                format!("amqp://127.0.0.1:{b}/%2f"),
            ],
        )
        .unwrap();
        let error = endpoint.connect("test").await.unwrap_err().to_string();
        assert!(
            error.contains(&a.to_string()) && error.contains(&b.to_string()),
            "{error}"
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
