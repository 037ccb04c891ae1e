//! Delivery through a real RabbitMQ (a private node per test, TLS with client
//! certificates required): agent → AMQPS → broker → collector's consumer → store.

use std::path::Path;
use std::time::{Duration, Instant};

use picket_tests::pki::Pki;
use picket_tests::rabbitmq::{PASSWORD, RabbitMq};
use picket_tests::{Agent, Collector, CollectorOptions, append_lines, assert_exactly_once};

const WAIT: Duration = Duration::from_secs(120);

fn path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// `[collector.amqp]` consuming over AMQPS with EXTERNAL login.
fn collector_amqp(broker: &RabbitMq, pki: &Pki) -> String {
    format!(
        "\n[collector.amqp]\nurl = {:?}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\nprefetch = 500\n",
        broker.amqps_url(),
        path(&pki.ca),
        path(&pki.client_cert),
        path(&pki.client_key)
    )
}

/// Replaces `from` by `to` in the file at `path`.
fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Starts an agent on `config`, waits until it reports a failed delivery, stops it
/// (exit 0) and returns its log.
fn run_until_refused(dir: &Path, config: &Path) -> String {
    let mut agent = Agent::start_with_config(dir, config.to_path_buf());
    assert!(
        agent.wait_for_log("Delivery failed; retrying", Duration::from_secs(60)),
        "agent log:\n{}",
        agent.service.log()
    );
    let log = agent.service.log();
    assert!(agent.service.stop().is_some_and(|s| s.success()));
    log
}

#[test]
fn amqps_refuses_strangers_and_survives_a_broker_restart_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let mut broker = RabbitMq::start(&dir.path().join("rabbitmq"), &pki);
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            extra: collector_amqp(&broker, &pki),
            ..Default::default()
        },
    );
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 3_000);
    let agent_dir = dir.path().join("agent");
    let password = dir.path().join("amqp-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();

    // 1. A CA that did not sign the broker's certificate: refused by the agent.
    let wrong_ca = format!(
        "[agent.shippers.amqp]\nurl = {:?}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\n",
        broker.amqps_url(),
        path(&pki.rogue_ca),
        path(&pki.client_cert),
        path(&pki.client_key)
    );
    let config = Agent::write_config(&agent_dir, &[&log], "", &wrong_ca);
    let log_text = run_until_refused(&agent_dir, &config);
    assert!(log_text.contains("cannot connect"), "{log_text}");

    // 2. No client certificate (password login): the broker refuses the handshake.
    let no_client_cert = format!(
        "[agent.shippers.amqp]\nurl = {:?}\nusername = \"agent-test\"\npassword_file = {}\nca_file = {}\n",
        broker.amqps_url(),
        path(&password),
        path(&pki.ca)
    );
    replace_in(&config, &wrong_ca, &no_client_cert);
    let log_text = run_until_refused(&agent_dir, &config);
    assert!(!log_text.contains("Connected to RabbitMQ"), "{log_text}");
    assert_eq!(collector.search("*", 10).0, 0, "nothing got through");

    // 3. Set up right: the certificate logs in (EXTERNAL). The broker is stopped and
    // started again mid-stream.
    let good = format!(
        "[agent.shippers.amqp]\nurl = {:?}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\nbatch_max_events = 200\n",
        broker.amqps_url(),
        path(&pki.ca),
        path(&pki.client_cert),
        path(&pki.client_key)
    );
    replace_in(&config, &no_client_cert, &good);
    let agent = Agent::start_with_config(&agent_dir, config);
    let (stored, _) = collector.wait_for("*", 1_000, WAIT);
    assert!(stored >= 1_000, "agent log:\n{}", agent.service.log());
    broker.stop();
    append_lines(&log, 3_000, 5_000);
    std::thread::sleep(Duration::from_secs(2));
    broker.start_again();
    append_lines(&log, 5_000, 6_000);
    let (total, hits) = collector.wait_for("*", 6_000, WAIT);
    let context = format!(
        "agent log:\n{}\ncollector log:\n{}",
        agent.service.log(),
        collector.service.log()
    );
    assert_eq!(total, 6_000, "{context}");
    assert_exactly_once(&hits, 6_000, &context);
    assert!(
        agent.service.log().contains("reconnecting")
            || agent.service.log().contains("Delivery failed"),
        "the agent saw the broker go: {context}"
    );
}

