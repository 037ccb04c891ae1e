//! sshd lines (the contract's sshd table). The message's first word picks the shape;
//! one anchored regex per shape reads the fields.

use std::sync::LazyLock;

use mozdef::Event;
use regex::Regex;

use super::common::{outcome, pam_value, session, set, set_int, set_source, set_text};

/// Parser id, written into `tags`.
pub const ID: &str = "sshd";

fn regex(pattern: &str) -> Regex {
    // The patterns are literals in this file, checked by the tests.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("bad sshd pattern: {e}"))
}

static ACCEPTED: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^Accepted (\S+) for (.*?) from (\S+) port (\d+)(?: [^\s:]+)?(?:: (\S+) (\S+))?")
});
static FAILED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Failed (\S+) for (invalid user )?(.*?) from (\S+) port (\d+)"));
static INVALID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?i:invalid|illegal) user (.*?) from (\S+?)(?: port (\d+))?\s*$"));
static MAX_ATTEMPTS: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^error: maximum authentication attempts exceeded for (invalid user )?(.*?) from (\S+) port (\d+)",
    )
});
static CLOSED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^Connection (?:closed|reset) by (?:(authenticating|invalid) user (.*?) )?(\S+) port (\d+)",
    )
});
static DISCONNECTED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^Disconnected from (?:(?:user|invalid user|authenticating user) (.*?) )?(\S+) port (\d+)",
    )
});
static RECEIVED_DISCONNECT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Received disconnect from (\S+?)(?: port (\d+))?:"));
static NO_IDENTIFICATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^Did not receive identification string from (\S+?)(?: port (\d+))?\s*$")
});
static NEGOTIATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Unable to negotiate with (\S+?)(?: port (\d+))?:"));
static BANNER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^banner exchange: Connection from (\S+?)(?: port (\d+))?:"));
static PAM_MORE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^PAM (\d+) more authentication failures?;"));

/// Reads an sshd message into `event`; false when it is none of the known shapes.
pub fn parse(message: &str, event: &mut Event) -> bool {
    let message = message.trim();
    let first = message.split(' ').next().unwrap_or("");
    match first {
        "Accepted" => accepted(message, event),
        "Failed" => failed(message, event),
        "Invalid" | "invalid" | "Illegal" | "illegal" => invalid(message, event),
        "error:" => max_attempts(message, event),
        "Connection" => connection_closed(message, event),
        "Disconnected" => disconnected(message, event),
        "Received" => received_disconnect(message, event),
        "PAM" => pam_more(message, event),
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

fn login(event: &mut Event, success: bool, user: &str, address: &str, port: Option<&str>) {
    outcome(event, "authentication", "login", Some(success));
    set_text(event, "username", user);
    set_source(event, address);
    if let Some(port) = port {
        set_int(event, "sourceport", port);
    }
}

fn accepted(message: &str, event: &mut Event) -> bool {
    let Some(c) = ACCEPTED.captures(message) else {
        return false;
    };
    login(event, true, &c[2], &c[3], Some(&c[4]));
    set_text(event, "authmethod", &c[1]);
    if let (Some(kind), Some(print)) = (c.get(5), c.get(6)) {
        set(
            event,
            "keyfingerprint",
            format!("{} {}", kind.as_str(), print.as_str()),
        );
    }
    true
}

fn failed(message: &str, event: &mut Event) -> bool {
    let Some(c) = FAILED.captures(message) else {
        return false;
    };
    login(event, false, &c[3], &c[4], Some(&c[5]));
    set_text(event, "authmethod", &c[1]);
    if c.get(2).is_some() {
        set(event, "invaliduser", true);
    }
    true
}

fn invalid(message: &str, event: &mut Event) -> bool {
    let Some(c) = INVALID.captures(message) else {
        return false;
    };
    login(event, false, &c[1], &c[2], c.get(3).map(|m| m.as_str()));
    set(event, "invaliduser", true);
    true
}

fn max_attempts(message: &str, event: &mut Event) -> bool {
    let Some(c) = MAX_ATTEMPTS.captures(message) else {
        return false;
    };
    login(event, false, &c[2], &c[3], Some(&c[4]));
    if c.get(1).is_some() {
        set(event, "invaliduser", true);
    }
    true
}

fn connection_closed(message: &str, event: &mut Event) -> bool {
    let Some(c) = CLOSED.captures(message) else {
        return false;
    };
    match c.get(2) {
        Some(user) => {
            login(event, false, user.as_str(), &c[3], Some(&c[4]));
            if c.get(1).is_some_and(|m| m.as_str() == "invalid") {
                set(event, "invaliduser", true);
            }
        }
        None => {
            outcome(event, "session", "disconnect", None);
            set_source(event, &c[3]);
            set_int(event, "sourceport", &c[4]);
        }
    }
    true
}

fn disconnected(message: &str, event: &mut Event) -> bool {
    let Some(c) = DISCONNECTED.captures(message) else {
        return false;
    };
    outcome(event, "session", "disconnect", None);
    if let Some(user) = c.get(1) {
        set_text(event, "username", user.as_str());
    }
    set_source(event, &c[2]);
    set_int(event, "sourceport", &c[3]);
    true
}

fn received_disconnect(message: &str, event: &mut Event) -> bool {
    let Some(c) = RECEIVED_DISCONNECT.captures(message) else {
        return false;
    };
    outcome(event, "session", "disconnect", None);
    set_source(event, &c[1]);
    if let Some(port) = c.get(2) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

fn probe(pattern: &Regex, message: &str, event: &mut Event) -> bool {
    let Some(c) = pattern.captures(message) else {
        return false;
    };
    outcome(event, "connection", "probe", None);
    set_source(event, &c[1]);
    if let Some(port) = c.get(2) {
        set_int(event, "sourceport", port.as_str());
    }
    true
}

fn pam_failure(message: &str, event: &mut Event) -> bool {
    outcome(event, "authentication", "login", Some(false));
    if let Some(user) = pam_value(message, "user") {
        set_text(event, "username", user);
    }
    if let Some(host) = pam_value(message, "rhost") {
        set_source(event, host);
    }
    true
}

fn pam_more(message: &str, event: &mut Event) -> bool {
    let Some(c) = PAM_MORE.captures(message) else {
        return false;
    };
    pam_failure(message, event);
    set_int(event, "repeatcount", &c[1]);
    true
}

fn session_line(message: &str, event: &mut Event) -> bool {
    if !session(event, message) {
        return false;
    }
    // sshd sessions name only the user logged in.
    event.details.remove("targetuser");
    true
}
