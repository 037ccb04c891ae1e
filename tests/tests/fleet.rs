//! A collector fleet on real parts (issue 22): a three-node RabbitMQ cluster from
//! Debian's `rabbitmq-server` (own node names, ports and data directories, a shared
//! cookie, joined with `rabbitmqctl join_cluster`), MozDef's `eventtask` as a quorum
//! queue, a three-node OpenSearch cluster as the shared store, three collectors consuming
//! the same queue (each listing the three nodes, in another order) and two agents publishing
//! to the cluster (each listing the nodes in another order), and a third agent shipping
//! over HTTP to two of the collectors (its `urls`). Mid-stream the node one AMQP agent
//! and one collector are connected to is SIGKILLed, then that collector (the one the
//! HTTP agent sends to) is SIGKILLed and started again: every line must be stored
//! exactly once, the HTTP agent's through the other collector. Then the
//! alert rules: every collector has the SSH brute-force rule, run by one at a time (the
//! lease); a brute force alerts once, the lease holder is SIGKILLed, another takes
//! over, and the next brute force alerts once too.
//!
//! ```text
//! cargo test -p picket-tests --test fleet                                # short form
//! cargo test -p picket-tests --test fleet -- --minutes 30 [--seed N]     # soak
//! ```
//!
//! The soak goes on after the short form: for `--minutes`, both agents write 100
//! lines a second while, every 15-25 s, a fault picked at random (a RabbitMQ node, a
//! collector, the lease holder SIGKILLed, each started again a few seconds later);
//! then every line must be stored exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use picket_tests::opensearch::OpenSearch;
use picket_tests::pki::Pki;
use picket_tests::rabbitmq::RabbitMq;
use picket_tests::stores::es_collector;
use picket_tests::{Agent, Collector, append_lines, assert_exactly_once};

/// Lines each AMQP agent writes.
const LINES: usize = 3_000;
/// Lines the HTTP agent writes (numbered after the AMQP agents').
const HTTP_LINES: usize = 1_500;

/// `--minutes N` and `--seed N` from the test's arguments (0 minutes: no soak).
fn soak_options() -> (f64, u64) {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let minutes = value("--minutes").map_or(0.0, |m| m.parse().expect("--minutes N"));
    let seed = value("--seed").map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        },
        |s| s.parse().expect("--seed N"),
    );
    (minutes, seed)
}

fn path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The cluster's AMQPS URLs, starting at node `first`.
fn urls(nodes: &[RabbitMq], first: usize) -> String {
    let urls: Vec<String> = (0..nodes.len())
        .map(|i| format!("{:?}", nodes[(first + i) % nodes.len()].amqps_url()))
        .collect();
    format!("[{}]", urls.join(", "))
}

/// TLS with the client certificate, EXTERNAL login, the quorum queue.
fn amqp_keys(nodes: &[RabbitMq], first: usize, pki: &Pki) -> String {
    format!(
        "urls = {}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\nqueue_type = \"quorum\"\n",
        urls(nodes, first),
        path(&pki.ca),
        path(&pki.client_cert),
        path(&pki.client_key)
    )
}

fn collector(
    dir: &Path,
    search: &OpenSearch,
    nodes: &[RabbitMq],
    first: usize,
    pki: &Pki,
) -> Collector {
    let rules = picket_tests::shipped_rule_folder(
        &dir.parent().unwrap().join("rules"),
        "ssh-bruteforce",
        "2s",
    );
    es_collector(
        dir,
        &search.urls(),
        &format!(
            "\n[collector.amqp]\n{}prefetch = 500\n\n[collector.alerts]\nrules_dir = {}\nlease_secs = 15\n",
            amqp_keys(nodes, first, pki),
            path(&rules)
        ),
    )
}

fn agent(dir: &Path, log: &Path, nodes: &[RabbitMq], first: usize, pki: &Pki) -> Agent {
    let shipper = format!(
        "[agent.shippers.amqp]\n{}batch_max_events = 200\n",
        amqp_keys(nodes, first, pki)
    );
    agent_shipping(dir, log, &shipper)
}

