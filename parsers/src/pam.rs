//! Lines PAM modules write, whatever program loaded them (login, vsftpd, cron, gdm,
//! polkit, dovecot, sshd, …). Taken from the modules' sources (Linux-PAM 0.72 to 1.7,
//! SSSD's pam_sss, nss-pam-ldapd's pam_ldap), not from sample lines:
//!
//! - Linux-PAM ≥ 0.99.1 writes `<module>(<service>:<type>): <text>` under the
//!   program's own tag; lines written while the handle ends carry `PAM ` instead
//!   (`PAM 2 more authentication failures; …`).
//! - Linux-PAM 0.74–0.80 (RHEL 4) put the module in the tag (`sshd(pam_unix)[42]:`)
//!   and wrote the bare text; [`parse`] reads the bare text too.
//!
//! `pam_unix`'s failure line is `authentication failure; logname=<l> uid=<n> euid=<n>
//! tty=<t> ruser=<r> rhost=<h>  user=<u>` (two spaces before `user=`, which is left
//! out when the account does not exist). `ruser` is the name a client typed for the
//! ftp daemons and dovecot, and `user` is typed text for pam_sss, so both may hold a
//! forged ` rhost=`: the host is read from the fixed grammar around them, and a line
//! with more than one candidate is tagged `suspicious`.
//!
//! The user being authenticated is `user=`; `logname=` (the login of the process that
//! asked, often empty for daemons) goes to `details.logname` and `ruser=` (who asks,
//! for su and sudo) to `details.ruser`.

use super::common::{
    TrimFast, find, mark_suspicious, outcome, rsplit_once, session, set, set_int, set_source,
    set_text, split_once,
};
use super::context::Role;
use super::draft::{AuthLine, Draft};

/// Parser id, written into `tags`.
pub const ID: &str = "pam";

/// `<module>(<service>:<type>): ` at the start of a message: (module, service, type,
/// the text after it).
pub fn prefix(message: &str) -> Option<(&str, &str, &str, &str)> {
    // The module's name (at most 64 of its characters), then `(`: most messages
    // are told apart at their first blank.
    let open = message
        .bytes()
        .take(65)
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))?;
    if open == 0 || message.as_bytes()[open] != b'(' {
        return None;
    }
    let module = &message[..open];
    let (inside, rest) = split_once(&message[open + 1..], "): ")?;
    let (service, kind) = inside.rsplit_once(':')?;
    if inside.contains(['(', ')']) {
        return None;
    }
    Some((module, service, kind, rest))
}

/// Reads a PAM line into `event`; false when it is none of the known shapes.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = message.trim_fast();
    let (module, text) = match prefix(message) {
        Some((module, service, kind, text)) => {
            set_text(event, "pammodule", module);
            set_text(event, "pamservice", service);
            set_text(event, "pamtype", kind);
            (Some(module), text)
        }
        None => match message
            .strip_prefix("PAM ")
            .or_else(|| message.strip_prefix("PAM-listfile: "))
            .or_else(|| message.strip_prefix("pam_ldap: "))
        {
            Some(text) => (None, text),
            None => (None, message),
        },
    };
    body(module, text, event)
}

/// The text after the prefix.
fn body<'a>(module: Option<&str>, text: &'a str, event: &mut Draft<'a>) -> bool {
    let first = match text.bytes().position(|b| b == b' ') {
        Some(at) => &text[..at],
        None => text,
    };
    match first {
        "authentication" => authentication(module, text, event),
        "check" => check_pass(text, event),
        "bad" | "auth" | "password" => named_failure(text, event),
        "session" => {
            if !session(event, text) {
                return false;
            }
            event.ends = text.starts_with("session closed");
            true
        }
        "Consecutive" => faillock(text, event),
        "conversation" if text == "conversation failed" => {
            // No password could be asked for (no terminal, the input ended): no attempt.
            outcome(event, "authentication", "conversation_failed", None);
            true
        }
        "user" => tally(text, event) || (module.is_some() && blank_password(text, event)),
        "received" => sss_received(text, event),
        "requirement" => succeed_if(text, event),
        "access" => access(text, event) || (module.is_some() && securetty(text, event)),
        "Refused" => listfile(text, event),
        "Authentication" | "User" if module == Some("pam_ldap") => ldap(text, event),
        _ if first.starts_with("service(") => max_retries(text, event),
        // Only after a module's prefix: these words are common in other programs' text.
        "account" if module.is_some() => expired(text, event),
        "Access" if module.is_some() => sss_denied(text, event),
        "User" if module.is_some() => faillock_unknown(text, event) || shells(text, event),
        _ => match first.parse::<u64>() {
            Ok(_) => more_failures(text, event),
            Err(_) => false,
        },
    }
}

