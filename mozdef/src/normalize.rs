//! The collector's normalization of events from any shipper into an [`Event`].
//!
//! Rules, in the order they apply (the contract's "What the collector accepts"):
//!
//! 1. Top-level keys are lower-cased and leading `@`s stripped (`@timestamp`,
//!    `HOST` → `timestamp`, `host`).
//! 2. MozDef's aliases map onto the schema. When a canonical key and an alias are both
//!    sent, the canonical one wins (`summary` over `message`, `hostname` over `host`);
//!    among aliases, the first wins. A losing value is kept in `details` under its own
//!    name, since nothing is dropped here. Beside MozDef's, the names rsyslog's and
//!    syslog-ng's JSON templates use are read: `ISODATE`, `timereported`, `DATE`,
//!    `timegenerated` (time, in that order), `fromhost` (host), `programname`,
//!    `app_name` (program), `procid` (pid), `msg` (message), `syslogseverity-text`.
//! 3. `details` (or `fields`) objects are merged into `details`; a non-object becomes
//!    `details.message`; `details.x` / `fields.x` keys become `details.x` (`_int` and
//!    `_float` suffixes typed as MozDef does); any other unknown top-level key is moved
//!    into `details` (MozDef drops them). Keys already in `details` win.
//! 4. `severity` is one of the eight RFC 5424 names, from a name, a syslog number or a
//!    common abbreviation (any case); a value that names none is `INFO`, the value
//!    sent kept in `details` under its key; `processid` becomes an integer (0 when it
//!    is not one, the text kept in `details.processid`); `tags` accepts a string or a
//!    list.
//! 5. The time (`timestamp`, else `utctimestamp`, `eventtime`, `date`) is read as
//!    ISO 8601, epoch s/ms/µs/ns, or a BSD syslog date without a year (`Dec  3
//!    12:00:03`: UTC, the year nearest reception); `utctimestamp` is computed from it. An unreadable
//!    time is kept in `details.timestamperror` and the event is timed at reception.
//! 6. `receivedtimestamp` is the collector's time, whatever was sent.
//! 7. Missing mandatory fields are filled: `UNKNOWN` for strings, `INFO` severity,
//!    processid 0, `[]` tags, `{}` details.
//! 8. `eventid` is kept when it is a plausible id (non-empty, at most 128 bytes, no
//!    whitespace); otherwise one is derived from the event's content, so a shipper that
//!    resends the same object does not make a second document. When the event carries
//!    no time, the reception time is part of that content (two identical untimed
//!    heartbeats a minute apart stay two events).

mod canonical;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use thiserror::Error;

pub use self::canonical::normalize_canonical;

use crate::event::Event;
use crate::eventid::event_id;
use crate::fields::{self, UNKNOWN};
use crate::severity::Severity;
use crate::time;

/// Why an item could not become an event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NormalizeError {
    #[error("item is a JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error("{field} holds a control character (U+{code:04X}); host and program names are text")]
    ControlCharacter { field: &'static str, code: u32 },
}

/// How far from its reception an event's time may be before the collector times it at
/// reception instead (keeping the time it carried in `details.timestamperror`). Times
/// outside 1677-09-22 to 2262-04-11, which a nanosecond index field cannot hold, are
/// always outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// How far before reception; `None`: no limit.
    pub max_age: Option<chrono::Duration>,
    /// How far after reception.
    pub max_future: chrono::Duration,
}

impl TimeWindow {
    /// Times `event` at `received` when its time is outside the window; returns whether
    /// it did. An event already timed at reception (its time unreadable) is left alone.
    pub fn hold(&self, event: &mut Event, received: DateTime<Utc>) -> bool {
        if event.details.contains_key(fields::details::TIMESTAMPERROR) {
            return false;
        }
        let earliest = DateTime::<Utc>::from_timestamp(-9_223_372_036, 0).unwrap_or_default();
        let latest = DateTime::<Utc>::from_timestamp(9_223_372_036, 0).unwrap_or_default();
        let inside = event.utc().is_some_and(|at| {
            at > earliest
                && at < latest
                && self.max_age.is_none_or(|age| received - at <= age)
                && at - received <= self.max_future
        });
        if inside {
            return false;
        }
        let sent = std::mem::take(&mut event.timestamp);
        event.details.insert(
            fields::details::TIMESTAMPERROR.to_string(),
            Value::String(sent),
        );
        let text = time::format_utc(received);
        event.timestamp = text.clone();
        event.utctimestamp = text;
        true
    }
}

