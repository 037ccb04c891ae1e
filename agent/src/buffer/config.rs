//! `[agent.buffer]`: what its keys are, their defaults, and the checked settings the
//! buffer stage (`pipeline/buffer_stage.rs`) and [`super::DiskBuffer`] run on.

use std::time::Duration;

use serde::Deserialize;

use picket_common::config::KeyError;

/// What the buffer does when it reaches `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Inputs wait (keeping their positions) until the collector takes events.
    Block,
    /// New events are dropped, counted and logged.
    DropNewest,
}

/// `[agent.buffer]`: the disk buffer between inputs and shippers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Most bytes of undelivered events kept on disk.
    #[serde(
        default = "default_buffer_max_bytes",
        deserialize_with = "picket_common::units::bytes"
    )]
    pub max_bytes: u64,
    /// Size of one segment file, in bytes.
    #[serde(
        default = "default_segment_max_bytes",
        deserialize_with = "picket_common::units::bytes"
    )]
    pub segment_max_bytes: u64,
    /// Longest time between two fsyncs while events arrive, in milliseconds.
    #[serde(
        default = "default_sync_interval_ms",
        deserialize_with = "picket_common::units::millis"
    )]
    pub sync_interval_ms: u64,
    /// `block` or `drop_newest`.
    #[serde(default = "default_when_full")]
    pub when_full: WhenFull,
}

fn default_buffer_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_segment_max_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_sync_interval_ms() -> u64 {
    100
}
fn default_when_full() -> WhenFull {
    WhenFull::Block
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_bytes: default_buffer_max_bytes(),
            segment_max_bytes: default_segment_max_bytes(),
            sync_interval_ms: default_sync_interval_ms(),
            when_full: default_when_full(),
        }
    }
}

/// The checked buffer settings.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    pub max_bytes: u64,
    pub segment_max_bytes: u64,
    pub sync_interval: Duration,
    pub drop_newest: bool,
}

impl BufferConfig {
    /// The checked settings, or the key that is wrong.
    pub fn build(&self) -> Result<BufferSettings, KeyError> {
        if self.segment_max_bytes < 4096 || self.segment_max_bytes > self.max_bytes {
            return Err(KeyError::new(
                "agent.buffer.segment_max_bytes",
                "must be at least 4096 and at most max_bytes",
            ));
        }
        if !(1..=10_000).contains(&self.sync_interval_ms) {
            return Err(KeyError::new(
                "agent.buffer.sync_interval_ms",
                "must be between 1 and 10000",
            ));
        }
        Ok(BufferSettings {
            max_bytes: self.max_bytes,
            segment_max_bytes: self.segment_max_bytes,
            sync_interval: Duration::from_millis(self.sync_interval_ms),
            drop_newest: self.when_full == WhenFull::DropNewest,
        })
    }
}