/// The `key=value` list of a failure line, read by its fixed order: (logname, tty,
/// ruser, rhost, user, whether some value held a second ` rhost=`).
struct FailureFields<'a> {
    logname: &'a str,
    tty: &'a str,
    ruser: &'a str,
    rhost: &'a str,
    user: &'a str,
    forged: bool,
}

/// `logname=<l> uid=<n> euid=<n> tty=<t> ruser=<r> rhost=<h>[  user=<u>]` (pam_unix:
/// two spaces before `user=`, whose account exists, so one word; none for an unknown
/// account) or `… rhost=<h> user=<u>` (pam_sss, `typed_user`: one space, always
/// there, the name as the client typed it). `ruser` is typed text for the ftp daemons
/// and dovecot and comes before the host, the pam_sss user after it: the host is the
/// last ` rhost=<word>` that the fixed end follows (pam_unix), or the first that
/// ` user=` follows (pam_sss).
fn failure_fields(list: &str, typed_user: bool) -> Option<FailureFields<'_>> {
    let (head, tail) = split_once(list, " ruser=")?;
    let logname = head
        .strip_prefix("logname=")
        .and_then(|rest| rsplit_once(rest, " uid=").map(|(l, _)| l))
        .unwrap_or("");
    let tty = rsplit_once(head, " tty=").map_or("", |(_, t)| t);
    let mut candidates = 0;
    let mut found: Option<(&str, &str, &str)> = None;
    let mut from = 0;
    while let Some(at) = find(&tail[from..], " rhost=") {
        let at = from + at;
        candidates += 1;
        from = at + 1;
        let after = &tail[at + " rhost=".len()..];
        let (host, rest) = match after.bytes().position(|b| b == b' ') {
            Some(space) => (&after[..space], &after[space..]),
            None => (after, ""),
        };
        let candidate = if typed_user {
            // Always ` user=<typed>`: the first host it follows.
            match rest.strip_prefix(" user=") {
                Some(user) if found.is_none() => Some(user),
                _ => None,
            }
        } else if rest.trim_end_matches(' ').is_empty() {
            Some("")
        } else {
            // `  user=<account>`: one word to the end.
            rest.strip_prefix("  user=")
                .map(|user| user.trim_end_matches(' '))
                .filter(|user| !user.contains(' '))
        };
        if let Some(user) = candidate {
            found = Some((&tail[..at], host, user));
        }
    }
    let (ruser, rhost, user) = found?;
    Some(FailureFields {
        logname,
        tty,
        ruser,
        rhost,
        user,
        forged: candidates > 1,
    })
}

/// Sets the fields of a failure (or success) line.
fn failure<'a>(event: &mut Draft<'a>, fields: &FailureFields<'a>) {
    if event.processname == "su" && !fields.ruser.is_empty() {
        // su's `user=` is the account switched to; who asked is `ruser` (as su.rs
        // reads pam_unix's line: username the one asking, targetuser the target).
        set_text(event, "username", fields.ruser);
        set_text(event, "targetuser", fields.user);
    } else {
        set_text(event, "username", fields.user);
    }
    set_text(event, "ruser", fields.ruser);
    set_text(event, "logname", fields.logname);
    set_text(event, "tty", fields.tty);
    set_source(event, fields.rhost);
    if fields.forged {
        mark_suspicious(event);
    }
}

/// `authentication failure; …` (pam_unix, pam_sss), `authentication success; …`
/// (pam_sss).
fn authentication<'a>(module: Option<&str>, text: &'a str, event: &mut Draft<'a>) -> bool {
    let (success, list) = match text.strip_prefix("authentication failure; ") {
        Some(list) => (false, list),
        None => match text.strip_prefix("authentication success; ") {
            Some(list) => (true, list),
            None => return false,
        },
    };
    let Some(fields) = failure_fields(list, module == Some("pam_sss")) else {
        return false;
    };
    outcome(event, "authentication", "login", Some(success));
    failure(event, &fields);
    if !success {
        event.role = Role::Begins;
        // Under sudo or su, the program's own line repeats it ([`super::failures`]).
        event.auth = AuthLine::PamFailure;
    }
    true
}

