//! The syslog listener (`[agent.inputs.syslog]`): devices that cannot run an agent
//! (firewalls, switches, appliances) send to an agent on a relay host over UDP, TCP or
//! TLS (RFC 5426, 6587, 5425), and their messages get the file input's parsing,
//! buffering and delivery.
//!
//! - One thread (`syslog-input`) runs the listeners on its own single-threaded runtime,
//!   parsing as the file input does: `<PRI>`, RFC 3164 and RFC 5424 headers (structured
//!   data into `details.structureddata`), CEF. The sender's address goes to
//!   `details.senderipaddress`; a header without a host (or `-`, `localhost`) gets the
//!   sender's reverse DNS name or address ([`senders`]: looked up in the background,
//!   the address standing in until the name is known), a loopback sender is the relay.
//! - TCP and TLS: each connection is framed by octet counting or by LF, told by its
//!   first bytes ([`framing`]). Parsed messages go to the buffer stage through the
//!   pipeline's bounded channel: while the disk buffer is full the connection is not
//!   read, so the sender's own queue holds them (with `when_full = "drop_newest"` the
//!   buffer stage drops instead, counted). A stop closes each connection's sending side
//!   and reads what the sender wrote until it closes too: the sender gets [`DRAIN`] of
//!   the listener's waiting for it, and the reading [`DRAIN_MAX`] in all, so what
//!   the sender wrote before it saw the close is read however slow the agent's own
//!   buffer is then (what a sender still writes after that is logged as cut): a
//!   sender that stops sending and closes when the receiver closes, then reconnects,
//!   loses and repeats nothing. On the
//!   agent's exit the listener first takes the connections the kernel queued and stops
//!   listening, so reconnects are refused until the next agent listens.
//! - UDP: each datagram is a message. While the buffer is full the socket is not read
//!   and the kernel drops what overflows its receive buffer: the socket's drop count
//!   (`SO_MEMINFO`) is read every second and counted (`udp_datagrams_dropped`, in
//!   heartbeats `syslogudpdropped`), logged once a minute.
//! - The listening sockets ([`Sockets`]) outlive a reload: bound once, the kernel queues
//!   connections and datagrams while the pipeline restarts.
//!
//! At-least-once: a message is the agent's once it is in the disk buffer (fsynced with
//! the next group, as the file input's lines). Nothing a network sender sends can be
//! read again, so what the agent has read but not yet fsynced when it is killed is lost
//! (the file input reads such lines again); a graceful stop loses nothing. No syslog
//! transport says a message is a resend, so event ids are per message received (the
//! connection and its sequence number): a sender that resends after a reconnect makes
//! a duplicate with a new id.

pub mod config;
mod datagrams;
pub mod framing;
pub mod senders;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mozdef::fields::details::{SENDERIPADDRESS, TRUNCATED};
use picket_common::ratelog::LogLimiter;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use self::config::{Listen, SyslogSettings, Transport};
use self::datagrams::Datagrams;
use self::framing::Framer;
use self::senders::SenderNames;
use super::Chunk;
use crate::host::HostIdentity;
use crate::metrics::Metrics;
use crate::parsers::{LineContext, LineParser, TimeZoneChoice};

/// Longest a stopping listener waits, in all, for a connection's sender to send more
/// or close after closing its side. Time spent handing what it read to the buffer
/// stage does not count: under load that can be longer than the sender's own close.
pub const DRAIN: Duration = Duration::from_secs(2);
/// Longest a stopping listener reads a connection after closing its side, waiting or
/// not (a sender that never stops sending is cut then; with the ship stage's
/// `DRAIN_TIMEOUT` after it, within the unit's 30 s to stop).
pub const DRAIN_MAX: Duration = Duration::from_secs(10);
/// Longest a TLS sender may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages (or UDP datagrams, whatever became of them) taken into one chunk at most
/// before it goes to the buffer stage and the thread turns to other work.
const CHUNK_EVENTS: usize = 256;
/// Bytes of JSON in one chunk at most.
const CHUNK_BYTES: usize = 1 << 20;
/// UDP senders whose parser (their processes' context) is kept at most.
const MAX_UDP_SENDERS: usize = 4096;
/// How often the kernel's count of UDP drops is read.
const DROPS_EVERY: Duration = Duration::from_secs(1);

/// Where the listener is: running, or stopping for a reload (the sockets stay bound)
/// or for the agent's exit (they close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Reload,
    Exit,
}

/// Why a listener cannot start.
#[derive(Debug, Error)]
#[error("cannot listen on {listen}: {source}{hint}")]
pub struct ListenError {
    pub listen: Listen,
    pub source: io::Error,
    hint: &'static str,
}

