//! The syslog listener (`[agent.inputs.syslog]`): devices that cannot run an agent
//! (firewalls, switches, appliances) send to an agent on a relay host over UDP, TCP or
//! TLS (RFC 5426, 6587, 5425), and their messages get the file input's parsing,
//! buffering and delivery.
//!
//! - One thread (`syslog-input`) runs the listeners on its own single-threaded runtime,
//!   parsing as the file input does: `<PRI>`, RFC 3164 and RFC 5424 headers (structured
//!   data into `details.structureddata`), CEF. The sender's address goes to
//!   `details.senderipaddress`; a header without a host (or `-`, `localhost`) gets the
//!   sender's reverse DNS name or address ([`senders`]), a loopback sender is the relay.
//! - TCP and TLS: each connection is framed by octet counting or by LF, told by its
//!   first bytes ([`framing`]). Parsed messages go to the buffer stage through the
//!   pipeline's bounded channel: while the disk buffer is full the connection is not
//!   read, so the sender's own queue holds them (never dropped here). A stop (SIGTERM,
//!   or SIGHUP's reload) closes each connection's sending side and reads what the
//!   sender wrote until it closes too (at most [`DRAIN`]): a sender that reconnects on
//!   a close resends nothing and loses nothing.
//! - UDP: each datagram is a message. While the buffer is full the socket is not read
//!   and the kernel drops what overflows its receive buffer: those drops are read from
//!   `/proc/net/udp` and counted (`udp_datagrams_dropped`, in heartbeats
//!   `syslogudpdropped`), logged once a minute.
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
pub mod framing;
pub mod senders;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
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
use self::framing::Framer;
use self::senders::SenderNames;
use super::Chunk;
use crate::host::HostIdentity;
use crate::metrics::Metrics;
use crate::parsers::{LineContext, LineParser, TimeZoneChoice};

/// Longest a stopping listener reads a connection after closing its side.
pub const DRAIN: Duration = Duration::from_secs(2);
/// Longest a TLS sender may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages parsed into one chunk at most before it goes to the buffer stage.
const CHUNK_EVENTS: usize = 256;
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
}

/// The listening sockets, kept by the service across reloads (the pipeline takes
/// copies): while a reload restarts the pipeline the kernel keeps queueing.
#[derive(Debug, Clone, Default)]
pub struct Sockets {
    bound: Arc<Mutex<HashMap<Listen, Bound>>>,
}

