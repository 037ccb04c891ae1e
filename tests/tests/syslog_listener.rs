//! The agent as a syslog relay (`[agent.inputs.syslog]`), fed by real senders:
//! util-linux `logger` over UDP and TCP in both framings and both formats, rsyslog's
//! `omfwd` over TCP and over TLS (gtls, with a client certificate), syslog-ng's
//! `network()` and `syslog()` destinations; and 100,000 messages over TCP that arrive
//! exactly once across an agent restart while the sender reconnects.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use picket_tests::pki::Pki;
use picket_tests::syslog_daemons::{rsyslogd, syslog_ng};
use picket_tests::{Agent, CountingSink, assert_exactly_once, free_port, marker_counts};
use serde_json::Value;

/// The port the agent's `scheme://127.0.0.1:0` listener bound (from its log line
/// `Syslog listener on. listen=tcp://127.0.0.1:PORT`): no port is picked ahead and
/// raced for by tests running beside this one.
fn bound(agent: &Agent, scheme: &str) -> u16 {
    let needle = format!("Syslog listener on. listen={scheme}://127.0.0.1:");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = agent.service.log();
        if let Some(port) = log
            .lines()
            .rev()
            .find_map(|line| line.split_once(&needle))
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "no {scheme} listener in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An agent relaying what `listen` gets to `sink` (`extra`: more keys of
/// `[agent.inputs.syslog]`).
fn relay(dir: &Path, sink: &CountingSink, listen: &[String], extra: &str) -> Agent {
    let config = relay_config(dir, sink, listen, extra);
    let agent = Agent::start_with_config(dir, config);
    assert!(
        agent.wait_for_log("Syslog listener on", Duration::from_secs(30)),
        "{}",
        agent.service.log()
    );
    agent
}

fn relay_config(dir: &Path, sink: &CountingSink, listen: &[String], extra: &str) -> PathBuf {
    let unused = dir.join("no-such.log");
    let listen: Vec<String> = listen.iter().map(|l| format!("{l:?}")).collect();
    Agent::write_config(
        dir,
        &[&unused],
        &format!(
            "[agent.inputs.syslog]\nlisten = [{}]\nsender_hostname = \"address\"\n{extra}\n",
            listen.join(", ")
        ),
        &format!(
            "[agent.shippers.http]\nurl = {:?}\n[agent.buffer]\nsync_interval_ms = 20\n",
            sink.url
        ),
    )
}

/// Waits until the sink holds `n` events; returns them.
fn delivered(sink: &CountingSink, n: usize, agent: &Agent) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = sink.events();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} events delivered: {events:#?}\n{}",
            events.len(),
            agent.service.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logger(args: &[&str], message: &str) {
    let output = Command::new("logger")
        .args(args)
        .args(["-t", "sshd", "-i", "-p", "auth.info", "--"])
        .arg(message)
        .output()
        .expect("logger runs");
    assert!(
        output.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The event whose summary ends with `seq-N`.
fn with_marker(events: &[Value], n: usize) -> &Value {
    events
        .iter()
        .find(|e| picket_tests::marker(e) == Some(n))
        .unwrap_or_else(|| panic!("no event seq-{n} in {events:#?}"))
}

fn assert_sshd_failure(event: &Value, source: &str) {
    assert_eq!(event["source"], source, "{event:#}");
    assert_eq!(event["processname"], "sshd", "{event:#}");
    assert_eq!(event["category"], "authentication", "{event:#}");
    assert_eq!(
        event["details"]["sourceipaddress"], "203.0.113.50",
        "{event:#}"
    );
    assert_eq!(event["details"]["username"], "root", "{event:#}");
    assert_eq!(
        event["details"]["senderipaddress"], "127.0.0.1",
        "{event:#}"
    );
    assert!(event["processid"].as_i64().unwrap() > 0, "{event:#}");
}

fn failure(n: usize) -> String {
    format!("Failed password for root from 203.0.113.50 port 4{n:04} ssh2 seq-{n}")
}

#[test]
fn logger_over_udp_and_tcp_in_both_framings_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let agent = relay(
        dir.path(),
        &sink,
        &["udp://127.0.0.1:0".into(), "tcp://127.0.0.1:0".into()],
        "",
    );
    let (udp, tcp) = (bound(&agent, "udp"), bound(&agent, "tcp"));
    let (udp, tcp) = (udp.to_string(), tcp.to_string());
    let server = ["--server", "127.0.0.1", "--port"];
    let sends: [(&[&str], &str); 6] = [
        (&["--udp", "--rfc3164"], "udp"),
        (&["--udp", "--rfc5424"], "udp"),
        (&["--tcp", "--rfc3164"], "tcp"),
        (&["--tcp", "--rfc5424"], "tcp"),
        (&["--tcp", "--octet-count", "--rfc3164"], "tcp"),
        (&["--tcp", "--octet-count", "--rfc5424"], "tcp"),
    ];
    for (n, (args, transport)) in sends.iter().enumerate() {
        let port = if *transport == "udp" { &udp } else { &tcp };
        let mut all: Vec<&str> = server.to_vec();
        all.push(port);
        all.extend_from_slice(args);
        logger(&all, &failure(n));
    }
    // RFC 5424 structured data.
    let mut all: Vec<&str> = server.to_vec();
    all.push(&tcp);
    all.extend_from_slice(&[
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "--sd-id",
        "origin@32473",
        "--sd-param",
        "zone=\"dmz\"",
    ]);
    logger(&all, &failure(6));
    let events = delivered(&sink, 7, &agent);
    assert_exactly_once(&events, 7, &agent.service.log());
    for (n, (args, transport)) in sends.iter().enumerate() {
        let port = if *transport == "udp" { &udp } else { &tcp };
        let event = with_marker(&events, n);
        assert_sshd_failure(event, &format!("syslog-{transport}:127.0.0.1:{port}"));
        if args.contains(&"--rfc5424") {
            // RFC 5424 stamps carry microseconds and a zone.
            assert_ne!(
                event["utctimestamp"].as_str().unwrap().len(),
                25,
                "{event:#}"
            );
        }
    }
    let event = with_marker(&events, 6);
    assert_eq!(
        event["details"]["structureddata"]["origin@32473"]["zone"], "dmz",
        "{event:#}"
    );
}

#[test]
fn rsyslog_omfwd_over_tcp_and_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let sink = CountingSink::start();
    let agent = relay(
        &dir.path().join("agent"),
        &sink,
        &["tcp://127.0.0.1:0".into(), "tls://127.0.0.1:0".into()],
        &format!(
            "tls_cert_file = {:?}\ntls_key_file = {:?}\nclient_ca_file = {:?}\n",
            pki.server_cert, pki.server_key, pki.ca
        ),
    );
    let (tcp, tls) = (bound(&agent, "tcp"), bound(&agent, "tls"));
    let rsyslog = rsyslogd(
        &dir.path().join("rsyslog"),
        &format!(
            r#"global(DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
if re_match($msg, "port 4000[0-4] ") then action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
       action.resumeRetryCount="-1" action.resumeInterval="1")
if re_match($msg, "port 4000[5-9] ") then action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp"
       TCP_Framing="octet-counted" StreamDriver="gtls" StreamDriverMode="1"
       StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"
       action.resumeRetryCount="-1" action.resumeInterval="1")"#,
            ca = pki.ca.display(),
            cert = pki.client_cert.display(),
            key = pki.client_key.display(),
        ),
    );
    // seq-0..4 go over TCP, seq-5..9 over TLS (rsyslog routes them by port number).
    for n in 0..10 {
        rsyslog.log("sshd", 5000 + n as u32, &failure(n));
    }
    let events = delivered(&sink, 10, &agent);
    assert_exactly_once(&events, 10, &rsyslog.output());
    for n in 0..10 {
        let event = with_marker(&events, n);
        let (transport, port) = if n < 5 { ("tcp", tcp) } else { ("tls", tls) };
        assert_sshd_failure(event, &format!("syslog-{transport}:127.0.0.1:{port}"));
        assert_eq!(event["processid"], 5000 + n as i64, "{event:#}");
    }
}

