//! The fast path of [`normalize`](super::normalize): an item already in the schema's
//! own shape (what agents send) is read straight into an [`Event`], without a
//! `serde_json::Value` on the way (each text read once into the event's own string)
//! and without the alias rules.
//!
//! It takes an object only when every key is a canonical name (lower case, once) with
//! the type the schema gives it and a plausible `eventid`; anything else (an alias, an
//! unknown key, a number where text belongs, a missing or implausible id, a duplicate
//! key) answers `None` and the caller goes the general way. Where it answers, it
//! answers what the general way would: `canonical_agrees_with_the_general_path` and
//! the collector's tests hold it to that.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::{NormalizeError, plausible_id};
use crate::event::Event;
use crate::fields::{self, UNKNOWN};
use crate::severity::Severity;
use crate::time;

/// An item in the schema's own shape. A key outside these, or a value of another type,
/// fails the read (and the item goes the general way).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Canonical<'a> {
    #[serde(borrow)]
    eventid: Cow<'a, str>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    utctimestamp: Option<Cow<'a, str>>,
    /// Whatever was sent is replaced by the collector's time.
    #[serde(default)]
    #[allow(dead_code)]
    receivedtimestamp: Option<IgnoredAny>,
    #[serde(borrow, default)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    processname: Option<Cow<'a, str>>,
    #[serde(default)]
    processid: Option<i64>,
    #[serde(borrow, default)]
    severity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    summary: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tags: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    details: Option<Map<String, Value>>,
}

