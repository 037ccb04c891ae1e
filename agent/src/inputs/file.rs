//! The file input: follows the configured files by polling them every
//! `poll_interval`, reading new bytes, cutting them into lines and parsing each line
//! into an event.
//!
//! What it handles now:
//! - a file that does not exist yet is picked up when it appears (read from its start);
//! - resume from a checkpoint when the file's identity (device, inode, first-line hash)
//!   matches and the file is at least that long; otherwise `start_at` for files present
//!   at start-up (`end` starts after the last complete line);
//! - rename rotation: once the old file is read to its end and the path names another
//!   file, the new one is read from its start;
//! - copytruncate: a file shorter than the read position is read again from its start
//!   (it has a new identity, so its lines get new event ids), counted and logged;
//! - a line longer than `max_line_bytes` keeps its first `max_line_bytes` bytes and is
//!   flagged `details.truncated`; the rest is skipped without being buffered;
//! - invalid UTF-8 is replaced, blank lines are skipped, a partial last line waits for
//!   its newline.
//!
//! The fuller tailer (globs, notify wake-ups, grace for writers still appending to a
//! rotated file, gzip, idle flush of partial lines) grows here.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::ReadEvent;
use crate::checkpoint::{CheckpointStore, FileIdentity};
use crate::config::StartAt;
use crate::metrics::Metrics;
use crate::parsers::{LineContext, LineParser};

/// Bytes of a file's start hashed into its identity (up to the first newline).
const FINGERPRINT_BYTES: usize = 1024;
/// Events sent to the shipper in one message.
const CHUNK_EVENTS: usize = 500;
/// Bytes read from one file before the others get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;

/// The file input, ready to run on its own thread.
pub struct FileInput {
    pub paths: Vec<PathBuf>,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub max_line_bytes: usize,
    pub parser: LineParser,
    pub checkpoints: Arc<Mutex<CheckpointStore>>,
    pub metrics: Arc<Metrics>,
}

impl FileInput {
    /// Follows the files until `stop` is set or the shipper goes away.
    pub fn run(self, out: mpsc::Sender<Vec<ReadEvent>>, stop: Arc<AtomicBool>) {
        let mut followed: Vec<Followed> = self
            .paths
            .iter()
            .map(|path| Followed::new(path.clone()))
            .collect();
        info!(files = followed.len(), "File input started.");
        let mut chunk: Vec<ReadEvent> = Vec::with_capacity(CHUNK_EVENTS);
        while !stop.load(Ordering::Relaxed) {
            let mut progressed = false;
            for file in &mut followed {
                progressed |= file.poll(&self, &mut chunk, &out);
                if out.is_closed() {
                    return;
                }
            }
            if !chunk.is_empty() {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_EVENTS));
                if out.blocking_send(full).is_err() {
                    return;
                }
            }
            if !progressed {
                std::thread::sleep(self.poll_interval);
            }
        }
        info!("File input stopped.");
    }
}

/// One configured path and the file currently open under it.
struct Followed {
    path: PathBuf,
    path_text: Arc<str>,
    open: Option<OpenFile>,
    /// Whether the path was already looked at once (files found later are new).
    started: bool,
    /// Whether "waiting for the file" was logged, to log it once.
    reported_missing: bool,
    /// Read buffer, kept between polls.
    buffer: Vec<u8>,
}

struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    identity: Option<FileIdentity>,
    /// `identity`'s source identity for event ids, computed once.
    source_identity: String,
    /// Next byte to read (the file's position).
    read_offset: u64,
    /// Where the line being assembled starts.
    line_start: u64,
    pending: Vec<u8>,
    /// The line being assembled passed `max_line_bytes`; its rest is skipped.
    overflow: bool,
}

impl Followed {
    fn new(path: PathBuf) -> Followed {
        let path_text: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        Followed {
            path,
            path_text,
            open: None,
            started: false,
            reported_missing: false,
            buffer: vec![0u8; 64 * 1024],
        }
    }