/// A bound socket.
#[derive(Debug)]
enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

impl Bound {
    fn try_clone(&self) -> io::Result<Bound> {
        Ok(match self {
            Bound::Udp(socket) => Bound::Udp(socket.try_clone()?),
            Bound::Tcp(listener) => Bound::Tcp(listener.try_clone()?),
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Bound::Udp(socket) => socket.local_addr(),
            Bound::Tcp(listener) => listener.local_addr(),
        }
    }
}

/// What a socket is bound as: `tcp://` and `tls://` on one address share one (not
/// on port 0, where each asks for a port of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SocketKey {
    address: SocketAddr,
    udp: bool,
    /// Port 0's transport.
    any_port: Option<Transport>,
}

impl SocketKey {
    fn of(listen: &Listen) -> SocketKey {
        SocketKey {
            address: listen.address,
            udp: listen.transport == Transport::Udp,
            any_port: (listen.address.port() == 0).then_some(listen.transport),
        }
    }
}

/// A socket the service holds, and (UDP) the kernel's drops already counted on it.
#[derive(Debug)]
struct Held {
    socket: Bound,
    drops_counted: u64,
}

/// The listening sockets, kept by the service across reloads (the pipeline takes
/// copies): while a reload restarts the pipeline the kernel keeps queueing.
#[derive(Debug, Clone, Default)]
pub struct Sockets {
    held: Arc<Mutex<HashMap<SocketKey, Held>>>,
}

impl Sockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketKey, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds every address of `listen` not bound yet (nothing is closed); when one
    /// cannot be bound, none of them is kept.
    pub fn bind(&self, listen: &[Listen], udp_receive_buffer: usize) -> Result<(), ListenError> {
        let mut held = self.lock();
        let mut new: Vec<(SocketKey, Bound)> = Vec::new();
        for l in listen {
            let key = SocketKey::of(l);
            if held.contains_key(&key) || new.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let socket = bind(l, udp_receive_buffer).map_err(|source| ListenError {
                listen: *l,
                hint: match source.kind() {
                    io::ErrorKind::PermissionDenied if l.address.port() < 1024 => {
                        " (a port below 1024 needs CAP_NET_BIND_SERVICE: see the README, \"Syslog listener\", for the unit drop-in)"
                    }
                    io::ErrorKind::AddrInUse => {
                        " (another program listens there, or this agent on an overlapping address such as 0.0.0.0 and [::])"
                    }
                    _ => "",
                },
                source,
            })?;
            new.push((key, socket));
        }
        for (key, socket) in new {
            info!(address = %key.address, udp = key.udp, "Syslog socket bound.");
            held.insert(
                key,
                Held {
                    socket,
                    drops_counted: u64::MAX,
                },
            );
        }
        Ok(())
    }

    /// Copies of the sockets of `listen` (binding those not bound yet); the sockets
    /// of addresses no longer listed are closed.
    fn take(
        &self,
        listen: &[Listen],
        udp_receive_buffer: usize,
    ) -> Result<Vec<(Listen, Bound)>, ListenError> {
        self.bind(listen, udp_receive_buffer)?;
        let mut held = self.lock();
        held.retain(|key, _| {
            let kept = listen.iter().any(|l| SocketKey::of(l) == *key);
            if !kept {
                info!(address = %key.address, udp = key.udp, "Syslog socket closed (no longer configured).");
            }
            kept
        });
        let mut taken = Vec::new();
        for l in listen {
            let Some(held) = held.get(&SocketKey::of(l)) else {
                continue;
            };
            if let Bound::Udp(socket) = &held.socket {
                // A changed size applies to a socket kept over a reload too.
                set_receive_buffer(socket, udp_receive_buffer);
            }
            let copy = held.socket.try_clone().map_err(|source| ListenError {
                listen: *l,
                source,
                hint: "",
            })?;
            taken.push((*l, copy));
        }
        Ok(taken)
    }

    /// The address `listen` is bound to (its port when it asked for port 0).
    pub fn local_addr(&self, listen: &Listen) -> Option<SocketAddr> {
        self.lock()
            .get(&SocketKey::of(listen))?
            .socket
            .local_addr()
            .ok()
    }

    /// Closes every socket: `why` is logged.
    pub fn close_all(&self, why: &str) {
        let mut held = self.lock();
        for key in held.keys() {
            info!(address = %key.address, udp = key.udp, "Syslog socket closed ({why}).");
        }
        held.clear();
    }

    /// The kernel's drops already counted on a UDP socket (`None`: none yet).
    fn drops_counted(&self, key: &SocketKey) -> Option<u64> {
        self.lock()
            .get(key)
            .map(|held| held.drops_counted)
            .filter(|n| *n != u64::MAX)
    }

    fn set_drops_counted(&self, key: &SocketKey, drops: u64) {
        if let Some(held) = self.lock().get_mut(key) {
            held.drops_counted = drops;
        }
    }
}