/// `<n> more authentication failure[s]; …`: the failures after the first of one PAM
/// handle, written as it ends; they were attempts already seen.
fn more_failures<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((count, rest)) = text.split_once(' ') else {
        return false;
    };
    let Some(list) = rest
        .strip_prefix("more authentication failures; ")
        .or_else(|| rest.strip_prefix("more authentication failure; "))
    else {
        return false;
    };
    let Some(fields) = failure_fields(list, false) else {
        return false;
    };
    outcome(event, "authentication", "login", Some(false));
    failure(event, &fields);
    set_int(event, "repeatcount", count);
    event.role = Role::Echo;
    true
}

/// pam_unix's `service(<svc>) ignoring max retries; <n> > <max>` (`PAM ` before it):
/// written with `PAM <n-1> more authentication failures` as the handle closes, a
/// summary of attempts already counted (an echo): `attempts` n, `maxretries`.
fn max_retries<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((service, rest)) = text
        .strip_prefix("service(")
        .and_then(|rest| split_once(rest, ") ignoring max retries; "))
    else {
        return false;
    };
    let Some((count, max)) = rest.split_once(" > ") else {
        return false;
    };
    let (Ok(_), Ok(_)) = (count.parse::<u32>(), max.parse::<u32>()) else {
        return false;
    };
    outcome(event, "authentication", "login", Some(false));
    set_text(event, "pamservice", service);
    set_int(event, "attempts", count);
    set_int(event, "maxretries", max);
    event.role = Role::Echo;
    true
}

/// `check pass; user unknown` / `check pass; user (<typed>) unknown`: the account does
/// not exist.
fn check_pass<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("check pass; user ") else {
        return false;
    };
    let user = match rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(") unknown"))
    {
        Some(user) => user,
        None if rest == "unknown" => "",
        None => return false,
    };
    begins_failure(event, user);
    set(event, "invaliduser", true);
    true
}

/// Failures that name only the user, between a fixed opening and close: pam_unix's
/// `bad username [<typed>]` and `auth could not identify password for [<user>]` (the
/// client gave no password), unix_chkpwd's `password check failed for user (<user>)`.
const NAMED_FAILURES: [(&str, &str); 3] = [
    ("bad username [", "]"),
    ("auth could not identify password for [", "]"),
    ("password check failed for user (", ")"),
];

fn named_failure<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(user) = NAMED_FAILURES
        .iter()
        .find_map(|(open, close)| text.strip_prefix(open)?.strip_suffix(close))
    else {
        return false;
    };
    begins_failure(event, user);
    if text.starts_with("auth could not identify password") {
        event.auth = AuthLine::NoPassword;
    }
    true
}

/// The first sign of a failed attempt by `user`.
fn begins_failure<'a>(event: &mut Draft<'a>, user: &'a str) {
    outcome(event, "authentication", "login", Some(false));
    set_text(event, "username", user);
    event.role = Role::Begins;
}

/// pam_faillock's `Consecutive login failures for user <u> account temporarily locked`.
fn faillock<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(user) = text
        .strip_prefix("Consecutive login failures for user ")
        .and_then(|r| r.strip_suffix(" account temporarily locked"))
    else {
        return false;
    };
    outcome(event, "account lock", "lock", None);
    set_text(event, "username", user);
    true
}

/// pam_tally2 / pam_tally: `user <u> (<uid>) tally <n>, deny <m>` and `user <u>
/// (<uid>) has time limit [<s>s left] since last failure.`
fn tally<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("user ") else {
        return false;
    };
    let Some((user, rest)) = rsplit_once(rest, " (") else {
        return false;
    };
    let Some((_uid, rest)) = rest.split_once(") ") else {
        return false;
    };
    if let Some(counts) = rest.strip_prefix("tally ") {
        let Some((tally, deny)) = counts.split_once(", deny ") else {
            return false;
        };
        outcome(event, "account lock", "lock", None);
        set_int(event, "attempts", tally);
        set_int(event, "deny", deny);
    } else if rest.starts_with("has time limit [") {
        outcome(event, "account lock", "lock", None);
    } else {
        return false;
    }
    set_text(event, "username", user);
    true
}

