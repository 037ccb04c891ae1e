//! The [`Event`]: one MozDef event, every top-level field of the contract, `details` as
//! a JSON object. Field order follows the contract so serialized events read the same
//! everywhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::{self, SUMMARY_MAX_BYTES};
use crate::time;

/// One event as the agent emits it and the collector stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// 32 hex chars, deterministic (see [`crate::eventid`]).
    pub eventid: String,
    /// When the line says it happened, with its offset.
    pub timestamp: String,
    /// The same instant in UTC, `+00:00`.
    pub utctimestamp: String,
    /// Set by the collector on acceptance; absent on the agent side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receivedtimestamp: Option<String>,
    pub hostname: String,
    pub processname: String,
    pub processid: i64,
    /// RFC 5424 name in capitals (see [`crate::Severity`]); other shippers' words are
    /// kept upper-cased.
    pub severity: String,
    pub summary: String,
    pub category: String,
    pub source: String,
    pub tags: Vec<String>,
    pub details: Map<String, Value>,
}

impl Event {
    /// Sets `summary` to `text` trimmed, cut to 4,096 bytes on a UTF-8 boundary; a cut
    /// sets `details.truncated = true`.
    pub fn set_summary(&mut self, text: &str) {
        let (summary, cut) = summary_of(text);
        self.summary.clear();
        self.summary.push_str(summary);
        if cut {
            self.details
                .insert(fields::details::TRUNCATED.to_string(), Value::Bool(true));
        }
    }

    /// Sets `timestamp` and `utctimestamp` from one instant.
    pub fn set_time(&mut self, at: &DateTime<chrono::FixedOffset>) {
        self.timestamp = time::format_fixed(at);
        self.utctimestamp = time::format_utc(at.with_timezone(&Utc));
    }

    /// `utctimestamp` read back; `None` only for an event built by hand with bad text.
    pub fn utc(&self) -> Option<DateTime<Utc>> {
        time::parse_str(&self.utctimestamp)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    /// Appends the event as one line of NDJSON (with its `\n`), exactly as serde would
    /// write it (through [`LineFields::write_line`], which the agent's hot path shares).
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let fields = LineFields {
            eventid: &self.eventid,
            timestamp: &self.timestamp,
            utctimestamp: &self.utctimestamp,
            receivedtimestamp: self.receivedtimestamp.as_deref(),
            hostname: &self.hostname,
            processname: &self.processname,
            processid: self.processid,
            severity: &self.severity,
            summary: &self.summary,
            category: &self.category,
            source: &self.source,
        };
        fields.write_line(out, self.tags.iter().map(String::as_str), |out| {
            json::members(out, &self.details)
        });
    }
}

/// What `summary` holds for `text`: trimmed, cut to 4,096 bytes on a UTF-8 boundary,
/// and whether it was cut (then `details.truncated` is set).
pub fn summary_of(text: &str) -> (&str, bool) {
    let text = text.trim();
    if text.len() <= SUMMARY_MAX_BYTES {
        return (text, false);
    }
    let mut end = SUMMARY_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// An event's top-level fields, borrowed: what [`LineFields::write_line`] writes, in
/// the contract's order, for [`Event`] and for the agent's borrowed drafts alike.
#[derive(Debug, Clone, Copy)]
pub struct LineFields<'a> {
    pub eventid: &'a str,
    pub timestamp: &'a str,
    pub utctimestamp: &'a str,
    pub receivedtimestamp: Option<&'a str>,
    pub hostname: &'a str,
    pub processname: &'a str,
    pub processid: i64,
    pub severity: &'a str,
    pub summary: &'a str,
    pub category: &'a str,
    pub source: &'a str,
}

