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

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use mozdef::fields::{self, CATEGORY_SYSLOG, PROCESSNAME_UNKNOWN};
use mozdef::time::Wall;
use mozdef::{Event, Severity, eventid};
use serde_json::{Map, Value};
use syslog_loose::{IncompleteDate, ProcId, Variant};

use crate::host::HostIdentity;
use common::TrimFast;
pub use draft::Draft;
use draft::Stamp;

mod account;
mod cef;
mod common;
pub mod context;
pub mod draft;
mod dropbear;
mod json;
mod pam;
mod sshd;
mod su;
mod sudo;
pub mod unrecognized;

/// Id of the fallback parser, written into `tags`.
pub const SYSLOG_PARSER: &str = "syslog";

/// `details` a line keeps when no program parser recognises it.
const KEPT_ON_FALLBACK: [&str; 3] = [
    fields::details::REPEATCOUNT,
    fields::details::STRUCTUREDDATA,
    fields::details::TRUNCATED,
];

/// The zone lines without one are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZoneChoice(pub Tz);

impl TimeZoneChoice {
    /// `local` (this host's zone, UTC when it cannot be told), `UTC`, or an IANA name.
    pub fn parse(text: &str) -> Result<TimeZoneChoice, String> {
        let text = text.trim_fast();
        if text.eq_ignore_ascii_case("local") {
            let name = iana_time_zone::get_timezone().unwrap_or_else(|_| "UTC".to_string());
            return Ok(TimeZoneChoice(name.parse::<Tz>().unwrap_or(Tz::UTC)));
        }
        text.parse::<Tz>()
            .map(TimeZoneChoice)
            .map_err(|_| format!("{text:?} is not a time zone (use an IANA name such as Europe/Berlin, UTC, or local)"))
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
        }
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
        let zoned: String;
        let cef_text: String;
        let now_local = self.now_local(context.read_at);
        let utc =
            FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset"));
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
        if let Some(at) = cef::find(text).filter(|at| *at > 0) {
            let year = |month, day, hour, minute, second| {
                self.year_for((month, day, hour, minute, second), now_local)
            };
            if let Some(prefix) = cef::prefix(&text[..at], self.timezone, year) {
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
                let body = &text[at..];
                event.set_summary(Cow::Borrowed(body));
                self.finish(body, &mut event);
                return then(&mut event);
            }
        }
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
        if message.timestamp.is_none() {
            if let Some(rewritten) = self.zone_iso_stamp(text) {
                zoned = rewritten;
                message = syslog_loose::parse_message_with_year_tz(
                    &zoned,
                    year,
                    Some(utc),
                    Variant::Either,
                );
            }
        }
        // `Feb  9 21:20:08  sshd[8317]: …`: an empty host field leaves the tag unread.
        if message.timestamp.is_some() && message.appname.is_none() && message.hostname.is_none() {
            if let Some((tag, pid, rest)) = split_tag(message.msg) {
                message.appname = Some(tag);
                message.procid = pid.map(ProcId::Name);
                message.msg = rest;
            }
        }

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
                match (message.appname, message.procid) {
                    // `[sshd]:` (a bracketed tag): the name is no process id.
                    (Some(""), Some(ProcId::Name(name)))
                        if name.trim_fast().parse::<i64>().is_err() =>
                    {
                        event.processname = Cow::Borrowed(program_name(name));
                    }
                    (app, procid) => {
                        if let Some(app) = app {
                            event.processname = Cow::Borrowed(program_name(app));
                        }
                        event.processid = match procid {
                            Some(ProcId::PID(pid)) => i64::from(pid),
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
                body = summary;
            }
            if !message.structured_data.is_empty() {
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
        then(&mut event)
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
        let program = event.processname.clone();
        event.details.insert(fields::details::PROGRAM, program);
    }

    /// Hands the message to the parser that knows it; returns that parser's id, or
    /// `syslog` when none recognised it. CEF and JSON are told by the message, the
    /// others by the program.
    fn dispatch<'a>(&self, message: &'a str, event: &mut Draft<'a>) -> &'static str {
        if let Some(text) = cef::detect(message) {
            if cef::parse(text, event, self.timezone) {
                return cef::ID;
            }
            return SYSLOG_PARSER;
        }
        if json::looks_like_json(message) && json::parse(message, event) {
            return json::ID;
        }
        let recognised = program_parser(&event.processname)
            .and_then(|(id, parse)| parse(message, event).then_some(id));
        if let Some(id) = recognised {
            return id;
        }
        forget_parse(event);
        // PAM modules write the same lines whatever program loads them.
        if pam::parse(message, event) {
            return pam::ID;
        }
        forget_parse(event);
        SYSLOG_PARSER
    }

    /// An ISO 8601 stamp syslog_loose does not read, rewritten as RFC 3339: without an
    /// offset (`2019-06-14T10:40:20.912134 rest`, read in this zone), or with a space
    /// between date and time and any offset (`2020-03-23 06:47:42.801612-0700 rest`,
    /// as macOS and some syslog-ng templates write). `None` for any other line.
    fn zone_iso_stamp(&self, text: &str) -> Option<String> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        if start > 0
            && !text[..start].trim_end().ends_with('>')
            && !text[..start].trim_fast().is_empty()
        {
            return None;
        }
        let (mut stamp, mut rest) = text[start..].split_once(' ')?;
        let joined: String;
        if stamp.len() == 10 && rest.as_bytes().get(2) == Some(&b':') {
            // `YYYY-MM-DD HH:MM:SS…`: date and time as one stamp.
            let (time, after) = rest.split_once(' ')?;
            joined = format!("{stamp}T{time}");
            stamp = &joined;
            rest = after;
        }
        if stamp.len() < 19 || stamp.as_bytes().get(10) != Some(&b'T') {
            return None;
        }
        let at = match DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.f%z") {
            Ok(at) => at,
            Err(_) => {
                let naive = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
                self.timezone
                    .from_local_datetime(&naive)
                    .earliest()?
                    .fixed_offset()
            }
        };
        Some(format!(
            "{}{} {rest}",
            &text[..start],
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        ))
    }

