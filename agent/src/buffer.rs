//! The disk buffer: a segment log that holds events between the inputs and the
//! shipper, so nothing read is lost while the collector is down or the agent restarts.
//! `lib.rs` runs it: the buffer stage appends and fsyncs, the ship stage reads durable
//! records and acknowledges them after a 2xx.
//!
//! ## On disk
//!
//! `<dir>/<seq>.seg` (`seq` zero-padded to 20 digits, increasing), each a run of records
//!
//! ```text
//! [payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]
//! ```
//!
//! and `<dir>/ack`: the segment and byte offset of the first record not yet
//! acknowledged (u64 LE each) and the CRC-32 of those 16 bytes. Created once (written
//! to `ack.tmp`, renamed over `ack`, fsynced with its directory), then rewritten in
//! place on every acknowledgement (one `pwrite`; creating and renaming a file per
//! batch cost the agent a tenth of its CPU per line) and fdatasynced at most once a
//! second, and on close. An `ack` whose CRC does not match (a write torn by a power
//! cut) reads as the start of the oldest segment: delivery repeats, nothing is lost.
//! A 16-byte `ack` without a CRC (written by earlier versions) is read as it is.
//!
//! ## Invariants
//!
//! - Records are appended, never changed. The writer appends to the newest segment and
//!   starts a new one once it holds `segment_max_bytes`.
//! - What [`DiskBuffer::sync`] returned for is on disk (fdatasync); callers group
//!   commits (every ~100 ms or N records) and advance input checkpoints only then.
//! - A segment is deleted once every record in it is acknowledged; the newest one by
//!   [`DiskBuffer::reclaim`] (it starts an empty one), when everything is acknowledged.
//! - Reads start at the saved ack point after a restart: what was read but not
//!   acknowledged, and after a power cut up to a second's acknowledgements, is read
//!   again (at least once; event ids make it idempotent).
//!
//! ## Recovery
//!
//! On open every segment from the acknowledged position is scanned. The first record
//! whose header or payload runs past the end of its segment (a torn write) or whose
//! CRC does not match (corruption) ends the log: its segment is truncated there and
//! any later segments are removed. Everything before it is kept. What was cut is
//! reported (and logged at ERROR by the caller: those events are lost).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

/// Bytes of a record header.
const HEADER: u64 = 8;
/// The largest record accepted (an event is far smaller).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Why the buffer failed.
#[derive(Debug, Error)]
pub enum BufferError {
    #[error("disk buffer I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("record of {0} bytes is larger than the buffer accepts")]
    TooLarge(usize),
}

/// A position in the log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What recovery found on open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records kept, not yet acknowledged.
    pub records: u64,
    /// Bytes cut from the end of the log (torn or corrupt), and whether a CRC failed.
    pub cut_bytes: u64,
    pub corrupt: bool,
}

/// Records read by [`DiskBuffer::read_into`]: their bytes back to back, where each
/// ends, and the position after the last. Kept and reused by the ship stage.
#[derive(Debug, Default)]
pub struct Batch {
    /// Where [`DiskBuffer::read_into`] reads to; handed over to `shared` when done.
    filling: Vec<u8>,
    /// The records' bytes, shareable: the HTTP shipper sends them without a copy, and
    /// their memory comes back for the next batch once the request has let go of it.
    bytes: Bytes,
    ends: Vec<usize>,
    last: Option<Position>,
}

impl Batch {
    /// Emptied for reading into, reusing the memory of the last batch's bytes when
    /// nothing else holds them any more.
    fn start_filling(&mut self) {
        if let Ok(back) = std::mem::take(&mut self.bytes).try_into_mut() {
            self.filling = Vec::from(back);
        }
        self.filling.clear();
        self.ends.clear();
        self.last = None;
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The position after the last record: what to acknowledge once it is delivered.
    pub fn last(&self) -> Option<Position> {
        self.last
    }

    pub fn records(&self) -> Records<'_> {
        Records {
            bytes: &self.bytes,
            shared: Some(&self.bytes),
            ends: &self.ends,
            from: 0,
        }
    }
}

