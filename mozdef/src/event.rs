//! The [`Event`]: one MozDef event, every top-level field of the contract, `details` as
//! a JSON object. Field order follows the contract so serialized events read the same
//! everywhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::{self, SUMMARY_MAX_BYTES};
use crate::time;

/// One event as the agent emits it and the collector stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// 32 hex chars, deterministic (see [`crate::eventid`]).
    pub eventid: String,
    /// When the line says it happened, with its offset.
    pub timestamp: String,
    /// The same instant in UTC, `+00:00`.
    pub utctimestamp: String,
    /// Set by the collector on acceptance; absent on the agent side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receivedtimestamp: Option<String>,
    pub hostname: String,
    pub processname: String,
    pub processid: i64,
    /// RFC 5424 name in capitals (see [`crate::Severity`]); other shippers' words are
    /// kept upper-cased.
    pub severity: String,
    pub summary: String,
    pub category: String,
    pub source: String,
    pub tags: Vec<String>,
    pub details: Map<String, Value>,
}

impl Event {
    /// Sets `summary` to `text` trimmed, cut to 4,096 bytes on a UTF-8 boundary; a cut
    /// sets `details.truncated = true`.
    pub fn set_summary(&mut self, text: &str) {
        let text = text.trim();
        if text.len() <= SUMMARY_MAX_BYTES {
            self.summary.clear();
            self.summary.push_str(text);
            return;
        }
        let mut end = SUMMARY_MAX_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.summary = text[..end].to_string();
        self.details
            .insert(fields::details::TRUNCATED.to_string(), Value::Bool(true));
    }

    /// Sets `timestamp` and `utctimestamp` from one instant.
    pub fn set_time(&mut self, at: &DateTime<chrono::FixedOffset>) {
        self.timestamp = time::format_fixed(at);
        self.utctimestamp = time::format_utc(at.with_timezone(&Utc));
    }

    /// `utctimestamp` read back; `None` only for an event built by hand with bad text.
    pub fn utc(&self) -> Option<DateTime<Utc>> {
        time::parse_str(&self.utctimestamp)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    /// Appends the event as one line of NDJSON (with its `\n`).
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        // Serializing this struct into a Vec cannot fail: every key is a string and
        // every value is plain JSON.
        if serde_json::to_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Event {
        Event {
            eventid: "0123456789abcdef0123456789abcdef".into(),
            timestamp: "2026-11-22T09:14:03.120000+01:00".into(),
            utctimestamp: "2026-11-22T08:14:03.120000+00:00".into(),
            receivedtimestamp: None,
            hostname: "web1.example.com".into(),
            processname: "sshd".into(),
            processid: 1234,
            severity: "INFO".into(),
            summary: "Accepted publickey for alice".into(),
            category: "authentication".into(),
            source: "/var/log/auth.log".into(),
            tags: vec!["sshd".into()],
            details: json!({"program": "sshd", "username": "alice"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn serializes_fields_in_contract_order() {
        let mut line = Vec::new();
        sample().write_json_line(&mut line);
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with('\n'));
        let keys: Vec<&str> = crate::fields::TOP_LEVEL
            .iter()
            .copied()
            .filter(|k| *k != crate::fields::RECEIVEDTIMESTAMP)
            .collect();
        let mut last = 0;
        for key in keys {
            let at = text
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key}"));
            assert!(at >= last, "{key} out of order in {text}");
            last = at;
        }
        let back: Event = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn long_summary_is_cut_on_a_char_boundary_and_flagged() {
        let mut event = sample();
        let text = "é".repeat(3000); // 6000 bytes
        event.set_summary(&text);
        assert!(event.summary.len() <= SUMMARY_MAX_BYTES);
        assert_eq!(event.summary.len(), 4096);
        assert_eq!(event.details["truncated"], json!(true));

        let mut event = sample();
        event.set_summary("  short  ");
        assert_eq!(event.summary, "short");
        assert!(!event.details.contains_key("truncated"));
    }

    #[test]
    fn utc_reads_back() {
        let event = sample();
        assert_eq!(event.utc().map(|t| t.timestamp()), Some(1_795_335_243));
    }
}
