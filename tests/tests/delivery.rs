//! Delivery through the disk buffer, with real agent processes: a collector that is
//! down while lines are written, and a buffer that fills up and pauses the inputs.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use picket_tests::{Agent, CountingSink, free_port};

const WAIT: Duration = Duration::from_secs(90);

fn write_lines(path: &Path, from: usize, to: usize) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in from..to {
        writeln!(file, "Nov 24 10:00:00 web1 sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2 seq-{n}").unwrap();
    }
}

#[test]
fn a_collector_down_for_the_whole_write_gets_everything_once_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let log = dir.path().join("auth.log");
    write_lines(&log, 0, 2_000);
    let agent = Agent::start(&dir.path().join("agent"), &[&log], &url);
    write_lines(&log, 2_000, 3_000);
    std::thread::sleep(Duration::from_secs(2));
    let sink = CountingSink::start_on(port);
    let (raw, distinct) = sink.wait_for(3_000, WAIT);
    assert_eq!(distinct, 3_000, "agent log:\n{}", agent.service.log());
    assert_eq!(raw, 3_000, "nothing twice without a crash");
    assert_eq!(sink.markers(), (0..3_000).collect());
}

#[test]
fn a_full_buffer_pauses_the_inputs_and_drains_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let log = dir.path().join("auth.log");
    write_lines(&log, 0, 5_000);
    // About 1.7 MB of events against a 64 KiB buffer.
    let config_dir = dir.path().join("agent");
    let agent = Agent::start_with(
        &config_dir,
        &[&log],
        &url,
        "\n[agent.buffer]\nmax_bytes = 65536\nsegment_max_bytes = 8192",
    );
    std::thread::sleep(Duration::from_secs(2));
    let buffered: u64 = std::fs::read_dir(config_dir.join("state/buffer"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // The buffer stops taking events at max_bytes; one chunk (500 events) may pass it.
    assert!(
        buffered < 400_000,
        "the buffer stays near max_bytes: {buffered} bytes"
    );
    assert!(
        agent.service.log().contains("Disk buffer full"),
        "agent log:\n{}",
        agent.service.log()
    );
    let sink = CountingSink::start_on(port);
    let (raw, distinct) = sink.wait_for(5_000, WAIT);
    assert_eq!(distinct, 5_000, "agent log:\n{}", agent.service.log());
    assert_eq!(raw, 5_000);
    assert_eq!(sink.markers(), (0..5_000).collect());
}
