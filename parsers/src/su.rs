//! su lines (the contract's su table).

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::common::TrimFast;
use super::common::{outcome, pam_value, session, set_text};
use super::draft::{AuthLine, Draft};

/// Parser id, written into `tags`.
pub const ID: &str = "su";

static TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(FAILED SU )?\(to (\S+)\) (\S+) on (\S+)")
        .unwrap_or_else(|e| unreachable!("bad su pattern: {e}"))
});
static FOR_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(Successful|FAILED) su for (\S+) by (\S+)")
        .unwrap_or_else(|e| unreachable!("bad su pattern: {e}"))
});

/// Reads an su message into `event`; false when it is none of the known shapes.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = message.trim_fast();
    if let Some(c) = TO.captures(message) {
        outcome(event, "authentication", "su", Some(c.get(1).is_none()));
        set_text(event, "username", cap(&c, 3));
        set_text(event, "targetuser", cap(&c, 2));
        set_text(event, "tty", cap(&c, 4));
        event.auth = match c.get(1) {
            Some(_) => AuthLine::Tally(1),
            None => AuthLine::Success,
        };
        return true;
    }
    if let Some(c) = FOR_BY.captures(message) {
        let success = cap(&c, 1) == "Successful";
        outcome(event, "authentication", "su", Some(success));
        set_text(event, "username", cap(&c, 3));
        set_text(event, "targetuser", cap(&c, 2));
        event.auth = if success {
            AuthLine::Success
        } else {
            AuthLine::Tally(1)
        };
        return true;
    }
    if message.starts_with("pam_unix(su:auth): authentication failure;")
        || message.starts_with("pam_unix(su-l:auth): authentication failure;")
    {
        outcome(event, "authentication", "su", Some(false));
        if let Some(user) = pam_value(message, "ruser").or_else(|| pam_value(message, "logname")) {
            set_text(event, "username", user);
        }
        if let Some(target) = pam_value(message, "user") {
            set_text(event, "targetuser", target);
        }
        event.auth = AuthLine::PamFailure;
        return true;
    }
    if message.starts_with("pam_unix(su:session):")
        || message.starts_with("pam_unix(su-l:session):")
    {
        return session(event, message);
    }
    false
}

/// Capture group `i` (empty when it did not take part), borrowed from the message.
fn cap<'h>(c: &Captures<'h>, i: usize) -> &'h str {
    c.get(i).map_or("", |m| m.as_str())
}
