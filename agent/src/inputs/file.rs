//! The file input: follows every file the configured `paths` (globs allowed) match,
//! reading new bytes, cutting them into lines and parsing each line into an event.
//!
//! How it finds and follows files:
//! - the patterns are expanded at start and again every `scan_interval` and whenever
//!   the watched directories report a file created, removed or renamed ([`discover`]);
//!   a file found after start is read from its start;
//! - new bytes are looked for when the kernel reports a change (inotify through
//!   `notify`) and, as a safety net, every `poll_interval` (every second at least when
//!   notify works), so an idle agent does not busy-poll;
//! - resume from a checkpoint when the file's identity (device, inode, first-line hash)
//!   matches and the file is at least that long; otherwise `start_at` for files present
//!   at start-up (`end` starts after the last complete line), unless the path was read
//!   before (then the file is a rotation and is read from its start) or the
//!   checkpoints were lost (unreadable: then from its start too, logged at WARN; lines
//!   delivered before come again with the same event ids, see [`crate::checkpoint`]);
//! - rename rotation: once the path names another file, the new one is read from its
//!   start while the old one keeps being read until it has been idle for
//!   `rotated_idle` (the writer may append until it reopens), then it is released;
//! - copytruncate: a file shorter than the read position is read again from its start
//!   (it has a new identity, so its lines get new event ids), counted and logged;
//! - a line longer than `max_line_bytes` keeps its first `max_line_bytes` bytes and is
//!   flagged `details.truncated`; the rest is skipped without being buffered;
//! - invalid UTF-8 is replaced, blank lines are skipped, a partial last line waits for
//!   its newline and is flushed as a line once it has been idle for `partial_flush`;
//! - a file deleted (or matched no more) is released once read to its end, and its
//!   checkpoint pruned once the path is gone.
//!
//! What it opens ([`open_watched`]): the agent may read any file (`CAP_DAC_READ_SEARCH`),
//! so a path is opened with `O_NOFOLLOW | O_NONBLOCK` and only a regular file is read
//! (gzip-rotated ones too). A FIFO, socket or device put at a watched path is skipped:
//! opening it cannot block the one reading thread, so the other files go on being read
//! and a stop is seen at once. A symbolic link is followed only when its target is
//! itself a file `paths` match (and `exclude` does not) and that file is owned by root
//! or by the link's owner: whoever can plant a link in a log directory then gets only
//! what the agent reads anyway, or their own file, never `/etc/shadow`. (Directories on
//! the way to a configured path are resolved by the kernel, as they are: keep them
//! writable by root only.) A refused path is logged once at WARN while it stays
//! refused, counted (`files_refused`, in the heartbeat as `filesrefused`) and looked at
//! again at each poll.

pub mod config;
pub mod discover;
mod lines;
mod open;

use self::open::*;

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::config::FileInputSettings;
use super::Chunk;
use super::StartAt;
use crate::checkpoint::{CheckpointStore, FileIdentity};
use crate::metrics::Metrics;
use crate::parsers::{LineContext, LineParser};

/// Bytes of a file's start hashed into its identity (up to the first newline).
const FINGERPRINT_BYTES: usize = 1024;
/// Events sent to the shipper in one message.
const CHUNK_EVENTS: usize = 500;
/// With inotify on, the files are also polled this often, in case an event was missed
/// (an overflowed queue, a file system that does not report changes).
const WATCHED_SAFETY_POLL: Duration = Duration::from_secs(5);
/// Longest the idle loop goes without looking at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(500);
/// Bytes read from one file before the others get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;

/// The file input, ready to run on its own thread.
pub struct FileInput {
    /// What to follow and how (`[agent.inputs.file]`, checked).
    pub settings: FileInputSettings,
    pub parser: LineParser,
    pub checkpoints: Arc<Mutex<CheckpointStore>>,
    pub metrics: Arc<Metrics>,
}

/// A rotated-away or deleted file still being read to its end.
struct Draining {
    path_text: Arc<str>,
    open: OpenFile,
}

