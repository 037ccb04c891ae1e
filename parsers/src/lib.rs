//! Turning one log line into one [`Event`].
//!
//! [`LineParser::parse_line`] (the inputs' hot path) reads the line into a [`Draft`]
//! that borrows from it and is written to JSON directly; [`LineParser::parse`] gives the
//! same event as an owned [`Event`] (tests, `picket-agent parse`). The syslog header is
//! read with `syslog_loose` (RFC 3164 and RFC 5424, optional PRI) — the commonest shape,
//! `Mmm dd hh:mm:ss host tag[pid]:`, by our own reader that a test holds to
//! `syslog_loose`'s reading — and the parser applies the contract's rules that are ours: the year of
//! a line that has none (the year that puts it closest to the agent's clock, never more
//! than a day ahead), the zone of a line that has none (the input's `timezone`),
//! host names that mean this host, `sshd-session` and `prog(module)` tags, and
//! `message repeated N times: [ X ]`. A line with no header keeps the whole line as
//! summary and is timed when it was read. Every line gives an event; nothing here can
//! fail or panic on input.
//!
//! Then [`LineParser`] hands the message to one parser: CEF when it starts with `CEF:`,
//! JSON when it is an object, else by program (`sshd`, `sudo`, `su`, the account
//! programs). A message no parser recognises is a `syslog` event. Each parser owns one
//! table of `../shared/spec/EVENTS.md`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use mozdef::fields::{self, CATEGORY_SYSLOG, PROCESSNAME_UNKNOWN};
use mozdef::time::Wall;
use mozdef::{Event, Severity, eventid};
use serde_json::{Map, Value};
use syslog_loose::{IncompleteDate, ProcId, Variant};

use self::clock::*;
use self::header::*;
use crate::host::HostIdentity;
use common::TrimFast;
pub use counts::ParseCounts;
pub use draft::Draft;
use draft::Stamp;

mod account;
mod cef;
mod clock;
mod common;
pub mod context;
mod counts;
pub mod draft;
mod dropbear;
pub mod failures;
mod header;
pub mod host;
mod json;
mod pam;
mod sshd;
mod su;
mod sudo;
pub mod unrecognized;

/// Id of the fallback parser, written into `tags`.
pub const SYSLOG_PARSER: &str = "syslog";

/// Every parser's id: an event's first tag is one of them once a parser has read it.
pub const PARSER_IDS: [&str; 9] = [
    SYSLOG_PARSER,
    sshd::ID,
    sudo::ID,
    su::ID,
    account::ID,
    pam::ID,
    dropbear::ID,
    cef::ID,
    json::ID,
];

/// `details` a line keeps when no program parser recognises it.
const KEPT_ON_FALLBACK: [&str; 3] = [
    fields::details::REPEATCOUNT,
    fields::details::STRUCTUREDDATA,
    fields::details::TRUNCATED,
];

/// A time zone name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a time zone (use an IANA name such as Europe/Berlin, UTC, or local)")]
pub struct UnknownZone(pub String);

/// The zone lines without one are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZoneChoice(pub Tz);

impl TimeZoneChoice {
    /// `local` (this host's zone, UTC when it cannot be told), `UTC`, or an IANA name.
    pub fn parse(text: &str) -> Result<TimeZoneChoice, UnknownZone> {
        let text = text.trim_fast();
        if text.eq_ignore_ascii_case("local") {
            let name = iana_time_zone::get_timezone().unwrap_or_else(|_| "UTC".to_string());
            return Ok(TimeZoneChoice(name.parse::<Tz>().unwrap_or(Tz::UTC)));
        }
        text.parse::<Tz>()
            .map(TimeZoneChoice)
            .map_err(|_| UnknownZone(text.to_string()))
    }
}

/// A record whose header fields are given (the journal's): when, where, who.
#[derive(Debug, Clone)]
pub struct Structured<'a> {
    pub time: DateTime<Utc>,
    pub hostname: Option<&'a str>,
    pub program: Option<&'a str>,
    pub pid: i64,
    pub severity: Option<Severity>,
    pub message: &'a str,
}

/// Where a line came from and when it was read.
#[derive(Debug, Clone, Copy)]
pub struct LineContext<'a> {
    /// The event's `source`: the file path.
    pub source: &'a str,
    /// The source's identity for event ids (file fingerprint).
    pub source_identity: &'a str,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// The agent's clock when the line was read.
    pub read_at: DateTime<Utc>,
}

