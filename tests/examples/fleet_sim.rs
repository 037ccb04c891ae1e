//! Sizing a collector fleet by simulation (`bench/fleet.sh`, issue 22): N simulated
//! agents publish what real hosts write, at realistic rates, into the fleet's shape (a
//! RabbitMQ cluster with MozDef's `eventtask` as a quorum queue, OpenSearch, one or
//! more release `picket-collector`s running every shipped alert rule under the lease),
//! and the fleet is measured while it keeps up, or fails to.
//!
//! ```text
//! cargo run --release -p picket-tests --example fleet_sim -- \
//!     [--hosts 1000,10000,50000] [--collectors 1,2] [--seconds 150] \
//!     [--rabbitmq 3] [--opensearch 1] [--connections 16] [--pack 100] [--backlog 100000]
//! ```
//!
//! **The hosts.** Every host sends its agent's heartbeat every 60 s (the real event,
//! `picket_agent::heartbeat::event`) and auth traffic written as syslog lines and read
//! by the agent's own parser, so the events are what agents ship:
//! - a *quiet* server (89%): cron's PAM session every 5 min (opened, closed), an
//!   operator's or a deploy job's SSH login every 10 min on average (accepted key,
//!   session opened and closed, disconnect) and a sudo every 10 min (command, session
//!   opened and closed);
//! - an *exposed* one (10%, sshd on the internet): the same, plus the background of
//!   internet scanners, one password guess every 30 s on average (invalid user, PAM's
//!   failure, `Failed password`, the close before authentication) from a pool of
//!   scanner addresses as large as the exposed hosts (each address tries about 4
//!   guesses in 2 minutes across hosts: most stay under the brute-force rule's
//!   threshold, about 1% cross it in a window, and many reach the password-spray
//!   rule's 5 user names in its 10 minutes);
//! - a *bastion under brute force* (one host in 1,000, at least one): the quiet
//!   traffic plus 5 guesses a second from one address, a new address every 2 min.
//!
//! A host's events of one second go in one message when `--pack` > 1 (the agent's
//! `events_per_message`; a fleet of picket-collectors should set it), else one event a
//! message (MozDef's layout). The simulated hosts share `--connections` AMQPS
//! connections (client certificate, EXTERNAL), each publish confirmed, as agents do;
//! 50,000 real agents would hold 50,000 connections (see the per-connection memory
//! this prints).
//!
//! **What is measured**, for each number of collectors and each number of hosts, over
//! `--seconds` of traffic: events/s offered and stored, the collectors' CPU µs per
//! event (user+system from /proc, all collectors) and each tier's cores (collectors,
//! RabbitMQ nodes, OpenSearch nodes), the queue's depth (ready messages, sampled every
//! 2 s: largest and at the end), the store lag (a probe event every 5 s, the time until
//! a `_count` without refresh finds it: what an analyst waits), the alert latency (from
//! the 20th second and every 40 s after, a fresh address guesses once a second for 12 s
//! on a bastion; the time from its tenth guess, the rule's threshold, until the alert is
//! stored, found by a thread polling from then on: the shipped rule runs every minute;
//! each must alert at most once; one that has not alerted 4 minutes after its threshold
//! shows as a 0 in `alerts`), and after the traffic, how long the backlog takes to
//! drain. Also: what 500 idle AMQPS connections cost a RabbitMQ node, and, at the end,
//! the store's primary bytes per event.
//! Then, for each number of collectors, the fleet's capacity: `--backlog` events
//! published as fast as the brokers take them and the time until all are stored.
//! Every run checks that every event published is stored exactly once. The lines
//! starting `RESULT` are the table in BENCHMARKS.md.
//!
//! The shipped rules run as shipped (every minute, most of them), except `silent-host`:
//! the simulation's hosts stop between runs, and 50,000 silent hosts would be a run of
//! their own.
//!
//! A failed check stops every broker, node and collector it started; an interruption
//! (Ctrl-C, SIGTERM) ends the process before it can, and `pkill -f beam.smp; pkill -f
//! picket-opensearch` cleans up after one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use picket_common::amqp::{AmqpAuth, AmqpEndpoint, EndpointConfig, packed};
use picket_tests::opensearch::OpenSearch;
use picket_tests::pki::Pki;
use picket_tests::rabbitmq::RabbitMq;
use picket_tests::stores::es_collector;
use picket_tests::{Collector, cpu_seconds, rss_mib, workspace_root};
use serde_json::{Value, json};

/// The command line, with its defaults.
struct Options {
    hosts: Vec<usize>,
    collectors: Vec<usize>,
    seconds: u64,
    rabbitmq: usize,
    opensearch: usize,
    connections: usize,
    pack: usize,
    backlog: usize,
}

