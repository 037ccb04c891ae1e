//! The AMQP(S) shipper: publishes each event to RabbitMQ in MozDef's layout.
//!
//! - Exchange `eventtask` (direct, durable) and routing key `eventtask`, both
//!   configurable; the queue (`eventtask`, as MozDef's workers declare it) is declared
//!   durable and bound, so events wait in the broker even before any consumer (the
//!   collector) has started. `queue = ""` leaves queues to the broker's operators.
//! - Persistent messages (`delivery_mode` 2), `content_type: application/json`,
//!   `message_id` = the event's `eventid` (consumers can drop redeliveries by it).
//!   With `events_per_message` above 1, up to that many events a message instead,
//!   one JSON object a line (`content_type: application/x-ndjson`, the count in the
//!   header `x-picket-events`, no `message_id`): the broker's cost is per message, so
//!   packing multiplies what one queue takes; only picket-collector reads them.
//! - Publisher confirms: a batch counts as delivered only once the broker has
//!   confirmed every message in it; a nack, an unroutable return (`mandatory`), a
//!   timeout or a lost connection makes the whole batch [`Outcome::Retry`] — it stays in
//!   the disk buffer and is published again (at least once; the collector stores by
//!   `eventid`, so a repeat is not a duplicate).
//! - Our own reconnect: a failed session is dropped and the next batch builds a new
//!   connection and channel (the pipeline's backoff spaces the attempts).
//! - Throughput: a batch's messages are all handed to lapin before any is awaited, so
//!   its I/O thread writes them in a few large TLS writes instead of one per message;
//!   several batches may be in flight (`max_in_flight`) on one connection, each on a
//!   confirm-mode channel of its own: lapin pairs a returned (unroutable) message with
//!   whichever confirm of its channel completes next, so two batches on one channel
//!   could trade a return, and the batch that lost a message be counted delivered.
//! - TLS with rustls: the configured CA (plus the public web roots, lapin's root
//!   store), a client certificate, and PLAIN or EXTERNAL login.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use picket_common::amqp::{AmqpError, declare_exchange, declare_queue, packed};
use thiserror::Error;
use tracing::{info, warn};

use self::config::AmqpSettings;
use super::Outcome;
use crate::buffer::Records;

/// Publishes batches to one broker, reconnecting as needed. Batches in flight share
/// the session.
pub struct AmqpShipper {
    settings: AmqpSettings,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

struct Session {
    connection: Connection,
    /// Confirm-mode channels no batch is using (one per batch in flight at most).
    idle: std::sync::Mutex<Vec<Channel>>,
}

/// Why a batch was not published (the batch is retried).
#[derive(Debug, Error)]
enum PublishError {
    #[error(transparent)]
    Connect(#[from] AmqpError),
    #[error("the broker did not answer the channel setup in time")]
    SetupTimeout,
    #[error("cannot set up the exchange and queue: {0}{hint}", hint = picket_common::amqp::setup_hint(.0))]
    Setup(lapin::Error),
    #[error("publish failed: {0}")]
    Publish(lapin::Error),
    #[error("confirmation lost: {0}")]
    Confirm(lapin::Error),
    #[error(
        "the broker could not route a message ({code} {text}): no queue is bound to exchange {exchange:?} with routing key {routing_key:?}"
    )]
    Unroutable {
        code: u16,
        text: String,
        exchange: String,
        routing_key: String,
    },
    #[error("the broker refused (nacked) a message")]
    Nacked,
    #[error("the broker did not confirm {count} messages within {within:?}")]
    NotConfirmed { count: usize, within: Duration },
}

