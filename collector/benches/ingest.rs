//! Ingest benchmark: a real `picket-collector` process (this bench's build of it, on
//! the embedded store, default settings but the listen address and no per-address
//! connection limit: every connection comes from 127.0.0.1)
//! takes EVENTS events from CONNS connections held open on loopback, each POSTing
//! NDJSON batches of BATCH events one after another and waiting for each answer
//! (answers come once the events are in the store's write-ahead log; a 503 with
//! `Retry-After` is waited out and the batch sent again, as the agent does).
//!
//!   cargo bench -p picket-collector --bench ingest
//!   EVENTS=1000000 CONNS=1000 BATCH=100 cargo bench -p picket-collector --bench ingest
//!
//! Prints events stored per second, request latency percentiles, the requests refused
//! as busy, how long after the last answer a search saw every event (the searchable
//! lag), and the collector's CPU seconds (user+system) and peak RSS. COLLECTOR_BIN runs
//! another build (an older commit's, for a before/after in one run); STORE_KEYS sets
//! keys of `[collector.stores.embedded]` (`commit_interval_ms = 1000;acknowledge = "indexed"`);
//! SLOTS sets `max_concurrent_requests` (default: the collector's own, 64, the rest
//! queued before their bodies are read; builds older than that queue refuse what is
//! over their cap, so give them SLOTS=2000, every request at once). The load generator is one thread of its own
//! (a current-thread runtime), sharing the machine's cores with the collector.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raises this process's open-file limit to the hard limit (1,000 sockets need it).
fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn proc_stat(pid: u32) -> (f64, f64) {
    let hz = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the ")": state is field 0, utime 11, stime 12.
    let cpu = (ticks(11) + ticks(12)) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm_kib / 1024.0)
}

/// One connection's requests: the NDJSON bodies it sends.
fn bodies(connection: usize, events: usize, batch: usize, day: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut n = 0;
    while n < events {
        let mut body = Vec::with_capacity(batch * 320);
        for _ in 0..batch.min(events - n) {
            let id = connection * events + n;
            let t = id % 86_400;
            let _ = writeln!(
                body,
                r#"{{"eventid":"{id:032x}","utctimestamp":"{day}T{:02}:{:02}:{:02}+00:00","hostname":"host{connection}.example.org","processname":"sshd","processid":{n},"severity":"INFO","category":"authentication","source":"bench","tags":["bench"],"summary":"Failed password for root from 192.0.2.{} port 22 ssh2","details":{{"sourceipaddress":"192.0.2.{}","username":"root","success":false}}}}"#,
                t / 3600,
                t / 60 % 60,
                t % 60,
                id % 250,
                id % 250
            );
            n += 1;
        }
        out.push(body);
    }
    out
}

/// Sends the bodies one after another on one kept-alive connection; returns each
/// request's latency and the events the collector said it stored.
async fn connection(port: u16, bodies: Vec<Vec<u8>>) -> (Vec<Duration>, usize, usize) {
    let mut retries = 0;
    let (latencies, stored) = send_all(port, bodies, &mut retries).await;
    (latencies, stored, retries)
}

async fn send_all(port: u16, bodies: Vec<Vec<u8>>, retries: &mut usize) -> (Vec<Duration>, usize) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = stream.set_nodelay(true);
    let mut latencies = Vec::with_capacity(bodies.len());
    let mut stored = 0;
    let mut buffer = Vec::with_capacity(4096);
    for (index, body) in bodies.into_iter().enumerate() {
        let head = format!(
            "POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let started = Instant::now();
        let (header_end, length) = loop {
            stream.write_all(head.as_bytes()).await.expect("write");
            stream.write_all(&body).await.expect("write");
            let (header_end, length, busy) = read_head(&mut stream, &mut buffer, index).await;
            while buffer.len() < header_end + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the collector closed the connection");
                buffer.extend_from_slice(&chunk[..n]);
            }
            match busy {
                None => break (header_end, length),
                Some(wait) => {
                    *retries += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        };
        latencies.push(started.elapsed());
        let answer: serde_json::Value =
            serde_json::from_slice(&buffer[header_end..header_end + length]).expect("JSON answer");
        stored += answer["stored"].as_u64().unwrap_or(0) as usize;
    }
    (latencies, stored)
}

/// Reads an answer's head into `buffer` (emptied first): where the body starts, its
/// length, and for a 503 the wait its `Retry-After` asks for.
async fn read_head(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
    index: usize,
) -> (usize, usize, Option<Duration>) {
    buffer.clear();
    {
        // Headers, then Content-Length bytes of body.
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream
                .read(&mut chunk)
                .await
                .unwrap_or_else(|e| panic!("read the answer to request {index}: {e}"));
            assert!(n > 0, "the collector closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let length = header("content-length:")
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("content-length");
                let busy = if head.starts_with("http/1.1 503") {
                    let secs = header("retry-after:").and_then(|v| v.parse::<u64>().ok());
                    Some(Duration::from_secs(secs.expect("a 503 says when to retry")))
                } else {
                    assert!(head.starts_with("http/1.1 200"), "{head}");
                    None
                };
                return (end + 4, length, busy);
            }
        }
    }
}