impl LineFields<'_> {
    /// Appends one NDJSON line: these fields, `tags`, and `details` (whose members, in
    /// key order, `details` writes).
    pub fn write_line<'t>(
        &self,
        out: &mut Vec<u8>,
        tags: impl IntoIterator<Item = &'t str>,
        details: impl FnOnce(&mut Vec<u8>),
    ) {
        out.extend_from_slice(b"{\"eventid\":");
        json::string(out, self.eventid);
        out.extend_from_slice(b",\"timestamp\":");
        json::string(out, self.timestamp);
        out.extend_from_slice(b",\"utctimestamp\":");
        json::string(out, self.utctimestamp);
        if let Some(received) = self.receivedtimestamp {
            out.extend_from_slice(b",\"receivedtimestamp\":");
            json::string(out, received);
        }
        out.extend_from_slice(b",\"hostname\":");
        json::string(out, self.hostname);
        out.extend_from_slice(b",\"processname\":");
        json::string(out, self.processname);
        out.extend_from_slice(b",\"processid\":");
        json::integer(out, self.processid);
        out.extend_from_slice(b",\"severity\":");
        json::string(out, self.severity);
        out.extend_from_slice(b",\"summary\":");
        json::string(out, self.summary);
        out.extend_from_slice(b",\"category\":");
        json::string(out, self.category);
        out.extend_from_slice(b",\"source\":");
        json::string(out, self.source);
        out.extend_from_slice(b",\"tags\":[");
        for (i, tag) in tags.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(out, tag);
        }
        out.extend_from_slice(b"],\"details\":{");
        details(out);
        out.extend_from_slice(b"}}\n");
    }
}

/// A JSON writer for the hot path; output is byte-for-byte what `serde_json` writes.
pub mod json {
    use serde_json::{Map, Value};

    /// Whether a byte must be escaped inside a JSON string.
    const fn needs_escape(byte: u8) -> bool {
        byte < 0x20 || byte == b'"' || byte == b'\\'
    }

