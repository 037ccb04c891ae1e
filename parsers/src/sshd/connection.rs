//! A connection's life as sshd logs it: opened (`Connection from`), probed (bad or
//! missing identification, failed negotiation), refused as an invalid user or over
//! the attempt limit, closed or reset (`Disconnected from`, `Received disconnect`,
//! `Connection closed by`).

use super::*;

/// The end of a connection named by its id: an attempt's end before authentication
/// (`authenticating user`, `invalid user`), a probe's (no user, `[preauth]`), a
/// session's (after login).
pub(super) fn connection_end<'a>(
    event: &mut Draft<'a>,
    kind: Option<&str>,
    user: Option<&'a str>,
    address: &'a str,
    port: &str,
) {
    match kind {
        Some("authenticating") | Some("invalid") => {
            outcome(event, "authentication", "login", Some(false));
            event.role = Role::Follows;
        }
        Some(_) => outcome(event, "session", "disconnect", None),
        // No user: a disconnect before authentication, `[preauth]` or not (without
        // it, the banner exchange's end — ≤ 9.9, a scanner's usual trace — or, rarer,
        // a logged-in client's socket closing).
        None => disconnect(event, true),
    }
    set_peer(event, kind, user, address, port);
}

pub(super) fn invalid<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let (user, address, port) = match invalid_parts(message) {
        Some(parts) => parts,
        None => {
            let Some(c) = INVALID.captures(message) else {
                return false;
            };
            (cap(&c, 1), cap(&c, 2), c.get(3).map(|m| m.as_str()))
        }
    };
    login(event, false, user, address, port);
    set(event, "invaliduser", true);
    event.role = Role::Begins;
    true
}

/// 7.4's `input_userauth_request: invalid user <user> [preauth]` (no address).
pub(super) fn invalid_request<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(user) = message.strip_prefix("input_userauth_request: invalid user ") else {
        return false;
    };
    outcome(event, "authentication", "login", Some(false));
    set_text(event, "username", user);
    set(event, "invaliduser", true);
    event.role = Role::Begins;
    true
}

/// [`INVALID`]'s reading of the usual line (`Invalid user <user> from <address>[ port
/// <port>]`, ASCII), without the regex: the first ` from ` whose rest is one word,
/// optionally ` port <digits>`, then blanks. `None` for any other line, which the
/// regex reads (a test holds the two to the same answers).
pub(super) fn invalid_parts(message: &str) -> Option<(&str, &str, Option<&str>)> {
    let first = message.get(..7)?;
    if !message.is_ascii()
        || !(first.eq_ignore_ascii_case("invalid") || first.eq_ignore_ascii_case("illegal"))
    {
        return None;
    }
    let rest = message[7..].strip_prefix(" user ")?;
    let mut from = 0;
    while let Some(at) = find(&rest[from..], " from ") {
        let user = &rest[..from + at];
        let tail = rest[from + at + " from ".len()..].trim_end();
        let (address, port) = match split_once(tail, " port ") {
            Some((address, port)) => (address, Some(port)),
            None => (tail, None),
        };
        // `\S`: no ASCII blank, vertical tab included.
        let word = |text: &str| {
            !text.is_empty()
                && !text
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b == b'\x0b')
        };
        if word(address)
            && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Some((user, address, port));
        }
        from += at + 1;
    }
    None
}

/// `maximum authentication attempts exceeded for [invalid user ]<user> from <ip> port
/// <n> ssh2`: the last attempt's echo.
pub(super) fn max_attempts<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("maximum authentication attempts exceeded for ") else {
        return false;
    };
    if login_from(event, false, rest).is_none() {
        return false;
    }
    event.role = Role::Follows;
    true
}

