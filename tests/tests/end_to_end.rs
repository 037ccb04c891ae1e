//! A log line travelling end to end: real agent and collector processes on loopback,
//! a real file appended to, every line found exactly once through the search API.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use picket_tests::{Agent, Collector, binary, fixture, http};
use serde_json::Value;

fn append(path: &Path, lines: &[Vec<u8>]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        file.write_all(line).unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.sync_all().unwrap();
}

/// Lines of several shapes, each with a unique marker `seq-N`.
fn lines(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .map(|n| match n % 5 {
            0 => format!("Nov 24 10:00:{:02} web1 sshd[{n}]: Failed password for root from 192.0.2.1 port 22 ssh2 seq-{n}", n % 60).into_bytes(),
            1 => format!("<86>Nov 24 10:00:{:02} localhost sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/true seq-{n}", n % 60).into_bytes(),
            2 => format!("<165>1 2026-11-24T10:00:00.{n:03}Z db2.example.com app {n} ID47 [meta seq=\"{n}\"] rfc5424 seq-{n}").into_bytes(),
            3 => format!("no header at all seq-{n}").into_bytes(),
            _ => {
                let mut raw = b"Nov 24 10:00:00 web1 app: bad utf8 ".to_vec();
                raw.push(0xff);
                raw.extend_from_slice(format!(" seq-{n}").as_bytes());
                raw
            }
        })
        .collect()
}

fn by_marker(hits: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for hit in hits {
        let summary = hit["summary"].as_str().unwrap_or_default();
        let marker = summary
            .split_whitespace()
            .find(|w| w.starts_with("seq-"))
            .unwrap_or("none")
            .to_string();
        map.entry(marker).or_default().push(hit.clone());
    }
    map
}

fn expected_markers(from: usize, to: usize) -> BTreeSet<String> {
    (from..to).map(|n| format!("seq-{n}")).collect()
}

#[test]
fn every_line_appended_to_a_file_is_found_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let log = dir.path().join("auth.log");
    append(&log, &lines(0, 5));
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start(&agent_dir, &[&log], &collector.events_url());

    for chunk in (5..50).step_by(9) {
        append(&log, &lines(chunk, (chunk + 9).min(50)));
        std::thread::sleep(Duration::from_millis(30));
    }
    let (total, hits) = collector.wait_for("*", 50, Duration::from_secs(60));
    assert_eq!(total, 50, "agent log:\n{}", agent.service.log());
    let found = by_marker(&hits);
    assert_eq!(
        found.keys().cloned().collect::<BTreeSet<_>>(),
        expected_markers(0, 50)
    );
    assert!(
        found.values().all(|v| v.len() == 1),
        "a line was stored twice"
    );
    let ids: BTreeSet<&str> = hits.iter().filter_map(|h| h["eventid"].as_str()).collect();
    assert_eq!(ids.len(), 50);

    // What each shape became.
    let sshd = &found["seq-0"][0];
    assert_eq!(sshd["hostname"], "web1");
    assert_eq!(sshd["processname"], "sshd");
    assert_eq!(found["seq-5"][0]["processid"], 5);
    assert_eq!(sshd["details"]["program"], "sshd");
    assert_eq!(sshd["source"], log.display().to_string());
    assert!(sshd["receivedtimestamp"].is_string());
    let sudo = &found["seq-1"][0];
    assert_eq!(
        sudo["hostname"], "agent.test.example",
        "localhost means this host"
    );
    assert_eq!(sudo["severity"], "INFO");
    let rfc5424 = &found["seq-2"][0];
    assert_eq!(rfc5424["hostname"], "db2.example.com");
    assert_eq!(rfc5424["severity"], "NOTICE");
    assert_eq!(rfc5424["details"]["structureddata"]["meta"]["seq"], "2");
    let bare = &found["seq-3"][0];
    assert_eq!(bare["summary"], "no header at all seq-3");
    assert_eq!(bare["processname"], "unknown");
    let bad = &found["seq-4"][0];
    assert_eq!(bad["summary"], "bad utf8 \u{fffd} seq-4");

    // A graceful stop, more lines while the agent is down, a restart: nothing twice.
    let status = agent.service.stop().expect("agent stopped");
    assert!(
        status.success(),
        "agent exit {status:?}:\n{}",
        agent.service.log()
    );
    append(&log, &lines(50, 60));
    let mut agent = Agent::start_with_config(&agent_dir, agent.config.clone());
    let (total, hits) = collector.wait_for("*", 60, Duration::from_secs(60));
    assert_eq!(total, 60, "agent log:\n{}", agent.service.log());
    std::thread::sleep(Duration::from_millis(500));
    let (total, _) = collector.search("*", 10);
    assert_eq!(total, 60, "no line is shipped twice after a restart");
    assert_eq!(
        by_marker(&hits).keys().cloned().collect::<BTreeSet<_>>(),
        expected_markers(0, 60)
    );

    // SIGKILL mid-stream: lines re-read after the restart keep their ids, so the
    // collector still holds each line once.
    append(&log, &lines(60, 80));
    agent.service.kill();
    let agent = Agent::start_with_config(&agent_dir, agent.config.clone());
    let (total, hits) = collector.wait_for("*", 80, Duration::from_secs(60));
    assert_eq!(total, 80, "agent log:\n{}", agent.service.log());
    let found = by_marker(&hits);
    assert_eq!(
        found.keys().cloned().collect::<BTreeSet<_>>(),
        expected_markers(0, 80)
    );
    assert!(found.values().all(|v| v.len() == 1));
}

