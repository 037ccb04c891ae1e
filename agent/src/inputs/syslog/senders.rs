//! Who sends: `allowed_senders`' address blocks, and the host a sender is when its
//! messages name none (its reverse DNS name or address; the relay itself for loopback).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picket_parsers::host::{HostIdentity, short};

use super::config::SenderHostname;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| {
            format!("{text:?} is not an address or CIDR block (10.0.0.0/8, 2001:db8::/32)")
        })?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Whether `allowed` (empty: anyone) lets `address` send.
pub fn allowed(allowed: &[Cidr], address: IpAddr) -> bool {
    allowed.is_empty() || allowed.iter().any(|block| block.contains(address))
}

/// How long a sender's name is kept before it is looked up again.
pub const NAME_TTL: Duration = Duration::from_secs(600);
/// Names kept at most (the cache is emptied when it would hold more).
const MAX_NAMES: usize = 65_536;
/// Reverse lookups running at once at most (more wait for a later message).
const MAX_LOOKUPS: usize = 16;

/// The identity the parsers give a sender's messages: the relay's own for a loopback
/// sender, else one named by the sender's reverse DNS name or address (its short name
/// matched as the relay's is), with the relay's host id (an input of event ids).
/// Reverse lookups run in the background, never on the receive path: until a
/// sender's name is known, its address stands in.
pub struct SenderNames {
    relay: HostIdentity,
    mode: SenderHostname,
    /// Names found (or the address, when there is none), and when.
    cache: Mutex<HashMap<IpAddr, (String, Instant)>>,
    /// Lookups running.
    running: Mutex<HashSet<IpAddr>>,
}

impl SenderNames {
    pub fn new(relay: HostIdentity, mode: SenderHostname) -> SenderNames {
        SenderNames {
            relay,
            mode,
            cache: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
        }
    }

    /// The identity for `address`'s messages now, and whether it is final (false: its
    /// reverse lookup has not answered yet; ask again later). Must be called on a
    /// Tokio runtime (a lookup is started in the background).
    pub fn identity(self: &Arc<Self>, address: IpAddr) -> (HostIdentity, bool) {
        let address = address.to_canonical();
        if address.is_loopback() {
            return (self.relay.clone(), true);
        }
        let (name, named) = match self.mode {
            SenderHostname::Address => (address.to_string(), true),
            SenderHostname::Reverse => {
                let cached = self
                    .cache
                    .lock()
                    .ok()
                    .and_then(|cache| cache.get(&address).cloned());
                match cached {
                    Some((name, at)) => {
                        if at.elapsed() >= NAME_TTL {
                            self.look_up(address);
                        }
                        (name, true)
                    }
                    None => {
                        self.look_up(address);
                        (address.to_string(), false)
                    }
                }
            }
        };
        (self.named(name), named)
    }

    fn named(&self, name: String) -> HostIdentity {
        let short_name = match name.parse::<IpAddr>() {
            Ok(_) => name.clone(),
            Err(_) => short(&name).to_string(),
        };
        HostIdentity {
            fqdn: name,
            short_name,
            host_id: self.relay.host_id.clone(),
        }
    }

    /// Starts a reverse lookup of `address` unless one runs or too many do. It runs
    /// on a blocking thread until the resolver answers (the address stands in
    /// meanwhile), then keeps the name and frees its place.
    fn look_up(self: &Arc<Self>, address: IpAddr) {
        {
            let Ok(mut running) = self.running.lock() else {
                return;
            };
            if running.len() >= MAX_LOOKUPS || !running.insert(address) {
                return;
            }
        }
        let names = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let name = match dns_lookup::lookup_addr(&address) {
                Ok(name) if !name.is_empty() && name.parse::<IpAddr>().is_err() => name,
                // No name: the address, until the next lookup.
                _ => address.to_string(),
            };
            if let Ok(mut cache) = names.cache.lock() {
                if cache.len() >= MAX_NAMES {
                    cache.clear();
                }
                cache.insert(address, (name, Instant::now()));
            }
            if let Ok(mut running) = names.running.lock() {
                running.remove(&address);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_their_addresses_only() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        // A v4 sender on a dual-stack socket.
        assert!(block.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!block.contains("2001:db8::1".parse().unwrap()));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "host.example",
            "::/129",
            "10.0.0.0/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(allowed(&[], "198.51.100.1".parse().unwrap()));
        assert!(!allowed(&[block], "198.51.100.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_sender_is_named_by_address_or_the_relay_when_local() {
        let relay = HostIdentity::named("relay.example.com");
        let names = Arc::new(SenderNames::new(relay.clone(), SenderHostname::Address));
        let (local, named) = names.identity("127.0.0.1".parse().unwrap());
        assert!(named);
        assert_eq!(local, relay);
        let (remote, named) = names.identity("192.0.2.10".parse().unwrap());
        assert!(named);
        assert_eq!(remote.fqdn, "192.0.2.10");
        assert_eq!(remote.host_id, relay.host_id);
        // A header naming no host, `-` or localhost gets the sender's address; a
        // header host stays.
        assert_eq!(remote.resolve(None), "192.0.2.10");
        assert_eq!(remote.resolve(Some("-")), "192.0.2.10");
        assert_eq!(remote.resolve(Some("localhost")), "192.0.2.10");
        assert_eq!(remote.resolve(Some("fw1")), "fw1");
        assert_eq!(remote.resolve(Some("192")), "192");
    }

    #[tokio::test]
    async fn a_reverse_name_comes_in_the_background_and_the_address_stands_in() {
        let relay = HostIdentity::named("relay.example.com");
        let names = Arc::new(SenderNames::new(relay, SenderHostname::Reverse));
        // TEST-NET-1 has no PTR record (or no resolver answers here): either way the
        // address stands in at once, and the answer is final once the resolver is done.
        let address: IpAddr = "192.0.2.44".parse().unwrap();
        let (first, named) = names.identity(address);
        assert!(!named);
        assert_eq!(first.fqdn, "192.0.2.44");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (identity, named) = names.identity(address);
            if named {
                assert!(!identity.fqdn.is_empty());
                break;
            }
            assert!(Instant::now() < deadline, "the lookup never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
