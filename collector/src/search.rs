//! Reading the time bounds of a search as operators write them: `now`, `now-15m`, a
//! bare duration (`1h`, `7d`: that long ago), ISO 8601, or epoch seconds/milliseconds.

use chrono::{DateTime, Duration, Utc};
use thiserror::Error;

/// A time or duration that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("{0:?} has no unit (s, m, h, d, w)")]
    NoUnit(String),
    #[error("{0:?} is not a duration")]
    NotDuration(String),
    #[error("{0:?} has an unknown unit (s, m, h, d, w)")]
    UnknownUnit(String),
    #[error("{0:?} is too long")]
    TooLong(String),
    #[error("{0:?} is zero")]
    Zero(String),
    #[error("{0:?} is not a time (use ISO 8601, epoch seconds, now-1h or a duration such as 15m)")]
    NotTime(String),
}

/// Reads `text` as an instant, relative to `now` where it says so.
pub fn parse_time_bound(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        return parse_duration(ago).map(|d| now - d);
    }
    if let Ok(ago) = parse_duration(text) {
        return Ok(now - ago);
    }
    mozdef::time::parse_str(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| TimeError::NotTime(text.to_string()))
}

/// `90s`, `15m`, `1h`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| TimeError::NoUnit(text.to_string()))?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits
        .parse()
        .map_err(|_| TimeError::NotDuration(text.to_string()))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(TimeError::UnknownUnit(text.to_string())),
    };
    n.checked_mul(seconds)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::seconds)
        .ok_or_else(|| TimeError::TooLong(text.to_string()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn bounds_read_as_operators_write_them() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let cases = [
            ("now", "2026-11-24T12:00:00+00:00"),
            ("now-15m", "2026-11-24T11:45:00+00:00"),
            ("1h", "2026-11-24T11:00:00+00:00"),
            ("7d", "2026-11-17T12:00:00+00:00"),
            ("2026-11-01T00:00:00Z", "2026-11-01T00:00:00+00:00"),
            ("1795335243", "2026-11-22T08:14:03+00:00"),
        ];
        for (text, want) in cases {
            let got = parse_time_bound(text, now).map(mozdef::time::format_utc);
            assert_eq!(got.as_deref(), Ok(want), "{text}");
        }
        for bad in ["soon", "5x", "now-", "h", "99999999999w"] {
            assert!(parse_time_bound(bad, now).is_err(), "{bad}");
        }
    }
}
