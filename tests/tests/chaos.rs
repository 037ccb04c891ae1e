//! The fault-injection suite: the whole system under load while things fail, then a
//! count of what the store holds against every line written.
//!
//! ```text
//! cargo test -p picket-tests --test chaos                                  # short form (CI)
//! cargo test -p picket-tests --test chaos -- --minutes 60 --seed 7         # soak
//! ```
//!
//! Real processes: three agents (own state directory, hostname and host id; two ship
//! over HTTP with a bearer token, one over AMQPS through a private RabbitMQ), one
//! collector (HTTP and the AMQP consumer, embedded store). Writers append auth-log lines
//! at a steady rate, each line carrying a unique marker, and rotate their files by
//! rename (logrotate's `create`) or copytruncate. On a seeded schedule the suite
//! SIGKILLs and restarts agents and the collector (its commits 2 s apart, so a kill lands
//! between its write-ahead log and its index), stops the collector for a while
//! (unreachable), restarts RabbitMQ, and, when run as root, fills the first agent's
//! buffer filesystem (a small tmpfs the suite mounts) until its inputs pause, then frees
//! it. A garbage thread sends the collector invalid JSON, oversized bodies, wrong tokens
//! and slow clients throughout.
//!
//! At the end, with every fault healed and everything drained: every marker is stored
//! exactly once, event ids are unique, nothing else is stored, and the garbage is counted
//! in `/metrics`. A failure prints the seed, the fault schedule and the lost or doubled
//! markers. The long form also samples the processes' RSS and open file descriptors.
//!
//! copytruncate: lines written between the agent's last read and the truncation exist
//! only in the copy, which the agent does not follow (logrotate documents this gap). The
//! writer therefore truncates only once the store holds everything written so far to
//! that file, as an operator's `delaycompress`/`copytruncate` setup cannot promise more.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picket_tests::pki::Pki;
use picket_tests::rabbitmq::RabbitMq;
use picket_tests::{Agent, Collector, CollectorOptions, free_port};

const AGENTS: usize = 3;
const TOKEN: &str = "chaos-token-0123456789abcdef";
/// The test's own searches and metrics: a reader (the agents' token may only send).
const READER: &str = "chaos-reader-0123456789abcdef";
/// Garbage of each refused kind sent to the last collector at the end, which it must count.
const FINAL_GARBAGE: u64 = 3;

/// xorshift64*: the whole schedule follows from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

struct Options {
    minutes: f64,
    seed: u64,
    /// Lines a second per agent.
    rate: u64,
}

