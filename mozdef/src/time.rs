//! Timestamps: reading every shape shippers send (ISO 8601 in its common spellings,
//! epoch seconds, milliseconds, microseconds or nanoseconds, as numbers or strings) and
//! writing them as MozDef does: `YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM`, microseconds only
//! when non-zero (Python's `isoformat`), `+00:00` rather than `Z` in UTC.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde_json::Value;
use thiserror::Error;

/// A timestamp that could not be read; the text is what was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unreadable timestamp {text:?}")]
pub struct TimeError {
    pub text: String,
}

/// Writes an instant in UTC the way `utctimestamp` and `receivedtimestamp` hold it.
pub fn format_utc(at: DateTime<Utc>) -> String {
    format_fixed(&at.fixed_offset())
}

/// Writes an instant with its own offset, the way `timestamp` holds it.
pub fn format_fixed(at: &DateTime<FixedOffset>) -> String {
    let mut buf = [0u8; 40];
    let len = write_fixed(at, &mut buf);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// [`format_fixed`] into `out` (ASCII), returning the length. Hand-written rather than
/// through chrono's `format`: it runs twice per event on the agent's hot path, and
/// strftime parsing dominated the parse benchmark.
pub fn write_fixed(at: &DateTime<FixedOffset>, out: &mut [u8; 40]) -> usize {
    let local = at.naive_local();
    // A leap second is written as :60, as chrono does.
    let nanos = at.nanosecond();
    let wall = Wall {
        year: local.year(),
        month: local.month(),
        day: local.day(),
        hour: local.hour(),
        minute: local.minute(),
        second: local.second() + nanos / 1_000_000_000,
        micros: (nanos % 1_000_000_000) / 1_000,
        offset_secs: at.offset().local_minus_utc(),
    };
    match write_wall(&wall, out) {
        Some(len) => len,
        None => {
            // Outside what four digits hold; chrono writes a signed, longer year.
            let text = at.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
            let len = text.len().min(out.len());
            out[..len].copy_from_slice(&text.as_bytes()[..len]);
            len
        }
    }
}

/// A wall-clock time and its zone's offset, the parts a timestamp is written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wall {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    /// 60 for a leap second.
    pub second: u32,
    pub micros: u32,
    /// Local time minus UTC.
    pub offset_secs: i32,
}

/// Writes `wall` as [`write_fixed`] does, from its parts (no calendar arithmetic):
/// `None` when a part is out of range (a year outside 0..=9999, a month 13).
pub fn write_wall(wall: &Wall, out: &mut [u8; 40]) -> Option<usize> {
    let in_range = (0..=9999).contains(&wall.year)
        && wall.month <= 99
        && wall.day <= 99
        && wall.hour <= 99
        && wall.minute <= 99
        && wall.second <= 99
        && wall.micros < 1_000_000
        && wall.offset_secs.unsigned_abs() < 100 * 3600;
    if !in_range {
        return None;
    }
    let year = wall.year as u32;
    out[0..2].copy_from_slice(two_digits(year / 100));
    out[2..4].copy_from_slice(two_digits(year % 100));
    out[4] = b'-';
    out[5..7].copy_from_slice(two_digits(wall.month));
    out[7] = b'-';
    out[8..10].copy_from_slice(two_digits(wall.day));
    out[10] = b'T';
    out[11..13].copy_from_slice(two_digits(wall.hour));
    out[13] = b':';
    out[14..16].copy_from_slice(two_digits(wall.minute));
    out[16] = b':';
    out[17..19].copy_from_slice(two_digits(wall.second));
    let mut at = 19;
    if wall.micros != 0 {
        out[19] = b'.';
        out[20..22].copy_from_slice(two_digits(wall.micros / 10_000));
        out[22..24].copy_from_slice(two_digits(wall.micros / 100 % 100));
        out[24..26].copy_from_slice(two_digits(wall.micros % 100));
        at = 26;
    }
    out[at] = if wall.offset_secs < 0 { b'-' } else { b'+' };
    let minutes = wall.offset_secs.unsigned_abs() / 60;
    out[at + 1..at + 3].copy_from_slice(two_digits(minutes / 60));
    out[at + 3] = b':';
    out[at + 4..at + 6].copy_from_slice(two_digits(minutes % 60));
    Some(at + 6)
}

/// `n` (below 100) as two ASCII digits.
fn two_digits(n: u32) -> &'static [u8] {
    crate::eventid::digit_pair(n as usize)
}

/// Reads a timestamp from a JSON value: a string (ISO 8601 or digits) or a number
/// (epoch seconds, milliseconds, microseconds or nanoseconds, told apart by size).
pub fn parse_value(value: &Value) -> Result<DateTime<FixedOffset>, TimeError> {
    match value {
        Value::String(s) => parse_str(s),
        Value::Number(n) => {
            let parsed = if let Some(i) = n.as_i64() {
                from_epoch_i128(i as i128)
            } else if let Some(u) = n.as_u64() {
                from_epoch_i128(u as i128)
            } else {
                n.as_f64().and_then(from_epoch_f64)
            };
            parsed.ok_or_else(|| TimeError {
                text: n.to_string(),
            })
        }
        other => Err(TimeError {
            text: other.to_string(),
        }),
    }
}