/// Parses lines into events for one host and zone. One per input thread: it keeps
/// what consecutive lines share (the clock's local time, the zone's offset for the
/// hour) in cells.
#[derive(Debug, Clone)]
pub struct LineParser {
    host: HostIdentity,
    timezone: Tz,
    /// The local time of the last `read_at` seen.
    now_local: Cell<Option<(DateTime<Utc>, NaiveDateTime)>>,
    /// The zone in the local hour of the last common header.
    hour_zone: Cell<Option<HourZone>>,
    /// The year of the last zone-less date read ([`year_by_day`]).
    year: Cell<Option<KeptYear>>,
    /// What each process said on earlier lines ([`context`]).
    processes: RefCell<context::Processes>,
    /// PAM's failures not yet matched by sudo's or su's own line ([`failures`]).
    failures: RefCell<failures::Failures>,
    /// Where what each parser read is counted, when anywhere ([`LineParser::counting`]).
    counts: Option<Arc<ParseCounts>>,
}

/// A year [`year_by_day`] decided: for (month, day) read on `on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeptYear {
    date: (u32, u32),
    on: NaiveDate,
    year: i32,
}

/// The zone's offset over one local hour in which it does not change, and the UTC
/// time of the hour's start: enough to write both stamps of a header in that hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HourZone {
    /// Year, month, day, hour (local).
    hour: (i32, u32, u32, u32),
    offset_secs: i32,
    /// UTC at the hour's first second.
    utc_start: Wall,
}

impl LineParser {
    pub fn new(host: HostIdentity, timezone: TimeZoneChoice) -> LineParser {
        LineParser {
            host,
            timezone: timezone.0,
            now_local: Cell::new(None),
            hour_zone: Cell::new(None),
            year: Cell::new(None),
            processes: RefCell::new(context::Processes::default()),
            failures: RefCell::new(failures::Failures::default()),
            counts: None,
        }
    }

    /// This parser, counting what each parser reads (and does not recognise) in
    /// `counts`.
    pub fn counting(mut self, counts: Arc<ParseCounts>) -> LineParser {
        self.counts = Some(counts);
        self
    }

    /// The host whose lines this parser reads.
    pub fn host(&self) -> &HostIdentity {
        &self.host
    }

    /// [`year_for`], kept for the next line of the same date read on the same day when
    /// the day alone decides it (nearly always).
    fn year_for(&self, date: IncompleteDate, now: NaiveDateTime) -> i32 {
        let (month, day, ..) = date;
        let today = now.date();
        if let Some(kept) = self.year.get()
            && kept.date == (month, day)
            && kept.on == today
        {
            return kept.year;
        }
        let year = year_for(date, now);
        if year_by_day(month, day, today) == Some(year) {
            self.year.set(Some(KeptYear {
                date: (month, day),
                on: today,
                year,
            }));
        }
        year
    }

    /// `read_at` in the zone, as a wall-clock time (kept for the next line read at the
    /// same instant: the inputs read the clock once per read).
    fn now_local(&self, read_at: DateTime<Utc>) -> NaiveDateTime {
        if let Some((at, local)) = self.now_local.get()
            && at == read_at
        {
            return local;
        }
        let local = read_at.with_timezone(&self.timezone).naive_local();
        self.now_local.set(Some((read_at, local)));
        local
    }

    /// One line (without its newline) → one event.
    pub fn parse(&self, line: &[u8], context: &LineContext<'_>) -> Event {
        self.parse_line(line, context, |draft| draft.to_event())
    }

