//! The collector's Elasticsearch store, run as a real collector process against the
//! test Elasticsearch node of `picket_tests::elastic` (it answers as the documented
//! REST API does: `_bulk` per-item results, 409 on `create`, 429s, aliases,
//! templates, security errors).

use std::fs;
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use picket_tests::elastic::Node;
use picket_tests::stores::{day_index, metric, post, sample_events as events, wait_until};
use picket_tests::{Collector, CollectorOptions};
use serde_json::{Value, json};

fn es_collector(dir: &std::path::Path, urls: &[&str], more: &str) -> picket_tests::Collector {
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    picket_tests::stores::es_collector(dir, &urls, more)
}

fn all_docs(node: &Node) -> Vec<(String, String, Value)> {
    node.with(|cluster| {
        cluster
            .indices
            .iter()
            .flat_map(|(index, body)| {
                body.docs
                    .iter()
                    .map(move |(id, doc)| (index.clone(), id.clone(), doc.clone()))
            })
            .collect()
    })
}

#[test]
fn events_land_in_mozdefs_indices_aliases_and_template_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start("8.15.0");
    let collector = es_collector(dir.path(), &[&node.url], "");
    let batch = Value::Array(events(20, "a"));

    let (status, answer) = post(&collector.events_url(), &batch);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 20, "{answer}");

    // MozDef's layout: template, daily indices, aliases.
    node.with(|cluster| {
        let (api, template) = &cluster.templates["picket-events"];
        assert_eq!(api, "index_template", "8.x gets a composable template");
        assert_eq!(template["index_patterns"], json!(["events-*"]));
        let properties = &template["template"]["mappings"]["properties"];
        assert_eq!(
            properties["details"]["properties"]["sourceipaddress"]["type"],
            "ip"
        );
        assert_eq!(
            properties["details"]["properties"]["success"]["type"],
            "boolean"
        );
        assert_eq!(properties["summary"]["type"], "text");
        assert_eq!(properties["utctimestamp"]["type"], "date");
        assert!(cluster.templates.contains_key("picket-alerts"));
        let today = &cluster.indices[&day_index(0)];
        assert!(
            today.aliases.contains(&"events".to_string()),
            "{:?}",
            today.aliases
        );
        assert!(today.aliases.contains(&"events-weekly".to_string()));
        let yesterday = &cluster.indices[&day_index(1)];
        assert!(yesterday.aliases.contains(&"events-previous".to_string()));
        assert!(yesterday.aliases.contains(&"events-weekly".to_string()));
        assert!(!yesterday.aliases.contains(&"events".to_string()));
        let month = Utc::now();
        let alerts = format!("alerts-{:04}{:02}", month.year(), month.month());
        assert_eq!(cluster.indices[&alerts].aliases, vec!["alerts".to_string()]);
        // The template's mapping was applied to the index the collector created.
        assert_eq!(today.mapping["details.sourceipaddress"].kind, "ip");
    });

    // Each event once, `_id` = eventid, in the index of its own day.
    let docs = all_docs(&node);
    assert_eq!(docs.len(), 20);
    for (index, id, doc) in &docs {
        assert_eq!(doc["eventid"].as_str(), Some(id.as_str()));
        let day = doc["utctimestamp"].as_str().unwrap()[..10].replace('-', "");
        assert_eq!(index, &format!("events-{day}"), "{doc}");
        assert!(doc["receivedtimestamp"].is_string(), "normalized: {doc}");
    }
    assert_eq!(
        docs.iter().filter(|(i, _, _)| *i == day_index(1)).count(),
        1
    );

    // A resend is answered as stored (409 = already there) and stored nothing twice.
    let (status, answer) = post(&collector.events_url(), &batch);
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(20)),
        "{answer}"
    );
    assert_eq!(all_docs(&node).len(), 20);
    let conflicts = node.with(|c| c.bulk_log.iter().filter(|(_, _, s)| *s == 409).count());
    assert_eq!(conflicts, 20);

    // Another body under a stored id is refused: the first copy stays (create + _mget).
    let (_, id, original) = all_docs(&node).into_iter().next().unwrap();
    let mut forged = original.clone();
    forged["summary"] = json!("nothing happened");
    forged.as_object_mut().unwrap().remove("receivedtimestamp");
    let (status, answer) = post(&collector.events_url(), &forged);
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already stored")
    );
    let kept = all_docs(&node)
        .into_iter()
        .find(|(_, i, _)| *i == id)
        .unwrap()
        .2;
    assert_eq!(kept["summary"], original["summary"]);

    // Searches and aggregations go to the cluster.
    let (total, hits) = collector.search("details.username:alice", 100);
    assert_eq!((total, hits.len()), (10, 10));
    let (status, answer) = collector.search_json(&json!({
        "query": "category:authentication",
        "size": 0,
        "aggs": { "sources": { "terms": { "field": "details.sourceipaddress" } } }
    }));
    assert_eq!(status, 200, "{answer}");
    let buckets = answer["aggregations"]["sources"]["buckets"]
        .as_array()
        .unwrap();
    let counts: Vec<u64> = buckets
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![7, 7, 6], "{answer}");

    // /custom/<application>: stored as sent, with MozDef's two additions.
    let (status, answer) = post(
        &format!("{}/custom/firewall", collector.base_url),
        &json!({ "rule": "deny-all", "hits": 3 }),
    );
    assert_eq!(status, 200, "{answer}");
    let custom: Vec<Value> = all_docs(&node)
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
fn refused_items_are_retried_alone_and_mapping_conflicts_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start("8.15.0");
    let collector = es_collector(dir.path(), &[&node.url], "");
    // Warm up: templates, indices.
    let (status, _) = post(&collector.events_url(), &Value::Array(events(1, "warm")));
    assert_eq!(status, 200);
    // The next _bulk fails whole (503), then the first three items of the next are
    // refused with 429; event 5 maps details.extra as an object, event 6 sends a
    // value there: a conflict no retry can fix.
    node.with(|c| {
        c.fail_bulk = (1, 503);
        c.reject_items = 3;
        c.bulk_log.clear();
    });
    let mut batch = events(10, "b");
    batch[5]["details"]["extra"] = json!({ "nested": 1 });
    batch[6]["details"]["extra"] = json!("flat");
    let (status, answer) = post(&collector.events_url(), &Value::Array(batch));
    assert_eq!(status, 200, "{answer}\n{}", collector.service.log());
    assert_eq!(answer["stored"], 9, "{answer}");
    assert_eq!(answer["deadlettered"], 1, "{answer}");

    let docs = all_docs(&node);
    assert_eq!(docs.len(), 10, "9 new and the warm-up one");
    // Each good event was created exactly once; only the 429s were sent again.
    let log = node.with(|c| c.bulk_log.clone());
    let created = log.iter().filter(|(_, _, s)| *s == 201).count();
    let rejected = log.iter().filter(|(_, _, s)| *s == 429).count();
    assert_eq!((created, rejected), (9, 3), "{log:?}");
    assert_eq!(
        log.len(),
        13,
        "10 items, then the 3 refused ones again: {log:?}"
    );

    let dead = fs::read_to_string(dir.path().join("data/elasticsearch-dead-letter.ndjson"))
        .expect("dead-letter file");
    let lines: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{dead}");
    assert_eq!(lines[0]["document"]["details"]["marker"], "b-6");
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("400 document_parsing_exception") && reason.contains("details.extra"),
        "{reason}"
    );
    assert_eq!(
        metric(
            &collector,
            "picket_events_rejected_total{reason=\"store_refused\"}"
        ),
        1.0
    );
    assert!(
        collector
            .service
            .log()
            .contains("refused a document for good")
    );
}

