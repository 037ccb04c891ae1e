//! Where events go: [`http`], NDJSON batches POSTed to a collector, or [`amqp`],
//! messages published to RabbitMQ in MozDef's layout. A shipper sends one batch and
//! says what happened ([`Outcome`]); the pipeline decides what to do about it (retry,
//! split, dead-letter, acknowledge).

pub mod amqp;
pub mod common;
pub mod config;
pub mod http;

use std::time::Duration;

use self::config::ShipperSettings;
use crate::buffer::Records;

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver took the batch; `rejected` lists the items it refused
    /// (position, reason), which resending will not fix.
    Delivered { rejected: Vec<(usize, String)> },
    /// A failure that may pass: network, timeout, 429, 5xx, a broker that did not
    /// confirm. `after` is the server's `Retry-After`, when it gave one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The whole batch was refused; resending the same bytes will not help.
    /// `too_large` says a smaller batch may pass.
    Reject { reason: String, too_large: bool },
}

/// The configured shipper.
pub enum Shipper {
    Http(http::HttpShipper),
    Amqp(Box<amqp::AmqpShipper>),
}

impl Shipper {
    /// Builds the shipper the settings name (AMQP connects lazily, at the first batch).
    pub fn build(settings: &ShipperSettings) -> Result<Shipper, http::HttpShipperError> {
        match settings {
            ShipperSettings::Http(http) => http::HttpShipper::build(http).map(Shipper::Http),
            ShipperSettings::Amqp(amqp) => Ok(Shipper::Amqp(Box::new(amqp::AmqpShipper::new(
                amqp.clone(),
            )))),
        }
    }

    /// Where events go, for logs.
    pub fn destination(&self) -> String {
        match self {
            Shipper::Http(http) => http.url().to_string(),
            Shipper::Amqp(amqp) => amqp.destination(),
        }
    }

    /// `validate --connect`: reaches every destination as a batch would (TLS, token or
    /// login) without sending an event. Per destination: what passed, or what failed.
    pub async fn check(&self) -> Vec<(String, Result<String, String>)> {
        match self {
            Shipper::Http(http) => http.check().await,
            Shipper::Amqp(amqp) => vec![(amqp.destination(), amqp.check().await)],
        }
    }

    /// Sends serialized events (one JSON line each).
    pub async fn send(&self, records: Records<'_>) -> Outcome {
        match self {
            Shipper::Http(http) => http.send(records).await,
            Shipper::Amqp(amqp) => amqp.send(records).await,
        }
    }
}
