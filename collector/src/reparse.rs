//! Raw syslog text from other shippers, parsed here with the agent's own parsers
//! ([`picket_parsers`]), so that its fields, tags and category are what an agent would
//! have sent and the alert rules see it.
//!
//! rsyslog's and syslog-ng's JSON templates send a line's parts (program, pid, host,
//! time, message) but not what the message means; other shippers send the whole line
//! as `summary`. An event is parsed again when a shipper sent it raw — no parser's tag
//! among its tags (the agent's events always carry one; syslog-ng's `.source.s_net`
//! is none) and no category, or `syslog` — and:
//!
//! - it names its program (`processname`, or a syslog tag `sshd[42]:` in
//!   `details.tag`, `details.syslogtag` or `details.legacy_msghdr`, as rsyslog's
//!   `%syslogtag%` and syslog-ng's `LEGACY_MSGHDR` send it): the message goes through
//!   that program's parser (sshd, sudo, su, the account tools, dropbear, PAM, CEF, JSON
//!   lines), as a journal record does on the agent;
//! - or its `summary` is a whole syslog line (`Dec  3 12:00:03 web1 sshd[42]: …`): the
//!   line is read as the agent reads a file's line, header and all.
//!
//! Only a message a parser recognised changes the event: category, tags (the parser's
//! first, then the shipper's), program, pid, summary and the parser's details (a detail the shipper sent stays unless the parser
//! sets the same key). The event keeps its id, its `source` and its reception time; it
//! keeps its time unless it had none and the line's header gives one. A whole line that
//! became a shorter summary is kept in `details.originaltext`.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use mozdef::Event;
use picket_parsers::host::HostIdentity;
use picket_parsers::{LineContext, LineParser, PARSER_IDS, Structured, TimeZoneChoice};

/// The tag of a message no parser recognised.
const SYSLOG_TAG: &str = "syslog";
/// Where a whole line that became a shorter summary is kept.
pub const ORIGINAL_TEXT: &str = "originaltext";

/// Parses events again where they are raw text. One for the collector (HTTP, the
/// Elasticsearch face and AMQP share it), with one parser per host that lives across
/// requests, so what earlier lines said is known on later ones as on the agent: an sshd
/// connection's address, PAM's failure that sudo's line repeats (rsyslog and syslog-ng
/// send them in separate requests). At most [`Reparser::MAX_HOSTS`] hosts; past that
/// the table starts again (what was in it is forgotten, nothing is lost).
#[derive(Default)]
pub struct Reparser {
    parsers: Mutex<HashMap<String, LineParser>>,
}

impl Reparser {
    /// Most hosts whose parsers are kept.
    pub const MAX_HOSTS: usize = 10_000;

    pub fn new() -> Reparser {
        Reparser::default()
    }

    /// Parses `event` again when it is a raw message a parser recognises; true when it
    /// changed.
    pub fn apply(&self, event: &mut Event, received: DateTime<Utc>) -> bool {
        if parsed_before(event)
            || !matches!(event.category.as_str(), "UNKNOWN" | "syslog" | "")
            || event.summary.trim().is_empty()
        {
            return false;
        }
        let tagged = match event.processname.as_str() {
            "UNKNOWN" => tagged_program(&event.details),
            _ => None,
        };
        let parsed = match tagged {
            Some((program, pid)) => {
                let pid = if event.processid == 0 {
                    pid
                } else {
                    event.processid
                };
                self.parse_message(event, &program, pid)
            }
            None if event.processname != "UNKNOWN" => {
                self.parse_message(event, &event.processname, event.processid)
            }
            None => self.parse_line(event, received),
        };
        match parsed {
            Some((parsed, whole_line))
                if parsed.tags.first().map(String::as_str) != Some(SYSLOG_TAG) =>
            {
                merge(event, parsed, whole_line, received);
                true
            }
            _ => false,
        }
    }

    fn with_parser<R>(&self, host: &str, then: impl FnOnce(&LineParser) -> R) -> R {
        // A panic while parsing (none is known; the parsers are fuzzed) must not stop
        // every later event from being parsed: the table is taken back as it is.
        let mut parsers = self
            .parsers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if parsers.len() >= Self::MAX_HOSTS && !parsers.contains_key(host) {
            parsers.clear();
        }
        let parser = parsers.entry(host.to_string()).or_insert_with(|| {
            LineParser::new(
                HostIdentity::named(host),
                TimeZoneChoice::parse("UTC").expect("UTC is a zone"),
            )
        });
        then(parser)
    }