/// A run of records stored back to back (a [`Batch`] or part of one).
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    bytes: &'a [u8],
    /// `bytes` as shared memory, when they are (a [`Batch`]'s).
    shared: Option<&'a Bytes>,
    /// Where each record ends in `bytes`.
    ends: &'a [usize],
    /// Where the first record starts in `bytes`.
    from: usize,
}

impl<'a> Records<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Record `i`.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { self.from } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let (bytes, ends) = (self.bytes, self.ends);
        let mut start = self.from;
        ends.iter().map(move |&end| {
            let record = &bytes[start..end];
            start = end;
            record
        })
    }

    /// Every record's bytes in one slice.
    pub fn bytes(&self) -> &'a [u8] {
        let end = self.ends.last().copied().unwrap_or(self.from);
        &self.bytes[self.from..end]
    }

    /// [`Records::bytes`] as shared memory: without a copy when they are a batch's.
    pub fn shared_bytes(&self) -> Bytes {
        let end = self.ends.last().copied().unwrap_or(self.from);
        match self.shared {
            Some(shared) => shared.slice(self.from..end),
            None => Bytes::copy_from_slice(&self.bytes[self.from..end]),
        }
    }

    /// The first `n` records and the rest.
    pub fn split_at(&self, n: usize) -> (Records<'a>, Records<'a>) {
        let (first, second) = self.ends.split_at(n.min(self.ends.len()));
        let middle = first.last().copied().unwrap_or(self.from);
        (
            Records {
                bytes: self.bytes,
                shared: self.shared,
                ends: first,
                from: self.from,
            },
            Records {
                bytes: self.bytes,
                shared: self.shared,
                ends: second,
                from: middle,
            },
        )
    }
}

/// A flush waiting for its fdatasync (see [`DiskBuffer::begin_sync`]).
pub struct PendingSync {
    file: File,
    path: PathBuf,
    upto: Position,
}

impl PendingSync {
    /// fdatasyncs the segment (the slow part; needs no lock).
    pub fn sync(&self) -> Result<(), BufferError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

/// The buffer. One writer and one reader, both in this value.
pub struct DiskBuffer {
    dir: PathBuf,
    segment_max_bytes: u64,
    max_bytes: u64,
    /// Segments on disk, oldest first.
    segments: Vec<u64>,
    /// Lengths of the segments no longer written to (all but the newest), so sizes
    /// are known without asking the filesystem on every append.
    sealed: BTreeMap<u64, u64>,
    writer: BufWriter<File>,
    write_at: Position,
    /// What the last [`DiskBuffer::sync`] made durable; readers stop there, so nothing
    /// is shipped before it is on disk (and the inputs' checkpoints have moved past it).
    durable: Position,
    read_at: Position,
    acked: Position,
    /// `<dir>/ack`, once this buffer has written it (then rewritten in place).
    ack_file: Option<File>,
    /// Whether the ack point was written since its last fsync, and when that was.
    ack_unsynced: bool,
    ack_synced_at: Option<Instant>,
}

/// How often the ack point, rewritten in place on every acknowledgement, is also
/// fdatasynced. A killed process loses nothing of it (the page cache
/// survives); a power cut repeats at most this much delivery, which event ids make
/// harmless. Drop and [`DiskBuffer::reclaim`] fsync it at once.
const ACK_SYNC_INTERVAL: Duration = Duration::from_secs(1);

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends exactly `len` bytes from `file` to `out` (into its spare capacity: nothing
/// is zeroed first).
fn read_span(file: &mut File, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let want = out.len() + len;
    out.reserve(len);
    file.take(len as u64).read_to_end(out)?;
    if out.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "segment shorter than its records",
        ));
    }
    Ok(())
}