fn bind(listen: &Listen, udp_receive_buffer: usize) -> io::Result<Bound> {
    match listen.transport {
        Transport::Udp => {
            let socket = std::net::UdpSocket::bind(listen.address)?;
            set_receive_buffer(&socket, udp_receive_buffer);
            socket.set_nonblocking(true)?;
            Ok(Bound::Udp(socket))
        }
        Transport::Tcp | Transport::Tls => {
            // std's listener sets SO_REUSEADDR: a restarted agent binds at once.
            let listener = std::net::TcpListener::bind(listen.address)?;
            listener.set_nonblocking(true)?;
            Ok(Bound::Tcp(listener))
        }
    }
}

/// Asks for a receive buffer of `bytes` (the kernel caps it at `net.core.rmem_max`,
/// unless the agent may force it past).
fn set_receive_buffer(socket: &std::net::UdpSocket, bytes: usize) {
    let value = i32::try_from(bytes).unwrap_or(i32::MAX) as libc::c_int;
    let set = |option| {
        // SAFETY: a valid socket and a c_int of the size given.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
}

/// The syslog listener: its settings and sockets, parsing for `host` in `timezone`.
pub struct SyslogInput {
    pub settings: SyslogSettings,
    pub host: HostIdentity,
    /// The agent's zone (the listener's own `timezone` wins).
    pub timezone: TimeZoneChoice,
    pub metrics: Arc<Metrics>,
    sockets: Vec<(Listen, Bound)>,
    /// The service's sockets, closed when the agent exits.
    registry: Sockets,
}

impl SyslogInput {
    /// The listener on copies of `sockets`' sockets for `settings.listen` (bound now
    /// when not yet).
    pub fn new(
        settings: SyslogSettings,
        host: HostIdentity,
        timezone: TimeZoneChoice,
        metrics: Arc<Metrics>,
        sockets: &Sockets,
    ) -> Result<SyslogInput, ListenError> {
        let taken = sockets.take(&settings.listen, settings.udp_receive_buffer_bytes)?;
        Ok(SyslogInput {
            settings,
            host,
            timezone,
            metrics,
            sockets: taken,
            registry: sockets.clone(),
        })
    }

    /// Listens until `stop` is set, then drains the connections and returns. While
    /// `reloading` says the stop is a reload the sockets stay bound; otherwise (the
    /// agent exits) they are closed.
    pub fn run(
        self,
        out: mpsc::Sender<Chunk>,
        stop: Arc<AtomicBool>,
        reloading: impl Fn() -> bool + Send + 'static,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                error!(error = %e, "Cannot start the syslog listener's runtime; not listening.");
                return;
            }
        };
        // Local tasks: a connection's parser keeps state in cells, and everything
        // runs on this one thread anyway.
        let local = tokio::task::LocalSet::new();
        runtime.block_on(local.run_until(self.serve(out, stop, reloading)));
        // A reverse lookup the resolver still retries is not waited for.
        runtime.shutdown_timeout(Duration::from_millis(100));
        info!("Syslog listener stopped.");
    }

    async fn serve(
        mut self,
        out: mpsc::Sender<Chunk>,
        stop: Arc<AtomicBool>,
        reloading: impl Fn() -> bool,
    ) {
        let (stop_tx, stop_rx) = watch::channel(Phase::Running);
        let shared = Arc::new(Shared {
            timezone: self.settings.timezone.unwrap_or(self.timezone),
            names: Arc::new(SenderNames::new(
                self.host.clone(),
                self.settings.sender_hostname,
            )),
            tls: self.settings.tls.clone().map(TlsAcceptor::from),
            settings: self.settings,
            metrics: self.metrics,
            out,
            connections: AtomicUsize::new(0),
            run: run_nonce(),
            next_connection: AtomicU64::new(0),
            refused_log: LogLimiter::every_minute(),
            truncated_log: LogLimiter::every_minute(),
            framing_log: LogLimiter::every_minute(),
            drops_log: LogLimiter::every_minute(),
            lost_log: LogLimiter::every_minute(),
            panic_log: LogLimiter::every_minute(),
            tls_log: LogLimiter::every_minute(),
            accept_log: LogLimiter::every_minute(),
        });
        let mut listeners = JoinSet::new();
        let mut drops = UdpDrops {
            sockets: Vec::new(),
            registry: self.registry.clone(),
        };
        let sockets = std::mem::take(&mut self.sockets);
        for (mut listen, socket) in sockets {
            let key = SocketKey::of(&listen);
            // Events name the address bound (the port, when 0 was asked for).
            if let Ok(address) = socket.local_addr() {
                listen.address = address;
            }
            let shared = Arc::clone(&shared);
            let stop = stop_rx.clone();
            match socket {
                Bound::Udp(socket) => {
                    drops.watch(key, &socket);
                    match tokio::net::UdpSocket::from_std(socket) {
                        Ok(socket) => {
                            listeners.spawn_local(udp(shared, listen, socket, stop));
                        }
                        Err(e) => error!(listen = %listen, error = %e, "Cannot listen."),
                    }
                }
                Bound::Tcp(listener) => match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        listeners.spawn_local(tcp(shared, listen, listener, stop));
                    }
                    Err(e) => error!(listen = %listen, error = %e, "Cannot listen."),
                },
            }
            info!(listen = %listen, "Syslog listener on.");
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut since_drops = tokio::time::Instant::now();
        while !stop.load(Ordering::Relaxed) && !shared.out.is_closed() {
            tick.tick().await;
            if since_drops.elapsed() >= DROPS_EVERY {
                since_drops = tokio::time::Instant::now();
                drops.count(&shared);
            }
            while let Some(ended) = listeners.try_join_next() {
                error!(
                    panicked = ended.is_err(),
                    "A syslog listener ended while the agent runs; its address is not served until the next reload or restart."
                );
            }
        }
        let mut phase = if reloading() {
            Phase::Reload
        } else {
            Phase::Exit
        };
        if phase == Phase::Exit {
            // The sockets close as soon as each listener has taken what the kernel
            // queued (the drops counted first, while the registry knows them).
            drops.count(&shared);
            drops.close();
            self.registry.close_all("the agent stops");
        }
        let _ = stop_tx.send(phase);
        loop {
            tokio::select! {
                ended = listeners.join_next() => if ended.is_none() { break },
                _ = tick.tick() => {
                    // A stop during a reload makes it an exit.
                    if phase == Phase::Reload && !reloading() {
                        phase = Phase::Exit;
                        drops.count(&shared);
                        drops.close();
                        self.registry.close_all("the agent stops");
                        let _ = stop_tx.send(phase);
                    }
                }
            }
        }
        drops.count(&shared);
    }
}

