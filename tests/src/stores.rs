//! What the Elasticsearch store's tests share, on the imitation node
//! (`tests/tests/elasticsearch.rs`) and on real OpenSearch (`tests/tests/opensearch.rs`):
//! a collector writing to a cluster, MozDef-style events to send it, and small waits.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{Datelike, Days, Utc};
use serde_json::{Value, json};

use crate::{Collector, CollectorOptions, http};

/// A collector whose store is the cluster at `urls`, with `more` appended to its
/// `[collector.stores.elasticsearch]` table.
pub fn es_collector(dir: &Path, urls: &[impl AsRef<str>], more: &str) -> Collector {
    let urls: Vec<String> = urls.iter().map(|u| format!("{:?}", u.as_ref())).collect();
    let extra = format!(
        "[collector.stores.elasticsearch]\nurls = [{}]\nretry_secs = 4\ntimeout_secs = 5\n{more}\n",
        urls.join(", ")
    );
    Collector::start_with(
        dir,
        &CollectorOptions {
            extra,
            ..CollectorOptions::default()
        },
    )
}

/// `events-YYYYMMDD` of the UTC day `days_ago` days before today.
pub fn day_index(days_ago: u64) -> String {
    let day = Utc::now().date_naive() - Days::new(days_ago);
    format!("events-{:04}{:02}{:02}", day.year(), day.month(), day.day())
}

/// MozDef-style events, as a script would POST them: `n` failed logins from a few
/// addresses (`10.0.0.0`–`.2`, users root and alice in turn), marked `<tag>-<i>`, the
/// last one a day earlier.
pub fn sample_events(n: usize, tag: &str) -> Vec<Value> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let at = if i + 1 == n {
                now - chrono::Duration::days(1)
            } else {
                now - chrono::Duration::seconds(i as i64)
            };
            json!({
                "utctimestamp": at.to_rfc3339(),
                "hostname": "web1.example.com",
                "processname": "sshd",
                "category": "authentication",
                "summary": format!("Failed password for root {tag}-{i}"),
                "tags": ["sshd"],
                "details": {
                    "username": if i % 2 == 0 { "root" } else { "alice" },
                    "sourceipaddress": format!("10.0.0.{}", i % 3),
                    "success": false,
                    "marker": format!("{tag}-{i}"),
                },
            })
        })
        .collect()
}

/// POSTs `body` as JSON: the status and the JSON answer (null when there is none).
pub fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = http().post(url).json(body).send().expect("POST");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// The value of one series (`name{labels}`) on the collector's `/metrics`.
pub fn metric(collector: &Collector, series: &str) -> f64 {
    let text = http()
        .get(format!("{}/metrics", collector.base_url))
        .send()
        .expect("metrics")
        .text()
        .expect("metrics text");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Checks that the collector dead-lettered exactly one document, the sample event
/// marked `marker`, for a mapping conflict on `details.extra` the cluster refused with
/// `exception` (400), and counted it.
pub fn assert_one_dead_letter(
    collector: &Collector,
    data_dir: &Path,
    marker: &str,
    exception: &str,
) {
    let dead = std::fs::read_to_string(data_dir.join("elasticsearch-dead-letter.ndjson"))
        .expect("dead-letter file");
    let lines: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{dead}");
    assert_eq!(lines[0]["document"]["details"]["marker"], marker);
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("400 {exception}")) && reason.contains("details.extra"),
        "{reason}"
    );
    assert_eq!(
        metric(
            collector,
            "picket_events_rejected_total{reason=\"store_refused\"}"
        ),
        1.0
    );
}

/// Polls `check` every 100 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
