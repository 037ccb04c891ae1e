//! The alert document a rule's match becomes: MozDef's fields (`summary` from the
//! rule's template, `severity`, `category`, `tags`, `events` samples, `hostnames`), its
//! id, and the events that contributed to it.

use super::*;

pub(super) struct Facts {
    pub(super) count: u64,
    pub(super) value: Option<String>,
    pub(super) distinct: Option<u64>,
    pub(super) threshold: Option<u64>,
}

/// `events-YYYYMMDD` of an event, as the Elasticsearch store files it.
pub(super) fn document_index(hit: &Value) -> String {
    hit["utctimestamp"]
        .as_str()
        .and_then(|t| mozdef::time::parse_str(t).ok())
        .map(|t| crate::stores::elasticsearch::events_index(t.with_timezone(&Utc).date_naive()))
        .unwrap_or_else(|| "events".to_string())
}

pub(super) fn build(
    rule: &Rule,
    now: DateTime<Utc>,
    facts: &Facts,
    shown: Vec<Value>,
    all: Vec<Value>,
) -> Alert {
    let hostnames: BTreeSet<String> = all
        .iter()
        .filter_map(|hit| hit["hostname"].as_str().map(str::to_string))
        .filter(|h| !h.is_empty())
        .collect();
    let hostnames: Vec<String> = hostnames.into_iter().collect();
    let first = shown.first().cloned().unwrap_or(Value::Null);
    let summary = fill(&rule.summary, rule, facts, &hostnames, &first);
    let events: Vec<Value> = shown
        .iter()
        .map(|hit| {
            json!({
                "documentindex": document_index(hit),
                "documentid": hit["eventid"],
                "documentsource": hit,
            })
        })
        .collect();
    let quiet = matches!(rule.severity.as_str(), "DEBUG" | "INFO" | "NOTICE");
    let mut document = json!({
        "utctimestamp": mozdef::time::format_utc(now),
        "severity": rule.severity,
        "summary": summary,
        "category": rule.category,
        "tags": rule.tags,
        "events": events,
        "classname": rule.name,
        "status": "NEW",
        "notify_mozdefbot": !quiet || rule.channel.is_some(),
        "hostnames": hostnames,
        "details": {
            "rule": rule.name,
            "type": rule.kind.name(),
            "count": facts.count,
            "window": describe_duration(rule.window),
        },
    });
    // What finds the events behind it (the console's "all events of this alert"):
    // the rule's query, and the field whose value the alert is about.
    document["details"]["query"] = json!(rule.query);
    if let Some(value) = &facts.value {
        document["details"]["value"] = json!(value);
        if let Some(field) = rule.kind.field() {
            document["details"]["field"] = json!(field);
        }
    }
    if let Some(distinct) = facts.distinct {
        document["details"]["distinct"] = json!(distinct);
    }
    if let Some(threshold) = facts.threshold {
        document["details"]["threshold"] = json!(threshold);
    }
    if let Some(url) = &rule.url {
        document["url"] = json!(url);
    }
    if let Some(channel) = &rule.channel {
        document["channel"] = json!(channel);
    }
    let time_field = rule.time_field.name();
    let contributing = all
        .iter()
        .filter_map(|hit| {
            let id = hit["eventid"].as_str()?.to_string();
            let at = hit[time_field]
                .as_str()
                .and_then(|t| mozdef::time::parse_str(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            Some((id, at))
        })
        .collect();
    let documents = all
        .iter()
        .filter_map(|hit| Some((document_index(hit), hit["eventid"].as_str()?.to_string())))
        .collect();
    Alert {
        id: crate::alerts::new_id(),
        document,
        contributing,
        documents,
        silent: None,
    }
}

/// Fills `{placeholder}`s; unknown ones are left as written.
pub(super) fn fill(
    template: &str,
    rule: &Rule,
    facts: &Facts,
    hostnames: &[String],
    first: &Value,
) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &rest[start + 1..start + len];
        let value = match name {
            "count" => Some(facts.count.to_string()),
            "value" => facts.value.clone(),
            "distinct" => facts.distinct.map(|d| d.to_string()),
            "threshold" => facts.threshold.map(|t| t.to_string()),
            "window" => Some(describe_duration(rule.window)),
            "rule" => Some(rule.name.clone()),
            "hostnames" => Some(hostnames.join(", ")),
            "summary" => first["summary"].as_str().map(str::to_string),
            path if !path.is_empty() && !path.contains(' ') => {
                let found = values(first, path);
                (!found.is_empty()).then(|| found.join(", "))
            }
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + len + 1]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}
