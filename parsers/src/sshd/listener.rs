//! sshd lines about a peer that are not attempts: what the listener (one process for
//! every connection) says about dropped, penalised and crashed connections, the
//! reverse-DNS checks of `UseDNS yes`, and which key or certificate matched before a
//! public-key login. Shapes and versions from OpenSSH's source (`srclimit.c`, `sshd.c`'s
//! `child_reap` and `drop_connection`, `canohost.c`/`auth.c`'s `remote_hostname`,
//! `auth2-pubkeyfile.c`); see the README's list.
//!
//! The listener's lines carry [`Role::Listener`]: its pid is shared by every
//! connection, so the process table neither records what they name nor completes them.

use serde_json::Value;

use super::super::common::{
    ip_address, outcome, rsplit_once, set, set_int, set_source, set_text, split_once,
};
use super::super::context::Role;
use super::super::draft::{Detail, Draft};
use super::{is_key, is_key_parts};

/// PerSourcePenalties' bookkeeping (9.8+, the listener, `srclimit_penalise: ` prefix):
/// - `<ipv4|ipv6>: new <block> <active|deferred> penalty of <n>[.nnn] seconds for <reason>`
/// - `<block>: activating <ipv4|ipv6> penalty of <n>[.nnn] seconds for <reason>`
/// - `<ipv4|ipv6> penalty table full, cannot penalise <block> for <reason>`
///
/// A `connection` event, action `penalty`: `sourcenetwork` (the block),
/// `sourceipaddress` when the block is one address, `penalty` (its state),
/// `penaltyseconds`, `reason`. Never counted as an attempt: it restates failures the
/// connections' own lines recorded.
pub fn penalty<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("srclimit_penalise: ") else {
        return false;
    };
    let parts = if let Some((_, after)) = split_once(rest, " penalty table full, cannot penalise ")
    {
        split_once(after, " for ").map(|(block, reason)| (block, "table full", None, reason))
    } else if let Some((family, after)) = split_once(rest, ": new ") {
        // <block> <state> penalty of <n> seconds for <reason>
        (family == "ipv4" || family == "ipv6")
            .then(|| {
                let (block, after) = split_once(after, " ")?;
                let (state, after) = split_once(after, " penalty of ")?;
                let (seconds, reason) = split_once(after, " seconds for ")?;
                Some((block, state, Some(seconds), reason))
            })
            .flatten()
    } else if let Some((block, after)) = split_once(rest, ": activating ") {
        split_once(after, " penalty of ")
            .and_then(|(_, after)| split_once(after, " seconds for "))
            .map(|(seconds, reason)| (block, "activating", Some(seconds), reason))
    } else {
        None
    };
    let Some((block, state, seconds, reason)) = parts else {
        return false;
    };
    if !network(event, block) {
        return false;
    }
    outcome(event, "connection", "penalty", None);
    set_text(event, "penalty", state);
    if let Some(seconds) = seconds.and_then(|s| s.parse::<f64>().ok()) {
        set(event, "penaltyseconds", Detail::Json(Value::from(seconds)));
    }
    set_text(event, "reason", reason);
    event.role = Role::Listener;
    true
}

/// `<address>/<bits>`: `sourcenetwork`, and `sourceipaddress` for a single address.
fn network<'a>(event: &mut Draft<'a>, block: &'a str) -> bool {
    let Some((address, bits)) = block.split_once('/') else {
        return false;
    };
    let (Some(ip), Ok(bits)) = (ip_address(address), bits.parse::<u8>()) else {
        return false;
    };
    let single = if ip.contains(':') {
        bits == 128
    } else {
        bits == 32
    };
    if single {
        set(event, "sourceipaddress", ip);
    }
    set(event, "sourcenetwork", block);
    true
}

/// The listener's throttling lines (no address):
/// - `beginning MaxStartups throttling` (8.4–9.8)
/// - `in MaxStartups throttling for <hh:mm:ss>, <n> connections dropped` (8.4–9.8)
/// - `exited MaxStartups throttling after <hh:mm:ss>, <n> connections dropped`
/// - `<what> logging rate-limited: additional <n> connections dropped` (10.0+)
///
/// A `connection` event, action `throttle`: `throttle` (`begin`, `ongoing`, `end`,
/// `logging`), `dropped` (connections), `reason`.
pub fn throttling<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let (state, dropped) = if message == "beginning MaxStartups throttling" {
        ("begin", None)
    } else if let Some(rest) = message
        .strip_prefix("in MaxStartups throttling for ")
        .or_else(|| message.strip_prefix("exited MaxStartups throttling after "))
    {
        let Some((_, count)) = split_once(rest, ", ") else {
            return false;
        };
        let state = if message.starts_with("in ") {
            "ongoing"
        } else {
            "end"
        };
        (state, count.strip_suffix(" connections dropped"))
    } else if let Some((what, count)) = split_once(message, " logging rate-limited: additional ") {
        if what.contains(' ') {
            return false;
        }
        ("logging", count.strip_suffix(" connections dropped"))
    } else {
        return false;
    };
    outcome(event, "connection", "throttle", None);
    set(event, "throttle", state);
    if let Some(dropped) = dropped {
        set_int(event, "dropped", dropped);
    }
    set_text(event, "reason", message);
    event.role = Role::Listener;
    true
}

