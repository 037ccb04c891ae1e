//! The collector storing into real OpenSearch (`bench/opensearch.sh`): a release
//! `picket-collector` on the Elasticsearch store, in front of 1 or 3 OpenSearch 2.19.6
//! nodes (`picket_tests::opensearch`, 512 MiB heap each; the template's one replica
//! is unassigned on one node, kept on another with three), takes EVENTS
//! events POSTed as NDJSON batches of BATCH by CONNS threads, each waiting for its
//! answer (answered after the cluster acknowledged every document).
//!
//! ```text
//! cargo run --release -p picket-tests --example opensearch_bench -- NODES [EVENTS [CONNS [BATCH]]]
//! ```
//!
//! The events are the shared benchmark workload (`../shared/bench/gen_authlog.py --seed
//! 42`) through the agent's parser, made before the clock starts. Prints events stored
//! per second, the collector's CPU µs per event and the OpenSearch JVMs' (user+system,
//! from /proc/PID/stat), and checks the cluster holds every event. The last line,
//! `RESULT …`, is what `bench/all.sh` puts in BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use picket_tests::opensearch::OpenSearch;
use picket_tests::{Collector, CollectorOptions, cpu_seconds, http, workspace_root};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (nodes, events, conns, batch) = (arg(0, 1), arg(1, 200_000), arg(2, 4), arg(3, 1000));
    let dir = tempfile::tempdir().expect("temp dir");

    // The workload, parsed as the agent ships it.
    let log = dir.path().join("auth.log");
    let status = std::process::Command::new("python3")
        .arg(workspace_root().join("../shared/bench/gen_authlog.py"))
        .args(["-n", &events.to_string(), "--seed", "42", "-o"])
        .arg(&log)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("python3 runs ../shared/bench/gen_authlog.py");
    assert!(status.success(), "gen_authlog.py failed");
    let parser = LineParser::new(
        HostIdentity::named("bench.example.com"),
        TimeZoneChoice::parse("UTC").unwrap(),
    );
    let read_at: DateTime<Utc> = Utc::now();
    let text = std::fs::read_to_string(&log).expect("workload");
    let mut bodies: Vec<String> = Vec::new();
    let mut body = String::new();
    for (i, line) in text.lines().enumerate() {
        let context = LineContext {
            source: "/var/log/auth.log",
            source_identity: "bench",
            offset: i as u64,
            read_at,
        };
        body.push_str(&serde_json::to_string(&parser.parse(line.as_bytes(), &context)).unwrap());
        body.push('\n');
        if (i + 1) % batch == 0 {
            bodies.push(std::mem::take(&mut body));
        }
    }
    if !body.is_empty() {
        bodies.push(body);
    }

    let cluster = OpenSearch::cluster(&dir.path().join("opensearch"), nodes);
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            extra: format!(
                "[collector.stores.elasticsearch]\nurls = [{}]\n",
                urls.join(", ")
            ),
            ..CollectorOptions::default()
        },
    );
    // Templates, aliases and today's indices first: not part of the measurement.
    let warm = http()
        .post(collector.events_url())
        .body("{\"summary\":\"warm-up\"}")
        .send()
        .expect("warm-up");
    assert!(warm.status().is_success(), "warm-up: {}", warm.status());

    let pids: Vec<u32> = cluster.nodes.iter().filter_map(|n| n.pid()).collect();
    let collector_pid = collector.service.pid().expect("collector pid");
    let (collector_cpu, cluster_cpu) = (
        cpu_seconds(collector_pid),
        pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>(),
    );
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (bodies, next, url) = (
                Arc::clone(&bodies),
                Arc::clone(&next),
                collector.events_url(),
            );
            std::thread::spawn(move || {
                let client = http();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { return };
                    loop {
                        let answer = client
                            .post(&url)
                            .header("content-type", "application/x-ndjson")
                            .body(body.clone())
                            .send();
                        match answer {
                            Ok(r) if r.status().is_success() => break,
                            Ok(r) => eprintln!("batch {i}: {}; again", r.status()),
                            Err(e) => eprintln!("batch {i}: {e}; again"),
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("sender");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let collector_cpu = cpu_seconds(collector_pid) - collector_cpu;
    let cluster_cpu = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cluster_cpu;
    // All but the warm-up event.
    let stored = cluster
        .count("events-*", &serde_json::json!({ "match_all": {} }))
        .saturating_sub(1);
    let per_s = events as f64 / elapsed;
    println!(
        "collector → OpenSearch ({nodes} node{}): {events} events in {elapsed:.1} s = {per_s:.0} events/s stored; \
         collector CPU {collector_cpu:.1} s ({:.1} µs per event); OpenSearch CPU {cluster_cpu:.1} s ({:.1} µs per event); \
         {stored} in the cluster",
        if nodes == 1 { "" } else { "s" },
        collector_cpu * 1e6 / events as f64,
        cluster_cpu * 1e6 / events as f64,
    );
    assert_eq!(
        stored, events as u64,
        "the cluster holds {stored} of {events}"
    );
    println!(
        "RESULT nodes={nodes} events={events} events_per_s={per_s:.0} collector_cpu_us={:.1} opensearch_cpu_us={:.1} stored={stored}",
        collector_cpu * 1e6 / events as f64,
        cluster_cpu * 1e6 / events as f64
    );
}