impl FileInput {
    /// Follows the files until `stop` is set or the shipper goes away.
    pub fn run(self, out: mpsc::Sender<Chunk>, stop: Arc<AtomicBool>) {
        let (wake_tx, wake_rx) = std::sync::mpsc::channel::<bool>();
        let watcher = watch(&self.settings.discovery, wake_tx);
        // With inotify, a change wakes the loop at once; the timed poll is only a
        // safety net (a missed or overflowed event), so it can be slow and cheap.
        let idle_wait = if watcher.is_some() {
            self.settings.poll_interval.max(WATCHED_SAFETY_POLL)
        } else {
            self.settings.poll_interval
        };
        for path in self.settings.discovery.literal_paths() {
            if !path.exists() {
                info!(path = %path.display(), "Waiting for the file to appear.");
            }
        }
        let mut followed: BTreeMap<PathBuf, Followed> = BTreeMap::new();
        let mut draining: Vec<Draining> = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut chunk: Chunk = Chunk::with_capacity(CHUNK_EVENTS);
        let mut last_scan: Option<Instant> = None;
        let mut rescan = true;
        info!(watching = watcher.is_some(), "File input started.");
        while !stop.load(Ordering::Relaxed) {
            if rescan || last_scan.is_none_or(|t| t.elapsed() >= self.settings.scan_interval) {
                self.rescan(&mut followed, &mut draining, last_scan.is_none());
                last_scan = Some(Instant::now());
                rescan = false;
            }
            let mut progressed = false;
            for file in followed.values_mut() {
                progressed |= file.poll(&self, &mut buffer, &mut chunk, &out, &mut draining);
                if out.is_closed() {
                    return;
                }
            }
            draining.retain_mut(|d| {
                let read = match read_new(&mut d.open, &d.path_text, &mut buffer, &self, &mut chunk, &out) {
                    Ok(n) => n,
                    Err(e) => {
                        warn!(path = %d.path_text, error = %e, "Read of a rotated file failed; released.");
                        return false;
                    }
                };
                progressed |= read > 0;
                if read == 0 {
                    d.open.flush_if_idle(&d.path_text, &self, &mut chunk);
                }
                let done = read == 0 && d.open.last_data.elapsed() >= self.settings.rotated_idle;
                if done {
                    info!(path = %d.path_text, "Finished reading a rotated or deleted file; released.");
                }
                !done
            });
            if !chunk.is_empty() {
                let full = std::mem::replace(&mut chunk, Chunk::with_capacity(CHUNK_EVENTS));
                if out.blocking_send(full).is_err() {
                    return;
                }
            }
            if !progressed {
                // Sleep until the kernel says something changed, or the poll interval;
                // in slices of at most a second, to see `stop` soon, without polling
                // the files at each slice.
                let slept = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let left = idle_wait.saturating_sub(slept.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    match wake_rx.recv_timeout(left.min(STOP_CHECK)) {
                        Ok(structural) => {
                            rescan |= structural;
                            while let Ok(more) = wake_rx.try_recv() {
                                rescan |= more;
                            }
                            break;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            // The watcher is gone: sleep the slice, poll on time.
                            std::thread::sleep(left.min(STOP_CHECK));
                        }
                    }
                }
            }
        }
        drop(watcher);
        info!("File input stopped.");
    }

    /// Expands the patterns: follows new files, lets go of files no longer matched,
    /// prunes checkpoints of paths that are gone.
    fn rescan(
        &self,
        followed: &mut BTreeMap<PathBuf, Followed>,
        draining: &mut Vec<Draining>,
        first: bool,
    ) {
        let found = self.settings.discovery.scan();
        let found_set: HashSet<&PathBuf> = found.iter().collect();
        // Files matched no more (deleted, renamed away): read what is left, then release.
        let gone: Vec<PathBuf> = followed
            .keys()
            .filter(|p| !found_set.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(mut file) = followed.remove(&path) {
                if let Some(open) = file.open.take() {
                    self.metrics.rotations.fetch_add(1, Ordering::Relaxed);
                    info!(path = %path.display(), "File renamed away or deleted; reading it until it goes quiet.");
                    draining.push(Draining {
                        path_text: Arc::clone(&file.path_text),
                        open,
                    });
                }
            }
        }
        let in_use: HashSet<(u64, u64)> = followed
            .values()
            .filter_map(|f| f.open.as_ref().map(|o| (o.dev, o.ino)))
            .chain(draining.iter().map(|d| (d.open.dev, d.open.ino)))
            .collect();
        for path in found {
            if followed.contains_key(&path) {
                continue;
            }
            // A rotated file found under its new name is still being read under its old.
            let busy = std::fs::metadata(&path)
                .map(|m| in_use.contains(&(m.dev(), m.ino())))
                .unwrap_or(false);
            if busy {
                continue;
            }
            let mut file = Followed::new(path.clone());
            file.started = !first;
            followed.insert(path, file);
        }
        // Checkpoints of paths that no longer exist are of no use.
        if let Ok(mut store) = self.checkpoints.lock() {
            let pruned = store.prune(|path| Path::new(path).exists());
            if pruned > 0 {
                debug!(pruned, "Pruned checkpoints of files that are gone.");
            }
        }
    }
}