/// Standard base64, for the test's expected `Authorization` header.
fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn nodes_fail_over_an_outage_is_a_retry_and_credentials_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Node::start("8.15.0");
    first.with(|c| c.authorization = Some(format!("Basic {}", base64(b"picket:s3cret-pass"))));
    let mut second = Node::join(first.cluster.clone(), None);
    let second_port = second.port();
    fs::write(
        dir.path().join("es-password"),
        "# the collector's\ns3cret-pass\n",
    )
    .unwrap();
    let password = dir.path().join("es-password").display().to_string();
    let collector = es_collector(
        dir.path(),
        &[&first.url, &second.url],
        &format!("username = \"picket\"\npassword_file = {password:?}\n"),
    );
    let send = |tag: &str| post(&collector.events_url(), &Value::Array(events(5, tag)));
    assert_eq!(send("one").0, 200);

    first.stop();
    let (status, answer) = send("two");
    assert_eq!(status, 200, "the second node takes over: {answer}");

    second.stop();
    let started = Instant::now();
    let (status, answer) = send("three");
    assert_eq!(
        status, 503,
        "nothing stored, the sender must retry: {answer}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3), "retried first");

    let second = Node::join(first.cluster.clone(), Some(second_port));
    let (status, answer) = send("three");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(all_docs(&second).len(), 15);

    // A wrong credential: refused, said so in the log, nothing lost.
    second.with(|c| c.authorization = Some("Basic d3Jvbmc6d3Jvbmc=".into()));
    let (status, _) = send("four");
    assert_eq!(status, 503);
    assert!(
        collector.service.log().contains("credentials"),
        "{}",
        collector.service.log()
    );
    second.with(|c| c.authorization = Some(format!("Basic {}", base64(b"picket:s3cret-pass"))));
    assert_eq!(send("four").0, 200);
    assert_eq!(all_docs(&second).len(), 20);
}