/// Which schema field a top-level key feeds, and how strongly (0 = canonical name).
enum Target {
    EventId,
    Time(u8),
    Received,
    Hostname(u8),
    ProcessName(u8),
    ProcessId(u8),
    Severity(u8),
    Summary(u8),
    Payload,
    Category(u8),
    Source(u8),
    Tags,
    Details(u8),
    DottedDetail,
    SourceIp,
    Unknown,
}

fn target(key: &str) -> Target {
    match key {
        "eventid" => Target::EventId,
        "timestamp" => Target::Time(0),
        "utctimestamp" => Target::Time(1),
        "eventtime" | "isodate" | "timereported" => Target::Time(2),
        "date" => Target::Time(3),
        "timegenerated" => Target::Time(4),
        "receivedtimestamp" => Target::Received,
        "hostname" => Target::Hostname(0),
        "host" | "source_host" => Target::Hostname(1),
        "fromhost" => Target::Hostname(2),
        "processname" => Target::ProcessName(0),
        "program" | "pname" | "sourcename" | "programname" | "app_name" | "appname" => {
            Target::ProcessName(1)
        }
        "processid" => Target::ProcessId(0),
        "pid" | "procid" => Target::ProcessId(1),
        "severity" => Target::Severity(0),
        "level" | "priority" | "severityvalue" | "syslogseverity" | "syslogseverity-text" => {
            Target::Severity(1)
        }
        "summary" => Target::Summary(0),
        "message" => Target::Summary(1),
        "msg" => Target::Summary(2),
        "payload" => Target::Payload,
        "category" => Target::Category(0),
        "type" | "eventtype" => Target::Category(1),
        "source" => Target::Source(0),
        "tags" => Target::Tags,
        "details" => Target::Details(0),
        "fields" => Target::Details(1),
        "sourceip" => Target::SourceIp,
        k if k.starts_with("details.") || k.starts_with("fields.") => Target::DottedDetail,
        _ => Target::Unknown,
    }
}

/// A slot that keeps the best-ranked value; the loser goes to `details`.
struct Slot {
    value: Option<(u8, String, Value)>,
}

impl Slot {
    const fn new() -> Self {
        Slot { value: None }
    }

    fn offer(&mut self, rank: u8, key: String, value: Value, spill: &mut Vec<(String, Value)>) {
        if value.is_null() {
            return;
        }
        match &self.value {
            Some((held, _, _)) if *held <= rank => spill.push((key, value)),
            _ => {
                if let Some((_, old_key, old)) = self.value.replace((rank, key, value)) {
                    spill.push((old_key, old));
                }
            }
        }
    }

    fn take(self) -> Option<(String, Value)> {
        self.value.map(|(_, key, value)| (key, value))
    }
}

