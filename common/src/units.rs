//! Sizes and durations in config files, with or without units.
//!
//! A size key (`*_bytes`) takes an integer (bytes) or a string with a unit:
//! `"256MiB"`, `"64 KiB"`, `"1.5GB"`. Units: `B`; `KB` `MB` `GB` `TB` (powers of 1000,
//! `kB` too); `KiB` `MiB` `GiB` `TiB` (powers of 1024). A duration key (`*_ms`, `*_secs`)
//! takes an integer in the unit its name says, or a string with units: `"100ms"`,
//! `"60s"`, `"5m"`, `"1h30m"`, `"7d"` (`ms`, `s`, `m`, `h`, `d`). The keys keep their
//! names, so an integer means what it always did.
//!
//! Used as `#[serde(deserialize_with = "picket_common::units::bytes")]` on the raw
//! config field: the checked settings keep their integer types.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A size with a unit, in bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let scale: u64 = match unit {
        "" | "B" | "b" => 1,
        "KB" | "kB" | "kb" => 1000,
        "MB" | "mb" => 1000 * 1000,
        "GB" | "gb" => 1000 * 1000 * 1000,
        "TB" | "tb" => 1000 * 1000 * 1000 * 1000,
        "KiB" | "kiB" | "kib" => 1 << 10,
        "MiB" | "mib" => 1 << 20,
        "GiB" | "gib" => 1 << 30,
        "TiB" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use bytes, or a number with B, KB, MB, GB, TB (×1000) or KiB, MiB, GiB, TiB (×1024), as \"256MiB\""
            ));
        }
    };
    let not_a_number = || format!("{text:?} is not a size: no number before the unit");
    if number.is_empty() {
        return Err(not_a_number());
    }
    // Exactly, in integers: "4.1MB" is 4,100,000 bytes, not 4099999.9999999995.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') {
        return Err(not_a_number());
    }
    let whole: u128 = whole.parse().map_err(|_| not_a_number())?;
    let digits = fraction.trim_end_matches('0');
    let denominator = 10u128
        .checked_pow(u32::try_from(digits.len()).unwrap_or(u32::MAX))
        .ok_or_else(not_a_number)?;
    let numerator: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| not_a_number())?
    };
    let scale = u128::from(scale);
    let part = numerator.checked_mul(scale).ok_or_else(not_a_number)?;
    let bytes = (part % denominator == 0)
        .then(|| whole.checked_mul(scale)?.checked_add(part / denominator))
        .flatten()
        .and_then(|bytes| u64::try_from(bytes).ok());
    bytes.ok_or_else(|| format!("{text:?} is not a whole number of bytes under 2^64"))
}

/// A duration with units (`"1h30m"`, `"250ms"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let whole = text.trim();
    let wrong = || {
        format!(
            "{whole:?} is not a duration: use a number with ms, s, m, h or d, as \"60s\" or \"1h30m\""
        )
    };
    let mut rest = whole;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(wrong());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(wrong());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| wrong())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let millis: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 60 * 60 * 1000,
            "d" => 24 * 60 * 60 * 1000,
            _ => return Err(wrong()),
        };
        rest = rest[unit_len..].trim_start();
        let part = number
            .checked_mul(millis)
            .map(Duration::from_millis)
            .ok_or_else(wrong)?;
        total = total.checked_add(part).ok_or_else(wrong)?;
    }
    Ok(total)
}

/// What a unit-taking key's integer means.
#[derive(Clone, Copy)]
enum Plain {
    Bytes,
    Millis,
    Secs,
}

struct UnitVisitor(Plain);

impl Visitor<'_> for UnitVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Plain::Bytes => f.write_str("a size: bytes, or a string such as \"256MiB\""),
            Plain::Millis => {
                f.write_str("a duration: milliseconds, or a string such as \"500ms\" or \"2s\"")
            }
            Plain::Secs => {
                f.write_str("a duration: seconds, or a string such as \"60s\" or \"5m\"")
            }
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::custom(format!("{value} is negative")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        match self.0 {
            Plain::Bytes => parse_bytes(text).map_err(E::custom),
            Plain::Millis => {
                let duration = parse_duration(text).map_err(E::custom)?;
                u64::try_from(duration.as_millis()).map_err(E::custom)
            }
            Plain::Secs => {
                let duration = parse_duration(text).map_err(E::custom)?;
                if duration.subsec_nanos() != 0 {
                    return Err(E::custom(format!("{text:?}: this key takes whole seconds")));
                }
                Ok(duration.as_secs())
            }
        }
    }
}

