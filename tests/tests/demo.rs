//! The README's run command as a new user meets it: `./demo.sh` builds (showing cargo's
//! progress), starts a collector and an agent, shows stored events and the alerts the
//! sample's brute force raises, and stops once (`PICKET_DEMO_EXIT=1` ends it after the
//! first alerts instead of at Ctrl-C).

use std::process::Command;

#[test]
fn the_demo_builds_shows_events_and_alerts_and_stops_once() {
    let root = picket_tests::workspace_root();
    let output = Command::new(root.join("demo.sh"))
        .env("PICKET_DEMO_EXIT", "1")
        .env("PICKET_DEMO_PORT", picket_tests::free_port().to_string())
        .output()
        .expect("demo.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // cargo's own progress (to stderr): at least its closing line.
    assert!(stderr.contains("Finished"), "{stderr}");
    assert!(
        stdout.contains("==> Newest stored events from sshd in the last hour:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Failed password for root from 203.0.113.77"),
        "the sample's events are stored and found with --since 1h:\n{stdout}"
    );
    assert!(
        stdout.contains("rule=ssh-bruteforce") && stdout.contains("12 failed SSH logins"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule=ssh-login-after-bruteforce"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("==> Stopping").count(), 1, "{stdout}");
}
