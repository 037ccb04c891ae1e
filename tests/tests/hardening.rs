//! Attacks on a real `picket-collector` process, one test a class of attack (issue 27):
//! each performs the attack on loopback and checks the collector refuses it the way
//! the README's security section says, and still serves afterwards.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use picket_tests::pki::{CLIENT_NAME, Pki};
use picket_tests::{Collector, CollectorOptions, binary, http};
use serde_json::{Value, json};

fn options(http_keys: &str) -> CollectorOptions {
    CollectorOptions {
        http_keys: http_keys.to_string(),
        ..Default::default()
    }
}

/// `GET path` with the read token: (status, JSON body).
fn read(collector: &Collector, path: &str) -> (u16, Value) {
    let response = http()
        .get(format!("{}{path}", collector.base_url))
        .bearer_auth(collector.read_token())
        .send()
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn post(
    collector: &Collector,
    path: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, Value) {
    let response = http()
        .post(format!("{}{path}", collector.base_url))
        .body(body)
        .send()
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn assert_serves(collector: &mut Collector) {
    assert!(
        collector.service.running(),
        "collector died:\n{}",
        collector.service.log()
    );
    let status = http()
        .get(format!("{}/status", collector.base_url))
        .send()
        .map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(200), "{}", collector.service.log());
}

/// A line of `/proc/<pid>/status` in kB (VmHWM, VmRSS) or a count (Threads).
fn proc_status(collector: &Collector, key: &str) -> u64 {
    let pid = collector.service.pid().expect("pid");
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn event(id: &str, timestamp: &str, summary: &str) -> Value {
    json!({"eventid": id, "timestamp": timestamp, "hostname": "h1", "summary": summary,
           "category": "authentication", "details": {"username": "root"}})
}

#[test]
fn deep_queries_and_aggregations_are_refused_not_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let parens = format!("{}a{}", "(".repeat(2_500), ")".repeat(2_500));
    let (status, body) = read(&collector, &format!("/api/events?q={}", urlencode(&parens)));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("limit of 64"),
        "{body}"
    );
    let deeper = format!("{}a{}", "(".repeat(3_000), ")".repeat(3_000));
    let (status, body) = collector.search_json(&json!({ "query": deeper }));
    assert_eq!(status, 400, "{body}");
    let nots = "NOT ".repeat(50_000) + "a";
    let (status, body) = collector.search_json(&json!({ "query": nots }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bytes"), "{body}");
    let nots = "NOT ".repeat(2_000) + "a";
    let (status, body) = collector.search_json(&json!({ "query": nots }));
    assert_eq!(status, 400, "{body}");
    let nested = |levels: usize| {
        let mut aggs = json!({"terms": {"field": "hostname"}});
        for _ in 0..levels {
            aggs = json!({"terms": {"field": "hostname"}, "aggs": {"n": aggs}});
        }
        json!({ "size": 0, "aggs": {"top": aggs} })
    };
    let (status, body) = collector.search_json(&nested(20));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("levels"), "{body}");
    // Deeper still, the JSON reader's own limit answers first.
    let (status, body) = collector.search_json(&nested(100));
    assert_eq!(status, 400, "{body}");
    // A query the engine cannot run is a 400 too, never a 503.
    let (status, _) = post(
        &collector,
        "/events",
        event(
            "abcdefabcdefabcdefabcdefabcdefab",
            "2026-11-22T08:00:00Z",
            "one",
        )
        .to_string(),
    );
    assert_eq!(status, 200);
    for query in ["processid:abc", "details.sourceport:[1 TO x]", "(("] {
        let (status, body) = collector.search_json(&json!({ "query": query }));
        assert_eq!(status, 400, "{query}: {body}");
    }
    // `eventid:*` (refused before `_exists_` was read) is every event, as on
    // Elasticsearch.
    let (status, body) = collector.search_json(&json!({ "query": "eventid:*" }));
    assert_eq!((status, body["total"].clone()), (200, json!(1)), "{body}");
    assert_serves(&mut collector);
    assert!(
        !collector.service.log().contains("ERROR"),
        "{}",
        collector.service.log()
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_gzip_body_of_millions_of_bad_lines_costs_a_small_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let gzip = |text: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    };
    // 5,000,000 broken lines: 10 MB inflated from ~10 KB.
    let bomb = gzip(&b"x\n".repeat(5_000_000));
    assert!(bomb.len() < 50_000, "{}", bomb.len());
    let response = http()
        .post(collector.events_url())
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .unwrap();
    // Over max_events_per_request: refused at the 100,001st item, in a few bytes.
    assert_eq!(response.status().as_u16(), 413);
    let text = response.text().unwrap();
    assert!(text.len() < 10_000, "a {} byte answer", text.len());
    assert!(text.contains("max_events_per_request"), "{text}");
    // One good event among 50,000 bad ones: stored, 100 named, all counted.
    let mut body = event(
        "1b0c9b6a5e3f4d2c8a7b6c5d4e3f2a1b",
        "2026-11-22T08:00:00Z",
        "good",
    )
    .to_string()
    .into_bytes();
    body.push(b'\n');
    body.extend(b"{broken\n".repeat(50_000));
    let response = http()
        .post(collector.events_url())
        .header("content-encoding", "gzip")
        .body(gzip(&body))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["stored"], 1, "{answer}");
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 100);
    assert_eq!(answer["rejected_count"], 50_000);
    let peak_mib = proc_status(&collector, "VmHWM:") / 1024;
    assert!(peak_mib < 400, "peak RSS {peak_mib} MiB");
    assert_serves(&mut collector);
}

