//! dropbear's lines (tag `dropbear`), taken from its sources (0.44 to 2026.94): the
//! same fields as sshd's. dropbear writes the peer as `<ip>:<port>` (IPv6 without
//! brackets until 2026.94, with them since), never the name a client typed for an
//! account that does not exist, and its exit lines say whether authentication had
//! happened:
//!
//! - `Exit before auth[ from <peer>]: [(user '<u>', <n> fails): ]<reason>` (2020.79+;
//!   before that `Exit before auth (user '<u>', <n> fails): <reason>`), lower-case
//!   before 0.53;
//! - `Exit (<user>)[ from <peer>]: <reason>` after it; `Early exit`/`Premature exit`
//!   before the session began.
//!
//! The only text a client controls is its version banner (in `Incompatible remote
//! version '…'`), which is never read for an address.

use super::common::{
    TrimFast, outcome, rsplit_once, set, set_int, set_source, set_text, split_once,
};
use super::context::Role;
use super::draft::Draft;

/// Parser id, written into `tags`.
pub const ID: &str = "dropbear";

/// Reads a dropbear message into `event`; false when it is none of the known shapes.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = stderr_prefix(message.trim_fast());
    // PAM modules loaded by dropbear (PAM builds).
    if super::pam::prefix(message).is_some()
        || message.starts_with("PAM ") && !message.starts_with("PAM password")
    {
        return super::pam::parse(message, event);
    }
    // 0.44–0.52 wrote every message lower-case: the first word is compared in lower
    // case (lowered on the stack; no first word is longer than the buffer).
    let first = message.split(' ').next().unwrap_or("");
    let mut lower = [0u8; 12];
    let Some(first) = lower.get_mut(..first.len()).map(|buf| {
        buf.copy_from_slice(first.as_bytes());
        buf.make_ascii_lowercase();
        &*buf
    }) else {
        return false;
    };
    match first {
        b"child" => connection(message, event),
        b"bad" => bad_password(message, event),
        b"password" => succeeded(message, "password auth succeeded for '", event),
        // (PAM's failure echo `pam_authenticate() failed, rc=…` stays `syslog`.)
        b"pam" => succeeded(message, "PAM password auth succeeded for '", event),
        b"pubkey" => pubkey(message, event),
        b"auth" => succeeded(message, "Auth succeeded with blank password for '", event),
        b"login" => login_attempt(message, event),
        b"root" if message == "root login rejected" => {
            refused(event, "root", None);
            true
        }
        b"user" => user_refused(message, event),
        b"logins" => group_refused(message, event),
        b"too-long" => too_long(message, event),
        b"client" => multiple_users(message, event),
        b"exit" | b"early" | b"premature" => exit(message, event),
        _ => false,
    }
}

/// dropbear run with `-E` (its log on stderr, as journald keeps it under a unit)
/// writes `[<pid>] Mmm dd hh:mm:ss ` before the message: the text after it.
fn stderr_prefix(message: &str) -> &str {
    let Some(rest) = message.strip_prefix('[') else {
        return message;
    };
    let Some((pid, rest)) = rest.split_once("] ") else {
        return message;
    };
    let stamp = rest.as_bytes();
    let stamped = stamp.len() > 16
        && stamp[3] == b' '
        && stamp[6] == b' '
        && stamp[9] == b':'
        && stamp[12] == b':'
        && stamp[15] == b' ';
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || !stamped {
        return message;
    }
    &rest[16..]
}

/// `<ip>:<port>`, `[<ip>]:<port>`, or an address alone: (address, port).
fn peer(text: &str) -> (&str, Option<&str>) {
    let text = text.trim_fast();
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return (host, Some(port).filter(|p| is_port(p)));
        }
        return (rest.trim_end_matches(']'), None);
    }
    match text.rsplit_once(':') {
        Some((host, port)) if is_port(port) && !host.is_empty() => (host, Some(port)),
        _ => (text, None),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Sets the source from a peer `<ip>:<port>`.
fn set_peer<'a>(event: &mut Draft<'a>, text: &'a str) {
    let (host, port) = peer(text);
    set_source(event, host);
    if let Some(port) = port {
        set_int(event, "sourceport", port);
    }
}

/// Case-insensitive `strip_prefix` for ASCII prefixes.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `'<user>' from <peer>[, extra auth required]` → (user, peer, extra).
fn user_from(rest: &str) -> Option<(&str, &str, bool)> {
    let (user, peer) = rsplit_once(rest, "' from ")?;
    let (peer, extra) = match peer.strip_suffix(", extra auth required") {
        Some(peer) => (peer, true),
        None => (peer, false),
    };
    (!peer.contains(' ')).then_some((user, peer, extra))
}

/// A refused attempt of `user` (from `peer` when named).
fn refused<'a>(event: &mut Draft<'a>, user: &'a str, peer: Option<&'a str>) {
    outcome(event, "authentication", "login", Some(false));
    set_text(event, "username", user);
    if let Some(peer) = peer {
        set_peer(event, peer);
    }
    event.role = Role::Fails;
}

