//! sudo lines (the contract's sudo table): the command log line
//! `<user> : [<problem> ; ]TTY=… ; PWD=… ; USER=… ; [GROUP=… ; ][ENV=… ; ]COMMAND=…`
//! read by splitting, and PAM's auth failures and sessions.

use super::common::TrimFast;
use super::common::{outcome, pam_value, session, set, set_text, split_once};
use super::draft::{AuthLine, Draft};

/// Parser id, written into `tags`.
pub const ID: &str = "sudo";

/// Reads a sudo message into `event`; false when it is none of the known shapes.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = message.trim_fast();
    if message.starts_with("pam_unix(sudo:auth): authentication failure;") {
        outcome(event, "authentication", "command", Some(false));
        if let Some(user) = pam_value(message, "user").or_else(|| pam_value(message, "ruser")) {
            set_text(event, "username", user);
        }
        event.auth = AuthLine::PamFailure;
        return true;
    }
    if message.starts_with("pam_unix(sudo:session):")
        || message.starts_with("pam_unix(sudo-i:session):")
    {
        return session(event, message);
    }
    command(message, event)
}

fn command<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let Some((user, rest)) = split_once(message, " : ") else {
        return false;
    };
    let user = user.trim_fast();
    if user.is_empty() || user.contains(' ') {
        return false;
    }
    let mut problems: Vec<&str> = Vec::new();
    let mut tty = None;
    let mut pwd = None;
    let mut target = None;
    let mut command = None;
    let mut rest = rest;
    while !rest.is_empty() {
        if let Some(cmd) = rest.strip_prefix("COMMAND=") {
            command = Some(cmd);
            break;
        }
        let (segment, next) = split_once(rest, " ; ").unwrap_or((rest, ""));
        match segment.split_once('=') {
            Some(("TTY", v)) => tty = Some(v),
            Some(("PWD", v)) => pwd = Some(v),
            Some(("USER", v)) => target = Some(v),
            Some(("GROUP", _)) | Some(("ENV", _)) | Some(("TSID", _)) => {}
            _ if tty.is_none() && pwd.is_none() && target.is_none() => problems.push(segment),
            _ => {}
        }
        rest = next;
    }
    let Some(command) = command else {
        return false;
    };
    let problem = match problems.as_slice() {
        [] => std::borrow::Cow::Borrowed(""),
        [one] => std::borrow::Cow::Borrowed(*one),
        many => std::borrow::Cow::Owned(many.join(" ; ")),
    };
    if problem.trim_fast().is_empty() {
        outcome(event, "authorization", "command", Some(true));
        event.auth = AuthLine::Success;
    } else if let Some(attempts) = incorrect_password_attempts(problem.trim_fast()) {
        outcome(event, "authentication", "command", Some(false));
        set(event, "attempts", attempts);
        event.auth = AuthLine::Tally(u32::try_from(attempts).unwrap_or(1).max(1));
    } else {
        outcome(event, "authorization", "command", Some(false));
        match problem {
            std::borrow::Cow::Borrowed(problem) => set_text(event, "reason", problem),
            std::borrow::Cow::Owned(problem) => {
                set(event, "reason", problem.trim_fast().to_string())
            }
        }
    }
    set_text(event, "username", user);
    if let Some(target) = target {
        set_text(event, "targetuser", target);
    }
    set_text(event, "command", command);
    if let Some(pwd) = pwd {
        set_text(event, "pwd", pwd);
    }
    if let Some(tty) = tty {
        set_text(event, "tty", tty);
    }
    true
}

/// `3 incorrect password attempts` → 3.
fn incorrect_password_attempts(problem: &str) -> Option<i64> {
    let (count, rest) = problem.split_once(' ')?;
    if rest.starts_with("incorrect password attempt") {
        count.parse().ok()
    } else {
        None
    }
}
