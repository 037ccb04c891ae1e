//! sshd lines (the contract's sshd table), from OpenSSH 7.4 to 10.x: the shapes are
//! taken from OpenSSH's own source (every `logit`, `verbose`, `error`, `fatal`,
//! `sshpkt_fatal` and `auth_log` call that names a peer or a user), not from samples.
//!
//! What reaches syslog, and how it is read here:
//!
//! - A level prefix, `error: ` or `fatal: `, then the text, then ` [preauth]` when the
//!   pre-authentication child wrote it (through the monitor, so with the monitor's
//!   pid). Both are taken off first; the suffix sets `details.preauth`.
//! - `sshpkt_fatal` names the peer as `[authenticating user U |invalid user U |user U
//!   ]<ip> port <n>` (7.5+; the bare `<ip> port <n>` before), with the user name free
//!   text: such ids are read from the right.
//! - `auth_log` writes `<Accepted|Failed|Partial|Postponed> <method> for [invalid user
//!   ]<user> from <ip> port <n> ssh2[: <key or principal>]`: the user and the tail are
//!   both client text, so the peer is the rightmost ` from <ip> port <n> ssh2` whose tail
//!   is exactly one OpenSSH writes (see [`auth_log_parts`]), and a line with more than
//!   one candidate is tagged `suspicious`.
//!
//! PAM's lines from sshd's process (`pam_unix(sshd:auth): …`) are read by
//! [`super::pam`] and tagged `sshd`. What each line is to a failed attempt (its
//! [`Role`]) goes to [`super::context`], which numbers attempts and marks echoes.

use std::sync::LazyLock;

use regex::{Captures, Regex};

mod connection;
mod listener;
mod refusals;
mod session;

use self::connection::*;
use self::refusals::*;
use self::session::*;

use super::common::TrimFast;
use super::context::Role;
use super::draft::Draft;

use super::common::{
    find, ip_address, mark_suspicious, outcome, rsplit_once, set, set_int, set_source, set_text,
    split_once,
};

/// Parser id, written into `tags`.
pub const ID: &str = "sshd";

fn regex(pattern: &str) -> Regex {
    // The patterns are literals in this file, checked by the tests.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("bad sshd pattern: {e}"))
}

static INVALID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?i:invalid|illegal) user (.*?) from (\S+?)(?: port (\d+))?\s*$"));
static RECEIVED_DISCONNECT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Received disconnect from (\S+)(?: port (\d+))?"));
static NO_IDENTIFICATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^Did not receive identification string from (\S+?)(?: port (\d+))?\s*$")
});
static ROOT_REFUSED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^ROOT LOGIN REFUSED FROM (\S+?)(?: port (\d+))?$"));
static TIMEOUT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^Timeout before authentication for (?:connection from (\S+) to \S+, pid = \d+.*|(\S+?)(?: port (\d+))?)$",
    )
});
static PROBED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?:probed|scanned) from (\S+) port (\d+) with "));
static MAGIC: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Magic value check failed .* from (\S+?)(?: port (\d+))?(?:\s|$)"));
static REFUSED_CONNECT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^refused connect from (?:\S+ )?\(?(?:\S*@)?([0-9A-Fa-f:.]+)\)?\s*$"));
static DROP: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^drop connection #\d+ from \[([^\]]+)\]:(\d+) on \[[^\]]+\]:\d+ "));
static CONNECTION_FROM: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^Connection from (\S+) port (\d+) on (\S+) port (\d+)(?: rdomain .*)?$")
});

/// Capture group `i` (empty when it did not take part), borrowed from the message.
fn cap<'h>(c: &Captures<'h>, i: usize) -> &'h str {
    c.get(i).map_or("", |m| m.as_str())
}

/// Reads an sshd message into `event`; false when it is none of the known shapes.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = message.trim_fast();
    // PAM's lines from sshd's process.
    if is_pam(message) {
        if !super::pam::parse(message, event) {
            return false;
        }
        // sshd sessions name only the user logged in (the contract's table).
        if event.category == "session" {
            event.details.remove("targetuser");
        }
        return true;
    }
    let message = message
        .strip_prefix("error: ")
        .or_else(|| message.strip_prefix("fatal: "))
        .unwrap_or(message);
    let (message, preauth) = match message.strip_suffix(" [preauth]") {
        Some(rest) => (rest, true),
        None => match message.strip_suffix(" [postauth]") {
            Some(rest) => (rest, false),
            None => (message, false),
        },
    };
    let recognised = shape(message, preauth, event);
    if recognised && preauth {
        set(event, "preauth", true);
    }
    if !recognised && preauth {
        // Whatever else the pre-authentication child said before the connection
        // ended (`fatal: Read from socket failed: …`, `Bad packet length …`, kex
        // errors): a probe of the connection's peer, which the process table gives.
        super::forget_parse(event);
        probe(event, false);
        set(event, "preauth", true);
        return true;
    }
    recognised
}

