//! The journald input: Debian 12 and RHEL 9 hosts keep auth logs only in the systemd
//! journal unless rsyslog is installed, so the agent reads it through
//! `journalctl --follow --output=json`, filtered to the auth facilities and the
//! programs the parsers know (configurable).
//!
//! - Start: `--after-cursor` the last delivered entry's cursor (from the checkpoint),
//!   else `--since now` (`start_at = "end"`) or the whole journal (`"beginning"`). When
//!   the checkpoints were lost (unreadable), `end` starts from when they were last
//!   saved instead (`--since=@<seconds>`, logged at WARN): entries delivered since then
//!   come again with the same event ids, none written while the agent was down is
//!   skipped.
//! - Each JSON entry maps onto a record: `MESSAGE` (text, or bytes made text),
//!   `SYSLOG_IDENTIFIER` → program, `_PID` (else `SYSLOG_PID`) → pid, `_HOSTNAME` →
//!   host, `__REALTIME_TIMESTAMP` (µs) → time, `PRIORITY` → severity, `__CURSOR` →
//!   the event id's position and the checkpoint. Records go through the same parsers
//!   as syslog lines.
//! - When journalctl exits it is started again after a second, after the last cursor
//!   read, so nothing is read twice and nothing skipped.

pub mod config;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use mozdef::Severity;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::config::JournaldSettings;
use super::Chunk;
use super::StartAt;
use crate::checkpoint::{CheckpointStore, FileIdentity};
use crate::metrics::Metrics;
use crate::parsers::{LineParser, Structured};

/// The event `source` and the source identity in event ids.
pub const SOURCE: &str = "journald";

/// The journald input, ready to run on its own thread.
pub struct JournaldInput {
    /// What to read and from where (`[agent.inputs.journald]`, checked).
    pub settings: JournaldSettings,
    pub parser: LineParser,
    pub checkpoints: Arc<Mutex<CheckpointStore>>,
    pub metrics: Arc<Metrics>,
}

const CHUNK_EVENTS: usize = 500;