impl Options {
    fn read() -> Options {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let list = |flag: &str, default: &str| -> Vec<usize> {
            value(flag)
                .unwrap_or_else(|| default.to_string())
                .split(',')
                .map(|n| {
                    n.trim()
                        .replace('_', "")
                        .parse()
                        .unwrap_or_else(|_| panic!("{flag} takes numbers separated by commas"))
                })
                .collect()
        };
        let one = |flag: &str, default: usize| list(flag, &default.to_string())[0];
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!(
                "fleet_sim [--hosts 1000,10000,50000] [--collectors 1,2] [--seconds 150] \
                 [--rabbitmq 3] [--opensearch 1] [--connections 16] [--pack 100] [--backlog 100000]"
            );
            std::process::exit(0);
        }
        Options {
            hosts: list("--hosts", "1000,10000,50000"),
            collectors: list("--collectors", "1,2"),
            seconds: one("--seconds", 150) as u64,
            rabbitmq: one("--rabbitmq", 3),
            opensearch: one("--opensearch", 1),
            connections: one("--connections", 16).max(1),
            pack: one("--pack", 100).max(1),
            backlog: one("--backlog", 100_000),
        }
    }
}

/// A small fast generator (xorshift), seeded: runs are repeatable.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Seconds until the next of events that come `mean` seconds apart on average.
    fn exponential(&mut self, mean: f64) -> f64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        -mean * (1.0 - u).ln()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Heartbeat,
    Cron,
    Login,
    Sudo,
    Scan,
    Brute,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    Quiet,
    Exposed,
    Bastion,
}

struct Host {
    identity: HostIdentity,
    parser: LineParser,
    /// The source's identity in event ids: the host's and the run's, so that runs
    /// reusing host names make other ids.
    source_identity: String,
    /// Lines parsed so far (each line's offset: event ids differ).
    offset: u64,
}

/// The simulated fleet: its hosts and when each will next write what.
struct Fleet {
    hosts: Vec<Host>,
    /// (due in ms since the start, host, kind).
    due: BinaryHeap<Reverse<(u64, usize, Kind)>>,
    random: Random,
    scanners: u64,
    metrics: picket_agent::metrics::Metrics,
}

impl Fleet {
    /// `count` hosts; `run` names the run in the events' ids (runs reuse host names).
    fn new(count: usize, seed: u64, run: &str) -> Fleet {
        let mut fleet = Fleet {
            hosts: Vec::with_capacity(count),
            due: BinaryHeap::new(),
            random: Random(seed | 1),
            scanners: 0,
            metrics: Default::default(),
        };
        let bastions = (count / 1000).max(1);
        let exposed = count / 10;
        fleet.scanners = exposed.max(50) as u64;
        for i in 0..count {
            let profile = if i < bastions {
                Profile::Bastion
            } else if i < bastions + exposed {
                Profile::Exposed
            } else {
                Profile::Quiet
            };
            let name = match profile {
                Profile::Bastion => format!("bastion-{i:05}.sim.example"),
                _ => format!("host-{i:05}.sim.example"),
            };
            let identity = HostIdentity::named(&name);
            let parser = LineParser::new(identity.clone(), TimeZoneChoice::parse("UTC").unwrap());
            fleet.hosts.push(Host {
                source_identity: format!("{name}#{run}"),
                identity,
                parser,
                offset: 0,
            });
            // Each host's clocks start at a random point of their period.
            let at = |fleet: &mut Fleet, kind: Kind, period_s: f64| {
                let ms = (fleet.random.exponential(period_s) * 1000.0) as u64;
                fleet.due.push(Reverse((ms, i, kind)));
            };
            let heartbeat = fleet.random.below(60_000);
            fleet.due.push(Reverse((heartbeat, i, Kind::Heartbeat)));
            let cron = fleet.random.below(300_000);
            fleet.due.push(Reverse((cron, i, Kind::Cron)));
            at(&mut fleet, Kind::Login, 600.0);
            at(&mut fleet, Kind::Sudo, 600.0);
            match profile {
                Profile::Exposed => at(&mut fleet, Kind::Scan, 30.0),
                Profile::Bastion => fleet.due.push(Reverse((0, i, Kind::Brute))),
                Profile::Quiet => {}
            }
        }
        fleet
    }