/// A PAM module's line, old or new form.
fn is_pam(message: &str) -> bool {
    message.starts_with("pam_")
        || (message.starts_with("PAM ")
            && message.as_bytes().get(4).is_some_and(u8::is_ascii_digit))
        || message.starts_with("PAM service(")
        || message.starts_with("authentication failure; logname=")
        || message.starts_with("check pass; user ")
        || message.starts_with("session opened for user ")
        || message.starts_with("session closed for user ")
        || (message.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && message
                .split_once(" more authentication failure")
                .is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_digit())))
}

/// The message's shape, without level prefix and `[preauth]` suffix.
fn shape<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
    let first = match message.bytes().position(|b| b == b' ') {
        Some(at) => &message[..at],
        None => message,
    };
    match first {
        "Accepted" => {
            auth_log(first, message, event) || {
                super::forget_parse(event);
                listener::key_match(message, event)
            }
        }
        "Failed" | "Partial" | "Postponed" => auth_log(first, message, event),
        "Invalid" | "invalid" | "Illegal" | "illegal" => invalid(message, event),
        "input_userauth_request:" => invalid_request(message, event),
        "maximum" => max_attempts(message, event),
        "Disconnecting" | "Disconnecting:" => disconnecting(message, event),
        "Connection" => connection(message, event),
        "Disconnected" => disconnected(message, preauth, event),
        "Received" => received_disconnect(message, preauth, event),
        "User" => not_allowed(message, event),
        "ROOT" => root_refused(message, event),
        "PAM:" => pam_error(message, event),
        "Timeout" | "Timeout," => timeout(message, event),
        "Did" => probe_regex(&NO_IDENTIFICATION, message, event, true),
        "Bad" => bad_version(message, event),
        "Protocol" => major_versions(message, event),
        "probed" | "scanned" => probe_regex(&PROBED, message, event, true),
        "Unable" => negotiate(message, event),
        "banner"
        | "ssh_dispatch_run_fatal:"
        | "dispatch_protocol_error:"
        | "read:"
        | "ssh_packet_disconnect:"
        | "send" => tagged_connection(message, preauth, event),
        "kex_exchange_identification:" => {
            probe(event, false);
            true
        }
        "Magic" => probe_regex(&MAGIC, message, event, false),
        "refused" => refused_connect(message, event),
        "drop" => dropped(message, event),
        "Username" => too_long(message, event),
        "Access" => access_denied(message, event),
        "administratively" => prohibited(message, event),
        "Starting" => starting_session(message, event),
        "Close" => close_session(message, event),
        "Closing" => closing(message, event),
        "subsystem" => subsystem(message, event),
        "terminating" => inactive(message, event),
        "Read" => read_error(message, preauth, event),
        "Finished" => finished_discarding(message, event),
        "public" => key_rejected(message, event),
        "userauth_hostbased" => hostbased_mismatch(message, event),
        "srclimit_penalise:" => listener::penalty(message, event),
        "beginning" | "in" | "exited" | "PerSourcePenalties" | "MaxStartups" => {
            listener::throttling(message, event)
        }
        "session" | "Session" => listener::crash(message, event),
        "reverse" | "Address" | "Nasty" => listener::dns(message, event),
        _ => key_from_elsewhere(message, event),
    }
}

fn login<'a>(
    event: &mut Draft<'a>,
    success: bool,
    user: &'a str,
    address: &'a str,
    port: Option<&str>,
) {
    outcome(event, "authentication", "login", Some(success));
    set_text(event, "username", user);
    set_source(event, address);
    if let Some(port) = port {
        set_int(event, "sourceport", port);
    }
    if holds_address(user) {
        mark_suspicious(event);
    }
}

/// A pre-authentication probe: the connection's peer was up to no good before it
/// named a user. `ends` when the line is the connection's last.
fn probe(event: &mut Draft<'_>, ends: bool) {
    outcome(event, "connection", "probe", None);
    event.role = Role::Follows;
    event.ends = ends;
}

