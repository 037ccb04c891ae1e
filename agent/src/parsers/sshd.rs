//! sshd lines (the contract's sshd table). The message's first word picks the shape;
//! one anchored regex per shape reads the fields.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::common::TrimFast;
use super::draft::Draft;

use super::common::{
    outcome, pam_value, rsplit_once, session, set, set_int, set_source, set_text, split_once,
};

/// Parser id, written into `tags`.
pub const ID: &str = "sshd";

fn regex(pattern: &str) -> Regex {
    // The patterns are literals in this file, checked by the tests.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("bad sshd pattern: {e}"))
}

static INVALID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?i:invalid|illegal) user (.*?) from (\S+?)(?: port (\d+))?\s*$"));
static MAX_ATTEMPTS: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^error: maximum authentication attempts exceeded for (invalid user )?(.*?) from (\S+) port (\d+)",
    )
});
static RECEIVED_DISCONNECT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Received disconnect from (\S+)(?: port (\d+))?"));
static NO_IDENTIFICATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^Did not receive identification string from (\S+?)(?: port (\d+))?\s*$")
});
static NEGOTIATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Unable to negotiate with (\S+)(?: port (\d+))?"));
static BANNER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^banner exchange: Connection from (\S+)(?: port (\d+))?"));
static NOT_ALLOWED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^User (\S+) from (\S+) not allowed because "));
static ROOT_REFUSED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^ROOT LOGIN REFUSED FROM (\S+?)(?: port (\d+))?(?:\s|$)"));
static TIMEOUT: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^fatal: Timeout before authentication for (\S+?)(?: port (\d+))?(?:\s|$)")
});
static DISPATCH_FATAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^ssh_dispatch_run_fatal: Connection from (?:\S+ user \S+ )?(\S+)(?: port (\d+))?")
});
static MAGIC: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Magic value check failed .* from (\S+?)(?: port (\d+))?(?:\s|$)"));
static REFUSED_CONNECT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^refused connect from (?:\S+ )?\(?(?:\S*@)?([0-9A-Fa-f:.]+)\)?\s*$"));
static PAM_MORE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^PAM (\d+) more authentication failures?;"));

/// Capture group `i` (empty when it did not take part), borrowed from the message.
fn cap<'h>(c: &Captures<'h>, i: usize) -> &'h str {
    c.get(i).map_or("", |m| m.as_str())
}

/// Reads an sshd message into `event`; false when it is none of the known shapes.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = message.trim_fast();
    let first = match message.bytes().position(|b| b == b' ') {
        Some(at) => &message[..at],
        None => message,
    };
    match first {
        "Accepted" => accepted(message, event),
        "Failed" => failed(message, event),
        "Invalid" | "invalid" | "Illegal" | "illegal" => invalid(message, event),
        "error:" => max_attempts(message, event),
        "Connection" => connection_closed(message, event),
        "Disconnected" => disconnected(message, event),
        "Received" => received_disconnect(message, event),
        "PAM" => pam_more(message, event),
        "User" => not_allowed(message, event),
        "ROOT" => root_refused(message, event),
        "fatal:" => probe(&TIMEOUT, message, event),
        "ssh_dispatch_run_fatal:" => probe(&DISPATCH_FATAL, message, event),
        "Magic" => probe(&MAGIC, message, event),
        "refused" => refused_connect(message, event),
        "Did" => probe(&NO_IDENTIFICATION, message, event),
        "Unable" => probe(&NEGOTIATE, message, event),
        "banner" => probe(&BANNER, message, event),
        "kex_exchange_identification:" => {
            outcome(event, "connection", "probe", None);
            true
        }
        _ if message.starts_with("pam_unix(sshd:auth): authentication failure;") => {
            pam_failure(message, event)
        }
        _ if message.starts_with("pam_unix(sshd:session):") => session_line(message, event),
        _ => false,
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
}

/// `<method> for <user> from <address> port <port><tail>`, read from the right so a
/// user name holding ` from ` cannot forge the address: (method, user, address, port,
/// tail).
fn login_parts(rest: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let (method, rest) = split_once(rest, " for ")?;
    let (user, rest) = rsplit_once(rest, " from ")?;
    let (address, rest) = split_once(rest, " port ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || method.contains(' ') || address.contains(' ') {
        return None;
    }
    Some((method, user, address, &rest[..digits], &rest[digits..]))
}

fn accepted<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((method, user, address, port, tail)) =
        message.strip_prefix("Accepted ").and_then(login_parts)
    else {
        return false;
    };
    login(event, true, user, address, Some(port));
    set_text(event, "authmethod", method);
    // ` ssh2: RSA SHA256:…`
    if let Some((_, key)) = tail.split_once(": ") {
        let mut words = key.split_whitespace();
        if let (Some(kind), Some(print)) = (words.next(), words.next()) {
            set(event, "keyfingerprint", format!("{kind} {print}"));
        }
    }
    true
}

