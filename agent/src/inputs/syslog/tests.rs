//! The listener on loopback sockets, with senders written here (the real senders,
//! `logger`, rsyslog and syslog-ng, are in `tests/tests/syslog_listener.rs`).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::Value;

use super::config::{SyslogInputConfig, SyslogSettings};
use super::*;

/// A listener running on its thread, with the channel the buffer stage would read.
struct Running {
    sockets: Sockets,
    settings: SyslogSettings,
    metrics: Arc<Metrics>,
    events: mpsc::Receiver<Chunk>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(config: &str) -> Running {
        let config: SyslogInputConfig = toml::from_str(config).unwrap();
        let settings = config.build().unwrap().expect("listens");
        let sockets = Sockets::default();
        let metrics = Arc::new(Metrics::default());
        let input = SyslogInput::new(
            settings.clone(),
            HostIdentity::named("relay.example.com"),
            TimeZoneChoice::parse("UTC").unwrap(),
            Arc::clone(&metrics),
            &sockets,
        )
        .unwrap();
        // The channel of the pipeline: two chunks.
        let (tx, events) = mpsc::channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || input.run(tx, thread_stop, || false));
        Running {
            sockets,
            settings,
            metrics,
            events,
            stop,
            thread: Some(thread),
        }
    }

    fn address(&self, transport: Transport) -> SocketAddr {
        let listen = self
            .settings
            .listen
            .iter()
            .find(|l| l.transport == transport)
            .expect("a listener of that transport");
        self.sockets.local_addr(listen).unwrap()
    }

    /// The next `n` events (decoded), within 10 s.
    fn take(&mut self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n {
            match self.events.try_recv() {
                Ok(chunk) => {
                    assert!(chunk.reads().iter().all(|read| !read.positioned()));
                    out.extend(chunk.records().map(|r| serde_json::from_slice(r).unwrap()));
                    chunk.recycle();
                }
                Err(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "only {} of {n} events arrived: {out:#?}",
                        out.len()
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        out
    }

    /// Events that arrive within `wait` (none expected, say).
    fn take_for(&mut self, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            while let Ok(chunk) = self.events.try_recv() {
                out.extend(
                    chunk
                        .records()
                        .map(|r| serde_json::from_slice::<Value>(r).unwrap()),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        out
    }

    /// Stops the listener (reading what its channel gets meanwhile) and returns those
    /// events.
    fn stop(&mut self) -> Vec<Value> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().unwrap();
        let mut out = Vec::new();
        while !thread.is_finished() {
            while let Ok(chunk) = self.events.try_recv() {
                out.extend(
                    chunk
                        .records()
                        .map(|r| serde_json::from_slice::<Value>(r).unwrap()),
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.join().unwrap();
        while let Ok(chunk) = self.events.try_recv() {
            out.extend(
                chunk
                    .records()
                    .map(|r| serde_json::from_slice::<Value>(r).unwrap()),
            );
        }
        out
    }

    fn metric(&self, counter: impl Fn(&Metrics) -> &AtomicU64) -> u64 {
        counter(&self.metrics).load(Ordering::Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.events.close();
    }
}

const LOOPBACK: &str = r#"listen = ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
sender_hostname = "address"
"#;

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn tcp_lines_and_octet_counts_become_events() {
    let mut running = Running::start(LOOPBACK);
    let tcp = running.address(Transport::Tcp);
    let mut lf = connect(tcp);
    lf.write_all(
        b"<38>Dec  7 10:00:00 fw1 sshd[811]: Failed password for root from 203.0.113.9 port 4242 ssh2\n\
          <13>Dec  7 10:00:01 fw1 app: second\r\n",
    )
    .unwrap();
    let events = running.take(2);
    assert_eq!(events[0]["hostname"], "fw1");
    assert_eq!(events[0]["processname"], "sshd");
    assert_eq!(events[0]["processid"], 811);
    assert_eq!(events[0]["category"], "authentication");
    assert_eq!(events[0]["details"]["sourceipaddress"], "203.0.113.9");
    assert_eq!(events[0]["details"]["senderipaddress"], "127.0.0.1");
    assert_eq!(events[0]["source"], format!("syslog-tcp:{tcp}"));
    assert_eq!(events[0]["severity"], "INFO");
    assert_eq!(events[1]["summary"], "second");
    assert_ne!(events[0]["eventid"], events[1]["eventid"]);

    // RFC 5424 with structured data, octet-counted, one message split over writes.
    let message = "<165>1 2026-12-07T10:00:02.123Z fw2 appliance 77 ID47 [origin ip=\"192.0.2.1\" software=\"fw\"] Policy changed";
    let framed = format!("{} {message}", message.len());
    let mut counted = connect(tcp);
    counted.write_all(&framed.as_bytes()[..20]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    counted.write_all(&framed.as_bytes()[20..]).unwrap();
    let events = running.take(1);
    assert_eq!(events[0]["hostname"], "fw2");
    assert_eq!(events[0]["processname"], "appliance");
    assert_eq!(
        events[0]["utctimestamp"],
        "2026-12-07T10:00:02.123000+00:00"
    );
    assert_eq!(
        events[0]["details"]["structureddata"]["origin"]["ip"],
        "192.0.2.1"
    );
    assert_eq!(events[0]["summary"], "Policy changed");
    assert_eq!(running.metric(|m| &m.syslog_connections), 2);
}

#[test]
fn udp_datagrams_become_events_and_a_header_without_host_gets_the_sender() {
    let mut running = Running::start(LOOPBACK);
    let udp = running.address(Transport::Udp);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(
            b"<134>CEF:0|Vendor|FW|1.0|100|Blocked|7|src=198.51.100.4 dst=10.0.0.1 dpt=22\n",
            udp,
        )
        .unwrap();
    socket
        .send_to(
            b"<13>Dec  7 10:00:00 sshd[9]: Connection closed by 198.51.100.5 port 22",
            udp,
        )
        .unwrap();
    let events = running.take(2);
    assert_eq!(events[0]["source"], format!("syslog-udp:{udp}"));
    assert_eq!(events[0]["tags"][0], "cef");
    assert_eq!(events[0]["details"]["senderipaddress"], "127.0.0.1");
    // No host in the header: a loopback sender is the relay itself.
    assert_eq!(events[1]["hostname"], "relay.example.com");
    assert_eq!(events[1]["processname"], "sshd");
}

#[test]
fn a_huge_line_is_cut_and_the_connection_goes_on() {
    let mut running = Running::start(LOOPBACK);
    let mut stream = connect(running.address(Transport::Tcp));
    // 10 MB without a newline, then a message.
    let writer = std::thread::spawn(move || {
        let block = vec![b'A'; 1 << 20];
        stream.write_all(b"<13>Dec  7 10:00:00 h big: ").unwrap();
        for _ in 0..10 {
            stream.write_all(&block).unwrap();
        }
        stream
            .write_all(b"\n<13>Dec  7 10:00:01 h app: after\n")
            .unwrap();
        stream
    });
    let events = running.take(2);
    let stream = writer.join().unwrap();
    assert_eq!(events[0]["details"]["truncated"], true);
    assert_eq!(events[0]["processname"], "big");
    assert_eq!(events[1]["summary"], "after");
    assert_eq!(running.metric(|m| &m.lines_truncated), 1);
    drop(stream);

    // An octet count of 10 MB: cut, the rest skipped, the stream stays in step.
    let mut stream = connect(running.address(Transport::Tcp));
    let body = format!("<13>Dec  7 10:00:02 h big: {}", "B".repeat(10_000_000));
    let next = "<13>Dec  7 10:00:03 h app: counted after";
    let writer = std::thread::spawn(move || {
        stream
            .write_all(format!("{} {body}{} {next}", body.len(), next.len()).as_bytes())
            .unwrap();
        stream
    });
    let events = running.take(2);
    let _stream = writer.join().unwrap();
    assert_eq!(events[0]["details"]["truncated"], true);
    assert_eq!(events[1]["summary"], "counted after");
}

#[test]
fn garbage_closes_a_counted_connection_cleanly_and_the_listener_stays() {
    let mut running = Running::start(LOOPBACK);
    let tcp = running.address(Transport::Tcp);
    let mut stream = connect(tcp);
    stream
        .write_all(b"9 <13>first\xff\xfe\x00garbage 12\n\n")
        .unwrap();
    let events = running.take(1);
    assert_eq!(events[0]["summary"], "<13>first");
    // The agent closed the connection: the sender reads its end.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert_eq!(running.metric(|m| &m.syslog_framing_errors), 1);
    // Binary garbage on a line-framed connection is a message like any other.
    let mut stream = connect(tcp);
    stream
        .write_all(b"\xff\xfe\x00\x01 not syslog at all\n<13>Dec  7 10:00:01 h app: fine\n")
        .unwrap();
    let events = running.take(2);
    assert_eq!(events[0]["category"], "syslog");
    assert_eq!(events[1]["summary"], "fine");
    // A sender that connects and says nothing, or goes away mid-message, harms no one.
    drop(connect(tcp));
    let mut half = connect(tcp);
    half.write_all(b"<13>Dec  7 10:00:02 h app: no newline")
        .unwrap();
    drop(half);
    let events = running.take(1);
    assert_eq!(events[0]["summary"], "no newline");
}

#[test]
fn a_full_buffer_stops_the_reading_and_nothing_is_dropped() {
    let mut running = Running::start(LOOPBACK);
    let mut stream = connect(running.address(Transport::Tcp));
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let line = format!("<13>Dec  7 10:00:00 h app: {}\n", "x".repeat(200));
    // Nobody takes from the channel: the listener stops reading, the socket buffers
    // fill, and the sender's write blocks (times out) instead of anything being lost.
    let mut sent = 0usize;
    let blocked = loop {
        match stream.write(line.as_bytes()) {
            Ok(n) if n == line.len() => sent += 1,
            Ok(n) => {
                // Finish the partial line once the reader runs again.
                break Some(n);
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "{e}"
                );
                break None;
            }
        }
        assert!(sent < 200_000, "the sender was never held back");
    };
    assert!(sent > 100, "{sent}");
    // What was read arrives (the rest waits in the sockets).
    let events = running.take(1);
    assert!(events.len() < sent, "{} of {sent}", events.len());
    stream.set_write_timeout(None).unwrap();
    if let Some(partial) = blocked {
        stream.write_all(&line.as_bytes()[partial..]).unwrap();
        sent += 1;
    }
    drop(stream);
    let rest = running.take(sent - events.len());
    assert_eq!(events.len() + rest.len(), sent);
    assert!(running.take_for(Duration::from_millis(200)).is_empty());
}

#[test]
fn a_stop_closes_the_agents_side_and_reads_what_the_sender_wrote() {
    let mut running = Running::start(LOOPBACK);
    let mut stream = connect(running.address(Transport::Tcp));
    stream
        .write_all(b"<13>Dec  7 10:00:00 h app: before\n")
        .unwrap();
    running.take(1);
    running.stop.store(true, Ordering::Relaxed);
    // The sender sees the agent's close (end of stream) and writes what it had, then
    // closes as a sender that reconnects does.
    let mut byte = [0u8; 1];
    assert_eq!(
        stream.read(&mut byte).unwrap(),
        0,
        "the agent closed its side"
    );
    stream
        .write_all(b"<13>Dec  7 10:00:01 h app: in flight\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let events = running.stop();
    let summaries: Vec<&str> = events
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert_eq!(summaries, ["in flight"]);
}

#[test]
fn senders_outside_allowed_senders_and_over_max_connections_are_refused() {
    let mut running = Running::start(
        "listen = [\"udp://127.0.0.1:0\", \"tcp://127.0.0.1:0\"]\nallowed_senders = [\"192.0.2.0/24\"]\n",
    );
    let mut stream = connect(running.address(Transport::Tcp));
    let _ = stream.write_all(b"<13>Dec  7 10:00:00 h app: refused\n");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            b"<13>Dec  7 10:00:00 h app: refused",
            running.address(Transport::Udp),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.metric(|m| &m.syslog_senders_refused) < 2 {
        assert!(Instant::now() < deadline, "the refusals were not counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(running.take_for(Duration::from_millis(100)).is_empty());
    assert_eq!(running.metric(|m| &m.syslog_senders_refused), 2);
    drop(running);

    let mut running = Running::start("listen = [\"tcp://127.0.0.1:0\"]\nmax_connections = 2\n");
    let tcp = running.address(Transport::Tcp);
    let mut kept: Vec<TcpStream> = (0..2).map(|_| connect(tcp)).collect();
    for (i, stream) in kept.iter_mut().enumerate() {
        stream
            .write_all(format!("<13>Dec  7 10:00:00 h app: kept {i}\n").as_bytes())
            .unwrap();
    }
    running.take(2);
    let mut third = connect(tcp);
    let mut rest = Vec::new();
    let _ = third.read_to_end(&mut rest);
    assert_eq!(running.metric(|m| &m.syslog_connections_refused), 1);
    // Once one closes, a new one is taken (as soon as the listener saw the close).
    drop(kept.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let _fourth = loop {
        let mut fourth = connect(tcp);
        fourth
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0u8; 1];
        match fourth.read(&mut byte) {
            // Closed at once: the slot was not free yet.
            Ok(0) => assert!(Instant::now() < deadline, "no slot came free"),
            _ => {
                fourth
                    .write_all(b"<13>Dec  7 10:00:00 h app: after a close\n")
                    .unwrap();
                break fourth;
            }
        }
    };
    assert_eq!(running.take(1)[0]["summary"], "after a close");
}

#[test]
fn sockets_stay_bound_for_the_next_pipeline() {
    let config: SyslogInputConfig =
        toml::from_str("listen = [\"tcp://127.0.0.1:0\", \"udp://127.0.0.1:0\"]").unwrap();
    let settings = config.build().unwrap().unwrap();
    let sockets = Sockets::default();
    sockets
        .bind(&settings.listen, settings.udp_receive_buffer_bytes)
        .unwrap();
    let tcp = sockets.local_addr(&settings.listen[0]).unwrap();
    let metrics = Arc::new(Metrics::default());
    let host = HostIdentity::named("relay");
    let zone = TimeZoneChoice::parse("UTC").unwrap();
    for round in 0..2 {
        let input = SyslogInput::new(
            settings.clone(),
            host.clone(),
            zone,
            Arc::clone(&metrics),
            &sockets,
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || input.run(tx, thread_stop, || true));
        let mut stream = connect(tcp);
        stream
            .write_all(format!("<13>Dec  7 10:00:00 h app: round {round}\n").as_bytes())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let chunk = loop {
            if let Ok(chunk) = rx.try_recv() {
                break chunk;
            }
            assert!(Instant::now() < deadline, "round {round}: nothing arrived");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(chunk.len(), 1);
        stop.store(true, Ordering::Relaxed);
        drop(stream);
        thread.join().unwrap();
    }
    // A connection made between two pipelines waits in the backlog.
    let mut waiting = connect(tcp);
    waiting
        .write_all(b"<13>Dec  7 10:00:00 h app: queued\n")
        .unwrap();
    let input = SyslogInput::new(settings.clone(), host, zone, metrics, &sockets).unwrap();
    let (tx, mut rx) = mpsc::channel(2);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::spawn(move || input.run(tx, thread_stop, || true));
    let deadline = Instant::now() + Duration::from_secs(10);
    let chunk = loop {
        if let Ok(chunk) = rx.try_recv() {
            break chunk;
        }
        assert!(
            Instant::now() < deadline,
            "the queued connection was not served"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(chunk.len(), 1);
    stop.store(true, Ordering::Relaxed);
    drop(waiting);
    thread.join().unwrap();
}

#[test]
fn config_errors_name_their_key() {
    for (text, key) in [
        ("listen = [\"http://0.0.0.0:514\"]", "listen"),
        ("listen = [\"udp://0.0.0.0\"]", "listen"),
        (
            "listen = [\"tcp://0.0.0.0:514\", \"tls://0.0.0.0:514\"]",
            "listen",
        ),
        ("listen = [\"tls://0.0.0.0:6514\"]", "tls_cert_file"),
        (
            "listen = [\"udp://0.0.0.0:514\"]\nmax_message_bytes = 100",
            "max_message_bytes",
        ),
        (
            "listen = [\"udp://0.0.0.0:514\"]\nallowed_senders = [\"10.0.0.0/40\"]",
            "allowed_senders",
        ),
        (
            "listen = [\"udp://0.0.0.0:514\"]\ntimezone = \"Mars/Base\"",
            "timezone",
        ),
        ("client_ca_file = \"/etc/ca.pem\"", "client_ca_file"),
    ] {
        let config: SyslogInputConfig = toml::from_str(text).unwrap();
        let err = config.build().unwrap_err();
        assert_eq!(
            err.key,
            format!("agent.inputs.syslog.{key}"),
            "{text}: {err}"
        );
    }
    // Both transports on one port is fine: UDP and TCP are different sockets.
    let config: SyslogInputConfig =
        toml::from_str("listen = [\"udp://0.0.0.0:514\", \"tcp://0.0.0.0:514\"]").unwrap();
    assert_eq!(config.build().unwrap().unwrap().listen.len(), 2);
    let none: SyslogInputConfig = toml::from_str("").unwrap();
    assert!(none.build().unwrap().is_none());
}

#[test]
fn udp_datagrams_the_kernel_drops_are_counted_exactly() {
    let mut running = Running::start(
        "listen = [\"udp://127.0.0.1:0\"]\nudp_receive_buffer_bytes = 65536\nsender_hostname = \"address\"\n",
    );
    let udp = running.address(Transport::Udp);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Nobody takes from the channel: the listener stops reading and the small receive
    // buffer overflows. (Paced: a burst faster than the kernel's loopback backlog would
    // be dropped before it reaches the socket, where no socket counter sees it: bursts
    // of 100 lost a few dozen that way on a loaded 2-core machine.)
    let sent = 20_000;
    for n in 0..sent {
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = socket.send_to(
            format!(
                "<13>Dec  7 10:00:00 h app: datagram {n} {}",
                "x".repeat(150)
            )
            .as_bytes(),
            udp,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.metric(|m| &m.udp_datagrams_dropped) == 0 {
        assert!(Instant::now() < deadline, "no drop was counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = running.stop();
    let dropped = running.metric(|m| &m.udp_datagrams_dropped);
    assert_eq!(
        events.len() as u64 + dropped,
        sent,
        "{} received, {dropped} dropped",
        events.len()
    );
}
