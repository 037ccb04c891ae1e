//! Reading the cluster's answers: `_bulk` items, error bodies (which refusal is the
//! request's own fault, the reason worth logging), and how requests are split.

use super::*;

/// `pending` split into runs whose lines fit in `max_bytes` (at least one each).
pub(super) fn chunks(pending: &[usize], lines: &[Vec<u8>], max_bytes: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for &i in pending {
        let len = lines[i].len();
        match out.last_mut() {
            Some(chunk) if size + len <= max_bytes => {
                chunk.push(i);
                size += len;
            }
            _ => {
                out.push(vec![i]);
                size = len;
            }
        }
    }
    out
}

pub(super) fn item_outcome(item: &Value) -> ItemOutcome {
    // `{"create": {...}}`: one key, the action.
    let result = item
        .as_object()
        .and_then(|o| o.values().next())
        .cloned()
        .unwrap_or(Value::Null);
    let status = result["status"].as_u64().unwrap_or(0);
    match status {
        200..=299 => ItemOutcome::Stored,
        409 => ItemOutcome::Exists,
        429 | 500..=599 => ItemOutcome::Retry(format!("{status} {}", reason(&result))),
        _ => ItemOutcome::Refused(format!("{status} {}", reason(&result))),
    }
}

/// An answer's body as JSON (an empty body is null; text that is not JSON, a string).
pub(super) fn answer_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// The error types an Elasticsearch error answer names: its own, its `caused_by`
/// chain's and its `root_cause`s'.
pub(super) fn error_types(answer: &Value) -> Vec<&str> {
    let mut types = Vec::new();
    let mut error = &answer["error"];
    for _ in 0..16 {
        if let Some(kind) = error["type"].as_str() {
            types.push(kind);
        }
        for cause in error["root_cause"].as_array().into_iter().flatten() {
            types.extend(cause["type"].as_str());
        }
        error = &error["caused_by"];
        if error.is_null() {
            break;
        }
    }
    types
}

/// A refusal of the request itself, whatever its status (OpenSearch answers 503 to an
/// aggregation over `search.max_buckets`): no other node would take it either.
pub(super) fn is_request_fault(answer: &Value) -> bool {
    error_types(answer).contains(&"too_many_buckets_exception")
}

/// `type: reason` of an Elasticsearch error answer (its innermost cause when the outer
/// error says nothing, as `search_phase_execution_exception` does), or the answer itself.
pub(super) fn reason(answer: &Value) -> String {
    let says_nothing = |error: &Value| {
        error["reason"]
            .as_str()
            .is_none_or(|r| r.is_empty() || r == "all shards failed")
    };
    let mut error = &answer["error"];
    for _ in 0..16 {
        if !says_nothing(error) || !error["caused_by"].is_object() {
            break;
        }
        error = &error["caused_by"];
    }
    if says_nothing(error) && answer["error"]["root_cause"][0].is_object() {
        error = &answer["error"]["root_cause"][0];
    }
    match (error["type"].as_str(), error["reason"].as_str()) {
        (Some(kind), Some(why)) => format!("{kind}: {why}"),
        _ => match error.as_str() {
            Some(text) => text.to_string(),
            None => {
                let text = answer.to_string();
                text.chars().take(300).collect()
            }
        },
    }
}

pub(super) fn host(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    )
}
