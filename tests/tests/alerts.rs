//! The shipped detections (`rules/`), fired from real log lines: each line goes through
//! the agent's parser and the collector's normalization into an embedded store, and the
//! collector's scheduler runs the rules with an injected clock.

#[path = "support/alert_world.rs"]
mod alert_world;

use std::sync::Arc;
use std::time::Duration;

use alert_world::{World, at, fired, scenarios, shipped_rules_fire_once};
use chrono::{DateTime, Utc};
use picket_collector::alerts::Scheduler;
use serde_json::{Value, json};

#[tokio::test]
async fn each_shipped_rule_fires_once_for_its_scenario_and_never_twice() {
    let mut world = World::new();
    shipped_rules_fire_once(&mut world).await;
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
    let mut scheduler = world.scheduler_of(rules.path());
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

/// A rule that did not run for longer than its window (its runs failed while the store
/// refused searches, or were late) makes the runs it missed when it runs again: a
/// brute force inside the gap alerts once, and not again.
#[tokio::test]
async fn a_brute_force_inside_a_gap_longer_than_the_window_alerts_when_the_rule_runs_again() {
    let world = World::embedded(true);
    let start = at("2026-11-25T10:00:00Z");
    let mut scheduler = world.scheduler(None);
    let brute_forces =
        |fired: &std::collections::BTreeMap<String, usize>| fired.get("ssh-bruteforce").copied();
    let quiet = fired(&scheduler.run_due(start).await);
    assert_eq!(brute_forces(&quiet), Some(0), "{quiet:?}");
    let failure = |t: DateTime<Utc>| {
        json!({"utctimestamp": t.to_rfc3339(), "hostname": "web1", "processname": "sshd",
               "category": "authentication", "summary": "Failed password",
               "details": {"success": false, "sourceipaddress": "203.0.113.44", "username": "root"}})
    };
    // Twelve guesses, 5 s apart from 10:06:40.
    let attack = at("2026-11-25T10:06:40Z");
    let events = (0..12)
        .map(|i| failure(attack + chrono::Duration::seconds(i * 5)))
        .collect();
    world.events(events, attack).await;
    // The next run is 30 minutes later: its own window (10:28-10:30) holds nothing.
    let late = scheduler
        .run_due(start + chrono::Duration::minutes(30))
        .await;
    let fired_late = fired(&late);
    assert_eq!(brute_forces(&fired_late), Some(1), "{late:?}");
    // Dated when it was decided (among the newest alerts), with the run it belongs to.
    let stored = world
        .alerts
        .as_ref()
        .unwrap()
        .search(alert_world::newest_alerts("details.rule:ssh-bruteforce"))
        .await
        .unwrap();
    assert_eq!(stored.total, 1, "{stored:?}");
    let alert = &stored.hits[0];
    assert_eq!(
        alert["utctimestamp"], "2026-11-25T10:30:00+00:00",
        "{alert}"
    );
    let run_at: DateTime<Utc> = alert["details"]["run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        run_at > attack && run_at <= attack + chrono::Duration::minutes(3),
        "{alert}"
    );
    assert!(catch_up_runs(&scheduler) > 0);
    // On time at 10:31 (its own window only), late again at 10:45 (caught up again):
    // nothing alerts twice.
    for minutes in [31, 45] {
        let again = fired(
            &scheduler
                .run_due(start + chrono::Duration::minutes(minutes))
                .await,
        );
        assert_eq!(brute_forces(&again), Some(0), "{again:?}");
    }
}

/// Three hours of missed runs are more than one tick catches up (60 runs a tick): the
/// catch-up resumes where it stopped, the rule's own window runs meanwhile, and each
/// attack alerts once, including one at the seam between two ticks' catch-ups.
#[tokio::test]
async fn a_catch_up_longer_than_a_tick_resumes_at_the_next_and_alerts_each_attack_once() {
    let world = World::new();
    let start = at("2026-11-25T10:00:00Z");
    let mut scheduler = world.scheduler(None);
    fired(&scheduler.run_due(start).await);
    let guesses = |ip: &str, from: DateTime<Utc>| -> Vec<Value> {
        (0..12)
            .map(|i| {
                json!({"utctimestamp": (from + chrono::Duration::seconds(i * 5)).to_rfc3339(),
                       "hostname": "web1", "processname": "sshd",
                       "category": "authentication", "summary": "Failed password",
                       "details": {"success": false, "sourceipaddress": ip, "username": "root"}})
            })
            .collect()
    };
    // 10:59: inside the first tick's last window (ending 11:00) and the second tick's
    // first (ending 11:01). 12:30: the third tick's.
    let seam = at("2026-11-25T10:59:00Z");
    world.events(guesses("198.51.100.7", seam), seam).await;
    let later = at("2026-11-25T12:30:00Z");
    world.events(guesses("198.51.100.8", later), later).await;
    let mut alerts = std::collections::BTreeMap::new();
    for minutes in 180..186 {
        let reports = scheduler
            .run_due(start + chrono::Duration::minutes(minutes))
            .await;
        assert!(
            reports.len() <= 12 + 12 * 61,
            "a tick's catch-up is bounded"
        );
        let got = fired(&reports)["ssh-bruteforce"];
        alerts.insert(minutes, got);
    }
    assert_eq!(alerts.values().sum::<usize>(), 2, "{alerts:?}");
    assert_eq!(
        alerts[&180], 1,
        "the first tick catches up 10:01-11:00: {alerts:?}"
    );
    let caught_up = catch_up_runs(&scheduler);
    // Each rule but the deadman one evaluated the runs from 10:01 to about 13:02 once.
    let rules = scheduler
        .rules()
        .iter()
        .filter(|r| r.kind.name() != "deadman")
        .count() as u64;
    assert!(
        (179 * rules..=186 * rules).contains(&caught_up),
        "{caught_up} for {rules} rules"
    );
}

/// A rule run less often than its window is long (or on a cron with gaps) skips time by
/// design: its runs on schedule, a few seconds late as ticks are, catch nothing up;
/// runs missed for real are made.
#[tokio::test]
async fn runs_on_schedule_catch_nothing_up_whatever_the_window() {
    let world = World::new();
    let scheduler_of = |name: &str, schedule: &str, window: &str| {
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(
            rules.path().join(format!("{name}.toml")),
            format!("name = \"{name}\"\n{schedule}\nwindow = \"{window}\"\nquery = \"processname:sshd\"\ntype = \"simple\"\ncategory = \"c\"\nsummary = \"s\"\n"),
        )
        .unwrap();
        let scheduler = world.scheduler_of(rules.path());
        (rules, scheduler)
    };
    let (_sparse_rules, mut sparse) = scheduler_of("sparse", "every = \"10m\"", "5m");
    for t in ["17:00:00", "17:10:03", "17:20:05", "17:30:06"] {
        fired(&sparse.run_due(at(&format!("2026-11-25T{t}Z"))).await);
    }
    assert_eq!(catch_up_runs(&sparse), 0);
    fired(&sparse.run_due(at("2026-11-25T18:00:00Z")).await);
    assert_eq!(catch_up_runs(&sparse), 2, "17:40 and 17:50 were missed");

    let (_office_rules, mut office) = scheduler_of("office", "schedule = \"0 9-17 * * *\"", "1h");
    fired(&office.run_due(at("2026-11-25T17:00:00Z")).await);
    fired(&office.run_due(at("2026-11-26T09:00:04Z")).await);
    assert_eq!(catch_up_runs(&office), 0, "the night is not a gap");
    fired(&office.run_due(at("2026-11-26T11:00:01Z")).await);
    assert_eq!(catch_up_runs(&office), 1, "10:00 was missed");

    // A daily rule's missed run is 24 hours back, at the catch-up's horizon: made.
    let (_daily_rules, mut daily) = scheduler_of("daily", "schedule = \"0 9 * * *\"", "1d");
    fired(&daily.run_due(at("2026-11-25T09:00:00Z")).await);
    fired(&daily.run_due(at("2026-11-27T09:00:04Z")).await);
    assert_eq!(catch_up_runs(&daily), 1, "the 26th's run was missed");
}

/// Missed runs the scheduler has made (all its rules).
fn catch_up_runs(scheduler: &Scheduler<Arc<picket_collector::stores::Store>>) -> u64 {
    scheduler
        .metrics
        .catch_up_runs
        .load(std::sync::atomic::Ordering::Relaxed)
}