/// The listener on a session process that ended badly (9.8+), a possible exploit:
/// - `session process <pid> for <id> killed by signal <n><tail>`
/// - `session process <pid> for <id> terminated abnormally, status=0x<x><tail>`
/// - `Session process <pid> unpriv child crash for <id><tail>`
///
/// `<id>` is `connection from <peer> to <local>` (or `connection from <peer>`). A
/// `connection` event, action `crash`: `sourceipaddress`, `reason` (the message).
pub fn crash<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let rest = match message
        .strip_prefix("session process ")
        .or_else(|| message.strip_prefix("Session process "))
    {
        Some(rest) => rest,
        None => return false,
    };
    let Some((pid, rest)) = rest.split_once(' ') else {
        return false;
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let id = rest
        .strip_prefix("for ")
        .or_else(|| rest.strip_prefix("unpriv child crash for "));
    let Some(peer) = id.and_then(|id| id.strip_prefix("connection from ")) else {
        return false;
    };
    let address = peer.split([' ', ',']).next().unwrap_or("");
    if ip_address(address).is_none() {
        return false;
    }
    outcome(event, "connection", "crash", None);
    set_source(event, address);
    set_int(event, "sessionpid", pid);
    set_text(event, "reason", message);
    event.role = Role::Listener;
    true
}

/// `UseDNS yes`'s checks of the peer's reverse DNS (per connection, before
/// authentication):
/// - `reverse mapping checking getaddrinfo for <name> [<ip>] failed.` (≤ 7.3:
///   `failed - POSSIBLE BREAK-IN ATTEMPT!`)
/// - `Address <ip> maps to <name>, but this does not map back to the address.` (≤ 7.3:
///   `… address - POSSIBLE BREAK-IN ATTEMPT!`)
/// - `Nasty PTR record "<name>" is set up for <ip>, ignoring`
///
/// The name is the DNS owner's text: a `connection` event, action `dns_mismatch`,
/// `sourceipaddress`, `ptr` (the name), `reason`, `preauth` (written before
/// authentication, though the monitor adds no `[preauth]`).
pub fn dns<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let (name, address, reason) =
        if let Some(rest) = message.strip_prefix("reverse mapping checking getaddrinfo for ") {
            let Some(rest) = rest
                .strip_suffix("] failed.")
                .or_else(|| rest.strip_suffix("] failed - POSSIBLE BREAK-IN ATTEMPT!"))
            else {
                return false;
            };
            // The address is OpenSSH's, last: the name before it is the DNS's text.
            let Some((name, address)) = rsplit_once(rest, " [") else {
                return false;
            };
            (name, address, "reverse mapping failed")
        } else if let Some(rest) = message.strip_prefix("Address ") {
            let Some(rest) = rest
                .strip_suffix(", but this does not map back to the address.")
                .or_else(|| {
                    rest.strip_suffix(
                        ", but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
                    )
                })
            else {
                return false;
            };
            // The address is OpenSSH's, first.
            let Some((address, name)) = split_once(rest, " maps to ") else {
                return false;
            };
            (name, address, "forward lookup does not map back")
        } else if let Some(rest) = message.strip_prefix("Nasty PTR record \"") {
            let Some(rest) = rest.strip_suffix(", ignoring") else {
                return false;
            };
            let Some((name, address)) = rsplit_once(rest, "\" is set up for ") else {
                return false;
            };
            (name, address, "PTR record holds an address")
        } else {
            return false;
        };
    if ip_address(address).is_none() {
        return false;
    }
    outcome(event, "connection", "dns_mismatch", None);
    set_source(event, address);
    set_text(event, "ptr", name);
    set(event, "reason", reason);
    // Written as the connection's authentication begins (no `[preauth]` suffix: the
    // monitor writes it): before authentication all the same.
    set(event, "preauth", true);
    true
}

/// Which authorized key or certificate matched (VERBOSE, before `Accepted publickey`):
/// - `Accepted key <type> <fingerprint> found at <file>:<line>` (7.9+)
/// - `Accepted certificate ID "<id>" (serial <n>) signed by <type> CA <fingerprint> via <file>`
/// - `Accepted certificate ID "<id>" (serial <n>) signed by CA <type> <fingerprint> found at <file>:<line>`
///
/// An `authentication` event, action `key_match` (no `success`: the login line that
/// follows says it): `keyfingerprint` and `keyfile` for a key; `certificateid`,
/// `certificateserial`, `catype`, `cafingerprint` and `keyfile` for a certificate.
pub fn key_match<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if let Some(rest) = message.strip_prefix("Accepted key ") {
        let Some((key, file)) = rsplit_once(rest, " found at ") else {
            return false;
        };
        if !is_key(key) {
            return false;
        }
        outcome(event, "authentication", "key_match", None);
        set(event, "keyfingerprint", key);
        set_text(event, "keyfile", file);
        return true;
    }
    let Some(rest) = message.strip_prefix("Accepted certificate ID \"") else {
        return false;
    };
    // The ID is the certificate's text: the fixed grammar after it is read from the
    // right.
    let Some((id, rest)) = rsplit_once(rest, "\" (serial ") else {
        return false;
    };
    let Some((serial, rest)) = split_once(rest, ") signed by ") else {
        return false;
    };
    // `CA <type> <fingerprint> found at <file>:<line>` or `<type> CA <fingerprint> via
    // <file>`.
    let (ca, file) = if let Some((ca, file)) = rsplit_once(rest, " found at ") {
        (
            ca.strip_prefix("CA ").and_then(|ca| ca.split_once(' ')),
            file,
        )
    } else if let Some((ca, file)) = rsplit_once(rest, " via ") {
        (ca.split_once(" CA "), file)
    } else {
        return false;
    };
    let Some((kind, print)) = ca.filter(|(kind, print)| is_key_parts(kind, print)) else {
        return false;
    };
    outcome(event, "authentication", "key_match", None);
    set_text(event, "certificateid", id);
    set_int(event, "certificateserial", serial);
    set(event, "catype", kind);
    set(event, "cafingerprint", print);
    set_text(event, "keyfile", file);
    true
}
