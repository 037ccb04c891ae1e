//! Reading a syslog header: the common BSD shape read by hand (faster than
//! syslog_loose, which takes the rest), the program name and id from a tag, Solaris
//! message ids, "message repeated N times" wrappers, RFC 5424 structured data.

use super::*;

/// The program name and id a syslog header gives `event`, and the message after a
/// Solaris message id (its level kept) and without a "repeated N times" wrapper (the
/// count kept).
#[inline]
pub(super) fn program_and_body<'a>(
    message: &syslog_loose::Message<&'a str>,
    event: &mut Draft<'a>,
) -> &'a str {
    match (message.appname, &message.procid) {
        // `[sshd]:` (a bracketed tag): the name is no process id.
        (Some(""), Some(ProcId::Name(name))) if name.trim_fast().parse::<i64>().is_err() => {
            event.processname = Cow::Borrowed(program_name(name));
        }
        (app, procid) => {
            if let Some(app) = app {
                event.processname = Cow::Borrowed(program_name(app));
            }
            event.processid = match procid {
                Some(ProcId::PID(pid)) => i64::from(*pid),
                Some(ProcId::Name(name)) => name.trim_fast().parse().unwrap_or(0),
                None => 0,
            };
        }
    }
    let msg = match solaris_id(message.msg) {
        Some((rest, level)) => {
            if let Some(level) = level {
                event.severity = level.as_str();
            }
            rest
        }
        None => message.msg,
    };
    let (summary, repeats) = unwrap_repeated(msg);
    if let Some(n) = repeats {
        event.details.insert(fields::details::REPEATCOUNT, n);
    }
    summary
}

/// RFC 5424 structured data as `details.structureddata`: `{id: {param: value}}`.
pub(super) fn structured_data(message: &syslog_loose::Message<&str>, event: &mut Draft<'_>) {
    let mut data = Map::new();
    for element in &message.structured_data {
        let params: Map<String, Value> = element
            .params()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        data.insert(element.id.to_string(), Value::Object(params));
    }
    event
        .details
        .insert(fields::details::STRUCTUREDDATA, Value::Object(data));
}

/// The header of the commonest line, `[<PRI>]Mmm dd hh:mm:ss host tag[pid]: message` (the PRI as network senders write it,
/// a month's three letters in any case, as syslog_loose reads them; two-digit clock, a plain host name, a tag ending in `:`,
/// a message not starting with `[`), read without `syslog_loose`: exactly what
/// `syslog_loose` reads from such a line (a test holds the two to it), at a fraction of
/// the cost. `None` for every other line, which `syslog_loose` reads.
pub(super) fn rfc3164_common(
    text: &str,
    year: impl FnOnce(IncompleteDate) -> i32,
) -> Option<(syslog_loose::Message<&str>, Wall)> {
    // syslog_loose reads the line trimmed.
    let text = text.trim_end();
    // A PRI (what network senders put first): up to three digits, at most 191.
    let (pri, text) = match text.strip_prefix('<') {
        Some(rest) => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=3).contains(&digits) || rest.as_bytes().get(digits) != Some(&b'>') {
                return None;
            }
            let pri: u8 = rest[..digits].parse().ok().filter(|pri| *pri <= 191)?;
            (Some(pri), &rest[digits + 1..])
        }
        None => (None, text),
    };
    let bytes = text.as_bytes();
    let ((month, day, hour, minute, second), mut at) = bsd_stamp(text)?;
    // The host: a plain name or address.
    let host_len = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        .count();
    if host_len == 0 || bytes.get(at + host_len) != Some(&b' ') {
        return None;
    }
    let host = &text[at..at + host_len];
    if host == "-" {
        return None;
    }
    at += host_len + 1;
    // The tag, up to its colon: `name` or `name[pid]`.
    let tag_len = bytes[at..]
        .iter()
        .take_while(|b| !b.is_ascii_whitespace() && **b != b':')
        .count();
    if tag_len == 0 || bytes.get(at + tag_len) != Some(&b':') {
        return None;
    }
    let tag = &text[at..at + tag_len];
    if !tag.is_ascii() || tag == "-" {
        return None;
    }
    let (app, procid) = bsd_tag(tag)?;
    at += tag_len + 1;
    let blank = bytes[at..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let msg = &text[at + blank..];
    // A message that may open with structured data (or its `-`) is syslog_loose's.
    if msg.starts_with(['[', '-']) {
        return None;
    }
    let year = year((month, day, hour, minute, second));
    let timestamp = NaiveDate::from_ymd_opt(year, month, day)?
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .fixed_offset();
    let wall = Wall {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros: 0,
        offset_secs: 0,
    };
    let (facility, severity) = match pri {
        Some(pri) => syslog_loose::decompose_pri(pri),
        None => (None, None),
    };
    let message = syslog_loose::Message {
        protocol: syslog_loose::Protocol::RFC3164,
        facility,
        severity,
        timestamp: Some(timestamp),
        hostname: Some(host),
        appname: Some(app),
        procid,
        msgid: None,
        structured_data: Vec::new(),
        msg,
    };
    Some((message, wall))
}

