//! CEF (the contract's CEF section): `CEF:Version|Vendor|Product|Version|Signature
//! ID|Name|Severity|Extension`, with `\|` and `\\` escaped in the header and
//! `key=value` extension pairs whose values run to the space before the next `key=`
//! (`\=`, `\\`, `\n`, `\r` escaped; an unescaped `=` inside a value is tolerated when
//! no word directly before it looks like a key).

use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use memchr::memmem;
use std::borrow::Cow;

use mozdef::Severity;

use super::common::TrimFast;
use super::common::{address, set, set_source};
use super::draft::Draft;

/// Parser id, written into `tags`.
pub const ID: &str = "cef";

/// The CEF text of a message: the message itself when it starts with `CEF:`.
pub fn detect(message: &str) -> Option<&str> {
    let text = message.trim_start();
    (text.starts_with("CEF:") && version_follows(&text[4..])).then_some(text)
}

/// Where `CEF:<version>|` starts in a whole line (at its start or after a space), for
/// CEF behind prefixes that are not syslog headers (`<epoch ms> host CEF:0|…`,
/// `May 02 15:27:43.000 UTC host CEF:0|…`).
pub fn find(line: &str) -> Option<usize> {
    static FINDER: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new("CEF:"));
    let bytes = line.as_bytes();
    FINDER.find_iter(bytes).find(|&at| {
        let after_space = at == 0 || bytes[at - 1].is_ascii_whitespace() || bytes[at - 1] == b'>';
        after_space && version_follows(&line[at + 4..])
    })
}

fn version_follows(rest: &str) -> bool {
    let rest = rest.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest.as_bytes().get(digits) == Some(&b'|')
}

/// What a prefix before `CEF:` says: its time and host (`<epoch ms> host`,
/// `MMM dd [yyyy] HH:mm:ss[.SSS] [zone] host`, with an optional `<PRI>` and an optional
/// `tag:` after the host). `None` when the prefix is none of these.
pub struct Prefix<'a> {
    pub time: DateTime<FixedOffset>,
    pub host: &'a str,
    pub pri: Option<u32>,
    pub tag: Option<&'a str>,
}

/// Reads a prefix; `year` resolves a date written without one.
pub fn prefix<'a>(
    prefix: &'a str,
    zone: Tz,
    year: impl Fn(u32, u32, u32, u32, u32) -> i32,
) -> Option<Prefix<'a>> {
    let mut rest = prefix.trim_fast();
    let mut pri = None;
    if let Some(after) = rest.strip_prefix('<') {
        let (number, tail) = after.split_once('>')?;
        pri = number.parse().ok();
        rest = tail.trim_start();
    }
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    let mut tag = None;
    if words.last().is_some_and(|w| w.ends_with(':')) {
        tag = words.pop().map(|w| w.trim_end_matches(':'));
    }
    let host = words.pop()?;
    if words.is_empty() {
        return None;
    }
    let time =
        if words.len() == 1 && words[0].len() >= 12 && words[0].bytes().all(|b| b.is_ascii_digit())
        {
            let millis: i64 = words[0].parse().ok()?;
            chrono::Utc
                .timestamp_millis_opt(millis)
                .single()
                .map(|t| t.fixed_offset())
                .filter(mozdef::time::in_range)?
        } else {
            let zone_word = words
                .last()
                .filter(|w| {
                    matches!(**w, "UTC" | "GMT" | "Z") || w.starts_with('+') || w.starts_with('-')
                })
                .copied();
            if zone_word.is_some() {
                words.pop();
            }
            let naive = match words.as_slice() {
                // No year: `May 02 15:27:43[.000]`.
                [month, day, clock] => {
                    let (month, day) = (month_number(month)?, day.parse::<u32>().ok()?);
                    let (hour, minute, second, nanos) = clock_parts(clock)?;
                    let y = year(month, day, hour, minute, second);
                    NaiveDate::from_ymd_opt(y, month, day)?
                        .and_hms_nano_opt(hour, minute, second, nanos)?
                }
                [month, day, year_word, clock] => {
                    let (month, day) = (month_number(month)?, day.parse::<u32>().ok()?);
                    let (hour, minute, second, nanos) = clock_parts(clock)?;
                    NaiveDate::from_ymd_opt(year_word.parse().ok()?, month, day)?
                        .and_hms_nano_opt(hour, minute, second, nanos)?
                }
                _ => return None,
            };
            with_zone(naive, zone_word, zone)?
        };
    Some(Prefix {
        time,
        host,
        pri,
        tag,
    })
}

