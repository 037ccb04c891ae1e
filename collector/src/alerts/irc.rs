//! The IRC notifier: one long-lived connection (TLS by default) that registers a nick
//! (no NickServ), joins the alert channels and says each alert in MozDef's form,
//! `SEVERITY: category summary`.
//!
//! Alerts are queued (at most [`QUEUE`]; the oldest waiting one is dropped, counted
//! and logged when full) and sent by a background task: a slow or unreachable server
//! never holds up a rule or another notifier. Flood-safe: a burst of [`BURST`] lines,
//! then one every [`PACE`], as servers expect of a well-behaved client. Reconnects with
//! backoff (1 s doubling to 60 s); a nick in use gets `_` appended.

pub mod config;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use picket_common::backoff::Backoff;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

pub use self::config::IrcSettings;

/// Most alerts waiting to be said.
pub const QUEUE: usize = 1000;
/// Lines sent at once before pacing starts.
pub const BURST: usize = 4;
/// Time between lines after the burst.
pub const PACE: Duration = Duration::from_millis(1000);
/// Longest line body sent (IRC lines are 512 bytes with the command and CRLF).
const MAX_TEXT: usize = 400;

/// A line to say in a channel.
#[derive(Debug, Clone)]
struct Line {
    channel: String,
    text: String,
}

/// The handle rules use; the connection lives in its own task.
pub struct Irc {
    settings: IrcSettings,
    queue: Arc<Mutex<VecDeque<Line>>>,
    wake: Arc<Notify>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Irc {
    /// Starts the connection task.
    pub fn start(settings: IrcSettings) -> Irc {
        let irc = Irc {
            settings,
            queue: Arc::default(),
            wake: Arc::default(),
            dropped: Arc::default(),
        };
        let settings = irc.settings.clone();
        let queue = Arc::clone(&irc.queue);
        let wake = Arc::clone(&irc.wake);
        tokio::spawn(async move { connection_loop(settings, queue, wake).await });
        irc
    }

    pub fn name(&self) -> String {
        format!("irc {}:{}", self.settings.host, self.settings.port)
    }

    /// Queues `text` for `channel` (the default one when `None`).
    pub async fn say(&self, channel: Option<&str>, text: &str) {
        let channel = channel
            .filter(|c| c.starts_with('#') || c.starts_with('&'))
            .unwrap_or(&self.settings.channel)
            .to_string();
        let mut text: String = text
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        let mut queue = self.queue.lock().await;
        if queue.len() >= QUEUE {
            queue.pop_front();
            let n = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            warn!(
                dropped_in_all = n,
                "IRC queue full: the oldest waiting alert was not said (it is stored and went to the other notifiers)."
            );
        }
        queue.push_back(Line { channel, text });
        drop(queue);
        self.wake.notify_one();
    }
}

/// Why an IRC connection ended or could not be made.
#[derive(Debug, Error)]
enum IrcError {
    #[error("{address}: no connection within 30 s")]
    Timeout { address: String },
    #[error("{address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("CA bundle: {0}")]
    CaBundle(rustls::pki_types::pem::Error),
    #[error("CA certificate: {0}")]
    CaCertificate(rustls::Error),
    #[error("{host}: {source}")]
    ServerName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("{address}: TLS: {source}")]
    Tls {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("server said: {0}")]
    Server(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn open(settings: &IrcSettings) -> Result<Box<dyn Stream>, IrcError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let tcp = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    .map_err(|_| IrcError::Timeout {
        address: address.clone(),
    })?
    .map_err(|source| IrcError::Connect {
        address: address.clone(),
        source,
    })?;
    if !settings.tls {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_pem {
        Some(pem) => {
            for cert in rustls_pemfile_certs(pem)? {
                roots.add(cert).map_err(IrcError::CaCertificate)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(settings.host.clone()).map_err(|source| {
            IrcError::ServerName {
                host: settings.host.clone(),
                source,
            }
        })?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| IrcError::Tls { address, source })?;
    Ok(Box::new(tls))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, IrcError> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(IrcError::CaBundle)
}

async fn connection_loop(
    settings: IrcSettings,
    queue: Arc<Mutex<VecDeque<Line>>>,
    wake: Arc<Notify>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let outcome = session(&settings, &queue, &wake).await;
        if outcome.is_ok() {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        if let Err(e) = outcome {
            warn!(server = %format!("{}:{}", settings.host, settings.port), error = %e, retry_in = ?delay, "IRC connection failed; alerts wait in the queue.");
        }
        tokio::time::sleep(delay).await;
    }
}

/// One connection: register, join, say what is queued, answer pings. Returns when the
/// server closes it.
async fn session(
    settings: &IrcSettings,
    queue: &Mutex<VecDeque<Line>>,
    wake: &Notify,
) -> Result<(), IrcError> {
    let stream = open(settings).await?;
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    let send = |text: String| format!("{text}\r\n").into_bytes();
    if let Some(password) = &settings.password {
        write
            .write_all(&send(format!("PASS {}", password.expose())))
            .await?;
    }
    let mut nick = settings.nick.clone();
    write
        .write_all(&send(format!(
            "NICK {nick}\r\nUSER {nick} 0 * :Picket alerts"
        )))
        .await?;
    let mut registered = false;
    let mut joined: BTreeSet<String> = BTreeSet::new();
    let mut budget = BURST;
    let mut next_refill = tokio::time::Instant::now() + PACE;
    loop {
        // Say what waits, within the flood budget, once registered.
        if registered {
            let now = tokio::time::Instant::now();
            while now >= next_refill {
                budget = (budget + 1).min(BURST);
                next_refill += PACE;
            }
            while budget > 0 {
                let Some(line) = queue.lock().await.pop_front() else {
                    break;
                };
                if !joined.contains(&line.channel) {
                    write
                        .write_all(&send(format!("JOIN {}", line.channel)))
                        .await?;
                    joined.insert(line.channel.clone());
                    budget = budget.saturating_sub(1);
                }
                let sent = write
                    .write_all(&send(format!("PRIVMSG {} :{}", line.channel, line.text)))
                    .await;
                if let Err(e) = sent {
                    queue.lock().await.push_front(line);
                    return Err(e.into());
                }
                budget = budget.saturating_sub(1);
            }
        }
        let pending = registered && !queue.lock().await.is_empty();
        let tick = if pending {
            next_refill.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(300)
        };
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else {
                    return Err(IrcError::Closed);
                };
                let mut parts = line.splitn(3, ' ');
                let first = parts.next().unwrap_or("");
                if first == "PING" {
                    let token = line.get(5..).unwrap_or("");
                    write.write_all(&send(format!("PONG {token}"))).await?;
                    continue;
                }
                match parts.next().unwrap_or("") {
                    "001" => {
                        registered = true;
                        info!(server = %settings.host, nick = %nick, "IRC: registered.");
                        write.write_all(&send(format!("JOIN {}", settings.channel))).await?;
                        joined.insert(settings.channel.clone());
                    }
                    "433" if !registered => {
                        nick.push('_');
                        write.write_all(&send(format!("NICK {nick}"))).await?;
                    }
                    "ERROR" => return Err(IrcError::Server(line)),
                    _ if first == "ERROR" => return Err(IrcError::Server(line)),
                    _ => {}
                }
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}