#[test]
fn a_tls_sender_without_a_certificate_from_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let sink = CountingSink::start();
    let mut agent = relay(
        &dir.path().join("agent"),
        &sink,
        &["tls://127.0.0.1:0".into()],
        &format!(
            "tls_cert_file = {:?}\ntls_key_file = {:?}\nclient_ca_file = {:?}\n",
            pki.server_cert, pki.server_key, pki.ca
        ),
    );
    let tls = bound(&agent, "tls");
    // A sender with the rogue CA's certificate, and one speaking plain TCP to TLS.
    let rsyslog = rsyslogd(
        &dir.path().join("rsyslog"),
        &format!(
            r#"global(DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp" StreamDriver="gtls"
       StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost")"#,
            ca = pki.ca.display(),
            cert = pki.rogue_cert.display(),
            key = pki.rogue_key.display(),
        ),
    );
    rsyslog.log("sshd", 1, &failure(0));
    let mut plain = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    plain
        .write_all(b"<13>Dec  7 10:00:00 h sshd[1]: plain text seq-1\n")
        .unwrap();
    assert!(
        agent.wait_for_log("TLS handshake failed", Duration::from_secs(30)),
        "{}",
        agent.service.log()
    );
    // Both were refused: the plain one at once, rsyslog's (it retries) at least once.
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut rest);
    std::thread::sleep(Duration::from_secs(1));
    let status = agent.service.stop().expect("the agent stops");
    assert!(status.success());
    let log = agent.service.log();
    let failures: u64 = log
        .split_once("tls_failures=")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no listener totals in the log:\n{log}"));
    assert!(failures >= 2, "{failures} TLS failures counted:\n{log}");
    assert!(sink.events().is_empty(), "{:#?}", sink.events());
}