    /// Reads what is new; returns whether any byte was read.
    fn poll(
        &mut self,
        input: &FileInput,
        chunk: &mut Vec<ReadEvent>,
        out: &mpsc::Sender<Vec<ReadEvent>>,
    ) -> bool {
        if self.open.is_none() {
            let first_look = !self.started;
            self.started = true;
            self.open = self.try_open(input, first_look);
            if self.open.is_none() {
                return false;
            }
        }
        let read = match self.read_new(input, chunk, out) {
            Ok(n) => n,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "Read failed; the file will be reopened.");
                self.open = None;
                return false;
            }
        };
        if read == 0 {
            self.check_rotation(input);
        }
        read > 0
    }

    fn try_open(&mut self, input: &FileInput, first_look: bool) -> Option<OpenFile> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) => {
                if !self.reported_missing {
                    if e.kind() == io::ErrorKind::NotFound {
                        info!(path = %self.path.display(), "Waiting for the file to appear.");
                    } else {
                        warn!(path = %self.path.display(), error = %e, "Cannot open the file; will retry.");
                    }
                    self.reported_missing = true;
                }
                return None;
            }
        };
        self.reported_missing = false;
        let meta = file.metadata().ok()?;
        let mut open = OpenFile {
            dev: meta.dev(),
            ino: meta.ino(),
            identity: None,
            source_identity: String::new(),
            read_offset: 0,
            line_start: 0,
            pending: Vec::new(),
            overflow: false,
            file,
        };
        open.learn_identity();
        let (saved, known_path) = match input.checkpoints.lock() {
            Ok(store) => (
                open.identity.and_then(|identity| store.offset(&identity)),
                store.knows_path(&self.path_text),
            ),
            Err(_) => (None, false),
        };
        let start = match saved {
            Some(offset) if offset <= meta.len() => {
                info!(path = %self.path.display(), offset, "Resuming the file from its checkpoint.");
                offset
            }
            Some(offset) => {
                warn!(path = %self.path.display(), offset, len = meta.len(), "File is shorter than its checkpoint; reading from the start.");
                0
            }
            // `end` is for files never seen: a new file under a path already read is a
            // rotation that happened while the agent was stopped.
            None if first_look && input.start_at == StartAt::End && !known_path => {
                let end = last_line_end(&open.file, meta.len(), input.max_line_bytes);
                info!(path = %self.path.display(), offset = end, "Reading new lines from the end of the file.");
                end
            }
            None => {
                info!(path = %self.path.display(), "Reading the file from its start.");
                0
            }
        };
        if start > 0 && open.file.seek(SeekFrom::Start(start)).is_err() {
            return None;
        }
        open.read_offset = start;
        open.line_start = start;
        Some(open)
    }

    fn read_new(
        &mut self,
        input: &FileInput,
        chunk: &mut Vec<ReadEvent>,
        out: &mpsc::Sender<Vec<ReadEvent>>,
    ) -> io::Result<usize> {
        let Some(open) = self.open.as_mut() else {
            return Ok(0);
        };
        let buffer = &mut self.buffer;
        let mut total = 0;
        while total < READ_BUDGET {
            let n = open.file.read(buffer)?;
            if n == 0 {
                break;
            }
            total += n;
            let mut from = 0;
            while let Some(newline) = buffer[from..n].iter().position(|b| *b == b'\n') {
                let end = from + newline;
                open.append(&buffer[from..end], input.max_line_bytes);
                open.read_offset += (end + 1 - from) as u64;
                if open.identity.is_none() {
                    open.learn_identity();
                }
                if let Some(identity) = open.identity {
                    if let Some(event) = open.take_line(&self.path_text, identity, input) {
                        chunk.push(event);
                    }
                }
                open.line_start = open.read_offset;
                from = end + 1;
                if chunk.len() >= CHUNK_EVENTS {
                    let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK_EVENTS));
                    if out.blocking_send(full).is_err() {
                        return Ok(total);
                    }
                }
            }
            open.append(&buffer[from..n], input.max_line_bytes);
            open.read_offset += (n - from) as u64;
        }
        Ok(total)
    }

    /// At the end of the open file: has the path been truncated, replaced or removed?
    fn check_rotation(&mut self, input: &FileInput) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == open.dev && meta.ino() == open.ino => {
                if meta.len() < open.read_offset {
                    input.metrics.truncations.fetch_add(1, Ordering::Relaxed);
                    warn!(path = %self.path.display(), offset = open.read_offset, len = meta.len(), "File truncated; reading from the start.");
                    if open.file.seek(SeekFrom::Start(0)).is_ok() {
                        open.read_offset = 0;
                        open.line_start = 0;
                        open.pending.clear();
                        open.overflow = false;
                        open.identity = None;
                    } else {
                        self.open = None;
                    }
                }
            }
            Ok(_) => {
                input.metrics.rotations.fetch_add(1, Ordering::Relaxed);
                info!(path = %self.path.display(), "File rotated; reading the new file from its start.");
                self.open = self.try_open(input, false);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                info!(path = %self.path.display(), "File removed after it was read to its end; released.");
                self.open = None;
            }
            Err(e) => {
                debug!(path = %self.path.display(), error = %e, "Cannot stat the file.");
            }
        }
    }
}

