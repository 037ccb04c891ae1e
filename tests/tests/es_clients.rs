//! The official Elasticsearch Python clients, 7.x and 8.x from PyPI, send to the
//! collector's Elasticsearch face as they would to Elasticsearch (`info`,
//! `helpers.bulk`, `bulk`, `index`), with a shipper's bearer token: every call reports
//! success, and each document is stored once, resends included.

use std::fs;
use std::process::Command;

use picket_tests::{Collector, CollectorOptions, fixture, python};
use serde_json::Value;

const TOKEN: &str = "shipper-token-0123456789abcdef";

fn run_client(name: &str, requirement: &str, host: &str) {
    let python = python::venv(name, &[requirement]);
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    fs::write(&tokens, format!("{TOKEN} shipper\n")).unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            tokens_file: Some(tokens),
            ..Default::default()
        },
    );
    let output = Command::new(&python)
        .arg(fixture("clients/es_client.py"))
        .args([&collector.base_url, TOKEN, host])
        .output()
        .expect("the client runs");
    assert!(
        output.status.success(),
        "the {requirement} client failed:\n{}\n{}\ncollector:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        collector.service.log()
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("the client's report");
    assert_eq!(report["server"], "8.19.0", "{report}");
    assert_eq!(
        report["helpers_bulk"],
        serde_json::json!([50, 0]),
        "{report}"
    );
    assert_eq!(
        report["helpers_bulk_resent"],
        serde_json::json!([50, 0]),
        "{report}"
    );
    assert_eq!(report["bulk_errors"], false, "{report}");
    assert_eq!(report["bulk_items"], 10, "{report}");
    assert_eq!(report["index"], "created", "{report}");
    assert_eq!(report["index_again"], "updated", "{report}");
    assert_eq!(report["index_without_id"], "created", "{report}");
    // 50 + 10 + 1 + 1 documents, each once.
    let events = collector.all(&format!("hostname:{host}"));
    assert_eq!(events.len(), 62, "{report}");
    let id_chosen = collector.search(&format!("eventid:{host}-0"), 10);
    assert_eq!(id_chosen.0, 1);
    assert_eq!(id_chosen.1[0]["summary"], "client event 0");
    assert_eq!(id_chosen.1[0]["details"]["n"], 0);
}

#[test]
fn the_python_client_7_sends_each_document_once() {
    run_client("elasticsearch7", "elasticsearch>=7.17,<8", "py7host");
}

#[test]
fn the_python_client_8_sends_each_document_once() {
    run_client("elasticsearch8", "elasticsearch>=8.15,<9", "py8host");
}
