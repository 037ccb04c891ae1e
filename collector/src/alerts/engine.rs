//! Evaluating one rule at one instant: search its window, leave out the events that
//! already made an alert of this rule, group, compare with the threshold, build
//! MozDef-shaped alert documents.
//!
//! Like MozDef's alert tasks, the events of a window are fetched (newest first, at most
//! [`MAX_EVENTS`]) and grouped here rather than by store aggregations: that is what lets
//! an event already counted in an alert of the rule be left out of the next run, on
//! both stores alike. Deadman rules use `terms` aggregations (values seen in the
//! lookback against values seen in the window).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

mod document;

use self::document::{Facts, build};
use super::rules::{Rule, RuleKind, describe_duration};
use crate::stores::{SearchRequest, SearchResult, Store, StoreError};

/// Most events one run of a rule looks at (the newest of its window).
pub const MAX_EVENTS: usize = 10_000;

/// Where a rule's events come from: the running collector's store, or a collector
/// asked over HTTP (`picket-collector alerts test`).
pub trait EventSource: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    fn search(
        &self,
        request: SearchRequest,
    ) -> impl Future<Output = Result<SearchResult, Self::Error>> + Send;
}

impl EventSource for Arc<Store> {
    type Error = StoreError;

    async fn search(&self, request: SearchRequest) -> Result<SearchResult, StoreError> {
        Store::search(self, request).await
    }
}

/// Why a rule could not run.
#[derive(Debug, Error)]
pub enum AlertError {
    #[error("the rule's window or lookback is too long: {0}")]
    Window(#[from] chrono::OutOfRangeError),
    #[error("search failed: {0}")]
    Search(Box<dyn std::error::Error + Send + Sync>),
}

impl AlertError {
    fn search(error: impl std::error::Error + Send + Sync + 'static) -> AlertError {
        AlertError::Search(Box::new(error))
    }
}

/// What one rule has already alerted on, kept across runs and restarts: the events
/// that contributed to an alert (so none counts twice), and for deadman rules the
/// values found silent (so a silence alerts once, and again only after it ended).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuleLedger {
    /// eventid → when it happened (by the rule's time field).
    pub events: HashMap<String, DateTime<Utc>>,
    /// deadman value ("" without a field) → when the silence was alerted.
    pub silent: HashMap<String, DateTime<Utc>>,
    /// Alerts decided and written here before they are stored: a scheduler that stops
    /// between the two (killed, or the store refused them) stores them at its next
    /// run, or the next lease holder does. Stored twice they are one alert (same id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingAlert>,
    /// The last scheduled run the rule made (the end of its window): the runs missed
    /// since (failed or late, the collector down with its ledger kept, the lease
    /// elsewhere) are made when it runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated: Option<DateTime<Utc>>,
}

/// An alert decided and not yet stored: its id and document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingAlert {
    pub id: String,
    pub document: Value,
}

impl RuleLedger {
    /// Forgets events too old to fall in any window of `rule` from `now` on.
    pub fn prune(&mut self, rule: &Rule, now: DateTime<Utc>) {
        let horizon = now
            - chrono::Duration::from_std(rule.window).unwrap_or_default()
            - chrono::Duration::hours(1);
        self.events.retain(|_, at| *at >= horizon);
    }
}

/// An alert a rule fired.
#[derive(Debug, Clone)]
pub struct Alert {
    pub id: String,
    /// MozDef's alert document.
    pub document: Value,
    /// Every event that made it (not only the samples in the document), with when it
    /// happened by the rule's time field...
    pub contributing: Vec<(String, DateTime<Utc>)>,
    /// ...and where Elasticsearch keeps it: (index, id), for tagging `alert_names`.
    pub documents: Vec<(String, String)>,
    /// For deadman rules: the silent value.
    pub silent: Option<String>,
}

/// What one run of a rule found.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub alerts: Vec<Alert>,
    /// Deadman values in the ledger seen again in the window: their silence is over.
    pub recovered: Vec<String>,
}