fn options() -> Options {
    let mut options = Options {
        minutes: 2.0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
        rate: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--minutes" => options.minutes = value().parse().expect("--minutes N"),
            "--seed" => options.seed = value().parse().expect("--seed N"),
            "--rate" => options.rate = value().parse().expect("--rate N"),
            // libtest's own flags (cargo may pass some): not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    options
}

/// What happened when, for the report.
#[derive(Default)]
struct Schedule {
    started: Option<Instant>,
    entries: Vec<String>,
    counts: BTreeMap<&'static str, u64>,
}

impl Schedule {
    fn log(&mut self, kind: &'static str, what: String) {
        let at = self
            .started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        eprintln!("chaos {at:7.1}s {kind}: {what}");
        self.entries.push(format!("{at:7.1}s {kind}: {what}"));
        *self.counts.entry(kind).or_insert(0) += 1;
    }
}

/// One agent's log file and what was written into it.
struct Writer {
    index: usize,
    path: PathBuf,
    /// Lines written so far: markers `chaos-<index>-0` up to this.
    written: AtomicU64,
    stop: AtomicBool,
}

fn line(agent: usize, n: u64) -> String {
    let t = n % 86_400;
    format!(
        "Nov 24 {:02}:{:02}:{:02} web{agent} sshd[{}]: Failed password for root from 192.0.2.{} port 22 ssh2 chaos-{agent}-{n}\n",
        t / 3600,
        t / 60 % 60,
        t % 60,
        1000 + n % 1000,
        1 + agent
    )
}

/// Appends `rate` lines a second until stopped; rotates by rename or copytruncate on
/// the writer's own seeded schedule. `caught_up(agent, n)` tells whether the store
/// holds this agent's markers below `n` (copytruncate waits for it).
fn write_loop(
    writer: Arc<Writer>,
    rate: u64,
    seed: u64,
    schedule: Arc<Mutex<Schedule>>,
    caught_up: impl Fn(usize, u64) -> bool,
) {
    let mut rng = Rng(seed);
    let tick = Duration::from_millis(50);
    let per_tick = (rate / 20).max(1);
    let mut next_rotation = Instant::now() + rng.millis(5_000, 15_000);
    let mut n = 0u64;
    while !writer.stop.load(Ordering::Relaxed) {
        let mut text = String::new();
        for _ in 0..per_tick {
            text.push_str(&line(writer.index, n));
            n += 1;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&writer.path)
            .expect("open the log");
        file.write_all(text.as_bytes()).expect("write the log");
        drop(file);
        writer.written.store(n, Ordering::Relaxed);
        if Instant::now() >= next_rotation {
            next_rotation = Instant::now() + rng.millis(5_000, 15_000);
            if rng.below(3) == 0 {
                // copytruncate, once the agent has read what the file holds.
                let deadline = Instant::now() + Duration::from_secs(60);
                while !caught_up(writer.index, n) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                // The copy is not a followed path: following it would read its
                // lines again as a new file.
                let _ = fs::copy(&writer.path, writer.path.with_extension("log.copy"));
                OpenOptions::new()
                    .write(true)
                    .open(&writer.path)
                    .and_then(|f| f.set_len(0))
                    .expect("truncate");
                schedule.lock().unwrap().log(
                    "copytruncate",
                    format!("agent {} at line {n}", writer.index),
                );
            } else {
                rotate(&writer.path);
                let first = writer.path.with_extension("log.1");
                fs::rename(&writer.path, &first).expect("rename rotation");
                schedule.lock().unwrap().log(
                    "rotate-rename",
                    format!("agent {} at line {n}", writer.index),
                );
            }
        }
        std::thread::sleep(tick);
    }
}

/// Shifts auth.log.N to N+1 (keeping 5), so `.1` is free.
fn rotate(path: &Path) {
    for k in (1..5).rev() {
        let from = path.with_extension(format!("log.{k}"));
        let to = path.with_extension(format!("log.{}", k + 1));
        if from.exists() {
            let _ = fs::rename(&from, &to);
        }
    }
}

/// Garbage against the collector; counts what it sent by kind.
fn garbage_loop(
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let client = garbage_client();
    while !stop.load(Ordering::Relaxed) {
        let kind = send_garbage(&client, port, rng.below(4));
        *sent.lock().unwrap().entry(kind).or_insert(0) += 1;
        std::thread::sleep(rng.millis(100, 400));
    }
}

fn garbage_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        // A connection each: the collector answers an oversized body at its header and
        // closes, and a request sent on that connection from the pool meanwhile does not
        // reach it (a possible cause of one of the final three oversized requests going
        // uncounted once, seed 1796667955677445569; not reproduced).
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Sends one piece of garbage of kind `kind` (0–3); returns its name.
fn send_garbage(client: &reqwest::blocking::Client, port: u16, kind: u64) -> &'static str {
    let url = format!("http://127.0.0.1:{port}/events");
    match kind {
        0 => {
            let _ = client
                .post(&url)
                .bearer_auth(TOKEN)
                .body("{\"summary\": \"not closed\n[[[\n")
                .send();
            "invalid_json"
        }
        1 => {
            let body = vec![b'x'; 3 * 1024 * 1024];
            let _ = client.post(&url).bearer_auth(TOKEN).body(body).send();
            "oversized"
        }
        2 => {
            let _ = client
                .post(&url)
                .bearer_auth("wrong-token-0123456789")
                .body(format!("{}\n", event_json("garbage-wrong-token")))
                .send();
            "wrong_token"
        }
        _ => {
            // A slow client: headers a byte at a time, then silence.
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                for b in b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Le" {
                    if stream.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            "slow_client"
        }
    }
}

/// The collector's refusal counters: invalid JSON, too large, wrong token. They are
/// per process, so the suite adds them up before each kill or stop.
fn refusals(base_url: &str) -> [u64; 3] {
    let metrics = garbage_client()
        .get(format!("{base_url}/metrics"))
        .bearer_auth(READER)
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    let metric = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    [
        metric("picket_events_rejected_total{reason=\"not_json\"}")
            + metric("picket_requests_refused_total{reason=\"bad_body\"}"),
        metric("picket_requests_refused_total{reason=\"body_too_large\"}"),
        metric("picket_requests_refused_total{reason=\"forbidden\"}"),
    ]
}

fn add(total: &mut [u64; 3], more: [u64; 3]) {
    for (t, m) in total.iter_mut().zip(more) {
        *t += m;
    }
}