/// A `*_bytes` key as `u64`.
pub fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(UnitVisitor(Plain::Bytes))
}

/// A `*_bytes` key as `usize`.
pub fn bytes_usize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let bytes = bytes(deserializer)?;
    usize::try_from(bytes).map_err(de::Error::custom)
}

/// An optional `*_bytes` key.
pub fn bytes_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    bytes(deserializer).map(Some)
}

/// A `*_ms` key as milliseconds.
pub fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(UnitVisitor(Plain::Millis))
}

/// A `*_secs` key as seconds.
pub fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(UnitVisitor(Plain::Secs))
}

/// An optional `*_secs` key.
pub fn secs_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    secs(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        for (text, bytes) in [
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("64KiB", 64 * 1024),
            ("64 KiB", 64 * 1024),
            ("256MiB", 256 << 20),
            ("2GiB", 2 << 30),
            ("1TiB", 1 << 40),
            ("10kB", 10_000),
            ("10KB", 10_000),
            ("3MB", 3_000_000),
            ("1.5GB", 1_500_000_000),
            ("1.5KiB", 1536),
            ("4GB", 4_000_000_000),
            ("4.1MB", 4_100_000),
            ("0.5KiB", 512),
            ("2.50MB", 2_500_000),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
        for wrong in [
            "",
            "MiB",
            "12 apples",
            "1.3B",
            "-1",
            "1e9",
            "99999999999TiB",
        ] {
            assert!(parse_bytes(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn durations_take_units_and_sequences_of_them() {
        for (text, millis) in [
            ("250ms", 250),
            ("60s", 60_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            ("7d", 604_800_000),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for wrong in ["", "60", "s", "5 minutes", "1.5h", "-1s", "3w"] {
            assert!(parse_duration(wrong).is_err(), "{wrong}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Keys {
        #[serde(deserialize_with = "bytes")]
        max_bytes: u64,
        #[serde(deserialize_with = "millis")]
        sync_interval_ms: u64,
        #[serde(deserialize_with = "secs")]
        timeout_secs: u64,
        #[serde(default, deserialize_with = "bytes_option")]
        cap_bytes: Option<u64>,
    }

    #[test]
    fn keys_take_their_old_integers_or_strings_with_units() {
        let keys: Keys =
            toml::from_str("max_bytes = 1024\nsync_interval_ms = 100\ntimeout_secs = 30\n")
                .unwrap();
        assert_eq!(
            (keys.max_bytes, keys.sync_interval_ms, keys.timeout_secs),
            (1024, 100, 30)
        );
        assert_eq!(keys.cap_bytes, None);
        let keys: Keys = toml::from_str(
            "max_bytes = \"256MiB\"\nsync_interval_ms = \"1s\"\ntimeout_secs = \"2m\"\ncap_bytes = \"1GB\"\n",
        )
        .unwrap();
        assert_eq!(
            (keys.max_bytes, keys.sync_interval_ms, keys.timeout_secs),
            (256 << 20, 1000, 120)
        );
        assert_eq!(keys.cap_bytes, Some(1_000_000_000));
        for (wrong, says) in [
            (
                "max_bytes = \"256 megs\"\nsync_interval_ms = 1\ntimeout_secs = 1\n",
                "not a size",
            ),
            (
                "max_bytes = 1\nsync_interval_ms = \"1 sec\"\ntimeout_secs = 1\n",
                "not a duration",
            ),
            (
                "max_bytes = 1\nsync_interval_ms = 1\ntimeout_secs = \"1500ms\"\n",
                "whole seconds",
            ),
            (
                "max_bytes = -5\nsync_interval_ms = 1\ntimeout_secs = 1\n",
                "negative",
            ),
            (
                "max_bytes = true\nsync_interval_ms = 1\ntimeout_secs = 1\n",
                "a size",
            ),
        ] {
            let error = toml::from_str::<Keys>(wrong).unwrap_err().to_string();
            assert!(error.contains(says), "{wrong}: {error}");
        }
    }
}
