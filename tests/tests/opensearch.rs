//! The collector's Elasticsearch store on real OpenSearch 2.19.6 (`picket_tests::opensearch`:
//! the server from Maven Central, one JVM per node): MozDef's templates, daily indices
//! and aliases as the engine lays them out, `create` with `_id` = eventid, mapping
//! conflicts in the engine's own words, retention, searches and aggregations through the
//! collector, `alert_names` tagged by a real painless script, a three-node cluster losing
//! a node under load, and the imitation node (`picket_tests::elastic`, kept for the
//! faults a real node will not make on demand) checked against the real one.

#[path = "support/alert_world.rs"]
mod alert_world;
#[path = "opensearch/differential.rs"]
mod differential;
// The differential test parses with it; the store it makes is not used here.
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use picket_tests::opensearch::OpenSearch;
use picket_tests::stores::{
    assert_one_dead_letter, day_index, es_collector, post, sample_events, wait_until,
};
use picket_tests::{Agent, append_lines, assert_exactly_once, http, marker_counts};
use serde_json::{Value, json};

#[test]
fn events_land_in_mozdefs_layout_on_a_real_node_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = OpenSearch::start(&dir.path().join("opensearch"));
    let collector = es_collector(&dir.path().join("collector"), &node.urls(), "");
    let batch = Value::Array(sample_events(20, "a"));
    let (status, answer) = post(&collector.events_url(), &batch);
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(20)),
        "{answer}"
    );

    // The composable template, as the engine kept it.
    let templates = node.get("/_index_template/picket-events");
    let template = &templates["index_templates"][0]["index_template"];
    assert_eq!(template["index_patterns"], json!(["events-*"]));
    assert!(node.get("/_index_template/picket-alerts")["index_templates"][0].is_object());
    // The template's mapping on the index the collector created, as the engine applied it.
    let today = day_index(0);
    let mapping = node.get(&format!("/{today}/_mapping"));
    let properties = &mapping[&today]["mappings"]["properties"];
    let details = &properties["details"]["properties"];
    assert_eq!(details["sourceipaddress"]["type"], "ip", "{mapping}");
    assert_eq!(details["success"]["type"], "boolean");
    assert_eq!(details["username"]["type"], "keyword", "dynamic strings");
    assert_eq!(properties["summary"]["type"], "text");
    assert_eq!(properties["utctimestamp"]["type"], "date");

    // MozDef's aliases.
    let aliases = |name: &str| -> Vec<String> {
        let (status, answer) = node.request("GET", &format!("/_alias/{name}"), None);
        assert_eq!(status, 200, "{name}: {answer}");
        let mut indices: Vec<String> = answer.as_object().unwrap().keys().cloned().collect();
        indices.sort();
        indices
    };
    assert_eq!(aliases("events"), vec![today.clone()]);
    assert_eq!(aliases("events-previous"), vec![day_index(1)]);
    let weekly = aliases("events-weekly");
    assert!(
        weekly.contains(&today) && weekly.contains(&day_index(1)),
        "{weekly:?}"
    );
    let month = Utc::now();
    assert_eq!(
        aliases("alerts"),
        vec![format!("alerts-{:04}{:02}", month.year(), month.month())]
    );

    // Each event once, `_id` = eventid, in its own day's index.
    let docs = node.documents("events-*");
    assert_eq!(docs.len(), 20);
    for (index, id, doc) in &docs {
        assert_eq!(doc["eventid"].as_str(), Some(id.as_str()));
        let day = doc["utctimestamp"].as_str().unwrap()[..10].replace('-', "");
        assert_eq!(index, &format!("events-{day}"), "{doc}");
    }
    assert_eq!(docs.iter().filter(|(i, ..)| *i == day_index(1)).count(), 1);

    // A resend: the engine answers 409 per item; stored, and nothing written again.
    let (status, answer) = post(&collector.events_url(), &batch);
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(20)),
        "{answer}"
    );
    assert_eq!(node.documents("events-*").len(), 20);
    let versions = node.get("/events-*/_search?version=true&size=100");
    for hit in versions["hits"]["hits"].as_array().unwrap() {
        assert_eq!(hit["_version"], 1, "rewritten: {hit}");
    }

    // Another body under a stored id: refused, the first copy stays.
    let (_, id, original) = docs[0].clone();
    let mut forged = original.clone();
    forged["summary"] = json!("nothing happened");
    forged.as_object_mut().unwrap().remove("receivedtimestamp");
    let (status, answer) = post(&collector.events_url(), &forged);
    assert_eq!(status, 409, "{answer}");
    let kept = node.documents("events-*");
    let kept = &kept.iter().find(|(_, i, _)| *i == id).unwrap().2;
    assert_eq!(kept["summary"], original["summary"]);

    // Searches and aggregations through the collector, on the engine.
    let (total, hits) = collector.wait_for("details.username:alice", 10, Duration::from_secs(10));
    assert_eq!((total, hits.len()), (10, 10));
    let (status, answer) = collector.search_json(&json!({
        "query": "category:authentication",
        "size": 0,
        "aggs": { "sources": { "terms": { "field": "details.sourceipaddress" } } }
    }));
    assert_eq!(status, 200, "{answer}");
    let counts: Vec<u64> = answer["aggregations"]["sources"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![7, 7, 6], "{answer}");
    // A query the engine cannot parse is the sender's mistake (400), not an outage.
    let (status, answer) = collector.search_json(&json!({ "query": "details.username:(alice" }));
    assert_eq!(status, 400, "{answer}");
    // So is an aggregation over the cluster's bucket limit: OpenSearch answers it 503
    // (too_many_buckets_exception), which is not a node that is down.
    let limit = |value: Value| {
        let body = json!({ "transient": { "search.max_buckets": value } });
        let (status, answer) = node.request("PUT", "/_cluster/settings", Some(&body));
        assert_eq!(status, 200, "{answer}");
    };
    limit(json!(50));
    let (status, answer) = collector.search_json(&json!({
        "query": "*",
        "size": 0,
        "aggs": { "minutes": { "date_histogram": { "field": "utctimestamp", "fixed_interval": "1m" } } }
    }));
    limit(Value::Null);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("too_many_buckets_exception"),
        "{answer}"
    );

    // /custom/<application>: stored as sent, with MozDef's two additions.
    let (status, answer) = post(
        &format!("{}/custom/firewall", collector.base_url),
        &json!({ "rule": "deny-all", "hits": 3 }),
    );
    assert_eq!(status, 200, "{answer}");
    let custom: Vec<Value> = node
        .documents("events-*")
        .into_iter()
        .map(|(_, _, d)| d)
        .filter(|d| d["customendpoint"] == json!(true))
        .collect();
    assert_eq!(
        custom,
        vec![
            json!({ "rule": "deny-all", "hits": 3, "endpoint": "firewall", "customendpoint": true })
        ]
    );
}

