//! What sshd refuses beyond a wrong password: users and groups not allowed, root
//! login, PAM errors, timeouts, refused and dropped connections, rejected keys and
//! host-based keys, over-long lines, access denied by policy.

use super::*;

/// `User <user> from <host> not allowed because …` (AllowUsers, DenyUsers, groups)
/// and `User <user> not allowed because account is locked` / `… shell …`: a refused
/// login (the `Failed … for invalid user` line that follows is the same attempt).
/// The reason is the server's text, the host one word: both read from the right.
pub(super) fn not_allowed<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((head, reason)) = message
        .strip_prefix("User ")
        .and_then(|rest| rsplit_once(rest, " not allowed because "))
    else {
        return false;
    };
    // The reason tells the shape: the account's own state names no host.
    if reason == "account is locked" || reason.starts_with("shell ") {
        outcome(event, "authentication", "login", Some(false));
        set_text(event, "username", head);
    } else {
        match rsplit_once(head, " from ") {
            Some((user, host)) if !host.is_empty() && !host.contains(' ') => {
                login(event, false, user, host, None);
            }
            _ => return false,
        }
    }
    set_text(event, "reason", reason);
    event.role = Role::Begins;
    true
}

/// `ROOT LOGIN REFUSED FROM <address>[ port <n>]` (written by the monitor and again
/// by the pre-authentication child: one attempt).
pub(super) fn root_refused<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = ROOT_REFUSED.captures(message) else {
        return false;
    };
    login(
        event,
        false,
        "root",
        cap(&c, 1),
        c.get(2).map(|m| m.as_str()),
    );
    event.role = Role::Begins;
    true
}

/// `error: PAM: <PAM's error> for [illegal user ]<user> from <host>` (keyboard-
/// interactive through PAM; no port).
pub(super) fn pam_error<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("PAM: ") else {
        return false;
    };
    let Some((head, host)) = rsplit_once(rest, " from ") else {
        return false;
    };
    if host.contains(' ') {
        return false;
    }
    let Some((error, user)) = split_once(head, " for ") else {
        return false;
    };
    let (invalid, user) = match user.strip_prefix("illegal user ") {
        Some(user) => (true, user),
        None => (false, user),
    };
    login(event, false, user, host, None);
    if invalid || error.starts_with("User not known") {
        set(event, "invaliduser", true);
    }
    set_text(event, "reason", error);
    event.role = Role::Begins;
    true
}

/// `fatal: Timeout before authentication for <ip> port <n>` (≤ 9.7) and the
/// listener's `Timeout before authentication for connection from <ip> to <ip>, pid =
/// <n>` (9.8+).
pub(super) fn timeout<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if message.starts_with("Timeout, client not responding") {
        let Some(id) = message.strip_prefix("Timeout, client not responding from ") else {
            outcome(event, "session", "disconnect", None);
            event.ends = true;
            return true;
        };
        let Some((kind, user, address, port)) = peer_parts(id) else {
            return false;
        };
        outcome(event, "session", "disconnect", None);
        set_peer(event, kind, user, address, port);
        event.ends = true;
        return true;
    }
    let Some(c) = TIMEOUT.captures(message) else {
        return false;
    };
    if let Some(address) = c.get(1) {
        // The listener's line: its pid is the listener's, not the connection's, so it
        // is no part of the connection's attempts.
        outcome(event, "connection", "probe", None);
        set_source(event, address.as_str());
        event.role = Role::Listener;
        return true;
    }
    probe(event, true);
    set_source(event, cap(&c, 2));
    if let Some(port) = c.get(3) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

/// tcp_wrappers' `refused connect from <name> (<address>)` (before 7.4): a probe.
pub(super) fn refused_connect<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = REFUSED_CONNECT.captures(message) else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    set_source(event, cap(&c, 1));
    true
}

/// The listener's `drop connection #<n> from [<ip>]:<port> on [<ip>]:<port> <why>`
/// (MaxStartups, PerSourcePenalties): a connection refused before it began.
pub(super) fn dropped<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = DROP.captures(message) else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    set_source(event, cap(&c, 1));
    set_int(event, "sourceport", cap(&c, 2));
    set_text(event, "reason", &message[c.get(0).map_or(0, |m| m.end())..]);
    event.role = Role::Listener;
    true
}