#[test]
fn versions_pick_the_template_api_and_old_clusters_are_refused_clearly() {
    for (node, api) in [
        (Node::start("7.5.2"), "template"),
        (Node::start("7.17.9"), "index_template"),
        (Node::start_opensearch("2.11.0"), "index_template"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let collector = es_collector(dir.path(), &[&node.url], "");
        let (status, answer) = post(&collector.events_url(), &Value::Array(events(2, "v")));
        assert_eq!(status, 200, "{answer}");
        let used = node.with(|c| c.templates["picket-events"].0.clone());
        assert_eq!(used, api, "{}", node.with(|c| c.version.clone()));
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start("6.8.23");
    let collector = es_collector(dir.path(), &[&node.url], "");
    let (status, _) = post(&collector.events_url(), &Value::Array(events(2, "v")));
    assert_eq!(status, 503);
    assert!(collector.service.log().contains("is not supported"));
    assert!(all_docs(&node).is_empty());
}

#[test]
fn retention_deletes_daily_indices_past_the_limit_and_nothing_else() {
    let node = Node::start("8.15.0");
    node.with(|c| {
        for name in [
            day_index(45),
            day_index(31),
            day_index(29),
            "events-weekly-notes".into(),
        ] {
            c.indices.insert(name, Default::default());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let _collector = Collector::start_with(
        dir.path(),
        &CollectorOptions {
            extra: format!(
                "[collector.stores.elasticsearch]\nurls = [{:?}]\n\n[collector.stores]\nretention_days = 30\n",
                node.url
            ),
            ..CollectorOptions::default()
        },
    );
    wait_until("old indices deleted", Duration::from_secs(20), || {
        node.with(|c| !c.indices.contains_key(&day_index(31)))
    });
    node.with(|c| {
        assert!(!c.indices.contains_key(&day_index(45)));
        assert!(c.indices.contains_key(&day_index(29)), "inside the limit");
        assert!(
            c.indices.contains_key("events-weekly-notes"),
            "not a daily index"
        );
        assert!(c.indices.contains_key(&day_index(0)));
    });
}
