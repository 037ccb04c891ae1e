//! What the real-tool tests (`real_sshd.rs`, `real_accounts.rs`) share, and
//! `opensearch.rs`'s differential test: log lines read by the agent's parser as its
//! file input reads them, and the events stored in an embedded store as the collector
//! stores them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use picket_collector::stores::embedded::EmbeddedStore;
use picket_collector::stores::{Document, Store};
use serde_json::Value;

/// Each line of `text` as the agent's parser makes it, read at `read_at`, for a host
/// named `host` (the lines' own header names the host they came from).
pub fn parse_auth_log(text: &str, host: &str, read_at: DateTime<Utc>) -> Vec<Value> {
    parse_lines(text.lines(), host, "local", read_at)
}

/// Each line as the agent's file input parses it (one file, offsets advancing), in the
/// time zone `zone` (`local`, `UTC`, an IANA name), read at `read_at`.
pub fn parse_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    host: &str,
    zone: &str,
    read_at: DateTime<Utc>,
) -> Vec<Value> {
    let parser = LineParser::new(
        HostIdentity::named(host),
        TimeZoneChoice::parse(zone).unwrap(),
    );
    let mut offset = 0u64;
    let mut events = Vec::new();
    for line in lines {
        let context = LineContext {
            source: "/var/log/auth.log",
            source_identity: "file:1:2:3",
            offset,
            read_at,
        };
        offset += line.len() as u64 + 1;
        events.push(serde_json::to_value(parser.parse(line.as_bytes(), &context)).unwrap());
    }
    events
}

/// `events` normalized and stored, as the collector stores what an agent sends.
pub async fn store_events(dir: &Path, events: &[Value], read_at: DateTime<Utc>) -> Arc<Store> {
    let store = EmbeddedStore::open(dir, Duration::from_millis(10), 15_000_000).unwrap();
    let store = Arc::new(Store::Embedded(store));
    let documents = events
        .iter()
        .map(|v| Document::Event(mozdef::normalize(v.clone(), read_at).unwrap()))
        .collect();
    store.store(documents).await.unwrap();
    store
}