/// A disconnect: of a connection before authentication (`[preauth]`, part of the
/// attempts so far), of a session after it.
fn disconnect(event: &mut Draft<'_>, preauth: bool) {
    if preauth {
        outcome(event, "connection", "disconnect", None);
        event.role = Role::Follows;
    } else {
        outcome(event, "session", "disconnect", None);
    }
}

/// `invalid user <name>` (a name the client typed, no account) or an account's name.
fn typed_user(user: &str) -> (bool, &str) {
    match user.strip_prefix("invalid user ") {
        Some(user) => (true, user),
        None => (false, user),
    }
}

/// A login line's `[invalid user ]<user> from <ip> port <n><tail>` ([`from_parts`])
/// onto the event; the tail, or `None` when the text is not that.
fn login_from<'a>(event: &mut Draft<'a>, success: bool, rest: &'a str) -> Option<&'a str> {
    let (user, address, port, tail, forged) = from_parts(rest)?;
    let (invalid, user) = typed_user(user);
    login(event, success, user, address, Some(port));
    if invalid {
        set(event, "invaliduser", true);
    }
    if forged {
        mark_suspicious(event);
    }
    Some(tail)
}

/// Whether client text (a user name) holds something an address could be read from.
fn holds_address(text: &str) -> bool {
    // Only a word with a `.` or `:` can be an address: most names are read no further.
    text.bytes().any(|b| b == b'.' || b == b':')
        && text
            .split([' ', '[', ']', ',', '(', ')', '\''])
            .any(|word| word.len() >= 3 && ip_address(word).is_some())
}

/// A login line's (user, address, port, tail).
type LoginPeer<'a> = (&'a str, &'a str, &'a str, &'a str);

/// How sure a tail after `port <n>` (in `auth_log` and `maximum authentication
/// attempts exceeded`) makes the peer before it, best last: any other text (no
/// OpenSSH writes it, but patched builds, relays and test harnesses append their own),
/// `ssh2: ` with info that may be client text (a certificate's ID, a GSSAPI
/// principal), or a tail fixed by OpenSSH — `ssh2`, `ssh1` (before 7.4), nothing, or
/// `ssh2: ` with one key (`RSA SHA256:…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tail {
    Other,
    Loose,
    Fixed,
}

fn tail_kind(tail: &str) -> Tail {
    if matches!(tail, "" | " ssh2" | " ssh1") {
        return Tail::Fixed;
    }
    let Some(info) = tail
        .strip_prefix(" ssh2: ")
        .or_else(|| tail.strip_prefix(" ssh1: "))
    else {
        return Tail::Other;
    };
    if is_key(info) {
        Tail::Fixed
    } else {
        Tail::Loose
    }
}

/// `<type> <SHA256:…|MD5:…>`: a key as OpenSSH names it.
fn is_key(text: &str) -> bool {
    text.split_once(' ')
        .is_some_and(|(kind, print)| is_key_parts(kind, print))
}

fn is_key_parts(kind: &str, print: &str) -> bool {
    !kind.is_empty()
        && !kind.contains(' ')
        && !print.contains(' ')
        && (print.starts_with("SHA256:") || print.starts_with("MD5:"))
}

