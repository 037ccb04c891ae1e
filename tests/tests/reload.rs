//! SIGHUP with a real agent process: the new inputs, parsers and shipper take over while
//! lines are being written, nothing read is lost or sent twice (raw deliveries counted by
//! two sinks), and a bad configuration is refused while the agent runs on.

use std::time::{Duration, Instant};

use picket_tests::{Agent, CountingSink, append_lines, assert_exactly_once};

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn sighup_moves_inputs_and_shipper_without_losing_or_repeating_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let agent_dir = dir.path().join("agent");
    let first_sink = CountingSink::start();
    let second_sink = CountingSink::start();
    let auth = dir.path().join("auth.log");
    let secure = dir.path().join("secure");
    append_lines(&auth, 0, 1_000);
    let shipper = |url: &str| format!("[agent.shippers.http]\nurl = {url:?}\n");
    let config = Agent::write_config(&agent_dir, &[&auth], "", &shipper(&first_sink.url));
    let mut agent = Agent::start_with_config(&agent_dir, config.clone());
    first_sink.wait_for(1_000, WAIT);

    // Lines keep coming while the configuration changes under the agent.
    let writer = {
        let auth = auth.clone();
        std::thread::spawn(move || {
            for chunk in 0..40 {
                let from = 1_000 + chunk * 50;
                append_lines(&auth, from, from + 50);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    append_lines(&secure, 3_000, 3_500);
    Agent::write_config(
        &agent_dir,
        &[&auth, &secure],
        "",
        &shipper(&second_sink.url),
    );
    agent.service.notify(libc::SIGHUP);
    assert!(
        agent.wait_for_log("Configuration reloaded.", WAIT),
        "no reload:\n{}",
        agent.service.log()
    );
    writer.join().unwrap();
    let deadline = Instant::now() + WAIT;
    while first_sink.counts().1 + second_sink.counts().1 < 3_500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The new file and everything after the switch went to the new collector.
    assert!(second_sink.markers().contains(&3_499), "secure not read");
    assert!(second_sink.markers().contains(&2_999));

    // A typo is refused; the agent keeps shipping on what it had.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("poll_interval_ms", "pol_interval_ms"),
    )
    .unwrap();
    agent.service.notify(libc::SIGHUP);
    assert!(
        agent.wait_for_log("Reload refused", WAIT),
        "bad config not refused:\n{}",
        agent.service.log()
    );
    append_lines(&secure, 3_500, 3_600);
    let deadline = Instant::now() + WAIT;
    while first_sink.counts().1 + second_sink.counts().1 < 3_600 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.service.running(), "the agent stopped on a bad config");
    // Let anything doubled arrive before counting.
    std::thread::sleep(Duration::from_secs(1));
    let mut events = first_sink.events();
    events.extend(second_sink.events());
    assert_exactly_once(&events, 3_600, &agent.service.log());
    let status = agent.service.stop().expect("agent stops");
    assert!(status.success(), "{status:?}\n{}", agent.service.log());
}