/// The event `bytes` (one JSON item) normalizes to, when it is in the schema's own
/// shape; `None` when it is not (use [`normalize`](super::normalize) on its value).
pub fn normalize_canonical(
    bytes: &[u8],
    received: DateTime<Utc>,
) -> Option<Result<Event, NormalizeError>> {
    // Only an object: serde would read a struct from an array too (by position).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let item: Canonical<'_> = serde_json::from_slice(bytes).ok()?;
    if !plausible_id(&item.eventid) {
        return None;
    }
    let mut details = item.details.unwrap_or_default();
    // The time: `timestamp`, else `utctimestamp`; when both came, the second is kept
    // in details under its name (as the general way's ranking does).
    let (time, spilled_utc) = match (item.timestamp, item.utctimestamp) {
        (Some(t), utc) => (Some(t), utc),
        (None, utc) => (utc, None),
    };
    let received_text = time::format_utc(received);
    let text =
        |value: Option<Cow<'_, str>>| value.map_or_else(|| UNKNOWN.to_string(), Cow::into_owned);
    let mut event = Event {
        eventid: item.eventid.into_owned(),
        timestamp: received_text.clone(),
        utctimestamp: received_text.clone(),
        receivedtimestamp: Some(received_text),
        hostname: text(item.hostname),
        processname: text(item.processname),
        processid: item.processid.unwrap_or(0),
        severity: Severity::Info.as_str().to_string(),
        summary: text(item.summary),
        category: text(item.category),
        source: text(item.source),
        tags: item
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter(|tag| !tag.is_empty())
            .map(Cow::into_owned)
            .collect(),
        details: Map::new(),
    };
    let mut spill: Vec<(&str, String)> = Vec::new();
    if let Some(severity) = item.severity {
        if !severity.trim().is_empty() {
            match Severity::from_name(&severity) {
                Some(known) => event.severity = known.as_str().to_string(),
                None => spill.push(("severity", severity.into_owned())),
            }
        }
    }
    if let Some(text) = time {
        match time::parse_str(&text).or_else(|e| time::parse_bsd(&text, received).ok_or(e)) {
            Ok(at) => event.set_time(&at),
            Err(err) => {
                details.insert(
                    fields::details::TIMESTAMPERROR.to_string(),
                    Value::String(err.text),
                );
            }
        }
    }
    if let Some(utc) = spilled_utc {
        spill.push(("utctimestamp", utc.into_owned()));
    }
    for (field, text) in [
        ("hostname", &event.hostname),
        ("processname", &event.processname),
    ] {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Some(Err(NormalizeError::ControlCharacter {
                field,
                code: u32::from(c),
            }));
        }
    }
    for (key, value) in spill {
        details
            .entry(key.to_string())
            .or_insert(Value::String(value));
    }
    event.details = details;
    if event.summary.len() > fields::SUMMARY_MAX_BYTES {
        let whole = std::mem::take(&mut event.summary);
        event.set_summary(&whole);
    }
    Some(Ok(event))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::normalize::normalize;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    /// The fast path's answer for `text`, after checking it is the general path's
    /// whenever it answers at all.
    fn both(text: &str) -> Option<Result<Event, NormalizeError>> {
        let fast = normalize_canonical(text.as_bytes(), received());
        if let Some(fast) = &fast {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(fast, &normalize(value, received()), "for {text}");
        }
        fast
    }

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn canonical_agrees_with_the_general_path() {
        let long = "x".repeat(fields::SUMMARY_MAX_BYTES + 10);
        let cases = [
            json!({"eventid": ID, "timestamp": "2026-11-24T09:14:03.120000+01:00", "utctimestamp": "2026-11-24T08:14:03.120000+00:00", "hostname": "web1", "processname": "sshd", "processid": 4242, "severity": "INFO", "summary": "Accepted publickey for alice", "category": "authentication", "source": "/var/log/auth.log", "tags": ["sshd"], "details": {"username": "alice", "success": true, "sourceport": 50000}}),
            json!({"eventid": ID, "utctimestamp": "2026-11-24T08:14:03+00:00"}),
            json!({"eventid": ID, "timestamp": "not a time", "details": {"timestamperror": "mine"}}),
            json!({"eventid": ID, "timestamp": "Nov 24 08:14:03"}),
            json!({"eventid": ID, "timestamp": "1764000000"}),
            json!({"eventid": ID, "severity": "warning"}),
            json!({"eventid": ID, "severity": "3"}),
            json!({"eventid": ID, "severity": "loud"}),
            json!({"eventid": ID, "severity": "loud", "details": {"severity": "kept"}}),
            json!({"eventid": ID, "severity": "  "}),
            json!({"eventid": ID, "tags": ["", "a", "b"]}),
            json!({"eventid": ID, "summary": long}),
            json!({"eventid": ID, "summary": "  padded  "}),
            json!({"eventid": ID, "hostname": "bad\u{7}host"}),
            json!({"eventid": ID, "processname": "tab\there"}),
            json!({"eventid": ID, "hostname": "", "processid": -7}),
            json!({"eventid": ID, "hostname": null, "timestamp": null, "tags": null, "details": null, "severity": null}),
            json!({"eventid": ID, "receivedtimestamp": {"any": "thing"}, "details": {"agentidentity": "x"}}),
            json!({"eventid": ID, "timestamp": "2026-11-24T08:14:03Z", "utctimestamp": "garbage", "details": {}}),
            json!({"eventid": ID, "timestamp": "2026-11-24T08:14:03Z", "utctimestamp": "x", "details": {"utctimestamp": "theirs"}}),
            json!({"eventid": "a.b-c_d:1", "summary": "caf\u{e9} \"quoted\" \\ back\nslash"}),
            json!({"eventid": ID, "details": {"nested": {"a": [1, 2.5, null, {"b": false}]}, "big": 18446744073709551615u64}}),
        ];
        for case in &cases {
            let text = case.to_string();
            assert!(both(&text).is_some(), "the fast path takes {text}");
        }
        // Escaped text is read owned, and still agrees.
        assert!(
            both(&format!(
                r#"{{"eventid":"{ID}","hostname":"h\u00e9","summary":"a\tb"}}"#
            ))
            .is_some()
        );
    }

    #[test]
    fn anything_else_goes_the_general_way() {
        for text in [
            json!({"eventid": ID, "host": "web1"}).to_string(),
            json!({"eventid": ID, "Hostname": "web1"}).to_string(),
            json!({"eventid": ID, "@timestamp": "2026-11-24T08:14:03Z"}).to_string(),
            json!({"eventid": ID, "hostname": 7}).to_string(),
            json!({"eventid": ID, "processid": 7.5}).to_string(),
            json!({"eventid": ID, "processid": "42"}).to_string(),
            json!({"eventid": ID, "timestamp": 1764000000}).to_string(),
            json!({"eventid": ID, "severity": 3}).to_string(),
            json!({"eventid": ID, "tags": "one"}).to_string(),
            json!({"eventid": ID, "tags": ["a", null]}).to_string(),
            json!({"eventid": ID, "details": "text"}).to_string(),
            json!({"eventid": ID, "details.x": 1}).to_string(),
            json!({"eventid": ID, "extra": 1}).to_string(),
            json!({"eventid": "has space"}).to_string(),
            json!({"eventid": ""}).to_string(),
            json!({"eventid": null}).to_string(),
            json!({"summary": "no id"}).to_string(),
            format!(r#"{{"eventid":"{ID}","hostname":"a","hostname":"b"}}"#),
            "[1,2]".to_string(),
            format!(r#"["{ID}"]"#),
            format!(r#"["{ID}","2026-11-24T08:14:03Z"]"#),
            format!(r#" ["{ID}"]"#),
            "\"text\"".to_string(),
        ] {
            assert!(
                normalize_canonical(text.as_bytes(), received()).is_none(),
                "{text}"
            );
        }
    }

    /// Random events built from canonical keys with values of every kind: wherever the
    /// fast path answers, it answers as the general path does; and it answers often.
    #[test]
    fn random_items_agree() {
        let keys = [
            "eventid",
            "timestamp",
            "utctimestamp",
            "receivedtimestamp",
            "hostname",
            "processname",
            "processid",
            "severity",
            "summary",
            "category",
            "source",
            "tags",
            "details",
        ];
        let values = [
            json!(ID),
            json!("2026-11-24T08:14:03.5+02:00"),
            json!("Dec  3 12:00:03"),
            json!("nonsense"),
            json!(""),
            json!("ERR"),
            json!("notice"),
            json!(null),
            json!(12),
            json!(-3),
            json!(1.5),
            json!(true),
            json!(["x", ""]),
            json!([]),
            json!({"k": "v", "timestamperror": 1}),
            json!({}),
            json!("ctl\u{1}"),
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut taken = 0;
        for _ in 0..20_000 {
            let mut object = Map::new();
            object.insert("eventid".into(), json!(ID));
            for _ in 0..next(8) {
                object.insert(
                    keys[next(keys.len())].into(),
                    values[next(values.len())].clone(),
                );
            }
            if both(&Value::Object(object).to_string()).is_some() {
                taken += 1;
            }
        }
        assert!(taken > 1_000, "the fast path took only {taken} of 20,000");
    }
}