/// `Mmm dd hh:mm:ss ` at the start of `text`: the date and time, and where the host
/// starts.
#[inline(always)]
pub(super) fn bsd_stamp(text: &str) -> Option<(IncompleteDate, usize)> {
    let bytes = text.as_bytes();
    let month = cef::month_number(text.get(..3)?)?;
    let mut at = 3;
    let spaces = bytes[at..].iter().take_while(|b| **b == b' ').count();
    if spaces == 0 {
        return None;
    }
    at += spaces;
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=2).contains(&digits) {
        return None;
    }
    let day = number(&bytes[at..at + digits]);
    at += digits;
    // ` hh:mm:ss `
    let clock = bytes.get(at..at + 10)?;
    let two = |i: usize| {
        (clock[i].is_ascii_digit() && clock[i + 1].is_ascii_digit())
            .then(|| number(&clock[i..i + 2]))
    };
    if clock[0] != b' ' || clock[3] != b':' || clock[6] != b':' || clock[9] != b' ' {
        return None;
    }
    let (hour, minute, second) = (two(1)?, two(4)?, two(7)?);
    Some(((month, day, hour, minute, second), at + 10))
}

/// A BSD tag, `name` or `name[pid]`: the name and the process id.
#[inline(always)]
pub(super) fn bsd_tag(tag: &str) -> Option<(&str, Option<ProcId<&str>>)> {
    let open = tag.bytes().position(|b| b == b'[');
    match open.map(|at| (&tag[..at], &tag[at + 1..])) {
        None if !tag.bytes().any(|b| b == b']') => Some((tag, None)),
        None => None,
        Some((name, rest)) => {
            let pid = rest.strip_suffix(']')?;
            if name.is_empty() || pid.is_empty() || pid.contains(['[', ']']) {
                return None;
            }
            Some((name, Some(ProcId::from(pid))))
        }
    }
}

/// ASCII digits (at most a few) as a number.
pub(super) fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// `sshd[8317]: rest` → (`sshd`, `8317`, `rest`); `prog: rest` → (`prog`, none, `rest`).
pub(super) fn split_tag(message: &str) -> Option<(&str, Option<&str>, &str)> {
    let (tag, rest) = message.split_once(": ")?;
    let (name, pid) = match tag.split_once('[') {
        Some((name, pid)) => (name, Some(pid.strip_suffix(']')?)),
        None => (tag, None),
    };
    tag_name(name).then_some((name, pid, rest))
}

/// Whether `name` is a program's name as tags write it (`sshd`, `sshd(pam_unix)`,
/// `/usr/sbin/cron`).
pub(super) fn tag_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'(' | b')')
        })
}

/// Solaris and illumos write `[ID <msgid> <facility>.<level>] ` after the tag:
/// (the message after it, the level when it names one). `None` when absent.
pub(super) fn solaris_id(message: &str) -> Option<(&str, Option<Severity>)> {
    let rest = message.strip_prefix("[ID ")?;
    let (inside, after) = rest.split_once(']')?;
    let (id, priority) = inside.split_once(' ')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (_, level) = priority.split_once('.')?;
    let severity = Severity::from_name(level);
    Some((after.trim_start_matches(' '), severity))
}

/// A tag `name[pid]: ` within the first words of a line whose header could not be
/// read: (name, pid, the message after it). The name is one word of the characters
/// tags are made of, the pid digits.
pub(super) fn find_tag(text: &str) -> Option<(&str, i64, &str)> {
    let mut end = text.len().min(160);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let window = &text[..end];
    let close = common::find(window, "]: ")?;
    let open = window[..close].rfind('[')?;
    let pid = window[open + 1..close].parse::<i64>().ok()?;
    let name_start = window[..open].rfind(' ').map_or(0, |at| at + 1);
    let name = &window[name_start..open];
    tag_name(name).then(|| (name, pid, &text[close + 3..]))
}

/// Whether the header's stamp (after an optional `<PRI>`) is RFC 3164's `Mmm dd`.
pub(super) fn starts_with_month(text: &str) -> bool {
    let rest = text.trim_start();
    let rest = match rest.strip_prefix('<') {
        Some(after) => after.split_once('>').map(|(_, r)| r).unwrap_or(after),
        None => rest,
    };
    rest.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic())
}

/// The program from a syslog tag: `sshd-session` is sshd, `sshd(pam_unix)` is sshd.
pub(super) fn program_name(tag: &str) -> &str {
    let name = match tag.bytes().position(|b| b == b'(') {
        Some(at) => &tag[..at],
        None => tag,
    }
    .trim_fast();
    match name {
        "" => PROCESSNAME_UNKNOWN,
        "sshd-session" | "sshd-auth" => "sshd",
        other => other,
    }
}

/// `message repeated 3 times: [ Failed password … ]` → (`Failed password …`, 3).
pub(super) fn unwrap_repeated(message: &str) -> (&str, Option<u64>) {
    let trimmed = message.trim_fast();
    let Some(rest) = trimmed.strip_prefix("message repeated ") else {
        return (message, None);
    };
    let Some((count, rest)) = rest.split_once(" times: [") else {
        return (message, None);
    };
    let Ok(count) = count.trim_fast().parse::<u64>() else {
        return (message, None);
    };
    let inner = rest.strip_suffix(']').unwrap_or(rest).trim_fast();
    (inner, Some(count))
}
