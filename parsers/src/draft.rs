//! The event a line is parsed into on the agent's hot path: every field of
//! [`mozdef::Event`], borrowed from the line where it can be. Nothing here allocates
//! for the common line (timestamps and the id are written inline, text fields and
//! details point into the line or are `'static`), and [`Draft::write_json_line`] writes
//! the very bytes [`Event::write_json_line`] would for the same event.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use mozdef::event::{LineFields, json, summary_of};
use mozdef::fields;
use mozdef::{Event, time};
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// A value of `details`.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    /// A 64-bit id, written as a string of 16 lowercase hex digits (no allocation).
    Hex(u64),
    /// Anything else (JSON lines, structured data).
    Json(Value),
}

impl<'a> From<&'a str> for Detail<'a> {
    fn from(text: &'a str) -> Detail<'a> {
        Detail::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Detail<'_> {
    fn from(text: String) -> Self {
        Detail::Text(Cow::Owned(text))
    }
}

impl<'a> From<Cow<'a, str>> for Detail<'a> {
    fn from(text: Cow<'a, str>) -> Detail<'a> {
        Detail::Text(text)
    }
}

impl From<i64> for Detail<'_> {
    fn from(n: i64) -> Self {
        Detail::Int(n)
    }
}

impl From<u64> for Detail<'_> {
    fn from(n: u64) -> Self {
        match i64::try_from(n) {
            Ok(n) => Detail::Int(n),
            Err(_) => Detail::Json(Value::from(n)),
        }
    }
}

impl From<bool> for Detail<'_> {
    fn from(b: bool) -> Self {
        Detail::Bool(b)
    }
}

impl From<Value> for Detail<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::String(text) => Detail::Text(Cow::Owned(text)),
            Value::Bool(b) => Detail::Bool(b),
            Value::Number(n) if n.is_i64() => Detail::Int(n.as_i64().unwrap_or_default()),
            other => Detail::Json(other),
        }
    }
}

impl Detail<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Detail::Text(text) => Some(text),
            Detail::Json(Value::String(text)) => Some(text),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Detail::Text(text) => Value::String(text.to_string()),
            Detail::Int(n) => Value::from(*n),
            Detail::Bool(b) => Value::Bool(*b),
            Detail::Hex(id) => Value::String(String::from_utf8_lossy(&hex16(*id)).into_owned()),
            Detail::Json(value) => value.clone(),
        }
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Detail::Text(text) => json::string(out, text),
            Detail::Int(n) => json::integer(out, *n),
            Detail::Bool(true) => out.extend_from_slice(b"true"),
            Detail::Bool(false) => out.extend_from_slice(b"false"),
            Detail::Hex(id) => {
                out.push(b'"');
                out.extend_from_slice(&hex16(*id));
                out.push(b'"');
            }
            Detail::Json(value) => json::value(out, value),
        }
    }
}

/// `id` as 16 lowercase hex digits.
pub fn hex16(id: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (at, digit) in out.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((id >> ((15 - at) * 4)) & 0xf) as usize];
    }
    out
}

/// `details`: a few keys, kept in key order (as the event's map orders them), in
/// place for what a parsed line sets (an sshd login sets eight keys; nothing is
/// allocated below [`DETAILS_INLINE`]); setting a key again replaces its value. Each key
/// carries its first eight bytes as a number, so finding a key's place compares numbers
/// and only looks at the text when two keys share their first eight bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details<'a> {
    entries: SmallVec<[(Rank, Cow<'a, str>, Detail<'a>); DETAILS_INLINE]>,
}

/// Keys [`Details`] holds without allocating.
const DETAILS_INLINE: usize = 10;

/// A key's first eight bytes, big-endian, zero-padded: ordered as the keys are, up to
/// ties (a key that is a prefix of another within eight bytes, or has NUL bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank(u64);

impl Rank {
    fn of(key: &str) -> Rank {
        if let Some(first) = key.as_bytes().first_chunk::<8>() {
            return Rank(u64::from_be_bytes(*first));
        }
        let mut first = [0u8; 8];
        for (to, from) in first.iter_mut().zip(key.bytes()) {
            *to = from;
        }
        Rank(u64::from_be_bytes(first))
    }
}