#[test]
fn syslog_ng_network_and_syslog_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let agent = relay(
        &dir.path().join("agent"),
        &sink,
        &["tcp://127.0.0.1:0".into(), "udp://127.0.0.1:0".into()],
        "",
    );
    let (tcp, udp) = (bound(&agent, "tcp"), bound(&agent, "udp"));
    // network(): BSD format over TCP (LF); syslog(): RFC 5424 octet-counted over TCP;
    // network() over UDP.
    let daemon = syslog_ng(
        &dir.path().join("syslog-ng"),
        &format!(
            "destination d_bsd {{ network(\"127.0.0.1\" port({tcp}) transport(\"tcp\") persist-name(\"bsd\")); }};\n\
             destination d_5424 {{ syslog(\"127.0.0.1\" port({tcp}) transport(\"tcp\") persist-name(\"ietf\")); }};\n\
             destination d_udp {{ network(\"127.0.0.1\" port({udp}) transport(\"udp\")); }};"
        ),
        &["d_bsd", "d_5424", "d_udp"],
    );
    for n in 0..3 {
        daemon.log("sshd", 700 + n as u32, &failure(n));
    }
    // Each message through each of the three destinations.
    let events = delivered(&sink, 9, &agent);
    let counts = marker_counts(&events);
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{events:#?}\n{}",
        daemon.output()
    );
    let mut sources: Vec<&str> = events.iter().filter_map(|e| e["source"].as_str()).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(
        sources,
        [
            format!("syslog-tcp:127.0.0.1:{tcp}"),
            format!("syslog-udp:127.0.0.1:{udp}")
        ]
    );
    for event in &events {
        assert_eq!(event["processname"], "sshd", "{event:#}");
        assert_eq!(event["category"], "authentication", "{event:#}");
        assert_eq!(
            event["details"]["senderipaddress"], "127.0.0.1",
            "{event:#}"
        );
        let n = picket_tests::marker(event).unwrap();
        assert_eq!(event["processid"], 700 + n as i64, "{event:#}");
    }
    assert_eq!(events.len(), 9);
}

