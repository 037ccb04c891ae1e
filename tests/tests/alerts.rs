//! The shipped detections (`rules/`), fired from real log lines: each line goes through
//! the agent's parser and the collector's normalization into an embedded store, and the
//! collector's scheduler runs the rules with an injected clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use picket_collector::alerts::{AlertStore, Scheduler};
use picket_collector::stores::elasticsearch::{ElasticSettings, ElasticStore};
use picket_collector::stores::embedded::EmbeddedStore;
use picket_collector::stores::{Document, Store};
use serde_json::{Value, json};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    alerts: Option<Arc<AlertStore>>,
    parser: LineParser,
    offset: u64,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
        World::with(dir, Store::Embedded(store), false)
    }

    /// The same world on the Elasticsearch store (the test node at `url`), alerts
    /// stored there too.
    fn elasticsearch(url: &str) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let settings = ElasticSettings {
            urls: vec![format!("{url}/").parse().unwrap()],
            credentials: None,
            tls: Default::default(),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(5),
            bulk_max_bytes: 10 * 1024 * 1024,
            dead_letter_path: dir.path().join("dead-letter.ndjson"),
        };
        World::with(
            dir,
            Store::Elasticsearch(Arc::new(ElasticStore::new(settings).unwrap())),
            true,
        )
    }

    fn with(dir: tempfile::TempDir, store: Store, store_alerts: bool) -> World {
        let store = Arc::new(store);
        let alerts =
            store_alerts.then(|| Arc::new(AlertStore::for_store(&store, dir.path()).unwrap()));
        World {
            _dir: dir,
            store,
            alerts,
            parser: LineParser::new(
                HostIdentity::named("web1.example.com"),
                TimeZoneChoice::parse("UTC").unwrap(),
            ),
            offset: 0,
        }
    }

    /// Syslog lines (without their header's time: `HH:MM:SS` is prefixed) read and
    /// shipped at `read_at`, as the agent and the collector would.
    async fn lines(&mut self, read_at: DateTime<Utc>, lines: &[(&str, &str)]) {
        let mut documents = Vec::new();
        for (time, rest) in lines {
            let line = format!("Nov 25 {time} {rest}");
            let context = LineContext {
                source: "/var/log/auth.log",
                source_identity: "file:1:2:3",
                offset: self.offset,
                read_at,
            };
            self.offset += line.len() as u64 + 1;
            let event = self.parser.parse(line.as_bytes(), &context);
            let value = serde_json::to_value(&event).unwrap();
            documents.push(Document::Event(mozdef::normalize(value, read_at).unwrap()));
        }
        self.store.store(documents).await.unwrap();
    }

    async fn events(&self, events: Vec<Value>, received: DateTime<Utc>) {
        let documents = events
            .into_iter()
            .map(|v| Document::Event(mozdef::normalize(v, received).unwrap()))
            .collect();
        self.store.store(documents).await.unwrap();
    }

    fn scheduler(&self, ledger: Option<&Path>) -> Scheduler<Arc<Store>> {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        Scheduler::new(
            &rules,
            Arc::clone(&self.store),
            self.alerts.clone(),
            Vec::new(),
            ledger.map(Path::to_path_buf),
        )
        .unwrap()
    }
}

fn fired(reports: &[picket_collector::alerts::RunReport]) -> BTreeMap<String, usize> {
    for report in reports {
        assert_eq!(report.error, None, "{}", report.rule);
    }
    reports.iter().map(|r| (r.rule.clone(), r.fired)).collect()
}

