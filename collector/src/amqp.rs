//! AMQP ingest: consumes MozDef's queue (`eventtask`, bound to the direct exchange
//! `eventtask` with routing key `eventtask`, all declared durable) as MozDef's
//! esworker does.
//!
//! - Each message body is one event: a MozDef JSON object, an agent's event, or
//!   syslog-ng's upper-case `format-json` (`HOST`, `PROGRAM`, `MESSAGE`, …), all
//!   normalized by `mozdef::normalize`; or, with `content_type:
//!   application/x-ndjson` (an agent's `events_per_message`), several events, one a
//!   line, each handled as a message of its own would be.
//! - Messages are taken in batches (up to `prefetch`, or what arrives in 100 ms),
//!   stored together, and **acknowledged only after the store has committed them**.
//!   A store failure requeues the batch (nack) and the consumer backs off.
//! - A message that is not an event (not JSON, not an object) is published to the
//!   dead-letter queue (declared by us, durable) with the reason in the header
//!   `x-picket-reason`, then acknowledged: moved, not lost. In a packed message only
//!   the bad line is moved (the reason names the line); its other events are stored.
//! - A lost connection (broker restart) is rebuilt by [`run`] with backoff; what was
//!   not acknowledged is redelivered by the broker and found stored by `eventid`
//!   (the first copy wins; a redelivery is identical and counts as stored). A
//!   message whose `eventid` is stored with a different body goes to the dead-letter
//!   queue like one that is not an event.
//! - `details.agentidentity` is the message's broker-validated `user_id` property, or
//!   absent: a sender cannot name itself.
//! - Event times are held to the collector's window (`max_event_age_days`,
//!   `max_event_future_hours`), as on HTTP.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_lite::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use picket_common::amqp::{AmqpError, declare_exchange, declare_queue, packed};
use picket_common::backoff;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::stores::{Document, Store, StoreError};

pub use self::config::AmqpSettings;

