//! Alerts count what really happened on lines real tools wrote: Debian's sudo 1.9,
//! su, usermod, userdel and runuser run in a private namespace (`picket_tests::accounts`)
//! and log through a real rsyslogd. The agent's parser reads the file, the collector
//! stores the events, and the shipped `sudo-auth-failures`, `su-failures` and
//! `new-privileged-account` rules count wrong passwords and changes, not lines: sudo
//! writes PAM's failure and its own `N incorrect password attempts`; su PAM's failure
//! and `FAILED SU`; usermod each group change for /etc/group and /etc/gshadow.

mod support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use picket_collector::alerts::engine::{RuleLedger, evaluate};
use picket_collector::alerts::rules;
use serde_json::Value;

const SCRIPT: &str = r#"
for u in alice bob carol dave erin; do
  useradd -m -s /bin/sh $u
  echo "$u:right-$u" | chpasswd
done
printf 'alice ALL=(ALL) ALL\nbob ALL=(ALL) ALL\ncarol ALL=(ALL) ALL\n' > /etc/sudoers.d/picket-test
chmod 440 /etc/sudoers.d/picket-test
# alice: one wrong password, then sudo gives up (no more input); twice. 2 in all.
su alice -c 'printf "wrong\n" | sudo -S -p "" true'
su alice -c 'printf "wrong\n" | sudo -S -p "" true'
# bob: three wrong, sudo gives up. 3.
su bob -c 'printf "w1\nw2\nw3\n" | sudo -S -p "" true'
# carol: one wrong, then the right one; three times. 3.
for i in 1 2 3; do su carol -c 'printf "wrong\nright-carol\n" | sudo -S -p "" true'; done
# dave is made an administrator, once.
usermod -aG sudo dave
# erin: three wrong su passwords for root, from a terminal. 3.
for i in 1 2 3; do su erin -c '(sleep 1; printf "bad\n") | script -qec "su root -c true" /dev/null'; done
runuser -u erin -- true
usermod -rG sudo dave
for u in alice bob carol dave erin; do userdel -r $u 2>/dev/null; done
true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_su_and_group_changes_count_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let text = picket_tests::accounts::run_logged(&dir.path().join("accounts"), SCRIPT, |t| {
        t.contains("removed shadow group 'erin'")
    });
    // What the tools wrote, as a fleet's auth.log has it.
    assert!(text.contains("incorrect password attempt"), "{text}");
    assert!(text.contains("FAILED SU (to root) erin"), "{text}");
    assert!(text.contains("add 'dave' to shadow group 'sudo'"), "{text}");

    let read_at = Utc::now();
    let events = support::parse_auth_log(&text, "accounts.example.com", read_at);
    let describe = || {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} {} echo={} count={} | {}",
                    e["tags"][0],
                    e["category"],
                    e["details"]["echo"],
                    e["details"]["count"],
                    e["summary"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Every line of these programs is recognised (pam_limits' complaints in a
    // container aside): runuser's sessions and the shadow group's removal included.
    for event in &events {
        let summary = event["summary"].as_str().unwrap();
        if summary.starts_with("pam_limits(") {
            continue;
        }
        assert_ne!(event["tags"][0], "syslog", "{}", describe());
        assert_ne!(event["details"]["action"], "other", "{}", describe());
    }
    let runuser: Vec<&Value> = events
        .iter()
        .filter(|e| e["processname"] == "runuser" && e["category"] == "session")
        .collect();
    assert_eq!(runuser.len(), 2, "{}", describe());

    let store = support::store_events(&dir.path().join("store"), &events, read_at).await;

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut fired = Vec::new();
    for name in [
        "sudo-auth-failures",
        "su-failures",
        "new-privileged-account",
    ] {
        let mut rule = rules::load_file(&shipped.join(format!("{name}.toml")))
            .unwrap()
            .unwrap();
        // The whole run, however slow the machine.
        rule.window = Duration::from_secs(3600);
        let alerts = evaluate(&rule, &store, &RuleLedger::default(), Utc::now())
            .await
            .unwrap();
        for alert in alerts {
            // `… on <host>`: the host rsyslogd wrote, this machine's name.
            let summary = alert.document["summary"].as_str().unwrap();
            let (what, _host) = summary.rsplit_once(" on ").unwrap();
            fired.push(what.to_string());
        }
    }
    fired.sort();
    // alice's two wrong passwords stay under the threshold of 3; bob's three are
    // three (not PAM's one plus sudo's three); carol's three, each before a right one,
    // are three; erin's three su failures are three (not six); dave's change is one.
    assert_eq!(
        fired,
        vec![
            "3 failed su attempts by erin".to_string(),
            "3 failed sudo authentications by bob".to_string(),
            "3 failed sudo authentications by carol".to_string(),
            "dave added to privileged group sudo".to_string(),
        ],
        "{}",
        describe()
    );
}
