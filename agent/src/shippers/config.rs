//! `[agent.shippers]`: which shipper runs. Each shipper's own table is in its
//! `config.rs` (`http/config.rs`, `amqp/config.rs`); what both share is in
//! `common.rs`.

use serde::Deserialize;

use super::amqp::config::{AmqpSettings, AmqpShipperConfig};
use super::common::Batching;
use super::http::config::{HttpSettings, HttpShipperConfig};
use picket_common::config::KeyError;

/// `[agent.shippers]`: where events go. Configure one of `http` (the default, to
/// `http://127.0.0.1:8080/events`) or `amqp`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippersConfig {
    /// `[agent.shippers.http]`.
    #[serde(default)]
    pub http: Option<HttpShipperConfig>,
    /// `[agent.shippers.amqp]`.
    #[serde(default)]
    pub amqp: Option<AmqpShipperConfig>,
}

/// Which shipper runs.
#[derive(Debug, Clone)]
pub enum ShipperSettings {
    Http(HttpSettings),
    Amqp(AmqpSettings),
}

impl ShippersConfig {
    /// The running shipper's checked settings and how its batches are cut, or the key that is
    /// wrong.
    pub fn build(&self) -> Result<(ShipperSettings, Batching), KeyError> {
        match (&self.http, &self.amqp) {
            (Some(_), Some(_)) => Err(KeyError::new(
                "agent.shippers",
                "configure one shipper: [agent.shippers.http] or [agent.shippers.amqp]",
            )),
            (None, Some(amqp)) => amqp
                .build()
                .map(|(settings, batch)| (ShipperSettings::Amqp(settings), batch)),
            (http, None) => http
                .as_ref()
                .unwrap_or(&HttpShipperConfig::default())
                .build()
                .map(|(settings, batch)| (ShipperSettings::Http(settings), batch)),
        }
    }
}
