//! `picket-agent parse --unrecognized`: the shapes of the lines that fell to `syslog`.
//!
//! A shape is a line's program and its message with what varies from line to line masked:
//! addresses (`<ip>`), key fingerprints (`<fingerprint>`), long hex ids (`<hex>`) and
//! numbers (`N`). Lines of one shape are counted together and the masked message is the
//! shape's example, so the report carries no address, port, pid or session id of the host
//! it ran on and can be pasted into an issue.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

use mozdef::Event;
use regex::{Captures, Regex};

use super::{SYSLOG_PARSER, program_parser};

/// Distinct shapes a report keeps; lines of further shapes are only counted, so a file of
/// random text cannot make the report grow without bound.
pub const MAX_SHAPES: usize = 10_000;
/// Longest masked message kept as a shape (in bytes, cut at a character boundary).
pub const MAX_SHAPE_LEN: usize = 240;

/// What was masked, leftmost first; at one position the first alternative wins, so a
/// clock (`00:17:22`) is read as numbers before it can be read as an IPv6 address.
static MASK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<clock>\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b)",
        r"|(?P<fingerprint>\b(?:SHA256|SHA1|MD5):[A-Za-z0-9+/=:]+)",
        r"|(?P<ip4>\b\d{1,3}(?:\.\d{1,3}){3}\b)",
        r"|(?P<ip6>(?:\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})(?:%[0-9A-Za-z]+)?)",
        r"|(?P<hex>\b(?:0x)?[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*[A-Fa-f][0-9A-Fa-f]*\b|\b[0-9A-Fa-f]*[A-Fa-f][0-9A-Fa-f]*[0-9][0-9A-Fa-f]*\b)",
        r"|(?P<number>\d+)",
    ))
    .expect("the mask pattern is valid")
});

/// `text` with addresses, fingerprints, hex ids and numbers masked (see the module).
pub fn mask(text: &str) -> String {
    MASK.replace_all(text, |caps: &Captures<'_>| {
        if caps.name("clock").is_some() {
            "N:N:N"
        } else if caps.name("fingerprint").is_some() {
            "<fingerprint>"
        } else if caps.name("ip4").is_some() || caps.name("ip6").is_some() {
            "<ip>"
        } else if let Some(hex) = caps.name("hex") {
            // A short word of hex letters and digits (`ab12`) is as likely a name as an
            // id; only long ones are masked whole, the digits of short ones as numbers.
            if hex.as_str().len() >= 8 {
                "<hex>"
            } else {
                return mask_digits(hex.as_str());
            }
        } else {
            "N"
        }
        .to_owned()
    })
    .into_owned()
}

fn mask_digits(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut in_number = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// Lines counted by the report, by shape.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines read (blank lines are not lines).
    pub lines: u64,
    /// Lines that fell to `syslog`.
    pub unrecognized: u64,
    /// Unrecognised lines of shapes past [`MAX_SHAPES`].
    pub beyond_limit: u64,
    shapes: HashMap<(String, String), u64>,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    pub count: u64,
    pub program: String,
    /// Whether Picket has a parser for the program (then the shape is a message its
    /// table lacks; otherwise the whole program is unknown to Picket).
    pub program_has_parser: bool,
    /// The masked message.
    pub example: String,
}

impl Report {
    /// Counts `event`, the event the parser made of one line.
    pub fn add(&mut self, event: &Event) {
        self.lines += 1;
        if event.tags.first().map(String::as_str) != Some(SYSLOG_PARSER) {
            return;
        }
        self.unrecognized += 1;
        let mut example = mask(event.summary.trim());
        if example.len() > MAX_SHAPE_LEN {
            let mut cut = MAX_SHAPE_LEN;
            while !example.is_char_boundary(cut) {
                cut -= 1;
            }
            example.truncate(cut);
            example.push('…');
        }
        let key = (event.processname.clone(), example);
        if let Some(count) = self.shapes.get_mut(&key) {
            *count += 1;
        } else if self.shapes.len() < MAX_SHAPES {
            self.shapes.insert(key, 1);
        } else {
            self.beyond_limit += 1;
        }
    }

