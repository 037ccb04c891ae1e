//! The embedded store held to OpenSearch: the same 20,000 events in both, the same
//! queries and aggregation requests to both, answers compared. The events are the
//! public corpora's lines (`../shared/corpus/`) topped up with the shared benchmark
//! workload (`../shared/bench/gen_authlog.py --seed 42`), each through the agent's
//! parser and the collector's normalization, spread evenly over three days.
//!
//! A query agrees when both stores give the same total and (for totals up to 10,000)
//! the same event ids, or both refuse it. Aggregations agree when their buckets (key,
//! count, sub-aggregations) and values are the same; `cardinality` may differ by 5%
//! (both stores estimate it with HyperLogLog++). `terms` ask for more buckets than there
//! are values: past `size`, both stores' counts are per-index (per-day) approximations
//! that can differ near the cut, as Elasticsearch's own do across shards. Deliberate differences are listed
//! in [`KNOWN`] with their reasons (and in the README's query section); an unlisted
//! difference fails the test, and so does a listed one that no longer differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use picket_collector::stores::elasticsearch::{ElasticSettings, ElasticStore};
use picket_collector::stores::embedded::EmbeddedStore;
use picket_collector::stores::{Document, SearchRequest, Store};
use serde_json::{Value, json};

/// How many events both stores hold.
pub const EVENTS: usize = 20_000;

/// Queries whose answers differ on purpose: (query, why). The README's query section
/// lists the same.
pub const KNOWN: &[(&str, &str)] = &[
    (
        "*ssh*",
        "a bare term searches summary, hostname, processname, category and tags in the embedded store; every field on Elasticsearch (index.query.default_field *)",
    ),
    (
        "NOT NOT category:authentication",
        "the embedded store reads NOT as logic (two cancel); Lucene's query_string makes a clause of only negations match nothing",
    ),
    (
        "category:authentication OR NOT category:authentication",
        "the same: Lucene's OR NOT under default_operator AND matches nothing; the embedded store, everything",
    ),
    (
        "nosuchfield:x",
        "the embedded store refuses a field it does not have (400 naming it, a typo is found); Elasticsearch finds nothing",
    ),
    (
        "details.sourceipaddress:\"192.168.0.0/16\"",
        "addresses are ip fields on Elasticsearch (CIDR matches), text in the embedded store",
    ),
    (
        "details.sourceipaddress:10.0.0.0/8",
        "unquoted, Lucene reads /8 as the start of a regular expression and refuses the query; the embedded store looks up the text",
    ),
    (
        "details.sourceipaddress:192.168.*",
        "wildcards work on text: the embedded store's addresses; not on Elasticsearch's ip fields",
    ),
    (
        "details.sourceipaddress:[10.0.0.0 TO 10.255.255.255]",
        "an address range is numeric on Elasticsearch, text order in the embedded store (10.31.x sorts after 10.255.x)",
    ),
    (
        "eventid:0*",
        "the embedded store indexes a digest of each id (a third of its indexing cost was the ids' own terms): it matches ids whole and refuses a wildcard on them by name; Elasticsearch's keyword takes a prefix",
    ),
    (
        "* aggs {\"a\":{\"date_histogram\":{\"calendar_interval\":\"week\",\"field\":\"utctimestamp\"}}}",
        "weeks (and months, quarters, years) are not fixed lengths: the embedded store refuses them by name; Elasticsearch buckets by calendar",
    ),
    (
        "* aggs {\"a\":{\"date_histogram\":{\"calendar_interval\":\"month\",\"field\":\"utctimestamp\"}}}",
        "the same, for months",
    ),
    (
        "* aggs {\"a\":{\"terms\":{\"field\":\"details.utctimestamp\",\"size\":10000}}}",
        "a date-looking text inside details is a date in the embedded store (its terms keys are written with Z) and a keyword on Elasticsearch (date_detection off)",
    ),
];

/// `../shared` beside the checkout; `None` (the test is skipped) without it, but for
/// CI, where it must be there.
pub fn shared() -> Option<PathBuf> {
    let shared = picket_tests::workspace_root().join("../shared");
    if !shared.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "../shared not found (CI expects it beside the checkout)"
        );
        eprintln!("../shared not found; the differential test is skipped");
        return None;
    }
    Some(shared)
}

