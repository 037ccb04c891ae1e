//! `picket-agent parse --unrecognized`, run as an operator runs it: the report counts
//! exactly the lines `parse` turns into `syslog` events, lists none that a parser took,
//! and its examples carry no address or number of the host it ran on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_picket-agent");

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(relative)
}

fn run(args: &[&str], files: &[&Path]) -> String {
    let output = Command::new(AGENT)
        .arg("parse")
        .args(["--hostname", "agent1.example.com", "--timezone", "UTC"])
        .args(["--now", "2026-12-05T12:00:00Z"])
        .args(args)
        .args(files)
        .output()
        .expect("picket-agent runs");
    assert!(
        output.status.success(),
        "picket-agent parse {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Lines no parser takes, each twice with other addresses, numbers and ids.
const UNKNOWN: &str = "\
Dec  5 10:00:01 web1 sshd[811]: Server listening on 0.0.0.0 port 22.
Dec  5 10:00:02 web1 sshd[812]: Server listening on 192.0.2.44 port 2222.
Dec  5 10:00:03 web1 CRON[4410]: (root) CMD (cd / && run-parts --report /etc/cron.hourly)
Dec  5 11:00:03 web1 CRON[5521]: (root) CMD (cd / && run-parts --report /etc/cron.hourly)
Dec  5 10:00:04 web1 kernel: [12345.678901] eth0: link up 1000Mbps from fe80::1%eth0
Dec  5 10:00:05 web1 kernel: [22345.000001] eth0: link up 100Mbps from 2001:db8::17
Dec  5 10:00:06 web1 systemd-logind[600]: New session c4178 of user 9f86d081884c7d65.
Dec  5 10:00:07 web1 systemd-logind[600]: New session c98 of user 0a1b2c3d4e5f6a7b.
";

#[test]
fn report_counts_what_fell_to_syslog_and_masks_it() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.log");
    std::fs::write(&unknown, UNKNOWN).unwrap();
    let sshd = fixture("sshd/catalogue.log");
    let pam = fixture("pam/pam.log");
    let files = [sshd.as_path(), pam.as_path(), unknown.as_path()];

    // What `parse` makes of the same files: the lines that fell to `syslog`.
    let events = run(&[], &files);
    let mut lines = 0u64;
    let mut fell = 0u64;
    for event in events.lines() {
        let event: Value = serde_json::from_str(event).unwrap();
        lines += 1;
        if event["tags"][0] == "syslog" {
            fell += 1;
        }
    }

    let report = run(&["--unrecognized", "--format", "json"], &files);
    let mut shapes = BTreeMap::new();
    let mut summary = None;
    for row in report.lines() {
        let row: Value = serde_json::from_str(row).unwrap();
        if let Some(s) = row.get("summary") {
            summary = Some(s.clone());
            continue;
        }
        let example = row["example"].as_str().unwrap().to_owned();
        assert!(
            !example.chars().any(|c| c.is_ascii_digit()),
            "a number is left in {example:?}"
        );
        shapes.insert(
            (row["program"].as_str().unwrap().to_owned(), example),
            row["count"].as_u64().unwrap(),
        );
    }
    let summary = summary.expect("the report ends with its summary");
    assert_eq!(summary["lines"], lines);
    assert_eq!(summary["unrecognized"], fell);
    assert_eq!(shapes.values().sum::<u64>(), fell);
    assert!(fell >= 8, "the unknown lines fell to syslog: {fell}");

    // Each pair of unknown lines is one shape of two.
    let pairs = [
        ("sshd", "Server listening on <ip> port N."),
        (
            "CRON",
            "(root) CMD (cd / && run-parts --report /etc/cron.hourly)",
        ),
        ("kernel", "[N.N] ethN: link up NMbps from <ip>"),
        ("systemd-logind", "New session cN of user <hex>."),
    ];
    for (program, example) in pairs {
        assert_eq!(
            shapes.get(&(program.to_owned(), example.to_owned())),
            Some(&2),
            "{program}: {example} in {shapes:#?}"
        );
    }

    // The text form says the same.
    let text = run(&["--unrecognized"], &files);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{lines} lines read, {} recognised", lines - fell)),
        "{first}"
    );
    assert!(text.contains("Server listening on <ip> port N."), "{text}");
    assert!(!text.contains("192.0.2.44"), "{text}");
}

#[test]
fn recognised_fixtures_leave_nothing_to_report() {
    // Every line of the dropbear fixture is a shape the parser knows.
    let dropbear = fixture("dropbear/dropbear.log");
    let text = run(&["--unrecognized"], &[dropbear.as_path()]);
    let first = text.lines().next().unwrap();
    assert!(first.ends_with(", 0 fell to syslog in 0 shapes"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}