/// Every scenario and its near misses, all in one store at 10:00–10:04 UTC.
async fn scenarios(world: &mut World) {
    let read = at("2026-11-25T10:04:30Z");
    let mut lines: Vec<(String, String)> = Vec::new();
    // Brute force: 10 failures from .5 (as root); near miss: 9 from .6.
    for i in 0..10 {
        lines.push((
            format!("10:03:{:02}", i * 2),
            format!(
                "web1 sshd[{}]: Failed password for root from 203.0.113.5 port {} ssh2",
                100 + i,
                40000 + i
            ),
        ));
    }
    // Each of .6's nine attempts writes three lines, as OpenSSH 9.x with PAM does: the
    // PAM failure, the `Failed password`, and the connection's close. The rule counts
    // attempts (the echoes are marked), so 27 lines are still 9 attempts: a near miss.
    for i in 0..9 {
        let (pid, port) = (200 + i, 41000 + i);
        lines.push((
            format!("10:03:{:02}", i * 2 + 1),
            format!("web1 sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.6  user=root"),
        ));
        lines.push((
            format!("10:03:{:02}", i * 2 + 1),
            format!("web1 sshd[{pid}]: Failed password for root from 203.0.113.6 port {port} ssh2"),
        ));
        lines.push((
            format!("10:03:{:02}", i * 2 + 1),
            format!("web1 sshd[{pid}]: Connection closed by authenticating user root 203.0.113.6 port {port} [preauth]"),
        ));
    }
    // ...and then a login from .5 succeeds (a brute force that worked); .6 logs in
    // too, after only 9 failures: a near miss.
    lines.push((
        "10:03:30".into(),
        "web1 sshd[150]: Accepted password for deploy from 203.0.113.5 port 40100 ssh2".into(),
    ));
    lines.push((
        "10:03:40".into(),
        "web1 sshd[250]: Accepted password for deploy from 203.0.113.6 port 41100 ssh2".into(),
    ));
    // Password spray: 5 user names from .7 (one failure each); near miss: 4 names from
    // .8, twice each.
    for (i, user) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
        lines.push((
            format!("10:02:{:02}", i),
            format!("web1 sshd[{}]: Failed password for invalid user {user} from 198.51.100.7 port {} ssh2", 300 + i, 42000 + i),
        ));
    }
    for round in 0..2 {
        for (i, user) in ["frank", "grace", "heidi", "ivan"].iter().enumerate() {
            lines.push((
                format!("10:02:{:02}", 10 + round * 5 + i),
                format!("web1 sshd[{}]: Failed password for invalid user {user} from 198.51.100.8 port {} ssh2", 400 + i, 43000 + i),
            ));
        }
    }
    // sudo: three authentication failures by alice; near miss: two by bob.
    for i in 0..3 {
        lines.push((
            format!("10:01:{:02}", i),
            "web1 sudo: pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice".into(),
        ));
    }
    for i in 0..2 {
        lines.push((
            format!("10:01:{:02}", 10 + i),
            "web1 sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1001 euid=0 tty=/dev/pts/1 ruser=bob rhost=  user=bob".into(),
        ));
    }
    // sudo's own line about bob's two: an echo of PAM's, not two more.
    lines.push(("10:01:12".into(), "web1 sudo:      bob : 2 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls".into()));
    // su: three wrong passwords by carol (PAM's line and su's each), near miss: two by dave.
    for (user, tries, second) in [("carol", 3, 40), ("dave", 2, 50)] {
        for i in 0..tries {
            lines.push((
                format!("10:01:{:02}", second + 2 * i),
                format!("web1 su: pam_unix(su:auth): authentication failure; logname= uid=1002 euid=0 tty=/dev/pts/3 ruser={user} rhost=  user=root"),
            ));
            lines.push((
                format!("10:01:{:02}", second + 2 * i + 1),
                format!("web1 su[{}]: FAILED SU (to root) {user} on pts/3", 700 + i),
            ));
        }
    }
    // Not in sudoers; near miss: a command not allowed.
    lines.push(("10:01:30".into(), "web1 sudo:  mallory : user NOT in sudoers ; TTY=pts/2 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh".into()));
    lines.push(("10:01:31".into(), "web1 sudo:    alice : command not allowed ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/sbin/reboot".into()));
    // Account lifecycle: created, deleted, made privileged; near misses: a new group,
    // a member added to an ordinary group.
    lines.push(("10:00:10".into(), "web1 useradd[4240]: new user: name=eve, UID=1005, GID=1005, home=/home/eve, shell=/bin/bash, from=/dev/pts/0".into()));
    lines.push((
        "10:00:11".into(),
        "web1 groupadd[4241]: new group: name=eve, GID=1005".into(),
    ));
    lines.push((
        "10:00:12".into(),
        "web1 usermod[4242]: add 'eve' to group 'sudo'".into(),
    ));
    // The same change written to /etc/gshadow: no second alert.
    lines.push((
        "10:00:12".into(),
        "web1 usermod[4242]: add 'eve' to shadow group 'sudo'".into(),
    ));
    lines.push((
        "10:00:13".into(),
        "web1 usermod[4243]: add 'eve' to group 'users'".into(),
    ));
    lines.push((
        "10:00:20".into(),
        "web1 userdel[4250]: delete user 'olduser'".into(),
    ));
    // Root over SSH; near misses: another user accepted, root refused (above).
    lines.push(("10:00:30".into(), "web1 sshd[500]: Accepted publickey for root from 192.0.2.44 port 50000 ssh2: RSA SHA256:abcdef".into()));
    lines.push((
        "10:00:31".into(),
        "web1 sshd[501]: Accepted password for alice from 192.0.2.45 port 50001 ssh2".into(),
    ));
    // CEF: severity 9 fires; 7 does not; a New Privileged Account event (severity 5)
    // is the privileged-account rule's.
    lines.push((
        "10:00:40".into(),
        "fw1 CEF:0|Acme|Firewall|2.1|4001|Port scan detected|9|src=203.0.113.9 dst=10.0.0.5".into(),
    ));
    lines.push((
        "10:00:41".into(),
        "fw1 CEF:0|Acme|Firewall|2.1|4002|Policy changed|7|suser=admin".into(),
    ));
    lines.push((
        "10:00:42".into(),
        "dc1 CEF:0|Acme|Directory|3.0|100|New Privileged Account|5|suser=admin duser=mallory"
            .into(),
    ));
    let refs: Vec<(&str, &str)> = lines
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    world.lines(read, &refs).await;
    // Heartbeats: h1 and h2 every minute until 09:45 and 10:04; h3 only yesterday
    // (outside the 24 h lookback: not expected any more).
    let mut beats = Vec::new();
    for (host, until) in [("h1.example.com", 45), ("h2.example.com", 64)] {
        for minute in 0..=until {
            let t = at("2026-11-25T09:00:00Z") + chrono::Duration::minutes(minute);
            beats.push(json!({
                "utctimestamp": t.to_rfc3339(), "hostname": host, "processname": "picket-agent",
                "category": "heartbeat", "summary": "heartbeat", "tags": ["heartbeat"],
            }));
        }
    }
    beats.push(json!({
        "utctimestamp": "2026-11-24T08:00:00Z", "hostname": "h3.example.com",
        "category": "heartbeat", "summary": "heartbeat",
    }));
    world.events(beats, read).await;
}

