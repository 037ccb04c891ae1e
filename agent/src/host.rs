//! Who this host is: its fully qualified name (for events whose line names no host)
//! and a stable id (an input of every event id).

use tracing::debug;

pub use picket_parsers::host::HostIdentity;
use picket_parsers::host::short;

/// Resolves this host's identity; `hostname` and `host_id` override what the system
/// says.
pub fn identity(hostname: Option<&str>, host_id: Option<&str>) -> HostIdentity {
    let system = dns_lookup::get_hostname().unwrap_or_else(|_| "localhost".to_string());
    let fqdn = match hostname {
        Some(name) => name.trim().to_string(),
        None => fqdn_of(&system).unwrap_or_else(|| system.clone()),
    };
    let host_id = host_id
        .map(str::to_string)
        .or_else(machine_id)
        .unwrap_or_else(|| fqdn.clone());
    debug!(fqdn = %fqdn, system = %system, "Host identity resolved.");
    HostIdentity {
        short_name: short(&system).to_string(),
        fqdn,
        host_id,
    }
}

fn machine_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The canonical name of `name` from the resolver (`/etc/hosts`, DNS), as `hostname -f`.
fn fqdn_of(name: &str) -> Option<String> {
    if name.contains('.') {
        return Some(name.to_string());
    }
    let hints = dns_lookup::AddrInfoHints {
        flags: libc_ai_canonname(),
        ..dns_lookup::AddrInfoHints::default()
    };
    let infos = dns_lookup::getaddrinfo(Some(name), None, Some(hints)).ok()?;
    infos
        .filter_map(|info| info.ok())
        .find_map(|info| info.canonname)
        .filter(|c| c.contains('.'))
}

/// `AI_CANONNAME` (the same value on Linux and the BSDs).
const fn libc_ai_canonname() -> i32 {
    0x0002
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_hosts_that_mean_this_host_become_the_fqdn() {
        let host = HostIdentity {
            fqdn: "web1.example.com".into(),
            short_name: "web1".into(),
            host_id: "id".into(),
        };
        assert_eq!(host.resolve(None), "web1.example.com");
        assert_eq!(host.resolve(Some("")), "web1.example.com");
        assert_eq!(host.resolve(Some("localhost")), "web1.example.com");
        assert_eq!(host.resolve(Some("LOCALHOST")), "web1.example.com");
        assert_eq!(host.resolve(Some("web1")), "web1.example.com");
        assert_eq!(host.resolve(Some("db2")), "db2");
        assert_eq!(host.resolve(Some("db2.example.com")), "db2.example.com");
    }

    #[test]
    fn system_identity_is_never_empty() {
        let host = identity(None, None);
        assert!(!host.fqdn.is_empty());
        assert!(!host.host_id.is_empty());
        let host = identity(Some("override.example.com"), Some("fixed"));
        assert_eq!(host.fqdn, "override.example.com");
        assert_eq!(host.host_id, "fixed");
    }
}
