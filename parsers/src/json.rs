//! JSON lines (the contract's JSON section): a line, or the message after its syslog
//! header, that is a JSON object is an event an application wrote itself. Its fields
//! are kept with keys lower-cased; the contract's top-level fields (and MozDef's common
//! aliases for them) fill the event, the rest go to `details`; what it does not say is
//! taken from the syslog header.

use std::borrow::Cow;

use mozdef::{Severity, time};
use serde_json::{Map, Value};

use super::common::set;
use super::draft::{Detail, Details, Draft};

/// Parser id, written into `tags`.
pub const ID: &str = "json";

/// Whether the message may be a JSON object (cheap test before parsing).
pub fn looks_like_json(message: &str) -> bool {
    let text = message.trim();
    text.starts_with('{') && text.ends_with('}')
}

/// Reads a JSON object into `event`; false when the text is not one.
pub fn parse(text: &str, event: &mut Draft<'_>) -> bool {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text.trim()) else {
        return false;
    };
    let mut summary_set = false;
    let mut timed = false;
    for (raw_key, value) in object {
        let key = raw_key.trim_start_matches('@').to_lowercase();
        match key.as_str() {
            "timestamp" | "utctimestamp" | "eventtime" | "date" | "time" if !timed => {
                match time::parse_value(&value) {
                    Ok(at) => {
                        event.set_time(&at);
                        timed = true;
                    }
                    Err(_) => set(event, key.clone(), value),
                }
            }
            "hostname" | "host" => match value {
                Value::String(host) if !host.is_empty() => event.hostname = Cow::Owned(host),
                other => set(event, key.clone(), other),
            },
            "processname" | "program" => match value {
                Value::String(name) if !name.is_empty() => event.processname = Cow::Owned(name),
                other => set(event, key.clone(), other),
            },
            "processid" | "pid" => match value
                .as_i64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            {
                Some(pid) => event.processid = pid,
                None => set(event, key.clone(), value),
            },
            "severity" | "level" => match value.as_str().and_then(Severity::from_name) {
                Some(level) => event.severity = level.as_str(),
                None => set(event, key.clone(), value),
            },
            "summary" | "message" | "msg" if !summary_set => match value {
                Value::String(text) => {
                    event.set_summary(Cow::Owned(text));
                    summary_set = true;
                }
                other => set(event, key.clone(), other),
            },
            "category" => match value {
                Value::String(category) if !category.is_empty() => {
                    event.category = Cow::Owned(category)
                }
                other => set(event, key.clone(), other),
            },
            "tags" => match value {
                Value::Array(tags) => event.tags.extend(
                    tags.into_iter()
                        .filter_map(|t| t.as_str().map(|t| Cow::Owned(t.to_string()))),
                ),
                Value::String(tag) => event.tags.push(Cow::Owned(tag)),
                other => set(event, key.clone(), other),
            },
            "details" | "fields" => match value {
                Value::Object(inner) => merge(&mut event.details, inner),
                other => set(event, key.clone(), other),
            },
            _ => set(event, key.clone(), value),
        }
    }
    true
}

fn merge(details: &mut Details<'_>, inner: Map<String, Value>) {
    for (key, value) in inner {
        details.insert_if_absent(key.to_lowercase(), Detail::from(value));
    }
}
