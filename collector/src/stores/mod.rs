//! Where events are kept. Today: the [`embedded`] store (tantivy, one index per day),
//! the default that needs no other service. The Elasticsearch store will sit beside it
//! with the same operations: store a batch durably, search.

pub mod embedded;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A search over stored events.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Lucene-style query string over top-level fields and `details.*`; empty or `*`
    /// matches everything.
    pub query: String,
    /// Earliest `utctimestamp`, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Latest `utctimestamp`, inclusive.
    pub to: Option<DateTime<Utc>>,
    /// Most events to return, newest first.
    pub size: usize,
}

/// Matching events, newest first, and how many matched in all.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub hits: Vec<serde_json::Value>,
}