/// Sends `seq-0..seq-total` over TCP in batches of 100, as a sender that honours a
/// close does (rsyslog's omfwd looks for the receiver's close before each send): before
/// each batch it looks whether the agent closed its side; if so it closes its own and
/// reconnects (retrying while the agent is down), sending on from where it was.
fn send_reconnecting(port: u16, total: usize, sent: &AtomicUsize) -> usize {
    let mut reconnects = 0;
    let connect = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => return stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("cannot reconnect to the agent: {e}"),
            }
        }
    };
    let mut stream = connect();
    let mut n = 0;
    while n < total {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let closed = match stream.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        stream.set_nonblocking(false).unwrap();
        if closed {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            stream = connect();
            reconnects += 1;
            continue;
        }
        let mut batch = String::new();
        for i in n..(n + 100).min(total) {
            batch.push_str(&format!(
                "<38>Dec  7 10:{:02}:{:02} fw1 sshd[{}]: {}\n",
                i / 60 % 60,
                i % 60,
                1000 + i % 50,
                failure(i)
            ));
        }
        match stream.write_all(batch.as_bytes()) {
            Ok(()) => {
                n = (n + 100).min(total);
                sent.store(n, Ordering::Relaxed);
                // A sender's pace: 100,000 messages in a few seconds, so the restart
                // falls in the middle.
                std::thread::sleep(Duration::from_millis(2));
            }
            // The agent went away between the look and the write (it never does on a
            // graceful stop: it reads until this side closes).
            Err(e) => panic!("a write failed at seq-{n}: {e}"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    reconnects
}

/// Once `progress` (what the sender has sent) passes a quarter of `total`, stops
/// `agent` with SIGTERM (it must exit 0) and starts it again on its config in `dir`:
/// the restart falls while the sender is mid-stream (by what it sent, not what was
/// delivered, which may lag on a busy machine).
fn restart_midway(
    agent: &mut Agent,
    dir: &Path,
    progress: &AtomicUsize,
    total: usize,
    context: impl Fn() -> String,
) -> Agent {
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < total / 4 {
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            agent.service.log(),
            context()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = agent.service.stop().expect("the agent stops");
    assert!(status.success(), "{}", agent.service.log());
    assert!(
        progress.load(Ordering::Relaxed) < total,
        "the sender finished before the restart"
    );
    Agent::start_with_config(dir, dir.join("agent.toml"))
}

/// Waits (at most 2 minutes) for `total` events at the sink, then holds them to
/// exactly once each.
fn assert_all_once(sink: &CountingSink, total: usize, context: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.events().len() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Anything more (a duplicate) would come now.
    std::thread::sleep(Duration::from_secs(1));
    assert_exactly_once(&sink.events(), total, context);
}

#[test]
fn a_hundred_thousand_messages_over_tcp_arrive_exactly_once_across_a_restart() {
    const TOTAL: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let tcp = free_port();
    let listen = [format!("tcp://127.0.0.1:{tcp}")];
    let mut agent = relay(dir.path(), &sink, &listen, "");
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&sent);
    let sender = std::thread::spawn(move || send_reconnecting(tcp, TOTAL, &progress));
    let agent = restart_midway(&mut agent, dir.path(), &sent, TOTAL, String::new);
    let reconnects = sender.join().expect("the sender");
    assert!(reconnects >= 1, "the sender never saw the agent's close");
    assert_all_once(&sink, TOTAL, &agent.service.log());
}

#[test]
fn rsyslog_forwards_a_hundred_thousand_messages_exactly_once_across_a_restart() {
    const TOTAL: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let tcp = free_port();
    let listen = [format!("tcp://127.0.0.1:{tcp}")];
    let agent_dir = dir.path().join("agent");
    let mut agent = relay(&agent_dir, &sink, &listen, "");
    // rsyslog follows a file (imfile) and forwards each line with omfwd over TCP,
    // retrying for ever while the agent is away (its action queue holds the lines).
    let input = dir.path().join("in.log");
    std::fs::write(&input, "").unwrap();
    let rsyslog = rsyslogd(
        &dir.path().join("rsyslog"),
        &format!(
            r#"module(load="imfile")
input(type="imfile" File="{input}" Tag="sshd[77]:" Facility="auth" Severity="info")
if $programname == "sshd" then action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
       queue.type="LinkedList" queue.size="500000"
       action.resumeRetryCount="-1" action.resumeInterval="1")"#,
            input = input.display(),
        ),
    );
    let written = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&written);
    let writer = std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        for block in 0..100 {
            progress.store(block * 1000, Ordering::Relaxed);
            let mut text = String::new();
            for n in block * 1000..(block + 1) * 1000 {
                text.push_str(&failure(n));
                text.push('\n');
            }
            file.write_all(text.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(40));
        }
        progress.store(TOTAL, Ordering::Relaxed);
    });
    let agent = restart_midway(&mut agent, &agent_dir, &written, TOTAL, || rsyslog.output());
    writer.join().unwrap();
    assert_all_once(
        &sink,
        TOTAL,
        &format!("{}\n{}", agent.service.log(), rsyslog.output()),
    );
}