/// `Jan` … `Dec` (any case) → 1 … 12.
pub(super) fn month_number(word: &str) -> Option<u32> {
    let &[a, b, c] = word.as_bytes() else {
        return None;
    };
    let month = match &[a, b, c].map(|byte| byte.to_ascii_lowercase()) {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(month)
}

/// `15:27:43` or `15:27:43.120` → (hour, minute, second, nanoseconds).
fn clock_parts(clock: &str) -> Option<(u32, u32, u32, u32)> {
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let hour = parts.next()?.parse().ok()?;
    let minute = parts.next()?.parse().ok()?;
    let second = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let nanos = match fraction {
        Some(digits)
            if !digits.is_empty()
                && digits.len() <= 9
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
        }
        Some(_) => return None,
        None => 0,
    };
    Some((hour, minute, second, nanos))
}

fn with_zone(
    naive: NaiveDateTime,
    zone_word: Option<&str>,
    zone: Tz,
) -> Option<DateTime<FixedOffset>> {
    match zone_word {
        Some("UTC" | "GMT" | "Z") => FixedOffset::east_opt(0)?
            .from_local_datetime(&naive)
            .single(),
        Some(word) => {
            let digits: String = word[1..].chars().filter(|c| *c != ':').collect();
            let hours: i32 = digits.get(..2)?.parse().ok()?;
            let minutes: i32 = digits.get(2..4).unwrap_or("0").parse().ok()?;
            let sign = if word.starts_with('-') { -1 } else { 1 };
            FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?
                .from_local_datetime(&naive)
                .single()
        }
        None => zone
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.fixed_offset()),
    }
}

/// Reads CEF `text` into `event`; false when the header is incomplete.
pub fn parse<'a>(text: &'a str, event: &mut Draft<'a>, zone: Tz) -> bool {
    let Some(body) = text.strip_prefix("CEF:") else {
        return false;
    };
    let Some((header, extension)) = split_header(body) else {
        return false;
    };
    let [
        version,
        vendor,
        product,
        device_version,
        signature,
        name,
        severity,
    ] = header;
    set_field(event, "cefversion", version);
    set_field(event, "devicevendor", vendor);
    set_field(event, "deviceproduct", product);
    set_field(event, "deviceversion", device_version);
    set_field(event, "signatureid", signature);
    if let Some(level) = Severity::from_cef(&severity) {
        event.severity = level.as_str();
    }
    set_field(event, "cefseverity", severity);
    let named_category = category(&name);
    event.set_summary(name.clone());
    set_field(event, "name", name);

    let pairs = parse_extension(extension);
    let label = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.len() == key.len() + 5 && k.starts_with(key) && k.ends_with("Label"))
            .map(|(_, v)| v.to_lowercase())
    };
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    let mut time: Option<DateTime<FixedOffset>> = None;
    let mut category_hint: Option<String> = None;
    for (key, value) in pairs.iter().map(|(k, v)| (*k, v.clone())) {
        if let Some(base) = key.strip_suffix("Label") {
            if keys.contains(&base) {
                continue;
            }
        }
        let name: Cow<'a, str> = match label(key) {
            Some(label) if label == "requestclientapplication" || label == "useragent" => {
                Cow::Borrowed("useragent")
            }
            Some(label) => Cow::Owned(label),
            None => renamed(key),
        };
        if (key == "rt" || (key == "end" && time.is_none())) && !value.trim_fast().is_empty() {
            if let Some(at) = cef_time(&value, zone) {
                if key == "rt" || time.is_none() {
                    time = Some(at);
                }
            }
        }
        if key == "cat" {
            category_hint = Some(value.trim_fast().to_lowercase()).filter(|c| !c.is_empty());
        }
        match name.as_ref() {
            "sourceipaddress" => set_source(event, value),
            "destinationipaddress" => {
                let value = address(&value).unwrap_or(value);
                set(event, name, value);
            }
            "sourceport" | "destinationport" => match value.trim_fast().parse::<i64>() {
                Ok(port) => set(event, name, port),
                Err(_) => set(event, name, value),
            },
            "outcome" => match outcome(&value) {
                Some(success) => set(event, "success", success),
                None => set(event, "outcome", value),
            },
            _ => set(event, name, value),
        }
    }
    if let Some(at) = time {
        event.set_time(&at);
    }
    event.category = match named_category {
        Some(category) => Cow::Borrowed(category),
        None => Cow::Owned(category_hint.unwrap_or_else(|| "cef".to_string())),
    };
    true
}

/// Sets a header field, unless it is empty.
fn set_field<'a>(event: &mut Draft<'a>, key: &'static str, value: Cow<'a, str>) {
    if !value.trim_fast().is_empty() {
        set(event, key, value);
    }
}

