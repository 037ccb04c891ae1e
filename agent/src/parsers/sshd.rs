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

mod listener;

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

/// The end of a connection named by its id: an attempt's end before authentication
/// (`authenticating user`, `invalid user`), a probe's (no user, `[preauth]`), a
/// session's (after login).
fn connection_end<'a>(
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

fn invalid<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn invalid_request<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn invalid_parts(message: &str) -> Option<(&str, &str, Option<&str>)> {
    let first = message.get(..7)?;
    if !message.is_ascii()
        || !(first.eq_ignore_ascii_case("invalid") || first.eq_ignore_ascii_case("illegal"))
    {
        return None;
    }
    let rest = message[7..].strip_prefix(" user ")?;
    let mut from = 0;
    while let Some(at) = super::common::find(&rest[from..], " from ") {
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
fn max_attempts<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn disconnecting<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    const TOO_MANY: &str = "Too many authentication failures";
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
fn connection<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn disconnected<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
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
fn received_disconnect<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
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
fn tagged_connection<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
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

fn probe_regex<'a>(pattern: &Regex, message: &'a str, event: &mut Draft<'a>, ends: bool) -> bool {
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
fn bad_version<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn major_versions<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn negotiate<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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

/// `User <user> from <host> not allowed because …` (AllowUsers, DenyUsers, groups)
/// and `User <user> not allowed because account is locked` / `… shell …`: a refused
/// login (the `Failed … for invalid user` line that follows is the same attempt).
/// The reason is the server's text, the host one word: both read from the right.
fn not_allowed<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn root_refused<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn pam_error<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn timeout<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn refused_connect<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = REFUSED_CONNECT.captures(message) else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    set_source(event, cap(&c, 1));
    true
}

/// The listener's `drop connection #<n> from [<ip>]:<port> on [<ip>]:<port> <why>`
/// (MaxStartups, PerSourcePenalties): a connection refused before it began.
fn dropped<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn key_rejected<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn hostbased_mismatch<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn too_long<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn access_denied<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn prohibited<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn key_from_elsewhere<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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

/// `Starting session: <what> for <user> from <ip> port <n> id <n>` (VERBOSE).
fn starting_session<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn session_peer(tail: &str) -> Option<(&str, &str)> {
    let (id, _) = rsplit_once(tail, " id ")?;
    match peer_parts(id)? {
        (None, None, address, port) => Some((address, port)),
        _ => None,
    }
}

/// `Close session: user <user> from <ip> port <n> id <n>` (VERBOSE).
fn close_session<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn closing<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn subsystem<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn inactive<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
fn read_error<'a>(message: &'a str, preauth: bool, event: &mut Draft<'a>) -> bool {
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
fn finished_discarding<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
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