    /// Both stamps of a zone-less header's wall-clock time, written from its parts and
    /// the zone's offset for the hour (kept while lines stay in one hour): what
    /// [`LineParser::localize`] and [`Draft::set_time`] give, without their calendar
    /// arithmetic. `None` (they run) in an hour whose offset changes (DST), for an
    /// offset of odd seconds, or where the UTC time crosses into the next day within
    /// the hour (offsets of 30 or 45 minutes).
    fn wall_stamps(&self, mut wall: Wall) -> Option<(Stamp, Stamp)> {
        let hour = (wall.year, wall.month, wall.day, wall.hour);
        let zone = match self.hour_zone.get() {
            Some(zone) if zone.hour == hour => zone,
            _ => {
                let zone = self.hour_zone(hour)?;
                self.hour_zone.set(Some(zone));
                zone
            }
        };
        wall.offset_secs = zone.offset_secs;
        let local = Stamp::of_wall(&wall)?;
        // Seconds past the UTC hour the local hour starts in: past its end (offsets of
        // 30 or 45 minutes) the next UTC hour, unless that is the next day's.
        let mut utc = zone.utc_start;
        let mut into_hour = (utc.minute + wall.minute) * 60 + wall.second;
        if into_hour >= 3600 {
            if utc.hour == 23 {
                return None;
            }
            utc.hour += 1;
            into_hour -= 3600;
        }
        utc.minute = into_hour / 60;
        utc.second = into_hour % 60;
        let utc = Stamp::of_wall(&utc)?;
        Some((local, utc))
    }

    /// The zone over a local hour, when its offset is the same (and unambiguous) at the
    /// hour's first and last second, and a whole number of minutes.
    fn hour_zone(&self, hour: (i32, u32, u32, u32)) -> Option<HourZone> {
        let (year, month, day, h) = hour;
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let offset_at = |minute, second| {
            let at = date.and_hms_opt(h, minute, second)?;
            let offset = self.timezone.offset_from_local_datetime(&at).single()?;
            Some(chrono::Offset::fix(&offset).local_minus_utc())
        };
        let offset_secs = offset_at(0, 0)?;
        if offset_at(59, 59)? != offset_secs || offset_secs % 60 != 0 {
            return None;
        }
        let start = date.and_hms_opt(h, 0, 0)? - Duration::seconds(i64::from(offset_secs));
        Some(HourZone {
            hour,
            offset_secs,
            utc_start: Wall {
                year: start.year(),
                month: start.month(),
                day: start.day(),
                hour: start.hour(),
                minute: start.minute(),
                second: 0,
                micros: 0,
                offset_secs: 0,
            },
        })
    }

    /// A zone-less RFC 3164 stamp was read as if in UTC; reinterpret its wall-clock
    /// time in our zone. Stamps that carry an offset (RFC 3339, RFC 5424) are kept.
    fn localize(&self, text: &str, stamp: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        if !starts_with_month(text) {
            return stamp;
        }
        let naive = stamp.naive_utc();
        match self.timezone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(at) => at.fixed_offset(),
            chrono::LocalResult::Ambiguous(first, _) => first.fixed_offset(),
            // A wall-clock time skipped by a DST change: read it with the offset in
            // force an hour earlier.
            chrono::LocalResult::None => {
                let before = naive - Duration::hours(1);
                let offset = self
                    .timezone
                    .offset_from_local_datetime(&before)
                    .earliest()
                    .map(|o| chrono::Offset::fix(&o))
                    .unwrap_or(FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
                offset.from_local_datetime(&naive).single().unwrap_or(stamp)
            }
        }
    }
}