fn failed<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((method, user, address, port, _)) =
        message.strip_prefix("Failed ").and_then(login_parts)
    else {
        return false;
    };
    let (invalid, user) = match user.strip_prefix("invalid user ") {
        Some(user) => (true, user),
        None => (false, user),
    };
    login(event, false, user, address, Some(port));
    set_text(event, "authmethod", method);
    if invalid {
        set(event, "invaliduser", true);
    }
    true
}

/// `[<kind> user <user> ]<address> port <port>[ …]`, read from the right: (kind, user,
/// address, port). `kind` is the word before ` user`, when there is one.
fn peer_parts(rest: &str) -> Option<(Option<&str>, Option<&str>, &str, &str)> {
    let (before, after) = rsplit_once(rest, " port ")?;
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
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

fn max_attempts<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = MAX_ATTEMPTS.captures(message) else {
        return false;
    };
    login(event, false, cap(&c, 2), cap(&c, 3), Some(cap(&c, 4)));
    if c.get(1).is_some() {
        set(event, "invaliduser", true);
    }
    true
}

fn connection_closed<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = message
        .strip_prefix("Connection closed by ")
        .or_else(|| message.strip_prefix("Connection reset by "))
    else {
        return false;
    };
    let Some((kind, user, address, port)) = peer_parts(rest) else {
        // `Connection closed by <address> [preauth]`, no port.
        let address = rest.split_whitespace().next().unwrap_or("");
        if super::common::ip_address(address).is_none() {
            return false;
        }
        outcome(event, "session", "disconnect", None);
        set_source(event, address);
        return true;
    };
    match user {
        Some(user) => {
            login(event, false, user, address, Some(port));
            if kind == Some("invalid") {
                set(event, "invaliduser", true);
            }
        }
        None => {
            outcome(event, "session", "disconnect", None);
            set_source(event, address);
            set_int(event, "sourceport", port);
        }
    }
    true
}

fn disconnected<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((_, user, address, port)) = message
        .strip_prefix("Disconnected from ")
        .and_then(peer_parts)
    else {
        return false;
    };
    outcome(event, "session", "disconnect", None);
    if let Some(user) = user {
        set_text(event, "username", user);
    }
    set_source(event, address);
    set_int(event, "sourceport", port);
    true
}

fn received_disconnect<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = RECEIVED_DISCONNECT.captures(message) else {
        return false;
    };
    outcome(event, "session", "disconnect", None);
    set_source(event, cap(&c, 1).trim_end_matches(':'));
    if let Some(port) = c.get(2) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

fn probe<'a>(pattern: &Regex, message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = pattern.captures(message) else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    // `from 2001:db8::1: reason`: the colon ends the message's clause, not the address.
    set_source(event, cap(&c, 1).trim_end_matches(':'));
    if let Some(port) = c.get(2) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

/// `User <user> from <address> not allowed because …` (AllowUsers, DenyUsers, shell):
/// beyond the contract's table, a refused login.
fn not_allowed<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = NOT_ALLOWED.captures(message) else {
        return false;
    };
    login(event, false, cap(&c, 1), cap(&c, 2), None);
    true
}

/// `ROOT LOGIN REFUSED FROM <address>`: beyond the contract's table, a refused login.
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
    true
}

/// tcp_wrappers' `refused connect from <name> (<address>)`: beyond the table, a probe.
fn refused_connect<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = REFUSED_CONNECT.captures(message) else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    set_source(event, cap(&c, 1));
    true
}

fn pam_failure<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    outcome(event, "authentication", "login", Some(false));
    if let Some(user) = pam_value(message, "user") {
        set_text(event, "username", user);
    }
    if let Some(host) = pam_value(message, "rhost") {
        set_source(event, host);
    }
    true
}

fn pam_more<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(c) = PAM_MORE.captures(message) else {
        return false;
    };
    pam_failure(message, event);
    set_int(event, "repeatcount", cap(&c, 1));
    true
}

fn session_line<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    if !session(event, message) {
        return false;
    }
    // sshd sessions name only the user logged in.
    event.details.remove("targetuser");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_name_cannot_forge_the_source_address() {
        let message = "Failed password for invalid user x from 1.1.1.1 port 1 from 203.0.113.9 port 2222 ssh2";
        let (_, user, address, port, _) = login_parts(&message["Failed ".len()..]).unwrap();
        assert_eq!(
            (user, address, port),
            ("invalid user x from 1.1.1.1 port 1", "203.0.113.9", "2222")
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
    fn peers_are_read_with_and_without_a_user() {
        assert_eq!(
            peer_parts("authenticating user root 1.2.3.4 port 22 [preauth]"),
            Some((Some("authenticating"), Some("root"), "1.2.3.4", "22"))
        );
        assert_eq!(
            peer_parts("user alice 2001:db8::1 port 22"),
            Some((Some(""), Some("alice"), "2001:db8::1", "22"))
        );
        assert_eq!(
            peer_parts("1.2.3.4 port 22 [preauth]"),
            Some((None, None, "1.2.3.4", "22"))
        );
        assert_eq!(peer_parts("1.2.3.4 port x"), None);
    }
}