#[tokio::test]
async fn each_shipped_rule_fires_once_for_its_scenario_and_never_twice() {
    let mut world = World::new();
    shipped_rules_fire_once(&mut world).await;
}

#[tokio::test]
async fn on_elasticsearch_too_with_alerts_stored_and_events_tagged_as_mozdef_does() {
    let node = picket_tests::elastic::Node::start("8.15.0");
    let mut world = World::elasticsearch(&node.url);
    shipped_rules_fire_once(&mut world).await;
    node.with(|cluster| {
        let alerts: Vec<&Value> = cluster
            .indices
            .iter()
            .filter(|(name, _)| name.starts_with("alerts-"))
            .flat_map(|(_, index)| index.docs.values())
            .collect();
        assert_eq!(alerts.len(), 13, "every alert stored in alerts-YYYYMM");
        assert!(cluster.indices.contains_key("alerts-202611"));
        let brute = alerts
            .iter()
            .find(|a| a["classname"] == "ssh-bruteforce")
            .expect("the brute force alert");
        let first = brute["events"][0]["documentid"].as_str().unwrap();
        let event = &cluster.indices["events-20261125"].docs[first];
        let mut names: Vec<&str> = event["alert_names"]
            .as_array()
            .expect("alert_names")
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["ssh-bruteforce", "ssh-login-after-bruteforce"]);
    });
}