/// Reads a timestamp from text: ISO 8601 / RFC 3339 (with `T` or a space, any fraction,
/// `Z`, `+hh:mm`, `+hhmm` or `+hh`; no offset means UTC), RFC 2822, a bare date, or epoch
/// digits.
pub fn parse_str(text: &str) -> Result<DateTime<FixedOffset>, TimeError> {
    let trimmed = text.trim();
    let err = || TimeError {
        text: text.to_string(),
    };
    if trimmed.is_empty() {
        return Err(err());
    }
    let numeric = trimmed
        .strip_prefix('-')
        .unwrap_or(trimmed)
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.');
    if numeric {
        let parsed = if trimmed.contains('.') {
            trimmed.parse::<f64>().ok().and_then(from_epoch_f64)
        } else {
            trimmed.parse::<i128>().ok().and_then(from_epoch_i128)
        };
        return parsed.ok_or_else(err);
    }
    parse_iso(trimmed)
        .or_else(|| DateTime::parse_from_rfc2822(trimmed).ok())
        .filter(in_range)
        .ok_or_else(err)
}

/// A BSD syslog date without a year or zone (`Dec  3 12:00:03`, as syslog-ng's `DATE`
/// and rsyslog's traditional templates write it): read as UTC, in the latest year that
/// puts it at most 31 days after `near` (a December date read in January is last
/// year's; a sender a little ahead at New Year keeps its new year).
pub fn parse_bsd(text: &str, near: DateTime<Utc>) -> Option<DateTime<FixedOffset>> {
    let mut words = text.split_whitespace();
    let month = match words.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let day: u32 = words.next()?.parse().ok()?;
    let clock = chrono::NaiveTime::parse_from_str(words.next()?, "%H:%M:%S%.f").ok()?;
    if words.next().is_some() {
        return None;
    }
    let year = near.year();
    let latest = near + chrono::Duration::days(31);
    (year - 1..=year + 1)
        .rev()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .map(|date| Utc.from_utc_datetime(&date.and_time(clock)))
        .find(|at| *at <= latest)
        .map(|at| at.fixed_offset())
}

/// Years MozDef's format can write with four digits (and read back): a time outside
/// them is no time.
pub fn in_range(at: &DateTime<FixedOffset>) -> bool {
    (0..=9999).contains(&at.naive_utc().year())
}

fn parse_iso(text: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at);
    }
    let normalized: String = text.replacen(' ', "T", 1);
    let (body, offset) = split_offset(&normalized)?;
    let naive = parse_naive(body)?;
    offset.from_local_datetime(&naive).single()
}

