//! Account lifecycle lines from shadow-utils and passwd (the contract's account table):
//! useradd, userdel, usermod, groupadd, groupdel, groupmod, gpasswd, passwd, chpasswd,
//! chage. A line from these programs that is none of the known shapes is still an
//! account change (`action: other`).

use std::sync::LazyLock;

use regex::Regex;

use super::common::TrimFast;
use super::draft::Draft;

use super::common::{outcome, set_int, set_text};

/// Parser id, written into `tags`.
pub const ID: &str = "account";
/// Tag added when a user joins a group that grants root.
pub const PRIVILEGED: &str = "privileged";

/// The programs this parser reads.
pub const PROGRAMS: [&str; 10] = [
    "useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod", "gpasswd", "passwd",
    "chpasswd", "chage",
];

const PRIVILEGED_GROUPS: [&str; 4] = ["sudo", "wheel", "admin", "root"];

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("bad account pattern: {e}"))
}

static QUOTED: LazyLock<Regex> = LazyLock::new(|| regex(r"'([^']*)'"));
static MEMBER_BY: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^user (\S+) (added|removed) by (\S+) (?:to|from) group (\S+)"));
static PASSWORD_CHANGED_FOR: LazyLock<Regex> =
    LazyLock::new(|| regex(r"password changed for (\S+)"));

/// Reads an account-program message into `event`. Always true: every line from these
/// programs is an account event.
pub fn parse<'a>(message: &'a str, event: &mut Draft<'a>) -> bool {
    let message = message.trim_fast();
    let quoted: Vec<&str> = QUOTED
        .captures_iter(message)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    if let Some(fields) = message.strip_prefix("new user: ") {
        outcome(event, "account creation", "user_add", None);
        for (key, value) in key_values(fields) {
            match key {
                "name" => set_text(event, "username", value),
                "UID" => set_int(event, "uid", value),
                "GID" => set_int(event, "gid", value),
                "home" => set_text(event, "home", value),
                "shell" => set_text(event, "shell", value),
                _ => {}
            }
        }
    } else if message.starts_with("delete user '") {
        outcome(event, "account deletion", "user_delete", None);
        set_first(event, "username", &quoted);
    } else if let Some(fields) = message.strip_prefix("new group: ") {
        group_add(event, fields);
    } else if message.starts_with("group added to ") {
        let fields = message.split_once(": ").map(|(_, f)| f).unwrap_or("");
        group_add(event, fields);
    } else if message.starts_with("group '") && message.contains("' removed") {
        outcome(event, "account change", "group_delete", None);
        set_first(event, "group", &quoted);
    } else if message.starts_with("removed group '")
        || message.starts_with("removed shadow group '")
    {
        outcome(event, "account change", "group_delete", None);
        set_first(event, "group", &quoted);
        if let Some(owner) = quoted.get(1) {
            set_text(event, "username", owner);
        }
    } else if message.starts_with("add '") && quoted.len() >= 2 {
        member(event, true, quoted[0], quoted[1], None);
    } else if message.starts_with("delete '") && quoted.len() >= 2 {
        member(event, false, quoted[0], quoted[1], None);
    } else if let Some(c) = MEMBER_BY.captures(message) {
        let cap = |i: usize| c.get(i).map_or("", |m| m.as_str());
        member(event, cap(2) == "added", cap(1), cap(4), Some(cap(3)));
    } else if message.contains("password changed for ") && message.starts_with("pam_unix(") {
        outcome(event, "password change", "password_change", None);
        if let Some(c) = PASSWORD_CHANGED_FOR.captures(message) {
            set_text(event, "username", c.get(1).map_or("", |m| m.as_str()));
        }
    } else if message.starts_with("password for '") && message.contains("' changed by '") {
        outcome(event, "password change", "password_change", None);
        set_first(event, "username", &quoted);
        if let Some(actor) = quoted.get(1) {
            set_text(event, "actor", actor);
        }
    } else if message.starts_with("change user '") && message.ends_with("' password") {
        outcome(event, "password change", "password_change", None);
        set_first(event, "username", &quoted);
    } else if message.starts_with("lock user '") && message.ends_with("' password") {
        outcome(event, "account lock", "lock", None);
        set_first(event, "username", &quoted);
    } else if message.starts_with("unlock user '") && message.ends_with("' password") {
        outcome(event, "account unlock", "unlock", None);
        set_first(event, "username", &quoted);
    } else {
        outcome(event, "account change", "other", None);
    }
    if is_shadow(message) {
        // The same change written again to /etc/gshadow: one change, two lines.
        event.details.insert("shadow", true);
        event.details.insert("echo", true);
    }
    true
}

/// A line about /etc/gshadow that repeats one about /etc/group (`add 'u' to shadow
/// group 'g'`, `removed shadow group 'g' owned by 'u'`, `group added to /etc/gshadow:`).
fn is_shadow(message: &str) -> bool {
    message.contains(" shadow group '")
        || message.starts_with("removed shadow group '")
        || message.starts_with("group added to /etc/gshadow")
        || (message.starts_with("group '") && message.contains("' removed from /etc/gshadow"))
}

fn group_add<'a>(event: &mut Draft<'a>, fields: &'a str) {
    outcome(event, "account change", "group_add", None);
    for (key, value) in key_values(fields) {
        match key {
            "name" => set_text(event, "group", value),
            "GID" => set_int(event, "gid", value),
            _ => {}
        }
    }
}

fn member<'a>(
    event: &mut Draft<'a>,
    added: bool,
    user: &'a str,
    group: &'a str,
    actor: Option<&'a str>,
) {
    let action = if added {
        "group_member_add"
    } else {
        "group_member_delete"
    };
    outcome(event, "account change", action, None);
    set_text(event, "username", user);
    set_text(event, "group", group);
    if let Some(actor) = actor {
        set_text(event, "actor", actor);
    }
    if added && PRIVILEGED_GROUPS.contains(&group) && !event.has_tag(PRIVILEGED) {
        event.tags.push(PRIVILEGED.into());
    }
}

fn set_first<'a>(event: &mut Draft<'a>, key: &'static str, quoted: &[&'a str]) {
    if let Some(value) = quoted.first() {
        set_text(event, key, value);
    }
}

/// `name=deploy, UID=1001, home=/home/deploy` → pairs.
fn key_values(fields: &str) -> impl Iterator<Item = (&str, &str)> {
    fields
        .split(", ")
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim_fast(), v.trim_fast()))
}