    /// One line (without its newline) read into a [`Draft`] that borrows from it,
    /// handed to `then` (the hot path: nothing is copied that need not be).
    pub fn parse_line<R>(
        &self,
        line: &[u8],
        context: &LineContext<'_>,
        then: impl FnOnce(&mut Draft<'_>) -> R,
    ) -> R {
        self.parse_line_with(line, context, &[], then)
    }

    /// [`LineParser::parse_line`], with `details` the source gives (the syslog
    /// listener's sender address) set on the event, borrowed as the context is.
    pub fn parse_line_with<'c, R>(
        &self,
        line: &[u8],
        context: &LineContext<'c>,
        details: &[(&'static str, &'c str)],
        then: impl FnOnce(&mut Draft<'_>) -> R,
    ) -> R {
        // Valid UTF-8 (nearly every line) is borrowed; only bad bytes cost a copy. ASCII
        // (most lines) is told a word at a time, faster than UTF-8 is checked.
        let text = match line.is_ascii() {
            // SAFETY: ASCII is valid UTF-8.
            true => Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(line) }),
            false => match std::str::from_utf8(line) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(line),
            },
        };
        let end = text
            .bytes()
            .rposition(|b| b != b'\n' && b != b'\r')
            .map_or(0, |last| last + 1);
        // A cut before a newline or carriage return is a character boundary.
        let text = &text[..end];
        // Texts the draft may borrow from, made only for rare shapes.
        let mut zoned = String::new();
        let cef_text: String;
        let now_local = self.now_local(context.read_at);
        let mut event = Draft::blank(
            eventid::event_id_bytes_at_offset(
                &self.host.host_id,
                context.source_identity,
                context.offset,
            ),
            context.source,
        );

        // CEF behind a prefix that is no syslog header (epoch ms, dates with a year or
        // milliseconds): read the prefix ourselves.
        if let Some(body) = self.cef_prefixed(text, now_local, &mut event) {
            event.set_summary(Cow::Borrowed(body));
            self.finish(body, &mut event);
            for (key, value) in details {
                event.details.insert(*key, *value);
            }
            return then(&mut event);
        }
        let (message, wall) = self.read_header(text, now_local, &mut zoned);

        if let Some(level) = message
            .severity
            .and_then(|s| Severity::from_syslog_code(s as u8))
        {
            event.severity = level.as_str();
        }
        let headed = match message.timestamp {
            Some(stamp) => {
                match wall.and_then(|wall| self.wall_stamps(wall)) {
                    Some((local, utc)) => event.set_stamps(local, utc),
                    None => event.set_time(&self.localize(text, stamp)),
                }
                true
            }
            None => false,
        };
        let mut body: &str = text;
        if headed {
            event.hostname = Cow::Borrowed(self.host.resolve(message.hostname));
            // `host CEF:0|…` reads as a program named CEF; it is the CEF text, which
            // starts where `CEF:` does in the line (without a version it is not CEF: the
            // text as it was, for the summary).
            if message.appname == Some("CEF") {
                body = match cef::find(text) {
                    Some(at) => &text[at..],
                    None => {
                        cef_text = format!("CEF:{}", message.msg);
                        &cef_text
                    }
                };
            } else {
                body = program_and_body(&message, &mut event);
            }
            if !message.structured_data.is_empty() {
                structured_data(&message, &mut event);
            }
        } else {
            let read = context.read_at.with_timezone(&self.timezone).fixed_offset();
            event.set_time(&read);
            event.hostname = Cow::Borrowed(&self.host.fqdn);
            // No header we can read, but the text may still name its program
            // (`garbage sshd[42]: Failed …`): the program's parser gets the rest.
            if let Some((name, pid, rest)) = find_tag(text) {
                event.processname = Cow::Borrowed(program_name(name));
                event.processid = pid;
                body = rest;
            }
        }
        event.set_summary(Cow::Borrowed(body));
        self.finish(body, &mut event);
        for (key, value) in details {
            event.details.insert(*key, *value);
        }
        then(&mut event)
    }

    /// The syslog header of `text` (BSD, RFC 5424, or what syslog_loose makes of it),
    /// and its wall-clock time when it was a BSD header. `zoned` holds the line when an
    /// ISO 8601 stamp without an offset had to be given the zone's.
    fn read_header<'t>(
        &self,
        text: &'t str,
        now_local: NaiveDateTime,
        zoned: &'t mut String,
    ) -> (syslog_loose::Message<&'t str>, Option<Wall>) {
        let utc =
            FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset"));
        let year = |date| self.year_for(date, now_local);
        let (mut message, wall) = match rfc3164_common(text, year) {
            Some((message, wall)) => (message, Some(wall)),
            None => (
                syslog_loose::parse_message_with_year_tz(text, year, Some(utc), Variant::Either),
                None,
            ),
        };
        // An ISO 8601 stamp without an offset (`2019-06-14T10:40:20.912134 host …`) is
        // local time: give it the zone's offset and read the line again.
        if message.timestamp.is_none()
            && let Some(rewritten) = self.zone_iso_stamp(text)
        {
            *zoned = rewritten;
            message =
                syslog_loose::parse_message_with_year_tz(zoned, year, Some(utc), Variant::Either);
        }
        // RFC 5424 lets MSG open with a UTF-8 BOM (some senders write it): not text.
        if let Some(msg) = message.msg.strip_prefix('\u{feff}') {
            message.msg = msg;
        }
        // `Feb  9 21:20:08  sshd[8317]: …`: an empty host field leaves the tag unread.
        if message.timestamp.is_some()
            && message.appname.is_none()
            && message.hostname.is_none()
            && let Some((tag, pid, rest)) = split_tag(message.msg)
        {
            message.appname = Some(tag);
            message.procid = pid.map(ProcId::Name);
            message.msg = rest;
        }
        (message, wall)
    }

    /// A CEF line behind a prefix that is no syslog header: the prefix read into
    /// `event` (time, host, severity, program), the CEF text returned.
    fn cef_prefixed<'a>(
        &'a self,
        text: &'a str,
        now_local: NaiveDateTime,
        event: &mut Draft<'a>,
    ) -> Option<&'a str> {
        let at = cef::find(text).filter(|at| *at > 0)?;
        if let Some(pri) = bare_pri(&text[..at]) {
            // `<134>CEF:…`: a PRI and no header, as appliances send CEF over the
            // network. Timed when read, from the host that sent it.
            let read = self
                .now_local
                .get()
                .map(|(at, _)| at)
                .unwrap_or_else(Utc::now);
            event.set_time(&read.with_timezone(&self.timezone).fixed_offset());
            event.hostname = Cow::Borrowed(self.host.resolve(None));
            if let Some(level) = Severity::from_pri(pri) {
                event.severity = level.as_str();
            }
            return Some(&text[at..]);
        }
        let year = |month, day, hour, minute, second| {
            self.year_for((month, day, hour, minute, second), now_local)
        };
        let prefix = cef::prefix(&text[..at], self.timezone, year)?;
        event.set_time(&prefix.time);
        event.hostname = Cow::Borrowed(self.host.resolve(Some(prefix.host)));
        if let Some(level) = prefix.pri.and_then(Severity::from_pri) {
            event.severity = level.as_str();
        }
        if let Some(tag) = prefix.tag {
            let (name, pid) = match tag.split_once('[') {
                Some((name, pid)) => (name, pid.trim_end_matches(']').parse().unwrap_or(0)),
                None => (tag, 0),
            };
            event.processname = Cow::Borrowed(program_name(name));
            event.processid = pid;
        }
        Some(&text[at..])
    }

    /// A record whose header is given as fields rather than text (a journal entry):
    /// the same parsers, the same rules, `position` (the journal cursor) in the id.
    pub fn parse_structured<R>(
        &self,
        record: &Structured<'_>,
        source: &str,
        source_identity: &str,
        position: &str,
        then: impl FnOnce(&mut Draft<'_>) -> R,
    ) -> R {
        let mut event = Draft::blank(
            eventid::event_id_bytes(&self.host.host_id, source_identity, position),
            source,
        );
        event.set_time(&record.time.with_timezone(&self.timezone).fixed_offset());
        event.hostname = Cow::Borrowed(self.host.resolve(record.hostname));
        if let Some(program) = record.program {
            event.processname = Cow::Borrowed(program_name(program));
        }
        event.processid = record.pid;
        if let Some(level) = record.severity {
            event.severity = level.as_str();
        }
        let (summary, repeats) = unwrap_repeated(record.message);
        if let Some(n) = repeats {
            event.details.insert(fields::details::REPEATCOUNT, n);
        }
        event.set_summary(Cow::Borrowed(summary));
        self.finish(summary, &mut event);
        then(&mut event)
    }

    /// Runs the parser for `body` and completes the event (tag, category, program).
    fn finish<'a>(&self, body: &'a str, event: &mut Draft<'a>) {
        let parser = self.dispatch(body, event);
        event.parser = parser;
        if parser == SYSLOG_PARSER {
            event.category = Cow::Borrowed(CATEGORY_SYSLOG);
        } else if matches!(parser, sshd::ID | dropbear::ID | pam::ID) {
            let remote = parser != pam::ID;
            self.processes.borrow_mut().apply(event, remote);
        }
        if matches!(parser, sudo::ID | su::ID)
            || (parser == pam::ID && matches!(&*event.processname, "sudo" | "su"))
        {
            self.failures.borrow_mut().apply(event);
        }
        let program = event.processname.clone();
        event.details.insert(fields::details::PROGRAM, program);
    }

    /// Hands the message to the parser that knows it; returns that parser's id, or
    /// `syslog` when none recognised it. CEF and JSON are told by the message, the
    /// others by the program.
    fn dispatch<'a>(&self, message: &'a str, event: &mut Draft<'a>) -> &'static str {
        let (parser, tried) = self.dispatch_inner(message, event);
        if let Some(counts) = &self.counts {
            counts.parsed(parser);
            if let Some(tried) = tried {
                counts.unrecognised(tried);
            }
        }
        parser
    }

    /// [`LineParser::dispatch`], and the parser that was handed the line and did not
    /// recognise it (CEF by its text, a program's by its name).
    fn dispatch_inner<'a>(
        &self,
        message: &'a str,
        event: &mut Draft<'a>,
    ) -> (&'static str, Option<&'static str>) {
        if let Some(text) = cef::detect(message) {
            if cef::parse(text, event, self.timezone) {
                return (cef::ID, None);
            }
            return (SYSLOG_PARSER, Some(cef::ID));
        }
        if json::looks_like_json(message) && json::parse(message, event) {
            return (json::ID, None);
        }
        let mut tried = None;
        if let Some((id, parse)) = program_parser(&event.processname) {
            if parse(message, event) {
                return (id, None);
            }
            tried = Some(id);
        }
        forget_parse(event);
        // PAM modules write the same lines whatever program loads them.
        if pam::parse(message, event) {
            return (pam::ID, None);
        }
        forget_parse(event);
        (SYSLOG_PARSER, tried)
    }
}