/// A FIDO key's signature refused (8.4+): `public key <type> [<fp> ]signature for
/// [invalid user ]<user> from <ip> port <n> rejected: user presence (authenticator
/// touch) requirement not met` or `…: user verification requirement not met` (a
/// trailing blank). The reasons are OpenSSH's; what is before them is read as a login
/// line's `<user> from <ip> port <n>` ([`login_from`]).
pub(super) fn key_rejected<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("public key ") else {
        return false;
    };
    let rest = rest.trim_end();
    let Some(rest) = rest
        .strip_suffix(" rejected: user presence (authenticator touch) requirement not met")
        .or_else(|| rest.strip_suffix(" rejected: user verification requirement not met"))
    else {
        return false;
    };
    let Some((key, rest)) = split_once(rest, " signature for ") else {
        return false;
    };
    // Nothing follows the port: the reason was cut off above.
    if login_from(event, false, rest) != Some("") {
        return false;
    }
    set(event, "authmethod", "publickey");
    if key.contains(' ') {
        set(event, "keyfingerprint", key);
    }
    set(
        event,
        "reason",
        "FIDO user presence or verification not met",
    );
    event.role = Role::Fails;
    true
}

/// `userauth_hostbased mismatch: client sends <name>, but we resolve <ip> to <name>`: a
/// host-based login whose claimed host name is not the peer's (the claim is client
/// text; the address is OpenSSH's, after the last `, but we resolve `).
pub(super) fn hostbased_mismatch<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("userauth_hostbased mismatch: client sends ") else {
        return false;
    };
    let Some((claimed, resolved)) = rsplit_once(rest, ", but we resolve ") else {
        return false;
    };
    let Some((address, name)) = split_once(resolved, " to ") else {
        return false;
    };
    if ip_address(address).is_none() {
        return false;
    }
    outcome(event, "authentication", "login", Some(false));
    set_source(event, address);
    set(event, "authmethod", "hostbased");
    set_text(event, "clienthostname", claimed);
    set_text(event, "ptr", name);
    event.role = Role::Begins;
    true
}

/// `fatal: Username too long from <ip> port <n>`.
pub(super) fn too_long<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(id) = message.strip_prefix("Username too long from ") else {
        return false;
    };
    let Some((None, None, address, port)) = peer_parts(id) else {
        return false;
    };
    login(event, false, "", address, Some(port));
    event.role = Role::Begins;
    true
}

/// `fatal: Access denied for user <user> by PAM account configuration`: the
/// credential was right, the account may not log in.
pub(super) fn access_denied<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(user) = message
        .strip_prefix("Access denied for user ")
        .and_then(|r| r.strip_suffix(" by PAM account configuration"))
    else {
        return false;
    };
    outcome(event, "authentication", "login", Some(false));
    set_text(event, "username", user);
    set_text(event, "reason", "PAM account configuration");
    event.role = Role::Begins;
    true
}

/// `administratively prohibited connection for [invalid user ]<user> from <ip> port
/// <n>` (RefuseConnection, 9.9+).
pub(super) fn prohibited<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("administratively prohibited connection for ") else {
        return false;
    };
    if login_from(event, false, rest).is_none() {
        return false;
    }
    event.role = Role::Begins;
    true
}

/// `[<file>:<line>: |cert: ]Authentication tried for <user> with correct key but not
/// from a permitted host (host=<h>, ip=<ip>[, required=…]).` and `… with valid
/// certificate but not from a permitted source address (<ip>).`
pub(super) fn key_from_elsewhere<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(at) = find(message, "Authentication tried for ") else {
        return false;
    };
    let rest = &message[at + "Authentication tried for ".len()..];
    if let Some((user, tail)) =
        split_once(rest, " with correct key but not from a permitted host (")
    {
        let Some(ip) = split_once(tail, "ip=").map(|(_, r)| {
            let end = r.find([',', ')']).unwrap_or(r.len());
            &r[..end]
        }) else {
            return false;
        };
        login(event, false, user, ip, None);
    } else if let Some((user, tail)) =
        split_once(rest, " with valid certificate but not from a permitted ")
    {
        let Some(ip) = tail
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(ip, _)| ip.trim_start_matches("ip="))
        else {
            return false;
        };
        login(event, false, user, ip, None);
    } else {
        return false;
    }
    set_text(event, "authmethod", "publickey");
    event.role = Role::Fails;
    true
}