/// `<user> from <address> port <port><tail>`, where the user and (for certificates)
/// the tail are client text: the leftmost ` from ` when the user before it is an
/// account's name, else the rightmost with the surest tail ([`Tail`]). (user, address,
/// port, tail, whether more than one candidate was seen).
fn from_parts(rest: &str) -> Option<(&str, &str, &str, &str, bool)> {
    let mut best: Option<(Tail, LoginPeer<'_>)> = None;
    let mut leftmost = None;
    let mut candidates = 0;
    let mut end = rest.len();
    while let Some((user, _)) = rsplit_once(&rest[..end], " from ") {
        let after_start = user.len() + " from ".len();
        end = user.len();
        let tail_all = &rest[after_start..];
        let Some((address, port_tail)) = split_once(tail_all, " port ") else {
            continue;
        };
        let digits = port_tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || address.is_empty() || address.contains(' ') {
            continue;
        }
        let (port, tail) = port_tail.split_at(digits);
        candidates += 1;
        let kind = tail_kind(tail);
        let found = (user, address, port, tail);
        if kind != Tail::Other {
            leftmost = Some(found);
        }
        // Right to left: a candidate replaces the best only when its tail is surer.
        if best.is_none_or(|(surest, _)| kind > surest) {
            best = Some((kind, found));
        }
    }
    // An account's name (no `invalid user `) has no blanks, so cannot hold a forged
    // ` from `: then the leftmost candidate with a tail OpenSSH writes is the peer,
    // whatever a certificate's ID in the tail says. A typed name (`invalid user …`)
    // may: the rightmost.
    if let Some(first) = leftmost {
        let (user, ..) = first;
        if !user.starts_with("invalid user ") && !user.contains(' ') {
            let (user, address, port, tail) = first;
            return Some((user, address, port, tail, candidates > 1));
        }
    }
    let (_, (user, address, port, tail)) = best?;
    Some((user, address, port, tail, candidates > 1))
}

/// `auth_log`: `<Accepted|Failed|Partial|Postponed> <method> for [invalid user ]<user>
/// from <ip> port <n> ssh2[: <info>]`.
fn auth_log<'a>(verb: &str, message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((method, rest)) = message
        .get(verb.len() + 1..)
        .and_then(|rest| split_once(rest, " for "))
    else {
        return false;
    };
    if method.contains(' ') || method.is_empty() {
        return false;
    }
    let Some(tail) = login_from(event, verb == "Accepted", rest) else {
        return false;
    };
    match verb {
        "Accepted" => {}
        "Failed" => event.role = Role::Fails,
        _ => {
            // Partial (one of several required methods passed), Postponed (more
            // rounds to come): neither a login nor a failure.
            event.details.remove("success");
            set(
                event,
                "action",
                if verb == "Partial" {
                    "partial"
                } else {
                    "postponed"
                },
            );
        }
    }
    set_text(event, "authmethod", method);
    // ` ssh2: RSA SHA256:…` (or a certificate's `ED25519-CERT SHA256:… ID …`).
    if let Some(info) = tail.strip_prefix(" ssh2: ") {
        let mut words = info.split(' ');
        if let (Some(kind), Some(print)) = (words.next(), words.next())
            && (print.starts_with("SHA256:") || print.starts_with("MD5:"))
        {
            set(event, "keyfingerprint", format!("{kind} {print}"));
        }
    }
    true
}

/// `[<kind> user <user> ]<address> port <port>` (the connection id of `sshpkt_fatal`),
/// read from the right: (kind, user, address, port). `kind` is the word before
/// ` user`, when there is one.
fn peer_parts(rest: &str) -> Option<Id<'_>> {
    let (before, after) = rsplit_once(rest, " port ")?;
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits != after.len() {
        return None;
    }
    let port = &after[..digits];
    let (who, address) = match before.rsplit_once(' ') {
        Some((who, address)) => (Some(who), address),
        None => (None, before),
    };
    let (kind, user) = match who {
        None => (None, None),
        Some(who) => {
            let (kind, user) = who
                .split_once(" user ")
                .or_else(|| who.strip_prefix("user ").map(|user| ("", user)))?;
            (Some(kind), Some(user))
        }
    };
    Some((kind, user, address, port))
}

/// `<id>: <text>` where the text after the id is OpenSSH's (an error, a reason, cut
/// at 100 bytes, sometimes with client text in it): the id ends at the first `: `
/// after which what precedes reads as an id (its user, if any, read from the right).
fn id_then_text(rest: &str) -> Option<(Id<'_>, &str)> {
    let mut from = 0;
    while let Some(at) = find(&rest[from..], ": ") {
        let at = from + at;
        if let Some(id) = peer_parts(&rest[..at]) {
            return Some((id, &rest[at + 2..]));
        }
        from = at + 2;
    }
    None
}

/// A connection id's parts: (kind, user, address, port).
type Id<'a> = (Option<&'a str>, Option<&'a str>, &'a str, &'a str);