    /// The events every host wrote in the second ending at `until_ms`, one NDJSON text
    /// per host (or per event when `pack` is 1); the number of events.
    fn second(
        &mut self,
        until_ms: u64,
        now: DateTime<Utc>,
        pack: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> usize {
        let mut per_host: std::collections::HashMap<usize, Vec<u8>> = Default::default();
        let mut events = 0;
        while let Some(Reverse((at, host, kind))) = self.due.peek().copied() {
            if at > until_ms {
                break;
            }
            self.due.pop();
            let lines = self.lines(host, kind, now);
            let next = match kind {
                Kind::Heartbeat => 60.0,
                Kind::Cron => 300.0,
                Kind::Login | Kind::Sudo => self.random.exponential(600.0),
                Kind::Scan => self.random.exponential(30.0),
                Kind::Brute => 0.2,
            };
            self.due
                .push(Reverse((at + (next * 1000.0) as u64, host, kind)));
            let target = per_host.entry(host).or_default();
            let h = &mut self.hosts[host];
            let mut write = |json: String| {
                if pack == 1 {
                    out.push(json.into_bytes());
                } else {
                    target.extend_from_slice(json.as_bytes());
                    target.push(b'\n');
                }
            };
            if kind == Kind::Heartbeat {
                let snapshot = picket_agent::heartbeat::Snapshot {
                    buffer_bytes: 0,
                    oldest: None,
                };
                let event =
                    picket_agent::heartbeat::event(&h.identity, &self.metrics, &snapshot, now);
                write(serde_json::to_string(&event).unwrap());
                events += 1;
                continue;
            }
            for line in lines {
                let context = LineContext {
                    source: "/var/log/auth.log",
                    source_identity: &h.source_identity,
                    offset: h.offset,
                    read_at: now,
                };
                h.offset += line.len() as u64 + 1;
                let event = h.parser.parse(line.as_bytes(), &context);
                write(serde_json::to_string(&event).unwrap());
                events += 1;
            }
        }
        for (_, text) in per_host {
            if !text.is_empty() {
                out.push(text);
            }
        }
        events
    }

    /// The syslog lines a host writes for one happening.
    fn lines(&mut self, host: usize, kind: Kind, now: DateTime<Utc>) -> Vec<String> {
        let r = &mut self.random;
        let name = self.hosts[host].identity.short_name.clone();
        let stamp = now.format("%b %e %H:%M:%S");
        let pid = 1000 + r.below(60_000);
        let port = 1024 + r.below(60_000);
        let head = |program: &str| format!("{stamp} {name} {program}[{pid}]: ");
        match kind {
            Kind::Heartbeat => Vec::new(),
            Kind::Cron => vec![
                format!(
                    "{}pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
                    head("CRON")
                ),
                format!(
                    "{}pam_unix(cron:session): session closed for user root",
                    head("CRON")
                ),
            ],
            Kind::Login => {
                let from = format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254));
                let user = ["deploy", "alice", "bob", "ansible"][r.below(4) as usize];
                vec![
                    format!(
                        "{}Accepted publickey for {user} from {from} port {port} ssh2: ED25519 SHA256:Xm3F9o0mYfXq2o1e5bq3r0R8yVw9eA7kzZb6nE1tQ4c",
                        head("sshd")
                    ),
                    format!(
                        "{}pam_unix(sshd:session): session opened for user {user}(uid=1001) by (uid=0)",
                        head("sshd")
                    ),
                    format!(
                        "{}Received disconnect from {from} port {port}:11: disconnected by user",
                        head("sshd")
                    ),
                    format!(
                        "{}pam_unix(sshd:session): session closed for user {user}",
                        head("sshd")
                    ),
                ]
            }
            Kind::Sudo => {
                let user = ["deploy", "alice", "bob", "ansible"][r.below(4) as usize];
                vec![
                    format!(
                        "{}{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart app",
                        head("sudo")
                    ),
                    format!(
                        "{}pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1001)",
                        head("sudo")
                    ),
                    format!(
                        "{}pam_unix(sudo:session): session closed for user root",
                        head("sudo")
                    ),
                ]
            }
            Kind::Scan | Kind::Brute => {
                let from = if kind == Kind::Scan {
                    let s = r.below(self.scanners);
                    format!("100.{}.{}.{}", 64 + (s >> 16) % 64, (s >> 8) % 256, s % 256)
                } else {
                    // The bastion's attacker: a new one every 2 minutes.
                    let epoch = now.timestamp() as u64 / 120;
                    format!("198.18.{}.{}", host % 256, epoch % 250 + 1)
                };
                guess(&head("sshd"), &from, port, r)
            }
        }
    }
}

/// The lines one wrong password writes (OpenSSH with PAM): an unknown user's, or
/// root's.
fn guess(head: &str, from: &str, port: u64, r: &mut Random) -> Vec<String> {
    let user = ["admin", "test", "oracle", "ubuntu", "root"][r.below(5) as usize];
    if user == "root" {
        vec![
            format!(
                "{head}pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={from}  user=root"
            ),
            format!("{head}Failed password for root from {from} port {port} ssh2"),
            format!(
                "{head}Connection closed by authenticating user root {from} port {port} [preauth]"
            ),
        ]
    } else {
        vec![
            format!("{head}Invalid user {user} from {from} port {port}"),
            format!("{head}pam_unix(sshd:auth): check pass; user unknown"),
            format!(
                "{head}pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={from}"
            ),
            format!("{head}Failed password for invalid user {user} from {from} port {port} ssh2"),
            format!("{head}Connection closed by invalid user {user} {from} port {port} [preauth]"),
        ]
    }
}