/// Splits `2026-11-22T09:14:03.12+0100` into the local part and its offset (UTC when
/// the text has none).
fn split_offset(text: &str) -> Option<(&str, FixedOffset)> {
    let utc = FixedOffset::east_opt(0)?;
    if let Some(body) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((body, utc));
    }
    if let Some(body) = text
        .strip_suffix("UTC")
        .or_else(|| text.strip_suffix("GMT"))
    {
        return Some((body.trim_end(), utc));
    }
    // The offset starts at the last '+' or '-' after the time's 'T'.
    let t = match text.find('T') {
        Some(t) => t,
        None => return Some((text, utc)),
    };
    let tail = &text[t..];
    let sign_at = match tail.rfind(['+', '-']) {
        Some(i) => t + i,
        None => return Some((text, utc)),
    };
    let (body, zone) = text.split_at(sign_at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?;
    Some((body.trim_end(), offset))
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%dT%H:%M:%S%.f",
        "%Y%m%dT%H%M%S%.f",
    ];
    for format in FORMATS {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// Epoch integers: seconds below 10^11 (year 5138), then milliseconds below 10^14,
/// microseconds below 10^17, nanoseconds above.
fn from_epoch_i128(n: i128) -> Option<DateTime<FixedOffset>> {
    let magnitude = n.unsigned_abs();
    let nanos: i128 = if magnitude < 100_000_000_000 {
        n * 1_000_000_000
    } else if magnitude < 100_000_000_000_000 {
        n * 1_000_000
    } else if magnitude < 100_000_000_000_000_000 {
        n * 1_000
    } else {
        n
    };
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    Utc.timestamp_opt(secs, sub)
        .single()
        .map(|at| at.fixed_offset())
        .filter(in_range)
}

fn from_epoch_f64(n: f64) -> Option<DateTime<FixedOffset>> {
    if !n.is_finite() {
        return None;
    }
    let magnitude = n.abs();
    let scale = if magnitude < 1e11 {
        1.0
    } else if magnitude < 1e14 {
        1e-3
    } else if magnitude < 1e17 {
        1e-6
    } else {
        1e-9
    };
    let secs = n * scale;
    let whole = secs.floor();
    let frac = ((secs - whole) * 1e6).round() as u32 * 1_000;
    if whole.abs() > 1e12 {
        return None;
    }
    Utc.timestamp_opt(whole as i64, frac.min(999_999_000))
        .single()
        .map(|at| at.fixed_offset())
        .filter(in_range)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn utc(value: Value) -> Result<String, TimeError> {
        parse_value(&value).map(|at| format_utc(at.with_timezone(&Utc)))
    }

    #[test]
    fn formats_as_mozdef_does() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 8, 14, 3).unwrap();
        assert_eq!(format_utc(at), "2026-11-22T08:14:03+00:00");
        let at = at + chrono::Duration::microseconds(120_000);
        assert_eq!(format_utc(at), "2026-11-22T08:14:03.120000+00:00");
        let plus_one = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            format_fixed(&at.with_timezone(&plus_one)),
            "2026-11-22T09:14:03.120000+01:00"
        );
        // Nanoseconds are cut to microseconds, never rounded up into the next second.
        let at = Utc.timestamp_opt(1, 999_999_999).unwrap();
        assert_eq!(format_utc(at), "1970-01-01T00:00:01.999999+00:00");
        let west = FixedOffset::west_opt(9 * 3600 + 30 * 60).unwrap();
        let at = west.with_ymd_and_hms(987, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_fixed(&at), "0987-01-02T03:04:05-09:30");
        // Agrees with chrono's own formatting over a spread of instants.
        for secs in (0..4_000_000_000i64).step_by(97_654_321) {
            for micros in [0u32, 1, 120_000, 999_999] {
                let at = Utc.timestamp_opt(secs, micros * 1000).unwrap();
                for offset in [0, 3600, -5 * 3600, 5 * 3600 + 45 * 60] {
                    let at = at.with_timezone(&FixedOffset::east_opt(offset).unwrap());
                    let chrono = if micros == 0 {
                        at.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
                    } else {
                        at.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
                    };
                    assert_eq!(format_fixed(&at), chrono);
                }
            }
        }
    }

    #[test]
    fn reads_every_supported_shape() {
        let want = "2026-11-22T08:14:03+00:00";
        let want_frac = "2026-11-22T08:14:03.120000+00:00";
        let cases: Vec<(Value, &str)> = vec![
            (json!("2026-11-22T08:14:03Z"), want),
            (json!("2026-11-22T08:14:03+00:00"), want),
            (json!("2026-11-22T09:14:03+01:00"), want),
            (json!("2026-11-22T09:14:03+0100"), want),
            (json!("2026-11-22T09:14:03+01"), want),
            (json!("2026-11-22T03:14:03-05:00"), want),
            (json!("2026-11-22 08:14:03"), want),
            (json!("2026-11-22T08:14:03"), want),
            (json!("2026-11-22 08:14:03 UTC"), want),
            (json!("2026-11-22T08:14:03.12Z"), want_frac),
            (json!("2026-11-22T08:14:03.120000789Z"), want_frac),
            (json!("2026-11-22 09:14:03.12+01:00"), want_frac),
            (json!("Sun, 22 Nov 2026 08:14:03 +0000"), want),
            (json!(1_795_335_243), want),
            (json!("1795335243"), want),
            (json!(1_795_335_243.12), want_frac),
            (json!(1_795_335_243_120_i64), want_frac),
            (json!("1795335243120"), want_frac),
            (json!(1_795_335_243_120_000_i64), want_frac),
            (json!(1_795_335_243_120_000_000_i64), want_frac),
            (json!("1795335243120000000"), want_frac),
        ];
        for (input, expected) in cases {
            assert_eq!(utc(input.clone()).as_deref(), Ok(expected), "input {input}");
        }
        assert_eq!(
            utc(json!("2026-11-22")).as_deref(),
            Ok("2026-11-22T00:00:00+00:00")
        );
    }

    #[test]
    fn keeps_the_offset_it_was_given() {
        let at = parse_str("2026-11-22T09:14:03.120000+01:00").unwrap();
        assert_eq!(format_fixed(&at), "2026-11-22T09:14:03.120000+01:00");
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for input in [
            json!("yesterday"),
            json!(""),
            json!("2026-13-45T00:00:00Z"),
            json!("Feb 30 25:61:00"),
            json!("2026-11-22T08:14:03+25:00"),
            json!(true),
            json!(null),
            json!({"a": 1}),
            json!(f64::MAX),
            json!("99999999999999999999999999999"),
            json!("1.2.3"),
        ] {
            assert!(
                utc(input.clone()).is_err(),
                "input {input} should not parse"
            );
        }
    }
}
