//! `picket-agent buffer inspect|verify`: what the disk buffer holds, read without
//! changing it ([`picket_common::wal::inspect`]; safe while the agent runs): how many
//! events wait and how old they are, by category and host, and every record's CRC.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use picket_common::wal::{BufferError, Inspection, inspect};
use serde_json::{Value, json};

/// What the pending events are.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    /// When the oldest and newest pending events happened.
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
    pub by_category: HashMap<String, u64>,
    pub by_host: HashMap<String, u64>,
    /// Records whose payload is not an event's JSON (none, unless written by hand).
    pub not_events: u64,
}

/// The buffer under `dir` (`<data_dir>/buffer`), read.
pub fn read(dir: &Path) -> Result<(Inspection, Pending), BufferError> {
    #[derive(serde::Deserialize)]
    struct Fields<'a> {
        #[serde(borrow, default)]
        utctimestamp: Option<&'a str>,
        #[serde(borrow, default)]
        category: Option<&'a str>,
        #[serde(borrow, default)]
        hostname: Option<&'a str>,
    }
    if !dir.is_dir() {
        return Err(BufferError::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no disk buffer here"),
        });
    }
    let mut pending = Pending::default();
    let inspection = inspect(dir, &mut |payload| {
        let Ok(fields) = serde_json::from_slice::<Fields<'_>>(payload) else {
            pending.not_events += 1;
            return;
        };
        if let Some(time) = fields
            .utctimestamp
            .and_then(|t| mozdef::time::parse_str(t).ok())
            .map(|t| t.with_timezone(&Utc))
        {
            pending.oldest = Some(pending.oldest.map_or(time, |o| o.min(time)));
            pending.newest = Some(pending.newest.map_or(time, |n| n.max(time)));
        }
        *pending
            .by_category
            .entry(fields.category.unwrap_or("-").to_string())
            .or_default() += 1;
        *pending
            .by_host
            .entry(fields.hostname.unwrap_or("-").to_string())
            .or_default() += 1;
    })?;
    Ok((inspection, pending))
}

/// The ten largest counts, largest first (ties by name).
fn top(counts: &HashMap<String, u64>) -> Vec<(&str, u64)> {
    let mut sorted: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    sorted.truncate(10);
    sorted
}

/// `1h 02m` (or `42s`, `3d 4h`) for a duration in seconds.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// The report for a person.
pub fn write_text(
    out: &mut impl Write,
    dir: &Path,
    inspection: &Inspection,
    pending: &Pending,
    now: DateTime<Utc>,
) -> io::Result<()> {
    let on_disk: u64 = inspection.segments.iter().map(|s| s.bytes).sum();
    writeln!(out, "buffer: {}", dir.display())?;
    writeln!(
        out,
        "segments: {} ({} bytes on disk); delivery resumes at segment {} offset {}{}",
        inspection.segments.len(),
        on_disk,
        inspection.acked.segment,
        inspection.acked.offset,
        if inspection.ack_readable {
            ""
        } else {
            " (no readable ack file: from the oldest segment)"
        }
    )?;
    writeln!(
        out,
        "pending: {} events, {} bytes",
        inspection.pending_records(),
        inspection.pending_bytes()
    )?;
    for (label, time) in [("oldest", pending.oldest), ("newest", pending.newest)] {
        if let Some(time) = time {
            writeln!(
                out,
                "{label}: {} ({} ago)",
                mozdef::time::format_utc(time),
                age((now - time).num_seconds())
            )?;
        }
    }
    for (label, counts) in [
        ("by category", &pending.by_category),
        ("by host", &pending.by_host),
    ] {
        if counts.is_empty() {
            continue;
        }
        let shown: Vec<String> = top(counts)
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let more = counts.len().saturating_sub(10);
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        writeln!(out, "{label}: {}{more}", shown.join(", "))?;
    }
    if pending.not_events > 0 {
        writeln!(out, "records that are not events: {}", pending.not_events)?;
    }
    write_damage(out, inspection)
}