async fn shipped_rules_fire_once(world: &mut World) {
    scenarios(world).await;
    let mut scheduler = world.scheduler(None);
    let now = at("2026-11-25T10:05:00Z");
    let got = fired(&scheduler.run_due(now).await);
    let want: BTreeMap<String, usize> = [
        ("account-created", 1),
        ("account-deleted", 1),
        ("cef-high-severity", 1),
        ("new-privileged-account", 2),
        ("root-ssh-login", 1),
        ("silent-host", 1),
        ("ssh-bruteforce", 1),
        ("ssh-login-after-bruteforce", 1),
        ("ssh-password-spray", 1),
        ("su-failures", 1),
        ("sudo-auth-failures", 1),
        ("sudo-not-in-sudoers", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);

    // Not due again yet; and forced, over the same events, nothing fires again.
    assert!(scheduler.run_due(now).await.is_empty());
    let later = now + chrono::Duration::seconds(30);
    let rules = scheduler.rules().to_vec();
    for rule in &rules {
        let report = scheduler.run_rule(rule, later).await;
        assert_eq!(
            (report.fired, report.error),
            (0, None),
            "{} re-alerted",
            rule.name
        );
    }
}

#[tokio::test]
async fn an_alert_has_mozdefs_shape_and_a_useful_summary() {
    let mut world = World::new();
    scenarios(&mut world).await;
    let scheduler = world.scheduler(None);
    let rule = scheduler
        .rules()
        .iter()
        .find(|r| r.name == "ssh-bruteforce")
        .unwrap()
        .clone();
    let alerts = picket_collector::alerts::engine::evaluate(
        &rule,
        &world.store,
        &Default::default(),
        at("2026-11-25T10:05:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    let d = &alert.document;
    assert_eq!(d["classname"], "ssh-bruteforce");
    assert_eq!(d["severity"], "WARNING");
    assert_eq!(d["category"], "bruteforce");
    assert_eq!(d["status"], "NEW");
    assert_eq!(d["notify_mozdefbot"], true);
    assert_eq!(
        d["summary"],
        "10 failed SSH logins from 203.0.113.5 on web1.example.com"
    );
    assert_eq!(d["details"]["count"], 10);
    let events = d["events"].as_array().unwrap();
    assert_eq!(events.len(), 5, "samples");
    assert_eq!(events[0]["documentindex"], "events-20261125");
    assert_eq!(
        events[0]["documentid"],
        events[0]["documentsource"]["eventid"]
    );
    assert_eq!(
        alert.contributing.len(),
        10,
        "every event is remembered, not only samples"
    );
}

#[tokio::test]
async fn a_restarted_scheduler_remembers_what_alerted() {
    let mut world = World::new();
    scenarios(&mut world).await;
    let ledger = tempfile::tempdir().unwrap();
    let now = at("2026-11-25T10:05:00Z");
    let first: usize = fired(&world.scheduler(Some(ledger.path())).run_due(now).await)
        .values()
        .sum();
    assert_eq!(first, 13);
    let again: usize = fired(&world.scheduler(Some(ledger.path())).run_due(now).await)
        .values()
        .sum();
    assert_eq!(again, 0, "the ledger survived the restart");
}

#[tokio::test]
async fn deadman_alerts_once_per_silence_and_rearms_when_the_host_returns() {
    let world = World::new();
    let beat = |host: &str, t: DateTime<Utc>| json!({"utctimestamp": t.to_rfc3339(), "hostname": host, "category": "heartbeat", "summary": "hb"});
    let start = at("2026-11-25T08:00:00Z");
    // h1 beats until 09:00; h2 all along (until 12:00).
    let mut beats = Vec::new();
    for minute in 0..=240 {
        let t = start + chrono::Duration::minutes(minute);
        if minute <= 60 {
            beats.push(beat("h1", t));
        }
        beats.push(beat("h2", t));
    }
    world.events(beats, start).await;
    let mut scheduler = world.scheduler(None);
    let rule = scheduler
        .rules()
        .iter()
        .find(|r| r.name == "silent-host")
        .unwrap()
        .clone();
    // 09:10: h1 silent only 10 min (< 15): nothing.
    let report = scheduler.run_rule(&rule, at("2026-11-25T09:10:00Z")).await;
    assert_eq!(report.fired, 0);
    // While both flow... 09:20: h1 silent 20 min: one alert; 09:25, 10:00: no repeat.
    assert_eq!(
        scheduler
            .run_rule(&rule, at("2026-11-25T09:20:00Z"))
            .await
            .fired,
        1
    );
    assert_eq!(
        scheduler
            .run_rule(&rule, at("2026-11-25T09:25:00Z"))
            .await
            .fired,
        0
    );
    assert_eq!(
        scheduler
            .run_rule(&rule, at("2026-11-25T10:00:00Z"))
            .await
            .fired,
        0
    );
    // h1 comes back at 10:30 for ten minutes, then stops again: a new alert at 11:00.
    let back: Vec<Value> = (0..10)
        .map(|m| {
            beat(
                "h1",
                at("2026-11-25T10:30:00Z") + chrono::Duration::minutes(m),
            )
        })
        .collect();
    world.events(back, start).await;
    assert_eq!(
        scheduler
            .run_rule(&rule, at("2026-11-25T10:35:00Z"))
            .await
            .fired,
        0
    );
    assert_eq!(
        scheduler
            .run_rule(&rule, at("2026-11-25T11:00:00Z"))
            .await
            .fired,
        1
    );
    // h2 never alerted.
}

/// A webhook receiver: the first request is answered 500 (the collector must retry),
/// the others 200; every body is kept.
struct Webhook {
    url: String,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl Webhook {
    fn start() -> Webhook {
        use axum::http::StatusCode;
        let bodies: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
        let seen = Arc::clone(&bodies);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                        let seen = Arc::clone(&seen);
                        let calls = Arc::clone(&calls);
                        async move {
                            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                                return StatusCode::INTERNAL_SERVER_ERROR;
                            }
                            seen.lock().unwrap().push(body);
                            StatusCode::OK
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Webhook {
            url,
            bodies,
            _thread: thread,
        }
    }

    fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn a_running_collector_alerts_through_a_webhook_and_amqp_and_the_cli_shows_its_rules() {
    use picket_tests::rabbitmq::{PASSWORD, RabbitMq};
    use picket_tests::{Collector, CollectorOptions, binary, http, pki::Pki};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let broker = RabbitMq::start(&dir.path().join("rabbitmq"), &pki);
    broker.bind(
        "mozdef-bot",
        "alerts",
        lapin::ExchangeKind::Topic,
        "mozdef.#",
    );
    let webhook = Webhook::start();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("intrusion.toml"),
        "name = \"intrusion\"\nevery = \"1s\"\nwindow = \"1h\"\nquery = \"category:testalert\"\ntype = \"simple\"\nseverity = \"WARNING\"\ncategory = \"intrusion\"\ntags = [\"test\"]\nsummary = \"{summary} on {hostnames}\"\n",
    )
    .unwrap();
    let password = dir.path().join("amqp-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            extra: format!(
                "[collector.alerts]\nrules_dir = {rules:?}\n\n[[collector.alerts.webhook]]\nurl = {hook:?}\n\n[collector.alerts.amqp]\nurl = {amqp:?}\nusername = \"agent-test\"\npassword_file = {password:?}\n",
                rules = rules.display().to_string(),
                hook = webhook.url,
                amqp = broker.amqp_url(),
                password = password.display().to_string(),
            ),
            ..CollectorOptions::default()
        },
    );
    let response = http()
        .post(collector.events_url())
        .json(
            &json!({"summary": "intrusion", "category": "testalert", "hostname": "h9.example.com"}),
        )
        .send()
        .unwrap();
    assert!(response.status().is_success());

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while webhook.received().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no webhook call:\n{}",
            collector.service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let hook = webhook.received()[0].clone();
    assert_eq!(hook["_source"]["classname"], "intrusion");
    assert_eq!(hook["_source"]["summary"], "intrusion on h9.example.com");
    assert!(hook["_index"].as_str().unwrap().starts_with("alerts-"));

    let mut published = Vec::new();
    while published.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing published:\n{}",
            collector.service.log()
        );
        published = broker.drain("mozdef-bot");
        std::thread::sleep(Duration::from_millis(100));
    }
    let message: Value = serde_json::from_slice(&published[0].body).unwrap();
    assert_eq!(message["_id"], hook["_id"]);
    assert_eq!(message["_source"]["severity"], "WARNING");

    // The rule runs every second: still one alert a few runs later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(webhook.received().len(), 1);
    assert!(broker.drain("mozdef-bot").is_empty());
    let metrics = http()
        .get(format!("{}/metrics", collector.base_url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("picket_alerts_fired_total 1"), "{metrics}");
    let stored: Value = http()
        .get(format!("{}/api/alerts", collector.base_url))
        .bearer_auth(collector.read_token())
        .query(&[
            ("q", "details.rule:intrusion AND severity:WARNING"),
            ("from", "1h"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored["total"], 1, "{stored}");
    assert_eq!(stored["hits"][0]["classname"], "intrusion");
    assert_eq!(
        stored["hits"][0]["events"][0]["documentsource"]["summary"],
        "intrusion"
    );

    // The command line: the rule is listed, and `alerts test` finds the event again
    // (it ignores what already alerted and stores nothing).
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary("picket-collector"))
            .arg("--config")
            .arg(&collector.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["alerts", "list"]).contains("intrusion"));
    let tested = run(&[
        "alerts",
        "test",
        "intrusion",
        "--since",
        "1h",
        "--url",
        &collector.base_url,
    ]);
    assert_eq!(
        tested.trim(),
        "WARNING: intrusion intrusion on h9.example.com"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(webhook.received().len(), 1, "alerts test notified nobody");
}

#[test]
fn alerts_are_said_on_irc_over_tls_paced_and_read_back_by_another_client() {
    use picket_tests::ircd::{Ircd, Reader};
    use picket_tests::{Collector, CollectorOptions, http, pki::Pki};
    // The binaries first: on a fresh clone the harness builds them here (minutes), and
    // the reader below, idle meanwhile, would be dropped by the server's ping timeout
    // (120 s) before the alerts are said.
    picket_tests::binary("picket-collector");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let ircd = Ircd::start(&dir.path().join("ircd"), &pki);
    let mut reader = Reader::join(ircd.port, "watcher", "#alerts");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("intrusion.toml"),
        "name = \"intrusion\"\nevery = \"1s\"\nwindow = \"1h\"\nquery = \"category:testalert\"\ntype = \"simple\"\nseverity = \"WARNING\"\ncategory = \"intrusion\"\nsummary = \"{summary} on {hostnames}\"\n",
    )
    .unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            extra: format!(
                "[collector.alerts]\nrules_dir = {rules:?}\n\n[collector.alerts.irc]\nserver = \"localhost:{port}\"\nca_file = {ca:?}\nchannel = \"#alerts\"\nnick = \"picket\"\n",
                rules = rules.display().to_string(),
                port = ircd.tls_port,
                ca = pki.ca.display().to_string(),
            ),
            ..CollectorOptions::default()
        },
    );
    // Eight alerts at once: four said at once, the rest one a second.
    let events: Vec<Value> = (0..8)
        .map(|i| json!({"summary": format!("intrusion-{i}"), "category": "testalert", "hostname": "h9.example.com"}))
        .collect();
    let response = http()
        .post(collector.events_url())
        .json(&events)
        .send()
        .unwrap();
    assert!(response.status().is_success());
    let mut said = Vec::new();
    let mut first_at = None;
    for _ in 0..8 {
        let line = reader
            .wait_for("PRIVMSG #alerts :", Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "not said on IRC:\n{}\n{}",
                    collector.service.log(),
                    ircd.log()
                )
            });
        first_at.get_or_insert_with(std::time::Instant::now);
        said.push(line);
    }
    let spread = first_at.unwrap().elapsed();
    assert!(said[0].starts_with(":picket!"), "{}", said[0]);
    let mut texts: Vec<String> = said
        .iter()
        .map(|l| l.split_once("PRIVMSG #alerts :").unwrap().1.to_string())
        .collect();
    texts.sort();
    let want: Vec<String> = (0..8)
        .map(|i| format!("WARNING: intrusion intrusion-{i} on h9.example.com"))
        .collect();
    assert_eq!(texts, want);
    assert!(
        spread >= Duration::from_secs(3),
        "8 lines with a burst of 4 take 4 paced seconds, took {spread:?}"
    );
    // Once each.
    assert!(reader.wait_for("PRIVMSG", Duration::from_secs(3)).is_none());
}