/// pam_unix's `user [<u>] has blank password; authenticated without it` (1.4.0+,
/// `nullok`): a successful authentication without a password, tagged `suspicious`.
fn blank_password<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(user) = text
        .strip_prefix("user [")
        .and_then(|rest| rest.strip_suffix("] has blank password; authenticated without it"))
    else {
        return false;
    };
    outcome(event, "authentication", "login", Some(true));
    set_text(event, "username", user);
    set(event, "blankpassword", true);
    super::common::mark_suspicious(event);
    true
}

/// pam_securetty's `access denied: tty '<tty>' is not secure !`: root (or an unknown
/// user, which the module does not name) refused on a terminal not in
/// /etc/securetty.
fn securetty<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(tty) = text
        .strip_prefix("access denied: tty '")
        .and_then(|rest| rest.strip_suffix("' is not secure !"))
    else {
        return false;
    };
    outcome(event, "authentication", "login", Some(false));
    set_text(event, "tty", tty);
    set(event, "reason", "tty is not secure");
    event.role = Role::Begins;
    true
}

/// pam_unix's `account <u> has expired (account expired|failed to change password)`:
/// the credential was right, the account may not log in.
fn expired<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("account ") else {
        return false;
    };
    let Some((user, reason)) = rest
        .strip_suffix(" (account expired)")
        .map(|user| (user, "account expired"))
        .or_else(|| {
            rest.strip_suffix(" (failed to change password)")
                .map(|user| (user, "failed to change password"))
        })
    else {
        return false;
    };
    let Some(user) = user.strip_suffix(" has expired") else {
        return false;
    };
    outcome(event, "authorization", "login", Some(false));
    set_text(event, "username", user);
    set(event, "reason", reason);
    true
}

/// pam_sss's account phase: `Access denied for user <u>: <code> (<text>)`.
fn sss_denied<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("Access denied for user ") else {
        return false;
    };
    let Some((user, why)) = rsplit_once(rest, ": ") else {
        return false;
    };
    let Some((code, reason)) = why.split_once(" (") else {
        return false;
    };
    if code.parse::<u32>().is_err() {
        return false;
    }
    outcome(event, "authorization", "login", Some(false));
    set_text(event, "username", user);
    set_text(event, "reason", reason.strip_suffix(')').unwrap_or(reason));
    true
}

/// pam_faillock's `User unknown` / `User unknown: <typed>` (with `audit`): a login
/// attempt for an account that does not exist.
fn faillock_unknown<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let user = match text.strip_prefix("User unknown") {
        Some("") => None,
        Some(rest) => match rest.strip_prefix(": ") {
            Some(user) => Some(user),
            None => return false,
        },
        None => return false,
    };
    outcome(event, "authentication", "login", Some(false));
    if let Some(user) = user {
        set_text(event, "username", user);
    }
    set(event, "invaliduser", true);
    event.role = Role::Begins;
    true
}

/// pam_shells' `User has an invalid shell '<shell>'` (1.6.0+): refused by policy.
fn shells<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(shell) = text
        .strip_prefix("User has an invalid shell '")
        .and_then(|rest| rest.strip_suffix('\''))
    else {
        return false;
    };
    outcome(event, "authorization", "login", Some(false));
    set_text(event, "shell", shell);
    set(event, "reason", "invalid shell");
    true
}

/// pam_sss's `received for user <typed>: <code> (<text>)`.
fn sss_received<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("received for user ") else {
        return false;
    };
    // The user is typed text: the code is the last `: <digits> (`.
    let Some((user, rest)) = rsplit_once(rest, ": ") else {
        return false;
    };
    let Some((code, _)) = rest.split_once(" (") else {
        return false;
    };
    let invalid = match code {
        "7" => false,
        "10" => true,
        _ => return false,
    };
    begins_failure(event, user);
    if invalid {
        set(event, "invaliduser", true);
    }
    set_int(event, "pamcode", code);
    true
}

