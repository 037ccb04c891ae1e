//! What both shippers' tables share beyond the common plumbing (secrets and TLS files
//! are `picket_common`'s): batch size, batches in flight, timeout — their checks and
//! defaults.

use picket_common::config::KeyError;

pub(crate) fn default_batch_max_events() -> usize {
    1000
}
pub(crate) fn default_max_in_flight() -> usize {
    4
}
pub(crate) fn default_timeout_secs() -> u64 {
    30
}

/// How the ship stage cuts and overlaps the buffer's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most events in one request (HTTP) or awaiting confirms in one batch (AMQP).
    pub max_events: usize,
    /// Batches sent before the first of them is answered; they are acknowledged in
    /// the buffer in order, so a restart resends at most this many.
    pub max_in_flight: usize,
}

impl Batching {
    /// The checked values of `<table>.batch_max_events` and `<table>.max_in_flight`.
    pub(crate) fn checked(
        table: &'static str,
        max_events: usize,
        max_in_flight: usize,
    ) -> Result<Batching, KeyError> {
        if !(1..=100_000).contains(&max_events) {
            return Err(KeyError::new(
                format!("{table}.batch_max_events"),
                "must be between 1 and 100000",
            ));
        }
        if !(1..=64).contains(&max_in_flight) {
            return Err(KeyError::new(
                format!("{table}.max_in_flight"),
                "must be between 1 and 64",
            ));
        }
        Ok(Batching {
            max_events,
            max_in_flight,
        })
    }
}

pub(crate) fn check_timeout(key: &'static str, secs: u64) -> Result<(), KeyError> {
    if secs == 0 {
        return Err(KeyError::new(key, "must be at least 1"));
    }
    Ok(())
}