/// The ack point as `<dir>/ack` holds it: segment, offset, CRC-32 of the two.
fn ack_bytes(at: Position) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&at.segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&at.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// The ack point in `<dir>/ack`'s bytes: 20 with a matching CRC, or 16 (no CRC, as
/// earlier versions wrote it); `None` for anything else (torn, corrupt).
fn read_ack(bytes: &[u8]) -> Option<Position> {
    let number = |at: usize| {
        bytes
            .get(at..at + 8)?
            .try_into()
            .ok()
            .map(u64::from_le_bytes)
    };
    let position = Position {
        segment: number(0)?,
        offset: number(8)?,
    };
    match bytes.len() {
        16 => Some(position),
        20 => {
            let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
            (crc == crc32fast::hash(&bytes[..16])).then_some(position)
        }
        _ => None,
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.seg"))
}

/// A writer appending to a segment (created when missing).
fn segment_writer(dir: &Path, segment: u64) -> Result<BufWriter<File>, BufferError> {
    let path = segment_path(dir, segment);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok(BufWriter::with_capacity(256 * 1024, file))
}

impl DiskBuffer {
    /// Opens (or creates) the buffer in `dir`, recovering as the module doc says.
    pub fn open(
        dir: &Path,
        segment_max_bytes: u64,
        max_bytes: u64,
    ) -> Result<(DiskBuffer, Recovery), BufferError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_suffix(".seg").and_then(|n| n.parse().ok())
            })
            .collect();
        segments.sort_unstable();
        let ack_path = dir.join("ack");
        let saved = fs::read(&ack_path).ok().and_then(|bytes| read_ack(&bytes));
        let mut acked = saved.unwrap_or(Position {
            segment: segments.first().copied().unwrap_or(0),
            offset: 0,
        });
        // Segments wholly before the ack point are acknowledged garbage.
        for segment in segments.iter().filter(|s| **s < acked.segment) {
            let _ = fs::remove_file(segment_path(dir, *segment));
        }
        segments.retain(|s| *s >= acked.segment);
        if segments.first().is_some_and(|s| *s > acked.segment) {
            acked = Position {
                segment: segments[0],
                offset: 0,
            };
        }

        let mut recovery = Recovery::default();
        let mut end = acked;
        let mut cut_from: Option<usize> = None;
        let mut sealed = BTreeMap::new();
        for (i, segment) in segments.iter().enumerate() {
            let path = segment_path(dir, *segment);
            let start = if *segment == acked.segment {
                acked.offset
            } else {
                0
            };
            let (records, good_end, len, corrupt) = scan(&path, start)?;
            recovery.records += records;
            sealed.insert(*segment, good_end);
            end = Position {
                segment: *segment,
                offset: good_end,
            };
            if good_end < len {
                recovery.cut_bytes += len - good_end;
                recovery.corrupt |= corrupt;
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                file.set_len(good_end).map_err(io_err(&path))?;
                file.sync_all().map_err(io_err(&path))?;
                cut_from = Some(i + 1);
                break;
            }
        }
        if let Some(first_dropped) = cut_from {
            for segment in segments.drain(first_dropped..) {
                let path = segment_path(dir, segment);
                recovery.cut_bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(&path);
            }
        }
        if segments.is_empty() {
            segments.push(acked.segment);
            end = Position {
                segment: acked.segment,
                offset: 0,
            };
        }
        // The newest segment is written to; its length is `write_at`.
        sealed.retain(|segment, _| *segment != end.segment);
        let writer = segment_writer(dir, end.segment)?;
        let buffer = DiskBuffer {
            dir: dir.to_path_buf(),
            segment_max_bytes,
            max_bytes,
            segments,
            sealed,
            writer,
            write_at: end,
            durable: end,
            read_at: acked,
            acked,
            // A readable ack is rewritten in place; an unreadable one is replaced whole.
            ack_file: saved.and_then(|_| OpenOptions::new().write(true).open(&ack_path).ok()),
            ack_unsynced: false,
            ack_synced_at: None,
        };
        Ok((buffer, recovery))
    }

    /// Appends one record (buffered; durable after [`DiskBuffer::sync`]).
    pub fn append(&mut self, payload: &[u8]) -> Result<Position, BufferError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(BufferError::TooLarge(payload.len()));
        }
        if self.write_at.offset >= self.segment_max_bytes {
            self.roll()?;
        }
        let mut header = [0u8; HEADER as usize];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        // The segment's path is made only for an error: this runs once per event.
        let written = self
            .writer
            .write_all(&header)
            .and_then(|()| self.writer.write_all(payload));
        if let Err(e) = written {
            return Err(io_err(&segment_path(&self.dir, self.write_at.segment))(e));
        }
        self.write_at.offset += HEADER + payload.len() as u64;
        Ok(self.write_at)
    }

    /// Flushes and fdatasyncs the newest segment: everything appended is durable.
    pub fn sync(&mut self) -> Result<(), BufferError> {
        let pending = self.begin_sync()?;
        pending.sync()?;
        self.end_sync(pending);
        Ok(())
    }

    /// [`DiskBuffer::sync`] in three steps, so that the fdatasync can run while the
    /// buffer is not locked (the shipper keeps reading and acknowledging): this flushes
    /// what the writer holds; [`PendingSync::sync`] fdatasyncs it; [`DiskBuffer::end_sync`]
    /// lets readers see it. Appending in between is not allowed (the buffer stage,
    /// the only writer, waits for its own fsync).
    pub fn begin_sync(&mut self) -> Result<PendingSync, BufferError> {
        let path = segment_path(&self.dir, self.write_at.segment);
        self.writer.flush().map_err(io_err(&path))?;
        let file = self.writer.get_ref().try_clone().map_err(io_err(&path))?;
        Ok(PendingSync {
            file,
            path,
            upto: self.write_at,
        })
    }

    /// Everything [`DiskBuffer::begin_sync`] flushed is on disk: readers may take it.
    pub fn end_sync(&mut self, done: PendingSync) {
        // (A reclaim meanwhile may have started a new segment: `durable` stays ahead.)
        self.durable = self.durable.max(done.upto);
    }

    /// Forgets everything appended since the last [`DiskBuffer::sync`]: what the writer
    /// holds is dropped unwritten, segments begun since are deleted and the durable one
    /// is cut back to its durable length. After a failed append or sync (a full disk)
    /// the buffer may hold part of a record; this makes it whole again, and the caller
    /// appends those events anew.
    pub fn rollback(&mut self) -> Result<(), BufferError> {
        let durable = self.durable;
        let path = segment_path(&self.dir, durable.segment);
        // into_parts: the old writer's buffer is discarded, not flushed on drop.
        let old = std::mem::replace(
            &mut self.writer,
            segment_writer(&self.dir, durable.segment)?,
        );
        drop(old.into_parts());
        for segment in self.segments.iter().filter(|s| **s > durable.segment) {
            let newer = segment_path(&self.dir, *segment);
            match fs::remove_file(&newer) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&newer)(e)),
                _ => {}
            }
        }
        self.segments.retain(|s| *s <= durable.segment);
        self.sealed.retain(|s, _| *s < durable.segment);
        self.writer
            .get_ref()
            .set_len(durable.offset)
            .map_err(io_err(&path))?;
        self.write_at = durable;
        Ok(())
    }

    fn roll(&mut self) -> Result<(), BufferError> {
        // The sealed segment is made durable on disk now (sync() fsyncs only the
        // newest), but its records are durable for readers only at the next sync(),
        // so a rollback can still undo them.
        let sealed = segment_path(&self.dir, self.write_at.segment);
        self.writer.flush().map_err(io_err(&sealed))?;
        self.writer.get_ref().sync_data().map_err(io_err(&sealed))?;
        let next = self.write_at.segment + 1;
        self.writer = segment_writer(&self.dir, next)?;
        self.sealed
            .insert(self.write_at.segment, self.write_at.offset);
        self.segments.push(next);
        self.write_at = Position {
            segment: next,
            offset: 0,
        };
        Ok(())
    }

    /// Up to `max` durable records after the reader's position into `batch` (emptied
    /// first; its memory is reused), back to back, with the position just after the
    /// last (what to acknowledge once they are delivered). Each segment's span is read
    /// with one `read`, and the headers are dropped in place: no allocation per record.
    pub fn read_into(&mut self, max: usize, batch: &mut Batch) -> Result<(), BufferError> {
        batch.start_filling();
        let read = self.fill(max, batch);
        batch.bytes = Bytes::from(std::mem::take(&mut batch.filling));
        read
    }

    fn fill(&mut self, max: usize, batch: &mut Batch) -> Result<(), BufferError> {
        while batch.ends.len() < max && self.read_at < self.durable {
            let path = segment_path(&self.dir, self.read_at.segment);
            let segment_end = if self.read_at.segment == self.durable.segment {
                self.durable.offset
            } else {
                self.sealed.get(&self.read_at.segment).copied().unwrap_or(0)
            };
            if self.read_at.offset >= segment_end {
                match self.segments.iter().find(|s| **s > self.read_at.segment) {
                    Some(next) => {
                        self.read_at = Position {
                            segment: *next,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            // Read what `max` records may take at the batch's average record size so
            // far (a guess; the rest is read again next time), at least 64 KiB.
            let wanted = max - batch.ends.len();
            let average = if batch.ends.is_empty() {
                1024
            } else {
                batch.filling.len() / batch.ends.len() + HEADER as usize
            };
            let span = (segment_end - self.read_at.offset)
                .min((wanted * average).max(64 * 1024) as u64) as usize;
            let mut file = File::open(&path).map_err(io_err(&path))?;
            file.seek(SeekFrom::Start(self.read_at.offset))
                .map_err(io_err(&path))?;
            let start = batch.filling.len();
            read_span(&mut file, span, &mut batch.filling).map_err(io_err(&path))?;
            // Walk the records read, moving each payload down over the headers.
            let (mut from, mut to) = (start, start);
            while batch.ends.len() < max {
                let Some(header) = batch.filling.get(from..from + HEADER as usize) else {
                    break;
                };
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let body = from + HEADER as usize;
                if body + len > start + span {
                    if from == start {
                        // A first record larger than the span: read it whole.
                        read_span(&mut file, body + len - (start + span), &mut batch.filling)
                            .map_err(io_err(&path))?;
                    } else {
                        break;
                    }
                }
                batch.filling.copy_within(body..body + len, to);
                to += len;
                from = body + len;
                batch.ends.push(to);
                self.read_at.offset += HEADER + len as u64;
            }
            batch.filling.truncate(to);
            batch.last = Some(self.read_at);
        }
        Ok(())
    }

    /// Acknowledges everything before `upto` (a position [`Batch::last`] gave):
    /// persists the ack point and deletes segments left wholly behind it. When that
    /// acknowledges everything and the newest segment holds an eighth of
    /// `segment_max_bytes` or more, it is replaced by an empty one
    /// ([`DiskBuffer::reclaim`]), so an idle buffer holds next to nothing on disk.
    pub fn ack(&mut self, upto: Position) -> Result<(), BufferError> {
        if upto <= self.acked {
            return Ok(());
        }
        self.acked = upto;
        let sync = self
            .ack_synced_at
            .is_none_or(|at| at.elapsed() >= ACK_SYNC_INTERVAL);
        self.persist_ack(sync)?;
        let done: Vec<u64> = self
            .segments
            .iter()
            .copied()
            .filter(|s| *s < upto.segment)
            .collect();
        for segment in done {
            let path = segment_path(&self.dir, segment);
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        self.segments.retain(|s| *s >= upto.segment);
        self.sealed.retain(|s, _| *s >= upto.segment);
        self.reclaim((self.segment_max_bytes / 8).max(1))?;
        Ok(())
    }

    /// Writes the ack point: `ack.tmp` renamed over `ack`; with `sync`, the file is
    /// fsynced before and the directory after.
    fn persist_ack(&mut self, sync: bool) -> Result<(), BufferError> {
        if sync {
            self.ack_synced_at = Some(Instant::now());
        }
        let bytes = ack_bytes(self.acked);
        if let Some(file) = &self.ack_file {
            // The path is made only for an error: this runs once per batch.
            let error = |e| io_err(&self.dir.join("ack"))(e);
            file.write_all_at(&bytes, 0).map_err(error)?;
            if sync {
                file.sync_data().map_err(error)?;
            }
            self.ack_unsynced = !sync;
            return Ok(());
        }
        // The first time: the file appears whole (renamed into place) and durable.
        let tmp = self.dir.join("ack.tmp");
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        let ack = self.dir.join("ack");
        fs::rename(&tmp, &ack).map_err(io_err(&ack))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        self.ack_file = Some(file);
        self.ack_synced_at = Some(Instant::now());
        self.ack_unsynced = false;
        Ok(())
    }

    /// When every record is acknowledged (nothing appended since the last sync either)
    /// and the newest segment holds at least `min_bytes`: starts an empty segment and
    /// deletes that one, giving its space back. True when it did.
    ///
    /// A segment is otherwise deleted only once it has rolled, so without this a disk
    /// that the newest segment alone has filled would never free, however much is
    /// acknowledged: the buffer stage calls it with 0 while a write fails.
    ///
    /// Crash-safe in any order: the old segment is deleted before the ack point moves,
    /// and [`DiskBuffer::open`] takes an ack point older than every segment as the
    /// start of the oldest. That is also why a failure to persist the ack point here
    /// (the disk is full) is not an error.
    pub fn reclaim(&mut self, min_bytes: u64) -> Result<bool, BufferError> {
        let end = self.write_at;
        if self.acked != end || self.durable != end || end.offset == 0 || end.offset < min_bytes {
            return Ok(false);
        }
        let next = end.segment + 1;
        self.writer = segment_writer(&self.dir, next)?;
        let old = segment_path(&self.dir, end.segment);
        fs::remove_file(&old).map_err(io_err(&old))?;
        let start = Position {
            segment: next,
            offset: 0,
        };
        self.segments = vec![next];
        self.sealed.clear();
        (self.write_at, self.durable, self.read_at, self.acked) = (start, start, start, start);
        let _ = self.persist_ack(true);
        Ok(true)
    }

    /// The oldest durable record not yet acknowledged, without moving the reader (for
    /// the heartbeat's "oldest unshipped" age).
    pub fn peek_oldest(&self) -> Result<Option<Vec<u8>>, BufferError> {
        let mut at = self.acked;
        while at < self.durable {
            let end = if at.segment == self.write_at.segment {
                self.write_at.offset
            } else {
                self.sealed.get(&at.segment).copied().unwrap_or(0)
            };
            if at.offset >= end {
                match self.segments.iter().find(|s| **s > at.segment) {
                    Some(next) => {
                        at = Position {
                            segment: *next,
                            offset: 0,
                        };
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let path = segment_path(&self.dir, at.segment);
            let mut file = File::open(&path).map_err(io_err(&path))?;
            file.seek(SeekFrom::Start(at.offset))
                .map_err(io_err(&path))?;
            let mut header = [0u8; HEADER as usize];
            file.read_exact(&mut header).map_err(io_err(&path))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut payload = vec![0u8; len];
            file.read_exact(&mut payload).map_err(io_err(&path))?;
            return Ok(Some(payload));
        }
        Ok(None)
    }

    /// Bytes on disk not yet acknowledged.
    pub fn unacked_bytes(&self) -> u64 {
        let mut total = 0;
        for segment in &self.segments {
            let len = if *segment == self.write_at.segment {
                self.write_at.offset
            } else {
                self.sealed.get(segment).copied().unwrap_or(0)
            };
            let from = if *segment == self.acked.segment {
                self.acked.offset
            } else {
                0
            };
            total += len.saturating_sub(from);
        }
        total
    }

    /// Whether the buffer holds `max_bytes` or more: inputs pause.
    pub fn is_full(&self) -> bool {
        self.unacked_bytes() >= self.max_bytes
    }
}

impl Drop for DiskBuffer {
    /// fsyncs the ack point (best effort: a failure repeats delivery).
    fn drop(&mut self) {
        if self.ack_unsynced {
            let _ = self.persist_ack(true);
        }
    }
}

/// Scans records from `start`: (records, end of the last good record, file length,
/// whether a CRC failed).
fn scan(path: &Path, start: u64) -> Result<(u64, u64, u64, bool), BufferError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let len = bytes.len() as u64;
    let mut at = start.min(len) as usize;
    let mut records = 0;
    loop {
        let Some(header) = bytes.get(at..at + HEADER as usize) else {
            return Ok((records, at as u64, len, false));
        };
        let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_start = at + HEADER as usize;
        let Some(payload) = bytes.get(body_start..body_start + size) else {
            return Ok((records, at as u64, len, false));
        };
        if crc32fast::hash(payload) != crc {
            return Ok((records, at as u64, len, true));
        }
        records += 1;
        at = body_start + size;
    }
}

#[cfg(test)]
mod tests;