/// Undoes what a parser set before giving up on a shape: its details (but those the
/// header gave), its tags, its place in an attempt.
fn forget_parse(event: &mut Draft<'_>) {
    event.details.retain(|k| KEPT_ON_FALLBACK.contains(&k));
    event.tags.clear();
    event.role = context::Role::None;
    event.ends = false;
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

/// The header of the commonest line, `Mmm dd hh:mm:ss host tag[pid]: message` (no PRI,
/// a month's three letters in any case, as syslog_loose reads them; two-digit clock, a plain host name, a tag ending in `:`,
/// a message not starting with `[`), read without `syslog_loose`: exactly what
/// `syslog_loose` reads from such a line (a test holds the two to it), at a fraction of
/// the cost. `None` for every other line, which `syslog_loose` reads.
fn rfc3164_common(
    text: &str,
    year: impl FnOnce(IncompleteDate) -> i32,
) -> Option<(syslog_loose::Message<&str>, Wall)> {
    // syslog_loose reads the line trimmed.
    let text = text.trim_end();
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
    at += 10;
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
    let open = tag.bytes().position(|b| b == b'[');
    let (app, procid) = match open.map(|at| (&tag[..at], &tag[at + 1..])) {
        None if !tag.bytes().any(|b| b == b']') => (tag, None),
        None => return None,
        Some((name, rest)) => {
            let pid = rest.strip_suffix(']')?;
            if name.is_empty() || pid.is_empty() || pid.contains(['[', ']']) {
                return None;
            }
            (name, Some(ProcId::from(pid)))
        }
    };
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
    let message = syslog_loose::Message {
        protocol: syslog_loose::Protocol::RFC3164,
        facility: None,
        severity: None,
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

/// ASCII digits (at most a few) as a number.
fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// `sshd[8317]: rest` → (`sshd`, `8317`, `rest`); `prog: rest` → (`prog`, none, `rest`).
fn split_tag(message: &str) -> Option<(&str, Option<&str>, &str)> {
    let (tag, rest) = message.split_once(": ")?;
    let (name, pid) = match tag.split_once('[') {
        Some((name, pid)) => (name, Some(pid.strip_suffix(']')?)),
        None => (tag, None),
    };
    tag_name(name).then_some((name, pid, rest))
}

/// Whether `name` is a program's name as tags write it (`sshd`, `sshd(pam_unix)`,
/// `/usr/sbin/cron`).
fn tag_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'(' | b')')
        })
}

/// Solaris and illumos write `[ID <msgid> <facility>.<level>] ` after the tag:
/// (the message after it, the level when it names one). `None` when absent.
fn solaris_id(message: &str) -> Option<(&str, Option<Severity>)> {
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
fn find_tag(text: &str) -> Option<(&str, i64, &str)> {
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
fn starts_with_month(text: &str) -> bool {
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
fn program_name(tag: &str) -> &str {
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
fn unwrap_repeated(message: &str) -> (&str, Option<u64>) {
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

/// The year [`year_for`] gives for `month`/`day` whatever the time of day of the stamp
/// and of `today`, when that is so: no year puts the date on the day after `today` (the
/// one day whose times are on both sides of "at most a day ahead"), and one puts it on
/// or before `today`, the latest of which is the closest by more than a day. `None`
/// otherwise (and for a 29 February with no leap year near).
fn year_by_day(month: u32, day: u32, today: NaiveDate) -> Option<i32> {
    let mut best = None;
    for year in [today.year() - 1, today.year(), today.year() + 1] {
        let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
            continue;
        };
        match (today - date).num_days() {
            -1 => return None,
            back if back >= 0 => best = Some(year),
            _ => {}
        }
    }
    best
}

/// The year for a stamp without one: of last year, this year and next year, the one
/// whose date is closest to `now` without being more than a day ahead of it. A
/// 29 February looks back to the nearest leap year.
fn year_for(date: IncompleteDate, now: NaiveDateTime) -> i32 {
    let (month, day, hour, minute, second) = date;
    let this_year = now.year();
    let candidate = |year: i32| {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(hour.min(23), minute.min(59), second.min(59)))
    };
    let limit = now + Duration::days(1);
    let best = [this_year - 1, this_year, this_year + 1]
        .into_iter()
        .filter_map(|year| candidate(year).map(|at| (year, at)))
        .filter(|(_, at)| *at <= limit)
        .min_by_key(|(_, at)| (now - *at).num_seconds().abs());
    if let Some((year, _)) = best {
        return year;
    }
    // Only 29 February gets here: the latest leap year not in the future.
    (this_year - 8..=this_year)
        .rev()
        .find(|year| candidate(*year).is_some_and(|at| at <= limit))
        .unwrap_or(this_year)
}

#[cfg(test)]
mod tests;