#[test]
fn the_engine_refuses_mapping_conflicts_into_the_dead_letter_file_and_keeps_malformed_values() {
    let dir = tempfile::tempdir().unwrap();
    let node = OpenSearch::start(&dir.path().join("opensearch"));
    let collector = es_collector(&dir.path().join("collector"), &node.urls(), "");
    let (status, _) = post(
        &collector.events_url(),
        &Value::Array(sample_events(1, "warm")),
    );
    assert_eq!(status, 200);
    // Event 5 maps details.extra as an object, event 6 sends a value there: a conflict
    // no retry fixes. Events 7 and 8 carry an address and a port the mapping cannot
    // index: kept in _source, not indexed (ignore_malformed).
    let mut batch = sample_events(10, "b");
    batch[5]["details"]["extra"] = json!({ "nested": 1 });
    batch[6]["details"]["extra"] = json!("flat");
    batch[7]["details"]["sourceipaddress"] = json!("not-an-address");
    batch[8]["details"]["sourceport"] = json!("ssh");
    let (status, answer) = post(&collector.events_url(), &Value::Array(batch));
    assert_eq!(status, 200, "{answer}\n{}", collector.service.log());
    assert_eq!(
        (answer["stored"].clone(), answer["deadlettered"].clone()),
        (json!(9), json!(1)),
        "{answer}"
    );

    let docs = node.documents("events-*");
    assert_eq!(docs.len(), 10, "9 new and the warm-up one");
    let kept = docs
        .iter()
        .find(|(.., d)| d["details"]["marker"] == "b-7")
        .unwrap();
    assert_eq!(kept.2["details"]["sourceipaddress"], "not-an-address");
    let ignored = node.get("/events-*/_search?q=details.marker:b-8");
    assert_eq!(
        ignored["hits"]["hits"][0]["_ignored"],
        json!(["details.sourceport"]),
        "{ignored}"
    );

    assert_one_dead_letter(
        &collector,
        &dir.path().join("collector/data"),
        "b-6",
        "mapper_parsing_exception",
    );
}

