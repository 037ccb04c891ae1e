//! `[collector.alerts.irc]`: the IRC server and channel alerts are said in, their
//! defaults, and the checked [`IrcSettings`].

use std::path::PathBuf;

use picket_common::config::KeyError;
use picket_common::secret::{Secret, read_secret};
use picket_common::tls::{TlsKeys, tls_files};
use serde::Deserialize;

/// `[collector.alerts.irc]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// `host:port` (6697 is the usual TLS port).
    pub server: String,
    /// TLS (default true).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// PEM CA certificates for the server's certificate (default: system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_irc_nick")]
    pub nick: String,
    /// The channel alerts go to unless their rule names one (`channel`).
    pub channel: String,
    /// File whose first line is the server password, when it wants one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}
fn default_irc_nick() -> String {
    "picket".into()
}

/// The checked `[collector.alerts.irc]`.
#[derive(Debug, Clone)]
pub struct IrcSettings {
    /// Host name (also the TLS server name).
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// PEM CA bundle for the server's certificate; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub nick: String,
    /// The channel alerts go to unless their rule names another.
    pub channel: String,
    /// Server password (`PASS`), when the server wants one.
    pub password: Option<Secret>,
}

impl IrcConfig {
    pub fn build(&self) -> Result<IrcSettings, KeyError> {
        let (host, port) = self
            .server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| {
                KeyError::new(
                    "collector.alerts.irc.server",
                    format!("{:?} is not host:port", self.server),
                )
            })?;
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 50
                && !n.chars().any(|c| c.is_whitespace() || c == ',' || c == ':')
        };
        if !(self.channel.starts_with('#') || self.channel.starts_with('&'))
            || !valid_name(&self.channel)
        {
            return Err(KeyError::new(
                "collector.alerts.irc.channel",
                format!("{:?} is not a channel name (#name)", self.channel),
            ));
        }
        if !valid_name(&self.nick) || self.nick.starts_with('#') {
            return Err(KeyError::new(
                "collector.alerts.irc.nick",
                format!("{:?} is not a nick", self.nick),
            ));
        }
        let tls = tls_files(
            &TlsKeys::of("collector.alerts.irc"),
            &self.ca_file,
            &None,
            &None,
        )?;
        let password = self
            .password_file
            .as_ref()
            .map(|p| read_secret("collector.alerts.irc.password_file", p))
            .transpose()?;
        Ok(IrcSettings {
            host,
            port,
            tls: self.tls,
            ca_pem: tls.ca_pem,
            nick: self.nick.clone(),
            channel: self.channel.clone(),
            password,
        })
    }
}
