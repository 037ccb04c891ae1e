//! The world the shipped alert rules are tested in (`alerts.rs` on the embedded store,
//! `opensearch.rs` on real OpenSearch): log lines through the agent's parser and the
//! collector's normalization into a store, a scheduler with an injected clock, and the
//! scenario every shipped rule must fire once for (and its near misses never).
//!
//! Included with `#[path]` by the test files that use it.
#![allow(dead_code)]

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

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

pub struct World {
    _dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub alerts: Option<Arc<AlertStore>>,
    parser: LineParser,
    offset: u64,
    /// A real cluster's node: refreshed after each store, so the rules see at once
    /// what a cluster shows a second later.
    refresh: Option<String>,
}

impl World {
    pub fn new() -> World {
        World::embedded(false)
    }

    /// A world on the embedded store; `store_alerts`: its alerts kept in the embedded
    /// alert store, to be read back.
    pub fn embedded(store_alerts: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
        World::with(dir, Store::Embedded(store), store_alerts)
    }

    /// The same world on the Elasticsearch store (the cluster at `urls`), alerts
    /// stored there too. `refresh`: make each store's events searchable at once (a
    /// real node's refresh interval otherwise hides them for a second).
    pub fn elasticsearch(urls: &[String], refresh: bool) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let settings = ElasticSettings {
            urls: urls
                .iter()
                .map(|u| format!("{u}/").parse().unwrap())
                .collect(),
            credentials: None,
            tls: Default::default(),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(5),
            bulk_max_bytes: 10 * 1024 * 1024,
            dead_letter_path: dir.path().join("dead-letter.ndjson"),
        };
        let mut world = World::with(
            dir,
            Store::Elasticsearch(Arc::new(ElasticStore::new(settings).unwrap())),
            true,
        );
        world.refresh = refresh.then(|| urls[0].clone());
        world
    }

    pub fn with(dir: tempfile::TempDir, store: Store, store_alerts: bool) -> World {
        let store = Arc::new(store);
        let alerts =
            store_alerts.then(|| Arc::new(AlertStore::for_store(&store, dir.path()).unwrap()));
        World {
            _dir: dir,
            store,
            alerts,
            refresh: None,
            parser: LineParser::new(
                HostIdentity::named("web1.example.com"),
                TimeZoneChoice::parse("UTC").unwrap(),
            ),
            offset: 0,
        }
    }

    /// Syslog lines (without their header's time: `HH:MM:SS` is prefixed) read and
    /// shipped at `read_at`, as the agent and the collector would.
    pub async fn lines(&mut self, read_at: DateTime<Utc>, lines: &[(&str, &str)]) {
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
        self.refreshed().await;
    }

    pub async fn events(&self, events: Vec<Value>, received: DateTime<Utc>) {
        let documents = events
            .into_iter()
            .map(|v| Document::Event(mozdef::normalize(v, received).unwrap()))
            .collect();
        self.store.store(documents).await.unwrap();
        self.refreshed().await;
    }

    async fn refreshed(&self) {
        if let Some(url) = &self.refresh {
            picket_tests::opensearch::refresh_async(url).await;
        }
    }

    /// A scheduler of the rule files in `rules`, on this world's events, with no
    /// ledger files and no alert store.
    pub fn scheduler_of(&self, rules: &Path) -> Scheduler<Arc<Store>> {
        Scheduler::new(rules, Arc::clone(&self.store), None, Vec::new(), None).unwrap()
    }

    pub fn scheduler(&self, ledger: Option<&Path>) -> Scheduler<Arc<Store>> {
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

/// Alerts fired per rule (a rule catching up missed runs runs more than once),
/// every run required to succeed.
pub fn fired(reports: &[picket_collector::alerts::RunReport]) -> BTreeMap<String, usize> {
    let mut fired = BTreeMap::new();
    for report in reports {
        assert_eq!(report.error, None, "{}", report.rule);
        *fired.entry(report.rule.clone()).or_default() += report.fired;
    }
    fired
}

/// The newest 10 stored alerts `query` finds.
pub fn newest_alerts(query: impl Into<String>) -> picket_collector::stores::SearchRequest {
    picket_collector::stores::SearchRequest {
        query: query.into(),
        from: None,
        to: None,
        size: 10,
        time_field: Default::default(),
        aggs: None,
        max_bytes: 0,
    }
}

/// Every scenario and its near misses, all in one store at 10:00–10:04 UTC.
pub async fn scenarios(world: &mut World) {
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

pub async fn shipped_rules_fire_once(world: &mut World) {
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