    /// The message of an event that names its program, read as a journal record.
    fn parse_message(&self, event: &Event, program: &str, pid: i64) -> Option<(Event, bool)> {
        let time = event.utc()?;
        let record = Structured {
            time,
            hostname: Some(event.hostname.as_str()),
            program: Some(program),
            pid,
            severity: mozdef::Severity::from_name(&event.severity),
            message: event.summary.trim(),
        };
        let parsed = self.with_parser(&event.hostname, |parser| {
            parser.parse_structured(&record, "", "", "", |draft| draft.to_event())
        });
        Some((parsed, false))
    }

    /// A summary that is a whole syslog line, read as the agent reads a file's line.
    fn parse_line(&self, event: &Event, received: DateTime<Utc>) -> Option<(Event, bool)> {
        let context = LineContext {
            source: "",
            source_identity: "",
            offset: 0,
            read_at: received,
        };
        let parsed = self.with_parser(&event.hostname, |parser| {
            parser.parse_line(event.summary.trim().as_bytes(), &context, |draft| {
                draft.to_event()
            })
        });
        // Without a program the line was not one: nothing to gain.
        (parsed.processname != "UNKNOWN").then_some((parsed, true))
    }
}

/// Whether a parser already read the event (the agent's: its first tag names the
/// parser; a line no parser knew is tagged `syslog` and carries `details.program`,
/// which another shipper's `syslog` tag does not).
fn parsed_before(event: &Event) -> bool {
    event.tags.iter().any(|tag| match tag.as_str() {
        "syslog" => event.details.contains_key("program"),
        tag => PARSER_IDS.contains(&tag),
    })
}

/// The program and pid of a syslog tag a shipper sent as a detail (`sshd[42]:`).
fn tagged_program(details: &serde_json::Map<String, serde_json::Value>) -> Option<(String, i64)> {
    let tag = ["tag", "syslogtag", "legacy_msghdr"]
        .iter()
        .find_map(|key| details.get(*key)?.as_str())?
        .trim()
        .trim_end_matches(':');
    let (program, pid) = match tag.split_once('[') {
        Some((program, rest)) => (program, rest.trim_end_matches(']').parse().unwrap_or(0)),
        None => (tag, 0),
    };
    let plausible =
        !program.is_empty() && program.len() <= 64 && !program.contains(char::is_whitespace);
    plausible.then(|| (program.to_string(), pid))
}

/// Moves what the parser found into the event (see the module's rules).
fn merge(event: &mut Event, parsed: Event, whole_line: bool, received: DateTime<Utc>) {
    let Event {
        timestamp,
        utctimestamp,
        hostname,
        processname,
        processid,
        summary,
        category,
        tags,
        details,
        ..
    } = parsed;
    let original = std::mem::take(&mut event.summary);
    if whole_line {
        if event.hostname == "UNKNOWN" || hostname != "UNKNOWN" {
            event.hostname = hostname;
        }
        // Timed at reception (no time sent, or one that could not be read): the line's
        // header knows better.
        let untimed = event.utc() == Some(received)
            || event
                .details
                .contains_key(mozdef::fields::details::TIMESTAMPERROR);
        if untimed && utctimestamp != event.utctimestamp {
            event.timestamp = timestamp;
            event.utctimestamp = utctimestamp;
            event
                .details
                .remove(mozdef::fields::details::TIMESTAMPERROR);
        }
    }
    event.processname = processname;
    if processid != 0 {
        event.processid = processid;
    }
    event.category = category;
    let sent = std::mem::replace(&mut event.tags, tags);
    for tag in sent {
        if !event.tags.contains(&tag) {
            event.tags.push(tag);
        }
    }
    let mut merged = details;
    for (key, value) in std::mem::take(&mut event.details) {
        merged.entry(key).or_insert(value);
    }
    if original.trim() != summary {
        merged.insert(
            ORIGINAL_TEXT.to_string(),
            serde_json::Value::String(original),
        );
    }
    event.details = merged;
    event.summary = summary;
}

#[cfg(test)]
mod tests;
