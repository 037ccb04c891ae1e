//! `[collector.stores.embedded]`: commit pacing and indexing memory of the embedded
//! store, their defaults, and the checked [`EmbeddedSettings`].

use std::time::Duration;

use picket_common::config::KeyError;
use serde::Deserialize;

/// `[collector.stores.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedStoreConfig {
    /// Shortest time between two commits, in milliseconds; requests arriving meanwhile
    /// share the next commit. Ingest answers only after the commit that holds its
    /// events, so this bounds the added latency and, for one sender sending batch after
    /// batch, the rate (a batch per interval); larger values mean fewer, bigger commits.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Indexing memory per open daily index, in bytes (tantivy's minimum is 15 MB).
    #[serde(default = "default_writer_memory_bytes")]
    pub writer_memory_bytes: usize,
}

fn default_commit_interval_ms() -> u64 {
    100
}
fn default_writer_memory_bytes() -> usize {
    20_000_000
}

impl Default for EmbeddedStoreConfig {
    fn default() -> Self {
        EmbeddedStoreConfig {
            commit_interval_ms: default_commit_interval_ms(),
            writer_memory_bytes: default_writer_memory_bytes(),
        }
    }
}

/// The checked `[collector.stores.embedded]`.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    pub commit_interval: Duration,
    pub writer_memory_bytes: usize,
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
        Ok(EmbeddedSettings {
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            writer_memory_bytes: self.writer_memory_bytes,
        })
    }
}