impl Sockets {
    /// Binds every address of `listen` not bound yet (nothing is closed).
    pub fn bind(&self, listen: &[Listen], udp_receive_buffer: usize) -> Result<(), ListenError> {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        for l in listen {
            if bound.contains_key(l) {
                continue;
            }
            let socket = bind(l, udp_receive_buffer).map_err(|source| ListenError {
                listen: *l,
                hint: match source.kind() {
                    io::ErrorKind::PermissionDenied if l.address.port() < 1024 => {
                        " (a port below 1024 needs CAP_NET_BIND_SERVICE: see the README, \"Syslog listener\", for the unit drop-in)"
                    }
                    io::ErrorKind::AddrInUse => " (another program listens there)",
                    _ => "",
                },
                source,
            })?;
            info!(listen = %l, "Syslog listener bound.");
            bound.insert(*l, socket);
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
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        bound.retain(|l, _| {
            let kept = listen.contains(l);
            if !kept {
                info!(listen = %l, "Syslog listener closed (no longer configured).");
            }
            kept
        });
        listen
            .iter()
            .map(|l| {
                let socket = bound.get(l).map(Bound::try_clone).transpose();
                match socket {
                    Ok(Some(socket)) => Ok((*l, socket)),
                    Ok(None) => unreachable!("bound above"),
                    Err(source) => Err(ListenError {
                        listen: *l,
                        source,
                        hint: "",
                    }),
                }
            })
            .collect()
    }

    /// The address `listen` is bound to (its port when it asked for port 0).
    pub fn local_addr(&self, listen: &Listen) -> Option<SocketAddr> {
        let bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        match bound.get(listen)? {
            Bound::Udp(socket) => socket.local_addr().ok(),
            Bound::Tcp(listener) => listener.local_addr().ok(),
        }
    }

    /// Closes every socket (no listener configured any more).
    pub fn close_all(&self) {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        for l in bound.keys() {
            info!(listen = %l, "Syslog listener closed (no longer configured).");
        }
        bound.clear();
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

    /// Listens until `stop` is set, then drains the connections and returns. When
    /// `reloading` says the stop is no reload, the listening sockets are closed first.
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
            names: SenderNames::new(self.host.clone(), self.settings.sender_hostname),
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
        });
        let mut listeners = JoinSet::new();
        let mut udp_inodes = Vec::new();
        let sockets = std::mem::take(&mut self.sockets);
        for (mut listen, socket) in sockets {
            // Events name the address bound (the port, when 0 was asked for).
            let bound = match &socket {
                Bound::Udp(socket) => socket.local_addr(),
                Bound::Tcp(listener) => listener.local_addr(),
            };
            if let Ok(address) = bound {
                listen.address = address;
            }
            let shared = Arc::clone(&shared);
            let stop = stop_rx.clone();
            match socket {
                Bound::Udp(socket) => {
                    udp_inodes.push(socket_inode(&socket));
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
        let mut drops = UdpDrops::new(udp_inodes.into_iter().flatten().collect());
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut since_drops = tokio::time::Instant::now();
        while !stop.load(Ordering::Relaxed) && !shared.out.is_closed() {
            tick.tick().await;
            if since_drops.elapsed() >= DROPS_EVERY {
                since_drops = tokio::time::Instant::now();
                drops.count(&shared);
            }
        }
        let phase = if reloading() {
            Phase::Reload
        } else {
            // Exiting: the sockets close as soon as each listener has taken what the
            // kernel queued.
            self.registry.close_all();
            Phase::Exit
        };
        let _ = stop_tx.send(phase);
        while listeners.join_next().await.is_some() {}
        drops.count(&shared);
    }
}

/// What every listener and connection shares.
struct Shared {
    settings: SyslogSettings,
    timezone: TimeZoneChoice,
    names: SenderNames,
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
}

impl Shared {
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

    /// Parses one message into `chunk`.
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
        message.parser.parse_line(bytes, &context, |event| {
            if truncated {
                event.details.insert(TRUNCATED, true);
            }
            event
                .details
                .insert(SENDERIPADDRESS, message.sender.to_string());
            chunk.push_unpositioned(event);
        });
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

/// Sends `chunk` to the buffer stage (waiting while it is full); false when the
/// pipeline is gone.
async fn send(shared: &Shared, chunk: Chunk) -> bool {
    if chunk.is_empty() {
        chunk.recycle();
        return true;
    }
    shared.out.send(chunk).await.is_ok()
}

/// A UDP listener: one datagram, one message.
async fn udp(
    shared: Arc<Shared>,
    listen: Listen,
    socket: tokio::net::UdpSocket,
    mut stop: watch::Receiver<Phase>,
) {
    let source = listen.source();
    let source_identity = format!("{source}|{:016x}", shared.run);
    let mut senders: HashMap<IpAddr, (LineParser, String)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut sequence = 0u64;
    let mut stopping = false;
    loop {
        let first = if stopping {
            match socket.try_recv_from(&mut buf) {
                Ok(received) => received,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok(received) => received,
                    Err(e) => {
                        debug!(listen = %listen, error = %e, "UDP receive failed.");
                        continue;
                    }
                },
                _ = stop.changed() => {
                    // What the kernel holds already is read, then the listener ends.
                    stopping = true;
                    continue;
                }
            }
        };
        let read_at = Utc::now();
        let mut chunk = Chunk::with_capacity(CHUNK_EVENTS);
        let mut next = Some(first);
        while let Some((len, peer)) = next.take() {
            if shared.admit(&listen, peer) {
                let ip = peer.ip().to_canonical();
                if !senders.contains_key(&ip) {
                    if senders.len() >= MAX_UDP_SENDERS {
                        senders.clear();
                    }
                    let identity = shared.names.identity(ip).await;
                    senders.insert(
                        ip,
                        (LineParser::new(identity, shared.timezone), ip.to_string()),
                    );
                }
                let (parser, sender) = &senders[&ip];
                let max = shared.settings.max_message_bytes;
                let bytes = &buf[..len];
                let body_end = bytes
                    .iter()
                    .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
                    .map_or(0, |last| last + 1);
                if body_end > 0 {
                    let message = Message {
                        parser,
                        source: &source,
                        source_identity: &source_identity,
                        sequence,
                        sender,
                        read_at,
                    };
                    sequence += 1;
                    shared.push(
                        &message,
                        &bytes[..body_end.min(max)],
                        body_end > max,
                        &mut chunk,
                    );
                }
            }
            if chunk.len() < CHUNK_EVENTS {
                next = socket.try_recv_from(&mut buf).ok();
            }
        }
        if !send(&shared, chunk).await {
            return;
        }
    }
}

/// A TCP or TLS listener: accepts until the stop, then waits for its connections to
/// drain. On the agent's exit (not a reload) it first takes the connections the kernel
/// queued and closes the listening socket, so a sender that reconnects is refused
/// until the next agent listens, instead of writing into a queue no one will read.
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
                    warn!(listen = %listen, error = %e, "Cannot accept a syslog connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    if *stop.borrow() == Phase::Exit
        && let Ok(listener) = listener.into_std()
    {
        // The service closed its copy of the socket: with this one it stops listening.
        while let Ok((stream, peer)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                open(
                    &shared,
                    &listen,
                    &source,
                    stream,
                    peer,
                    &stop,
                    &mut connections,
                );
            }
        }
    }
    while connections.join_next().await.is_some() {}
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
        let number = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        match (listen.transport, &shared.tls) {
            (Transport::Tls, Some(acceptor)) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        connection(&shared, &source, stream, peer, number, stop).await
                    }
                    Ok(Err(e)) => handshake_failed(&shared, &listen, peer, &e.to_string()),
                    Err(_) => handshake_failed(&shared, &listen, peer, "no handshake within 10 s"),
                }
            }
            _ => connection(&shared, &source, stream, peer, number, stop).await,
        }
        shared.connections.fetch_sub(1, Ordering::Relaxed);
    });
}

