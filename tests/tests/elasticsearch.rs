//! The collector's Elasticsearch store against the imitation node of
//! `picket_tests::elastic`, for what a real node will not do on demand: 429s and 503s
//! mid-bulk, a node and then the whole cluster gone, credentials refused, and the
//! Elasticsearch versions before OpenSearch (7.x legacy templates, 6.x refused).
//! Everything else runs on real OpenSearch in `opensearch.rs`, which also checks the
//! imitation's `_bulk` answers against the real engine's.

use std::fs;
use std::time::{Duration, Instant};

use picket_tests::elastic::Node;
use picket_tests::stores::{assert_one_dead_letter, es_collector, post, sample_events as events};
use serde_json::{Value, json};

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

    assert_one_dead_letter(
        &collector,
        &dir.path().join("data"),
        "b-6",
        "document_parsing_exception",
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
