//! `cargo bench -p picket-agent --bench file_input`: lines per second the file input
//! reads (read, split, parse into events) from one large file, with nothing
//! downstream but a counter. The file is the standard workload
//! (`../shared/bench/gen_authlog.py`, seed 42) repeated to `PICKET_BENCH_FILE_MIB`
//! (default 1024) MiB, written once under `target/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picket_agent::checkpoint::CheckpointStore;
use picket_agent::config::{FileInputSettings, StartAt};
use picket_agent::host::HostIdentity;
use picket_agent::inputs::file::FileInput;
use picket_agent::inputs::file::discover::Discovery;
use picket_agent::metrics::Metrics;
use picket_agent::parsers::{LineParser, TimeZoneChoice};

mod support;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn big_file(mib: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join(format!("target/bench-file-{mib}MiB.log"));
    if out.exists() {
        return out;
    }
    let block = std::fs::read(support::standard_workload("200000")).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out).unwrap());
    let mut written = 0u64;
    while written < mib * 1024 * 1024 {
        file.write_all(&block).unwrap();
        written += block.len() as u64;
    }
    file.flush().unwrap();
    out
}

fn main() {
    let mib: u64 = std::env::var("PICKET_BENCH_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let path = big_file(mib);
    let bytes = std::fs::metadata(&path).unwrap().len();
    let state = tempfile::tempdir().unwrap();
    let input = FileInput {
        settings: FileInputSettings {
            discovery: Discovery::build(std::slice::from_ref(&path), &[], false).unwrap(),
            start_at: StartAt::Beginning,
            poll_interval: Duration::from_millis(250),
            scan_interval: Duration::from_secs(10),
            rotated_idle: Duration::from_secs(5),
            partial_flush: Duration::from_secs(5),
            max_line_bytes: 64 * 1024,
        },
        parser: LineParser::new(
            HostIdentity::named("bench.example.com"),
            TimeZoneChoice::parse("UTC").unwrap(),
        ),
        checkpoints: Arc::new(Mutex::new(CheckpointStore::load(state.path()).unwrap())),
        metrics: Arc::new(Metrics::default()),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let started = Instant::now();
    let reader = std::thread::spawn(move || input.run(tx, thread_stop));
    let mut lines = 0u64;
    let want = {
        let text = std::fs::read(&path).unwrap();
        text.iter().filter(|b| **b == b'\n').count() as u64
    };
    let started_reading = Instant::now();
    while lines < want {
        match rx.blocking_recv() {
            Some(chunk) => lines += chunk.len() as u64,
            None => break,
        }
    }
    let elapsed = started_reading.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(rx);
    let _ = reader.join();
    let _ = started;
    println!(
        "file input: {lines} lines, {:.0} MiB in {elapsed:.2} s = {:.0} lines/s, {:.1} MiB/s (read + split + parse, one thread)",
        bytes as f64 / 1048576.0,
        lines as f64 / elapsed,
        bytes as f64 / 1048576.0 / elapsed
    );
}