/// Watches the directories of `discovery` (recursively where needed) for changes; each
/// event says whether files came or went (`true`) or only changed. Writes to files we
/// do not follow (the rest of `/var/log`) wake nobody. `None` (poll only) when watching
/// is not possible.
fn watch(
    discovery: &discover::Discovery,
    wake: std::sync::mpsc::Sender<bool>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let dirs = discovery.watch_dirs();
    let wanted = discovery.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let structural = match &event {
            Ok(e) => {
                matches!(e.kind, EventKind::Create(_) | EventKind::Remove(_))
                    || matches!(
                        e.kind,
                        EventKind::Modify(notify::event::ModifyKind::Name(_))
                    )
            }
            Err(_) => true,
        };
        let ours = match &event {
            Ok(e) => e.paths.iter().any(|p| wanted.wants(p)),
            Err(_) => true,
        };
        if structural || ours {
            let _ = wake.send(structural);
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(e) => {
            warn!(error = %e, "Cannot watch for file changes; polling instead.");
            return None;
        }
    };
    let mut watching = 0;
    for (dir, recursive) in &dirs {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match watcher.watch(dir, mode) {
            Ok(()) => watching += 1,
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "Cannot watch the directory; polling it.")
            }
        }
    }
    (watching > 0).then_some(watcher)
}

/// One configured path and the file currently open under it.
struct Followed {
    path: PathBuf,
    path_text: Arc<str>,
    open: Option<OpenFile>,
    /// Whether the path was already looked at once (files found later are new).
    started: bool,
    /// Whether "cannot open" was logged, to log it once.
    reported_error: bool,
    /// Whether the path was refused (not a regular file, a link not to follow), logged
    /// and counted: once while it stays so.
    refused: bool,
}

struct OpenFile {
    file: File,
    /// For a gzip file (`read_gzip`): the decompressed stream; offsets count its bytes.
    gzip: Option<flate2::read::GzDecoder<File>>,
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
    /// When bytes last arrived.
    last_data: Instant,
    /// The clock at the last read: the `read_at` of the lines it brought (one clock
    /// read per read, not per line).
    read_at: DateTime<Utc>,
}

impl Followed {
    fn new(path: PathBuf) -> Followed {
        let path_text: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        Followed {
            path,
            path_text,
            open: None,
            started: false,
            reported_error: false,
            refused: false,
        }
    }