impl<'a> Details<'a> {
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Detail<'a>>) {
        let key = key.into();
        let value = value.into();
        let rank = Rank::of(&key);
        match self.place(rank, &key) {
            Ok(at) => self.entries[at].2 = value,
            Err(at) => self.entries.insert(at, (rank, key, value)),
        }
    }

    /// Sets `key` only when it has no value yet.
    pub fn insert_if_absent(&mut self, key: impl Into<Cow<'a, str>>, value: Detail<'a>) {
        let key = key.into();
        let rank = Rank::of(&key);
        if let Err(at) = self.place(rank, &key) {
            self.entries.insert(at, (rank, key, value));
        }
    }

    /// Where `key` is (`Ok`) or belongs (`Err`), in key order.
    fn place(&self, rank: Rank, key: &str) -> Result<usize, usize> {
        for (at, (r, k, _)) in self.entries.iter().enumerate() {
            match r.cmp(&rank).then_with(|| k.as_ref().cmp(key)) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(at),
                std::cmp::Ordering::Greater => return Err(at),
            }
        }
        Err(self.entries.len())
    }

    pub fn get(&self, key: &str) -> Option<&Detail<'a>> {
        self.place(Rank::of(key), key)
            .ok()
            .map(|at| &self.entries[at].2)
    }

    /// The keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Detail<'a>)> {
        self.entries.iter().map(|(_, k, v)| (k.as_ref(), v))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(_, k, _)| k != key);
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|(_, k, _)| keep(k));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn to_map(&self) -> Map<String, Value> {
        self.entries
            .iter()
            .map(|(_, k, v)| (k.to_string(), v.to_value()))
            .collect()
    }
}

/// A timestamp as MozDef writes it, held inline (at most [`Stamp::MAX`] bytes).
#[derive(Clone, Copy)]
pub struct Stamp {
    bytes: [u8; Stamp::MAX],
    len: u8,
}

impl Stamp {
    const MAX: usize = 40;

    fn of(at: &DateTime<FixedOffset>) -> Stamp {
        let mut stamp = Stamp {
            bytes: [0; Stamp::MAX],
            len: 0,
        };
        stamp.len = time::write_fixed(at, &mut stamp.bytes) as u8;
        stamp
    }

    /// A wall-clock time as written (`None` when a part is out of range).
    pub fn of_wall(wall: &time::Wall) -> Option<Stamp> {
        let mut stamp = Stamp::default();
        stamp.len = time::write_wall(wall, &mut stamp.bytes)? as u8;
        Some(stamp)
    }

    pub fn as_str(&self) -> &str {
        // write_fixed writes ASCII only.
        ascii(&self.bytes[..usize::from(self.len)])
    }
}

impl Default for Stamp {
    fn default() -> Stamp {
        Stamp {
            bytes: [0; Stamp::MAX],
            len: 0,
        }
    }
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// Bytes written ASCII (stamps, ids) as text, told a word at a time ("" if they were
/// not, which they always are).
fn ascii(bytes: &[u8]) -> &str {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        ""
    }
}

/// What a line is to the failed attempt it belongs to (read by the per-process table,
/// `context.rs`, which numbers attempts and marks echoes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Not part of a failed attempt (a login, a session, anything else).
    #[default]
    None,
    /// The first sign of an attempt (`Invalid user`, a PAM failure).
    Begins,
    /// The attempt's own failure line (`Failed password …`): ends it.
    Fails,
    /// About the attempts so far (a disconnect before authentication): begins one
    /// when there was none (a probe).
    Follows,
    /// A summary of attempts already written (`PAM 2 more authentication failures`,
    /// written as the handle closes, after the connection's last line): always an echo.
    Echo,
    /// A line of sshd's listener (one pid for every connection: drops, penalties,
    /// crashes): it names its own peer or none, is no part of a connection's attempts,
    /// and is neither recorded in the table nor completed from it.
    Listener,
}

/// One event being read from one line.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub eventid: [u8; mozdef::eventid::EVENT_ID_LEN],
    pub timestamp: Stamp,
    pub utctimestamp: Stamp,
    pub hostname: Cow<'a, str>,
    pub processname: Cow<'a, str>,
    pub processid: i64,
    pub severity: &'static str,
    pub summary: Cow<'a, str>,
    pub category: Cow<'a, str>,
    pub source: &'a str,
    /// The first tag: the parser that read the line.
    pub parser: &'static str,
    /// Tags after it.
    pub tags: Vec<Cow<'a, str>>,
    pub details: Details<'a>,
    /// What the line is to a failed attempt (not written: the per-process table turns it
    /// into `details.attemptid` and `details.echo`).
    pub role: Role,
    /// The line closes its process's connection (not written).
    pub ends: bool,
    /// What the line is to sudo's and su's tally of PAM's failures (not written: the
    /// failures table turns it into `details.echo` or `details.count`).
    pub auth: AuthLine,
}

/// A line about failed passwords that another line may also say (see `failures.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthLine {
    #[default]
    None,
    /// PAM's module wrote one failure.
    PamFailure,
    /// The program's own line about this many failures.
    Tally(u32),
    /// The program let the user in: PAM's failures before it are settled.
    Success,
    /// PAM got no password at all (`auth could not identify password`: the input
    /// ended): no wrong password, and sudo's and su's tallies do not count it.
    NoPassword,
}

