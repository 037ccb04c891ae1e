//! `[agent.inputs.syslog]`: its keys, their defaults, and the checked settings the
//! syslog listener runs on.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use picket_common::config::KeyError;
use picket_common::tls::{ServerTlsKeys, server_config};
use serde::Deserialize;

use super::senders::Cidr;
use crate::parsers::TimeZoneChoice;

const TABLE: &str = "agent.inputs.syslog";

/// `[agent.inputs.syslog]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogInputConfig {
    /// Where to listen: `udp://ADDR:PORT`, `tcp://ADDR:PORT`, `tls://ADDR:PORT` (any
    /// subset; none, the default, means no listener).
    #[serde(default)]
    pub listen: Vec<String>,
    /// The listener's certificate chain (PEM), for `tls://`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// With it, `tls://` senders must show a certificate this CA signed (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Longest message kept whole; a longer one is kept cut, flagged
    /// `details.truncated`.
    #[serde(
        default = "default_max_message_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub max_message_bytes: usize,
    /// TCP and TLS connections open at once (over all listeners); more are closed at
    /// once, counted and logged. Each holds up to about twice `max_message_bytes`
    /// while a long message arrives.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Who may send: addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`); empty,
    /// the default, lets anyone. Others are refused (TCP closed, UDP ignored), counted.
    #[serde(default)]
    pub allowed_senders: Vec<String>,
    /// The host name of a message whose header names none: `reverse` (the sender's
    /// reverse DNS name, else its address) or `address`.
    #[serde(default = "default_sender_hostname")]
    pub sender_hostname: SenderHostname,
    /// Zone of messages whose time has none (BSD syslog): an IANA name, `UTC` or
    /// `local`; default `agent.timezone`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The UDP sockets' receive buffer: what a burst can fill while the agent is busy
    /// before the kernel drops datagrams (the kernel caps it at
    /// `net.core.rmem_max` unless the agent may raise it).
    #[serde(
        default = "default_udp_receive_buffer_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub udp_receive_buffer_bytes: usize,
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_sender_hostname() -> SenderHostname {
    SenderHostname::Reverse
}
fn default_udp_receive_buffer_bytes() -> usize {
    8 * 1024 * 1024
}

impl Default for SyslogInputConfig {
    fn default() -> Self {
        SyslogInputConfig {
            listen: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            client_ca_file: None,
            max_message_bytes: default_max_message_bytes(),
            max_connections: default_max_connections(),
            allowed_senders: Vec::new(),
            sender_hostname: default_sender_hostname(),
            timezone: None,
            udp_receive_buffer_bytes: default_udp_receive_buffer_bytes(),
        }
    }
}

/// How a message whose header names no host is given one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderHostname {
    /// The sender's reverse DNS name, its address when it has none. Looked up in the
    /// background (never on the receive path) and kept 10 minutes; the address stands
    /// in until the answer.
    Reverse,
    /// The sender's address.
    Address,
}

/// A transport the listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    fn scheme(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// One address to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listen {
    pub transport: Transport,
    pub address: SocketAddr,
}

impl Listen {
    /// `udp://0.0.0.0:514` and the like.
    pub fn parse(text: &str) -> Result<Listen, String> {
        let (scheme, address) = text.split_once("://").ok_or_else(|| {
            format!("{text:?} is not SCHEME://ADDRESS:PORT (e.g. udp://0.0.0.0:514)")
        })?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            other => {
                return Err(format!(
                    "{text:?}: {other:?} is not a transport (udp, tcp or tls)"
                ));
            }
        };
        let address = address.trim_end_matches('/').parse().map_err(|_| {
            format!(
                "{text:?}: {address:?} is not an address and port (0.0.0.0:514, [::]:514, 127.0.0.1:5514)"
            )
        })?;
        Ok(Listen { transport, address })
    }

    /// The events' `source`: `syslog-udp:0.0.0.0:514`.
    pub fn source(&self) -> String {
        format!("syslog-{}:{}", self.transport.scheme(), self.address)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.transport.scheme(), self.address)
    }
}

/// The checked syslog listener settings.
#[derive(Debug, Clone)]
pub struct SyslogSettings {
    pub listen: Vec<Listen>,
    /// For `tls://` listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    /// Empty: anyone.
    pub allowed_senders: Vec<Cidr>,
    pub sender_hostname: SenderHostname,
    /// `None`: the agent's.
    pub timezone: Option<TimeZoneChoice>,
    pub udp_receive_buffer_bytes: usize,
}

impl SyslogInputConfig {
    /// The checked settings, `None` when no address is listed, or the key that is
    /// wrong. The TLS files are read and checked here.
    pub fn build(&self) -> Result<Option<SyslogSettings>, KeyError> {
        let key = |name: &str| format!("{TABLE}.{name}");
        let mut listen: Vec<Listen> = Vec::new();
        for text in &self.listen {
            let parsed = Listen::parse(text.trim()).map_err(|e| KeyError::new(key("listen"), e))?;
            if parsed.address.port() != 0
                && listen.iter().any(|l| {
                    l.address == parsed.address
                        && (l.transport == Transport::Udp) == (parsed.transport == Transport::Udp)
                })
            {
                return Err(KeyError::new(
                    key("listen"),
                    format!("{text:?}: that address and port is listed twice"),
                ));
            }
            listen.push(parsed);
        }
        if !(480..=16 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(KeyError::new(
                key("max_message_bytes"),
                "must be between 480 (RFC 3164's least) and 16777216",
            ));
        }
        if self.max_connections == 0 {
            return Err(KeyError::new(key("max_connections"), "must be at least 1"));
        }
        if self.udp_receive_buffer_bytes < 64 * 1024 {
            return Err(KeyError::new(
                key("udp_receive_buffer_bytes"),
                "must be at least 65536",
            ));
        }
        let allowed_senders = self
            .allowed_senders
            .iter()
            .map(|text| Cidr::parse(text).map_err(|e| KeyError::new(key("allowed_senders"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let timezone = self
            .timezone
            .as_deref()
            .map(TimeZoneChoice::parse)
            .transpose()
            .map_err(|e| KeyError::new(key("timezone"), e.to_string()))?;
        let wants_tls = listen.iter().any(|l| l.transport == Transport::Tls);
        let tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key_file)) => Some(Arc::new(server_config(
                cert,
                key_file,
                self.client_ca_file.as_deref(),
                &ServerTlsKeys::of(TABLE),
            )?)),
            (None, None) if wants_tls => {
                return Err(KeyError::new(
                    key("tls_cert_file"),
                    "a tls:// listener needs tls_cert_file and tls_key_file",
                ));
            }
            (None, None) if self.client_ca_file.is_some() => {
                return Err(KeyError::new(
                    key("client_ca_file"),
                    "needs tls_cert_file and tls_key_file (client certificates need TLS)",
                ));
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(KeyError::new(
                    key("tls_key_file"),
                    "must be set with tls_cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(KeyError::new(
                    key("tls_cert_file"),
                    "must be set with tls_key_file",
                ));
            }
        };
        if listen.is_empty() {
            return Ok(None);
        }
        Ok(Some(SyslogSettings {
            listen,
            tls,
            max_message_bytes: self.max_message_bytes,
            max_connections: self.max_connections,
            allowed_senders,
            sender_hostname: self.sender_hostname,
            timezone,
            udp_receive_buffer_bytes: self.udp_receive_buffer_bytes,
        }))
    }
}