/// Lost stretches and a torn tail, one line each.
fn write_damage(out: &mut impl Write, inspection: &Inspection) -> io::Result<()> {
    for lost in inspection.lost() {
        writeln!(
            out,
            "CORRUPT: segment {} offset {}: {} bytes unreadable (CRC), about {} events lost",
            lost.segment, lost.offset, lost.bytes, lost.records
        )?;
    }
    for segment in inspection.segments.iter().filter(|s| s.torn_bytes > 0) {
        writeln!(
            out,
            "torn tail: segment {}: the last {} bytes are a record cut short (a crash mid-write, whose lines are read again, or one being written now)",
            segment.segment, segment.torn_bytes
        )?;
    }
    Ok(())
}

/// The report as one JSON object.
pub fn to_json(
    dir: &Path,
    inspection: &Inspection,
    pending: &Pending,
    now: DateTime<Utc>,
) -> Value {
    let counts = |counts: &HashMap<String, u64>| {
        Value::Object(
            top(counts)
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        )
    };
    json!({
        "dir": dir.display().to_string(),
        "ack": {
            "segment": inspection.acked.segment,
            "offset": inspection.acked.offset,
            "readable": inspection.ack_readable,
        },
        "segments": inspection.segments.iter().map(|s| json!({
            "segment": s.segment,
            "bytes": s.bytes,
            "from": s.from,
            "records": s.records,
            "torn_bytes": s.torn_bytes,
        })).collect::<Vec<_>>(),
        "pending_events": inspection.pending_records(),
        "pending_bytes": inspection.pending_bytes(),
        "oldest": pending.oldest.map(mozdef::time::format_utc),
        "oldest_age_seconds": pending.oldest.map(|t| (now - t).num_seconds().max(0)),
        "newest": pending.newest.map(mozdef::time::format_utc),
        "by_category": counts(&pending.by_category),
        "by_host": counts(&pending.by_host),
        "not_events": pending.not_events,
        "lost": inspection.lost().map(|l| json!({
            "segment": l.segment,
            "offset": l.offset,
            "bytes": l.bytes,
            "records": l.records,
        })).collect::<Vec<_>>(),
    })
}

/// `verify`'s report: true when every pending record checks out.
pub fn write_verdict(out: &mut impl Write, inspection: &Inspection) -> io::Result<bool> {
    write_damage(out, inspection)?;
    let lost = inspection.lost().count();
    if lost == 0 {
        writeln!(
            out,
            "ok: {} pending events in {} segments, every record's CRC checks",
            inspection.pending_records(),
            inspection.segments.len()
        )?;
        return Ok(true);
    }
    writeln!(
        out,
        "{lost} corrupt stretches among {} readable pending events: the agent skips them at start (logged at ERROR, counted in buffer_records_lost) and ships the rest",
        inspection.pending_records()
    )?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::DiskBuffer;

    #[test]
    fn the_report_counts_what_waits_and_says_how_old_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
        for (i, (category, host)) in [
            ("authentication", "web1"),
            ("authentication", "web2"),
            ("syslog", "web1"),
        ]
        .iter()
        .enumerate()
        {
            let event = json!({
                "utctimestamp": format!("2026-12-07T10:0{i}:00+00:00"),
                "category": category,
                "hostname": host,
            });
            buffer.append(event.to_string().as_bytes()).unwrap();
        }
        buffer.append(b"not json").unwrap();
        buffer.sync().unwrap();
        drop(buffer);
        let (inspection, pending) = read(dir.path()).unwrap();
        assert_eq!(inspection.pending_records(), 4);
        assert_eq!(pending.not_events, 1);
        assert_eq!(pending.by_category["authentication"], 2);
        assert_eq!(pending.by_host["web1"], 2);
        let now: DateTime<Utc> = "2026-12-07T11:00:00Z".parse().unwrap();
        let mut text = Vec::new();
        write_text(&mut text, dir.path(), &inspection, &pending, now).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("pending: 4 events"), "{text}");
        assert!(
            text.contains("oldest: 2026-12-07T10:00:00+00:00 (1h 00m ago)"),
            "{text}"
        );
        assert!(
            text.contains("by category: authentication 2, syslog 1\n"),
            "{text}"
        );
        let value = to_json(dir.path(), &inspection, &pending, now);
        assert_eq!(value["oldest_age_seconds"], 3600);
        assert_eq!(value["by_host"]["web1"], 2);
        let mut verdict = Vec::new();
        assert!(write_verdict(&mut verdict, &inspection).unwrap());
        assert!(read(&dir.path().join("nothing")).is_err());
    }
}