/// The simulated agents' connections and channels (confirms on).
struct Publisher {
    runtime: tokio::runtime::Runtime,
    channels: Vec<(Connection, Channel)>,
}

impl Publisher {
    fn connect(endpoint: &AmqpEndpoint, count: usize) -> Publisher {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let channels = runtime.block_on(async {
            let mut channels = Vec::new();
            for i in 0..count {
                // Spread over the nodes as agents listing them in different orders are:
                // each connection starts at the node after the last one's.
                if i > 0 {
                    endpoint.pass_over();
                }
                let connection = endpoint.connect("fleet-sim").await.expect("connect");
                let channel = connection.create_channel().await.expect("channel");
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .expect("confirms");
                channels.push((connection, channel));
            }
            channels
        });
        Publisher { runtime, channels }
    }

    /// Publishes every message (spread over the connections), waiting for every confirm.
    fn publish(&self, messages: &[Vec<u8>], pack: usize) {
        self.runtime.block_on(async {
            let mut confirms = Vec::with_capacity(messages.len());
            for (i, body) in messages.iter().enumerate() {
                let channel = &self.channels[i % self.channels.len()].1;
                let mut properties = BasicProperties::default().with_delivery_mode(2);
                if pack > 1 {
                    let mut headers = FieldTable::default();
                    let count = body.iter().filter(|&&b| b == b'\n').count() as u32;
                    headers.insert(packed::EVENTS_HEADER.into(), AMQPValue::LongUInt(count));
                    properties = properties
                        .with_content_type(packed::CONTENT_TYPE.into())
                        .with_headers(headers);
                } else {
                    properties = properties.with_content_type("application/json".into());
                }
                confirms.push(
                    channel
                        .basic_publish(
                            "eventtask".into(),
                            "eventtask".into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..Default::default()
                            },
                            body,
                            properties,
                        )
                        .await
                        .expect("publish"),
                );
            }
            for confirm in confirms {
                let confirm = confirm.await.expect("confirm");
                assert!(confirm.is_ack(), "the broker took the message");
            }
        });
    }
}

/// One probe event (an accepted login on a host of its own): its id and its JSON.
fn probe(n: u64, now: DateTime<Utc>) -> (String, Vec<u8>) {
    let identity = HostIdentity::named("probe.sim.example");
    let parser = LineParser::new(identity, TimeZoneChoice::parse("UTC").unwrap());
    let line = format!(
        "{} probe sshd[{}]: Accepted publickey for probe from 192.0.2.7 port {} ssh2",
        now.format("%b %e %H:%M:%S"),
        1000 + n % 60_000,
        1024 + n % 60_000
    );
    let context = LineContext {
        source: "/var/log/auth.log",
        source_identity: "probe",
        offset: n,
        read_at: now,
    };
    let event = parser.parse(line.as_bytes(), &context);
    (event.eventid.clone(), serde_json::to_vec(&event).unwrap())
}