/// pam_succeed_if's `requirement "<cond>" not met by user "<u>"` (a refusal) and
/// `… was met by user …` (nothing happened: not recognised, stays `syslog`).
fn succeed_if<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("requirement \"") else {
        return false;
    };
    let Some((condition, user)) = rsplit_once(rest, "\" not met by user \"") else {
        return false;
    };
    let Some(user) = user.strip_suffix('"') else {
        return false;
    };
    outcome(event, "authorization", "login", Some(false));
    set_text(event, "username", user);
    set_text(event, "reason", condition);
    true
}

/// pam_access's ``access denied for user `<u>' from `<host or tty>'``.
fn access<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some(rest) = text.strip_prefix("access denied for user `") else {
        return false;
    };
    let Some((user, from)) = rsplit_once(rest, "' from `") else {
        return false;
    };
    let Some(from) = from.strip_suffix('\'') else {
        return false;
    };
    outcome(event, "authorization", "login", Some(false));
    set_text(event, "username", user);
    if from.starts_with("tty") || from.starts_with("pts/") || from.starts_with(':') {
        set_text(event, "tty", from);
    } else {
        set_source(event, from);
    }
    true
}

/// pam_listfile's `Refused user <u> for service <s>`.
fn listfile<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((user, _service)) = text
        .strip_prefix("Refused user ")
        .and_then(|r| rsplit_once(r, " for service "))
    else {
        return false;
    };
    outcome(event, "authorization", "login", Some(false));
    set_text(event, "username", user);
    true
}

/// nss-pam-ldapd's pam_ldap: `<pam_strerror>; user=<typed>`.
fn ldap<'a>(text: &'a str, event: &mut Draft<'a>) -> bool {
    let (invalid, user) = if let Some(user) = text.strip_prefix("Authentication failure; user=") {
        (false, user)
    } else if let Some(user) =
        text.strip_prefix("User not known to the underlying authentication module; user=")
    {
        (true, user)
    } else {
        return false;
    };
    begins_failure(event, user);
    if invalid {
        set(event, "invaliduser", true);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_module_service_and_type() {
        assert_eq!(
            prefix("pam_unix(sshd:auth): authentication failure; x"),
            Some(("pam_unix", "sshd", "auth", "authentication failure; x"))
        );
        assert_eq!(
            prefix("pam_unix(gdm-password:auth): x"),
            Some(("pam_unix", "gdm-password", "auth", "x"))
        );
        assert_eq!(prefix("Failed password for x(y:z): a"), None);
        assert_eq!(prefix("nothing"), None);
    }

    #[test]
    fn failure_lists_are_read_by_their_fixed_order() {
        let f = failure_fields(
            "logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1  user=root",
            false,
        )
        .unwrap();
        assert_eq!(
            (f.logname, f.tty, f.ruser, f.rhost, f.user, f.forged),
            ("", "ssh", "", "192.0.2.1", "root", false)
        );
        // Unknown account: no user, a trailing space.
        let f = failure_fields(
            "logname= uid=0 euid=0 tty=ssh ruser= rhost=2001:db8::7 ",
            false,
        )
        .unwrap();
        assert_eq!((f.rhost, f.user), ("2001:db8::7", ""));
        // A typed ruser (ftp) holding a forged host: the real one is the last.
        let f = failure_fields(
            "logname= uid=0 euid=0 tty=ftp ruser=x rhost=10.66.66.66 rhost=192.0.2.1  user=bob",
            false,
        )
        .unwrap();
        assert_eq!(
            (f.ruser, f.rhost, f.user, f.forged),
            ("x rhost=10.66.66.66", "192.0.2.1", "bob", true)
        );
        // A typed user (pam_sss) holding a forged host: the real one is the first.
        let f = failure_fields(
            "logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1 user=x rhost=10.66.66.66",
            true,
        )
        .unwrap();
        assert_eq!(
            (f.rhost, f.user, f.forged),
            ("192.0.2.1", "x rhost=10.66.66.66", true)
        );
        // su: logname and ruser named, no host.
        let f = failure_fields(
            "logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root",
            false,
        )
        .unwrap();
        assert_eq!(
            (f.logname, f.tty, f.ruser, f.rhost, f.user),
            ("alice", "/dev/pts/0", "alice", "", "root")
        );
    }
}