    /// Reads what is new; returns whether any byte was read.
    fn poll(
        &mut self,
        input: &FileInput,
        buffer: &mut [u8],
        chunk: &mut Chunk,
        out: &mpsc::Sender<Chunk>,
        draining: &mut Vec<Draining>,
    ) -> bool {
        if self.open.is_none() {
            let first_look = !self.started;
            self.started = true;
            self.open = self.try_open(input, first_look);
            if self.open.is_none() {
                return false;
            }
        }
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        let read = match read_new(open, &self.path_text, buffer, input, chunk, out) {
            Ok(n) => n,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "Read failed; the file will be reopened.");
                self.open = None;
                return false;
            }
        };
        if read == 0 {
            open.flush_if_idle(&self.path_text, input, chunk);
            self.check_rotation(input, draining);
        }
        read > 0
    }

    fn try_open(&mut self, input: &FileInput, first_look: bool) -> Option<OpenFile> {
        let (file, meta) = match open_watched(&self.path, &input.settings.discovery) {
            Ok(opened) => opened,
            Err(OpenError::Io(e)) => {
                if !self.reported_error && e.kind() != io::ErrorKind::NotFound {
                    warn!(path = %self.path.display(), error = %e, "Cannot open the file; will retry.");
                    self.reported_error = true;
                }
                return None;
            }
            Err(OpenError::Refused(reason)) => {
                if !self.refused {
                    input.metrics.files_refused.fetch_add(1, Ordering::Relaxed);
                    warn!(path = %self.path.display(), reason = %reason, "Not reading this path: it is not a file the agent may follow; will look again.");
                    self.refused = true;
                }
                return None;
            }
        };
        self.reported_error = false;
        self.refused = false;
        let mut open = OpenFile {
            dev: meta.dev(),
            ino: meta.ino(),
            identity: None,
            source_identity: String::new(),
            read_offset: 0,
            line_start: 0,
            pending: Vec::new(),
            overflow: false,
            last_data: Instant::now(),
            read_at: Utc::now(),
            gzip: None,
            file,
        };
        if self.path.extension().is_some_and(|e| e == "gz") {
            // Rotated and compressed: it will not grow; read it whole through gunzip.
            open.gzip = open.file.try_clone().ok().map(flate2::read::GzDecoder::new);
        }
        open.learn_identity();
        let (saved, known_path, lost) = match input.checkpoints.lock() {
            Ok(store) => (
                open.identity.and_then(|identity| store.offset(&identity)),
                store.knows_path(&self.path_text),
                store.lost_since().is_some(),
            ),
            Err(_) => (None, false, false),
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
            None if first_look && input.settings.start_at == StartAt::End && lost => {
                warn!(path = %self.path.display(), "Checkpoints were lost: reading the file from its start, not its end, so no line written while the agent was down is skipped (lines delivered before are sent again with the same event ids).");
                0
            }
            None if first_look && input.settings.start_at == StartAt::End && !known_path => {
                let end = last_line_end(&open.file, meta.len(), input.settings.max_line_bytes);
                info!(path = %self.path.display(), offset = end, "Reading new lines from the end of the file.");
                end
            }
            None => {
                info!(path = %self.path.display(), "Reading the file from its start.");
                0
            }
        };
        if start > 0 {
            let skipped = match open.gzip.as_mut() {
                // A gzip stream cannot seek: read past what was delivered.
                Some(gzip) => io::copy(&mut Read::by_ref(gzip).take(start), &mut io::sink())
                    .is_ok_and(|n| n == start),
                None => open.file.seek(SeekFrom::Start(start)).is_ok(),
            };
            if !skipped {
                return None;
            }
        }
        open.read_offset = start;
        open.line_start = start;
        Some(open)
    }

    /// At the end of the open file: has the path been truncated, replaced or removed?
    fn check_rotation(&mut self, input: &FileInput, draining: &mut Vec<Draining>) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == open.dev && meta.ino() == open.ino => {
                // A gzip file's offsets count decompressed bytes; it is not truncated.
                if open.gzip.is_none() && meta.len() < open.read_offset {
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
                info!(path = %self.path.display(), "File rotated; reading the new file from its start and the old one until it goes quiet.");
                let new = self.try_open(input, false);
                if let Some(old) = std::mem::replace(&mut self.open, new) {
                    draining.push(Draining {
                        path_text: Arc::clone(&self.path_text),
                        open: old,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Renamed away or deleted: keep reading until it goes quiet.
                if let Some(old) = self.open.take() {
                    draining.push(Draining {
                        path_text: Arc::clone(&self.path_text),
                        open: old,
                    });
                }
            }
            Err(e) => {
                debug!(path = %self.path.display(), error = %e, "Cannot stat the file.");
            }
        }
    }
}

/// Reads what `open` has new (at most [`READ_BUDGET`] bytes), sending events as
/// chunks fill.
fn read_new(
    open: &mut OpenFile,
    path_text: &Arc<str>,
    buffer: &mut [u8],
    input: &FileInput,
    chunk: &mut Chunk,
    out: &mpsc::Sender<Chunk>,
) -> io::Result<usize> {
    let mut total = 0;
    while total < READ_BUDGET {
        let n = match open.gzip.as_mut() {
            Some(gzip) => gzip.read(buffer)?,
            None => open.file.read(buffer)?,
        };
        if n == 0 {
            break;
        }
        total += n;
        open.last_data = Instant::now();
        open.read_at = Utc::now();
        let mut from = 0;
        while let Some(newline) = memchr::memchr(b'\n', &buffer[from..n]) {
            let end = from + newline;
            open.read_offset += (end + 1 - from) as u64;
            if open.identity.is_none() {
                open.learn_identity();
            }
            // A line wholly in `buffer` is parsed where it is; one begun in an earlier
            // read (or read before the file could be told) is assembled in `pending`.
            let whole = open.pending.is_empty() && !open.overflow;
            match open.identity {
                Some(identity) if whole => {
                    let max = input.settings.max_line_bytes;
                    open.overflow = end - from > max;
                    let line = &buffer[from..end.min(from + max)];
                    open.take_line(line, path_text, identity, input, chunk);
                }
                identity => {
                    open.append(&buffer[from..end], input.settings.max_line_bytes);
                    if let Some(identity) = identity {
                        open.take_pending(path_text, identity, input, chunk);
                    }
                }
            }
            open.line_start = open.read_offset;
            from = end + 1;
            if chunk.len() >= CHUNK_EVENTS {
                let full = std::mem::replace(chunk, Chunk::with_capacity(CHUNK_EVENTS));
                if out.blocking_send(full).is_err() {
                    return Ok(total);
                }
            }
        }
        open.append(&buffer[from..n], input.settings.max_line_bytes);
        open.read_offset += (n - from) as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