/// `_count` of `query` in `pattern`, without a refresh (what a search sees now).
fn count_now(search: &OpenSearch, pattern: &str, query: &Value) -> Option<u64> {
    let (status, answer) = search.try_request(
        "POST",
        &format!("/{pattern}/_count?ignore_unavailable=true&allow_no_indices=true"),
        Some(&json!({ "query": query })),
    )?;
    (status == 200).then(|| answer["count"].as_u64()).flatten()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// The fleet's parts. Fields drop in order: the services before their directory.
struct Setup {
    nodes: Vec<RabbitMq>,
    search: OpenSearch,
    pki: Pki,
    rules: std::path::PathBuf,
    endpoint: AmqpEndpoint,
    dir: tempfile::TempDir,
}

fn collector(setup: &Setup, name: &str, first: usize) -> Collector {
    let n = setup.nodes.len();
    let urls: Vec<String> = (0..n)
        .map(|i| format!("{:?}", setup.nodes[(first + i) % n].amqps_url()))
        .collect();
    let path = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    es_collector(
        &setup.dir.path().join(name),
        &setup.search.urls(),
        &format!(
            "\n[collector.amqp]\nurls = [{}]\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\nqueue_type = \"quorum\"\nprefetch = 500\n\n[collector.alerts]\nrules_dir = {}\n",
            urls.join(", "),
            path(&setup.pki.ca),
            path(&setup.pki.client_cert),
            path(&setup.pki.client_key),
            path(&setup.rules),
        ),
    )
}

/// CPU seconds used so far by the collectors, the RabbitMQ nodes and the OpenSearch
/// nodes.
fn tier_cpu(setup: &Setup, fleet: &[Collector]) -> [f64; 3] {
    [
        fleet
            .iter()
            .filter_map(|c| c.service.pid())
            .map(cpu_seconds)
            .sum(),
        setup
            .nodes
            .iter()
            .filter_map(RabbitMq::pid)
            .map(|p| cpu_seconds(p as u32))
            .sum(),
        setup
            .search
            .nodes
            .iter()
            .filter_map(|n| n.pid())
            .map(cpu_seconds)
            .sum(),
    ]
}

/// Everything stored so far in `events-*` (refreshed: exact once the fleet is idle).
fn stored(search: &OpenSearch) -> u64 {
    search.count("events-*", &json!({ "match_all": {} }))
}

/// What a search finds in `events-*` now, without forcing a refresh (one a second
/// happens anyway): for watching progress without adding to the store's work.
fn stored_now(search: &OpenSearch) -> u64 {
    count_now(search, "events-*", &json!({ "match_all": {} })).unwrap_or(0)
}

/// The simulated agents' AMQPS endpoint: the nodes at `urls`, the client certificate.
fn amqps_endpoint(urls: &[String], pki: &Pki) -> AmqpEndpoint {
    AmqpEndpoint::build(EndpointConfig {
        table: "sim",
        url: &None,
        urls,
        username: &None,
        password_file: &None,
        password_env: "SIM_PASSWORD_FILE",
        auth: AmqpAuth::External,
        ca_file: &Some(pki.ca.clone()),
        client_cert_file: &Some(pki.client_cert.clone()),
        client_key_file: &Some(pki.client_key.clone()),
        timeout: Duration::from_secs(10),
    })
    .expect("endpoint")
}

fn main() {
    let options = Options::read();
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::generate(&dir.path().join("pki"));
    eprintln!(
        "fleet_sim: {} RabbitMQ nodes, {} OpenSearch nodes",
        options.rabbitmq, options.opensearch
    );
    let nodes = RabbitMq::cluster(&dir.path().join("rabbitmq"), &pki, options.rabbitmq);
    let search = OpenSearch::cluster(&dir.path().join("opensearch"), options.opensearch);
    // Every shipped rule but silent-host, as shipped.
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_stem().is_some_and(|s| s != "silent-host")
        {
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    let urls: Vec<String> = nodes.iter().map(RabbitMq::amqps_url).collect();
    let endpoint = amqps_endpoint(&urls, &pki);
    let setup = Setup {
        dir,
        pki,
        nodes,
        search,
        rules,
        endpoint,
    };

    // What a connection costs a node: 500 idle AMQPS connections, the node's RSS before
    // and after.
    {
        let pid = setup.nodes[0].pid().expect("node pid") as u32;
        let one = amqps_endpoint(&[setup.nodes[0].amqps_url()], &setup.pki);
        let before = rss_mib(pid);
        let publisher = Publisher::connect(&one, 500);
        std::thread::sleep(Duration::from_secs(5));
        let after = rss_mib(pid);
        println!(
            "RESULT connections=500 rabbitmq_rss_before_mib={before:.0} after_mib={after:.0} per_connection_kib={:.0}",
            (after - before) * 1024.0 / 500.0
        );
        drop(publisher);
    }

    let mut published_total: u64 = 0;
    let mut sequence = 0u64;
    for &count in &options.collectors {
        let mut fleet: Vec<Collector> = (0..count)
            .map(|i| collector(&setup, &format!("collector-{count}-{i}"), i))
            .collect();
        // Let one take the lease and the queue be declared.
        std::thread::sleep(Duration::from_secs(5));
        for &hosts in &options.hosts {
            published_total += run(
                &setup,
                &fleet,
                count,
                hosts,
                &options,
                published_total,
                &mut sequence,
            );
        }
        published_total += capacity(&setup, &fleet, count, &options, published_total);
        for c in &mut fleet {
            c.service.stop();
        }
    }
    // What an event costs the store's disks: primaries only (replicas multiply it),
    // merged as far as the cluster got.
    let _ = setup.search.request("POST", "/events-*/_refresh", None);
    let stats = setup.search.get("/events-*/_stats/store,docs");
    let primaries = &stats["_all"]["primaries"];
    let (bytes, docs) = (
        primaries["store"]["size_in_bytes"].as_f64().unwrap_or(0.0),
        primaries["docs"]["count"].as_f64().unwrap_or(0.0),
    );
    println!(
        "RESULT store events={docs:.0} primary_bytes={bytes:.0} bytes_per_event={:.0}",
        bytes / docs.max(1.0)
    );
    println!(
        "fleet_sim: done in {:.0} s; {published_total} events published, every one stored once",
        started.elapsed().as_secs_f64()
    );
}

/// One run: `hosts` simulated hosts for `options.seconds` against `fleet`; the events
/// published.
fn run(
    setup: &Setup,
    fleet: &[Collector],
    collectors: usize,
    hosts: usize,
    options: &Options,
    before: u64,
    sequence: &mut u64,
) -> u64 {
    eprintln!(
        "fleet_sim: {hosts} hosts, {collectors} collector(s), {} s",
        options.seconds
    );
    let mut sim = Fleet::new(
        hosts,
        0x5eed ^ hosts as u64,
        &format!("run-{collectors}-{hosts}"),
    );
    let publisher = Publisher::connect(&setup.endpoint, options.connections.min(hosts));
    let cpu_start = tier_cpu(setup, fleet);
    let pids: Vec<u32> = fleet.iter().filter_map(|c| c.service.pid()).collect();
    let each_start: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let stored_start = stored(&setup.search);
    assert_eq!(
        stored_start, before,
        "the store holds what was published before"
    );

    let stop = AtomicBool::new(false);
    // Probes: (id, published at).
    let probes: Mutex<Vec<(String, Instant)>> = Default::default();
    let lags: Mutex<Vec<f64>> = Default::default();
    let depths: Mutex<Vec<u32>> = Default::default();
    // The attacks whose alerts are timed: each from a fresh address, one guess a second
    // for 12 s, from the 20th second and every 40 s after.
    let attacks: Mutex<Vec<Attack>> = Mutex::new(
        (0..)
            .map(|k| 20 + 40 * k)
            .take_while(|from| from + 12 <= options.seconds)
            .map(|from| Attack {
                address: fresh_address(),
                from,
                threshold: None,
                latency: None,
            })
            .collect(),
    );
    let outcome = std::thread::scope(|threads| {
        // However the traffic ends (a failed publish unwinds too), the threads stop.
        let _stop = StopOnDrop(&stop);
        threads.spawn(|| watch_probes(&setup.search, &probes, &lags, &stop));
        threads.spawn(|| watch_alerts(setup, &attacks, &stop));
        threads.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(d) = setup.nodes[0].queue_depth("eventtask") {
                    depths.lock().unwrap().push(d);
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        });

        let attack_host = HostIdentity::named("bastion-timed.sim.example");
        let attack_parser =
            LineParser::new(attack_host.clone(), TimeZoneChoice::parse("UTC").unwrap());
        let mut random = Random(0xa77ac4 ^ hosts as u64);

        let mut published = 0u64;
        let mut behind = 0u32;
        let begin = Instant::now();
        let mut messages = Vec::new();
        for second in 0..options.seconds {
            let tick = begin + Duration::from_secs(second);
            if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            } else if second > 0 {
                behind += 1;
            }
            let now = Utc::now();
            messages.clear();
            let mut events =
                sim.second((second + 1) * 1000, now, options.pack, &mut messages) as u64;
            let mut probe_id = None;
            if second % 5 == 0 {
                let (id, mut body) = probe(*sequence, now);
                *sequence += 1;
                if options.pack > 1 {
                    body.push(b'\n');
                }
                messages.push(body);
                events += 1;
                probe_id = Some(id);
            }
            let attacker = attacks
                .lock()
                .unwrap()
                .iter()
                .find(|a| (a.from..a.from + 12).contains(&second))
                .map(|a| a.address.clone());
            if let Some(attacker) = &attacker {
                let head = format!(
                    "{} bastion-timed sshd[{}]: ",
                    now.format("%b %e %H:%M:%S"),
                    4000 + second
                );
                let mut text = Vec::new();
                for (i, line) in guess(&head, attacker, 40000 + second, &mut random)
                    .iter()
                    .enumerate()
                {
                    let context = LineContext {
                        source: "/var/log/auth.log",
                        source_identity: "bastion-timed",
                        offset: *sequence * 1000 + second * 10 + i as u64,
                        read_at: now,
                    };
                    let event = attack_parser.parse(line.as_bytes(), &context);
                    text.extend_from_slice(&serde_json::to_vec(&event).unwrap());
                    text.push(b'\n');
                    events += 1;
                }
                if options.pack > 1 {
                    messages.push(text);
                } else {
                    messages.extend(
                        text.split(|&b| b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(<[u8]>::to_vec),
                    );
                }
            }
            publisher.publish(&messages, options.pack);
            // Lags count from the broker's confirm, as alert latencies do.
            if let Some(id) = probe_id {
                probes.lock().unwrap().push((id, Instant::now()));
            }
            // The tenth guess reached the rule's threshold.
            for attack in attacks.lock().unwrap().iter_mut() {
                if second == attack.from + 9 {
                    attack.threshold = Some(Instant::now());
                }
            }
            published += events;
        }
        let elapsed = begin.elapsed().as_secs_f64();

        // The backlog drains: until everything published is stored.
        let drain_start = Instant::now();
        let want = before + published;
        let mut last = 0;
        while drain_start.elapsed() < Duration::from_secs(1800) {
            last = stored_now(&setup.search);
            if last >= want {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // Exact, once everything is searchable.
        if last >= want {
            last = stored(&setup.search);
        }
        let drain = drain_start.elapsed().as_secs_f64();
        let cpu_end = tier_cpu(setup, fleet);
        let cpu_used: Vec<f64> = (0..3).map(|i| cpu_end[i] - cpu_start[i]).collect();
        let each_used: Vec<f64> = pids
            .iter()
            .zip(&each_start)
            .map(|(&pid, start)| cpu_seconds(pid) - start)
            .collect();
        stop.store(true, Ordering::Relaxed);
        (
            published, elapsed, behind, drain, cpu_used, each_used, last, want,
        )
    });
    let (published, elapsed, behind, drain, cpu_used, each_used, last, want) = outcome;
    assert_eq!(
        last, want,
        "stored {last} of {want} ({hosts} hosts, {collectors} collectors)"
    );

    // Each timed brute force alerted once.
    let attacks = attacks.into_inner().unwrap();
    let alerts: Vec<u64> = attacks
        .iter()
        .map(|a| {
            setup
                .search
                .count("alerts-*", &bruteforce_alerts(&a.address))
        })
        .collect();
    let mut latencies: Vec<f64> = attacks
        .iter()
        .map(|a| a.latency.unwrap_or(f64::NAN))
        .collect();

    let depths = depths.lock().unwrap().clone();
    let mut lags = lags.lock().unwrap().clone();
    let unseen = probes.lock().unwrap().len();
    // The traffic's seconds (the clock's last tick is one second before their end).
    let offered = published as f64 / options.seconds as f64;
    let rss = fleet
        .iter()
        .filter_map(|c| c.service.pid())
        .map(rss_mib)
        .fold(0.0, f64::max);
    let per_event = |i: usize| cpu_used[i] * 1e6 / published as f64;
    // Each collector's cores, the lease holder's marked `*`.
    let lease = setup.search.get("/picket-scheduler/_doc/lease");
    let holder = lease["_source"]["holder"]
        .as_str()
        .and_then(|h| h.split('/').nth(1))
        .unwrap_or_default()
        .to_string();
    let each: Vec<String> = pids
        .iter()
        .zip(&each_used)
        .map(|(&pid, used)| {
            let mark = if pid.to_string() == holder { "*" } else { "" };
            format!("{:.3}{mark}", used / (elapsed + drain))
        })
        .collect();
    let line = format!(
        "RESULT hosts={hosts} collectors={collectors} events_per_s={offered:.0} collector_cpu_us={:.1} \
         collector_cores={:.3} each=[{}] collector_rss_mib={rss:.0} rabbitmq_cores={:.3} opensearch_cores={:.3} \
         queue_max={} queue_end={} store_lag_p50_s={:.1} store_lag_max_s={:.1} alert_latency_p50_s={:.1} alert_latency_max_s={:.1} alerts={alerts:?} \
         drain_s={drain:.1} behind_s={behind} events={published} probes_unseen={unseen}",
        per_event(0),
        cpu_used[0] / (elapsed + drain),
        each.join(","),
        cpu_used[1] / (elapsed + drain),
        cpu_used[2] / (elapsed + drain),
        depths.iter().max().copied().unwrap_or(0),
        depths.last().copied().unwrap_or(0),
        percentile(&mut lags, 0.5),
        percentile(&mut lags, 1.0),
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 1.0),
    );
    println!("{line}");
    // Twice is a fault; never (within 4 minutes of the threshold) is a finding: a
    // store too loaded to answer the rules' searches (the collector logs each failed
    // run), reported in `alerts` as a 0.
    assert!(
        alerts.iter().all(|&n| n <= 1),
        "a timed brute force alerted more than once: {line}"
    );
    if alerts.contains(&0) {
        eprintln!("fleet_sim: a timed brute force did not alert within 4 minutes: {line}");
    }
    published
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A timed brute force: its address, its first second, when its tenth guess was
/// published and how long after that its alert was stored.
struct Attack {
    address: String,
    from: u64,
    threshold: Option<Instant>,
    latency: Option<f64>,
}

/// An address no attack used before (in this process).
fn fresh_address() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("203.0.{}.{}", 113 + n / 250, 1 + n % 250)
}

/// Polls for each attack's alert (a `_count` without refresh) from its threshold on,
/// until every attack's alert is found or 4 minutes passed its threshold, and the run
/// is over.
fn watch_alerts(setup: &Setup, attacks: &Mutex<Vec<Attack>>, stop: &AtomicBool) {
    loop {
        let waiting: Vec<(usize, String, Instant)> = attacks
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, a)| a.latency.is_none())
            .filter_map(|(i, a)| Some((i, a.address.clone(), a.threshold?)))
            .collect();
        for (i, address, threshold) in &waiting {
            let found =
                count_now(&setup.search, "alerts-*", &bruteforce_alerts(address)).unwrap_or(0);
            if found > 0 {
                attacks.lock().unwrap()[*i].latency = Some(threshold.elapsed().as_secs_f64());
            }
        }
        let open = attacks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.latency.is_none())
            .any(|a| {
                a.threshold
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(240))
            });
        if stop.load(Ordering::Relaxed) && !open {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The SSH brute-force rule's alerts about `address` (the password-spray rule alerts
/// about it too).
fn bruteforce_alerts(address: &str) -> Value {
    json!({ "bool": { "must": [
        { "match_phrase": { "details.value": address } },
        { "match_phrase": { "details.rule": "ssh-bruteforce" } },
    ] } })
}

/// Polls for each probe until a `_count` without refresh finds it; its lag.
fn watch_probes(
    search: &OpenSearch,
    probes: &Mutex<Vec<(String, Instant)>>,
    lags: &Mutex<Vec<f64>>,
    stop: &AtomicBool,
) {
    let mut quiet_after_stop = 0;
    loop {
        let pending: Vec<(String, Instant)> = probes.lock().unwrap().clone();
        for (id, at) in pending {
            let query = json!({ "term": { "eventid": id } });
            if count_now(search, "events-*", &query).unwrap_or(0) > 0 {
                lags.lock().unwrap().push(at.elapsed().as_secs_f64());
                probes.lock().unwrap().retain(|(i, _)| *i != id);
            }
        }
        if stop.load(Ordering::Relaxed) {
            quiet_after_stop += 1;
            if quiet_after_stop > 20 || probes.lock().unwrap().is_empty() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The fleet's capacity: `options.backlog` events (bastion-style traffic) published
/// as fast as the brokers take them; the time until all are stored. The events
/// published.
fn capacity(
    setup: &Setup,
    fleet: &[Collector],
    collectors: usize,
    options: &Options,
    before: u64,
) -> u64 {
    if options.backlog == 0 {
        return 0;
    }
    let mut sim = Fleet::new(
        1,
        0xbac ^ collectors as u64,
        &format!("capacity-{collectors}"),
    );
    let publisher = Publisher::connect(&setup.endpoint, options.connections);
    // Made before the clock starts: a bastion's traffic, `pack` events a message.
    let mut messages = Vec::new();
    let mut events = 0usize;
    let mut ms = 0;
    // The traffic of the bastion's seconds up to now (about 20 events a second).
    let start = Utc::now() - chrono::Duration::seconds(options.backlog as i64 / 15);
    let mut pending = Vec::new();
    while events < options.backlog {
        ms += 1000;
        pending.clear();
        let now = start + chrono::Duration::milliseconds(ms as i64);
        events += sim.second(ms, now, 1, &mut pending);
        for event in pending.drain(..) {
            messages.push(event);
        }
    }
    messages.truncate(options.backlog);
    let bodies: Vec<Vec<u8>> = if options.pack > 1 {
        messages
            .chunks(options.pack)
            .map(|c| {
                let mut b = Vec::new();
                for e in c {
                    b.extend_from_slice(e);
                    b.push(b'\n');
                }
                b
            })
            .collect()
    } else {
        messages
    };
    let cpu_start = tier_cpu(setup, fleet);
    let begin = Instant::now();
    for chunk in bodies.chunks(200) {
        publisher.publish(chunk, options.pack);
    }
    let published_in = begin.elapsed().as_secs_f64();
    let want = before + options.backlog as u64;
    loop {
        let now = stored_now(&setup.search);
        if now >= want {
            let exact = stored(&setup.search);
            assert_eq!(exact, want, "stored exactly the backlog");
            break;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(3600),
            "the backlog did not drain: {now} of {want}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = begin.elapsed().as_secs_f64();
    let cpu_end = tier_cpu(setup, fleet);
    let per_event = |i: usize| (cpu_end[i] - cpu_start[i]) * 1e6 / options.backlog as f64;
    println!(
        "RESULT capacity collectors={collectors} events={} published_s={published_in:.1} stored_s={elapsed:.1} \
         events_per_s={:.0} collector_cpu_us={:.1} rabbitmq_cpu_us={:.1} opensearch_cpu_us={:.1}",
        options.backlog,
        options.backlog as f64 / elapsed,
        per_event(0),
        per_event(1),
        per_event(2)
    );
    options.backlog as u64
}