impl AmqpShipper {
    /// A shipper that connects at its first batch.
    pub fn new(settings: AmqpSettings) -> AmqpShipper {
        AmqpShipper {
            settings,
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// The broker URL and exchange, for logs (no credentials).
    pub fn destination(&self) -> String {
        format!(
            "{} exchange {:?} routing key {:?}",
            self.settings.endpoint.describe(),
            self.settings.exchange,
            self.settings.routing_key
        )
    }

    async fn connect(&self) -> Result<Session, PublishError> {
        let connection = self
            .settings
            .endpoint
            .connect(concat!("picket-agent/", env!("CARGO_PKG_VERSION")))
            .await?;
        let session = Session {
            connection,
            idle: std::sync::Mutex::new(Vec::new()),
        };
        let setup = async {
            let channel = session.open_channel().await?;
            let settings = &self.settings;
            declare_exchange(&channel, &settings.exchange, ExchangeKind::Direct).await?;
            if !settings.queue.is_empty() {
                declare_queue(
                    &channel,
                    &settings.queue,
                    settings.queue_type,
                    Some((&settings.exchange, &settings.routing_key)),
                )
                .await?;
            }
            Ok::<Channel, lapin::Error>(channel)
        };
        let channel = tokio::time::timeout(self.settings.endpoint.timeout, setup)
            .await
            .map_err(|_| PublishError::SetupTimeout)?
            .map_err(PublishError::Setup)?;
        info!(destination = %self.destination(), "Connected to RabbitMQ.");
        session.put_back(channel);
        Ok(session)
    }

    /// `validate --connect`: connects with the configured TLS and login, and declares
    /// the exchange (and queue) as a first batch would; the connection is closed after.
    pub async fn check(&self) -> Result<String, String> {
        // A connection may try every node of a cluster, each within the timeout.
        let nodes = self.settings.endpoint.urls.len() as u32;
        match tokio::time::timeout(self.settings.endpoint.timeout * (nodes + 1), self.connect())
            .await
        {
            Ok(Ok(session)) => {
                close(&session, "connectivity check done").await;
                Ok(format!(
                    "connected, logged in, exchange {:?} declared",
                    self.settings.exchange
                ))
            }
            Ok(Err(e)) => Err(format!("{e}")),
            Err(_) => {
                Err("no answer in time (timeout_secs): a firewall, or the wrong address".into())
            }
        }
    }

    /// The session batches publish on: the current one while it is connected, else a
    /// new one (the old one closed).
    async fn session(&self) -> Result<Arc<Session>, PublishError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current
            .as_ref()
            .filter(|s| s.connection.status().connected())
        {
            return Ok(Arc::clone(session));
        }
        if let Some(old) = current.take() {
            warn!("The RabbitMQ connection was lost; reconnecting.");
            close(&old, "reconnecting").await;
        }
        let session = Arc::new(self.connect().await?);
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Publishes every record and waits for the broker to confirm them all.
    pub async fn send(&self, records: Records<'_>) -> Outcome {
        let session = match self.session().await {
            Ok(session) => session,
            Err(reason) => {
                return Outcome::Retry {
                    reason: format!("{}: {reason}", self.settings.endpoint.current_url()),
                    after: None,
                };
            }
        };
        let outcome = tokio::time::timeout(self.settings.endpoint.timeout, async {
            let channel = session.channel().await?;
            publish_all(&channel, &self.settings, records).await?;
            session.put_back(channel);
            Ok(())
        })
        .await
        .unwrap_or_else(|_| {
            Err(PublishError::NotConfirmed {
                count: records.len(),
                within: self.settings.endpoint.timeout,
            })
        });
        match outcome {
            Ok(()) => Outcome::Delivered {
                rejected: Vec::new(),
            },
            Err(reason) => {
                // Start over on a fresh connection: the channel may be in any state.
                // Other batches in flight on it fail and retry too.
                let mut current = self.session.lock().await;
                let failed_on = self.settings.endpoint.current_url().to_string();
                if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &session)) {
                    *current = None;
                    drop(current);
                    close(&session, "retrying").await;
                    // The next session starts at another node of a cluster.
                    self.settings.endpoint.pass_over();
                }
                Outcome::Retry {
                    reason: format!("{failed_on}: {reason}"),
                    after: None,
                }
            }
        }
    }
}

impl Session {
    /// A new channel in confirm mode.
    async fn open_channel(&self) -> Result<Channel, lapin::Error> {
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// A channel for one batch: an idle one, or a new one (the exchange and queue were
    /// declared when the session was made).
    async fn channel(&self) -> Result<Channel, PublishError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle.filter(|c| c.status().connected()) {
            Some(channel) => Ok(channel),
            None => self.open_channel().await.map_err(PublishError::Setup),
        }
    }

    /// A channel whose batch is done, for the next batch.
    fn put_back(&self, channel: Channel) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(channel);
        }
    }
}

/// Closes a session's connection, waiting at most a second for the broker.
async fn close(session: &Session, why: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        session.connection.close(200, why.into()),
    )
    .await;
}

/// Publishes the records, then awaits every confirmation. Every publish is started
/// before any is awaited: lapin queues their frames and its I/O thread serializes
/// what is queued into one buffer per write.
async fn publish_all(
    channel: &Channel,
    settings: &AmqpSettings,
    records: Records<'_>,
) -> Result<(), PublishError> {
    let publish = |payload, properties| publish_one(channel, settings, payload, properties);
    let confirms = if settings.events_per_message == 1 {
        try_join_all(records.iter().map(|record| {
            let payload = trim_newline(record);
            let mut properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into());
            if let Some(id) = event_id(payload) {
                properties = properties.with_message_id(id.into());
            }
            publish(payload, properties)
        }))
        .await
    } else {
        try_join_all(packs(records, settings.events_per_message).map(|pack| {
            let mut headers = FieldTable::default();
            headers.insert(
                packed::EVENTS_HEADER.into(),
                AMQPValue::LongUInt(pack.len() as u32),
            );
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(packed::CONTENT_TYPE.into())
                .with_headers(headers);
            publish(pack.bytes(), properties)
        }))
        .await
    }
    .map_err(PublishError::Publish)?;
    for confirm in confirms {
        match confirm.await.map_err(PublishError::Confirm)? {
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
            Confirmation::Ack(Some(returned)) => {
                return Err(PublishError::Unroutable {
                    code: returned.reply_code,
                    text: returned.reply_text.to_string(),
                    exchange: settings.exchange.clone(),
                    routing_key: settings.routing_key.clone(),
                });
            }
            Confirmation::Nack(_) => return Err(PublishError::Nacked),
        }
    }
    Ok(())
}