fn category(name: &str) -> Option<&'static str> {
    let name = name.trim_fast();
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    if is("Access Control Violation") || is("Access Denied") {
        Some("authorization")
    } else if is("Account Locked") || is("Admin Account Locked") {
        Some("account lock")
    } else if is("New Privileged Account") {
        Some("account change")
    } else if is("Admin Account Pass Reset") || is("Admin Account Pass Change") {
        Some("password change")
    } else {
        None
    }
}

/// The MozDef name of an extension key.
fn renamed(key: &str) -> Cow<'_, str> {
    Cow::Borrowed(match key {
        "src" => "sourceipaddress",
        "dst" => "destinationipaddress",
        "spt" => "sourceport",
        "dpt" => "destinationport",
        "suser" => "username",
        "duser" => "targetuser",
        "shost" => "sourcehostname",
        "dhost" => "destinationhostname",
        "request" => "destinationuri",
        "requestMethod" => "requestmethod",
        "requestClientApplication" => "useragent",
        "act" => "action",
        "msg" => "message",
        other if !other.bytes().any(|b| b.is_ascii_uppercase()) => other,
        other => return Cow::Owned(other.to_lowercase()),
    })
}

fn outcome(value: &str) -> Option<bool> {
    match value.trim_fast().to_ascii_lowercase().as_str() {
        "success" | "succeeded" | "allowed" | "allow" => Some(true),
        "failure" | "failed" | "denied" | "deny" => Some(false),
        _ => None,
    }
}

/// The seven header fields (unescaped, trimmed) and the raw extension.
fn split_header(body: &str) -> Option<([Cow<'_, str>; 7], &str)> {
    let mut fields: [Cow<'_, str>; 7] = Default::default();
    let mut count = 0;
    let bytes = body.as_bytes();
    let mut start = 0;
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                escaped = true;
                i += 2;
                continue;
            }
            b'|' => {
                fields[count] = header_field(&body[start..i], escaped);
                count += 1;
                if count == 7 {
                    return Some((fields, &body[i + 1..]));
                }
                start = i + 1;
                escaped = false;
            }
            _ => {}
        }
        i += 1;
    }
    // A header with seven fields and no extension (no final pipe).
    if count == 6 {
        fields[6] = header_field(&body[start.min(body.len())..], escaped);
        return Some((fields, ""));
    }
    None
}

/// One header field: `\|` and `\\` undone (other escapes kept as written), trimmed.
fn header_field(raw: &str, escaped: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw.trim_fast());
    }
    let unescaped = undo_escapes(raw, |c| matches!(c, '|' | '\\').then_some(c));
    Cow::Owned(unescaped.trim_fast().to_string())
}

/// `raw` with each `\x` that `escape` maps replaced by what it maps to; other
/// backslashes are kept as written.
fn undo_escapes(raw: &str, escape: impl Fn(char) -> Option<char>) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(next) => match escape(next) {
                Some(unescaped) => out.push(unescaped),
                None => {
                    out.push('\\');
                    out.push(next);
                }
            },
            None => out.push('\\'),
        }
    }
    out
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

