//! `cargo bench -p picket-agent --bench syslog_input`: messages per second the syslog
//! listener takes (receive, frame, parse into events) over TCP (LF and octet-counted
//! framing, several connections) and UDP, with nothing downstream but a counter — the
//! same measure as the `file_input` bench, on the same workload
//! (`../shared/bench/gen_authlog.py`, seed 42, each line behind a `<38>` PRI), so the
//! two compare. Also the listener thread's CPU per message (from
//! `/proc/self/task/*/stat`), and for UDP the datagrams the kernel dropped.
//!
//! `PICKET_BENCH_SYSLOG_MESSAGES` (default 2,000,000 per TCP run, a quarter of that
//! over UDP), `PICKET_BENCH_SYSLOG_CONNECTIONS` (default 4),
//! `PICKET_BENCH_SYSLOG_ONLY` (`tcp` or `udp`).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use picket_agent::config::SyslogInputConfig;
use picket_agent::host::HostIdentity;
use picket_agent::inputs::syslog::config::Transport;
use picket_agent::inputs::syslog::{Sockets, SyslogInput};
use picket_agent::metrics::Metrics;
use picket_agent::parsers::TimeZoneChoice;

mod support;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The standard workload's lines, each behind `<38>` (auth.info).
fn workload() -> Vec<Vec<u8>> {
    std::fs::read(support::standard_workload("200000"))
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut message = b"<38>".to_vec();
            message.extend_from_slice(line);
            message
        })
        .collect()
}

/// CPU seconds (user + system) of this process's thread named `name`.
fn thread_cpu(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is the 3rd field, utime the 14th, stime 15th.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        return (utime + stime) / ticks;
    }
    0.0
}

struct Listener {
    address: SocketAddr,
    metrics: Arc<Metrics>,
    events: tokio::sync::mpsc::Receiver<picket_agent::inputs::Chunk>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

fn listen(transport: Transport) -> Listener {
    let scheme = match transport {
        Transport::Udp => "udp",
        _ => "tcp",
    };
    let config: SyslogInputConfig = toml::from_str(&format!(
        "listen = [\"{scheme}://127.0.0.1:0\"]\nsender_hostname = \"address\"\n"
    ))
    .unwrap();
    let settings = config.build().unwrap().unwrap();
    let sockets = Sockets::default();
    let metrics = Arc::new(Metrics::default());
    let input = SyslogInput::new(
        settings.clone(),
        HostIdentity::named("bench.example.com"),
        TimeZoneChoice::parse("UTC").unwrap(),
        Arc::clone(&metrics),
        &sockets,
    )
    .unwrap();
    let address = sockets.local_addr(&settings.listen[0]).unwrap();
    // The pipeline's channel: two chunks.
    let (tx, events) = tokio::sync::mpsc::channel(2);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("syslog-input".into())
        .spawn(move || input.run(tx, thread_stop, || false))
        .unwrap();
    Listener {
        address,
        metrics,
        events,
        stop,
        thread,
    }
}

/// Counts events until `want` arrived or nothing came for `idle`; (events, seconds
/// from the first event to the last).
fn count(listener: &mut Listener, want: u64, idle: Duration) -> (u64, f64) {
    let mut got = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while got < want {
        match listener.events.try_recv() {
            Ok(chunk) => {
                first.get_or_insert_with(Instant::now);
                got += chunk.len() as u64;
                chunk.recycle();
                last = Instant::now();
            }
            Err(_) => {
                if first.is_some() && last.elapsed() > idle {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    (got, seconds)
}

fn finish(listener: Listener) -> Arc<Metrics> {
    listener.stop.store(true, Ordering::Relaxed);
    drop(listener.events);
    let _ = listener.thread.join();
    listener.metrics
}

fn tcp(lines: &[Vec<u8>], messages: usize, connections: usize, octet: bool) {
    let mut listener = listen(Transport::Tcp);
    let per = messages / connections;
    let cpu_before = thread_cpu("syslog-input");
    let senders: Vec<_> = (0..connections)
        .map(|c| {
            let address = listener.address;
            let lines: Vec<Vec<u8>> = lines.to_vec();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(address).unwrap();
                let mut out = Vec::with_capacity(1 << 17);
                for i in 0..per {
                    let line = &lines[(c * 7919 + i) % lines.len()];
                    if octet {
                        write!(out, "{} ", line.len()).unwrap();
                        out.extend_from_slice(line);
                    } else {
                        out.extend_from_slice(line);
                        out.push(b'\n');
                    }
                    if out.len() >= 1 << 16 {
                        stream.write_all(&out).unwrap();
                        out.clear();
                    }
                }
                stream.write_all(&out).unwrap();
            })
        })
        .collect();
    let want = (per * connections) as u64;
    let (got, seconds) = count(&mut listener, want, Duration::from_secs(5));
    for sender in senders {
        sender.join().unwrap();
    }
    let cpu = thread_cpu("syslog-input") - cpu_before;
    finish(listener);
    let framing = if octet { "octet-counted" } else { "LF" };
    println!(
        "syslog tcp ({framing}, {connections} connections): {got} of {want} messages in {seconds:.2} s = {:.0} messages/s, listener thread {:.2} µs CPU per message",
        got as f64 / seconds,
        cpu * 1e6 / got as f64
    );
}

fn udp(lines: &[Vec<u8>], messages: usize, senders: usize) {
    let mut listener = listen(Transport::Udp);
    let address = listener.address;
    let cpu_before = thread_cpu("syslog-input");
    let per = messages / senders;
    let messages = per * senders;
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let lines_owned: Vec<Vec<u8>> = lines.to_vec();
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let started = Instant::now();
                for i in 0..per {
                    let line = &lines_owned[(s * 7919 + i) % lines_owned.len()];
                    let _ = socket.send_to(line, address);
                }
                started.elapsed().as_secs_f64()
            })
        })
        .collect();
    let (got, seconds) = count(&mut listener, messages as u64, Duration::from_secs(1));
    let sent_in = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold(0.0, f64::max);
    let cpu = thread_cpu("syslog-input") - cpu_before;
    let metrics = finish(listener);
    let dropped = metrics.udp_datagrams_dropped.load(Ordering::Relaxed);
    println!(
        "syslog udp ({senders} senders, as fast as they can: {:.0} datagrams/s offered): {got} of {messages} received in {seconds:.2} s = {:.0} messages/s, listener thread {:.2} µs CPU per message; kernel drops counted {dropped} ({:.1}%)",
        messages as f64 / sent_in,
        got as f64 / seconds,
        cpu * 1e6 / got as f64,
        dropped as f64 * 100.0 / messages as f64
    );
}

fn main() {
    let messages: usize = std::env::var("PICKET_BENCH_SYSLOG_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let connections: usize = std::env::var("PICKET_BENCH_SYSLOG_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // PICKET_BENCH_SYSLOG_ONLY=tcp or udp runs only those (for a profiler).
    let only = std::env::var("PICKET_BENCH_SYSLOG_ONLY").unwrap_or_default();
    let lines = workload();
    if only != "udp" {
        tcp(&lines, messages, connections, false);
        tcp(&lines, messages, connections, true);
        tcp(&lines, messages, 1, false);
    }
    if only != "tcp" {
        udp(&lines, messages / 4, 1);
        udp(&lines, messages / 4, 2);
    }
}