#[test]
fn retention_deletes_daily_indices_past_the_limit_on_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let node = OpenSearch::start(&dir.path().join("opensearch"));
    for name in [
        day_index(45),
        day_index(31),
        day_index(29),
        "events-weekly-notes".into(),
    ] {
        let (status, answer) = node.request("PUT", &format!("/{name}"), None);
        assert_eq!(status, 200, "{name}: {answer}");
    }
    let _collector = es_collector(
        &dir.path().join("collector"),
        &node.urls(),
        "\n[collector.stores]\nretention_days = 30\n",
    );
    let exists = |name: &str| node.request("HEAD", &format!("/{name}"), None).0 == 200;
    wait_until("old indices deleted", Duration::from_secs(30), || {
        !exists(&day_index(31))
    });
    assert!(!exists(&day_index(45)));
    assert!(exists(&day_index(29)), "inside the limit");
    assert!(exists("events-weekly-notes"), "not a daily index");
    assert!(exists(&day_index(0)), "today's, made ahead");
}

/// The shipped rules on the engine: each fires once for its scenario, alerts land in
/// `alerts-YYYYMM`, and the events behind an alert are tagged with the rule's name by
/// a real painless script (no name twice, none lost).
#[test]
fn shipped_rules_fire_once_on_a_real_node_and_tag_events_with_painless() {
    let dir = tempfile::tempdir().unwrap();
    let node = OpenSearch::start(&dir.path().join("opensearch"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(async {
        let mut world = alert_world::World::elasticsearch(&node.urls(), true);
        alert_world::shipped_rules_fire_once(&mut world).await;
        world
    });
    let alerts = node.documents("alerts-*");
    assert_eq!(alerts.len(), 13, "every alert stored");
    assert!(alerts.iter().all(|(index, ..)| index == "alerts-202611"));
    let brute = &alerts
        .iter()
        .find(|(.., a)| a["classname"] == "ssh-bruteforce")
        .expect("the brute force alert")
        .2;
    let first = brute["events"][0]["documentid"].as_str().unwrap();
    let event = node.get(&format!("/events-20261125/_doc/{first}"));
    let mut names: Vec<&str> = event["_source"]["alert_names"]
        .as_array()
        .expect("alert_names")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["ssh-bruteforce", "ssh-login-after-bruteforce"]);

    // Triage on the engine: the status is stored in the alert itself, in its own
    // index, read back by id at once (two changes back to back keep both in the
    // history), and the alert is not copied.
    let (index, id, _) = alerts
        .iter()
        .find(|(.., a)| a["classname"] == "ssh-bruteforce")
        .unwrap();
    let store = world.alerts.clone().expect("alerts are stored");
    let (acknowledged, closed, missing) = runtime.block_on(async {
        use picket_collector::alerts::Status;
        let at = Utc::now();
        let acknowledged = store
            .set_status(id, Status::Acknowledged, "alice", at)
            .await;
        let closed = store.set_status(id, Status::Closed, "bob", at).await;
        let missing = store
            .set_status(
                "0123456789abcdef0123456789abcdef",
                Status::Closed,
                "bob",
                at,
            )
            .await;
        (acknowledged, closed, missing)
    });
    assert_eq!(acknowledged.unwrap().unwrap()["status"], "ACKNOWLEDGED");
    let closed = closed.unwrap().unwrap();
    assert_eq!(closed["statusby"], "bob");
    assert_eq!(missing.unwrap(), None);
    node.refresh();
    let stored = node.get(&format!("/{index}/_doc/{id}"));
    assert_eq!(stored["_source"]["status"], "CLOSED", "{stored}");
    let history: Vec<&str> = stored["_source"]["statushistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["ACKNOWLEDGED", "CLOSED"]);
    assert_eq!(stored["_source"]["summary"], brute["summary"]);
    assert_eq!(node.documents("alerts-*").len(), 13, "changed in place");
}

/// The same `_bulk` bodies to the imitation (as OpenSearch 2.19.6) and to the real
/// engine, both with the collector's template: every item's status and error type
/// must agree, as must the whole-request refusals.
#[test]
fn the_imitation_node_answers_bulk_as_the_real_engine_does() {
    let dir = tempfile::tempdir().unwrap();
    let real = OpenSearch::start(&dir.path().join("opensearch"));
    let imitation =
        picket_tests::elastic::Node::start_opensearch(picket_tests::opensearch::VERSION);
    let template = json!({
        "index_patterns": ["events-*"],
        "priority": 100,
        "template": { "mappings": picket_collector::stores::elasticsearch::mapping() },
    });
    let client = http();
    let send = |base: &str, method: &str, path: &str, content_type: &str, body: String| {
        let response = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let real_url = real.urls()[0].clone();
    for base in [&real_url, &imitation.url] {
        let (status, answer) = send(
            base,
            "PUT",
            "/_index_template/picket-events",
            "application/json",
            template.to_string(),
        );
        assert_eq!(status, 200, "{base}: {answer}");
    }
    let event = |marker: &str, details: Value| {
        json!({ "utctimestamp": "2026-11-25T10:00:00+00:00", "summary": marker, "details": details })
            .to_string()
    };
    let cases: Vec<(&str, String)> = vec![
        ("a new document", event("a", json!({ "username": "root" }))),
        (
            "the same id again",
            event("a", json!({ "username": "root" })),
        ),
        (
            "an object where a keyword is mapped",
            event("b", json!({ "username": { "first": "x" } })),
        ),
        (
            "a value where an object is mapped",
            event("c", json!({ "x": { "y": 1 } })),
        ),
        (
            "...and then a value there",
            event("d", json!({ "x": "flat" })),
        ),
        (
            "a malformed address and port",
            event(
                "e",
                json!({ "sourceipaddress": "nope", "sourceport": "ssh" }),
            ),
        ),
        (
            "a boolean that is not one",
            event("f", json!({ "success": "maybe" })),
        ),
        (
            "a boolean as a string",
            event("g", json!({ "success": "false" })),
        ),
        (
            "a malformed date",
            json!({ "utctimestamp": "yesterday", "summary": "h" }).to_string(),
        ),
        (
            "a number where a keyword is mapped",
            event("i", json!({ "username": 42 })),
        ),
        (
            "an array of addresses",
            event("j", json!({ "sourceipaddress": ["10.0.0.1", "10.0.0.2"] })),
        ),
        ("not an object", "[1]".to_string()),
        ("not JSON", "{\"summary\": nope}".to_string()),
    ];
    let mut body = String::new();
    let ids = [
        "a", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",
    ];
    for ((_, source), id) in cases.iter().zip(ids) {
        body.push_str(&json!({ "create": { "_index": "events-20261125", "_id": id } }).to_string());
        body.push('\n');
        body.push_str(source);
        body.push('\n');
    }
    body.push_str(
        &json!({ "update": { "_index": "events-20261125", "_id": "missing" } }).to_string(),
    );
    body.push('\n');
    body.push_str(&json!({ "script": { "lang": "painless", "source": "ctx._source.alert_names = []", "params": { "name": "x" } } }).to_string());
    body.push('\n');
    let outcome = |base: &str| -> Vec<(u64, String)> {
        let (status, answer) = send(base, "POST", "/_bulk", "application/x-ndjson", body.clone());
        assert_eq!(status, 200, "{base}: {answer}");
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let result = item.as_object().unwrap().values().next().unwrap();
                (
                    result["status"].as_u64().unwrap(),
                    result["error"]["type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (want, got) = (outcome(&real_url), outcome(&imitation.url));
    let mut differences = Vec::new();
    let names: Vec<&str> = cases
        .iter()
        .map(|(name, _)| *name)
        .chain(["an update of a missing document"])
        .collect();
    for ((name, real), imitated) in names.iter().zip(&want).zip(&got) {
        if real != imitated {
            differences.push(format!(
                "{name}: OpenSearch {real:?}, imitation {imitated:?}"
            ));
        }
    }
    assert_eq!(want.len(), got.len(), "items: {want:?} vs {got:?}");
    assert!(
        differences.is_empty(),
        "the imitation differs:\n{}",
        differences.join("\n")
    );
    // The searches the collector sends, as far as the imitation answers them: the
    // same totals, ids and `terms` buckets.
    let (status, answer) = real.request("POST", "/_refresh", None);
    assert_eq!(status, 200, "{answer}");
    let search = |base: &str,
                  query: &str,
                  range: Option<(&str, &str)>|
     -> (u64, BTreeSet<String>, Value) {
        let matcher = if query == "*" {
            json!({ "match_all": {} })
        } else {
            json!({ "query_string": { "query": query, "default_operator": "AND" } })
        };
        let filter: Vec<Value> = range
            .map(|(gte, lte)| json!({ "range": { "utctimestamp": { "gte": gte, "lte": lte } } }))
            .into_iter()
            .collect();
        let body = json!({
            "query": { "bool": { "must": [matcher], "filter": filter } },
            "sort": [{ "utctimestamp": { "order": "desc", "unmapped_type": "date" } }],
            "size": 100,
            "track_total_hits": true,
            "aggs": { "users": { "terms": { "field": "details.username", "size": 10 } } },
        });
        let (status, answer) = send(
            base,
            "POST",
            "/events-*/_search",
            "application/json",
            body.to_string(),
        );
        assert_eq!(status, 200, "{base} {query}: {answer}");
        let ids = answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_string())
            .collect();
        let buckets = answer["aggregations"]["users"]["buckets"].clone();
        (
            answer["hits"]["total"]["value"].as_u64().unwrap(),
            ids,
            buckets,
        )
    };
    for (query, range) in [
        ("*", None),
        ("details.username:root", None),
        ("details.username:root AND details.success:false", None),
        (
            "*",
            Some(("2026-11-25T09:00:00+00:00", "2026-11-25T11:00:00+00:00")),
        ),
        (
            "*",
            Some(("2026-11-25T10:00:01+00:00", "2026-11-25T11:00:00+00:00")),
        ),
    ] {
        assert_eq!(
            search(&real_url, query, range),
            search(&imitation.url, query, range),
            "{query} {range:?}: OpenSearch (left) and the imitation (right)"
        );
    }
    // A body without its final newline is refused whole by both.
    for base in [&real_url, &imitation.url] {
        let (status, answer) = send(
            base,
            "POST",
            "/_bulk",
            "application/x-ndjson",
            body.trim_end().to_string(),
        );
        assert_eq!(
            (status, answer["error"]["type"].as_str()),
            (400, Some("illegal_argument_exception")),
            "{base}: {answer}"
        );
    }
}

/// Three nodes, one replica: a node SIGKILLed while an agent ships 200,000 lines
/// through the collector. The collector fails over across its `urls`; every line is
/// stored exactly once; the node comes back; the shipped rules then fire exactly once
/// on the cluster.
#[test]
fn a_three_node_cluster_loses_a_node_under_load_and_loses_nothing() {
    const LINES: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = OpenSearch::cluster(&dir.path().join("opensearch"), 3);
    let collector = es_collector(&dir.path().join("collector"), &cluster.urls(), "");
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, LINES);
    let _agent = Agent::start(&dir.path().join("agent"), &[&log], &collector.events_url());

    let count = |cluster: &OpenSearch| {
        cluster.count("events-*", &json!({ "match": { "processname": "sshd" } }))
    };
    wait_until(
        "a quarter of the lines stored",
        Duration::from_secs(300),
        || count(&cluster) >= (LINES / 4) as u64,
    );
    let killed_at = count(&cluster);
    cluster.nodes[0].kill();
    eprintln!("node-0 killed with {killed_at} events stored");
    let started = Instant::now();
    wait_until("every line stored", Duration::from_secs(600), || {
        count(&cluster) >= LINES as u64
    });
    eprintln!(
        "the rest stored in {:.1} s on two nodes",
        started.elapsed().as_secs_f64()
    );
    let health = cluster.get("/_cluster/health");
    assert_eq!(health["number_of_nodes"], 2, "{health}");

    // Exactly once, by marker (and `_id` = eventid makes an id unique per index).
    // While the lost node's replicas are rebuilt, a listing can be served by a copy
    // that has every write but has not yet made the last ones searchable (seen once
    // in CI: 26 of the last 1,000 missing right after a count said 200,000). A copy's
    // staleness passes within a refresh interval; a lost or doubled event does not, so
    // the listing is taken again for up to 30 s and the last one must be exact.
    let sshd = |cluster: &OpenSearch| -> Vec<Value> {
        cluster
            .documents_with("events-*", &["summary", "processname"])
            .into_iter()
            .map(|(.., doc)| doc)
            .filter(|doc| doc["processname"] == "sshd")
            .collect()
    };
    let listed_by = Instant::now() + Duration::from_secs(30);
    let mut stored = sshd(&cluster);
    while marker_counts(&stored).len() != LINES || stored.len() != LINES {
        if Instant::now() > listed_by {
            break;
        }
        eprintln!("listed {} events; listing again", stored.len());
        std::thread::sleep(Duration::from_secs(2));
        stored = sshd(&cluster);
    }
    assert_exactly_once(&stored, LINES, "after a node was killed");

    cluster.restart(0);
    cluster.wait_for_health("green", 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut world = alert_world::World::elasticsearch(&cluster.urls(), true);
        alert_world::shipped_rules_fire_once(&mut world).await;
    });
}

/// The embedded store and OpenSearch, loaded with the same 20,000 events, asked the same
/// ≥ 200 queries and ≥ 30 aggregation requests: totals, hit ids and aggregations must
/// agree, but for the deliberate differences listed in `differential::KNOWN`.
#[test]
fn the_embedded_store_answers_as_opensearch_does() {
    use differential::{Answer, ask};
    use picket_collector::stores::SearchRequest;
    if differential::shared().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = OpenSearch::start(&dir.path().join("opensearch"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(stores) = runtime.block_on(differential::Stores::load(dir.path(), &node.urls()[0]))
    else {
        return;
    };
    let summaries: BTreeMap<&str, &str> = stores
        .events
        .iter()
        .map(|e| {
            (
                e["eventid"].as_str().unwrap(),
                e["summary"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let describe = |embedded: &Answer, opensearch: &Answer| -> String {
        match (embedded, opensearch) {
            (
                Answer::Found {
                    total: a,
                    ids: Some(x),
                    aggregations: None,
                },
                Answer::Found {
                    total: b,
                    ids: Some(y),
                    aggregations: None,
                },
            ) => {
                let only = |from: &BTreeSet<String>, not: &BTreeSet<String>| -> Vec<String> {
                    from.difference(not)
                        .take(2)
                        .map(|id| format!("{:?}", summaries.get(id.as_str()).unwrap_or(&"?")))
                        .collect()
                };
                format!(
                    "embedded {a}, OpenSearch {b}; only embedded: {:?}; only OpenSearch: {:?}",
                    only(x, y),
                    only(y, x)
                )
            }
            (
                Answer::Found {
                    aggregations: Some(x),
                    ..
                },
                Answer::Found {
                    aggregations: Some(y),
                    ..
                },
            ) => format!(
                "aggregations (embedded vs OpenSearch): {}",
                differential::differences(x, y, 6).join("; ")
            ),
            (Answer::Failed(e), _) => format!("the embedded store failed: {e}"),
            (_, Answer::Failed(e)) => format!("OpenSearch failed: {e}"),
            (a, b) => {
                let text = format!("embedded {a:?} / OpenSearch {b:?}");
                text.chars().take(600).collect()
            }
        }
    };
    let queries = differential::queries(&stores);
    let aggregations = differential::aggregations(&stores);
    assert!(queries.len() >= 200, "{} queries", queries.len());
    assert!(
        aggregations.len() >= 30,
        "{} aggregation requests",
        aggregations.len()
    );
    let mut differences: BTreeMap<String, String> = BTreeMap::new();
    let mut refused_by_both = 0;
    runtime.block_on(async {
        for q in &queries {
            let request = SearchRequest {
                query: q.text.clone(),
                from: q.from,
                to: q.to,
                size: 10_000,
                ..Default::default()
            };
            let embedded = ask(&stores.embedded, request.clone()).await;
            let opensearch = ask(&stores.opensearch, request).await;
            if matches!((&embedded, &opensearch), (Answer::Refused, Answer::Refused)) {
                refused_by_both += 1;
            }
            if !embedded.agrees(&opensearch) {
                let key = match (q.from, q.to) {
                    (None, None) => q.text.clone(),
                    (from, to) => format!("{} [{from:?}, {to:?}]", q.text),
                };
                differences.insert(key, describe(&embedded, &opensearch));
            }
        }
        for (text, aggs) in &aggregations {
            let request = SearchRequest {
                query: text.clone(),
                size: 0,
                aggs: Some(aggs.clone()),
                ..Default::default()
            };
            let embedded = ask(&stores.embedded, request.clone()).await;
            let opensearch = ask(&stores.opensearch, request).await;
            if !embedded.agrees(&opensearch) {
                differences.insert(
                    format!("{text} aggs {aggs}"),
                    describe(&embedded, &opensearch),
                );
            }
        }
    });
    let known: BTreeSet<&str> = differential::KNOWN.iter().map(|(q, _)| *q).collect();
    let unexpected: Vec<String> = differences
        .iter()
        .filter(|(q, _)| !known.contains(q.as_str()))
        .map(|(q, why)| format!("  {q}\n      {why}"))
        .collect();
    let stale: Vec<&&str> = known
        .iter()
        .filter(|q| !differences.contains_key(**q))
        .collect();
    eprintln!(
        "differential: {} events; {} queries ({} refused by both), {} aggregation requests; {} differ, {} of them deliberate",
        differential::EVENTS,
        queries.len(),
        refused_by_both,
        aggregations.len(),
        differences.len(),
        differences.len() - unexpected.len()
    );
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} unexpected differences:\n{}\nlisted as different but now agreeing: {stale:?}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// The fleet's alert lease on the engine (issue 22): of two collectors' schedulers
/// sharing the cluster, only the lease holder runs the rules; when it stops, the other
/// takes the lease once it ran out and goes on from the shared ledgers, so nothing
/// alerts twice; alerts a holder decided and wrote in its ledger but never stored (it
/// died between the two) are stored by the next holder, once however often that
/// happens.
#[test]
fn one_collector_at_a_time_runs_the_rules_and_the_next_resumes_from_the_shared_ledgers() {
    use picket_collector::alerts::lease::{INDEX, Lease, ledger_id};
    use picket_collector::stores::Store;
    let dir = tempfile::tempdir().unwrap();
    let node = OpenSearch::start(&dir.path().join("opensearch"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut world = alert_world::World::elasticsearch(&node.urls(), true);
        alert_world::scenarios(&mut world).await;
        let Store::Elasticsearch(es) = &*world.store else {
            unreachable!("an Elasticsearch world")
        };
        let es = std::sync::Arc::clone(es);
        let ttl = Duration::from_secs(30);
        let leased = |name: &str| {
            world
                .scheduler(None)
                .with_lease(Lease::named(es.clone(), ttl, name), es.clone())
        };
        let mut first = leased("collector-1");
        let mut second = leased("collector-2");
        let now = alert_world::at("2026-11-25T10:05:00Z");
        let by_first: usize = alert_world::fired(&first.tick(now).await).values().sum();
        assert_eq!(by_first, 13, "the holder runs every rule");
        assert!(
            second.tick(now).await.is_empty(),
            "the other runs nothing while the lease is held"
        );
        let lease = es.get_versioned(INDEX, "lease").await.unwrap().unwrap();
        assert_eq!(lease.source["holder"], "collector-1");

        // The first stops renewing (killed). Before the lease runs out the second
        // still waits; after, it takes it and runs every rule over the same events:
        // the shared ledgers say they alerted already.
        drop(first);
        let later = now + chrono::Duration::seconds(20);
        assert!(
            second.tick(later).await.is_empty(),
            "the lease has not run out"
        );
        let after = now + chrono::Duration::seconds(31);
        let reports = second.tick(after).await;
        assert_eq!(reports.len(), 12, "every rule ran: {reports:?}");
        let again: usize = alert_world::fired(&reports).values().sum();
        assert_eq!(again, 0, "nothing alerts twice across holders: {reports:?}");

        // A holder that died between writing its ledger and storing its alerts: the
        // alert is in the ledger as pending. The next holder stores it, once.
        let id = "feedfacefeedfacefeedfacefeedface";
        let document = serde_json::json!({
            "utctimestamp": "2026-11-25T10:05:40+00:00",
            "severity": "WARNING",
            "summary": "decided by a holder that died",
            "category": "bruteforce",
            "details": {"rule": "ssh-bruteforce"},
        });
        let ledger_doc = es
            .get_versioned(INDEX, &ledger_id("ssh-bruteforce"))
            .await
            .unwrap()
            .unwrap();
        let mut ledger: serde_json::Value =
            serde_json::from_str(ledger_doc.source["ledger"].as_str().unwrap()).unwrap();
        ledger["pending"] = serde_json::json!([{ "id": id, "document": document }]);
        let mut written = ledger_doc.source.clone();
        written["ledger"] = serde_json::json!(ledger.to_string());
        for round in 0..2 {
            // What the dead holder wrote last (over the version there, as it would).
            let current = es
                .get_versioned(INDEX, &ledger_id("ssh-bruteforce"))
                .await
                .unwrap()
                .unwrap();
            es.put_versioned(
                INDEX,
                &ledger_id("ssh-bruteforce"),
                &written,
                Some((current.seq_no, current.primary_term)),
                false,
            )
            .await
            .unwrap()
            .expect("the ledger written");
            let mut next = leased(&format!("collector-{}", 3 + round));
            let taken = after + chrono::Duration::seconds(31 * (round + 1));
            next.tick(taken).await;
            picket_tests::opensearch::refresh_async(&node.urls()[0]).await;
            let copies = es
                .search_alerts(&alert_world::newest_alerts(format!("id:{id}")))
                .await
                .unwrap();
            assert_eq!(
                copies.total, 1,
                "round {round}: the pending alert stored once"
            );
            if round == 0 {
                // Triaged between the two recoveries: storing it again keeps that.
                world
                    .alerts
                    .clone()
                    .unwrap()
                    .set_status(
                        id,
                        picket_collector::alerts::Status::Acknowledged,
                        "alice",
                        taken,
                    )
                    .await
                    .unwrap()
                    .expect("the recovered alert");
            }
        }
        let alert = world
            .alerts
            .clone()
            .unwrap()
            .get(id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            alert["status"], "ACKNOWLEDGED",
            "the triage survived: {alert}"
        );
        let stored = es
            .get_versioned(INDEX, &ledger_id("ssh-bruteforce"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !stored.source["ledger"].as_str().unwrap().contains(id),
            "the pending alert is cleared once stored"
        );
        // The schedulers (and their clients) go with the runtime's context.
        drop(second);
    });
    assert_eq!(
        node.documents("alerts-*").len(),
        14,
        "13 alerts and the recovered one"
    );
}