fn event_json(summary: &str) -> String {
    format!(
        r#"{{"utctimestamp":"2026-11-24T10:00:00+00:00","hostname":"garbage","category":"test","summary":"{summary}"}}"#
    )
}

fn path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// Resident set (KiB) and open descriptors of a process.
fn footprint(pid: u32) -> Option<(u64, usize)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

fn main() {
    let options = options();
    eprintln!(
        "chaos: seed {} minutes {} rate {} lines/s per agent",
        options.seed, options.minutes, options.rate
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let pki = Pki::generate(&root.join("pki"));
    let mut broker = RabbitMq::start(&root.join("rabbitmq"), &pki);
    let tokens = root.join("tokens");
    fs::write(&tokens, format!("{TOKEN}\n{READER} reader\n")).unwrap();
    let collector_dir = root.join("collector");
    let port = free_port();
    let collector_options = CollectorOptions {
        tokens_file: Some(tokens.clone()),
        http_keys: "max_body_bytes = 2097152\nrequest_timeout_secs = 5\n".into(),
        // Commits 2 s apart: every SIGKILL of the collector lands between its write-ahead
        // log and its index, with up to 2 s of answered events only in the log.
        store_keys: "commit_interval_ms = 2000\nacknowledge = \"logged\"\n".into(),
        extra: format!(
            "\n[collector.amqp]\nurl = {:?}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\nprefetch = 500\n",
            broker.amqps_url(),
            path(&pki.ca),
            path(&pki.client_cert),
            path(&pki.client_key)
        ),
        port: Some(port),
        ..Default::default()
    };
    let mut collector = Some(Collector::start_with(&collector_dir, &collector_options));
    let schedule = Arc::new(Mutex::new(Schedule {
        started: Some(Instant::now()),
        ..Default::default()
    }));

    // The first agent's state on a small tmpfs (root only), so the suite can fill it.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut tmpfs: Option<PathBuf> = None;
    let token_file = root.join("agent-token");
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut agents: Vec<Agent> = Vec::new();
    let mut agent_dirs = Vec::new();
    let mut writers = Vec::new();
    for a in 0..AGENTS {
        let agent_dir = root.join(format!("agent{a}"));
        fs::create_dir_all(agent_dir.join("logs")).unwrap();
        let log = agent_dir.join("logs/auth.log");
        let shipper = if a == AGENTS - 1 {
            format!(
                "[agent.shippers.amqp]\nurl = {:?}\nauth = \"external\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\n",
                broker.amqps_url(),
                path(&pki.ca),
                path(&pki.client_cert),
                path(&pki.client_key)
            )
        } else {
            format!(
                "[agent.shippers.http]\nurl = \"http://127.0.0.1:{port}/events\"\ntoken_file = {}\n",
                path(&token_file)
            )
        };
        let rotated = log.with_extension("log.1");
        let config = Agent::write_config(&agent_dir, &[&log, &rotated], "", &shipper);
        let mut text = fs::read_to_string(&config).unwrap();
        text = text
            .replace(
                "hostname = \"agent.test.example\"",
                &format!("hostname = \"chaos{a}.test.example\""),
            )
            .replace(
                "host_id = \"test-host\"",
                &format!("host_id = \"chaos-{a}\""),
            );
        if a == 0 && is_root {
            let state = agent_dir.join("state");
            fs::create_dir_all(&state).unwrap();
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"])
                .arg(&state)
                .status()
                .is_ok_and(|s| s.success());
            if mounted {
                // The default buffer settings: the tmpfs is the size of one default
                // segment, so the newest segment alone can fill it (what the buffer's
                // reclaim is for; the 25-minute soak of 2026-11-26 lost lines here).
                tmpfs = Some(state);
            }
        }
        fs::write(&config, text).unwrap();
        agents.push(Agent::start_with_config(&agent_dir, config));
        agent_dirs.push(agent_dir);
        writers.push(Arc::new(Writer {
            index: a,
            path: log,
            written: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }));
    }
    if tmpfs.is_none() {
        schedule.lock().unwrap().log(
            "note",
            "not root (or no tmpfs): the buffer-full fault is skipped".into(),
        );
    }

    // Writers, with copytruncate waiting on what the store holds.
    let base_url = format!("http://127.0.0.1:{port}");
    let stored_below = {
        let base_url = base_url.clone();
        move |agent: usize, n: u64| -> bool {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            client
                .get(format!("{base_url}/api/events"))
                .bearer_auth(READER)
                .query(&[
                    (
                        "q",
                        format!("hostname:web{agent} AND category:authentication"),
                    ),
                    ("size", "1".to_string()),
                ])
                .send()
                .ok()
                .and_then(|r| r.json::<serde_json::Value>().ok())
                .and_then(|v| v["total"].as_u64())
                .is_some_and(|total| total >= n)
        }
    };
    let mut writer_threads = Vec::new();
    for (a, writer) in writers.iter().enumerate() {
        let writer = Arc::clone(writer);
        let schedule = Arc::clone(&schedule);
        let stored_below = stored_below.clone();
        let seed = options.seed.wrapping_add(a as u64 * 7919) | 1;
        let rate = options.rate;
        writer_threads.push(std::thread::spawn(move || {
            write_loop(writer, rate, seed, schedule, stored_below)
        }));
    }
    let garbage_stop = Arc::new(AtomicBool::new(false));
    let garbage_sent = Arc::new(Mutex::new(BTreeMap::new()));
    let garbage = {
        let stop = Arc::clone(&garbage_stop);
        let sent = Arc::clone(&garbage_sent);
        let seed = options.seed ^ 0x5eed;
        std::thread::spawn(move || garbage_loop(port, stop, sent, seed))
    };

    // Faults.
    let mut rng = Rng(options.seed);
    let mut round: Vec<u64> = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(options.minutes * 60.0);
    let mut samples: Vec<String> = Vec::new();
    // Garbage refused by the collectors killed or stopped so far.
    let mut refused = [0u64; 3];
    let mut next_sample = Instant::now();
    let sample = |agents: &[Agent], collector: Option<&Collector>, samples: &mut Vec<String>| {
        let mut row = String::new();
        for (a, agent) in agents.iter().enumerate() {
            if let Some((rss, fds)) = agent.service.pid().and_then(footprint) {
                row.push_str(&format!("agent{a} {rss} KiB {fds} fds; "));
            }
        }
        if let Some((rss, fds)) = collector.and_then(|c| c.service.pid()).and_then(footprint) {
            row.push_str(&format!("collector {rss} KiB {fds} fds"));
        }
        eprintln!("chaos: footprint {row}");
        samples.push(row);
    };
    while Instant::now() < end {
        if Instant::now() >= next_sample {
            sample(&agents, collector.as_ref(), &mut samples);
            next_sample = Instant::now() + Duration::from_secs(30);
        }
        std::thread::sleep(rng.millis(2_000, 6_000));
        // Rounds of every kind in a seeded order: even the short form sees each.
        if round.is_empty() {
            round = (0..if tmpfs.is_some() { 5 } else { 4 }).collect();
            for i in (1..round.len()).rev() {
                round.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        match round.pop().expect("a fault") {
            0 => {
                let a = rng.below(AGENTS as u64) as usize;
                agents[a].service.kill();
                let down = rng.millis(200, 3_000);
                schedule
                    .lock()
                    .unwrap()
                    .log("kill-agent", format!("agent {a}, down {down:?}"));
                std::thread::sleep(down);
                let config = agents[a].config.clone();
                agents[a] = Agent::start_with_config(&agent_dirs[a], config);
            }
            1 => {
                add(&mut refused, refusals(&base_url));
                if let Some(mut c) = collector.take() {
                    c.service.kill();
                }
                let down = rng.millis(200, 3_000);
                schedule
                    .lock()
                    .unwrap()
                    .log("kill-collector", format!("down {down:?}"));
                std::thread::sleep(down);
                collector = Some(Collector::start_with(&collector_dir, &collector_options));
            }
            2 => {
                add(&mut refused, refusals(&base_url));
                if let Some(mut c) = collector.take() {
                    c.service.stop();
                }
                let down = rng.millis(3_000, 10_000);
                schedule
                    .lock()
                    .unwrap()
                    .log("collector-unreachable", format!("stopped for {down:?}"));
                std::thread::sleep(down);
                collector = Some(Collector::start_with(&collector_dir, &collector_options));
            }
            3 => {
                broker.stop();
                let down = rng.millis(500, 3_000);
                schedule
                    .lock()
                    .unwrap()
                    .log("restart-rabbitmq", format!("down {down:?}"));
                std::thread::sleep(down);
                broker.start_again();
            }
            _ => {
                let state = tmpfs.as_ref().expect("tmpfs");
                let filler = state.join("filler");
                let mut file = fs::File::create(&filler).unwrap();
                let chunk = vec![0u8; 64 * 1024];
                let mut filled = 0u64;
                while file.write_all(&chunk).is_ok() {
                    filled += chunk.len() as u64;
                }
                let _ = file.sync_all();
                let hold = rng.millis(2_000, 6_000);
                schedule.lock().unwrap().log(
                    "buffer-disk-full",
                    format!("agent 0, {} KiB filler, held {hold:?}", filled / 1024),
                );
                std::thread::sleep(hold);
                drop(file);
                let _ = fs::remove_file(&filler);
            }
        }
    }

    // Heal and drain.
    for writer in &writers {
        writer.stop.store(true, Ordering::Relaxed);
    }
    for thread in writer_threads {
        thread.join().expect("writer");
    }
    garbage_stop.store(true, Ordering::Relaxed);
    garbage.join().expect("garbage thread");
    let collector = collector.expect("collector running");
    let written: Vec<u64> = writers
        .iter()
        .map(|w| w.written.load(Ordering::Relaxed))
        .collect();
    let total_written: u64 = written.iter().sum();
    eprintln!("chaos: writers done, {total_written} lines; draining");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (total, _) = collector.search("category:authentication", 1);
        if total >= total_written || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    sample(&agents, Some(&collector), &mut samples);

    // The count.
    let (all_total, _) = collector.search("*", 1);
    let events = collector.all("*");
    let mut seen: BTreeMap<(usize, u64), usize> = BTreeMap::new();
    let mut foreign = Vec::new();
    for event in &events {
        let summary = event["summary"].as_str().unwrap_or("");
        let marker = summary
            .rsplit("chaos-")
            .next()
            .filter(|_| summary.contains("chaos-"))
            .and_then(|m| m.split_once('-'))
            .and_then(|(a, n)| Some((a.parse::<usize>().ok()?, n.parse::<u64>().ok()?)));
        match marker {
            Some(key) => *seen.entry(key).or_insert(0) += 1,
            None => foreign.push(summary.to_string()),
        }
    }
    let mut lost = Vec::new();
    for (a, n) in written.iter().enumerate() {
        for i in 0..*n {
            if !seen.contains_key(&(a, i)) {
                lost.push((a, i));
            }
        }
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    // The last collector may have started after most of the garbage: it is sent a few
    // of each kind that it must count.
    let client = garbage_client();
    for kind in 0..3 {
        for _ in 0..FINAL_GARBAGE {
            let name = send_garbage(&client, port, kind);
            *garbage_sent.lock().unwrap().entry(name).or_insert(0) += 1;
        }
    }
    let last = refusals(&base_url);
    add(&mut refused, last);
    let [refused_json, refused_large, refused_token] = refused;
    let schedule = schedule.lock().unwrap();
    let sent = garbage_sent.lock().unwrap();
    eprintln!("chaos: seed {}", options.seed);
    eprintln!("chaos: lines written by agent {written:?}, stored {all_total} documents");
    eprintln!("chaos: faults {:?}", schedule.counts);
    eprintln!(
        "chaos: garbage sent {:?}; refused (all collectors): not JSON {refused_json}, too large {refused_large}, wrong token {refused_token}; by the last collector {last:?} (at least {FINAL_GARBAGE} each)",
        *sent
    );
    for (when, row) in [("start", samples.first()), ("end", samples.last())] {
        if let Some(row) = row {
            eprintln!("chaos: footprint at the {when}: {row}");
        }
    }
    let ok = lost.is_empty()
        && doubled.is_empty()
        && foreign.is_empty()
        && all_total as usize == events.len()
        && events.len() as u64 == total_written
        && last.iter().all(|n| *n >= FINAL_GARBAGE);
    if !ok {
        eprintln!("chaos: FAILED with seed {}", options.seed);
        eprintln!("schedule:\n{}", schedule.entries.join("\n"));
        eprintln!(
            "lost {} (first {:?}), doubled {} (first {:?}), foreign {} (first {:?}), search total {all_total} vs {} distinct ids",
            lost.len(),
            &lost[..lost.len().min(20)],
            doubled.len(),
            &doubled[..doubled.len().min(20)],
            foreign.len(),
            &foreign[..foreign.len().min(5)],
            events.len()
        );
        if let Some(state) = &tmpfs {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(state)
                .status();
        }
        std::process::exit(1);
    }
    eprintln!("chaos: passed: {total_written} lines, each stored once; lost 0, doubled 0");
    drop(agents);
    drop(collector);
    if let Some(state) = &tmpfs {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(state)
            .status();
    }
}
