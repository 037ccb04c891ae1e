//! Delivery through the disk buffer, with real agent and collector processes: a
//! collector that is down while lines are written, an agent SIGKILLed mid-stream with
//! a torn write left at its buffer's tail, and a buffer that fills up and pauses the
//! inputs. Each counts what the collector stored against the lines written.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use picket_tests::{
    Agent, Collector, CollectorOptions, CountingSink, append_lines, assert_exactly_once, free_port,
};

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn a_collector_down_for_the_whole_write_gets_everything_once_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 2_000);
    let agent = Agent::start(&dir.path().join("agent"), &[&log], &url);
    append_lines(&log, 2_000, 3_000);
    std::thread::sleep(Duration::from_secs(3));
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            port: Some(port),
            ..Default::default()
        },
    );
    let (total, hits) = collector.wait_for("*", 3_000, WAIT);
    assert_eq!(total, 3_000, "agent log:\n{}", agent.service.log());
    assert_exactly_once(&hits, 3_000, &agent.service.log());
}

#[test]
fn sigkill_mid_stream_and_a_torn_buffer_tail_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The default acknowledgement: answered once in the store's log.
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            store_keys: "acknowledge = \"logged\"\n".into(),
            ..Default::default()
        },
    );
    let log = dir.path().join("auth.log");
    let total = 30_000;
    append_lines(&log, 0, 20_000);
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start(&agent_dir, &[&log], &collector.events_url());
    let (stored, _) = collector.wait_for("*", 2_000, WAIT);
    assert!(stored >= 2_000, "agent log:\n{}", agent.service.log());
    agent.service.kill();
    // A crash in the middle of an append: half a record at the end of the newest
    // segment (a length that promises more bytes than follow).
    let buffer = agent_dir.join("state/buffer");
    let newest = std::fs::read_dir(&buffer)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("a buffer segment");
    let mut segment = OpenOptions::new().append(true).open(&newest).unwrap();
    segment.write_all(&500u32.to_le_bytes()).unwrap();
    segment.write_all(&[0xAB; 6]).unwrap();
    drop(segment);
    append_lines(&log, 20_000, 25_000);
    let agent = Agent::start_with_config(&agent_dir, agent.config.clone());
    append_lines(&log, 25_000, total);
    let (found, _) = collector.wait_for("*", total as u64, WAIT);
    assert_eq!(found, total as u64, "agent log:\n{}", agent.service.log());
    assert_exactly_once(&collector.all("*"), total, &agent.service.log());
    assert!(
        agent.service.log().contains("torn tail"),
        "the agent reports the cut: {}",
        agent.service.log()
    );
}

#[test]
fn a_full_buffer_pauses_the_inputs_and_drains_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 5_000);
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
    assert_eq!(raw, 5_000, "no crash, so nothing is sent twice");
    assert_eq!(sink.markers(), (0..5_000).collect());
}

#[test]
fn a_dead_collector_url_fails_over_and_refused_events_go_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            http_keys: "max_event_bytes = 2048".into(),
            ..Default::default()
        },
    );
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 500);
    // One line the collector refuses: its event is over max_event_bytes.
    let huge = format!("Nov 24 12:00:00 web1 app[7]: {}\n", "x".repeat(4_000));
    OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(huge.as_bytes())
        .unwrap();
    append_lines(&log, 500, 1_000);
    let nobody = format!("http://127.0.0.1:{}/events", free_port());
    let agent_dir = dir.path().join("agent");
    let shipper = format!(
        "[agent.shippers.http]\nurls = [{nobody:?}, {:?}]\n",
        collector.events_url()
    );
    let config = Agent::write_config(&agent_dir, &[&log], "", &shipper);
    let agent = Agent::start_with_config(&agent_dir, config);
    let (total, _) = collector.wait_for("category:authentication", 1_000, WAIT);
    assert_eq!(total, 1_000, "agent log:\n{}", agent.service.log());
    assert_exactly_once(
        &collector.all("category:authentication"),
        1_000,
        &agent.service.log(),
    );
    assert!(agent.service.log().contains("Switching collector"));
    let dead_letters = agent_dir.join("state/dead-letter.ndjson");
    let deadline = std::time::Instant::now() + WAIT;
    while !dead_letters.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&dead_letters).expect("a dead-letter file");
    let kept: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 1, "{text}");
    assert!(
        kept[0]["reason"].as_str().unwrap().contains("2048"),
        "{}",
        kept[0]
    );
    assert!(
        kept[0]["event"]["summary"]
            .as_str()
            .unwrap()
            .contains("xxxx")
    );
    assert_eq!(
        collector.all("processname:app").len(),
        0,
        "nothing else was stored"
    );
}

#[test]
fn batches_in_flight_are_acknowledged_in_order_so_a_held_batch_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    // The first batch (it holds line 0) is answered 503 until the test lets it pass.
    sink.refuse_batches_with(Some(0));
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 1_000);
    let agent_dir = dir.path().join("agent");
    let shipper = format!(
        "[agent.shippers.http]\nurl = {:?}\nbatch_max_events = 100\nmax_in_flight = 4\n",
        sink.url
    );
    let config = Agent::write_config(&agent_dir, &[&log], "", &shipper);
    let mut agent = Agent::start_with_config(&agent_dir, config.clone());
    // Batches after the held one are delivered while it retries, but no more than
    // the window holds: three of at most 100 events.
    let (_, passed) = sink.wait_for(1, WAIT);
    assert!(passed > 0, "agent log:\n{}", agent.service.log());
    std::thread::sleep(Duration::from_secs(2));
    let (_, passed) = sink.counts();
    assert!(
        passed <= 300,
        "no more than max_in_flight batches pass the held one ({passed} events did): agent log:\n{}",
        agent.service.log()
    );
    assert!(!sink.markers().contains(&0));
    // Killed while the held batch is undelivered: the buffer's ack point did not pass
    // it, so the restarted agent sends it (and what came after it) again.
    agent.service.kill();
    sink.refuse_batches_with(None);
    let agent = Agent::start_with_config(&agent_dir, config);
    let (raw, distinct) = sink.wait_for(1_000, WAIT);
    assert_eq!(distinct, 1_000, "agent log:\n{}", agent.service.log());
    assert_eq!(sink.markers(), (0..1_000).collect());
    assert!(raw >= 1_000, "{raw}");
}