/// What every listener and connection shares.
struct Shared {
    settings: SyslogSettings,
    timezone: TimeZoneChoice,
    names: Arc<SenderNames>,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    out: mpsc::Sender<Chunk>,
    /// TCP and TLS connections open.
    connections: AtomicUsize,
    /// This listener run's nonce, in every event id.
    run: u64,
    next_connection: AtomicU64,
    refused_log: LogLimiter,
    truncated_log: LogLimiter,
    framing_log: LogLimiter,
    drops_log: LogLimiter,
    lost_log: LogLimiter,
    panic_log: LogLimiter,
    tls_log: LogLimiter,
    accept_log: LogLimiter,
}

impl Shared {
    /// A parser for one sender's messages, counting into the listener's counters.
    fn parser(&self, identity: HostIdentity) -> LineParser {
        LineParser::new(identity, self.timezone).counting(Arc::clone(&self.metrics.parsed_syslog))
    }

    /// Whether `peer` may send; counted and logged when not.
    fn admit(&self, listen: &Listen, peer: SocketAddr) -> bool {
        if senders::allowed(&self.settings.allowed_senders, peer.ip()) {
            return true;
        }
        let refused = self
            .metrics
            .syslog_senders_refused
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if self.refused_log.due() {
            warn!(listen = %listen, sender = %peer.ip(), refused_in_all = refused, "Syslog sender not in allowed_senders; refused.");
        }
        false
    }