    /// Whether any of the eight bytes in `word` must be escaped (SWAR: a byte below
    /// 0x20, a quote or a backslash).
    const fn word_needs_escape(word: u64) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let below_space = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = word ^ (ONES * b'"' as u64);
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = word ^ (ONES * b'\\' as u64);
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        (below_space | quote | backslash) & HIGHS != 0
    }

    /// `text` as a JSON string, escaped as serde_json escapes it.
    #[inline]
    pub fn string(out: &mut Vec<u8>, text: &str) {
        let bytes = text.as_bytes();
        if is_clean(bytes) {
            quoted(out, bytes);
        } else {
            escaped(out, text);
        }
    }

    /// Whether nothing in `bytes` needs escaping. Short strings (most of an event's:
    /// keys, names, numbers as text) are checked a word or two at a time, the words
    /// overlapping rather than looping over the tail.
    #[inline]
    fn is_clean(bytes: &[u8]) -> bool {
        let word = |chunk: &[u8; 8]| u64::from_le_bytes(*chunk);
        let half = |chunk: &[u8; 4]| u64::from(u32::from_le_bytes(*chunk));
        match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            (Some(first), Some(last)) if bytes.len() <= 16 => {
                !word_needs_escape(word(first)) && !word_needs_escape(word(last))
            }
            (Some(_), Some(_)) => clean_prefix(bytes) == bytes.len(),
            _ => match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
                // Two halves in one word; a quote or control byte in either shows.
                (Some(first), Some(last)) => !word_needs_escape(half(first) | (half(last) << 32)),
                _ => !bytes.iter().any(|b| needs_escape(*b)),
            },
        }
    }

    /// `"bytes"`, for bytes that need no escaping: one capacity check, and short
    /// strings copied in two overlapping moves rather than through `memcpy`.
    #[inline]
    fn quoted(out: &mut Vec<u8>, bytes: &[u8]) {
        let n = bytes.len();
        out.reserve(n + 2);
        let len = out.len();
        // SAFETY: `reserve` made room for `n + 2` bytes past `len`. The writes cover
        // exactly `len..len + n + 2` (the two moves of a short string overlap inside
        // `len + 1..len + 1 + n`), every read is inside `bytes`, source and destination
        // never overlap (`out` does not borrow `bytes`), and `set_len` is called once all
        // `n + 2` bytes are written.
        unsafe {
            let dst = out.as_mut_ptr().add(len);
            let src = bytes.as_ptr();
            dst.write(b'"');
            let body = dst.add(1);
            if (8..=16).contains(&n) {
                let first = src.cast::<u64>().read_unaligned();
                let last = src.add(n - 8).cast::<u64>().read_unaligned();
                body.cast::<u64>().write_unaligned(first);
                body.add(n - 8).cast::<u64>().write_unaligned(last);
            } else if (4..8).contains(&n) {
                let first = src.cast::<u32>().read_unaligned();
                let last = src.add(n - 4).cast::<u32>().read_unaligned();
                body.cast::<u32>().write_unaligned(first);
                body.add(n - 4).cast::<u32>().write_unaligned(last);
            } else {
                std::ptr::copy_nonoverlapping(src, body, n);
            }
            body.add(n).write(b'"');
            out.set_len(len + n + 2);
        }
    }

    /// `text` as a JSON string with escapes.
    fn escaped(out: &mut Vec<u8>, text: &str) {
        out.reserve(text.len() + 8);
        out.push(b'"');
        let bytes = text.as_bytes();
        let mut start = 0;
        loop {
            let clean = start + clean_prefix(&bytes[start..]);
            out.extend_from_slice(&bytes[start..clean]);
            let Some(&byte) = bytes.get(clean) else {
                break;
            };
            match byte {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                other => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(other >> 4)]);
                    out.push(HEX[usize::from(other & 0x0f)]);
                }
            }
            start = clean + 1;
        }
        out.push(b'"');
    }

    /// How many bytes at the start of `bytes` need no escaping.
    fn clean_prefix(bytes: &[u8]) -> usize {
        let mut i = 0;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
                _mm_or_si128, _mm_set1_epi8,
            };
            // Sixteen bytes at a time (the common case: nothing to escape). SAFETY: SSE2
            // is part of every x86_64 CPU; each load reads 16 bytes inside `bytes`
            // (`i + 16 <= len`), unaligned loads being allowed.
            unsafe {
                let quote = _mm_set1_epi8(b'"' as i8);
                let backslash = _mm_set1_epi8(b'\\' as i8);
                let space = _mm_set1_epi8(0x20);
                while i + 16 <= bytes.len() {
                    let x = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                    // max(x, 0x20) == x exactly when x >= 0x20 (unsigned).
                    let printable = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, space), x));
                    let special = _mm_movemask_epi8(_mm_or_si128(
                        _mm_cmpeq_epi8(x, quote),
                        _mm_cmpeq_epi8(x, backslash),
                    ));
                    let stop = (special | !printable) & 0xffff;
                    if stop != 0 {
                        return i + stop.trailing_zeros() as usize;
                    }
                    i += 16;
                }
            }
        }
        // Eight bytes at a time, then one by one.
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if word_needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        while i < bytes.len() && !needs_escape(bytes[i]) {
            i += 1;
        }
        i
    }

    /// An integer in decimal, as `i64::to_string` writes it, without the formatter.
    pub fn integer(out: &mut Vec<u8>, n: i64) {
        if n < 0 {
            out.push(b'-');
        }
        let mut digits = [0u8; 20];
        out.extend_from_slice(crate::eventid::format_u64(n.unsigned_abs(), &mut digits).as_bytes());
    }

    /// A JSON object, keys in the map's order.
    pub fn object(out: &mut Vec<u8>, map: &Map<String, Value>) {
        out.push(b'{');
        members(out, map);
        out.push(b'}');
    }

    /// An object's members (`"key":value,…`) without its braces.
    pub fn members(out: &mut Vec<u8>, map: &Map<String, Value>) {
        for (i, (key, value)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, key);
            out.push(b':');
            self::value(out, value);
        }
    }

    /// Any JSON value.
    pub fn value(out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Number(n) => match n.as_i64() {
                Some(i) => integer(out, i),
                None => out.extend_from_slice(n.to_string().as_bytes()),
            },
            Value::String(s) => string(out, s),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self::value(out, item);
                }
                out.push(b']');
            }
            Value::Object(map) => object(out, map),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Event {
        Event {
            eventid: "0123456789abcdef0123456789abcdef".into(),
            timestamp: "2026-11-22T09:14:03.120000+01:00".into(),
            utctimestamp: "2026-11-22T08:14:03.120000+00:00".into(),
            receivedtimestamp: None,
            hostname: "web1.example.com".into(),
            processname: "sshd".into(),
            processid: 1234,
            severity: "INFO".into(),
            summary: "Accepted publickey for alice".into(),
            category: "authentication".into(),
            source: "/var/log/auth.log".into(),
            tags: vec!["sshd".into()],
            details: json!({"program": "sshd", "username": "alice"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn serializes_fields_in_contract_order() {
        let mut line = Vec::new();
        sample().write_json_line(&mut line);
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with('\n'));
        let keys: Vec<&str> = crate::fields::TOP_LEVEL
            .iter()
            .copied()
            .filter(|k| *k != crate::fields::RECEIVEDTIMESTAMP)
            .collect();
        let mut last = 0;
        for key in keys {
            let at = text
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key}"));
            assert!(at >= last, "{key} out of order in {text}");
            last = at;
        }
        let back: Event = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn the_hand_written_line_is_what_serde_writes() {
        let mut event = sample();
        event.summary =
            "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 😀 \u{7f}".into();
        event.receivedtimestamp = Some("2026-11-24T12:00:00+00:00".into());
        event.processid = -7;
        event.tags = vec![];
        event.details.insert(
            "nested".into(),
            json!({"a": [1, 2.5, -3, true, null, "x\"y"], "b": {}}),
        );
        event.details.insert("big".into(), json!(u64::MAX));
        event.details.insert("min".into(), json!(i64::MIN));
        event.details.insert("zero".into(), json!(0));
        event.details.insert("float".into(), json!(1e-7));
        let mut line = Vec::new();
        event.write_json_line(&mut line);
        let mut want = serde_json::to_vec(&event).unwrap();
        want.push(b'\n');
        assert_eq!(
            String::from_utf8(line).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    #[test]
    fn escapes_are_found_at_every_position_of_a_word() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
            for at in 0..40 {
                let mut event = sample();
                let mut text: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD".into();
                text.insert(at, special);
                text.push_str("é😀");
                event.summary = text;
                let mut line = Vec::new();
                event.write_json_line(&mut line);
                let mut want = serde_json::to_vec(&event).unwrap();
                want.push(b'\n');
                assert_eq!(line, want, "{special:?} at {at}");
            }
        }
    }

    #[test]
    fn short_strings_of_every_length_are_written_as_serde_writes_them() {
        // The short paths check a word or two (overlapping) and copy in two moves:
        // every length up to past two words, every ASCII byte at every position.
        for len in 0..=20 {
            let base: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
            let mut texts = vec![base.clone()];
            for at in 0..len {
                for byte in 0u8..128 {
                    let mut text = base.clone().into_bytes();
                    text[at] = byte;
                    texts.push(String::from_utf8(text).unwrap());
                }
            }
            for text in texts {
                let mut out = b"x".to_vec();
                json::string(&mut out, &text);
                let want = serde_json::to_vec(&text).unwrap();
                assert_eq!(&out[1..], &want[..], "{text:?}");
            }
        }
    }

    #[test]
    fn every_ascii_byte_is_written_as_serde_writes_it_beside_non_ascii() {
        let base = "é😀abcdefghijklmnopqrstuvwxyzé0123456789\u{7f}ABCDEFGHIJ";
        for c in (0u8..128).map(char::from).chain(['é', '\u{2028}', '😀']) {
            for at in (0..base.len()).filter(|at| base.is_char_boundary(*at)) {
                let mut text = base.to_string();
                text.insert(at, c);
                text.insert(0, c);
                let mut out = Vec::new();
                json::string(&mut out, &text);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&text).unwrap(),
                    "{c:?} at {at}"
                );
            }
        }
    }

    #[test]
    fn long_summary_is_cut_on_a_char_boundary_and_flagged() {
        let mut event = sample();
        let text = "é".repeat(3000); // 6000 bytes
        event.set_summary(&text);
        assert!(event.summary.len() <= SUMMARY_MAX_BYTES);
        assert_eq!(event.summary.len(), 4096);
        assert_eq!(event.details["truncated"], json!(true));

        let mut event = sample();
        event.set_summary("  short  ");
        assert_eq!(event.summary, "short");
        assert!(!event.details.contains_key("truncated"));
    }

    #[test]
    fn utc_reads_back() {
        let event = sample();
        assert_eq!(event.utc().map(|t| t.timestamp()), Some(1_795_335_243));
    }
}