/// Normalizes one item of a request into an event received at `received`.
pub fn normalize(value: Value, received: DateTime<Utc>) -> Result<Event, NormalizeError> {
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => return Err(NormalizeError::NotAnObject("array")),
        Value::String(_) => return Err(NormalizeError::NotAnObject("string")),
        Value::Number(_) => return Err(NormalizeError::NotAnObject("number")),
        Value::Bool(_) => return Err(NormalizeError::NotAnObject("boolean")),
        Value::Null => return Err(NormalizeError::NotAnObject("null")),
    };
    // The content id is computed over what was sent, before any rewriting, and only
    // when the event brings no id of its own (agents always do).
    let brings_id = object.iter().any(|(key, value)| {
        key.trim_start_matches('@').eq_ignore_ascii_case("eventid")
            && value.as_str().is_some_and(plausible_id)
    });
    let content = if brings_id {
        String::new()
    } else {
        Value::Object(object.clone()).to_string()
    };

    let mut eventid = Slot::new();
    let mut time_slot = Slot::new();
    let mut hostname = Slot::new();
    let mut processname = Slot::new();
    let mut processid = Slot::new();
    let mut severity = Slot::new();
    let mut summary = Slot::new();
    let mut category = Slot::new();
    let mut source = Slot::new();
    let mut detail_objects: Vec<(u8, Value)> = Vec::new();
    let mut payload: Option<Value> = None;
    let mut tags: Vec<String> = Vec::new();
    let mut dotted: Vec<(String, Value)> = Vec::new();
    let mut spill: Vec<(String, Value)> = Vec::new();

    for (raw_key, value) in object {
        let key = raw_key.trim_start_matches('@').to_lowercase();
        match target(&key) {
            Target::EventId => eventid.offer(0, key, value, &mut spill),
            Target::Time(rank) => time_slot.offer(rank, key, value, &mut spill),
            Target::Received => {}
            Target::Hostname(rank) => hostname.offer(rank, key, value, &mut spill),
            Target::ProcessName(rank) => processname.offer(rank, key, value, &mut spill),
            Target::ProcessId(rank) => processid.offer(rank, key, value, &mut spill),
            Target::Severity(rank) => severity.offer(rank, key, value, &mut spill),
            Target::Summary(rank) => summary.offer(rank, key, value, &mut spill),
            Target::Payload => payload = Some(value),
            Target::Category(rank) => category.offer(rank, key, value, &mut spill),
            Target::Source(rank) => source.offer(rank, key, value, &mut spill),
            Target::Details(rank) => detail_objects.push((rank, value)),
            Target::Tags => push_tags(&mut tags, value),
            Target::DottedDetail => dotted.push((key, value)),
            Target::SourceIp => dotted.push(("details.sourceipaddress".to_string(), value)),
            Target::Unknown => spill.push((key, value)),
        }
    }

    // MozDef: a payload is the summary when there is none, else a detail.
    if let Some(payload) = payload {
        summary.offer(2, "payload".to_string(), payload, &mut spill);
    }

    let mut details = Map::new();
    // `details` before `fields`; the first to name a key keeps it.
    detail_objects.sort_by_key(|(rank, _)| *rank);
    for (_, value) in detail_objects {
        merge_details(&mut details, value);
    }
    for (key, value) in dotted {
        let name = key
            .strip_prefix("details.")
            .or_else(|| key.strip_prefix("fields."))
            .unwrap_or(&key)
            .to_string();
        let value = typed_by_suffix(&name, value);
        details.entry(name).or_insert(value);
    }

    let received_text = time::format_utc(received);
    let mut event = Event {
        eventid: String::new(),
        timestamp: received_text.clone(),
        utctimestamp: received_text.clone(),
        receivedtimestamp: Some(received_text.clone()),
        hostname: text_or_unknown(hostname.take(), &mut spill),
        processname: text_or_unknown(processname.take(), &mut spill),
        processid: 0,
        severity: Severity::Info.as_str().to_string(),
        summary: String::new(),
        category: text_or_unknown(category.take(), &mut spill),
        source: text_or_unknown(source.take(), &mut spill),
        tags,
        details: Map::new(),
    };
    event.summary = text_or_unknown(summary.take(), &mut spill);

    if let Some((key, value)) = processid.take() {
        match integer(&value) {
            Some(pid) => event.processid = pid,
            None => spill.push((key, value)),
        }
    }
    if let Some((key, value)) = severity.take() {
        match severity_of(&value) {
            Some(severity) => event.severity = severity.as_str().to_string(),
            // Not one of the eight: INFO, the value sent kept in details.
            None => spill.push((key, value)),
        }
    }

    let timed = time_slot.take();
    let has_time = timed.is_some();
    if let Some((_, value)) = timed {
        let bsd = || {
            value
                .as_str()
                .and_then(|text| time::parse_bsd(text, received))
        };
        match time::parse_value(&value).or_else(|e| bsd().ok_or(e)) {
            Ok(at) => event.set_time(&at),
            Err(err) => {
                details.insert(
                    fields::details::TIMESTAMPERROR.to_string(),
                    Value::String(err.text),
                );
            }
        }
    }

    match eventid.take() {
        Some((_, Value::String(id))) if plausible_id(&id) => event.eventid = id,
        other => {
            if let Some((key, value)) = other {
                spill.push((key, value));
            }
            let position = if has_time { "" } else { received_text.as_str() };
            event.eventid = event_id("", &content, position);
        }
    }

    for (field, text) in [
        ("hostname", &event.hostname),
        ("processname", &event.processname),
    ] {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(NormalizeError::ControlCharacter {
                field,
                code: u32::from(c),
            });
        }
    }
    for (key, value) in spill {
        details.entry(key).or_insert(value);
    }
    event.details = details;
    if event.summary.len() > fields::SUMMARY_MAX_BYTES {
        // Cuts on a character boundary and flags `details.truncated`.
        let whole = std::mem::take(&mut event.summary);
        event.set_summary(&whole);
    }
    Ok(event)
}

fn merge_details(details: &mut Map<String, Value>, value: Value) {
    match value {
        Value::Object(object) => {
            for (key, value) in object {
                details.entry(key).or_insert(value);
            }
        }
        Value::Null => {}
        other => {
            details
                .entry(fields::details::MESSAGE.to_string())
                .or_insert(other);
        }
    }
}