#[test]
fn the_search_command_finds_a_stored_line() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let log = dir.path().join("auth.log");
    std::fs::copy(fixture("sample/auth.log"), &log).unwrap();
    let line_count = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    let _agent = Agent::start(&dir.path().join("agent"), &[&log], &collector.events_url());
    let (total, _) = collector.wait_for("*", line_count, Duration::from_secs(60));
    assert_eq!(total, line_count);

    // Through the collector's config the command finds its read token.
    let output = Command::new(binary("picket-collector"))
        .arg("--config")
        .arg(&collector.config)
        .args([
            "search",
            "processname:sshd AND summary:accepted",
            "--url",
            &collector.base_url,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("Accepted publickey for alice"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("matching events shown"), "{stderr}");

    let output = Command::new(binary("picket-collector"))
        .arg("--config")
        .arg(&collector.config)
        .args(["search", "category:(", "--url", &collector.base_url])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid query"));

    // Without the collector's config (so without its read token) it says what it needs.
    let output = Command::new(binary("picket-collector"))
        .args(["--config", "/nonexistent/collector.toml", "search", "*"])
        .args(["--url", &collector.base_url])
        .env_remove("PICKET_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("reader"),
        "{stderr}"
    );
}

#[test]
fn bad_requests_over_a_real_socket_get_4xx_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let client = http();
    let response = client
        .post(collector.events_url())
        .body("certainly not json")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("not JSON"));

    let response = client
        .post(collector.events_url())
        .body(r#"[{"summary":"kept"}, 42]"#)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["stored"], 1);
    assert_eq!(body["rejected"][0]["position"], 1);

    // A body over the limit is refused from its Content-Length, before it is sent (as
    // curl does with `Expect: 100-continue`); a client that keeps writing sees the
    // connection closed after the 413.
    let address = collector.base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /events HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        11 * 1024 * 1024
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let mut buffer = [0u8; 4096];
    while !answer.ends_with('}') {
        let n = std::io::Read::read(&mut stream, &mut buffer).unwrap();
        if n == 0 {
            break;
        }
        answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("over the limit"), "{answer}");
    let (total, _) = collector.search("*", 10);
    assert_eq!(total, 1);
}

#[test]
fn validate_exits_78_naming_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[agent.inputs.file]\npaths = [\"relative\"]\n").unwrap();
    let output = Command::new(binary("picket-agent"))
        .args(["--config", config.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("agent.inputs.file.paths"));

    std::fs::write(&config, "[collector.http]\nlisen = \"x\"\n").unwrap();
    let output = Command::new(binary("picket-collector"))
        .args(["--config", config.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lisen"));

    let example = picket_tests::workspace_root().join("config.example.toml");
    for bin in ["picket-agent", "picket-collector"] {
        let output = Command::new(binary(bin))
            .args(["--config", example.to_str().unwrap(), "validate"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{bin}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn parse_explains_which_parser_took_each_line() {
    let mut child = Command::new(binary("picket-agent"))
        .args([
            "parse",
            "--explain",
            "--hostname",
            "h.example.com",
            "--timezone",
            "UTC",
            "--now",
            "2026-11-24T12:00:00Z",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Nov 22 09:14:03 web1 sshd[1]: Accepted password for bob from 192.0.2.1 port 22 ssh2\nNov 22 09:14:03 web1 sshd[1]: Server listening on :: port 22.\nCEF:0|a|b\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "an explanation before each event");
    assert_eq!(lines[0]["explain"]["parser"], "sshd");
    assert_eq!(lines[1]["details"]["username"], "bob");
    assert_eq!(lines[2]["explain"]["parser"], "syslog");
    assert!(
        lines[2]["explain"]["why"]
            .as_str()
            .unwrap()
            .contains("no shape")
    );
    assert!(
        lines[4]["explain"]["why"]
            .as_str()
            .unwrap()
            .contains("7 |-separated fields")
    );
}