/// `Disconnecting <id>: <reason>` (7.5+), `Disconnecting: <reason>` (7.4).
pub(super) fn disconnecting<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    pub(super) const TOO_MANY: &str = "Too many authentication failures";
    event.ends = true;
    if let Some(reason) = message.strip_prefix("Disconnecting: ") {
        // 7.4 (and older): no id; `Too many authentication failures[ for <user>]`.
        if let Some(rest) = reason.strip_prefix(TOO_MANY) {
            outcome(event, "authentication", "login", Some(false));
            if let Some(user) = rest.strip_prefix(" for ") {
                let (invalid, user) = typed_user(user);
                set_text(event, "username", user);
                if invalid {
                    set(event, "invaliduser", true);
                }
            }
        } else {
            outcome(event, "connection", "disconnect", None);
        }
        set_text(event, "reason", reason);
        event.role = Role::Follows;
        return true;
    }
    let Some(rest) = message.strip_prefix("Disconnecting ") else {
        return false;
    };
    // The usual reason ends the line: the id before it is read from the right (its
    // user name is client text).
    if let Some(id) = rest
        .strip_suffix(TOO_MANY)
        .and_then(|r| r.strip_suffix(": "))
        && let Some((kind, user, address, port)) = peer_parts(id)
    {
        outcome(event, "authentication", "login", Some(false));
        event.role = Role::Follows;
        set_peer(event, kind, user, address, port);
        set_text(event, "reason", TOO_MANY);
        return true;
    }
    let Some(((kind, user, address, port), reason)) = id_then_text(rest) else {
        return false;
    };
    if reason.starts_with(TOO_MANY) {
        outcome(event, "authentication", "login", Some(false));
        event.role = Role::Follows;
        set_peer(event, kind, user, address, port);
    } else {
        connection_end(event, kind, user, address, port);
    }
    set_text(event, "reason", reason);
    true
}

/// `Connection closed by <id>`, `Connection reset by <id>`, `Connection from <id> timed
/// out`, `Connection from <ip> port <n> on <ip> port <n>` (a connection accepted,
/// VERBOSE), `Connection from <id>: refusing non-sftp session`.
pub(super) fn connection<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if let Some(rest) = message
        .strip_prefix("Connection closed by ")
        .or_else(|| message.strip_prefix("Connection reset by "))
    {
        event.ends = true;
        let Some((kind, user, address, port)) = peer_parts(rest) else {
            // `Connection closed by <address>` without a port (old releases).
            if ip_address(rest).is_none() {
                return false;
            }
            disconnect(event, true);
            set_source(event, rest);
            return true;
        };
        connection_end(event, kind, user, address, port);
        return true;
    }
    if let Some(rest) = message.strip_prefix("Connection from ") {
        if let Some(id) = rest.strip_suffix(" timed out") {
            let Some((kind, user, address, port)) = peer_parts(id) else {
                return false;
            };
            event.ends = true;
            connection_end(event, kind, user, address, port);
            return true;
        }
        if let Some(c) = CONNECTION_FROM.captures(message) {
            outcome(event, "connection", "connect", None);
            set_source(event, cap(&c, 1));
            set_int(event, "sourceport", cap(&c, 2));
            if let Some(ip) = ip_address(cap(&c, 3)) {
                set(event, "destinationipaddress", ip);
            }
            set_int(event, "destinationport", cap(&c, 4));
            return true;
        }
        // `fatal: Connection from <ip> port <n> with IP opts: <hex bytes>`: source-routed
        // packets, refused before the banner.
        if let Some((peer, options)) = split_once(rest, " with IP opts: ") {
            let Some((None, None, address, port)) = peer_parts(peer) else {
                return false;
            };
            probe(event, true);
            set_source(event, address);
            set_int(event, "sourceport", port);
            set(event, "reason", "IP options");
            set_text(event, "ipoptions", options);
            return true;
        }
        if let Some(id) = rest.strip_suffix(": refusing non-sftp session") {
            let Some((kind, user, address, port)) = peer_parts(id) else {
                return false;
            };
            outcome(event, "session", "refused", None);
            set_peer(event, kind, user, address, port);
            return true;
        }
    }
    false
}

/// `Disconnected from <id>`, after `Received disconnect`: before authentication
/// (`[preauth]`) a disconnect of the connection (named user or not), after it a
/// session's end (`user U`, or no user in 7.4).
pub(super) fn disconnected<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
    let Some((kind, user, address, port)) = message
        .strip_prefix("Disconnected from ")
        .and_then(peer_parts)
    else {
        return false;
    };
    event.ends = true;
    disconnect(event, preauth);
    set_peer(event, kind, user, address, port);
    true
}