/// The PRI of a prefix that is only one (`<134>`, blanks around it).
fn bare_pri(prefix: &str) -> Option<u32> {
    let digits = prefix.trim_fast().strip_prefix('<')?.strip_suffix('>')?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Undoes what a parser set before giving up on a shape: its details (but those the
/// header gave), its tags, its place in an attempt.
fn forget_parse(event: &mut Draft<'_>) {
    event.details.retain(|k| KEPT_ON_FALLBACK.contains(&k));
    event.tags.clear();
    event.role = context::Role::None;
    event.ends = false;
    event.auth = draft::AuthLine::None;
}

/// A program parser: reads a message into the event, false when no shape matched.
type ProgramParser = for<'a> fn(&'a str, &mut Draft<'a>) -> bool;

/// The parser for a program, with its id.
fn program_parser(program: &str) -> Option<(&'static str, ProgramParser)> {
    match program {
        "sshd" => Some((sshd::ID, sshd::parse)),
        "sudo" => Some((sudo::ID, sudo::parse)),
        "su" => Some((su::ID, su::parse)),
        "dropbear" => Some((dropbear::ID, dropbear::parse)),
        _ if account::PROGRAMS.contains(&program) => Some((account::ID, account::parse)),
        _ => None,
    }
}

/// Why `event` came out as it did, for `picket-agent parse --explain`: which parser
/// took the line, or why none did.
pub fn explain(event: &Event, read_at: DateTime<Utc>) -> String {
    let parser = event
        .tags
        .first()
        .map(String::as_str)
        .unwrap_or(SYSLOG_PARSER);
    if parser != SYSLOG_PARSER {
        let action = event
            .details
            .get("action")
            .and_then(Value::as_str)
            .map(|a| format!(", action {a}"))
            .unwrap_or_default();
        return format!(
            "parser {parser} recognised the line: category {}{action}",
            event.category
        );
    }
    let read_time = mozdef::time::format_utc(read_at);
    let program = event.processname.as_str();
    if event.summary.trim_start().starts_with("CEF:") {
        return "starts with CEF: but the header does not have its 7 |-separated fields".into();
    }
    if event.utctimestamp == read_time && program == PROCESSNAME_UNKNOWN {
        return "no syslog header (no timestamp found): the whole line is the summary, timed when it was read".into();
    }
    if program_parser(program).is_some() {
        let first = event.summary.split_whitespace().next().unwrap_or("");
        return format!(
            "program {program} has a parser, but no shape of its table in EVENTS.md matches this message (it starts with {first:?})"
        );
    }
    if program == PROCESSNAME_UNKNOWN {
        return "the header names no program, and the message is neither CEF nor a JSON object"
            .into();
    }
    format!("no parser for program {program:?}; the message is neither CEF nor a JSON object")
}

#[cfg(test)]
mod tests;