#[test]
fn a_batch_of_many_days_opens_few_indices_and_far_times_are_retimed() {
    let dir = tempfile::tempdir().unwrap();
    // An older collector (no window) left a day two years ahead.
    let future_day = chrono::Utc::now() + chrono::Duration::days(730);
    let future_key = future_day.format("%Y%m%d").to_string();
    let ahead = dir.path().join("data/events").join(&future_key);
    fs::create_dir_all(&ahead).unwrap();
    // With the default window, retention takes it at start-up.
    let mut collector = Collector::start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while ahead.exists() {
        assert!(
            Instant::now() < deadline,
            "the day ahead was not pruned:\n{}",
            collector.service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let threads_before = proc_status(&collector, "Threads:");
    // 200 distinct days within the window, in one batch.
    let now = chrono::Utc::now();
    let batch: Vec<Value> = (0..200)
        .map(|i| {
            let at = now - chrono::Duration::days(i + 1);
            event(
                &format!("{:032x}", 0x1000 + i),
                &mozdef::time::format_utc(at),
                "past",
            )
        })
        .collect();
    let (status, body) = post(&collector, "/events", Value::Array(batch).to_string());
    assert_eq!(
        (status, body["stored"].clone()),
        (200, json!(200)),
        "{body}"
    );
    let threads = proc_status(&collector, "Threads:");
    assert!(
        threads < threads_before + 40,
        "{threads_before} -> {threads} threads"
    );
    // 1,000 days far outside the window: timed at reception, one index.
    let days_before = fs::read_dir(dir.path().join("data/events"))
        .unwrap()
        .count();
    let batch: Vec<Value> = (0..1_000)
        .map(|i| {
            event(
                &format!("{:032x}", 0x9000 + i),
                &format!("{}-01-01T00:00:00Z", 1000 + i),
                "far",
            )
        })
        .collect();
    let (status, body) = post(&collector, "/events", Value::Array(batch).to_string());
    assert_eq!(
        (status, body["stored"].clone()),
        (200, json!(1_000)),
        "{body}"
    );
    let days_after = fs::read_dir(dir.path().join("data/events"))
        .unwrap()
        .count();
    assert!(
        days_after <= days_before + 1,
        "{days_before} -> {days_after} day indices"
    );
    let (total, hits) = collector.search("summary:far", 1);
    assert_eq!(total, 1_000);
    assert!(
        hits[0]["details"]["timestamperror"]
            .as_str()
            .unwrap()
            .contains("-01-01")
    );
    let metrics = metrics(&collector);
    assert!(
        metrics.contains("picket_events_retimed_total 1000"),
        "{metrics}"
    );
    // Times the index cannot hold do not wrap around: `to` far ahead finds everything.
    let (status, body) = read(
        &collector,
        "/api/events?q=summary:past&to=99999999999&size=1",
    );
    assert_eq!((status, body["total"].clone()), (200, json!(200)), "{body}");
    assert_serves(&mut collector);
}

fn metrics(collector: &Collector) -> String {
    http()
        .get(format!("{}/metrics", collector.base_url))
        .bearer_auth(collector.read_token())
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn a_stored_event_cannot_be_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let id = "c0ffee00c0ffee00c0ffee00c0ffee00";
    let first = event(id, "2026-11-22T08:00:00Z", "the real line");
    let (status, body) = post(&collector, "/events", first.to_string());
    assert_eq!(status, 200, "{body}");
    let forged = event(id, "2026-11-22T08:00:00Z", "nothing happened here");
    let (status, body) = post(&collector, "/events", forged.to_string());
    assert_eq!(status, 409, "{body}");
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already stored"),
        "{body}"
    );
    // An identical resend is a success that stores nothing new.
    let (status, body) = post(&collector, "/events", first.to_string());
    assert_eq!((status, body["stored"].clone()), (200, json!(1)), "{body}");
    let (total, hits) = collector.search(&format!("eventid:{id}"), 10);
    assert_eq!(total, 1);
    assert_eq!(hits[0]["summary"], "the real line");
    assert!(metrics(&collector).contains("picket_events_rejected_total{reason=\"conflict\"} 1"));
    assert_serves(&mut collector);
}

#[test]
fn reads_need_a_reader_and_shippers_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    // No tokens file (the default): sending is open, searching is not.
    let collector = Collector::start(&dir.path().join("open"));
    let (status, _) = post(
        &collector,
        "/events",
        event(
            "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0",
            "2026-11-22T08:00:00Z",
            "x",
        )
        .to_string(),
    );
    assert_eq!(status, 200);
    let anonymous = http()
        .get(format!("{}/api/events?q=*", collector.base_url))
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let alerts = http()
        .get(format!("{}/api/alerts", collector.base_url))
        .send()
        .unwrap();
    assert_eq!(alerts.status().as_u16(), 401);
    let mode = fs::metadata(dir.path().join("open/data/read.token")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // The CLI finds the read token through the config.
    let output = std::process::Command::new(binary("picket-collector"))
        .arg("--config")
        .arg(&collector.config)
        .args(["search", "*", "--url", &collector.base_url])
        .env_remove("PICKET_TOKEN")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 of 1"));

    // With a tokens file: the shipper sends, only the reader reads; any scheme case.
    let tokens = dir.path().join("tokens");
    fs::write(
        &tokens,
        "shipper-token-0123456789\nreader-token-0123456789 reader\n",
    )
    .unwrap();
    let collector = Collector::start_with(
        &dir.path().join("tokens-dir"),
        &CollectorOptions {
            tokens_file: Some(tokens),
            ..Default::default()
        },
    );
    let send = |token: &str| {
        http()
            .post(collector.events_url())
            .header("authorization", format!("BEARER {token}"))
            .body(
                event(
                    "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0",
                    "2026-11-22T08:00:00Z",
                    "y",
                )
                .to_string(),
            )
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(send("reader-token-0123456789"), 403);
    assert_eq!(send("shipper-token-0123456789"), 200);
    let search = |token: &str| {
        http()
            .get(format!("{}/api/events?q=*", collector.base_url))
            .header("authorization", format!("bearer {token}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(search("shipper-token-0123456789"), 403);
    assert_eq!(search("reader-token-0123456789"), 200);
    assert_eq!(search(collector.read_token()), 200);
}

#[test]
fn idle_slow_and_crowding_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    // The header timeout is longer than the idle timeout: hyper (1.6+) also applies it
    // to a keep-alive connection waiting for its next request, and with both at 2 s the
    // two raced to close the idle connection (the idle counter then stayed 0).
    let mut collector = Collector::start_with(
        dir.path(),
        &options(
            "idle_timeout_secs = 2\nheader_timeout_secs = 4\nmax_concurrent_requests = 16\nqueue_timeout_ms = 1000\nmax_connections_per_address = 64\nmin_body_bytes_per_sec = 1024\n",
        ),
    );
    let address = collector.base_url.trim_start_matches("http://").to_string();
    let closed_within = |stream: &mut TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut buffer = [0u8; 4096];
        let started = Instant::now();
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return started.elapsed() < limit,
            }
        }
    };
    // An idle keep-alive connection after one request.
    let mut idle = TcpStream::connect(&address).unwrap();
    write!(idle, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)),
        "idle connection kept open"
    );
    // Headers that never end.
    let mut partial = TcpStream::connect(&address).unwrap();
    write!(partial, "POST /events HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(
        closed_within(&mut partial, Duration::from_secs(6)),
        "half-sent headers kept open"
    );

    // Trickling bodies on every slot: health checks still answer at once, and the
    // trickles are cut off after the grace period.
    let mut trickles: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            write!(
                s,
                "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{"
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_serves(&mut collector);
    assert!(started.elapsed() < Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut cut = 0;
    for stream in &mut trickles {
        let _ = stream.write_all(b" ");
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 503") {
            cut += 1;
        }
    }
    assert_eq!(
        cut,
        trickles.len(),
        "every trickling body answered 408 (or 503 over the cap)"
    );
    drop(trickles);
    let (status, _) = post(
        &collector,
        "/events",
        event(
            "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
            "2026-11-22T08:00:00Z",
            "after",
        )
        .to_string(),
    );
    assert_eq!(status, 200);

    // One address may hold 64 connections; the 65th is closed at once.
    let mut held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&address).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "a 65th connection was kept"
    );
    held.clear();
    std::thread::sleep(Duration::from_millis(300));
    let metrics = metrics(&collector);
    assert!(
        metrics.contains("picket_requests_refused_total{reason=\"slow_body\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("picket_requests_refused_total{reason=\"connection_limit\"} 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("picket_requests_refused_total{reason=\"idle\"} 0"),
        "{metrics}"
    );
    assert!(
        collector
            .service
            .log()
            .contains("max_connections_per_address")
    );
    assert_serves(&mut collector);
}

#[test]
fn identities_come_from_certificates_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let mut collector = Collector::start_with(
        &dir.path().join("c"),
        &CollectorOptions {
            tls: Some(pki.clone()),
            client_certificates: true,
            ..Default::default()
        },
    );
    let client = |cert: &std::path::Path, key: &std::path::Path| {
        let mut identity = fs::read(cert).unwrap();
        identity.extend(fs::read(key).unwrap());
        reqwest::blocking::Client::builder()
            .tls_certs_only(
                reqwest::Certificate::from_pem_bundle(&fs::read(&pki.ca).unwrap()).unwrap(),
            )
            .identity(reqwest::Identity::from_pem(&identity).unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let named = client(&pki.client_cert, &pki.client_key);
    let spoof =
        json!({"summary": "spoof", "hostname": "h9", "details": {"agentidentity": "someone-else"}});
    for path in ["/events", "/custom/firewall", "/_bulk"] {
        let response = named
            .post(format!("{}{path}", collector.base_url))
            .body(spoof.to_string())
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let (total, hits) = collector.search("hostname:h9", 10);
    assert_eq!(total, 3);
    for hit in &hits {
        assert_eq!(hit["details"]["agentidentity"], CLIENT_NAME, "{hit}");
    }
    // A certificate our CA signed that names nobody does not get in.
    let nameless = client(&pki.nameless_cert, &pki.nameless_key);
    let refused = nameless
        .post(collector.events_url())
        .body(spoof.to_string())
        .send();
    assert!(
        refused.is_err(),
        "a nameless certificate was let in: {refused:?}"
    );
    assert!(collector.service.log().contains("names nobody"));
    assert!(collector.service.running());
    let status = named
        .get(format!("{}/status", collector.base_url))
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

#[test]
fn answers_are_bounded_and_the_low_ones_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector =
        Collector::start_with(dir.path(), &options("max_response_bytes = 2097152\n"));
    let blob = "x".repeat(500_000);
    for i in 0..12 {
        let mut e = event(
            &format!("{:032x}", 0xb000 + i),
            "2026-11-22T08:00:00Z",
            "big",
        );
        e["details"]["blob"] = json!(blob);
        let (status, body) = post(&collector, "/events", e.to_string());
        assert_eq!(status, 200, "{body}");
    }
    let response = http()
        .get(format!(
            "{}/api/events?q=summary:big&size=200",
            collector.base_url
        ))
        .bearer_auth(collector.read_token())
        .send()
        .unwrap();
    let text = response.text().unwrap();
    assert!(text.len() < 3 * 1024 * 1024, "{} bytes", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["total"], 12);
    assert_eq!(body["truncated"], true);
    assert!(body["hits"].as_array().unwrap().len() < 12);

    // NUL in a host name: refused by position, the rest stored.
    let (status, body) = post(
        &collector,
        "/events",
        json!([{"summary": "nul", "hostname": "a\u{0}b"}, {"summary": "ok", "hostname": "fine"}])
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"][0]["position"], 0);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("control character")
    );
    // Trailing wildcards find what they name.
    let (total, _) = collector.search("hostname:fi*", 10);
    assert_eq!(total, 1);
    assert_serves(&mut collector);
}