    /// The shapes, commonest first (ties by program, then example).
    pub fn shapes(&self) -> Vec<Shape> {
        let mut shapes: Vec<Shape> = self
            .shapes
            .iter()
            .map(|((program, example), count)| Shape {
                count: *count,
                program: program.clone(),
                program_has_parser: program_parser(program).is_some(),
                example: example.clone(),
            })
            .collect();
        shapes.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.program.cmp(&b.program))
                .then_with(|| a.example.cmp(&b.example))
        });
        shapes
    }

    /// The report as text: a summary line, then one row per shape.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let shapes = self.shapes();
        let share = if self.lines == 0 {
            100.0
        } else {
            100.0 * (self.lines - self.unrecognized) as f64 / self.lines as f64
        };
        writeln!(
            out,
            "{} lines read, {} recognised ({share:.1}%), {} fell to syslog in {} shapes",
            self.lines,
            self.lines - self.unrecognized,
            self.unrecognized,
            shapes.len(),
        )?;
        if self.beyond_limit > 0 {
            writeln!(
                out,
                "{} more lines are of shapes past the first {MAX_SHAPES} and not listed",
                self.beyond_limit
            )?;
        }
        if shapes.is_empty() {
            return Ok(());
        }
        let width = shapes
            .iter()
            .map(|s| s.program.chars().count())
            .max()
            .unwrap_or(0)
            .max("program".len());
        writeln!(out)?;
        writeln!(
            out,
            "{:>8}  {:<width$}  parser  example (masked)",
            "lines", "program"
        )?;
        for shape in &shapes {
            writeln!(
                out,
                "{:>8}  {:<width$}  {:<6}  {}",
                shape.count,
                shape.program,
                if shape.program_has_parser {
                    "yes"
                } else {
                    "no"
                },
                shape.example
            )?;
        }
        Ok(())
    }

    /// The report as NDJSON: one object per shape, then `{"summary": …}`.
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        for shape in self.shapes() {
            serde_json::to_writer(&mut *out, &shape)?;
            out.write_all(b"\n")?;
        }
        let summary = serde_json::json!({"summary": {
            "lines": self.lines,
            "recognised": self.lines - self.unrecognized,
            "unrecognized": self.unrecognized,
            "shapes": self.shapes.len(),
            "beyond_limit": self.beyond_limit,
        }});
        serde_json::to_writer(&mut *out, &summary)?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_what_varies() {
        let cases = [
            (
                "Connection from 203.0.113.9 port 50522 on 10.0.0.1 port 22",
                "Connection from <ip> port N on <ip> port N",
            ),
            ("peer 2001:db8::7 said hi", "peer <ip> said hi"),
            ("peer fe80::1%eth0 said hi", "peer <ip> said hi"),
            ("bind to ::1 port 22", "bind to <ip> port N"),
            ("at 00:17:22 the clock", "at N:N:N the clock"),
            (
                "key SHA256:Yz3n0X+9lL7/aBcD= accepted",
                "key <fingerprint> accepted",
            ),
            ("session c1234 of user bob", "session cN of user bob"),
            ("ssh2 and ab12", "sshN and abN"),
            ("trace 9f86d081884c7d65 done", "trace <hex> done"),
            ("word deadbeef stays", "word deadbeef stays"),
            ("pid=4411 uid=0", "pid=N uid=N"),
            ("a:b is not an address", "a:b is not an address"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask(text), masked, "{text}");
        }
    }

    /// The event the agent makes of `line` (its program after the header).
    fn event(line: &str) -> Event {
        let parser = super::super::LineParser::new(
            crate::host::HostIdentity::named("agent1.example.com"),
            super::super::TimeZoneChoice::parse("UTC").unwrap(),
        );
        let read_at = chrono::DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let context = super::super::LineContext {
            source: "/var/log/auth.log",
            source_identity: "file:1:2:3",
            offset: 0,
            read_at,
        };
        parser.parse(line.as_bytes(), &context)
    }

    #[test]
    fn counts_shapes_and_skips_recognised_lines() {
        let mut report = Report::default();
        for line in [
            "Dec  5 10:00:00 h1 sshd[7]: Failed password for root from 1.2.3.4 port 1 ssh2",
            "Dec  5 10:00:01 h1 sshd[8]: Server listening on 0.0.0.0 port 22.",
            "Dec  5 10:00:02 h1 sshd[9]: Server listening on 10.1.1.1 port 2222.",
            "Dec  5 10:00:03 h1 CRON[10]: (root) CMD (run-parts /etc/cron.hourly)",
        ] {
            report.add(&event(line));
        }
        assert_eq!((report.lines, report.unrecognized), (4, 3));
        let shapes = report.shapes();
        assert_eq!(shapes.len(), 2);
        assert_eq!(shapes[0].count, 2);
        assert_eq!(shapes[0].example, "Server listening on <ip> port N.");
        assert!(shapes[0].program_has_parser);
        assert_eq!(shapes[1].program, "CRON");
        assert!(!shapes[1].program_has_parser);
    }

    #[test]
    fn keeps_at_most_max_shapes() {
        let mut report = Report::default();
        for i in 0..MAX_SHAPES + 5 {
            // Letters, not digits: each line its own shape.
            let word: String = format!("{i:x}")
                .chars()
                .map(|c| (b'g' + c.to_digit(16).unwrap_or(0) as u8) as char)
                .collect();
            report.add(&event(&format!("Dec  5 10:00:00 h1 app[1]: thing {word}")));
        }
        assert_eq!(report.shapes().len(), MAX_SHAPES);
        assert_eq!(report.beyond_limit, 5);
        let long = "x".repeat(MAX_SHAPE_LEN * 2);
        let mut report = Report::default();
        report.add(&event(&format!("Dec  5 10:00:00 h1 app[1]: {long}")));
        assert!(report.shapes()[0].example.len() <= MAX_SHAPE_LEN + '…'.len_utf8());
    }
}