#[tokio::test]
async fn a_brute_force_buried_under_more_events_than_one_fetch_still_alerts() {
    let world = World::new();
    let now = at("2026-11-25T10:05:00Z");
    let failure = |ip: String, t: DateTime<Utc>| {
        json!({"utctimestamp": t.to_rfc3339(), "hostname": "web1", "processname": "sshd",
               "category": "authentication", "summary": "Failed password",
               "details": {"success": false, "sourceipaddress": ip, "username": "root"}})
    };
    // The attacker's ten, oldest in the window; then 12,000 newer failures from 4,000
    // addresses (three each: under the threshold).
    let mut events: Vec<Value> = (0..10)
        .map(|i| {
            failure(
                "203.0.113.77".into(),
                now - chrono::Duration::seconds(110 - i),
            )
        })
        .collect();
    for i in 0..12_000u32 {
        let ip = format!("10.{}.{}.1", (i % 4000) / 250, (i % 4000) % 250);
        events.push(failure(
            ip,
            now - chrono::Duration::milliseconds(90_000 - i as i64 * 7),
        ));
    }
    world.events(events, now).await;
    let scheduler = world.scheduler(None);
    let rule = scheduler
        .rules()
        .iter()
        .find(|r| r.name == "ssh-bruteforce")
        .unwrap()
        .clone();
    let alerts =
        picket_collector::alerts::engine::evaluate(&rule, &world.store, &Default::default(), now)
            .await
            .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].document["details"]["value"], "203.0.113.77");
    assert_eq!(alerts[0].document["details"]["count"], 10);
}

#[tokio::test]
async fn a_failing_rule_is_logged_counted_and_run_again_and_late_runs_are_counted() {
    let world = World::new();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("broken.toml"),
        "name = \"broken\"\nevery = \"1m\"\nwindow = \"5m\"\nquery = \"details.username:(\"\ntype = \"simple\"\ncategory = \"c\"\nsummary = \"s\"\n",
    )
    .unwrap();
    let mut scheduler = Scheduler::new(
        rules.path(),
        Arc::clone(&world.store),
        None,
        Vec::new(),
        None,
    )
    .unwrap();
    let now = at("2026-11-25T10:00:00Z");
    let first = scheduler.run_due(now).await;
    assert!(
        first[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("invalid query"),
        "{first:?}"
    );
    // Ten minutes later: due again (run, fails again), nine runs were missed.
    let later = scheduler.run_due(now + chrono::Duration::minutes(10)).await;
    assert_eq!(later.len(), 1);
    assert!(later[0].error.is_some());
    let metrics = &scheduler.metrics;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(metrics.failures.load(Relaxed), 2);
    assert_eq!(metrics.runs.load(Relaxed), 2);
    assert_eq!(metrics.missed_runs.load(Relaxed), 9);
}
