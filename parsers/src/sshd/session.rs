//! Sessions after a login: opened and closed, subsystems started, and the ends of a
//! connection after authentication (inactivity, read errors, discarded input).

use super::*;

/// `Starting session: <what> for <user> from <ip> port <n> id <n>` (VERBOSE).
pub(super) fn starting_session<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("Starting session: ") else {
        return false;
    };
    let Some((head, tail)) = rsplit_once(rest, " from ") else {
        return false;
    };
    let Some((what, user)) = rsplit_once(head, " for ") else {
        return false;
    };
    let Some((address, port)) = session_peer(tail) else {
        return false;
    };
    outcome(event, "session", "session_open", None);
    set_text(event, "username", user);
    set_text(event, "sessiontype", what);
    set_peer(event, None, None, address, port);
    true
}

/// `<ip> port <n> id <n>`, the end of the session lines: (address, port).
pub(super) fn session_peer(tail: &str) -> Option<(&str, &str)> {
    let (id, _) = rsplit_once(tail, " id ")?;
    match peer_parts(id)? {
        (None, None, address, port) => Some((address, port)),
        _ => None,
    }
}

/// `Close session: user <user> from <ip> port <n> id <n>` (VERBOSE).
pub(super) fn close_session<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("Close session: user ") else {
        return false;
    };
    let Some((user, tail)) = rsplit_once(rest, " from ") else {
        return false;
    };
    let Some((address, port)) = session_peer(tail) else {
        return false;
    };
    outcome(event, "session", "session_close", None);
    set_text(event, "username", user);
    set_peer(event, None, None, address, port);
    true
}

/// `Closing connection to <ip> port <n>` (VERBOSE, the session's end).
pub(super) fn closing<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((None, None, address, port)) = message
        .strip_prefix("Closing connection to ")
        .and_then(peer_parts)
    else {
        return false;
    };
    outcome(event, "session", "disconnect", None);
    set_peer(event, None, None, address, port);
    event.ends = true;
    true
}

/// `subsystem request for <name> by user <user>[ failed, <why>]`.
pub(super) fn subsystem<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("subsystem request for ") else {
        return false;
    };
    let Some((name, user)) = rsplit_once(rest, " by user ") else {
        return false;
    };
    let (user, failed) = match split_once(user, " failed, ") {
        Some((user, why)) => (user, Some(why)),
        None => (user, None),
    };
    outcome(event, "session", "subsystem", Some(failed.is_none()));
    set_text(event, "username", user);
    set_text(event, "subsystem", name);
    if let Some(why) = failed {
        set_text(event, "reason", why);
    }
    true
}

/// `terminating inactive connection from <id>` (UnusedConnectionTimeout).
pub(super) fn inactive<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((kind, user, address, port)) = message
        .strip_prefix("terminating inactive connection from ")
        .and_then(peer_parts)
    else {
        return false;
    };
    outcome(event, "session", "disconnect", None);
    set_peer(event, kind, user, address, port);
    event.ends = true;
    true
}

/// `Read error from remote host <ip> port <n>: <error>`.
pub(super) fn read_error<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message.strip_prefix("Read error from remote host ") else {
        return false;
    };
    let Some((id, _)) = split_once(rest, ": ") else {
        return false;
    };
    let Some((None, None, address, port)) = peer_parts(id) else {
        return false;
    };
    event.ends = true;
    disconnect(event, preauth);
    set_peer(event, None, None, address, port);
    true
}

/// `Finished discarding for <ip> port <n>` (after a corrupt packet): a probe.
pub(super) fn finished_discarding<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((None, None, address, port)) = message
        .strip_prefix("Finished discarding for ")
        .and_then(peer_parts)
    else {
        return false;
    };
    probe(event, false);
    set_peer(event, None, None, address, port);
    true
}
