//! How long each shipped alert rule takes over 1,000,000 stored events (embedded store).
//!
//! Stores EVENTS (default 1,000,000) auth-log-shaped events — 40% failed sshd logins
//! from 5,000 addresses, 10% accepted ones, 25% sudo, 10% CEF, 15% heartbeats from
//! 1,000 hosts — in a fresh embedded store, spread evenly over SPREAD_MINUTES (default
//! 1440: a day; try 10 for a burst where every window is full), then runs every rule in
//! `rules/` once at the end of that span, RUNS times (default 3), and prints the best
//! and the worst time of each.
//!
//! `cargo bench -p picket-collector --bench alerts`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use picket_collector::alerts::engine::{self, RuleLedger};
use picket_collector::alerts::rules;
use picket_collector::stores::embedded::EmbeddedStore;
use picket_collector::stores::{Document, Store};
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn main() {
    let total = env("EVENTS", 1_000_000);
    let spread = env("SPREAD_MINUTES", 1440);
    let runs = env("RUNS", 3).max(1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::Embedded(
        EmbeddedStore::open(dir.path(), Duration::from_millis(100), 200_000_000)
            .expect("embedded store"),
    ));
    let end = Utc::now();
    let start = end - chrono::Duration::minutes(spread as i64);
    let step_us = (spread * 60_000_000) / total.max(1);
    let mut rng = Rng(42);
    let loading = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..total {
        let at = start + chrono::Duration::microseconds((i * step_us) as i64);
        let host = format!("host{:04}.example.com", rng.below(1000));
        let ip = format!(
            "10.{}.{}.{}",
            rng.below(20),
            rng.below(250),
            rng.below(10) + 1
        );
        let user = format!("user{}", rng.below(200));
        let kind = rng.below(100);
        let value = match kind {
            0..40 => {
                json!({"utctimestamp": at.to_rfc3339(), "hostname": host, "processname": "sshd",
                "category": "authentication", "summary": format!("Failed password for {user} from {ip} port 22 ssh2"),
                "tags": ["sshd"], "details": {"action": "login", "success": false, "username": user, "sourceipaddress": ip, "sourceport": 22}})
            }
            40..50 => {
                json!({"utctimestamp": at.to_rfc3339(), "hostname": host, "processname": "sshd",
                "category": "authentication", "summary": format!("Accepted publickey for {user} from {ip} port 22 ssh2"),
                "tags": ["sshd"], "details": {"action": "login", "success": true, "username": user, "sourceipaddress": ip, "sourceport": 22}})
            }
            50..75 => {
                json!({"utctimestamp": at.to_rfc3339(), "hostname": host, "processname": "sudo",
                "category": if kind < 55 { "authentication" } else { "authorization" },
                "summary": format!("{user} : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls"),
                "tags": ["sudo"], "details": {"action": "command", "success": kind >= 55, "username": user, "command": "/bin/ls"}})
            }
            75..85 => {
                json!({"utctimestamp": at.to_rfc3339(), "hostname": host, "processname": "cef",
                "category": "cef", "summary": "CEF event", "tags": ["cef"],
                "details": {"devicevendor": "Acme", "deviceproduct": "FW", "name": "Port scan", "cefseverity": (rng.below(10) + 1).to_string()}})
            }
            _ => {
                json!({"utctimestamp": at.to_rfc3339(), "hostname": host, "processname": "picket-agent",
                "category": "heartbeat", "summary": "heartbeat", "tags": ["heartbeat"]})
            }
        };
        batch.push(Document::Event(
            mozdef::normalize(value, at).expect("event"),
        ));
        if batch.len() == 10_000 {
            runtime
                .block_on(store.store(std::mem::take(&mut batch)))
                .expect("store");
        }
    }
    if !batch.is_empty() {
        runtime.block_on(store.store(batch)).expect("store");
    }
    eprintln!(
        "stored {total} events over {spread} min in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let dir_rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let rules = rules::load_dir(&dir_rules).expect("shipped rules");
    println!(
        "{:<28} {:>11} {:>10} {:>10} {:>7}",
        "rule", "type", "best ms", "worst ms", "alerts"
    );
    for rule in &rules {
        let mut times = Vec::new();
        let mut fired = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let alerts = runtime
                .block_on(engine::evaluate(rule, &store, &RuleLedger::default(), end))
                .expect("rule runs");
            times.push(started.elapsed());
            fired = alerts.len();
        }
        times.sort();
        println!(
            "{:<28} {:>11} {:>10.1} {:>10.1} {:>7}",
            rule.name,
            rule.kind.name(),
            times[0].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            fired
        );
    }
    runtime.block_on(store.close());
}