    /// Parses one message into `chunk`. A parser panic (a bug) costs that message
    /// alone: counted as a parse failure, logged, the chunk as it was before.
    fn push(&self, message: &Message<'_>, bytes: &[u8], truncated: bool, chunk: &mut Chunk) {
        self.metrics.lines_read.fetch_add(1, Ordering::Relaxed);
        self.metrics.syslog_messages.fetch_add(1, Ordering::Relaxed);
        if truncated {
            let cut = self.metrics.lines_truncated.fetch_add(1, Ordering::Relaxed) + 1;
            if self.truncated_log.due() {
                warn!(
                    source = message.source,
                    sender = message.sender,
                    max_message_bytes = self.settings.max_message_bytes,
                    truncated_in_all = cut,
                    "Syslog message longer than max_message_bytes; kept its start and flagged it truncated."
                );
            }
        }
        let context = LineContext {
            source: message.source,
            source_identity: message.source_identity,
            offset: message.sequence,
            read_at: message.read_at,
        };
        let mark = chunk.mark();
        let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let details = [(SENDERIPADDRESS, message.sender)];
            message
                .parser
                .parse_line_with(bytes, &context, &details, |event| {
                    if truncated {
                        event.details.insert(TRUNCATED, true);
                    }
                    chunk.push_unpositioned(event);
                })
        }));
        if parsed.is_err() {
            chunk.rollback(mark);
            let failures = self.metrics.parse_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.panic_log.due() {
                error!(
                    source = message.source,
                    sender = message.sender,
                    message = %String::from_utf8_lossy(&bytes[..bytes.len().min(512)]),
                    parse_failures_in_all = failures,
                    "The parser panicked on a syslog message (a bug: please report it with this message); skipped it."
                );
            }
        }
    }

    /// Sends `chunk` to the buffer stage (waiting while it is full); false when the
    /// pipeline is gone (its events are then counted lost and logged).
    async fn send(&self, chunk: Chunk, source: &str) -> bool {
        if chunk.is_empty() {
            chunk.recycle();
            return true;
        }
        let events = chunk.len() as u64;
        if self.out.send(chunk).await.is_ok() {
            return true;
        }
        let lost = self
            .metrics
            .syslog_messages_lost
            .fetch_add(events, Ordering::Relaxed)
            + events;
        if self.lost_log.due() {
            error!(
                source,
                events,
                lost_in_all = lost,
                "The buffer stage is gone (the agent stops after a failure): syslog messages read but not buffered are lost."
            );
        }
        false
    }
}

/// Where one message came from.
struct Message<'a> {
    parser: &'a LineParser,
    source: &'a str,
    source_identity: &'a str,
    sequence: u64,
    sender: &'a str,
    read_at: DateTime<Utc>,
}

/// A number that differs between runs of the listener (an input of event ids, so two
/// runs' connections never share one).
fn run_nonce() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    now ^ (u64::from(std::process::id()) << 40)
}

/// A UDP sender: its parser, its address as text, whether its name is final, and
/// when it was asked for.
struct UdpSender {
    parser: LineParser,
    address: String,
    named: bool,
    asked: std::time::Instant,
}

