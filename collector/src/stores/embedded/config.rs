//! `[collector.stores.embedded]`: commit pacing, indexing memory, when a write is
//! answered and how far indexing may fall behind the write-ahead log, their defaults,
//! and the checked [`EmbeddedSettings`].

use std::time::Duration;

use picket_common::config::KeyError;
use serde::Deserialize;

/// `[collector.stores.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedStoreConfig {
    /// Shortest time between two index commits, in milliseconds: how long an event
    /// written to the log waits, at most, before searches see it (plus the indexing of
    /// what arrived meanwhile). Larger values mean fewer, bigger commits.
    #[serde(
        default = "default_commit_interval_ms",
        deserialize_with = "picket_common::units::millis"
    )]
    pub commit_interval_ms: u64,
    /// Indexing memory per open daily index, in bytes (tantivy's minimum is 15 MB).
    #[serde(
        default = "default_writer_memory_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub writer_memory_bytes: usize,
    /// When a write is answered: `"logged"` (default) once its events are fsynced in the
    /// store's write-ahead log, indexed behind it; `"indexed"` only once they are
    /// committed to the index and searchable (read-after-write, at the cost of a commit
    /// per answer).
    #[serde(default)]
    pub acknowledge: Acknowledge,
    /// Most bytes of logged events not yet indexed; past it writes wait (up to 2 s) and
    /// are then refused (503 with `Retry-After`) until indexing catches up, so a burst
    /// costs waiting senders, not the collector's memory. The log is released at each
    /// commit, so this also caps the rate at this many bytes per `commit_interval_ms`:
    /// raise both together. Unset: 8 MiB, or 80 KiB per millisecond of
    /// `commit_interval_ms` when that is more (~150,000 events/s either way).
    #[serde(default, deserialize_with = "picket_common::units::bytes_option")]
    pub max_unindexed_bytes: Option<u64>,
}

/// When the embedded store answers a write (`acknowledge`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acknowledge {
    /// Once the events are durable in the write-ahead log.
    #[default]
    Logged,
    /// Once the events are committed to the index.
    Indexed,
}

fn default_commit_interval_ms() -> u64 {
    100
}
fn default_writer_memory_bytes() -> usize {
    20_000_000
}
fn default_max_unindexed_bytes() -> u64 {
    8 * 1024 * 1024
}

/// The bound when `max_unindexed_bytes` is unset: enough for ~150,000 events/s
/// between two commits.
fn derived_max_unindexed_bytes(commit_interval_ms: u64) -> u64 {
    default_max_unindexed_bytes().max(commit_interval_ms.saturating_mul(80 * 1024))
}

impl Default for EmbeddedStoreConfig {
    fn default() -> Self {
        EmbeddedStoreConfig {
            commit_interval_ms: default_commit_interval_ms(),
            writer_memory_bytes: default_writer_memory_bytes(),
            acknowledge: Acknowledge::default(),
            max_unindexed_bytes: None,
        }
    }
}

/// The checked `[collector.stores.embedded]`.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    pub commit_interval: Duration,
    pub writer_memory_bytes: usize,
    pub acknowledge: Acknowledge,
    pub max_unindexed_bytes: u64,
}

impl EmbeddedSettings {
    /// Settings that answer a write once it is indexed (read-after-write), with the
    /// default bound: what the alert store and tests that search what they just
    /// stored use.
    pub fn indexed(commit_interval: Duration, writer_memory_bytes: usize) -> EmbeddedSettings {
        EmbeddedSettings {
            commit_interval,
            writer_memory_bytes,
            acknowledge: Acknowledge::Indexed,
            max_unindexed_bytes: default_max_unindexed_bytes(),
        }
    }
}

impl EmbeddedStoreConfig {
    pub fn build(&self) -> Result<EmbeddedSettings, KeyError> {
        if !(10..=60_000).contains(&self.commit_interval_ms) {
            return Err(KeyError::new(
                "collector.stores.embedded.commit_interval_ms",
                "must be between 10 and 60000",
            ));
        }
        if self.writer_memory_bytes < 15_000_000 {
            return Err(KeyError::new(
                "collector.stores.embedded.writer_memory_bytes",
                "must be at least 15000000 (tantivy's minimum)",
            ));
        }
        let max_unindexed_bytes = self
            .max_unindexed_bytes
            .unwrap_or_else(|| derived_max_unindexed_bytes(self.commit_interval_ms));
        if !(1024 * 1024..=64 * 1024 * 1024 * 1024).contains(&max_unindexed_bytes) {
            return Err(KeyError::new(
                "collector.stores.embedded.max_unindexed_bytes",
                "must be between 1048576 (1 MiB) and 68719476736 (64 GiB)",
            ));
        }
        Ok(EmbeddedSettings {
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            writer_memory_bytes: self.writer_memory_bytes,
            acknowledge: self.acknowledge,
            max_unindexed_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(toml: &str) -> Result<u64, KeyError> {
        toml::from_str::<EmbeddedStoreConfig>(toml)
            .unwrap()
            .build()
            .map(|s| s.max_unindexed_bytes)
    }

    #[test]
    fn the_unindexed_bound_follows_the_commit_interval_unless_set() {
        assert_eq!(bound("").unwrap(), 8 * 1024 * 1024);
        assert_eq!(
            bound("commit_interval_ms = 1000").unwrap(),
            1000 * 80 * 1024
        );
        assert_eq!(
            bound("commit_interval_ms = 1000\nmax_unindexed_bytes = 2097152").unwrap(),
            2 * 1024 * 1024
        );
        let refused = bound("max_unindexed_bytes = 1000").unwrap_err().to_string();
        assert!(refused.contains("max_unindexed_bytes"), "{refused}");
    }
}