/// Longest a batch waits to fill once its first message arrived.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Events after which a batch stops gathering messages (packed messages hold many
/// each): a store call holds this many plus the last message's. What the broker hands
/// over before that is bounded by `prefetch` messages, not events.
const MAX_BATCH_EVENTS: usize = 20_000;
/// Events prefetched (messages × events a message) above which a warning suggests a
/// smaller `prefetch`.
const PREFETCH_EVENTS_WARNING: usize = 200_000;
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The wait after the first failure, doubled per failure after it.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Consumes until `stop` turns true, reconnecting after failures.
pub async fn run(
    settings: AmqpSettings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    reparser: Arc<crate::reparse::Reparser>,
    window: mozdef::normalize::TimeWindow,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt = 0u32;
    let ingest = Ingest {
        settings: &settings,
        store: &store,
        metrics: &metrics,
        reparser: &reparser,
        window,
    };
    loop {
        match session(&ingest, &mut stop, &mut attempt).await {
            Ok(()) => return,
            Err(reason) => {
                let delay = backoff::delay(FIRST_BACKOFF, MAX_BACKOFF, attempt);
                attempt = attempt.saturating_add(1);
                // The next session starts at another node of a cluster.
                settings.endpoint.pass_over();
                warn!(url = %settings.endpoint.describe(), reason = %reason, retry_in_ms = delay.as_millis() as u64, "AMQP ingest interrupted; reconnecting.");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Declares what we consume from and publish to.
async fn declare(channel: &Channel, settings: &AmqpSettings) -> lapin::Result<()> {
    declare_exchange(channel, &settings.exchange, ExchangeKind::Direct).await?;
    declare_queue(
        channel,
        &settings.queue,
        settings.queue_type,
        Some((&settings.exchange, &settings.routing_key)),
    )
    .await?;
    declare_queue(
        channel,
        &settings.dead_letter_queue,
        settings.queue_type,
        None,
    )
    .await?;
    Ok(())
}

/// Why a consuming session ended (the next one starts after a backoff).
#[derive(Debug, Error)]
enum SessionError {
    #[error(transparent)]
    Connect(#[from] AmqpError),
    #[error("cannot set up the queues: {0}{hint}", hint = picket_common::amqp::setup_hint(.0))]
    Setup(lapin::Error),
    #[error("consumer failed: {0}")]
    Consumer(lapin::Error),
    #[error("the broker ended the consumer")]
    ConsumerEnded,
    #[error("cannot move {what} to the dead-letter queue: {source}")]
    DeadLetter {
        what: &'static str,
        source: DeadLetterError,
    },
    #[error("store failed: {0}")]
    Store(StoreError),
    #[error("cannot acknowledge: {0}")]
    Ack(lapin::Error),
}

/// Why a message could not be moved to the dead-letter queue.
#[derive(Debug, Error)]
enum DeadLetterError {
    #[error("{0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not take it")]
    NotTaken,
}

/// What a session works with.
struct Ingest<'a> {
    settings: &'a AmqpSettings,
    store: &'a Store,
    metrics: &'a Metrics,
    reparser: &'a crate::reparse::Reparser,
    window: mozdef::normalize::TimeWindow,
}

/// One connection's life: consume batches until stopped (Ok) or failed (Err).
async fn session(
    ingest: &Ingest<'_>,
    stop: &mut watch::Receiver<bool>,
    attempt: &mut u32,
) -> Result<(), SessionError> {
    let settings = ingest.settings;
    let connection = settings
        .endpoint
        .connect(concat!("picket-collector/", env!("CARGO_PKG_VERSION")))
        .await?;
    let setup = async {
        let consume = connection.create_channel().await?;
        declare(&consume, settings).await?;
        consume
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        let dead = connection.create_channel().await?;
        dead.confirm_select(ConfirmSelectOptions::default()).await?;
        let consumer = consume
            .basic_consume(
                settings.queue.as_str().into(),
                "picket-collector".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((consume, dead, consumer))
    };
    let (consume, dead, mut consumer) = setup.await.map_err(SessionError::Setup)?;
    info!(url = %settings.endpoint.current_url(), queue = %settings.queue, prefetch = settings.prefetch, "Consuming events from RabbitMQ.");
    *attempt = 0;
    let mut warned_prefetch = false;
    loop {
        let first = tokio::select! {
            next = consumer.next() => next,
            _ = stop.changed() => {
                info!("AMQP ingest stopping.");
                let _ = connection.close(200, "collector stopping".into()).await;
                return Ok(());
            }
        };
        let first = delivery(first)?;
        let mut events = events_in(&first);
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < usize::from(settings.prefetch) && events < MAX_BATCH_EVENTS {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(next) => {
                    let next = delivery(next)?;
                    events += events_in(&next);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        if !warned_prefetch && events > batch.len() {
            let per_message = events.div_ceil(batch.len());
            if per_message * usize::from(settings.prefetch) > PREFETCH_EVENTS_WARNING {
                warned_prefetch = true;
                warn!(
                    prefetch = settings.prefetch,
                    events_per_message = per_message,
                    suggested_prefetch = (PREFETCH_EVENTS_WARNING / per_message).max(1),
                    "Messages pack many events each: the broker may hand this collector prefetch × that many events at once. Lower [collector.amqp] prefetch to bound its memory."
                );
            }
        }
        handle(ingest, &consume, &dead, batch, events).await?;
    }
}

/// Whether a message packs several events, one JSON object a line.
fn is_packed(message: &Delivery) -> bool {
    packed::is_packed(
        message
            .properties
            .content_type()
            .as_ref()
            .map(|t| t.as_str()),
    )
}

/// The events a message holds: its lines when packed, else one.
fn events_in(message: &Delivery) -> usize {
    if is_packed(message) {
        packed::lines(&message.data).count().max(1)
    } else {
        1
    }
}

fn delivery(next: Option<lapin::Result<Delivery>>) -> Result<Delivery, SessionError> {
    match next {
        Some(Ok(delivery)) => Ok(delivery),
        Some(Err(e)) => Err(SessionError::Consumer(e)),
        None => Err(SessionError::ConsumerEnded),
    }
}

/// Normalizes, dead-letters what is not an event, stores the rest, then acknowledges
/// the whole batch with one `multiple` ack.
async fn handle(
    ingest: &Ingest<'_>,
    consume: &Channel,
    dead: &Channel,
    batch: Vec<Delivery>,
    events: usize,
) -> Result<(), SessionError> {
    let Ingest {
        settings,
        store,
        metrics,
        reparser,
        window,
    } = ingest;
    metrics.received("amqp", events);
    let Parsed {
        events,
        messages,
        refused,
        retimed,
    } = parse_batch(&batch, Utc::now(), window, metrics, reparser);
    let last_tag = batch.last().map(|d| d.delivery_tag).unwrap_or(0);
    for (body, reason) in &refused {
        if let Err(source) = dead_letter(dead, settings, body, reason).await {
            requeue(consume, last_tag).await;
            return Err(SessionError::DeadLetter {
                what: "a bad message",
                source,
            });
        }
        warn!(queue = %settings.dead_letter_queue, reason = %reason, "A message that is not an event was moved to the dead-letter queue.");
    }
    metrics.store_started();
    let started = std::time::Instant::now();
    let stored = if events.is_empty() {
        Ok(Default::default())
    } else {
        store.store(events).await
    };
    metrics.store_finished(started.elapsed());
    if retimed > 0 {
        metrics.retimed(retimed);
    }
    let count = match stored {
        Ok(outcome) => {
            metrics.rejected_n("store_refused", outcome.dead_lettered.len());
            // An id already stored with another body: moved to the dead-letter queue
            // with the reason, as what is not an event is (the first copy wins).
            for &i in &outcome.conflicts {
                metrics.rejected("conflict");
                let reason = "an event with this eventid is already stored with a different body; stored events are not replaced";
                if let Err(source) = dead_letter(dead, settings, messages[i], reason).await {
                    requeue(consume, last_tag).await;
                    return Err(SessionError::DeadLetter {
                        what: "a conflicting message",
                        source,
                    });
                }
                warn!(queue = %settings.dead_letter_queue, "A message whose eventid is stored with another body was moved to the dead-letter queue.");
            }
            outcome.stored
        }
        Err(StoreError::Busy) => {
            warn!(
                messages = batch.len(),
                "The store is busy indexing; the batch goes back to the queue."
            );
            requeue(consume, last_tag).await;
            return Err(SessionError::Store(StoreError::Busy));
        }
        Err(e) => {
            error!(error = %e, messages = batch.len(), "Store failed; the batch goes back to the queue.");
            requeue(consume, last_tag).await;
            return Err(SessionError::Store(e));
        }
    };
    consume
        .basic_ack(last_tag, BasicAckOptions { multiple: true })
        .await
        .map_err(SessionError::Ack)?;
    metrics.stored("amqp", count);
    debug!(
        stored = count,
        dead_lettered = refused.len(),
        "Stored a batch from RabbitMQ."
    );
    Ok(())
}

/// A batch's messages: the events, and those that are not events with the reason.
struct Parsed<'a> {
    events: Vec<Document>,
    /// The body of each event (its message, or its line of a packed one), by the
    /// event's position.
    messages: Vec<&'a [u8]>,
    /// What is not an event (a message, or a packed message's line) and why.
    refused: Vec<(&'a [u8], String)>,
    /// Events timed at reception (their time was outside the window).
    retimed: usize,
}

/// Normalizes each message of `batch` into an event, with the broker's user (the only
/// sender identity it vouches for) as `details.agentidentity`.
fn parse_batch<'a>(
    batch: &'a [Delivery],
    received_at: chrono::DateTime<Utc>,
    window: &mozdef::normalize::TimeWindow,
    metrics: &Metrics,
    reparser: &crate::reparse::Reparser,
) -> Parsed<'a> {
    let mut reparsed = 0;
    let mut parsed = Parsed {
        events: Vec::with_capacity(batch.len()),
        messages: Vec::with_capacity(batch.len()),
        refused: Vec::new(),
        retimed: 0,
    };
    let bodies = batch.iter().flat_map(|message| {
        // A packed message with no line to read is refused whole, as an empty body is.
        let (one, lines) = if is_packed(message) && packed::lines(&message.data).next().is_some() {
            (
                None,
                Some(packed::lines(&message.data).map(move |(n, line)| (message, line, Some(n)))),
            )
        } else {
            (Some((message, &message.data[..], None)), None)
        };
        one.into_iter().chain(lines.into_iter().flatten())
    });
    for (message, body, line) in bodies {
        // An agent's event is read straight into an event; anything else as a value.
        let outcome = match mozdef::normalize::normalize_canonical(body, received_at) {
            Some(event) => event.map_err(|e| ("invalid", e.to_string())),
            None => serde_json::from_slice::<serde_json::Value>(body)
                .map_err(|e| ("not_json", format!("not JSON: {e}")))
                .and_then(|value| {
                    mozdef::normalize(value, received_at).map_err(|e| ("invalid", e.to_string()))
                }),
        }
        .map_err(|(kind, reason)| match line {
            Some(n) => (kind, format!("line {n} of a packed message: {reason}")),
            None => (kind, reason),
        });
        match outcome {
            Ok(mut event) => {
                if reparser.apply(&mut event, received_at) {
                    reparsed += 1;
                }
                // RabbitMQ refuses a message whose `user_id` is not its connection's
                // user, so that one is kept; a sender's own `details.agentidentity` is
                // not.
                match message.properties.user_id() {
                    Some(user) => {
                        event.details.insert(
                            "agentidentity".into(),
                            serde_json::Value::from(user.as_str()),
                        );
                    }
                    None => {
                        event.details.remove("agentidentity");
                    }
                }
                if window.hold(&mut event, received_at) {
                    parsed.retimed += 1;
                }
                parsed.events.push(Document::Event(event));
                parsed.messages.push(body);
            }
            Err((kind, reason)) => {
                metrics.rejected(kind);
                parsed.refused.push((body, reason));
            }
        }
    }
    metrics.reparsed(reparsed);
    parsed
}

async fn requeue(channel: &Channel, last_tag: u64) {
    let _ = channel
        .basic_nack(
            last_tag,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await;
}

async fn dead_letter(
    channel: &Channel,
    settings: &AmqpSettings,
    body: &[u8],
    reason: &str,
) -> Result<(), DeadLetterError> {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-picket-reason".into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(
        "x-picket-queue".into(),
        AMQPValue::LongString(settings.queue.as_str().into()),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    let confirm = channel
        .basic_publish(
            "".into(),
            settings.dead_letter_queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await?
        .await?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        Ok(())
    } else {
        Err(DeadLetterError::NotTaken)
    }
}
