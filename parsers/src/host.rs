//! Who a host is, as the parsers need it: its fully qualified name (for events whose
//! line names no host) and a stable id (an input of every event id). The agent resolves
//! its own at start (`picket_agent::host::identity`); the collector names the host an
//! event came from.

/// The host's names and id, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// Written into events whose line names no host, `localhost`, or our short name.
    pub fqdn: String,
    /// The first label of the system host name, compared against syslog headers.
    pub short_name: String,
    /// Stable across restarts; part of every event id.
    pub host_id: String,
}

impl HostIdentity {
    /// An identity given outright (for `picket-agent parse --hostname` and tests).
    pub fn named(name: &str) -> HostIdentity {
        HostIdentity {
            fqdn: name.to_string(),
            short_name: short(name).to_string(),
            host_id: name.to_string(),
        }
    }

    /// The host name an event gets for a header naming `header_host`.
    pub fn resolve<'a>(&'a self, header_host: Option<&'a str>) -> &'a str {
        match header_host.map(str::trim) {
            None | Some("") | Some("-") => &self.fqdn,
            Some(h) if h.eq_ignore_ascii_case("localhost") => &self.fqdn,
            Some(h) if h.eq_ignore_ascii_case(&self.short_name) => &self.fqdn,
            Some(h) => h,
        }
    }
}

/// The first label of a host name.
pub fn short(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}