/// Runs `rule` as of `now`; `ledger` says what must not alert again.
pub async fn evaluate<S: EventSource>(
    rule: &Rule,
    source: &S,
    ledger: &RuleLedger,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, AlertError> {
    evaluate_run(rule, source, ledger, now)
        .await
        .map(|run| run.alerts)
}

/// A search of `rule`'s time field over the window that ends at `now`.
fn in_window(
    rule: &Rule,
    query: String,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    size: usize,
    aggs: Option<Value>,
) -> SearchRequest {
    SearchRequest {
        query,
        from: Some(from),
        to: Some(now),
        size,
        time_field: rule.time_field,
        aggs,
        max_bytes: 0,
    }
}

/// The hits no alert of the rule has counted yet.
fn unalerted(hits: Vec<Value>, ledger: &RuleLedger) -> Vec<Value> {
    hits.into_iter()
        .filter(|hit| {
            hit["eventid"]
                .as_str()
                .is_some_and(|id| !ledger.events.contains_key(id))
        })
        .collect()
}

/// [`evaluate`], with what the scheduler also needs: recovered deadman values.
pub async fn evaluate_run<S: EventSource>(
    rule: &Rule,
    source: &S,
    ledger: &RuleLedger,
    now: DateTime<Utc>,
) -> Result<Evaluation, AlertError> {
    let window = chrono::Duration::from_std(rule.window)?;
    if let RuleKind::Deadman { field, lookback } = &rule.kind {
        let lookback = chrono::Duration::from_std(*lookback)?;
        return deadman(
            rule,
            source,
            ledger,
            now,
            window,
            lookback,
            field.as_deref(),
        )
        .await;
    }
    let fresh = unalerted(matches(rule, source, now, window).await?, ledger);
    let mut alerts = match &rule.kind {
        RuleKind::Simple => simple(rule, now, fresh),
        RuleKind::Aggregate {
            field,
            threshold,
            samples,
        } => aggregate(rule, now, fresh, field, *threshold, *samples),
        RuleKind::Cardinality {
            field,
            distinct_field,
            threshold,
            samples,
        } => cardinality(
            rule,
            now,
            fresh,
            field,
            distinct_field,
            *threshold,
            *samples,
        ),
        RuleKind::Sequence {
            field,
            threshold,
            then,
            samples,
        } => {
            let followers = source
                .search(in_window(
                    rule,
                    then.clone(),
                    now - window,
                    now,
                    MAX_EVENTS,
                    None,
                ))
                .await
                .map_err(AlertError::search)?;
            let followers = unalerted(followers.hits, ledger);
            sequence(rule, now, fresh, followers, field, *threshold, *samples)
        }
        RuleKind::Deadman { .. } => unreachable!("handled above"),
    };
    for alert in &mut alerts {
        for (_, at) in &mut alert.contributing {
            // Events without a readable time are remembered as of now.
            if at.timestamp() == 0 {
                *at = now;
            }
        }
    }
    Ok(Evaluation {
        alerts,
        recovered: Vec::new(),
    })
}

/// The events of the window that match the rule's query: one fetch of the newest
/// [`MAX_EVENTS`], or, for a grouped rule whose window holds more, the events of the
/// values that can reach the threshold.
async fn matches<S: EventSource>(
    rule: &Rule,
    source: &S,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<Vec<Value>, AlertError> {
    let found = source
        .search(in_window(
            rule,
            rule.query.clone(),
            now - window,
            now,
            MAX_EVENTS,
            None,
        ))
        .await
        .map_err(AlertError::search)?;
    let grouped_by = match &rule.kind {
        RuleKind::Aggregate {
            field, threshold, ..
        }
        | RuleKind::Cardinality {
            field, threshold, ..
        }
        | RuleKind::Sequence {
            field, threshold, ..
        } => Some((field.as_str(), *threshold)),
        RuleKind::Simple | RuleKind::Deadman { .. } => None,
    };
    match grouped_by {
        Some((field, threshold)) if found.total > MAX_EVENTS => {
            // More than one fetch holds: find the values that can reach the threshold
            // with a terms aggregation over every match, then fetch their events.
            candidates(rule, source, now, window, field, threshold).await
        }
        _ => {
            if found.total > MAX_EVENTS {
                tracing::warn!(rule = %rule.name, matched = found.total, looked_at = MAX_EVENTS, "Rule matched more events than one run looks at; only the newest alert. Narrow its query or window.");
            }
            Ok(found.hits)
        }
    }
}

/// A `simple` rule: an alert per event.
fn simple(rule: &Rule, now: DateTime<Utc>, fresh: Vec<Value>) -> Vec<Alert> {
    fresh
        .into_iter()
        .map(|hit| {
            let facts = Facts {
                count: 1,
                value: None,
                distinct: None,
                threshold: None,
            };
            build(rule, now, &facts, vec![hit.clone()], vec![hit])
        })
        .collect()
}

/// The most occurrences one event may stand for: a sender's `details.count` cannot make
/// one event fire a rule by itself (sudo gives up after 3 passwords by default).
pub const MAX_WEIGHT: u64 = 100;

/// How many occurrences an event stands for: its `details.count` (a whole number of at
/// least 1, at most [`MAX_WEIGHT`]: one line that reports several failures, sudo's `3
/// incorrect password attempts` less those PAM's lines counted), else 1.
fn weight(hit: &Value) -> u64 {
    hit["details"]["count"]
        .as_u64()
        .filter(|n| *n >= 1)
        .map_or(1, |n| n.min(MAX_WEIGHT))
}

/// An `aggregate` rule: an alert per value of `field` whose events, weighed by
/// [`weight`], reach `threshold`.
fn aggregate(
    rule: &Rule,
    now: DateTime<Utc>,
    fresh: Vec<Value>,
    field: &str,
    threshold: u64,
    samples: usize,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for (value, group) in groups(&fresh, field) {
        let count = group.iter().map(weight).fold(0u64, u64::saturating_add);
        if count >= threshold {
            let facts = Facts {
                count,
                value: Some(value),
                distinct: None,
                threshold: Some(threshold),
            };
            let shown = group.iter().take(samples).cloned().collect();
            alerts.push(build(rule, now, &facts, shown, group));
        }
    }
    alerts
}

/// A `cardinality` rule: an alert per value of `field` whose events hold at least
/// `threshold` distinct values of `distinct_field`.
fn cardinality(
    rule: &Rule,
    now: DateTime<Utc>,
    fresh: Vec<Value>,
    field: &str,
    distinct_field: &str,
    threshold: u64,
    samples: usize,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for (value, group) in groups(&fresh, field) {
        let distinct: BTreeSet<String> = group
            .iter()
            .flat_map(|hit| values(hit, distinct_field))
            .collect();
        if distinct.len() as u64 >= threshold {
            let facts = Facts {
                count: group.len() as u64,
                value: Some(value),
                distinct: Some(distinct.len() as u64),
                threshold: Some(threshold),
            };
            let shown = group.iter().take(samples).cloned().collect();
            alerts.push(build(rule, now, &facts, shown, group));
        }
    }
    alerts
}

/// A `sequence` rule: an alert per value of `field` with at least `threshold` events
/// followed, after the threshold was reached, by a `then` event of the same value.
fn sequence(
    rule: &Rule,
    now: DateTime<Utc>,
    fresh: Vec<Value>,
    followers: Vec<Value>,
    field: &str,
    threshold: u64,
    samples: usize,
) -> Vec<Alert> {
    let followers = groups(&followers, field);
    let time_field = rule.time_field.name();
    let time = |hit: &Value| {
        hit[time_field]
            .as_str()
            .and_then(|t| mozdef::time::parse_str(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let mut alerts = Vec::new();
    for (value, group) in groups(&fresh, field) {
        let count = group.len() as u64;
        if count < threshold {
            continue;
        }
        // The time the threshold was reached: the `threshold`-th oldest event.
        let mut times: Vec<DateTime<Utc>> = group.iter().filter_map(time).collect();
        times.sort();
        let Some(reached) = times.get(threshold as usize - 1).copied() else {
            continue;
        };
        let after: Vec<Value> = followers
            .get(&value)
            .into_iter()
            .flatten()
            .filter(|hit| time(hit).is_some_and(|t| t >= reached))
            .cloned()
            .collect();
        if after.is_empty() {
            continue;
        }
        let facts = Facts {
            count,
            value: Some(value),
            distinct: None,
            threshold: Some(threshold),
        };
        let mut shown: Vec<Value> = after.clone();
        shown.extend(group.iter().take(samples).cloned());
        let mut all = group;
        all.extend(after);
        alerts.push(build(rule, now, &facts, shown, all));
    }
    alerts
}

/// Most values one run follows up when its window holds more than [`MAX_EVENTS`].
const MAX_CANDIDATES: usize = 1000;

/// The events of the values of `field` that have at least `threshold` matches in the
/// window (the newest [`MAX_EVENTS`] of each).
async fn candidates<S: EventSource>(
    rule: &Rule,
    source: &S,
    now: DateTime<Utc>,
    window: chrono::Duration,
    field: &str,
    threshold: u64,
) -> Result<Vec<Value>, AlertError> {
    let counted = source
        .search(in_window(
            rule,
            rule.query.clone(),
            now - window,
            now,
            0,
            Some(json!({ "values": { "terms": {
                "field": field, "size": MAX_CANDIDATES, "min_doc_count": threshold
            } } })),
        ))
        .await
        .map_err(AlertError::search)?;
    let values = bucket_keys(&counted);
    if values.len() >= MAX_CANDIDATES {
        tracing::warn!(rule = %rule.name, followed = MAX_CANDIDATES, "More values reach the threshold than one run follows; the rest alert at later runs.");
    }
    let mut seen = std::collections::HashSet::new();
    let mut hits = Vec::new();
    for value in values {
        let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
        let found = source
            .search(in_window(
                rule,
                format!("({}) AND {field}:\"{quoted}\"", rule.query),
                now - window,
                now,
                MAX_EVENTS,
                None,
            ))
            .await
            .map_err(AlertError::search)?;
        for hit in found.hits {
            let id = hit["eventid"].as_str().unwrap_or("").to_string();
            if seen.insert(id) {
                hits.push(hit);
            }
        }
    }
    Ok(hits)
}

async fn deadman<S: EventSource>(
    rule: &Rule,
    source: &S,
    ledger: &RuleLedger,
    now: DateTime<Utc>,
    window: chrono::Duration,
    lookback: chrono::Duration,
    field: Option<&str>,
) -> Result<Evaluation, AlertError> {
    let search = |from: DateTime<Utc>| {
        let aggs = field.map(|f| json!({ "values": { "terms": { "field": f, "size": 10_000 } } }));
        source.search(in_window(rule, rule.query.clone(), from, now, 0, aggs))
    };
    let recent = search(now - window).await.map_err(AlertError::search)?;
    let mut run = Evaluation::default();
    if field.is_none() {
        if recent.total > 0 {
            if ledger.silent.contains_key("") {
                run.recovered.push(String::new());
            }
        } else if !ledger.silent.contains_key("") {
            let facts = Facts {
                count: 0,
                value: None,
                distinct: None,
                threshold: None,
            };
            let mut alert = build(rule, now, &facts, Vec::new(), Vec::new());
            alert.silent = Some(String::new());
            run.alerts.push(alert);
        }
        return Ok(run);
    }
    let recent = bucket_keys(&recent);
    run.recovered = ledger
        .silent
        .keys()
        .filter(|v| recent.contains(*v))
        .cloned()
        .collect();
    let seen = search(now - lookback).await.map_err(AlertError::search)?;
    for value in bucket_keys(&seen) {
        if recent.contains(&value) || ledger.silent.contains_key(&value) {
            continue;
        }
        let facts = Facts {
            count: 0,
            value: Some(value.clone()),
            distinct: None,
            threshold: None,
        };
        let mut alert = build(rule, now, &facts, Vec::new(), Vec::new());
        alert.document["hostnames"] = json!([]);
        alert.silent = Some(value);
        run.alerts.push(alert);
    }
    Ok(run)
}

fn bucket_keys(result: &SearchResult) -> BTreeSet<String> {
    result
        .aggregations
        .as_ref()
        .and_then(|a| a["values"]["buckets"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|b| match &b["key"] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
        .collect()
}

/// The values of `path` in an event: one for a scalar, each for an array.
fn values(hit: &Value, path: &str) -> Vec<String> {
    let mut at = hit;
    for part in path.split('.') {
        match at.get(part) {
            Some(next) => at = next,
            None => return Vec::new(),
        }
    }
    match at {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

/// Events grouped by the value of `field` (newest first within a group), groups in
/// value order.
fn groups(hits: &[Value], field: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for hit in hits {
        for value in values(hit, field) {
            out.entry(value).or_default().push(hit.clone());
        }
    }
    out
}