/// `Received disconnect from <ip> port <n>:<code>: <client text>`.
pub(super) fn received_disconnect<'a>(
    message: &'a str,
    preauth: bool,
    event: &mut Draft<'a>,
) -> bool {
    let Some(c) = RECEIVED_DISCONNECT.captures(message) else {
        return false;
    };
    disconnect(event, preauth);
    set_source(event, cap(&c, 1).trim_end_matches(':'));
    if let Some(port) = c.get(2) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

/// `<tag>: Connection from <id>: <error>` (`banner exchange`, `ssh_dispatch_run_fatal`,
/// …): the connection ended on a protocol error.
pub(super) fn tagged_connection<'a>(
    message: &'a str,
    preauth: bool,
    event: &mut Draft<'a>,
) -> bool {
    let Some((tag, rest)) = split_once(message, ": Connection from ") else {
        return false;
    };
    if tag.contains(": ") && !tag.starts_with("send") {
        return false;
    }
    // The error after the id (`message authentication code incorrect`, `invalid
    // format`).
    let Some(((kind, user, address, port), error)) = id_then_text(rest) else {
        return false;
    };
    if kind.is_none() || preauth {
        probe(event, true);
        set_peer(event, kind, user, address, port);
    } else {
        connection_end(event, kind, user, address, port);
        event.ends = true;
    }
    set_text(event, "reason", error);
    true
}

pub(super) fn probe_regex<'a>(
    pattern: &Regex,
    message: &'a str,
    event: &mut Draft<'a>,
    ends: bool,
) -> bool {
    let Some(c) = pattern.captures(message) else {
        return false;
    };
    probe(event, ends);
    // `from 2001:db8::1: reason`: the colon ends the message's clause, not the address.
    set_source(event, cap(&c, 1).trim_end_matches(':'));
    if let Some(port) = c.get(2) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

/// `Bad protocol version identification '<client text>' from <ip> port <n>` (≤ 7.9),
/// and 8.0+'s `Bad remote protocol version identification: '…'` (no address).
pub(super) fn bad_version<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if message.starts_with("Bad remote protocol version identification: ")
        || message.starts_with("Bad packet length ")
    {
        probe(event, false);
        return true;
    }
    let Some(rest) = message.strip_prefix("Bad protocol version identification '") else {
        return false;
    };
    let Some((_, id)) = rsplit_once(rest, "' from ") else {
        return false;
    };
    let (address, port) = match split_once(id, " port ") {
        Some((address, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (address, Some(port)),
        Some(_) => return false,
        None => (id, None),
    };
    if address.contains(' ') {
        return false;
    }
    probe(event, true);
    set_source(event, address);
    if let Some(port) = port {
        set_int(event, "sourceport", port);
    }
    true
}

/// `Protocol major versions differ for <ip> port <n>: <ours> vs. <theirs>` (≤ 7.9) and
/// 8.0+'s `Protocol major versions differ: 2 vs. 1`.
pub(super) fn major_versions<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if message.starts_with("Protocol major versions differ: ") {
        probe(event, false);
        return true;
    }
    let Some(rest) = message.strip_prefix("Protocol major versions differ for ") else {
        return false;
    };
    let Some((id, _)) = split_once(rest, ": ") else {
        return false;
    };
    let Some((None, None, address, port)) = peer_parts(id) else {
        return false;
    };
    probe(event, true);
    set_peer(event, None, None, address, port);
    true
}

/// `Unable to negotiate with <id>: no matching <what> found. Their offer: <client
/// list>`: the id ends at the first `: ` after ` port <digits>`.
pub(super) fn negotiate<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("Unable to negotiate with ") else {
        return false;
    };
    let reason = match id_then_text(rest) {
        Some(((kind, user, address, port), reason)) => {
            set_peer(event, kind, user, address, port);
            reason
        }
        None => {
            // 7.4 and older without a port: `Unable to negotiate with <ip>: …`.
            let Some((address, reason)) = split_once(rest, ": ") else {
                return false;
            };
            if ip_address(address).is_none() {
                return false;
            }
            set_source(event, address);
            reason
        }
    };
    probe(event, true);
    // The client's offer is its own text.
    set_text(
        event,
        "reason",
        reason.split(". Their offer").next().unwrap_or(""),
    );
    true
}