impl OpenFile {
    /// Fingerprints the file, once its first line (or first KiB) is there.
    fn learn_identity(&mut self) {
        self.identity = fingerprint(&self.file).map(|fingerprint| FileIdentity {
            dev: self.dev,
            ino: self.ino,
            fingerprint,
        });
        self.source_identity = self
            .identity
            .map(|identity| identity.source_identity())
            .unwrap_or_default();
    }

    /// Adds bytes to the line being assembled, never past `max` bytes.
    fn append(&mut self, bytes: &[u8], max: usize) {
        let room = max.saturating_sub(self.pending.len());
        if bytes.len() > room {
            self.overflow = true;
        }
        self.pending
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The complete line assembled so far as an event (`None` for a blank line).
    fn take_line(
        &mut self,
        path: &Arc<str>,
        identity: FileIdentity,
        input: &FileInput,
    ) -> Option<ReadEvent> {
        let overflow = std::mem::take(&mut self.overflow);
        let line = std::mem::take(&mut self.pending);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return None;
        }
        input.metrics.lines_read.fetch_add(1, Ordering::Relaxed);
        let mut event = input.parser.parse(
            &line,
            &LineContext {
                source: path,
                source_identity: &self.source_identity,
                offset: self.line_start,
                read_at: Utc::now(),
            },
        );
        if overflow {
            input
                .metrics
                .lines_truncated
                .fetch_add(1, Ordering::Relaxed);
            warn!(path = %path, offset = self.line_start, max_line_bytes = input.max_line_bytes, "Line longer than max_line_bytes; kept its start and flagged it truncated.");
            event
                .details
                .insert(mozdef::fields::details::TRUNCATED.into(), Value::Bool(true));
        }
        self.pending = line;
        self.pending.clear();
        Some(ReadEvent {
            event,
            identity,
            path: Arc::clone(path),
            next_offset: self.read_offset,
        })
    }
}

/// Hash of the file's first line (or first 1 KiB), once it is complete; FNV-1a.
fn fingerprint(file: &File) -> Option<u64> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    let head = &head[..filled];
    let end = match head.iter().position(|b| *b == b'\n') {
        Some(newline) => newline + 1,
        None if filled == FINGERPRINT_BYTES => filled,
        None => return None,
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in &head[..end] {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(hash)
}

/// The offset just after the last newline before `len` (0 when none is found within
/// `window` bytes), so reading "from the end" never starts mid-line.
fn last_line_end(file: &File, len: u64, window: usize) -> u64 {
    let start = len.saturating_sub(window as u64);
    let mut tail = vec![0u8; (len - start) as usize];
    if file.read_exact_at(&mut tail, start).is_err() {
        return len;
    }
    match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None if start == 0 => 0,
        None => len,
    }
}

#[cfg(test)]
mod tests;