/// A UDP listener: one datagram, one message, received in batches
/// ([`datagrams`]). On a reload it ends at once (the socket stays bound, the kernel
/// queues); on the agent's exit it first reads what the kernel holds (at most
/// [`DRAIN`]).
async fn udp(
    shared: Arc<Shared>,
    listen: Listen,
    socket: tokio::net::UdpSocket,
    mut stop: watch::Receiver<Phase>,
) {
    let source = listen.source();
    let source_identity = format!("{source}|{:016x}", shared.run);
    let mut senders: HashMap<IpAddr, UdpSender> = HashMap::new();
    let max = shared.settings.max_message_bytes;
    // A slot one byte longer than a message may be tells a longer one (or the
    // largest a datagram can be).
    let mut datagrams = Datagrams::new((max + 1).min(65_536));
    let fd = socket.as_raw_fd();
    let mut sequence = 0u64;
    let mut drain_until = None;
    loop {
        match drain_until {
            Some(deadline) if tokio::time::Instant::now() >= deadline => break,
            Some(_) => {}
            None => tokio::select! {
                ready = socket.readable() => if let Err(e) = ready {
                    debug!(listen = %listen, error = %e, "UDP socket not readable.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                },
                _ = stop.changed() => {
                    if *stop.borrow() == Phase::Reload {
                        break;
                    }
                    drain_until = Some(tokio::time::Instant::now() + DRAIN);
                    continue;
                }
            },
        }
        let read_at = Utc::now();
        let mut chunk = Chunk::with_capacity(CHUNK_EVENTS);
        let mut taken = 0;
        let mut empty = false;
        let mut failed = false;
        while taken < CHUNK_EVENTS && chunk.bytes() < CHUNK_BYTES {
            let received = socket.try_io(tokio::io::Interest::READABLE, || datagrams.receive(fd));
            let n = match received {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        debug!(listen = %listen, error = %e, "UDP receive failed.");
                        failed = true;
                    }
                    empty = true;
                    break;
                }
            };
            taken += n.max(1);
            for i in 0..n {
                let datagram = datagrams.get(i);
                let Some(peer) = datagram.sender else {
                    continue;
                };
                if !shared.admit(&listen, peer) {
                    continue;
                }
                let ip = peer.ip().to_canonical();
                let sender = udp_sender(&shared, &mut senders, ip);
                let bytes = datagram.bytes;
                let body_end = bytes
                    .iter()
                    .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
                    .map_or(0, |last| last + 1);
                if body_end == 0 {
                    continue;
                }
                let message = Message {
                    parser: &sender.parser,
                    source: &source,
                    source_identity: &source_identity,
                    sequence,
                    sender: &sender.address,
                    read_at,
                };
                sequence += 1;
                shared.push(
                    &message,
                    &bytes[..body_end.min(max)],
                    body_end > max || datagram.truncated,
                    &mut chunk,
                );
            }
        }
        if !shared.send(chunk, &source).await {
            return;
        }
        if empty && drain_until.is_some() {
            // Exiting, and the kernel holds nothing more.
            break;
        }
        if failed {
            // An error the socket keeps giving (readiness stays set): no busy loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the connections and the stop run between batches of a flood.
        tokio::task::yield_now().await;
    }
}

/// The parser for UDP sender `ip`, made on its first datagram (named by its address
/// until its reverse lookup, if any, is done; asked again after [`senders::NAME_TTL`]).
/// Past [`MAX_UDP_SENDERS`] one other sender's parser is dropped for it.
fn udp_sender<'a>(
    shared: &Shared,
    senders: &'a mut HashMap<IpAddr, UdpSender>,
    ip: IpAddr,
) -> &'a UdpSender {
    let stale = senders
        .get(&ip)
        .is_none_or(|sender| !sender.named || sender.asked.elapsed() >= senders::NAME_TTL);
    if stale {
        let (identity, named) = shared.names.identity(ip);
        let asked = std::time::Instant::now();
        match senders.get_mut(&ip) {
            Some(sender) if sender.parser.host() == &identity => {
                sender.named = named;
                sender.asked = asked;
            }
            _ => {
                if senders.len() >= MAX_UDP_SENDERS
                    && !senders.contains_key(&ip)
                    && let Some(other) = senders.keys().next().copied()
                {
                    senders.remove(&other);
                }
                senders.insert(
                    ip,
                    UdpSender {
                        parser: shared.parser(identity),
                        address: ip.to_string(),
                        named,
                        asked,
                    },
                );
            }
        }
    }
    &senders[&ip]
}

/// A TCP or TLS listener: accepts until the stop, then waits for its connections to
/// drain. On the agent's exit (not a reload) it first takes the connections the
/// kernel queued and closes its copy of the listening socket (the service closed its
/// own), so a sender that reconnects is refused until the next agent listens, instead
/// of writing into a queue no one will read.
async fn tcp(
    shared: Arc<Shared>,
    listen: Listen,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<Phase>,
) {
    let source: Arc<str> = Arc::from(listen.source());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    open(&shared, &listen, &source, stream, peer, &stop, &mut connections);
                }
                Err(e) => {
                    // Out of descriptors, say: the connection waits in the backlog.
                    if shared.accept_log.due() {
                        warn!(listen = %listen, error = %e, "Cannot accept a syslog connection (retrying every 100 ms).");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    let mut listener = Some(listener);
    loop {
        if *stop.borrow_and_update() == Phase::Exit
            && let Some(listener) = listener.take()
        {
            take_queued(&shared, &listen, &source, listener, &stop, &mut connections);
        }
        tokio::select! {
            ended = connections.join_next() => if ended.is_none() { break },
            _ = stop.changed() => {}
        }
    }
}

/// Accepts every connection the kernel queued on `listener`, then closes it.
fn take_queued(
    shared: &Arc<Shared>,
    listen: &Listen,
    source: &Arc<str>,
    listener: tokio::net::TcpListener,
    stop: &watch::Receiver<Phase>,
    connections: &mut JoinSet<()>,
) {
    let Ok(listener) = listener.into_std() else {
        return;
    };
    let mut errors = 0;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(stream));
                if let Ok(stream) = stream {
                    open(shared, listen, source, stream, peer, stop, connections);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // A connection reset before it was taken, an interrupted call: go on.
            Err(_) if errors < 64 => errors += 1,
            Err(e) => {
                warn!(listen = %listen, error = %e, "Cannot take the queued syslog connections; the rest are reset.");
                break;
            }
        }
    }
}

