//! The dead-letter file: events the collector refused one by one (a bad event, which
//! resending will not fix) are kept here with the reason, never silently dropped.
//!
//! `data_dir/dead-letter.ndjson`, one JSON object a line:
//! `{"time": "<RFC 3339 UTC>", "reason": "<why>", "event": <the event as sent>}`.
//! When the file passes [`MAX_BYTES`] it is renamed to `dead-letter.ndjson.1` (the
//! previous `.1` is replaced) and a new one started, so it cannot fill the disk.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

/// Size at which the file is rotated.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Appends refused events to the dead-letter file.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
}

impl DeadLetter {
    /// The dead-letter file in `data_dir` (opened at the first write).
    pub fn new(data_dir: &Path) -> DeadLetter {
        DeadLetter {
            path: data_dir.join("dead-letter.ndjson"),
            file: None,
            size: 0,
        }
    }

    /// Where refused events are written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one refused event (its JSON line as sent) with the reason, and syncs.
    pub fn write(&mut self, reason: &str, record: &[u8]) -> std::io::Result<()> {
        let text = std::str::from_utf8(record)
            .ok()
            .map(str::trim_end)
            .and_then(|t| RawValue::from_string(t.to_string()).ok());
        let line = match text {
            Some(event) => serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339(),
                "reason": reason,
                "event": event,
            }),
            // Not JSON (cannot happen for what the agent writes): keep it as text.
            None => serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339(),
                "reason": reason,
                "event_text": String::from_utf8_lossy(record),
            }),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if self.size + bytes.len() as u64 > MAX_BYTES && self.size > 0 {
            self.file = None;
            std::fs::rename(&self.path, self.path.with_extension("ndjson.1"))?;
        }
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(&bytes)?;
        file.sync_data()?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_events_are_kept_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut dead = DeadLetter::new(dir.path());
        dead.write("eventid is not 32 hex characters", b"{\"eventid\":\"x\"}\n")
            .unwrap();
        dead.write("not JSON", b"\xff\xfe").unwrap();
        let text = std::fs::read_to_string(dead.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "eventid is not 32 hex characters");
        assert_eq!(lines[0]["event"]["eventid"], "x");
        assert!(lines[1]["event_text"].is_string());
    }
}