/// An agent of a host of its own (named after `dir`) following `log`, shipping as
/// `shipper` (a `[agent.shippers.*]` table) says.
fn agent_shipping(dir: &Path, log: &Path, shipper: &str) -> Agent {
    let config = Agent::write_config(dir, &[log], "", shipper);
    // Two agents: two hosts (their events' ids differ by host too).
    let text = std::fs::read_to_string(&config).unwrap();
    let host = dir.file_name().unwrap().to_string_lossy().to_string();
    std::fs::write(
        &config,
        text.replace("host_id = \"test-host\"", &format!("host_id = {host:?}")),
    )
    .unwrap();
    Agent::start_with_config(dir, config)
}

/// Waits until `collector` finds `want` sshd events; the last count. A search the
/// store answers with an error (a loaded node, 503) is tried again.
fn wait_stored(collector: &Collector, want: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut total = 0;
    loop {
        let (status, answer) =
            collector.search_json(&serde_json::json!({"query": "processname:sshd", "size": 0}));
        if status == 200 {
            total = answer["total"].as_u64().unwrap_or(0) as usize;
        }
        if total >= want || Instant::now() >= deadline {
            return total;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The test's own main (`harness = false`, so that it takes `--minutes`): one test.
fn main() {
    a_fleet_loses_a_rabbitmq_node_a_collector_and_the_alert_leader_and_stores_and_alerts_once();
    println!("fleet: ok");
}

fn a_fleet_loses_a_rabbitmq_node_a_collector_and_the_alert_leader_and_stores_and_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let mut nodes = RabbitMq::cluster(&dir.path().join("rabbitmq"), &pki, 3);
    let search = OpenSearch::cluster(&dir.path().join("opensearch"), 3);
    let collector_a_dir = dir.path().join("collector-a");
    let mut collector_a = collector(&collector_a_dir, &search, &nodes, 1, &pki);
    let mut collector_b = collector(&dir.path().join("collector-b"), &search, &nodes, 2, &pki);
    let mut collector_c = collector(&dir.path().join("collector-c"), &search, &nodes, 0, &pki);

    // Agent A starts on node 1, agent B on node 2.
    let log_a = dir.path().join("a.log");
    let log_b = dir.path().join("b.log");
    append_lines(&log_a, 0, LINES / 3);
    append_lines(&log_b, LINES, LINES + LINES / 3);
    let _agent_a = agent(&dir.path().join("agent-a"), &log_a, &nodes, 1, &pki);
    let _agent_b = agent(&dir.path().join("agent-b"), &log_b, &nodes, 2, &pki);
    // Agent C ships over HTTP to collector A, then B (its `urls`), straight into the
    // store: collector A dies below, and C must go on to B.
    let log_c = dir.path().join("c.log");
    let (c_from, c_to) = (2 * LINES, 2 * LINES + HTTP_LINES);
    append_lines(&log_c, c_from, c_from + HTTP_LINES / 3);
    let agent_c = agent_shipping(
        &dir.path().join("agent-c"),
        &log_c,
        &format!(
            "[agent.shippers.http]\nurls = [{:?}, {:?}]\nbatch_max_events = 100\n",
            collector_a.events_url(),
            collector_b.events_url()
        ),
    );
    let stored = wait_stored(
        &collector_b,
        LINES / 3 + HTTP_LINES / 3,
        Duration::from_secs(120),
    );
    assert!(
        stored >= LINES / 3 + HTTP_LINES / 3,
        "first third: {stored}\n{}",
        collector_b.service.log()
    );
    // The queue is replicated on every node.
    let queues = nodes[0].ctl(&[
        "list_queues",
        "name",
        "type",
        "members",
        "--formatter",
        "json",
    ]);
    let queues: serde_json::Value = serde_json::from_str(&queues).unwrap();
    let eventtask = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "eventtask")
        .unwrap_or_else(|| panic!("no eventtask queue: {queues}"));
    assert_eq!(eventtask["type"], "quorum", "{eventtask}");
    assert_eq!(
        eventtask["members"].as_array().map(Vec::len),
        Some(3),
        "{eventtask}"
    );

    // Node 1 dies mid-stream (agent A's and collector A's node): they move on.
    nodes[1].kill();
    append_lines(&log_a, LINES / 3, 2 * LINES / 3);
    append_lines(&log_b, LINES + LINES / 3, LINES + 2 * LINES / 3);
    let stored = wait_stored(
        &collector_b,
        4 * LINES / 3 + HTTP_LINES / 3,
        Duration::from_secs(120),
    );
    assert!(
        stored >= 4 * LINES / 3 + HTTP_LINES / 3,
        "after the node's death: {stored}\n{}\n{}",
        collector_a.service.log(),
        nodes[0].log()
    );
    // Agent A's middle third is in that count: it and collector A went on through
    // another node of their lists.

    // A collector dies with messages unacknowledged (and agent C's batches on the way
    // to it); started again, it goes on.
    collector_a.service.kill();
    append_lines(&log_a, 2 * LINES / 3, LINES);
    append_lines(&log_b, LINES + 2 * LINES / 3, 2 * LINES);
    append_lines(&log_c, c_from + HTTP_LINES / 3, c_to);
    std::thread::sleep(Duration::from_secs(2));
    collector_a = collector(&collector_a_dir, &search, &nodes, 1, &pki);

    let stored = wait_stored(&collector_b, c_to, Duration::from_secs(180));
    // Resends settle (a redelivered message is the same event, stored once).
    std::thread::sleep(Duration::from_secs(3));
    // Read back through the restarted collector (again while the store is busy).
    let mut events = collector_a.all("processname:sshd");
    for _ in 0..10 {
        if events.len() >= c_to {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        events = collector_a.all("processname:sshd");
    }
    let context = format!(
        "{stored} found by collector B\n--- collector A ---\n{}\n--- collector B ---\n{}",
        collector_a.service.log(),
        collector_b.service.log()
    );
    assert_exactly_once(
        &events,
        c_to,
        &format!("{context}\n--- agent C ---\n{}", agent_c.service.log()),
    );
    assert!(
        agent_c.service.log().contains("Switching collector"),
        "agent C moved to collector B:\n{}",
        agent_c.service.log()
    );

    // Alerts: a brute force (12 failures from one address, dated now) alerts once,
    // whichever collector holds the lease.
    let brute = |address: &str| {
        use std::io::Write as _;
        let now = chrono::Utc::now();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_a)
            .unwrap();
        for i in 0..12 {
            let at = (now - chrono::Duration::seconds(30 - i)).format("%b %e %H:%M:%S");
            writeln!(
                file,
                "{at} bastion sshd[{}]: Failed password for root from {address} port {} ssh2",
                7000 + i,
                50000 + i
            )
            .unwrap();
        }
    };
    let alerts_for = |address: &str| -> usize {
        search.refresh();
        search
            .documents("alerts-*")
            .iter()
            .filter(|(.., a)| a["details"]["value"] == address)
            .count()
    };
    let wait_alert = |address: &str, fleet: &[&Collector]| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while alerts_for(address) == 0 {
            assert!(
                Instant::now() < deadline,
                "no alert for {address}\n{}",
                fleet
                    .iter()
                    .map(|c| c.service.log())
                    .collect::<Vec<_>>()
                    .join("\n--- next collector ---\n")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    brute("203.0.113.50");
    wait_alert("203.0.113.50", &[&collector_a, &collector_b, &collector_c]);
    // The holder dies: the other waits the lease out, takes it and goes on.
    let lease = search.get("/picket-scheduler/_doc/lease");
    let holder = lease["_source"]["holder"].as_str().unwrap().to_string();
    let pid = holder.split('/').nth(1).unwrap_or_default().to_string();
    let fleet = [&mut collector_a, &mut collector_b, &mut collector_c];
    let holders: Vec<usize> = (0..fleet.len())
        .filter(|&i| fleet[i].service.pid().map(|p| p.to_string()) == Some(pid.clone()))
        .collect();
    assert_eq!(holders.len(), 1, "one collector holds the lease: {holder}");
    fleet[holders[0]].service.kill();
    brute("203.0.113.51");
    let survivors: Vec<&Collector> = fleet
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != holders[0])
        .map(|(_, c)| &**c)
        .collect();
    let taken = |c: &&Collector| {
        c.service
            .log()
            .matches("This collector holds the alert lease")
            .count()
    };
    let before: Vec<usize> = survivors.iter().map(taken).collect();
    wait_alert("203.0.113.51", &survivors);
    let after: Vec<usize> = survivors.iter().map(taken).collect();
    assert!(
        before.iter().zip(&after).any(|(b, a)| a > b),
        "a survivor took the lease after the holder died"
    );
    // Rules run every 2 s: a few more runs, and still one alert each.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        alerts_for("203.0.113.50"),
        1,
        "the first brute force alerted once"
    );
    assert_eq!(
        alerts_for("203.0.113.51"),
        1,
        "the second brute force alerted once"
    );

    let (minutes, seed) = soak_options();
    if minutes <= 0.0 {
        return;
    }
    // The soak: faults at random while both agents write.
    eprintln!("fleet soak: {minutes} minutes, seed {seed}");
    let dirs = [
        collector_a_dir.clone(),
        dir.path().join("collector-b"),
        dir.path().join("collector-c"),
    ];
    let firsts = [1, 2, 0];
    let mut fleet = [collector_a, collector_b, collector_c];
    for c in 0..fleet.len() {
        if !fleet[c].service.running() {
            fleet[c] = collector(&dirs[c], &search, &nodes, firsts[c], &pki);
        }
    }
    nodes[1].start_again();
    let mut rng = seed;
    let mut random = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let mut written = c_to;
    let mut restarts: Vec<(Instant, Option<usize>, Option<usize>)> = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut next_fault = Instant::now() + Duration::from_secs(15);
    let mut faults = Vec::new();
    while Instant::now() < end {
        let log = if written % 400 < 200 { &log_a } else { &log_b };
        append_lines(log, written, written + 200);
        written += 200;
        let now = Instant::now();
        restarts.retain(|(at, node, collector_index)| {
            if *at > now {
                return true;
            }
            if let Some(n) = node {
                nodes[*n].start_again();
            }
            if let Some(c) = collector_index {
                fleet[*c] = collector(&dirs[*c], &search, &nodes, firsts[*c], &pki);
            }
            false
        });
        if now >= next_fault && restarts.is_empty() {
            let back = now + Duration::from_secs(3 + random(6));
            match random(3) {
                0 => {
                    let n = random(3) as usize;
                    nodes[n].kill();
                    faults.push(format!("rabbitmq node {n}"));
                    restarts.push((now + Duration::from_secs(10 + random(10)), Some(n), None));
                }
                1 => {
                    let c = random(3) as usize;
                    fleet[c].service.kill();
                    faults.push(format!("collector {c}"));
                    restarts.push((back, None, Some(c)));
                }
                _ => {
                    let lease = search.get("/picket-scheduler/_doc/lease");
                    let pid = lease["_source"]["holder"]
                        .as_str()
                        .and_then(|h| h.split('/').nth(1))
                        .unwrap_or_default()
                        .to_string();
                    if let Some(c) = (0..fleet.len()).find(|&c| {
                        fleet[c].service.pid().map(|p| p.to_string()) == Some(pid.clone())
                    }) {
                        fleet[c].service.kill();
                        faults.push(format!("lease holder, collector {c}"));
                        restarts.push((back, None, Some(c)));
                    }
                }
            }
            next_fault = now + Duration::from_secs(15 + random(10));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    for (_, node, collector_index) in restarts.drain(..) {
        if let Some(n) = node {
            nodes[n].start_again();
        }
        if let Some(c) = collector_index {
            fleet[c] = collector(&dirs[c], &search, &nodes, firsts[c], &pki);
        }
    }
    eprintln!("fleet soak: {written} lines, faults: {}", faults.join(", "));
    let stored = wait_stored(&fleet[0], written + 24, Duration::from_secs(600));
    std::thread::sleep(Duration::from_secs(3));
    let mut events = fleet[0].all("processname:sshd");
    events.retain(|e| e["summary"].as_str().is_some_and(|s| s.contains(" seq-")));
    assert_exactly_once(
        &events,
        written,
        &format!(
            "soak, seed {seed}, {stored} sshd events, faults: {}",
            faults.join(", ")
        ),
    );
}