/// Starts publishing one message (mandatory: an unroutable one comes back).
fn publish_one<'a>(
    channel: &'a Channel,
    settings: &'a AmqpSettings,
    payload: &'a [u8],
    properties: BasicProperties,
) -> impl Future<Output = lapin::Result<impl Future<Output = lapin::Result<Confirmation>> + use<'a>>> + 'a
{
    channel.basic_publish(
        settings.exchange.as_str().into(),
        settings.routing_key.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        payload,
        properties,
    )
}

/// Most bytes a packed message holds (unless one event alone is more): RabbitMQ 4
/// refuses messages over 16 MiB by default (`max_message_size`), and a refused
/// message would be published again as it was, for ever.
const MAX_PACK_BYTES: usize = 8 << 20;

/// The records cut into runs of at most `per_message` events and [`MAX_PACK_BYTES`]
/// (at least one event a run), each one message's body (the records lie one after the
/// other, so each run is one slice, newlines kept).
fn packs(records: Records<'_>, per_message: usize) -> impl Iterator<Item = Records<'_>> {
    let mut rest = records;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut take = 0;
        let mut bytes = 0;
        for record in rest.iter().take(per_message) {
            if take > 0 && bytes + record.len() > MAX_PACK_BYTES {
                break;
            }
            bytes += record.len();
            take += 1;
        }
        let (pack, after) = rest.split_at(take);
        rest = after;
        Some(pack)
    })
}

fn trim_newline(record: &[u8]) -> &[u8] {
    record.strip_suffix(b"\n").unwrap_or(record)
}

/// The `eventid` of a serialized event: read off the front of the agent's own lines
/// (`{"eventid":"<32 hex>",…`), else found by decoding.
fn event_id(record: &[u8]) -> Option<String> {
    if let Some(id) = record
        .strip_prefix(b"{\"eventid\":\"")
        .and_then(|rest| rest.get(..33))
        .filter(|id| id[32] == b'"' && id[..32].iter().all(u8::is_ascii_hexdigit))
    {
        return Some(String::from_utf8_lossy(&id[..32]).into_owned());
    }
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        eventid: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Id<'_>>(record)
        .ok()
        .map(|id| id.eventid.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_are_runs_of_whole_records() {
        let bytes = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n{\"e\":5}\n";
        let ends = [8, 16, 24, 32, 40];
        let records = Records::from_parts(bytes, &ends);
        let bodies: Vec<&[u8]> = packs(records, 2).map(|p| p.bytes()).collect();
        assert_eq!(
            bodies,
            [
                &b"{\"a\":1}\n{\"b\":2}\n"[..],
                b"{\"c\":3}\n{\"d\":4}\n",
                b"{\"e\":5}\n"
            ]
        );
        assert_eq!(packs(records, 1000).count(), 1);
        assert_eq!(packs(records, 1).count(), 5);
        assert_eq!(packs(Records::from_parts(b"", &[]), 3).count(), 0);
        // Cut by bytes too: 3 MiB records, 8 MiB a message at most; a record larger
        // than that goes alone.
        let big = vec![b'x'; 3 << 20];
        let huge = vec![b'y'; 9 << 20];
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for record in [&big, &big, &big, &huge, &big] {
            bytes.extend_from_slice(record);
            ends.push(bytes.len());
        }
        let sizes: Vec<usize> = packs(Records::from_parts(&bytes, &ends), 1000)
            .map(|p| p.len())
            .collect();
        assert_eq!(sizes, [2, 1, 1, 1]);
    }

    #[test]
    fn the_message_id_is_the_event_id() {
        let record = b"{\"eventid\":\"0123456789abcdef0123456789abcdef\",\"summary\":\"x\"}\n";
        assert_eq!(
            event_id(trim_newline(record)).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(event_id(b"{\"summary\":\"no id\"}"), None);
        // Not first, or not the agent's shape: found by decoding.
        let record = b"{\"summary\":\"x\",\"eventid\":\"abc\"}";
        assert_eq!(event_id(record).as_deref(), Some("abc"));
        let record = b"{\"eventid\":\"0123456789abcdef0123456789abcdeX\"}";
        assert_eq!(
            event_id(record).as_deref(),
            Some("0123456789abcdef0123456789abcdeX")
        );
    }
}