/// The corpus lines (every `.log` file of the corpora, in path order), then the
/// benchmark generator's lines up to `EVENTS`.
fn lines(scratch: &Path) -> Option<Vec<String>> {
    let shared = shared()?;
    let mut files = Vec::new();
    collect_logs(&shared.join("corpus"), &mut files);
    files.sort();
    let mut lines: Vec<String> = Vec::new();
    for file in &files {
        let text = std::fs::read(file).unwrap();
        lines.extend(
            String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    lines.truncate(EVENTS);
    let generated = scratch.join("generated.log");
    let status = std::process::Command::new("python3")
        .arg(shared.join("bench/gen_authlog.py"))
        .args([
            "-n",
            &(EVENTS - lines.len()).to_string(),
            "--seed",
            "42",
            "-o",
        ])
        .arg(&generated)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("python3 runs gen_authlog.py");
    assert!(status.success(), "gen_authlog.py failed");
    let text = std::fs::read_to_string(&generated).unwrap();
    lines.extend(text.lines().map(str::to_string));
    assert_eq!(lines.len(), EVENTS);
    eprintln!(
        "differential: {} corpus lines from {} files, {} generated",
        EVENTS - text.lines().count(),
        files.len(),
        text.lines().count()
    );
    Some(lines)
}

fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_logs(&path, out);
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
}

/// The events: each line parsed as the agent does, its time moved onto three days
/// (2026-11-23 00:00 UTC on, 13 s apart), normalized as the collector does.
fn events(lines: &[String]) -> Vec<Value> {
    let read_at: DateTime<Utc> = "2026-11-26T00:00:00Z".parse().unwrap();
    let start: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
    let parsed = crate::support::parse_lines(
        lines.iter().map(String::as_str),
        "agent.example.com",
        "UTC",
        read_at,
    );
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            let at = json!(mozdef::time::format_utc(
                start + chrono::Duration::seconds(13 * i as i64)
            ));
            // `timestamp` wins over `utctimestamp` in normalization: both are moved.
            event["timestamp"] = at.clone();
            event["utctimestamp"] = at;
            serde_json::to_value(mozdef::normalize(event, read_at).unwrap()).unwrap()
        })
        .collect()
}

/// The two stores, loaded with the same events.
pub struct Stores {
    pub embedded: Arc<Store>,
    pub opensearch: Arc<Store>,
    pub events: Vec<Value>,
}

impl Stores {
    pub async fn load(dir: &Path, opensearch_url: &str) -> Option<Stores> {
        let events = events(&lines(dir)?);
        let embedded =
            EmbeddedStore::open(&dir.join("embedded"), Duration::from_millis(50), 50_000_000)
                .unwrap();
        let settings = ElasticSettings {
            urls: vec![format!("{opensearch_url}/").parse().unwrap()],
            credentials: None,
            tls: Default::default(),
            timeout: Duration::from_secs(30),
            retry_for: Duration::from_secs(30),
            bulk_max_bytes: 5 * 1024 * 1024,
            dead_letter_path: dir.join("dead-letter.ndjson"),
        };
        let stores = Stores {
            embedded: Arc::new(Store::Embedded(embedded)),
            opensearch: Arc::new(Store::Elasticsearch(Arc::new(
                ElasticStore::new(settings).unwrap(),
            ))),
            events,
        };
        for batch in stores.events.chunks(2_000) {
            for store in [&stores.embedded, &stores.opensearch] {
                let documents = batch
                    .iter()
                    .map(|e| Document::Event(mozdef::normalize(e.clone(), Utc::now()).unwrap()))
                    .collect();
                let stored = store.store(documents).await.unwrap();
                assert_eq!(stored.stored, batch.len(), "{:?}", stored.dead_lettered);
            }
        }
        picket_tests::opensearch::refresh_async(opensearch_url).await;
        Some(stores)
    }

