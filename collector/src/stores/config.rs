//! `[collector.stores]`: which store events go to and how long they are kept. Each
//! store's own table is beside it: [`super::embedded::config`],
//! [`super::elasticsearch::config`].

use std::path::Path;

use picket_common::config::KeyError;
use serde::Deserialize;

use super::elasticsearch::config::{ElasticSettings, ElasticsearchConfig};
use super::embedded::config::{EmbeddedSettings, EmbeddedStoreConfig};

/// `[collector.stores]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoresConfig {
    /// `[collector.stores.embedded]`: the built-in store, used when no other is set.
    #[serde(default)]
    pub embedded: EmbeddedStoreConfig,
    /// `[collector.stores.elasticsearch]`: index into an Elasticsearch or OpenSearch
    /// cluster instead of the embedded store.
    #[serde(default)]
    pub elasticsearch: Option<ElasticsearchConfig>,
    /// Days of events kept: older days (embedded day indices, Elasticsearch
    /// `events-YYYYMMDD`) are deleted once an hour. 0 keeps everything.
    #[serde(default)]
    pub retention_days: u32,
}

/// The checked `[collector.stores]`.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub embedded: EmbeddedSettings,
    /// The Elasticsearch store, when configured (else the embedded one).
    pub elasticsearch: Option<ElasticSettings>,
    /// Days kept; 0 keeps everything.
    pub retention_days: u32,
}

impl StoresConfig {
    /// `data_dir` holds the Elasticsearch store's dead letters.
    pub fn build(&self, data_dir: &Path) -> Result<StoreSettings, KeyError> {
        Ok(StoreSettings {
            embedded: self.embedded.build()?,
            elasticsearch: self
                .elasticsearch
                .as_ref()
                .map(|es| es.build(data_dir))
                .transpose()?,
            retention_days: self.retention_days,
        })
    }
}
