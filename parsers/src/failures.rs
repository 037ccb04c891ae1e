//! A wrong password is one failure, however many lines say so.
//!
//! sudo and su let PAM check the password, and PAM's module writes the failure
//! (`pam_unix(sudo:auth): authentication failure; … user=alice`); then the program
//! writes its own line about the same failures: sudo, when it stops asking,
//! `alice : 3 incorrect password attempts ; …` (which counts the one PAM wrote too);
//! su `FAILED SU (to root) bob on pts/0`. Real sudo 1.9 writes PAM's line once per
//! command however many passwords were wrong, and no line at all for the wrong ones
//! before a right one; PAM's lines carry no pid, the program's do or do not. So the two
//! are matched by (host, program, user), in the order written:
//!
//! - PAM's failure counts one, and is remembered;
//! - the program's line is an echo (`details.echo: true`) for the failures PAM's lines
//!   already counted; what is left it counts as `details.count` (sudo's `3 incorrect
//!   password attempts` after one PAM line counts 2). Rules that skip echoes and weigh
//!   events by `details.count` count wrong passwords, not lines.
//!
//! PAM's `auth could not identify password for [alice]` under sudo or su is no wrong
//! password (the input ended before one was typed; sudo does not count it either): an
//! echo.
//!
//! A success (sudo runs the command, su switches) settles the user's earlier failures:
//! a wrong password before the right one is PAM's line alone.
//!
//! A PAM module that writes nothing (some LDAP setups) leaves the program's line to
//! count them all. Remembered failures go after [`Failures::TTL_SECS`] by the lines'
//! own times, or past [`Failures::CAPACITY`] users, all at once.

use std::collections::HashMap;

use super::context::utc_seconds;
use super::draft::{AuthLine, Draft};

/// PAM failures not yet matched by their program's line, per (host, program, user).
#[derive(Debug, Clone, Default)]
pub struct Failures {
    pending: HashMap<(String, String, String), (u32, i64)>,
}

impl Failures {
    /// How long a PAM failure waits for its program's line.
    pub const TTL_SECS: i64 = 600;
    /// Most users remembered at once.
    pub const CAPACITY: usize = 4096;