fn handshake_failed(shared: &Shared, listen: &Listen, peer: SocketAddr, error: &str) {
    let failed = shared
        .metrics
        .syslog_tls_failures
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    if shared.refused_log.due() {
        warn!(listen = %listen, sender = %peer, error, failed_in_all = failed, "Syslog TLS handshake failed; connection closed.");
    }
}

/// One TCP or TLS connection: reads, frames and parses its messages until the sender
/// closes it, it breaks its framing, or the listener stops (then it closes its side
/// and reads to the sender's close, at most [`DRAIN`]).
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    source: &str,
    mut stream: S,
    peer: SocketAddr,
    number: u64,
    mut stop: watch::Receiver<Phase>,
) {
    let ip = peer.ip().to_canonical();
    let parser = LineParser::new(shared.names.identity(ip).await, shared.timezone);
    let sender = ip.to_string();
    let source_identity = format!("{source}|{peer}|{:016x}-{number}", shared.run);
    let mut framer = Framer::new(shared.settings.max_message_bytes);
    let mut sequence = 0u64;
    let mut drain_until = None;
    debug!(source, sender = %peer, "Syslog connection opened.");
    loop {
        if drain_until.is_none() && *stop.borrow_and_update() != Phase::Running {
            drain_until = Some(tokio::time::Instant::now() + DRAIN);
            // The sender sees the close and stops sending here; what it sent before is
            // read below.
            let _ = tokio::time::timeout(DRAIN, stream.shutdown()).await;
        }
        let read = match drain_until {
            None => tokio::select! {
                read = stream.read_buf(framer.spare()) => read,
                _ = stop.changed() => continue,
            },
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, stream.read_buf(framer.spare())).await {
                    Ok(read) => read,
                    Err(_) => {
                        debug!(source, sender = %peer, "Syslog sender did not close within the drain time; closing.");
                        Ok(0)
                    }
                }
            }
        };
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
                    if chunk.len() >= CHUNK_EVENTS {
                        let full =
                            std::mem::replace(&mut chunk, Chunk::with_capacity(CHUNK_EVENTS));
                        if !send(shared, full).await {
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
                    send(shared, chunk).await;
                    return;
                }
            }
        }
        if ended {
            if let Some(frame) = framer.finish() {
                shared.push(
                    &message(sequence),
                    framer.bytes(&frame),
                    frame.truncated,
                    &mut chunk,
                );
            }
            send(shared, chunk).await;
            debug!(source, sender = %peer, messages = sequence, "Syslog connection closed.");
            return;
        }
        if !send(shared, chunk).await {
            return;
        }
    }
}

/// The kernel's count of datagrams dropped on the UDP listeners' sockets (receive
/// buffer full), from `/proc/net/udp` and `/proc/net/udp6`.
struct UdpDrops {
    /// Each socket's inode and the drops already counted.
    sockets: Vec<(u64, u64)>,
}

impl UdpDrops {
    fn new(inodes: Vec<u64>) -> UdpDrops {
        let mut drops = UdpDrops {
            sockets: inodes.into_iter().map(|inode| (inode, 0)).collect(),
        };
        // A socket kept over a reload has drops counted already.
        let now = drops.read();
        for (inode, seen) in &mut drops.sockets {
            *seen = now.get(inode).copied().unwrap_or(0);
        }
        drops
    }

    fn read(&self) -> HashMap<u64, u64> {
        let mut found = HashMap::new();
        if self.sockets.is_empty() {
            return found;
        }
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // ... inode (field 9), ref, pointer, drops (last).
                let (Some(inode), Some(drops)) = (fields.get(9), fields.last()) else {
                    continue;
                };
                if let (Ok(inode), Ok(drops)) = (inode.parse::<u64>(), drops.parse::<u64>())
                    && self.sockets.iter().any(|(i, _)| *i == inode)
                {
                    found.insert(inode, drops);
                }
            }
        }
        found
    }

    /// Adds drops since the last count to the metrics (logged once a minute).
    fn count(&mut self, shared: &Shared) {
        let now = self.read();
        let mut new = 0;
        for (inode, seen) in &mut self.sockets {
            if let Some(drops) = now.get(inode) {
                new += drops.saturating_sub(*seen);
                *seen = *drops;
            }
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

/// A socket's inode (as `/proc/net/udp` lists it).
fn socket_inode(socket: &std::net::UdpSocket) -> Option<u64> {
    // SAFETY: fstat on a valid descriptor into a zeroed stat.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(socket.as_raw_fd(), &mut stat) };
    (rc == 0).then_some(stat.st_ino)
}

#[cfg(test)]
mod tests;