    /// The most frequent values of `path` (dotted) among the events, at most `n`.
    pub fn top_values(&self, path: &str, n: usize) -> Vec<Value> {
        let mut counts: BTreeMap<String, (usize, Value)> = BTreeMap::new();
        for event in &self.events {
            let mut value = event;
            for part in path.split('.') {
                value = &value[part];
            }
            let values = match value {
                Value::Array(items) => items.clone(),
                Value::Null => continue,
                other => vec![other.clone()],
            };
            for value in values {
                counts.entry(value.to_string()).or_insert((0, value)).0 += 1;
            }
        }
        let mut ranked: Vec<(usize, Value)> = counts.into_values().collect();
        ranked.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
        });
        ranked.into_iter().take(n).map(|(_, v)| v).collect()
    }
}

/// What one store answered, reduced to what must agree.
#[derive(Debug)]
pub enum Answer {
    Refused,
    /// The store failed (not the query's fault): never agreement.
    Failed(String),
    Found {
        total: usize,
        /// The ids, when every hit was returned.
        ids: Option<BTreeSet<String>>,
        aggregations: Option<Value>,
    },
}

pub async fn ask(store: &Arc<Store>, request: SearchRequest) -> Answer {
    match store.search(request).await {
        Err(e) if e.is_bad_request() => Answer::Refused,
        Err(e) => Answer::Failed(e.to_string()),
        Ok(result) => {
            let ids = (result.total <= result.hits.len()).then(|| {
                result
                    .hits
                    .iter()
                    .map(|h| h["eventid"].as_str().unwrap_or_default().to_string())
                    .collect()
            });
            Answer::Found {
                total: result.total,
                ids,
                aggregations: result.aggregations.as_ref().map(comparable),
            }
        }
    }
}

/// An aggregation answer in a form both stores' answers can be compared in: buckets
/// as `{key: {doc_count, sub-aggregations...}}` with keys as text (dates as epoch
/// milliseconds, booleans by name), empty buckets dropped (Elasticsearch fills a
/// histogram's gaps, tantivy may not), values rounded to 6 places; bookkeeping fields
/// (`doc_count_error_upper_bound`, `sum_other_doc_count`, `key_as_string`) left out.
pub fn comparable(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            if let Some(buckets) = object.get("buckets").and_then(Value::as_array) {
                let mut out = serde_json::Map::new();
                for bucket in buckets {
                    if bucket["doc_count"].as_u64() == Some(0) {
                        continue;
                    }
                    let bound =
                        |b: &Value| b.as_f64().map(|f| format!("{f}")).unwrap_or("*".into());
                    let key = match (&bucket["key_as_string"], &bucket["key"]) {
                        // A range bucket: named by its bounds (Elasticsearch writes
                        // `1024.0-50000.0`, tantivy `1024-50000`).
                        _ if bucket.get("from").is_some() || bucket.get("to").is_some() => {
                            format!("{}-{}", bound(&bucket["from"]), bound(&bucket["to"]))
                        }
                        (Value::String(s), _) if s == "true" || s == "false" => s.clone(),
                        (_, Value::Number(n)) => n
                            .as_f64()
                            .map(|f| format!("{}", f as i64))
                            .unwrap_or_default(),
                        (_, Value::String(s)) => s.clone(),
                        (_, other) => other.to_string(),
                    };
                    let mut rest = serde_json::Map::new();
                    for (name, inner) in bucket.as_object().unwrap() {
                        if !matches!(name.as_str(), "key" | "key_as_string") {
                            rest.insert(name.clone(), comparable(inner));
                        }
                    }
                    out.insert(key, Value::Object(rest));
                }
                return json!({ "buckets": out });
            }
            let mut out = serde_json::Map::new();
            for (name, inner) in object {
                if matches!(
                    name.as_str(),
                    "doc_count_error_upper_bound"
                        | "sum_other_doc_count"
                        | "key_as_string"
                        | "value_as_string"
                ) {
                    continue;
                }
                out.insert(name.clone(), comparable(inner));
            }
            Value::Object(out)
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                json!(f as i64)
            }
            Some(f) if !n.is_i64() && !n.is_u64() => json!((f * 1e6).round() / 1e6),
            _ => Value::Number(n.clone()),
        },
        other => other.clone(),
    }
}