    /// Matches `event` (a line sudo's or su's parser read) with what came before.
    pub fn apply(&mut self, event: &mut Draft<'_>) {
        let line = event.auth;
        if line == AuthLine::None {
            return;
        }
        let Some(user) = event
            .details
            .get("username")
            .and_then(|u| u.as_str())
            .map(str::to_string)
        else {
            return;
        };
        let now = utc_seconds(event.utctimestamp.as_str()).unwrap_or(0);
        let key = (
            event.hostname.to_string(),
            event.processname.to_string(),
            user,
        );
        let earlier = match self.pending.get(&key) {
            Some(&(n, at)) if (0..=Self::TTL_SECS).contains(&(now - at)) => n,
            _ => 0,
        };
        match line {
            AuthLine::None => {}
            AuthLine::Success => {
                self.pending.remove(&key);
            }
            AuthLine::NoPassword => event.details.insert("echo", true),
            AuthLine::PamFailure => {
                if self.pending.len() >= Self::CAPACITY && !self.pending.contains_key(&key) {
                    self.pending.clear();
                }
                self.pending.insert(key, (earlier + 1, now));
            }
            AuthLine::Tally(failures) => {
                let echoed = earlier.min(failures);
                let left = earlier - echoed;
                if left == 0 {
                    self.pending.remove(&key);
                } else {
                    self.pending.insert(key, (left, now));
                }
                if echoed == failures {
                    event.details.insert("echo", true);
                } else if echoed > 0 || failures > 1 {
                    event.details.insert("count", i64::from(failures - echoed));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    use crate::host::HostIdentity;
    use crate::{LineContext, LineParser, TimeZoneChoice};

    /// (echo, count) of each line, read by one parser in order.
    fn read(lines: &[&str]) -> Vec<(Value, Value)> {
        let parser = LineParser::new(
            HostIdentity::named("web1"),
            TimeZoneChoice::parse("UTC").unwrap(),
        );
        let context = LineContext {
            source: "/var/log/auth.log",
            source_identity: "f",
            offset: 0,
            read_at: Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap(),
        };
        lines
            .iter()
            .map(|line| {
                let event = parser.parse(line.as_bytes(), &context);
                (
                    event.details.get("echo").cloned().unwrap_or(Value::Null),
                    event.details.get("count").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    const PAM_SUDO: &str = "Dec  6 07:37:38 web1 sudo: pam_unix(sudo:auth): authentication failure; logname= uid=1001 euid=0 tty= ruser=alice rhost=  user=alice";

    fn sudo_gave_up(n: u32) -> String {
        let s = if n == 1 { "" } else { "s" };
        format!(
            "Dec  6 07:37:45 web1 sudo:    alice : {n} incorrect password attempt{s} ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/true"
        )
    }

    #[test]
    fn sudo_counts_wrong_passwords_not_lines() {
        let none = (Value::Null, Value::Null);
        // Three wrong, then sudo gives up: PAM's one line counts 1, sudo's the other 2.
        assert_eq!(
            read(&[PAM_SUDO, &sudo_gave_up(3)]),
            [none.clone(), (Value::Null, json!(2))]
        );
        // One wrong, then sudo gives up: sudo's line is PAM's again.
        assert_eq!(
            read(&[PAM_SUDO, &sudo_gave_up(1)]),
            [none.clone(), (json!(true), Value::Null)]
        );
        // One wrong, then the right one: the success settles PAM's; a later give-up
        // without PAM's line (a module that logs nothing) counts all of its own.
        let ran =
            "Dec  6 07:37:47 web1 sudo:    alice : PWD=/tmp ; USER=root ; COMMAND=/usr/bin/true";
        assert_eq!(
            read(&[PAM_SUDO, ran, &sudo_gave_up(3)]),
            [none.clone(), none.clone(), (Value::Null, json!(3))]
        );
        // The input ended after one wrong password (sudo -S): PAM's conversation
        // failure and missing password are no more wrong passwords.
        assert_eq!(
            read(&[
                PAM_SUDO,
                "Dec  6 07:37:38 web1 sudo: pam_unix(sudo:auth): conversation failed",
                "Dec  6 07:37:38 web1 sudo: pam_unix(sudo:auth): auth could not identify password for [alice]",
                &sudo_gave_up(1),
            ]),
            [
                none.clone(),
                none.clone(),
                (json!(true), Value::Null),
                (json!(true), Value::Null)
            ]
        );
        // Another user's line matches nothing of alice's.
        let bob = "Dec  6 07:37:45 web1 sudo:      bob : 1 incorrect password attempt ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/true";
        assert_eq!(read(&[PAM_SUDO, bob]), [none.clone(), none]);
    }

    #[test]
    fn failed_su_after_pams_failure_is_an_echo() {
        let lines = [
            "Dec  6 07:39:28 web1 su: pam_unix(su:auth): authentication failure; logname= uid=1001 euid=0 tty=/dev/pts/0 ruser=bob rhost=  user=root",
            "Dec  6 07:39:29 web1 su[23322]: FAILED SU (to root) bob on pts/0",
            "Dec  6 07:39:33 web1 su[23432]: FAILED SU (to root) bob on pts/0",
        ];
        assert_eq!(
            read(&lines),
            [
                (Value::Null, Value::Null),
                (json!(true), Value::Null),
                // No PAM line before this one: it counts.
                (Value::Null, Value::Null),
            ]
        );
    }

    #[test]
    fn the_shadow_copy_of_a_group_change_is_an_echo() {
        let lines = [
            "Dec  6 07:37:38 web1 usermod[20890]: add 'alice' to group 'sudo'",
            "Dec  6 07:37:38 web1 usermod[20890]: add 'alice' to shadow group 'sudo'",
            "Dec  6 07:37:47 web1 userdel[20965]: removed shadow group 'alice' owned by 'alice'",
        ];
        assert_eq!(
            read(&lines),
            [
                (Value::Null, Value::Null),
                (json!(true), Value::Null),
                (json!(true), Value::Null)
            ]
        );
    }
}
