//! The heartbeat: every `heartbeat_secs` the agent writes an event about itself into
//! its own buffer, so the collector can tell a quiet host from a dead or stuck agent
//! (the shipped "silent host" rule alerts when they stop).
//!
//! `category: "heartbeat"`, `tags: ["heartbeat"]`, `processname: "picket-agent"`,
//! `source: "picket-agent"`, and in `details`: `agentversion`, `eventsread`,
//! `eventsshipped`, `parsefailures`, `eventsrejected`, `eventsdropped`,
//! `bufferbytes` (not yet acknowledged), `bufferoldestage` (seconds since the
//! oldest event still in the buffer happened; 0 when the buffer is empty),
//! `bufferrecordslost` (events found corrupt in the buffer since start),
//! `filesrefused` (watched paths not read: FIFOs, devices, links not to follow), and
//! the syslog listener's `syslogmessages`, `syslogudpdropped` (datagrams the kernel
//! dropped), `syslogrefused` (senders outside `allowed_senders`, connections over
//! `max_connections`), `syslogerrors` (broken framing, failed TLS handshakes) and
//! `sysloglost` (messages read but never buffered).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use mozdef::Event;
use serde_json::{Map, Value, json};

use crate::host::HostIdentity;
use crate::metrics::Metrics;

/// The agent's state, as the heartbeat reports it.
pub struct Snapshot {
    pub buffer_bytes: u64,
    /// When the oldest event still in the buffer happened.
    pub oldest: Option<DateTime<Utc>>,
}

/// The heartbeat event for `now`.
pub fn event(
    host: &HostIdentity,
    metrics: &Metrics,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Event {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let stamp = mozdef::time::format_utc(now);
    let age = snapshot
        .oldest
        .map(|t| (now - t).num_seconds().max(0))
        .unwrap_or(0);
    let details = json!({
        "agentversion": env!("CARGO_PKG_VERSION"),
        "eventsread": get(&metrics.lines_read),
        "eventsshipped": get(&metrics.events_shipped),
        "parsefailures": get(&metrics.parse_failures),
        "eventsrejected": get(&metrics.events_rejected),
        "eventsdropped": get(&metrics.events_dropped),
        "bufferbytes": snapshot.buffer_bytes,
        "bufferoldestage": age,
        "bufferrecordslost": get(&metrics.buffer_records_lost),
        "filesrefused": get(&metrics.files_refused),
        "syslogmessages": get(&metrics.syslog_messages),
        "syslogudpdropped": get(&metrics.udp_datagrams_dropped),
        "syslogrefused": get(&metrics.syslog_senders_refused) + get(&metrics.syslog_connections_refused),
        "syslogerrors": get(&metrics.syslog_framing_errors) + get(&metrics.syslog_tls_failures),
        "sysloglost": get(&metrics.syslog_messages_lost),
    });
    let Value::Object(details) = details else {
        unreachable!("json! of an object literal is an object")
    };
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    Event {
        eventid: mozdef::event_id(&host.host_id, "picket-agent heartbeat", &nanos.to_string()),
        timestamp: stamp.clone(),
        utctimestamp: stamp,
        receivedtimestamp: None,
        hostname: host.fqdn.clone(),
        processname: "picket-agent".into(),
        processid: i64::from(std::process::id()),
        severity: "INFO".into(),
        summary: format!("picket-agent heartbeat from {}", host.fqdn),
        category: "heartbeat".into(),
        source: "picket-agent".into(),
        tags: vec!["heartbeat".into()],
        details: Map::from_iter(details),
    }
}

/// The time an event (a buffer record) happened, from its `utctimestamp`.
pub fn record_time(record: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(serde::Deserialize)]
    struct Stamp<'a> {
        #[serde(borrow)]
        utctimestamp: &'a str,
    }
    let stamp: Stamp<'_> = serde_json::from_slice(record).ok()?;
    mozdef::time::parse_str(stamp.utctimestamp)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_says_who_and_how_the_agent_is() {
        let host = HostIdentity::named("web1.example.org");
        let metrics = Metrics::default();
        metrics.lines_read.store(42, Ordering::Relaxed);
        metrics.files_refused.store(2, Ordering::Relaxed);
        let now = "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let snapshot = Snapshot {
            buffer_bytes: 4096,
            oldest: Some(now - chrono::Duration::seconds(90)),
        };
        let event = event(&host, &metrics, &snapshot, now);
        let mut line = Vec::new();
        event.write_json_line(&mut line);
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["category"], "heartbeat");
        assert_eq!(value["tags"], json!(["heartbeat"]));
        assert_eq!(value["hostname"], "web1.example.org");
        assert_eq!(value["utctimestamp"], "2026-11-25T10:00:00+00:00");
        assert_eq!(value["details"]["eventsread"], 42);
        assert_eq!(value["details"]["bufferbytes"], 4096);
        assert_eq!(value["details"]["bufferoldestage"], 90);
        assert_eq!(value["details"]["filesrefused"], 2);
        assert_eq!(value["details"]["bufferrecordslost"], 0);
        assert_eq!(value["details"]["syslogudpdropped"], 0);
        assert_eq!(value["details"]["sysloglost"], 0);
        assert!(mozdef::eventid::is_event_id(
            value["eventid"].as_str().unwrap()
        ));
        assert_eq!(record_time(&line), Some(now));
        let later = super::event(
            &host,
            &metrics,
            &snapshot,
            now + chrono::Duration::seconds(60),
        );
        assert_ne!(later.eventid, event.eventid);
    }
}