/// How long after now a search finds `stored` events (the collector's own read token).
fn searchable_lag(port: u16, token_file: &std::path::Path, stored: usize) -> Option<Duration> {
    let token = std::fs::read_to_string(token_file).ok()?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let request = format!(
            "GET /api/events?q=*&size=1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
            token.trim()
        );
        s.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let total = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["total"].as_u64());
        if total == Some(stored as u64) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn main() {
    let events = env("EVENTS", 1_000_000);
    let conns = env("CONNS", 1_000);
    let batch = env("BATCH", 100);
    raise_nofile();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keep = dir.path().to_path_buf();
    std::panic::set_hook(Box::new(move |info| {
        let log = std::fs::read_to_string(keep.join("collector.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("{info}\n--- collector log (last lines) ---");
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\ndata_dir = {:?}\n[collector.http]\nlisten = \"127.0.0.1:{port}\"\n{}max_connections_per_address = 0\n{}",
            dir.path().join("data").display().to_string(),
            std::env::var("SLOTS")
                .map(|slots| format!("max_concurrent_requests = {slots}\n"))
                .unwrap_or_default(),
            std::env::var("STORE_KEYS")
                .map(|keys| format!("[collector.stores.embedded]\n{}\n", keys.replace(';', "\n")))
                .unwrap_or_default()
        ),
    )
    .expect("config");
    let log = std::fs::File::create(dir.path().join("collector.log")).expect("log");
    let binary = std::env::var("COLLECTOR_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_picket-collector").to_string());
    let mut collector = Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the collector");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the collector did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let per_connection = events / conns;
    // Yesterday's events (UTC): a day behind, as a fleet's backlog is, and one of the
    // days the store keeps an id filter for.
    let day = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let work: Vec<Vec<Vec<u8>>> = (0..conns)
        .map(|c| bodies(c, per_connection, batch, &day))
        .collect();
    let (cpu_before, _) = proc_stat(collector.id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = work
            .into_iter()
            .map(|bodies| tokio::spawn(connection(port, bodies)))
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.expect("a connection task"));
        }
        results
    });
    let elapsed = started.elapsed();
    let stored: usize = results.iter().map(|r| r.1).sum();
    let retries: usize = results.iter().map(|r| r.2).sum();
    let lag = searchable_lag(port, &dir.path().join("data/read.token"), stored);
    let (cpu_after, rss) = proc_stat(collector.id());
    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.0.clone()).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "collector ingest: {stored} events stored from {conns} connections, batches of {batch}"
    );
    println!(
        "  {:.0} events/s stored ({:.2} s)",
        stored as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  request latency p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!("  requests refused as busy (503, resent): {retries}");
    match lag {
        Some(lag) => println!("  searchable {} ms after the last answer", lag.as_millis()),
        None => {
            println!("  searchable lag: not measured (no read token, or not all found in 60 s)")
        }
    }
    println!(
        "  collector CPU {:.2} s ({:.1} µs per event), peak RSS {:.1} MiB",
        cpu_after - cpu_before,
        (cpu_after - cpu_before) * 1e6 / stored.max(1) as f64,
        rss
    );
    // SAFETY: SIGTERM to the child we started.
    unsafe {
        libc::kill(collector.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = collector.wait();
}