/// `Child connection from <peer>` (the forked child: its pid is the connection's).
fn connection<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = strip_prefix_ci(message, "Child connection from ") else {
        return false;
    };
    outcome(event, "connection", "connect", None);
    set_peer(event, rest);
    true
}

/// `Bad password attempt for '<u>' from <peer>`, `Bad PAM password attempt …`.
fn bad_password<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let rest = strip_prefix_ci(message, "Bad password attempt for '")
        .or_else(|| strip_prefix_ci(message, "Bad PAM password attempt for '"));
    let Some((user, peer, _)) = rest.and_then(user_from) else {
        return false;
    };
    if user == "<invalid username>" {
        refused(event, "", Some(peer));
        set(event, "invaliduser", true);
    } else {
        refused(event, user, Some(peer));
    }
    set_text(event, "authmethod", "password");
    true
}

/// `[PAM ]Password auth succeeded for '<u>' from <peer>` and the like: a password
/// login (or, with `, extra auth required`, a first factor passed: not a login yet).
fn succeeded<'a>(message: &'a str, prefix: &str, event: &mut Draft<'a>) -> bool {
    let Some((user, peer, extra)) = strip_prefix_ci(message, prefix).and_then(user_from) else {
        return false;
    };
    if extra {
        outcome(event, "authentication", "partial", None);
    } else {
        outcome(event, "authentication", "login", Some(true));
    }
    set_text(event, "username", user);
    set_text(event, "authmethod", "password");
    set_peer(event, peer);
    true
}

/// `Pubkey auth succeeded for '<u>' with [<type> ]key <fingerprint> from <peer>`,
/// `Pubkey auth bad signature for '<u>' with key <fp> from <peer>`,
/// `Pubkey auth attempt with unknown algo for '<u>' from <peer>`.
fn pubkey<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if let Some(rest) = strip_prefix_ci(message, "Pubkey auth attempt with unknown algo for '") {
        let Some((user, peer, _)) = user_from(rest) else {
            return false;
        };
        refused(event, user, Some(peer));
        set_text(event, "authmethod", "publickey");
        return true;
    }
    let (success, rest) = match strip_prefix_ci(message, "Pubkey auth succeeded for '") {
        Some(rest) => (true, rest),
        None => match strip_prefix_ci(message, "Pubkey auth bad signature for '") {
            Some(rest) => (false, rest),
            None => return false,
        },
    };
    let Some((user, key)) = split_once(rest, "' with ") else {
        return false;
    };
    let Some((key, peer)) = rsplit_once(key, " from ") else {
        return false;
    };
    let (peer, extra) = match peer.strip_suffix(", extra auth required") {
        Some(peer) => (peer, true),
        None => (peer, false),
    };
    if peer.contains(' ') {
        return false;
    }
    // `ssh-ed25519 key SHA256:…` (2022.82+) or `key md5 0f:1e:…` (before).
    let fingerprint = match split_once(key, " key ") {
        Some((kind, print)) => Some((kind, print)),
        None => key.strip_prefix("key ").map(|print| ("", print)),
    };
    if success {
        if extra {
            outcome(event, "authentication", "partial", None);
        } else {
            outcome(event, "authentication", "login", Some(true));
        }
    } else {
        outcome(event, "authentication", "login", Some(false));
        event.role = Role::Fails;
    }
    set_text(event, "username", user);
    set_text(event, "authmethod", "publickey");
    if let Some((kind, print)) = fingerprint {
        let print = print.trim_fast();
        if kind.is_empty() {
            set_text(event, "keyfingerprint", print);
        } else {
            set(event, "keyfingerprint", format!("{kind} {print}"));
        }
    }
    set_peer(event, peer);
    true
}

/// `Login attempt for nonexistent user[ from <peer>]`, `Login attempt with wrong user
/// <u>[ from <peer>]`.
fn login_attempt<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if let Some(rest) = strip_prefix_ci(message, "Login attempt for nonexistent user") {
        let peer = match rest.strip_prefix(" from ") {
            Some(peer) if !peer.contains(' ') => Some(peer),
            None if rest.is_empty() => None,
            _ => return false,
        };
        refused(event, "", peer);
        set(event, "invaliduser", true);
        return true;
    }
    let Some(rest) = strip_prefix_ci(message, "Login attempt with wrong user ") else {
        return false;
    };
    match rsplit_once(rest, " from ") {
        Some((user, peer)) if !peer.contains(' ') => refused(event, user, Some(peer)),
        _ => refused(event, rest, None),
    }
    true
}

/// `User '<u>' has invalid shell, rejected`, `… has blank password, rejected`, `User
/// account '<u>' is locked`.
fn user_refused<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let user = strip_prefix_ci(message, "User account '")
        .and_then(|r| r.strip_suffix("' is locked"))
        .or_else(|| {
            let rest = strip_prefix_ci(message, "User '")?;
            rest.strip_suffix("' has invalid shell, rejected")
                .or_else(|| rest.strip_suffix("' has blank password, rejected"))
        });
    let Some(user) = user else {
        return false;
    };
    refused(event, user, None);
    true
}

