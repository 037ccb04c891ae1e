//! How many lines each parser read, and how many it was handed and did not recognise:
//! the agent's `/metrics` per parser. One [`ParseCounts`] per input, shared by that
//! input's [`crate::LineParser`]s (an input thread's lines touch only its own counters).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::PARSER_IDS;

/// Per parser (in [`PARSER_IDS`] order): lines it read, and lines it was handed (by
/// program, or for CEF by the text) that matched none of its shapes and became `syslog`
/// events.
#[derive(Debug, Default)]
pub struct ParseCounts {
    parsed: [AtomicU64; PARSER_IDS.len()],
    unrecognised: [AtomicU64; PARSER_IDS.len()],
}

impl ParseCounts {
    /// A line `parser` read.
    pub(crate) fn parsed(&self, parser: &str) {
        self.parsed[slot(parser)].fetch_add(1, Ordering::Relaxed);
    }

    /// A line handed to `parser` that it did not recognise.
    pub(crate) fn unrecognised(&self, parser: &str) {
        self.unrecognised[slot(parser)].fetch_add(1, Ordering::Relaxed);
    }

    /// (parser id, lines it read, lines it did not recognise), every parser.
    pub fn snapshot(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        PARSER_IDS.iter().enumerate().map(|(i, id)| {
            (
                *id,
                self.parsed[i].load(Ordering::Relaxed),
                self.unrecognised[i].load(Ordering::Relaxed),
            )
        })
    }
}

/// The index of `parser` in [`PARSER_IDS`] (`syslog`'s for an unknown id).
fn slot(parser: &str) -> usize {
    PARSER_IDS.iter().position(|id| *id == parser).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parser_has_its_own_counters() {
        let counts = ParseCounts::default();
        for id in PARSER_IDS {
            counts.parsed(id);
        }
        counts.parsed("sshd");
        counts.unrecognised("sudo");
        for (id, parsed, unrecognised) in counts.snapshot() {
            assert_eq!(parsed, if id == "sshd" { 2 } else { 1 }, "{id}");
            assert_eq!(unrecognised, u64::from(id == "sudo"), "{id}");
        }
    }

    #[test]
    fn a_parser_counts_what_it_read_and_what_it_did_not_recognise() {
        use crate::host::HostIdentity;
        use crate::{LineContext, LineParser, TimeZoneChoice};
        let counts = std::sync::Arc::new(ParseCounts::default());
        let parser = LineParser::new(
            HostIdentity::named("h.example.org"),
            TimeZoneChoice(chrono_tz::Tz::UTC),
        )
        .counting(std::sync::Arc::clone(&counts));
        let context = LineContext {
            source: "t",
            source_identity: "t",
            offset: 0,
            read_at: "2026-12-07T10:00:00Z".parse().unwrap(),
        };
        for line in [
            "Dec  7 09:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2",
            "Dec  7 09:00:01 h sshd[1]: Something sshd never wrote",
            "Dec  7 09:00:02 h cron[2]: (root) CMD (true)",
            "Dec  7 09:00:03 h x[3]: CEF:0|only|three",
        ] {
            parser.parse(line.as_bytes(), &context);
        }
        let got: Vec<_> = counts.snapshot().filter(|c| c.1 + c.2 > 0).collect();
        assert_eq!(
            got,
            [("syslog", 3, 0), ("sshd", 1, 1), ("cef", 0, 1)],
            "cron has no parser: a syslog event, no failure"
        );
    }
}