impl JournaldInput {
    /// The arguments of one journalctl run, resuming after `cursor`; `lost_since`: the
    /// checkpoints were lost, and last saved then.
    pub fn arguments(&self, cursor: Option<&str>, lost_since: Option<SystemTime>) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--follow".into(),
            "--output=json".into(),
            "--no-pager".into(),
        ];
        for dir in &self.settings.directories {
            args.push(format!("--directory={}", dir.display()));
        }
        for file in &self.settings.files {
            args.push(format!("--file={}", file.display()));
        }
        match (cursor, self.settings.start_at, lost_since) {
            (Some(cursor), _, _) => args.push(format!("--after-cursor={cursor}")),
            (None, StartAt::End, Some(saved)) => {
                // A second early: the stamp is cut to whole seconds.
                let secs = saved
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    .saturating_sub(1);
                args.push(format!("--since=@{secs}"));
            }
            (None, StartAt::End, None) => args.push("--since=now".into()),
            (None, StartAt::Beginning, _) => {}
        }
        // `F=a F=b` is an OR of one field; `+` ORs groups.
        let mut first = true;
        if !self.settings.facilities.is_empty() {
            first = false;
            args.extend(
                self.settings
                    .facilities
                    .iter()
                    .map(|f| format!("SYSLOG_FACILITY={f}")),
            );
        }
        if !self.settings.identifiers.is_empty() {
            if !first {
                args.push("+".into());
            }
            args.extend(
                self.settings
                    .identifiers
                    .iter()
                    .map(|i| format!("SYSLOG_IDENTIFIER={i}")),
            );
        }
        args
    }

    /// Reads the journal until `stop` is set or the shipper goes away.
    pub fn run(self, out: mpsc::Sender<Chunk>, stop: Arc<AtomicBool>) {
        let (mut cursor, lost_since) = match self.checkpoints.lock() {
            Ok(c) => (c.journal_cursor().map(str::to_string), c.lost_since()),
            Err(_) => (None, None),
        };
        info!(resume = cursor.is_some(), "Journald input started.");
        if let Some(saved) = lost_since.filter(|_| cursor.is_none())
            && self.settings.start_at == StartAt::End
        {
            warn!(since = %DateTime::<Utc>::from(saved).to_rfc3339(), "Checkpoints were lost: reading the journal from when they were last saved, not from now (entries delivered since are sent again with the same event ids).");
        }
        while !stop.load(Ordering::Relaxed) && !out.is_closed() {
            let args = self.arguments(cursor.as_deref(), lost_since);
            let mut child = match Command::new(&self.settings.journalctl)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
            {
                Ok(child) => child,
                Err(e) => {
                    warn!(journalctl = %self.settings.journalctl.display(), error = %e, "Cannot start journalctl; retrying in 5 s.");
                    sleep_unless_stopped(&stop, Duration::from_secs(5));
                    continue;
                }
            };
            debug!(args = ?args, "journalctl started.");
            self.read_child(&mut child, &mut cursor, &out, &stop);
            let _ = child.kill();
            let _ = child.wait();
            if !stop.load(Ordering::Relaxed) {
                warn!("journalctl exited; starting it again after the last entry read.");
                sleep_unless_stopped(&stop, Duration::from_secs(1));
            }
        }
        info!("Journald input stopped.");
    }

    /// Reads entries until the child's output ends or `stop` is set.
    fn read_child(
        &self,
        child: &mut Child,
        cursor: &mut Option<String>,
        out: &mpsc::Sender<Chunk>,
        stop: &Arc<AtomicBool>,
    ) {
        let Some(stdout) = child.stdout.take() else {
            return;
        };
        // Lines are read on their own thread so that a stop request does not wait for
        // the next journal entry.
        let (lines_tx, lines_rx) = std::sync::mpsc::sync_channel::<String>(1024);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if lines_tx.send(line).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut chunk: Chunk = Chunk::with_capacity(CHUNK_EVENTS);
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let line = match lines_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => Some(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let idle = line.is_none();
            if let Some(line) = line {
                match serde_json::from_str::<Map<String, Value>>(&line) {
                    Ok(entry) => {
                        if self.entry(&entry, &mut chunk) {
                            *cursor = chunk
                                .reads()
                                .last()
                                .and_then(|read| read.cursor.as_deref())
                                .map(str::to_string);
                        }
                    }
                    Err(e) => {
                        self.metrics.parse_failures.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "journalctl wrote a line that is not a JSON entry; skipped.");
                    }
                }
            }
            if chunk.len() >= CHUNK_EVENTS || (idle && !chunk.is_empty()) {
                let full = std::mem::replace(&mut chunk, Chunk::with_capacity(CHUNK_EVENTS));
                if out.blocking_send(full).is_err() {
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = out.blocking_send(chunk);
        }
        drop(lines_rx);
        let _ = child.kill();
        let _ = reader.join();
    }

    /// One journal entry as an event into `chunk`; false (counted) when it has no
    /// cursor.
    fn entry(&self, entry: &Map<String, Value>, chunk: &mut Chunk) -> bool {
        let Some(cursor) = entry.get("__CURSOR").and_then(Value::as_str) else {
            self.metrics.parse_failures.fetch_add(1, Ordering::Relaxed);
            warn!("Journal entry without a cursor; skipped.");
            return false;
        };
        let text = |key: &str| entry.get(key).and_then(Value::as_str);
        let message = match entry.get("MESSAGE") {
            Some(Value::String(text)) => text.clone(),
            // Binary messages come as arrays of bytes.
            Some(Value::Array(bytes)) => {
                let raw: Vec<u8> = bytes
                    .iter()
                    .filter_map(|b| b.as_u64())
                    .map(|b| b as u8)
                    .collect();
                String::from_utf8_lossy(&raw).into_owned()
            }
            _ => String::new(),
        };
        let time = text("__REALTIME_TIMESTAMP")
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .unwrap_or_else(Utc::now);
        let pid = text("_PID")
            .or_else(|| text("SYSLOG_PID"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let severity = text("PRIORITY")
            .and_then(|p| p.parse::<u8>().ok())
            .and_then(Severity::from_syslog_code);
        let record = Structured {
            time,
            hostname: text("_HOSTNAME"),
            program: text("SYSLOG_IDENTIFIER").or_else(|| text("_COMM")),
            pid,
            severity,
            message: &message,
        };
        self.metrics.lines_read.fetch_add(1, Ordering::Relaxed);
        let path: Arc<str> = Arc::from(SOURCE);
        self.parser
            .parse_structured(&record, SOURCE, SOURCE, cursor, |event| {
                chunk.push(
                    event,
                    FileIdentity {
                        dev: 0,
                        ino: 0,
                        fingerprint: 0,
                    },
                    &path,
                    0,
                    Some(Arc::from(cursor)),
                );
            });
        true
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        slept += step;
    }
}

#[cfg(test)]
mod tests;