/// A connection id's peer and user onto the event: the user names an attempt
/// (`authenticating user`, `invalid user`) or a session (`user`).
fn set_peer<'a>(
    event: &mut Draft<'a>,
    kind: Option<&str>,
    user: Option<&'a str>,
    address: &'a str,
    port: &str,
) {
    if let Some(user) = user {
        set_text(event, "username", user);
        if holds_address(user) {
            mark_suspicious(event);
        }
    }
    if kind == Some("invalid") {
        set(event, "invaliduser", true);
    }
    set_source(event, address);
    set_int(event, "sourceport", port);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_name_cannot_forge_the_source_address() {
        let rest = "invalid user x from 1.1.1.1 port 1 from 203.0.113.9 port 2222 ssh2";
        let (user, address, port, _, forged) = from_parts(rest).unwrap();
        assert_eq!(
            (user, address, port, forged),
            (
                "invalid user x from 1.1.1.1 port 1",
                "203.0.113.9",
                "2222",
                true
            )
        );
        // A user name ending in a whole forged tail: the real tail is the last.
        let rest = "x from 10.66.66.66 port 1 ssh2 from 203.0.113.9 port 22 ssh2";
        let (user, address, ..) = from_parts(rest).unwrap();
        assert_eq!(
            (user, address),
            ("x from 10.66.66.66 port 1 ssh2", "203.0.113.9")
        );
        // A certificate ID (client text in the tail) holding a forged peer: the strict
        // tail wins over the loose one.
        let rest = "alice from 203.0.113.9 port 22 ssh2: RSA SHA256:abc";
        let (user, address, port, tail, forged) = from_parts(rest).unwrap();
        assert_eq!(
            (user, address, port, tail, forged),
            ("alice", "203.0.113.9", "22", " ssh2: RSA SHA256:abc", false)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Invalid-user lines built from words that hold the separators: whenever the
        /// hand reader takes one, it reads what the regex reads.
        #[test]
        fn the_invalid_user_reader_reads_what_the_regex_reads(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "from", "port", "user", "22", "1.2.3.4", "2001:db8::1", "a", "", " ", "\t",
                "x y", "é", "0x", "Invalid", "[preauth]", "a\x0bb", "\x0c", "\r",
            ]), 0..9),
            first in proptest::sample::select(vec!["Invalid", "invalid", "Illegal", "illegal", "ILLEGAL", "Invalidx"]),
            glue in proptest::collection::vec(proptest::sample::select(vec![" ", " ", " ", "  ", ""]), 10),
        ) {
            let mut message = format!("{first}{}user", glue[9]);
            for (word, glue) in words.iter().zip(&glue) {
                message.push_str(glue);
                message.push_str(word);
            }
            if let Some(ours) = invalid_parts(&message) {
                let c = INVALID.captures(&message);
                proptest::prop_assert!(c.is_some(), "{:?}", message);
                let c = c.unwrap();
                let theirs = (cap(&c, 1), cap(&c, 2), c.get(3).map(|m| m.as_str()));
                proptest::prop_assert_eq!(ours, theirs, "{:?}", message);
            }
        }
    }

    #[test]
    fn the_usual_invalid_user_lines_are_read_without_the_regex() {
        for (message, want) in [
            (
                "Invalid user admin from 1.2.3.4 port 22",
                ("admin", "1.2.3.4", Some("22")),
            ),
            (
                "Invalid user a from b from 1.2.3.4",
                ("a from b", "1.2.3.4", None),
            ),
            (
                "invalid user  from 2001:db8::1 port 5 ",
                ("", "2001:db8::1", Some("5")),
            ),
        ] {
            assert_eq!(invalid_parts(message), Some(want), "{message}");
            let c = INVALID.captures(message).unwrap();
            assert_eq!((cap(&c, 1), cap(&c, 2), c.get(3).map(|m| m.as_str())), want);
        }
    }

    #[test]
    fn a_tail_openssh_does_not_write_still_gives_the_peer() {
        // Relays and test harnesses append their own text after `ssh2`.
        let (user, address, port, tail, forged) =
            from_parts("root from 192.0.2.1 port 22 ssh2 seq-7").unwrap();
        assert_eq!(
            (user, address, port, tail, forged),
            ("root", "192.0.2.1", "22", " ssh2 seq-7", false)
        );
        // A typed name holding a peer with a fixed tail loses to nothing but a surer
        // tail: here the real one is as unsure as the forged one, and rightmost.
        let (_, address, ..) =
            from_parts("invalid user x from 10.66.66.66 port 1 from 192.0.2.1 port 22 ssh2 seq-7")
                .unwrap();
        assert_eq!(address, "192.0.2.1");
    }

    #[test]
    fn peers_are_read_with_and_without_a_user() {
        assert_eq!(
            peer_parts("authenticating user root 1.2.3.4 port 22"),
            Some((Some("authenticating"), Some("root"), "1.2.3.4", "22"))
        );
        assert_eq!(
            peer_parts("user alice 2001:db8::1 port 22"),
            Some((Some(""), Some("alice"), "2001:db8::1", "22"))
        );
        assert_eq!(
            peer_parts("1.2.3.4 port 22"),
            Some((None, None, "1.2.3.4", "22"))
        );
        assert_eq!(peer_parts("1.2.3.4 port x"), None);
    }
}
