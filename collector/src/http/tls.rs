//! HTTPS for the ingest API: the server's certificate and key, optional client
//! certificates (mutual TLS) from a configured CA, and a listener that completes TLS
//! handshakes off the accept loop so one slow or silent client cannot hold up others.
//!
//! Each accepted connection carries a [`Peer`]: its address and, with mutual TLS, the
//! name in its certificate (the subject's common name, else its first DNS name), which
//! ingest records as `details.agentidentity`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use picket_common::config::KeyError;
use picket_common::tls::ServerTlsKeys;
use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::http::connections::{Connections, Slot};

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    /// The client certificate's name, with mutual TLS.
    pub identity: Option<String>,
}

/// The server's TLS settings ([`picket_common::tls::server_config`] for
/// `[collector.http]`'s keys), offering HTTP/2 and HTTP/1.1.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, KeyError> {
    let keys = ServerTlsKeys::of("collector.http");
    let mut config = picket_common::tls::server_config(cert, key, client_ca, &keys)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS settings new connections are accepted with (and whether client
/// certificates are required): replaced when SIGHUP reloads the certificate, key or
/// client CA. Connections already open keep what they were accepted with.
#[derive(Clone)]
pub struct TlsState(Arc<std::sync::RwLock<(Arc<ServerConfig>, bool)>>);

impl TlsState {
    pub fn new(config: Arc<ServerConfig>, client_certificates: bool) -> TlsState {
        TlsState(Arc::new(std::sync::RwLock::new((
            config,
            client_certificates,
        ))))
    }

    /// From the next connection on.
    pub fn replace(&self, config: Arc<ServerConfig>, client_certificates: bool) {
        let new = (config, client_certificates);
        match self.0.write() {
            Ok(mut held) => *held = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    fn get(&self) -> (Arc<ServerConfig>, bool) {
        match self.0.read() {
            Ok(held) => held.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Accepts TCP connections and hands out those whose TLS handshake completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer, Slot)>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with what `state` holds at each accept; handshakes run
    /// in their own tasks. A connection gets
    /// its place in `connections` before its handshake (one address cannot hold more
    /// handshakes open than connections). With `client_certificates`, a certificate
    /// the CA signed but that names nobody (no subject CN, no DNS name) is refused: its
    /// events could not say who sent them.
    pub fn new(tcp: TcpListener, state: TlsState, connections: Arc<Connections>) -> TlsListener {
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, remote) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        debug!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let Some(slot) = connections.admit(remote.ip()) else {
                    continue;
                };
                let (config, client_certificates) = state.get();
                let acceptor = TlsAcceptor::from(config);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let identity = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|cert| certificate_name(cert));
                            if client_certificates && identity.is_none() {
                                warn!(peer = %remote, "Refused a client certificate that names nobody (no subject CN, no DNS name): events need a sender's name.");
                                return;
                            }
                            let peer = Peer {
                                address: remote,
                                identity,
                            };
                            let _ = tx.send((tls, peer, slot)).await;
                        }
                        Ok(Err(e)) => debug!(peer = %remote, error = %e, "TLS handshake refused."),
                        Err(_) => debug!(peer = %remote, "TLS handshake timed out."),
                    }
                });
            }
        });
        TlsListener { ready }
    }

    /// The next connection whose handshake completed.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, Peer, Slot) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }
}

/// The subject's common name, else the first DNS name of the certificate.
fn certificate_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Some(cn) = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.trim().is_empty())
    {
        return Some(cn.to_string());
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::DNSName(dns) if !dns.trim().is_empty() => {
            Some(dns.to_string())
        }
        _ => None,
    })
}
