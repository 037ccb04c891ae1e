//! Severity: the RFC 5424 names in capitals, from a syslog PRI, a CEF severity, or the
//! free text other shippers send.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 5424 severities, most severe first; the discriminant is the syslog code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    /// The name as written in events: `EMERGENCY` … `DEBUG`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Emergency => "EMERGENCY",
            Severity::Alert => "ALERT",
            Severity::Critical => "CRITICAL",
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Info => "INFO",
            Severity::Debug => "DEBUG",
        }
    }

    /// From the severity part of a syslog PRI (0–7); `None` past 7.
    pub fn from_syslog_code(code: u8) -> Option<Severity> {
        Some(match code {
            0 => Severity::Emergency,
            1 => Severity::Alert,
            2 => Severity::Critical,
            3 => Severity::Error,
            4 => Severity::Warning,
            5 => Severity::Notice,
            6 => Severity::Info,
            7 => Severity::Debug,
            _ => return None,
        })
    }

    /// From a whole PRI value (`<34>` → 34 → facility 4, severity 2); `None` past 191.
    pub fn from_pri(pri: u32) -> Option<Severity> {
        if pri > 191 {
            return None;
        }
        Severity::from_syslog_code((pri % 8) as u8)
    }

    /// From a CEF severity: 0–3 `INFO`, 4–6 `WARNING`, 7–8 `ERROR`, 9–10 `CRITICAL`, and
    /// the words `Low`, `Medium`, `High`, `Very-High` likewise (any case).
    pub fn from_cef(text: &str) -> Option<Severity> {
        let text = text.trim();
        if let Ok(n) = text.parse::<u8>() {
            return match n {
                0..=3 => Some(Severity::Info),
                4..=6 => Some(Severity::Warning),
                7..=8 => Some(Severity::Error),
                9..=10 => Some(Severity::Critical),
                _ => None,
            };
        }
        match text.to_ascii_lowercase().as_str() {
            "unknown" | "low" => Some(Severity::Info),
            "medium" => Some(Severity::Warning),
            "high" => Some(Severity::Error),
            "very-high" | "very high" | "veryhigh" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// From the names and numbers shippers use (`err`, `warn`, `informational`, `3`, …),
    /// any case. `None` when the text is none of them.
    pub fn from_name(text: &str) -> Option<Severity> {
        let text = text.trim();
        if let Ok(n) = text.parse::<u8>() {
            return Severity::from_syslog_code(n);
        }
        Some(match text.to_ascii_lowercase().as_str() {
            "emergency" | "emerg" | "panic" => Severity::Emergency,
            "alert" => Severity::Alert,
            "critical" | "crit" | "fatal" => Severity::Critical,
            "error" | "err" => Severity::Error,
            "warning" | "warn" => Severity::Warning,
            "notice" => Severity::Notice,
            "info" | "informational" | "information" => Severity::Info,
            "debug" | "trace" => Severity::Debug,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_maps_to_rfc5424_names() {
        let cases = [
            (0, "EMERGENCY"),
            (34, "CRITICAL"),
            (38, "INFO"),
            (86, "INFO"),
            (84, "WARNING"),
            (191, "DEBUG"),
            (13, "NOTICE"),
            (11, "ERROR"),
            (9, "ALERT"),
        ];
        for (pri, name) in cases {
            assert_eq!(
                Severity::from_pri(pri).map(Severity::as_str),
                Some(name),
                "pri {pri}"
            );
        }
        assert_eq!(Severity::from_pri(192), None);
        assert_eq!(Severity::from_pri(999), None);
    }

    #[test]
    fn cef_severity_maps_by_range_and_word() {
        let cases = [
            ("0", Some("INFO")),
            ("3", Some("INFO")),
            ("4", Some("WARNING")),
            ("6", Some("WARNING")),
            ("7", Some("ERROR")),
            ("8", Some("ERROR")),
            ("9", Some("CRITICAL")),
            ("10", Some("CRITICAL")),
            ("11", None),
            ("Low", Some("INFO")),
            ("Medium", Some("WARNING")),
            ("High", Some("ERROR")),
            ("Very-High", Some("CRITICAL")),
            ("very-high", Some("CRITICAL")),
            ("bogus", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                Severity::from_cef(text).map(Severity::as_str),
                want,
                "cef {text:?}"
            );
        }
    }

    #[test]
    fn names_and_abbreviations_are_recognised() {
        let cases = [
            ("err", Some("ERROR")),
            ("Warn", Some("WARNING")),
            ("informational", Some("INFO")),
            ("CRIT", Some("CRITICAL")),
            ("emerg", Some("EMERGENCY")),
            ("3", Some("ERROR")),
            ("debug", Some("DEBUG")),
            ("8", None),
            ("loud", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                Severity::from_name(text).map(Severity::as_str),
                want,
                "name {text:?}"
            );
        }
    }

    #[test]
    fn serializes_as_capitalised_name() {
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"WARNING\""
        );
    }
}