fn push_tags(tags: &mut Vec<String>, value: Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                push_tags(tags, item);
            }
        }
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => tags.push(s),
        Value::Null => {}
        other => tags.push(other.to_string()),
    }
}

/// MozDef types `details.x_int` and `details.x_float` from text.
fn typed_by_suffix(name: &str, value: Value) -> Value {
    let text = match &value {
        Value::String(s) => s.trim(),
        _ => return value,
    };
    if name.ends_with("_int") {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
    } else if name.ends_with("_float") {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    value
}

fn text_or_unknown(slot: Option<(String, Value)>, spill: &mut Vec<(String, Value)>) -> String {
    match slot {
        Some((_, Value::String(s))) => s,
        Some((_, Value::Number(n))) => n.to_string(),
        Some((_, Value::Bool(b))) => b.to_string(),
        Some((key, other)) => {
            spill.push((key, other));
            UNKNOWN.to_string()
        }
        None => UNKNOWN.to_string(),
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// The severity a sent value names (a name, an abbreviation, a syslog number; an empty
/// one is INFO); `None` when it names none.
fn severity_of(value: &Value) -> Option<Severity> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return Some(Severity::Info),
        _ => return None,
    };
    if text.trim().is_empty() {
        return Some(Severity::Info);
    }
    Severity::from_name(&text)
}

fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn run(input: Value) -> Event {
        normalize(input.clone(), received()).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn top_level_keys_are_lowercased_and_at_stripped() {
        let event = run(json!({
            "@Timestamp": "2026-11-22T08:14:03Z",
            "HOSTNAME": "web1",
            "@Summary": "hello",
            "Category": "authentication",
        }));
        assert_eq!(event.utctimestamp, "2026-11-22T08:14:03+00:00");
        assert_eq!(event.hostname, "web1");
        assert_eq!(event.summary, "hello");
        assert_eq!(event.category, "authentication");
        assert!(event.details.is_empty(), "{:?}", event.details);
    }

    #[test]
    fn mozdef_aliases_map_onto_the_schema() {
        // (input key, value, field to read, expected)
        let cases: Vec<(&str, Value, &str, Value)> = vec![
            ("message", json!("m"), "summary", json!("m")),
            ("host", json!("h1"), "hostname", json!("h1")),
            ("source_host", json!("h2"), "hostname", json!("h2")),
            ("pid", json!(42), "processid", json!(42)),
            ("pid", json!("43"), "processid", json!(43)),
            ("program", json!("sshd"), "processname", json!("sshd")),
            ("pname", json!("sudo"), "processname", json!("sudo")),
            ("sourcename", json!("su"), "processname", json!("su")),
            ("type", json!("t"), "category", json!("t")),
            ("eventtype", json!("e"), "category", json!("e")),
            ("level", json!("warn"), "severity", json!("WARNING")),
            ("priority", json!("err"), "severity", json!("ERROR")),
            ("severityvalue", json!(3), "severity", json!("ERROR")),
            (
                "syslogseverity",
                json!("notice"),
                "severity",
                json!("NOTICE"),
            ),
            ("severity", json!("loud"), "severity", json!("INFO")),
            (
                "severity",
                json!("loud"),
                "details",
                json!({"severity": "loud"}),
            ),
            ("level", json!(9), "details", json!({"level": 9})),
            ("severity", json!("critical"), "severity", json!("CRITICAL")),
            (
                "eventtime",
                json!(1_795_335_243),
                "utctimestamp",
                json!("2026-11-22T08:14:03+00:00"),
            ),
            (
                "date",
                json!("2026-11-22T09:14:03+01:00"),
                "timestamp",
                json!("2026-11-22T09:14:03+01:00"),
            ),
            (
                "utctimestamp",
                json!("2026-11-22T08:14:03Z"),
                "utctimestamp",
                json!("2026-11-22T08:14:03+00:00"),
            ),
            ("payload", json!("p"), "summary", json!("p")),
            ("tags", json!("one"), "tags", json!(["one"])),
            ("tags", json!(["a", "b"]), "tags", json!(["a", "b"])),
            (
                "source",
                json!("/var/log/secure"),
                "source",
                json!("/var/log/secure"),
            ),
        ];
        for (key, value, field, expected) in cases {
            let event = run(json!({ key: value }));
            let got = serde_json::to_value(&event).unwrap()[field].clone();
            assert_eq!(got, expected, "{key} = {value} → {field}");
        }
    }

    #[test]
    fn canonical_names_win_and_losers_are_kept_in_details() {
        let event = run(
            json!({"message": "from message", "summary": "from summary", "host": "a", "hostname": "b"}),
        );
        assert_eq!(event.summary, "from summary");
        assert_eq!(event.hostname, "b");
        assert_eq!(event.details["message"], json!("from message"));
        assert_eq!(event.details["host"], json!("a"));

        let event = run(json!({"summary": "s", "payload": "p"}));
        assert_eq!(event.summary, "s");
        assert_eq!(event.details["payload"], json!("p"));
    }

    #[test]
    fn details_fields_and_unknown_keys_are_merged() {
        let event = run(json!({
            "details": {"username": "alice", "x": 1},
            "fields": {"x": 2, "y": 3},
            "details.sourceport_int": "22",
            "fields.ratio_float": "0.5",
            "details.plain": "v",
            "sourceip": "10.0.0.1",
            "custom": {"nested": true},
            "x": "top",
        }));
        let d = &event.details;
        assert_eq!(d["username"], json!("alice"));
        assert_eq!(d["x"], json!(1), "details win over fields and unknown keys");
        assert_eq!(d["y"], json!(3));
        assert_eq!(d["sourceport_int"], json!(22));
        assert_eq!(d["ratio_float"], json!(0.5));
        assert_eq!(d["plain"], json!("v"));
        assert_eq!(d["sourceipaddress"], json!("10.0.0.1"));
        assert_eq!(d["custom"], json!({"nested": true}));
    }

    #[test]
    fn non_object_details_become_details_message() {
        for value in [json!("text"), json!(5), json!(["a"]), json!(true)] {
            let event = run(json!({ "details": value.clone() }));
            assert_eq!(event.details["message"], value);
        }
        let event = run(json!({ "details": null }));
        assert!(event.details.is_empty());
    }

    #[test]
    fn missing_fields_get_mozdef_defaults() {
        let event = run(json!({}));
        assert_eq!(event.hostname, "UNKNOWN");
        assert_eq!(event.processname, "UNKNOWN");
        assert_eq!(event.summary, "UNKNOWN");
        assert_eq!(event.category, "UNKNOWN");
        assert_eq!(event.source, "UNKNOWN");
        assert_eq!(event.severity, "INFO");
        assert_eq!(event.processid, 0);
        assert!(event.tags.is_empty());
        assert!(event.details.is_empty());
        assert_eq!(event.utctimestamp, "2026-11-24T12:00:00+00:00");
        assert_eq!(event.timestamp, "2026-11-24T12:00:00+00:00");
        assert_eq!(
            event.receivedtimestamp.as_deref(),
            Some("2026-11-24T12:00:00+00:00")
        );
        assert!(crate::eventid::is_event_id(&event.eventid));
    }

    #[test]
    fn received_timestamp_is_always_the_collectors() {
        let event = run(json!({"receivedtimestamp": "1999-01-01T00:00:00Z"}));
        assert_eq!(
            event.receivedtimestamp.as_deref(),
            Some("2026-11-24T12:00:00+00:00")
        );
        assert!(!event.details.contains_key("receivedtimestamp"));
    }

    #[test]
    fn syslog_ng_and_rsyslog_templates_are_read() {
        // syslog-ng's format-json (upper-case macros): ISODATE wins over DATE.
        let event = run(json!({
            "DATE": "Nov 24 11:59:58", "ISODATE": "2026-11-24T12:59:58+01:00",
            "HOST": "web1", "PROGRAM": "sshd", "PID": "4242", "PRIORITY": "info",
            "MESSAGE": "Failed password for root from 203.0.113.9 port 22 ssh2",
        }));
        assert_eq!(event.timestamp, "2026-11-24T12:59:58+01:00");
        assert_eq!(event.hostname, "web1");
        assert_eq!(event.processname, "sshd");
        assert_eq!(event.processid, 4242);
        assert_eq!(event.details["date"], json!("Nov 24 11:59:58"));
        // DATE alone: a BSD date, UTC, in the year nearest reception.
        let event = run(json!({"DATE": "Nov 24 11:59:58", "MESSAGE": "m"}));
        assert_eq!(event.utctimestamp, "2026-11-24T11:59:58+00:00");
        assert!(!event.details.contains_key("timestamperror"));
        let event = run(json!({"DATE": "Dec 31 23:59:59", "MESSAGE": "m"}));
        assert_eq!(
            event.utctimestamp, "2025-12-31T23:59:59+00:00",
            "last year's"
        );
        // rsyslog's property names.
        let event = run(json!({
            "timereported": "2026-11-24T11:00:00.123456+00:00", "fromhost": "relay1",
            "programname": "sudo", "procid": "77", "msg": " x", "syslogseverity-text": "warning",
        }));
        assert_eq!(event.utctimestamp, "2026-11-24T11:00:00.123456+00:00");
        assert_eq!(event.hostname, "relay1");
        assert_eq!(event.processname, "sudo");
        assert_eq!(event.processid, 77);
        assert_eq!(event.severity, "WARNING");
        assert_eq!(event.summary.trim(), "x");
    }

    #[test]
    fn unreadable_time_is_kept_with_timestamperror() {
        let event = run(json!({"timestamp": "last tuesday", "summary": "x"}));
        assert_eq!(event.utctimestamp, "2026-11-24T12:00:00+00:00");
        assert_eq!(event.details["timestamperror"], json!("last tuesday"));
        let event = run(json!({"timestamp": {"weird": 1}}));
        assert_eq!(event.details["timestamperror"], json!("{\"weird\":1}"));
    }

    #[test]
    fn timestamp_wins_over_utctimestamp_and_utc_is_recomputed() {
        let event = run(json!({
            "timestamp": "2026-11-22T09:14:03.5+01:00",
            "utctimestamp": "2000-01-01T00:00:00Z",
        }));
        assert_eq!(event.timestamp, "2026-11-22T09:14:03.500000+01:00");
        assert_eq!(event.utctimestamp, "2026-11-22T08:14:03.500000+00:00");
        assert_eq!(event.details["utctimestamp"], json!("2000-01-01T00:00:00Z"));
    }

    #[test]
    fn processid_that_is_not_a_number_is_zero_and_kept() {
        let event = run(json!({"processid": "UNKNOWN"}));
        assert_eq!(event.processid, 0);
        assert_eq!(event.details["processid"], json!("UNKNOWN"));
        let event = run(json!({"pid": 12.0}));
        assert_eq!(event.processid, 12);
    }

    #[test]
    fn eventid_is_kept_or_derived_from_content() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(run(json!({"eventid": id})).eventid, id);

        let timed = json!({"summary": "a", "timestamp": "2026-11-22T08:14:03Z"});
        let a = normalize(timed.clone(), received()).unwrap();
        let b = normalize(timed, received() + chrono::Duration::hours(1)).unwrap();
        assert_eq!(a.eventid, b.eventid, "a resent timed event keeps its id");

        let untimed = json!({"summary": "alive"});
        let a = normalize(untimed.clone(), received()).unwrap();
        let b = normalize(untimed, received() + chrono::Duration::minutes(1)).unwrap();
        assert_ne!(
            a.eventid, b.eventid,
            "untimed events a minute apart stay apart"
        );

        let event = run(json!({"eventid": "has space"}));
        assert!(crate::eventid::is_event_id(&event.eventid));
        assert_eq!(event.details["eventid"], json!("has space"));
    }

    #[test]
    fn syslog_ng_upper_case_json_is_understood() {
        let event = run(json!({
            "DATE": "2026-11-22T08:14:03+00:00",
            "HOST": "db1",
            "PROGRAM": "sshd",
            "PID": "999",
            "MESSAGE": "Accepted publickey for bob",
            "PRIORITY": "info",
            "FACILITY": "auth",
        }));
        assert_eq!(event.hostname, "db1");
        assert_eq!(event.processname, "sshd");
        assert_eq!(event.processid, 999);
        assert_eq!(event.summary, "Accepted publickey for bob");
        assert_eq!(event.severity, "INFO");
        assert_eq!(event.details["facility"], json!("auth"));
    }

    #[test]
    fn non_objects_are_refused_by_kind() {
        for (value, kind) in [
            (json!([1]), "array"),
            (json!("s"), "string"),
            (json!(1), "number"),
            (json!(false), "boolean"),
            (json!(null), "null"),
        ] {
            assert_eq!(
                normalize(value, received()),
                Err(NormalizeError::NotAnObject(kind))
            );
        }
    }

    #[test]
    fn oversized_summary_is_cut_and_flagged() {
        let event = run(json!({"summary": "x".repeat(5000)}));
        assert_eq!(event.summary.len(), 4096);
        assert_eq!(event.details["truncated"], json!(true));
    }
}