/// One of `max_connections`, given back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves an accepted connection in its own task (after the TLS handshake on a
/// `tls://` listener), unless its sender is refused or `max_connections` are open.
fn open(
    shared: &Arc<Shared>,
    listen: &Listen,
    source: &Arc<str>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    stop: &watch::Receiver<Phase>,
    connections: &mut JoinSet<()>,
) {
    if !shared.admit(listen, peer) {
        return;
    }
    let open = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
    if open > shared.settings.max_connections {
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        let refused = shared
            .metrics
            .syslog_connections_refused
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if shared.refused_log.due() {
            warn!(listen = %listen, sender = %peer, max_connections = shared.settings.max_connections, refused_in_all = refused, "Too many syslog connections; closed a new one.");
        }
        return;
    }
    shared
        .metrics
        .syslog_connections
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let shared = Arc::clone(shared);
    let source = Arc::clone(source);
    let stop = stop.clone();
    let listen = *listen;
    connections.spawn_local(async move {
        // Given back however the task ends (a panic included).
        let _slot = Slot(&shared.connections);
        let number = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        match (listen.transport, &shared.tls) {
            (Transport::Tcp | Transport::Udp, _) => {
                connection(&shared, &source, stream, peer, number, stop).await
            }
            (Transport::Tls, Some(acceptor)) => {
                let mut stopped = stop.clone();
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                tokio::select! {
                    done = handshake => match done {
                        Ok(Ok(stream)) => {
                            connection(&shared, &source, stream, peer, number, stop).await
                        }
                        Ok(Err(e)) => handshake_failed(&shared, &listen, peer, &e.to_string()),
                        Err(_) => handshake_failed(&shared, &listen, peer, "no handshake within 10 s"),
                    },
                    // Stopping: a handshake not done yet is not waited for (no message
                    // has come on it).
                    _ = stopped.wait_for(|phase| *phase != Phase::Running) => {}
                }
            }
            (Transport::Tls, None) => {
                handshake_failed(&shared, &listen, peer, "no TLS certificate configured")
            }
        }
    });
}

fn handshake_failed(shared: &Shared, listen: &Listen, peer: SocketAddr, error: &str) {
    let failed = shared
        .metrics
        .syslog_tls_failures
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    if shared.tls_log.due() {
        warn!(listen = %listen, sender = %peer, error, failed_in_all = failed, "Syslog TLS handshake failed; connection closed.");
    }
}

/// A stopping connection's budgets: how much longer it may wait for its sender
/// ([`DRAIN`], spent only while a read waits) and when it is cut whatever ([`DRAIN_MAX`]).
struct Draining {
    wait_left: Duration,
    end: tokio::time::Instant,
}