/// A sender that never reads does not see the agent close its side on a stop, and
/// goes on sending: the agent reads it while it waits for the close, cuts it after 2 s
/// of waiting (with a warning), delivers what it read once each, and stops in time.
#[test]
fn a_sender_that_ignores_the_close_is_cut_and_the_agent_still_stops() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let mut agent = relay(dir.path(), &sink, &["tcp://127.0.0.1:0".into()], "");
    let tcp = bound(&agent, "tcp");
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&sent);
    let sender = std::thread::spawn(move || {
        // A message every 50 ms until a write fails (the agent closed for good).
        for n in 0..2_000 {
            let line = format!("<38>Dec  7 10:00:00 fw1 sshd[9]: {}\n", failure(n));
            if stream.write_all(line.as_bytes()).is_err() {
                break;
            }
            progress.store(n + 1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    delivered(&sink, 10, &agent);
    let before_stop = sent.load(Ordering::Relaxed);
    let stopping = Instant::now();
    let status = agent.service.stop().expect("the agent stops");
    let took = stopping.elapsed();
    let log = agent.service.log();
    assert!(status.success(), "{log}");
    // 2 s of waiting for the sender, not the 10 s cap on reading a sender that floods.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "stopped in {took:?}\n{log}"
    );
    assert!(
        log.contains("neither stopped sending nor closed"),
        "no warning of the cut\n{log}"
    );
    sender.join().expect("the sender");
    let events = sink.events();
    let counts = marker_counts(&events);
    assert!(
        counts.values().all(|c| *c == 1),
        "a message twice: {counts:?}"
    );
    // Everything sent before the stop, and what was read while waiting for the close.
    assert!(
        (0..before_stop).all(|n| counts.contains_key(&n)) && events.len() > before_stop,
        "{} events for {before_stop} sent before the stop\n{log}",
        events.len()
    );
}

#[test]
fn a_reload_keeps_the_sockets_and_a_listen_address_it_cannot_bind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let listen = ["tcp://127.0.0.1:0".into(), "udp://127.0.0.1:0".into()];
    let agent = relay(dir.path(), &sink, &listen, "");
    let (tcp, udp) = (bound(&agent, "tcp"), bound(&agent, "udp"));
    let line = |n: usize| format!("<38>Dec  7 10:00:00 fw1 sshd[9]: {}\n", failure(n));
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    stream.write_all(line(0).as_bytes()).unwrap();
    delivered(&sink, 1, &agent);

    // A reload: the pipeline restarts, the sockets stay bound. What is sent meanwhile
    // (a new connection, a datagram) waits in the kernel and is read after it.
    agent.service.notify(libc::SIGHUP);
    let udp_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_socket
        .send_to(line(1).as_bytes(), ("127.0.0.1", udp))
        .unwrap();
    let mut during = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    during.write_all(line(2).as_bytes()).unwrap();
    assert!(
        agent.wait_for_log("Configuration reloaded", Duration::from_secs(30)),
        "{}",
        agent.service.log()
    );
    // The first connection was closed by the reload: its sender reconnects.
    let mut again = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    again.write_all(line(3).as_bytes()).unwrap();
    let events = delivered(&sink, 4, &agent);
    assert_exactly_once(&events, 4, &agent.service.log());

    // A listen address another program holds: the reload is refused, and the running
    // listeners go on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let config = dir.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "\"udp://127.0.0.1:0\"",
        &format!("\"udp://127.0.0.1:0\", \"tcp://127.0.0.1:{taken_port}\""),
    );
    std::fs::write(&config, text).unwrap();
    agent.service.notify(libc::SIGHUP);
    assert!(
        agent.wait_for_log("Reload refused", Duration::from_secs(30)),
        "{}",
        agent.service.log()
    );
    assert!(
        agent
            .service
            .log()
            .contains(&format!("127.0.0.1:{taken_port}"))
    );
    udp_socket
        .send_to(line(4).as_bytes(), ("127.0.0.1", udp))
        .unwrap();
    let events = delivered(&sink, 5, &agent);
    assert_exactly_once(&events, 5, &agent.service.log());
    drop(taken);
}