/// A query string, optionally bounded in time.
pub struct Query {
    pub text: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

fn query(text: impl Into<String>) -> Query {
    Query {
        text: text.into(),
        from: None,
        to: None,
    }
}

/// `field:value` as a user writes it: strings quoted, numbers and booleans bare.
fn term(field: &str, value: &Value) -> String {
    match value {
        Value::String(s) => format!("{field}:{}", Value::String(s.clone())),
        other => format!("{field}:{other}"),
    }
}

/// The fields the generated queries draw their values from: the top-level keywords and
/// the most common `details` keys of the events.
fn fields(stores: &Stores) -> Vec<String> {
    let mut details: BTreeMap<String, usize> = BTreeMap::new();
    for event in &stores.events {
        for (key, value) in event["details"].as_object().into_iter().flatten() {
            if !value.is_object() {
                *details.entry(key.clone()).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(usize, String)> = details.into_iter().map(|(k, n)| (n, k)).collect();
    ranked.sort_by(|a, b| b.cmp(a));
    [
        "category",
        "hostname",
        "processname",
        "severity",
        "tags",
        "source",
    ]
    .into_iter()
    .map(str::to_string)
    .chain(
        ranked
            .into_iter()
            .take(14)
            .map(|(_, k)| format!("details.{k}")),
    )
    .collect()
}

/// Every query both stores are asked: generated from the events' own values (each
/// field's common values, negated, combined) and written out for each operator of the
/// README's syntax and each field kind.
pub fn queries(stores: &Stores) -> Vec<Query> {
    let mut out = Vec::new();
    let fields = fields(stores);
    let mut firsts = Vec::new();
    for field in &fields {
        let values = stores.top_values(field, 4);
        for value in &values {
            out.push(query(term(field, value)));
        }
        if let Some(first) = values.first() {
            let t = term(field, first);
            out.push(query(format!("NOT {t}")));
            out.push(query(format!("-{t}")));
            firsts.push(t);
        }
        out.push(query(format!("_exists_:{field}")));
    }
    for pair in firsts.windows(2) {
        out.push(query(format!("{} AND {}", pair[0], pair[1])));
        out.push(query(format!("{} OR {}", pair[0], pair[1])));
        out.push(query(format!(
            "({} OR {}) AND NOT severity:INFO",
            pair[0], pair[1]
        )));
    }
    for text in [
        "*",
        "",
        "failed",
        "Failed",
        "FAILED",
        "accepted",
        "failed password",
        "failed OR accepted",
        "failed AND NOT invalid",
        "\"failed password\"",
        "\"password failed\"",
        "\"session opened\"",
        "summary:failed",
        "summary:Failed",
        "summary:\"failed password\"",
        "summary:\"Failed password for\"",
        "summary:fail*",
        "summary:pass?ord",
        "summary:*",
        "fail*",
        "*ssh*",
        "hostname:*",
        "hostname:web*",
        "hostname:*.example.com",
        "processname:ss?d",
        "processname:s*",
        "processname:SSHD",
        "details.username:r*",
        "details.username:adm?n",
        "details.username:*",
        "details.sourceipaddress:192.168.*",
        "details.sourceport:[1024 TO 65535]",
        "details.sourceport:[0 TO 1023]",
        "details.sourceport:{22 TO 2222}",
        "details.sourceport:>40000",
        "details.sourceport:<=1024",
        "details.sourceport:22",
        "details.sourceport:[* TO 100]",
        "processid:[1000 TO 2000]",
        "processid:>30000",
        "utctimestamp:[2026-11-23 TO 2026-11-24]",
        "utctimestamp:[2026-11-24T00:00:00Z TO *]",
        "utctimestamp:{* TO 2026-11-23T12:00:00Z}",
        "utctimestamp:{2026-11-23 TO 2026-11-25}",
        "utctimestamp:>2026-11-24",
        "utctimestamp:<2026-11-24",
        "utctimestamp:>=2026-11-25",
        "utctimestamp:<=2026-11-23",
        "_exists_:timestamp",
        "_exists_:eventid",
        "eventid:*",
        "eventid:0*",
        "_exists_:summary",
        "utctimestamp:[2026-11-23T06:00:00Z TO 2026-11-23T07:00:00Z]",
        "details.sourceipaddress:\"10.0.0.1\"",
        "details.sourceipaddress:10.0.0.0/8",
        "details.sourceipaddress:\"192.168.0.0/16\"",
        "details.sourceipaddress:[10.0.0.0 TO 10.255.255.255]",
        "details.sourceipaddress:\"2001:db8::1\"",
        "details.success:true",
        "details.success:false",
        "details.success:TRUE",
        "_exists_:details.username",
        "NOT _exists_:details.username",
        "(category:authentication OR category:session) AND NOT details.success:true",
        "NOT (category:authentication OR category:syslog)",
        "category:authentication AND (details.username:root OR details.username:admin) AND NOT hostname:web1",
        "+category:authentication -details.username:root",
        "((((category:authentication))))",
        "NOT NOT category:authentication",
        "category:authentication OR NOT category:authentication",
        "category:(authentication OR session)",
        "details.username:(root OR admin)",
        "tags:sshd",
        "tags:sudo",
        "tags:cef",
        "severity:INFO",
        "severity:info",
        "severity:WARNING",
        "category:Authentication",
        "details.nosuchfield:x",
        "nosuchfield:x",
        "category:authentication AND",
        "details.username:(root",
        "AND",
        "\"unterminated",
        "summary:\"\"",
        "category:authentication AND summary:accepted",
        "details.username:root AND NOT summary:failed",
        "NOT details.username:root AND details.success:false",
        "summary:(failed OR invalid) AND NOT details.username:root",
    ] {
        out.push(query(text));
    }
    let at = |t: &str| Some(t.parse::<DateTime<Utc>>().unwrap());
    for (text, from, to) in [
        ("*", "2026-11-23T00:00:00Z", "2026-11-23T23:59:59Z"),
        ("*", "2026-11-24T12:00:00Z", "2026-11-25T12:00:00Z"),
        (
            "category:authentication",
            "2026-11-23T05:00:00Z",
            "2026-11-23T06:00:00Z",
        ),
        ("failed", "2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z"),
        (
            "NOT category:authentication",
            "2026-11-23T12:00:00Z",
            "2026-11-24T12:00:00Z",
        ),
        ("*", "2026-11-25T23:00:00Z", "2026-11-30T00:00:00Z"),
        ("*", "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z"),
        (
            "details.username:root",
            "2026-11-23T00:00:13Z",
            "2026-11-23T00:00:13Z",
        ),
    ] {
        out.push(Query {
            text: text.into(),
            from: at(from),
            to: at(to),
        });
    }
    out
}

/// The aggregation requests, each with the query it runs under.
pub fn aggregations(stores: &Stores) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let fields = fields(stores);
    for field in &fields {
        out.push((
            "*".to_string(),
            json!({ "a": { "terms": { "field": field, "size": 10_000 } } }),
        ));
    }
    for field in [
        "hostname",
        "processname",
        "details.username",
        "details.sourceipaddress",
        "details.sourceport",
    ] {
        out.push((
            "*".to_string(),
            json!({ "cardinality": { "cardinality": { "field": field } } }),
        ));
    }
    for interval in [
        json!({ "fixed_interval": "1h" }),
        json!({ "fixed_interval": "6h" }),
        json!({ "fixed_interval": "1d" }),
        json!({ "fixed_interval": "30m" }),
        json!({ "calendar_interval": "day" }),
        json!({ "calendar_interval": "hour" }),
        json!({ "calendar_interval": "week" }),
        json!({ "calendar_interval": "month" }),
    ] {
        let mut histogram = json!({ "field": "utctimestamp" });
        for (k, v) in interval.as_object().unwrap() {
            histogram[k] = v.clone();
        }
        out.push((
            "*".to_string(),
            json!({ "a": { "date_histogram": histogram } }),
        ));
    }
    for (query, aggs) in [
        (
            "*",
            json!({ "a": { "terms": { "field": "category", "size": 50 }, "aggs": { "cardinality": { "cardinality": { "field": "details.username" } } } } }),
        ),
        (
            "category:authentication",
            json!({ "a": { "terms": { "field": "details.sourceipaddress", "size": 10_000 }, "aggs": { "cardinality": { "cardinality": { "field": "details.username" } } } } }),
        ),
        (
            "*",
            json!({ "a": { "terms": { "field": "processname", "size": 100 }, "aggs": { "b": { "terms": { "field": "category", "size": 50 } } } } }),
        ),
        (
            "*",
            json!({ "a": { "date_histogram": { "field": "utctimestamp", "fixed_interval": "1d" }, "aggs": { "b": { "terms": { "field": "category", "size": 50 } } } } }),
        ),
        (
            "*",
            json!({ "a": { "date_histogram": { "field": "utctimestamp", "fixed_interval": "6h" }, "aggs": { "cardinality": { "cardinality": { "field": "hostname" } } } } }),
        ),
        (
            "*",
            json!({ "a": { "terms": { "field": "category", "size": 50 }, "aggs": { "b": { "date_histogram": { "field": "utctimestamp", "fixed_interval": "1d" } } } } }),
        ),
        (
            "*",
            json!({ "a": { "min": { "field": "details.sourceport" } }, "b": { "max": { "field": "details.sourceport" } } }),
        ),
        (
            "*",
            json!({ "a": { "avg": { "field": "details.sourceport" } } }),
        ),
        ("*", json!({ "a": { "sum": { "field": "processid" } } })),
        ("*", json!({ "a": { "stats": { "field": "processid" } } })),
        (
            "*",
            json!({ "a": { "value_count": { "field": "details.sourceport" } } }),
        ),
        (
            "*",
            json!({ "a": { "range": { "field": "details.sourceport", "ranges": [{ "to": 1024 }, { "from": 1024, "to": 50000 }, { "from": 50000 }] } } }),
        ),
        (
            "*",
            json!({ "a": { "histogram": { "field": "details.sourceport", "interval": 10000 } } }),
        ),
        (
            "category:authentication",
            json!({ "a": { "terms": { "field": "details.username", "size": 10_000 } } }),
        ),
        (
            "failed",
            json!({ "a": { "terms": { "field": "hostname", "size": 10_000 } } }),
        ),
        (
            "NOT category:authentication",
            json!({ "a": { "terms": { "field": "processname", "size": 10_000 } } }),
        ),
        (
            "details.success:false",
            json!({ "cardinality": { "cardinality": { "field": "details.sourceipaddress" } } }),
        ),
    ] {
        out.push((query.to_string(), aggs));
    }
    out
}

impl Answer {
    /// Whether two answers agree: the same refusal, or the same total, ids and
    /// aggregations, where a `cardinality` (an estimate in both stores: HyperLogLog++)
    /// may differ by 5%. A failure never agrees.
    pub fn agrees(&self, other: &Answer) -> bool {
        match (self, other) {
            (Answer::Refused, Answer::Refused) => true,
            (
                Answer::Found {
                    total: a,
                    ids: x,
                    aggregations: p,
                },
                Answer::Found {
                    total: b,
                    ids: y,
                    aggregations: q,
                },
            ) => {
                a == b
                    && x == y
                    && match (p, q) {
                        (Some(p), Some(q)) => same(p, q, false),
                        (None, None) => true,
                        _ => false,
                    }
            }
            _ => false,
        }
    }
}

/// JSON equality, numbers within 5% under an aggregation named `cardinality`.
fn same(a: &Value, b: &Value, estimate: bool) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.get(k)
                        .is_some_and(|w| same(v, w, estimate || k == "cardinality"))
                })
        }
        (Value::Number(x), Value::Number(y)) if estimate => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            (x - y).abs() <= 0.05 * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

/// Where two aggregation answers differ: up to `limit` paths with both values.
pub fn differences(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let null = Value::Null;
                    let (v, w) = (x.get(key).unwrap_or(&null), y.get(key).unwrap_or(&null));
                    walk(v, w, &format!("{path}/{key}"), out, limit);
                }
            }
            _ if same(a, b, path.contains("cardinality")) => {}
            _ => out.push(format!("{path}: {a} vs {b}")),
        }
    }
    let mut out = Vec::new();
    walk(a, b, "", &mut out, limit);
    out
}
