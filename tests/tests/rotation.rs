//! The agent process against the ways fleets rotate logs, with a sink that counts raw
//! deliveries: every line written must arrive, and (without a crash) arrive once.
//! After a SIGKILL, lines may arrive twice (at least once), but each keeps its event
//! id, so the collector stores it once; the duplicates are bounded.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use picket_tests::{Agent, CountingSink};

const WAIT: Duration = Duration::from_secs(60);

fn line(n: usize) -> String {
    format!("Nov 24 10:00:00 web1 app[1]: seq-{n}\n")
}

fn write_lines(path: &Path, from: usize, to: usize) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in from..to {
        file.write_all(line(n).as_bytes()).unwrap();
    }
}

fn all(n: usize) -> BTreeSet<usize> {
    (0..n).collect()
}

#[test]
fn rename_rotation_while_the_writer_keeps_appending_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let log = dir.path().join("auth.log");
    write_lines(&log, 0, 1);
    let agent = Agent::start_with(
        &dir.path().join("agent"),
        &[&log],
        &sink.url,
        "rotated_idle_secs = 2",
    );
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    for n in 1..500 {
        writer.write_all(line(n).as_bytes()).unwrap();
        if n % 50 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // logrotate `create`: rename, new file; the writer appends to the old one until it
    // reopens.
    fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    write_lines(&log, 500, 520);
    for n in 520..600 {
        writer.write_all(line(n).as_bytes()).unwrap();
    }
    drop(writer);
    write_lines(&log, 600, 1000);
    let (raw, distinct) = sink.wait_for(1000, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.markers(),
        all(1000),
        "agent log:\n{}",
        agent.service.log()
    );
    assert_eq!((raw, distinct), (1000, 1000));
    assert_eq!(sink.counts(), (1000, 1000));
}

#[test]
fn copytruncate_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let log = dir.path().join("auth.log");
    write_lines(&log, 0, 300);
    let agent = Agent::start(&dir.path().join("agent"), &[&log], &sink.url);
    assert_eq!(
        sink.wait_for(300, WAIT).1,
        300,
        "agent log:\n{}",
        agent.service.log()
    );
    fs::copy(&log, dir.path().join("auth.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_lines(&log, 300, 500);
    sink.wait_for(500, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.markers(),
        all(500),
        "agent log:\n{}",
        agent.service.log()
    );
    assert_eq!(sink.counts(), (500, 500));
}

#[test]
fn rotation_while_the_agent_is_stopped_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let log = dir.path().join("auth.log");
    let rotated = dir.path().join("auth.log.1");
    write_lines(&log, 0, 200);
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start_with(&agent_dir, &[&log, &rotated], &sink.url, "");
    assert_eq!(sink.wait_for(200, WAIT).1, 200);
    assert!(agent.service.stop().unwrap().success());
    // While the agent is down: the writer adds to the old file, logrotate renames it
    // and the writer starts a new one.
    write_lines(&log, 200, 250);
    fs::rename(&log, &rotated).unwrap();
    write_lines(&log, 250, 400);
    let agent = Agent::start_with_config(&agent_dir, agent.config.clone());
    sink.wait_for(400, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.markers(),
        all(400),
        "agent log:\n{}",
        agent.service.log()
    );
    assert_eq!(sink.counts(), (400, 400));
}

#[test]
fn a_file_deleted_and_recreated_under_its_name_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let log = dir.path().join("auth.log");
    write_lines(&log, 0, 100);
    let agent = Agent::start(&dir.path().join("agent"), &[&log], &sink.url);
    assert_eq!(sink.wait_for(100, WAIT).1, 100);
    fs::remove_file(&log).unwrap();
    write_lines(&log, 100, 150);
    sink.wait_for(150, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.markers(),
        all(150),
        "agent log:\n{}",
        agent.service.log()
    );
    assert_eq!(sink.counts(), (150, 150));
}

#[test]
fn sigkill_mid_file_then_restart_delivers_every_line_with_bounded_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let log = dir.path().join("big.log");
    let total = 50_000;
    write_lines(&log, 0, total);
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start(&agent_dir, &[&log], &sink.url);
    let (_, before_kill) = sink.wait_for(5_000, WAIT);
    assert!(before_kill >= 5_000);
    agent.service.kill();
    let agent = Agent::start_with_config(&agent_dir, agent.config.clone());
    let (raw, distinct) = sink.wait_for(total, WAIT);
    assert_eq!(distinct, total, "agent log:\n{}", agent.service.log());
    assert_eq!(sink.markers(), all(total));
    // At least once: after a SIGKILL the agent sends again the batch that was in flight
    // (delivered, not yet acknowledged) and the lines read but not yet fsynced in the
    // buffer (their checkpoint had not moved: at most 5,000 events or 100 ms), with the
    // same ids. The collector stores each once.
    let repeats = raw - distinct;
    println!(
        "SIGKILL after {before_kill} events: {raw} deliveries, {distinct} distinct, {repeats} repeated"
    );
    assert!(
        repeats <= 10_000,
        "{repeats} repeated deliveries\n{}",
        agent.service.log()
    );
}
