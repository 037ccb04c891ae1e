//! One attempt counts once, on lines a real sshd wrote: Debian's OpenSSH server on
//! loopback, logging through a real rsyslogd (`picket_tests::sshd`), refuses a real
//! `ssh` client's wrong passwords; the agent's parser reads the auth log rsyslogd wrote,
//! the collector stores the events, and the shipped `ssh-bruteforce` rule (its query and
//! aggregation as shipped, its threshold set to the attempts made) counts exactly the
//! attempts: with PAM, one wrong password writes two to five lines.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket_collector::alerts::Scheduler;
use picket_tests::sshd::Sshd;
use serde_json::Value;

/// Connections made: (user, wrong passwords offered). `nobody` exists (pam_unix fails
/// its password); `nosuchuser` does not (`Invalid user`, `check pass; user unknown`).
const CONNECTIONS: [(&str, u32); 3] = [("nobody", 3), ("nosuchuser", 1), ("nobody", 1)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_rule_counts_each_wrong_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sshd::start(&dir.path().join("sshd"));
    for (user, passwords) in CONNECTIONS {
        server.fail_logins(user, passwords);
    }
    let attempts: u32 = CONNECTIONS.iter().map(|(_, n)| n).sum();
    // Every attempt's `Failed password` and every connection's close are written; the
    // PAM summary (`PAM 2 more authentication failures`) follows the close.
    let text = server.wait_for_log(Duration::from_secs(30), |text| {
        text.matches("Failed password for ").count() == attempts as usize
            && text.matches("Connection closed by ").count() == CONNECTIONS.len()
            && text.contains("PAM 2 more authentication failures")
    });
    let lines: Vec<&str> = text.lines().collect();
    // PAM writes its own failure per attempt too: more lines than attempts.
    assert!(
        lines.len() >= 2 * attempts as usize,
        "expected PAM and sshd lines for each attempt:\n{text}"
    );

    // The agent's parser over the file, as its file input reads it.
    let read_at = Utc::now();
    let events = support::parse_auth_log(&text, "collector-side.example.com", read_at);
    let describe = || {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} success={} echo={} attempt={} | {}",
                    e["category"],
                    e["details"]["success"],
                    e["details"]["echo"],
                    e["details"]["attemptid"],
                    e["summary"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Every line but sshd's start is recognised, with the client's address.
    for event in &events[1..] {
        assert_eq!(event["processname"], "sshd", "{}", describe());
        assert_ne!(event["tags"][0], "syslog", "{}", describe());
        assert_eq!(
            event["details"]["sourceipaddress"],
            "127.0.0.1",
            "{}",
            describe()
        );
    }
    // Counted (not echo) failures: one per attempt, each with its own attempt id.
    let counted: Vec<&Value> = events
        .iter()
        .filter(|e| e["details"]["success"] == false && e["details"]["echo"] != true)
        .collect();
    assert_eq!(counted.len(), attempts as usize, "{}", describe());
    let mut ids: Vec<&Value> = counted.iter().map(|e| &e["details"]["attemptid"]).collect();
    ids.sort_by_key(|v| v.to_string());
    ids.dedup();
    assert_eq!(ids.len(), attempts as usize, "{}", describe());

    // The collector: normalized, stored, and the shipped rule run over it.
    let store = support::store_events(&dir.path().join("store"), &events, read_at).await;

    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/ssh-bruteforce.toml"),
    )
    .unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for (name, threshold) in [("at-attempts", attempts), ("one-more", attempts + 1)] {
        let rule = shipped
            .replace(
                "name = \"ssh-bruteforce\"",
                &format!("name = \"ssh-bruteforce-{name}\""),
            )
            .replace("threshold = 10", &format!("threshold = {threshold}"));
        assert_ne!(rule, shipped, "the shipped rule's name and threshold moved");
        assert!(rule.contains(&format!("threshold = {threshold}\n")));
        std::fs::write(rules.join(format!("{name}.toml")), rule).unwrap();
    }
    let mut scheduler = Scheduler::new(&rules, Arc::clone(&store), None, Vec::new(), None).unwrap();
    let reports = scheduler.run_due(Utc::now()).await;
    let fired: Vec<(String, usize)> = reports
        .iter()
        .map(|r| {
            assert_eq!(r.error, None, "{}", r.rule);
            (r.rule.clone(), r.fired)
        })
        .collect();
    assert_eq!(
        fired,
        vec![
            ("ssh-bruteforce-at-attempts".to_string(), 1),
            ("ssh-bruteforce-one-more".to_string(), 0),
        ],
        "{attempts} attempts from 127.0.0.1"
    );
}