#[test]
fn the_collector_takes_syslog_ng_json_and_dead_letters_what_is_not_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let broker = RabbitMq::start(&dir.path().join("rabbitmq"), &pki);
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            extra: collector_amqp(&broker, &pki),
            ..Default::default()
        },
    );
    // The collector declares the queue when it connects.
    assert!(
        collector
            .service
            .wait_for_log("Consuming events from RabbitMQ", WAIT),
        "{}",
        collector.service.log()
    );
    let syslog_ng = br#"{"DATE":"2026-11-25T08:14:03+00:00","HOST":"sng1","PROGRAM":"sshd","PID":"4242","FACILITY":"auth","PRIORITY":"info","MESSAGE":"Accepted publickey for bob from 192.0.2.7 port 50000 ssh2"}"#;
    let mozdef = br#"{"summary":"from a MozDef shipper","hostname":"moz1","category":"test","details":{"k":"v"}}"#;
    broker.publish(
        "eventtask",
        "eventtask",
        &[b"this is not JSON", syslog_ng, b"[1,2,3]", mozdef],
    );
    let (total, hits) = collector.wait_for("*", 2, WAIT);
    assert_eq!(total, 2, "{}", collector.service.log());
    let sng = hits
        .iter()
        .find(|h| h["hostname"] == "sng1")
        .expect("the syslog-ng event");
    assert_eq!(sng["processname"], "sshd");
    assert_eq!(sng["processid"], 4242);
    assert_eq!(sng["utctimestamp"], "2026-11-25T08:14:03+00:00");
    assert!(hits.iter().any(|h| h["hostname"] == "moz1"));
    // The two that are not events were moved, with the reason, not lost.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut dead = Vec::new();
    while dead.len() < 2 && Instant::now() < deadline {
        dead.extend(broker.drain("eventtask.invalid"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let bodies: Vec<&[u8]> = dead.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(bodies, vec![&b"this is not JSON"[..], &b"[1,2,3]"[..]]);
    assert!(
        dead[0].headers["x-picket-reason"].contains("not JSON"),
        "{:?}",
        dead[0]
    );
    assert!(
        dead[1].headers["x-picket-reason"].contains("array"),
        "{:?}",
        dead[1]
    );
    assert!(
        broker.drain("eventtask").is_empty(),
        "everything was acknowledged"
    );

    // A second collector asks for a quorum `eventtask`: RabbitMQ refuses (406, the
    // queue is classic and its type never changes) and the log says what to do.
    let quorum = Collector::start_with(
        &dir.path().join("collector-quorum"),
        &CollectorOptions {
            extra: format!("{}queue_type = \"quorum\"\n", collector_amqp(&broker, &pki)),
            ..Default::default()
        },
    );
    assert!(
        quorum
            .service
            .wait_for_log("a queue's type is fixed when first declared", WAIT),
        "{}",
        quorum.service.log()
    );
    assert!(
        quorum.service.log().contains("PRECONDITION_FAILED"),
        "{}",
        quorum.service.log()
    );
}

#[test]
fn packed_messages_carry_many_events_each_and_a_bad_line_alone_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let broker = RabbitMq::start(&dir.path().join("rabbitmq"), &pki);
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 3_000);
    let agent_dir = dir.path().join("agent");
    let shipper = format!(
        "[agent.shippers.amqp]\nurl = {:?}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\nbatch_max_events = 200\nevents_per_message = 50\n",
        broker.amqps_url(),
        path(&pki.ca),
        path(&pki.client_cert),
        path(&pki.client_key)
    );
    let config = Agent::write_config(&agent_dir, &[&log], "", &shipper);
    // No collector yet: the agent declares the queue and the messages wait in it,
    // 50 events a message.
    let agent = Agent::start_with_config(&agent_dir, config);
    // Published once the depth holds still; at most 50 events a message (the ship
    // stage may read a partial batch, which makes one more message), far fewer
    // messages than events. The collector below stores all 3,000.
    let deadline = Instant::now() + WAIT;
    let mut depth = 0;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = broker.queue_depth("eventtask").unwrap_or(0);
        if (now >= 60 && now == depth) || Instant::now() >= deadline {
            depth = now;
            break;
        }
        depth = now;
    }
    assert!(
        (60..=120).contains(&depth),
        "3,000 events in messages of up to 50: {depth} messages; agent log:\n{}",
        agent.service.log()
    );
    // A packed message from elsewhere with one bad line among two events.
    broker.publish_as(
        "eventtask",
        "eventtask",
        Some("application/x-ndjson; charset=utf-8"),
        &[b"{\"summary\":\"packed one\",\"hostname\":\"p1\"}\r\nnot json at all\n\n{\"summary\":\"packed two\",\"hostname\":\"p2\"}\n"],
    );
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            extra: collector_amqp(&broker, &pki),
            ..Default::default()
        },
    );
    let (total, hits) = collector.wait_for("*", 3_002, WAIT);
    let context = format!(
        "agent log:\n{}\ncollector log:\n{}",
        agent.service.log(),
        collector.service.log()
    );
    assert_eq!(total, 3_002, "{context}");
    let agents: Vec<_> = hits
        .iter()
        .filter(|h| h["hostname"] != "p1" && h["hostname"] != "p2")
        .cloned()
        .collect();
    assert_exactly_once(&agents, 3_000, &context);
    assert!(
        hits.iter().any(|h| h["summary"] == "packed one"),
        "{context}"
    );
    assert!(
        hits.iter().any(|h| h["summary"] == "packed two"),
        "{context}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut dead = Vec::new();
    while dead.is_empty() && Instant::now() < deadline {
        dead.extend(broker.drain("eventtask.invalid"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, b"not json at all");
    let reason = &dead[0].headers["x-picket-reason"];
    assert!(
        reason.contains("line 2 of a packed message") && reason.contains("not JSON"),
        "{reason}"
    );
}

#[test]
fn a_collector_killed_while_consuming_loses_nothing_and_stores_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let broker = RabbitMq::start(&dir.path().join("rabbitmq"), &pki);
    let options = CollectorOptions {
        // Acknowledged once logged: a kill lands between the store's log and its index.
        store_keys: "acknowledge = \"logged\"\n".into(),
        extra: collector_amqp(&broker, &pki),
        ..Default::default()
    };
    let collector_dir = dir.path().join("collector");
    let mut collector = Collector::start_with(&collector_dir, &options);
    assert!(
        collector
            .service
            .wait_for_log("Consuming events from RabbitMQ", WAIT),
        "{}",
        collector.service.log()
    );
    // 20,000 MozDef events, each with its own eventid, published in one go.
    let total = 20_000usize;
    let bodies: Vec<Vec<u8>> = (0..total)
        .map(|n| {
            let t = n % 86_400;
            format!(
                r#"{{"eventid":"{n:032x}","utctimestamp":"2026-11-24T{:02}:{:02}:{:02}+00:00","hostname":"mq1","category":"test","summary":"queued seq-{n}"}}"#,
                t / 3600,
                t / 60 % 60,
                t % 60
            )
            .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    broker.publish("eventtask", "eventtask", &refs);
    // Kill it while it is working through the queue.
    let (stored, _) = collector.wait_for("*", 1, WAIT);
    collector.service.kill();
    eprintln!("collector SIGKILLed with {stored} of {total} events stored");
    let collector = Collector::start_with(
        &collector_dir,
        &CollectorOptions {
            port: Some(
                collector
                    .base_url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("the collector's port"),
            ),
            ..options
        },
    );
    let (found, _) = collector.wait_for("*", total as u64, WAIT);
    assert_eq!(found, total as u64, "{}", collector.service.log());
    assert_exactly_once(&collector.all("*"), total, &collector.service.log());
    assert!(
        broker.drain("eventtask").is_empty(),
        "everything was acknowledged"
    );
}