/// `Logins are restricted to the group <g> but user '<u>' is not a member`.
fn group_refused<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((group, user)) = strip_prefix_ci(message, "Logins are restricted to the group ")
        .and_then(|r| split_once(r, " but user '"))
    else {
        return false;
    };
    let Some(user) = user.strip_suffix("' is not a member") else {
        return false;
    };
    refused(event, user, None);
    set_text(event, "group", group);
    true
}

/// `Too-long password attempt for '<u>' from <peer>`.
fn too_long<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((user, peer, _)) =
        strip_prefix_ci(message, "Too-long password attempt for '").and_then(user_from)
    else {
        return false;
    };
    refused(event, user, Some(peer));
    true
}

/// `Client trying multiple usernames from <peer>` (before 2018.76): a probe.
fn multiple_users<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(peer) = strip_prefix_ci(message, "Client trying multiple usernames from ") else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    set(event, "preauth", true);
    set_peer(event, peer);
    event.role = Role::Follows;
    true
}

/// What follows an exit line's keyword: ` from <<peer>>: <rest>` (2020.79+), or `:
/// <rest>` / ` <rest>` before: (the peer when named, the rest).
fn exit_peer(text: &str) -> Option<(Option<&str>, &str)> {
    match text.strip_prefix(" from <") {
        Some(after) => after
            .split_once(">: ")
            .map(|(peer, rest)| (Some(peer), rest)),
        None => Some((
            None,
            text.strip_prefix(": ")
                .unwrap_or_else(|| text.trim_start_matches(' ')),
        )),
    }
}

/// The exit lines: before authentication a probe or the end of failed attempts,
/// after it the end of a session.
fn exit<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    event.ends = true;
    if let Some(rest) = strip_prefix_ci(message, "Exit before auth") {
        // ` from <peer>: [(user 'u', n fails): ]reason` or ` (user 'u', n fails): reason`
        // or `: reason`.
        let Some((peer, rest)) = exit_peer(rest) else {
            return false;
        };
        let (user, fails, reason) = match rest.strip_prefix("(user '") {
            Some(after) => {
                let Some((user, after)) = rsplit_once(after, "', ") else {
                    return false;
                };
                let Some((fails, reason)) = split_once(after, " fails): ") else {
                    return false;
                };
                (Some(user), Some(fails), reason)
            }
            None => (None, None, rest),
        };
        // Before 2020.79 only the reason named the peer: `Max auth tries reached -
        // user 'u' from <peer>`, `Client trying multiple usernames from <peer>`.
        let known_reason = reason.starts_with("Max auth tries reached - user '")
            || reason.starts_with("Client trying multiple usernames")
            || reason.starts_with("Attempted username with a null byte");
        let peer = peer.or_else(|| {
            known_reason
                .then(|| rsplit_once(reason, " from ").map(|(_, p)| p))
                .flatten()
                .filter(|p| !p.contains(' '))
        });
        if reason.starts_with("Max auth tries reached") {
            outcome(event, "authentication", "login", Some(false));
        } else {
            outcome(event, "connection", "disconnect", None);
        }
        event.role = Role::Follows;
        set(event, "preauth", true);
        if let Some(user) = user.filter(|u| *u != "is invalid") {
            set_text(event, "username", user);
        }
        if let Some(fails) = fails {
            set_int(event, "attempts", fails);
        }
        set_text(event, "reason", reason);
        if let Some(peer) = peer {
            set_peer(event, peer);
        }
        return true;
    }
    if let Some(rest) = strip_prefix_ci(message, "Exit (") {
        // `Exit (<user>)[ from <peer>]: <reason>` after authentication.
        let Some((user, rest)) = split_once(rest, ")") else {
            return false;
        };
        let Some((peer, reason)) = exit_peer(rest) else {
            return false;
        };
        outcome(event, "session", "session_close", None);
        set_text(event, "username", user);
        set_text(event, "reason", reason);
        if let Some(peer) = peer {
            set_peer(event, peer);
        }
        return true;
    }
    // `Early exit[ from <peer>]: reason`, `Premature exit: reason`.
    let Some(rest) = strip_prefix_ci(message, "Early exit")
        .or_else(|| strip_prefix_ci(message, "Premature exit"))
    else {
        return false;
    };
    let Some((peer, reason)) = exit_peer(rest) else {
        return false;
    };
    outcome(event, "connection", "disconnect", None);
    set(event, "preauth", true);
    event.role = Role::Follows;
    set_text(event, "reason", reason);
    if let Some(peer) = peer {
        set_peer(event, peer);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_read_in_every_form_dropbear_writes() {
        assert_eq!(peer("192.0.2.1:54321"), ("192.0.2.1", Some("54321")));
        assert_eq!(peer("2001:db8::7:54321"), ("2001:db8::7", Some("54321")));
        assert_eq!(peer("[2001:db8::7]:54321"), ("2001:db8::7", Some("54321")));
        assert_eq!(peer("192.0.2.1"), ("192.0.2.1", None));
    }
}