/// One TCP or TLS connection: reads, frames and parses its messages until the sender
/// closes it, it breaks its framing, or the listener stops (then it closes its side
/// and reads to the sender's close, within [`Draining`]'s budgets).
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    source: &str,
    mut stream: S,
    peer: SocketAddr,
    number: u64,
    mut stop: watch::Receiver<Phase>,
) {
    let ip = peer.ip().to_canonical();
    let (identity, mut named) = shared.names.identity(ip);
    let mut asked = std::time::Instant::now();
    let mut parser = shared.parser(identity);
    let sender = ip.to_string();
    let source_identity = format!("{source}|{peer}|{:016x}-{number}", shared.run);
    let mut framer = Framer::new(shared.settings.max_message_bytes);
    let mut sequence = 0u64;
    let mut draining: Option<Draining> = None;
    debug!(source, sender = %peer, "Syslog connection opened.");
    loop {
        if draining.is_none() && *stop.borrow_and_update() != Phase::Running {
            let began = tokio::time::Instant::now();
            // The sender sees the close and stops sending here; what it sent before is
            // read below.
            let _ = tokio::time::timeout(DRAIN, stream.shutdown()).await;
            draining = Some(Draining {
                wait_left: DRAIN.saturating_sub(began.elapsed()),
                end: began + DRAIN_MAX,
            });
        }
        let mut cut = false;
        let read = match &mut draining {
            None => tokio::select! {
                read = stream.read_buf(framer.spare()) => read,
                _ = stop.changed() => continue,
            },
            Some(draining) => {
                let began = tokio::time::Instant::now();
                let limit = (began + draining.wait_left).min(draining.end);
                let read = tokio::time::timeout_at(limit, stream.read_buf(framer.spare())).await;
                draining.wait_left = draining.wait_left.saturating_sub(began.elapsed());
                match read {
                    Ok(read) => read,
                    Err(_) => {
                        cut = true;
                        Ok(0)
                    }
                }
            }
        };
        if !named || asked.elapsed() >= senders::NAME_TTL {
            // The sender's reverse name came in (or changed) since: its messages take
            // it from now.
            let (identity, now_named) = shared.names.identity(ip);
            asked = std::time::Instant::now();
            named = now_named;
            if parser.host() != &identity {
                parser = shared.parser(identity);
            }
        }
        let read_at = Utc::now();
        let message = |sequence| Message {
            parser: &parser,
            source,
            source_identity: &source_identity,
            sequence,
            sender: &sender,
            read_at,
        };
        let mut chunk = Chunk::with_capacity(CHUNK_EVENTS.min(16));
        let ended = match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                debug!(source, sender = %peer, error = %e, "Syslog connection broke.");
                true
            }
        };
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    shared.push(
                        &message(sequence),
                        framer.bytes(&frame),
                        frame.truncated,
                        &mut chunk,
                    );
                    sequence += 1;
                    if chunk.len() >= CHUNK_EVENTS || chunk.bytes() >= CHUNK_BYTES {
                        let full =
                            std::mem::replace(&mut chunk, Chunk::with_capacity(CHUNK_EVENTS));
                        if !shared.send(full, source).await {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let errors = shared
                        .metrics
                        .syslog_framing_errors
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    if shared.framing_log.due() {
                        warn!(source, sender = %peer, error = %e, framing_errors_in_all = errors, "Syslog stream is not framed as it began; kept what came before and closed the connection.");
                    }
                    shared.send(chunk, source).await;
                    return;
                }
            }
        }
        if ended {
            if let Some(frame) = framer.finish() {
                shared.push(
                    &message(sequence),
                    framer.bytes(&frame),
                    frame.truncated || cut,
                    &mut chunk,
                );
            }
            if cut && shared.framing_log.due() {
                warn!(
                    source,
                    sender = %peer,
                    "Syslog sender neither stopped sending nor closed after the agent closed the connection while stopping (2 s of waiting for it, 10 s in all); closed it (what it sent after that is the sender's to send again)."
                );
            }
            shared.send(chunk, source).await;
            debug!(source, sender = %peer, messages = sequence, "Syslog connection closed.");
            return;
        }
        if !shared.send(chunk, source).await {
            return;
        }
    }
}

/// The kernel's count of datagrams dropped on the UDP listeners' sockets (receive
/// buffer full), read with `SO_MEMINFO`; what was counted is kept by [`Sockets`], so
/// drops while a reload restarts the pipeline are counted too.
struct UdpDrops {
    /// Each socket's key and a copy of it (open while this is).
    sockets: Vec<(SocketKey, std::net::UdpSocket)>,
    registry: Sockets,
}

impl UdpDrops {
    fn watch(&mut self, key: SocketKey, socket: &std::net::UdpSocket) {
        let Ok(copy) = socket.try_clone() else {
            return;
        };
        if self.registry.drops_counted(&key).is_none()
            && let Some(now) = socket_drops(copy.as_raw_fd())
        {
            // Drops from before the agent bound it are not ours to count.
            self.registry.set_drops_counted(&key, now);
        }
        self.sockets.push((key, copy));
    }

    /// Lets go of the copies (the sockets close with the listeners' own).
    fn close(&mut self) {
        self.sockets.clear();
    }

    /// Adds drops since the last count to the metrics (logged once a minute).
    fn count(&mut self, shared: &Shared) {
        let mut new = 0;
        for (key, socket) in &self.sockets {
            let Some(drops) = socket_drops(socket.as_raw_fd()) else {
                continue;
            };
            let counted = self.registry.drops_counted(key).unwrap_or(drops);
            new += drops.saturating_sub(counted);
            self.registry.set_drops_counted(key, drops);
        }
        if new == 0 {
            return;
        }
        let all = shared
            .metrics
            .udp_datagrams_dropped
            .fetch_add(new, Ordering::Relaxed)
            + new;
        if shared.drops_log.due() {
            warn!(
                dropped = new,
                dropped_in_all = all,
                "The kernel dropped syslog datagrams: the UDP receive buffer was full (agent busy, or the disk buffer full). Raise udp_receive_buffer_bytes (and net.core.rmem_max), or have senders use TCP."
            );
        }
    }
}

/// A socket's drop count (`SO_MEMINFO`'s `SK_MEMINFO_DROPS`).
fn socket_drops(fd: RawFd) -> Option<u64> {
    const SK_MEMINFO_VARS: usize = 9;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt into a buffer of `len` bytes on a descriptor we hold.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize > SK_MEMINFO_DROPS * 4).then(|| u64::from(info[SK_MEMINFO_DROPS]))
}

#[cfg(test)]
mod tests;