/// `key=value` pairs in order, values unescaped.
pub fn parse_extension(extension: &str) -> Vec<(&str, Cow<'_, str>)> {
    let bytes = extension.as_bytes();
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || bytes[i - 1] == b' ';
        if at_word && is_key_byte(bytes[i]) {
            let mut j = i;
            while j < bytes.len() && is_key_byte(bytes[j]) {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'=' {
                keys.push((i, j));
                i = j + 1;
                continue;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    let mut pairs = Vec::with_capacity(keys.len());
    for (n, &(start, eq)) in keys.iter().enumerate() {
        let end = keys
            .get(n + 1)
            .map(|&(next, _)| next)
            .unwrap_or(bytes.len());
        // Keys and values start and end at ASCII bytes, so these are char boundaries.
        let raw = extension
            .get(eq + 1..end)
            .unwrap_or("")
            .trim_end_matches(' ');
        let key = extension.get(start..eq).unwrap_or("");
        pairs.push((key, unescape(raw)));
    }
    pairs
}

/// An extension value: `\=`, `\\`, `\|`, `\n` and `\r` undone.
fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(undo_escapes(raw, |c| match c {
        'n' => Some('\n'),
        'r' => Some('\r'),
        '=' | '\\' | '|' => Some(c),
        _ => None,
    }))
}

/// `rt`/`end`: epoch milliseconds, or `MMM dd yyyy HH:mm:ss[.SSS] [zone]`.
fn cef_time(value: &str, zone: Tz) -> Option<DateTime<FixedOffset>> {
    let value = value.trim_fast();
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let millis: i64 = value.parse().ok()?;
        // Year 13348 (a fuzzer's rt=359067048686000) would write a time nobody reads.
        return chrono::Utc
            .timestamp_millis_opt(millis)
            .single()
            .map(|t| t.fixed_offset())
            .filter(mozdef::time::in_range);
    }
    let mut words: Vec<&str> = value.split_whitespace().collect();
    let zone_word = match words.last() {
        Some(last) if words.len() == 5 => Some(*last),
        _ => None,
    };
    if zone_word.is_some() {
        words.pop();
    }
    let text = words.join(" ");
    let naive = NaiveDateTime::parse_from_str(&text, "%b %d %Y %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%b %d %Y %H:%M:%S"))
        .ok()?;
    let offset = match zone_word {
        Some("UTC" | "GMT" | "Z" | "UT") => FixedOffset::east_opt(0)?,
        Some(word) if word.starts_with('+') || word.starts_with('-') => {
            let digits: String = word[1..].chars().filter(|c| *c != ':').collect();
            let hours: i32 = digits.get(..2)?.parse().ok()?;
            let minutes: i32 = digits.get(2..4).unwrap_or("0").parse().ok()?;
            let sign = if word.starts_with('-') { -1 } else { 1 };
            FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?
        }
        Some(word) => match word.parse::<Tz>() {
            Ok(tz) => {
                return tz
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.fixed_offset());
            }
            Err(_) => {
                return zone
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.fixed_offset());
            }
        },
        None => {
            return zone
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.fixed_offset());
        }
    };
    offset.from_local_datetime(&naive).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_times_past_year_9999_are_no_times() {
        let zone: Tz = "UTC".parse().unwrap();
        // Found by the fuzzer: year 13348 was written as `+13348-…`, which no reader
        // takes back.
        assert_eq!(cef_time("359067048686000", zone), None);
        assert!(cef_time("1795335243000", zone).is_some());
    }

    #[test]
    fn months_are_read_in_any_case_and_nothing_else_is() {
        let names = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for (n, name) in names.iter().enumerate() {
            let want = Some(n as u32 + 1);
            assert_eq!(month_number(name), want);
            assert_eq!(month_number(&name.to_uppercase()), want);
            assert_eq!(month_number(&name.to_lowercase()), want);
        }
        for word in ["", "Ja", "Janu", "Jan ", "Mai", "J\u{e9}n", "\u{e9}", "1an"] {
            assert_eq!(month_number(word), None, "{word:?}");
        }
    }

    #[test]
    fn extension_values_run_to_the_next_key() {
        let pairs = parse_extension(
            r"src=10.0.0.1 msg=a message with spaces and a=b inside act=blocked x\=y=1 path=C:\\dir cs1Label=Rule Name cs1=r1",
        );
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_ref())
        };
        assert_eq!(get("src"), Some("10.0.0.1"));
        assert_eq!(get("msg"), Some("a message with spaces and"));
        assert_eq!(get("a"), Some("b inside"));
        assert_eq!(get("act"), Some("blocked x=y=1"));
        assert_eq!(get("path"), Some(r"C:\dir"));
        assert_eq!(get("cs1Label"), Some("Rule Name"));
        assert_eq!(get("cs1"), Some("r1"));
    }

    #[test]
    fn header_escapes_are_undone() {
        let (header, ext) =
            split_header(r"0|Sec\|urity|threat\\manager|1.0|100|worm|10|src=1").unwrap();
        assert_eq!(header[1], "Sec|urity");
        assert_eq!(header[2], r"threat\manager");
        assert_eq!(header[6], "10");
        assert_eq!(ext, "src=1");
        assert!(split_header("0|a|b|c").is_none());
        let (header, ext) = split_header("0|a|b|c|d|e|5").unwrap();
        assert_eq!((header[6].as_ref(), ext), ("5", ""));
    }

    #[test]
    fn times_are_read_in_both_shapes() {
        let utc: Tz = "UTC".parse().unwrap();
        let t = |s| cef_time(s, utc).map(|t| mozdef::time::format_fixed(&t));
        assert_eq!(
            t("1795335243000").as_deref(),
            Some("2026-11-22T08:14:03+00:00")
        );
        assert_eq!(
            t("Nov 22 2026 08:14:03").as_deref(),
            Some("2026-11-22T08:14:03+00:00")
        );
        assert_eq!(
            t("Nov 22 2026 08:14:03.120 UTC").as_deref(),
            Some("2026-11-22T08:14:03.120000+00:00")
        );
        assert_eq!(
            t("Nov 22 2026 09:14:03 +0100").as_deref(),
            Some("2026-11-22T09:14:03+01:00")
        );
        assert_eq!(t("soon"), None);
    }
}