impl<'a> Draft<'a> {
    /// An event with nothing read yet: unknown program, INFO, `syslog`.
    pub fn blank(eventid: [u8; mozdef::eventid::EVENT_ID_LEN], source: &'a str) -> Draft<'a> {
        Draft {
            eventid,
            timestamp: Stamp::default(),
            utctimestamp: Stamp::default(),
            hostname: Cow::Borrowed(""),
            processname: Cow::Borrowed(fields::PROCESSNAME_UNKNOWN),
            processid: 0,
            severity: mozdef::Severity::Info.as_str(),
            summary: Cow::Borrowed(""),
            category: Cow::Borrowed(fields::CATEGORY_SYSLOG),
            source,
            parser: super::SYSLOG_PARSER,
            tags: Vec::new(),
            details: Details::default(),
            role: Role::None,
            ends: false,
            auth: AuthLine::None,
        }
    }

    /// Sets `timestamp` and `utctimestamp` from one instant.
    pub fn set_time(&mut self, at: &DateTime<FixedOffset>) {
        self.timestamp = Stamp::of(at);
        self.utctimestamp = Stamp::of(&at.with_timezone(&chrono::Utc).fixed_offset());
    }

    /// Sets `timestamp` and `utctimestamp` as written already (the same instant).
    pub fn set_stamps(&mut self, timestamp: Stamp, utctimestamp: Stamp) {
        self.timestamp = timestamp;
        self.utctimestamp = utctimestamp;
    }

    /// Sets `summary` to `text` trimmed, cut to 4,096 bytes on a UTF-8 boundary; a cut
    /// sets `details.truncated = true` (as [`Event::set_summary`]).
    pub fn set_summary(&mut self, text: Cow<'a, str>) {
        let cut = match text {
            Cow::Borrowed(text) => {
                let (summary, cut) = summary_of(text);
                self.summary = Cow::Borrowed(summary);
                cut
            }
            Cow::Owned(text) => {
                let (summary, cut) = summary_of(&text);
                self.summary = Cow::Owned(summary.to_string());
                cut
            }
        };
        if cut {
            self.details.insert(fields::details::TRUNCATED, true);
        }
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.parser == tag || self.tags.iter().any(|t| t == tag)
    }

    /// The event id as text.
    pub fn eventid(&self) -> &str {
        ascii(&self.eventid)
    }

    /// The finished event as the schema's type.
    pub fn to_event(&self) -> Event {
        let mut tags = Vec::with_capacity(1 + self.tags.len());
        tags.push(self.parser.to_string());
        tags.extend(self.tags.iter().map(|t| t.to_string()));
        Event {
            eventid: self.eventid().to_string(),
            timestamp: self.timestamp.as_str().to_string(),
            utctimestamp: self.utctimestamp.as_str().to_string(),
            receivedtimestamp: None,
            hostname: self.hostname.to_string(),
            processname: self.processname.to_string(),
            processid: self.processid,
            severity: self.severity.to_string(),
            summary: self.summary.to_string(),
            category: self.category.to_string(),
            source: self.source.to_string(),
            tags,
            details: self.details.to_map(),
        }
    }

    /// Appends the event as one line of NDJSON, byte for byte what
    /// [`Event::write_json_line`] writes for [`Draft::to_event`].
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let fields = LineFields {
            eventid: self.eventid(),
            timestamp: self.timestamp.as_str(),
            utctimestamp: self.utctimestamp.as_str(),
            receivedtimestamp: None,
            hostname: &self.hostname,
            processname: &self.processname,
            processid: self.processid,
            severity: self.severity,
            summary: &self.summary,
            category: &self.category,
            source: self.source,
        };
        let tags = std::iter::once(self.parser).chain(self.tags.iter().map(|t| t.as_ref()));
        let details = &self.details.entries;
        fields.write_line(out, tags, |out| {
            for (i, (_, key, value)) in details.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::string(out, key);
                out.push(b':');
                value.write_json(out);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_written_in_key_order_whatever_their_first_eight_bytes() {
        // Ties in the first eight bytes (a prefix, a shared start, a NUL byte) fall back
        // to the whole key; the order must be the map's (byte order).
        let keys = [
            "destinationport",
            "destinationipaddress",
            "destinat",
            "dest",
            "dest\0",
            "dest\0\0\0\0\0x",
            "a",
            "",
            "zz",
            "sourceipaddress",
            "sourceport",
            "é",
            "destination",
        ];
        let mut details = Details::default();
        for (n, key) in keys.iter().enumerate() {
            details.insert(*key, n as i64);
        }
        // Setting a key again replaces it, in place.
        details.insert("dest", 99i64);
        assert_eq!(details.len(), keys.len());
        assert_eq!(details.get("dest"), Some(&Detail::Int(99)));
        assert_eq!(details.get("dest\0"), Some(&Detail::Int(4)));
        assert!(!details.contains_key("des"));
        let written: Vec<&str> = details.entries.iter().map(|(_, k, _)| k.as_ref()).collect();
        let mut want = keys.to_vec();
        want.sort();
        assert_eq!(written, want);
        assert_eq!(
            details.to_map().keys().collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
    }
}
