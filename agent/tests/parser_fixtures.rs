//! Parser cases as data: every `tests/fixtures/<parser>/<case>.log` is parsed line by
//! line and compared with `<case>.json`, an array holding, per non-blank line, the
//! fields that event must have (a partial event; `details` compared key by key).
//!
//! Fixed settings so results are the same everywhere: host `agent1.example.com`, zone
//! Europe/Berlin, clock 2026-11-24T12:00:00Z, source `fixture`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use serde_json::Value;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Every (log, json) pair under the parser fixture folders.
fn cases() -> Vec<(PathBuf, PathBuf)> {
    let mut cases = Vec::new();
    for dir in std::fs::read_dir(fixtures_root()).unwrap().flatten() {
        if !dir.path().is_dir() || dir.file_name() == "sample" {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "log") {
                let expected = path.with_extension("json");
                assert!(expected.exists(), "{} has no .json", path.display());
                cases.push((path, expected));
            }
        }
    }
    cases.sort();
    cases
}

/// Differences between `actual` and the fields `expected` names, as readable lines.
fn mismatches(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match expected {
        Value::Object(fields) => {
            for (key, want) in fields {
                let got = actual.get(key).unwrap_or(&Value::Null);
                if key == "details" || (want.is_object() && got.is_object()) {
                    mismatches(&format!("{path}.{key}"), want, got, out);
                } else if want != got {
                    out.push(format!("{path}.{key}: want {want}, got {got}"));
                }
            }
        }
        _ if expected != actual => out.push(format!("{path}: want {expected}, got {actual}")),
        _ => {}
    }
}

#[test]
fn every_fixture_line_becomes_the_expected_event() {
    let new_parser = || {
        LineParser::new(
            HostIdentity::named("agent1.example.com"),
            TimeZoneChoice::parse("Europe/Berlin").unwrap(),
        )
    };
    let read_at: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
    let cases = cases();
    assert!(cases.len() >= 5, "fixtures were not found");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (log, json) in cases {
        // A file is one input: what its processes said carries from line to line
        // (attempt ids, echoes, correlated fields), not from file to file.
        let parser = new_parser();
        let text = std::fs::read(&log).unwrap();
        let expected: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", json.display()));
        let lines: Vec<(u64, &[u8])> = {
            let mut offset = 0u64;
            let mut lines = Vec::new();
            for raw in text.split_inclusive(|b| *b == b'\n') {
                let line = raw.strip_suffix(b"\n").unwrap_or(raw);
                if !line.iter().all(|b| b.is_ascii_whitespace()) {
                    lines.push((offset, line));
                }
                offset += raw.len() as u64;
            }
            lines
        };
        assert_eq!(
            lines.len(),
            expected.len(),
            "{}: lines vs expected events",
            log.display()
        );
        for (i, ((offset, line), want)) in lines.into_iter().zip(&expected).enumerate() {
            let event = parser.parse(
                line,
                &LineContext {
                    source: "fixture",
                    source_identity: "fixture",
                    offset,
                    read_at,
                },
            );
            let got = serde_json::to_value(&event).unwrap();
            let name = format!("{}:{}", log.file_name().unwrap().to_string_lossy(), i + 1);
            mismatches(&name, want, &got, &mut failures);
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} lines differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
