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
//! [magic "PK\xFE\xFF"][payload length: u32 LE][CRC-32 of length and payload: u32 LE][payload]
//! ```
//!
//! The magic lets recovery find the next record after a damaged one, and the CRC, which
//! covers the length too, tells a real record from bytes that happen to look like one.
//! Read as a length the magic is 0xFFFE4B50, larger than [`MAX_RECORD_BYTES`], and its
//! bytes 0xFE and 0xFF never occur in UTF-8 (so not in an event's JSON).
//!
//! Records written before the magic (version 1 of this format, up to 0.1.0) are
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`. A record is told
//! by its first four bytes: the magic, or else an old record (a length of at most
//! [`MAX_RECORD_BYTES`] cannot be the magic). Old segments are read as they are, and an
//! upgraded agent appends new records after old ones in the segment it finds newest: a
//! buffer written by an earlier version is shipped, not lost.
//!
//! `<dir>/ack`: the segment and byte offset of the first record not yet
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
//! On open every segment from the acknowledged position is scanned, record by record
//! (CRC checked). A record that does not check out (a flipped byte, a wrong length)
//! starts a *lost stretch*, which ends at the next record that does: found by its magic
//! (or, in an old-format stretch, by a length that fits and a matching CRC, tried
//! within a bounded amount of CRC work). The stretch is skipped when reading and
//! reported with its bytes and the records in it (the damaged one and each magic
//! inside): those events are lost, and the caller logs them at ERROR and counts them.
//! Everything before and after it, later segments included, is kept.
//!
//! A stretch that reaches the end of the newest segment is cut off (the file is
//! truncated there, so appends go on from whole records). When its last record is
//! incomplete (its header or payload runs past the end of the file) or all zeros, that
//! record is a *torn tail*: a write a crash interrupted, never fsynced, so the inputs'
//! checkpoints never passed its lines and they are read again; it is reported apart,
//! not as lost. In a sealed segment (fsynced whole before the next was begun) nothing
//! is torn: an unreadable end is a lost stretch like any other.
//!
//! A lost stretch is skipped, not erased: a restart before the records ahead of it are
//! acknowledged finds and reports it again. An acknowledgement that reaches its start
//! moves the ack point past it.

pub mod config;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

/// The first bytes of every record (see the module doc).
const MAGIC: [u8; 4] = [b'P', b'K', 0xFE, 0xFF];
/// Bytes of a record header: magic, length, CRC.
const HEADER: u64 = 12;
/// Bytes of an old-format (version 1) record header: length, CRC.
const OLD_HEADER: u64 = 8;
/// Most payload bytes CRC-checked while looking for the next old-format record after a
/// damaged one (old records have no magic: each offset whose bytes read as a length
/// that fits is a candidate). Past it the rest of the segment is given up as lost.
const OLD_RESYNC_CRC_BYTES: usize = 256 * 1024 * 1024;
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
    /// Bytes of a torn tail cut from the newest segment: never fsynced, so their lines
    /// are read again by the inputs (not lost).
    pub torn_bytes: u64,
    /// Unreadable stretches skipped (or cut off the newest segment): lost events.
    pub lost: Vec<LostStretch>,
}

impl Recovery {
    /// Records lost in all stretches.
    pub fn lost_records(&self) -> u64 {
        self.lost.iter().map(|l| l.records).sum()
    }

    /// Bytes lost in all stretches.
    pub fn lost_bytes(&self) -> u64 {
        self.lost.iter().map(|l| l.bytes).sum()
    }
}

/// Bytes of a segment that do not read as records (see the module doc's recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostStretch {
    pub segment: u64,
    /// Where the stretch starts in the segment.
    pub offset: u64,
    pub bytes: u64,
    /// Records in it: the damaged one where it starts, and each magic after that.
    pub records: u64,
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
    /// Lost stretches recovery found, per segment, oldest first: `[start, end)` byte
    /// ranges that readers skip.
    holes: BTreeMap<u64, Vec<(u64, u64)>>,
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
        let mut sealed = BTreeMap::new();
        let mut holes: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        for (i, segment) in segments.iter().enumerate() {
            let path = segment_path(dir, *segment);
            let start = if *segment == acked.segment {
                acked.offset
            } else {
                0
            };
            let newest = i + 1 == segments.len();
            let scanned = scan(&path, start, newest)?;
            recovery.records += scanned.records;
            recovery.torn_bytes += scanned.torn;
            for (from, to, records) in scanned.lost {
                recovery.lost.push(LostStretch {
                    segment: *segment,
                    offset: from,
                    bytes: to - from,
                    records,
                });
                if to <= scanned.end {
                    holes.entry(*segment).or_default().push((from, to));
                }
            }
            if scanned.end < scanned.len {
                // Only the newest segment is cut: appends go on from whole records.
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                file.set_len(scanned.end).map_err(io_err(&path))?;
                file.sync_all().map_err(io_err(&path))?;
            }
            sealed.insert(*segment, scanned.end);
            end = Position {
                segment: *segment,
                offset: scanned.end,
            };
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
        // A lost stretch right at the ack point is passed at once (and saved below), so
        // a restart does not find and report it again.
        let mut start = acked;
        skip_holes(&holes, &mut start);
        let mut buffer = DiskBuffer {
            dir: dir.to_path_buf(),
            segment_max_bytes,
            max_bytes,
            segments,
            sealed,
            holes,
            writer,
            write_at: end,
            durable: end,
            read_at: start,
            acked: start,
            // A readable ack is rewritten in place; an unreadable one is replaced whole.
            ack_file: saved.and_then(|_| OpenOptions::new().write(true).open(&ack_path).ok()),
            ack_unsynced: false,
            ack_synced_at: None,
        };
        if start != acked {
            buffer.persist_ack(true)?;
        }
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
        header[..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[8..].copy_from_slice(&record_crc(payload).to_le_bytes());
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
            // Up to the next lost stretch, once past any the reader is at.
            let segment_end = skip_holes(&self.holes, &mut self.read_at).min(segment_end);
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
                let Some((header, len)) = batch.filling.get(from..).and_then(record_header) else {
                    break;
                };
                let body = from + header;
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
                self.read_at.offset += (header + len) as u64;
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
        let mut upto = upto;
        skip_holes(&self.holes, &mut upto);
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
        self.holes.retain(|s, _| *s >= upto.segment);
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
        self.holes.clear();
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
            let end = skip_holes(&self.holes, &mut at).min(end);
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
            file.read_exact(&mut header[..OLD_HEADER as usize])
                .map_err(io_err(&path))?;
            if header[..4] == MAGIC {
                file.read_exact(&mut header[OLD_HEADER as usize..])
                    .map_err(io_err(&path))?;
            }
            let Some((_, len)) = record_header(&header) else {
                return Ok(None);
            };
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

/// A record header at the start of `bytes`: its length and the payload's, or `None`
/// when `bytes` is shorter than the header. The magic says which format it is.
fn record_header(bytes: &[u8]) -> Option<(usize, usize)> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bytes.get(..4)? == MAGIC {
        bytes
            .get(..HEADER as usize)
            .and(word(4))
            .map(|len| (HEADER as usize, len))
    } else {
        bytes
            .get(..OLD_HEADER as usize)
            .and(word(0))
            .map(|len| (OLD_HEADER as usize, len))
    }
}

/// The CRC a record's header holds: of its length (u32 LE) and payload.
fn record_crc(payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(payload.len() as u32).to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Moves `at` past the lost stretches it is at; returns where the next one starts in
/// its segment (`u64::MAX` when none follows).
fn skip_holes(holes: &BTreeMap<u64, Vec<(u64, u64)>>, at: &mut Position) -> u64 {
    for (start, end) in holes
        .get(&at.segment)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if *start <= at.offset && at.offset < *end {
            at.offset = *end;
        } else if *start > at.offset {
            return *start;
        }
    }
    u64::MAX
}

/// What a record at some offset of a segment is.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// Whole and CRC-checked; the next record starts at `next`. `old`: version 1.
    Good { next: usize, old: bool },
    /// Its header or payload runs past the end of the segment.
    Incomplete,
    /// Anything else: a CRC that does not match, an impossible length.
    Bad,
}

fn check(bytes: &[u8], at: usize) -> Check {
    let rest = bytes.get(at..).unwrap_or_default();
    let Some((header, len)) = record_header(rest) else {
        return Check::Incomplete;
    };
    let old = header == OLD_HEADER as usize;
    // The agent never writes an empty old record: all zeros (a file extended but never
    // written) would otherwise read as a run of them.
    if len > MAX_RECORD_BYTES || (old && len == 0) {
        return Check::Bad;
    }
    let Some(payload) = rest.get(header..header + len) else {
        return Check::Incomplete;
    };
    let crc = u32::from_le_bytes([
        rest[header - 4],
        rest[header - 3],
        rest[header - 2],
        rest[header - 1],
    ]);
    let expected = if old {
        crc32fast::hash(payload)
    } else {
        record_crc(payload)
    };
    if crc == expected {
        Check::Good {
            next: at + header + len,
            old,
        }
    } else {
        Check::Bad
    }
}

/// The first offset at or after `from` where a whole record starts: a current one, found
/// by its magic, or (while the segment may still hold old records, `old`) an old one,
/// within [`OLD_RESYNC_CRC_BYTES`] of CRC work (then by magic only).
fn resync(bytes: &[u8], from: usize, old: bool) -> Option<usize> {
    if !old {
        let mut at = from;
        while let Some(found) = memchr::memmem::find(bytes.get(at..)?, &MAGIC) {
            let candidate = at + found;
            if matches!(check(bytes, candidate), Check::Good { .. }) {
                return Some(candidate);
            }
            at = candidate + 1;
        }
        return None;
    }
    let mut budget = OLD_RESYNC_CRC_BYTES;
    for candidate in from..bytes.len() {
        let Some(head) = bytes.get(candidate..candidate + OLD_HEADER as usize) else {
            // Too short for any record.
            return None;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        // Cheap tests first: most offsets of JSON text read as lengths far too large.
        let fits =
            head[..4] == MAGIC || (len > 0 && candidate + OLD_HEADER as usize + len <= bytes.len());
        if !fits {
            continue;
        }
        if head[..4] != MAGIC {
            if budget < len {
                // Enough guessing: current records can still be found by their magic.
                return resync(bytes, candidate, false);
            }
            budget -= len;
        }
        if matches!(check(bytes, candidate), Check::Good { .. }) {
            return Some(candidate);
        }
    }
    None
}

/// What [`scan`] found in one segment.
#[derive(Debug, Default)]
struct Scanned {
    /// Whole records from the start position.
    records: u64,
    /// Lost stretches: start, end, records in it.
    lost: Vec<(u64, u64, u64)>,
    /// Where the segment's records end: its length, or (newest segment) where an
    /// unreadable end is cut off.
    end: u64,
    /// Bytes of a torn tail after `end` (newest segment).
    torn: u64,
    /// The file's length.
    len: u64,
}

/// Records of the segment at `path` after `start`, as the module doc's recovery says;
/// `newest`: the segment the writer appends to (its end may be torn).
fn scan(path: &Path, start: u64, newest: bool) -> Result<Scanned, BufferError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let len = bytes.len();
    let mut scanned = Scanned {
        len: len as u64,
        end: len as u64,
        ..Scanned::default()
    };
    let mut at = (start as usize).min(len);
    // Old records only come before current ones (an upgraded agent appends after them):
    // a segment that starts with a current record holds none.
    let mut old_possible = !bytes.starts_with(&MAGIC);
    let magics = |from: usize, to: usize| {
        memchr::memmem::find_iter(bytes.get(from..to).unwrap_or_default(), &MAGIC).count() as u64
    };
    while at < len {
        match check(&bytes, at) {
            Check::Good { next, old } => {
                scanned.records += 1;
                old_possible &= old;
                at = next;
            }
            Check::Incomplete | Check::Bad => {
                if let Some(next) = resync(&bytes, at + 1, old_possible) {
                    scanned
                        .lost
                        .push((at as u64, next as u64, 1 + magics(at + 1, next)));
                    at = next;
                    continue;
                }
                // Nothing readable follows. In the newest segment, the last record may
                // be a write a crash cut short: torn, not lost.
                let last = memchr::memmem::rfind(bytes.get(at + 1..).unwrap_or_default(), &MAGIC)
                    .map_or(at, |i| at + 1 + i);
                let torn = newest
                    && (check(&bytes, last) == Check::Incomplete
                        || bytes[last..].iter().all(|b| *b == 0));
                let lost_end = if torn { last } else { len };
                if lost_end > at {
                    scanned
                        .lost
                        .push((at as u64, lost_end as u64, 1 + magics(at + 1, lost_end)));
                }
                if torn {
                    scanned.torn = (len - last) as u64;
                }
                if newest {
                    scanned.end = at as u64;
                }
                break;
            }
        }
    }
    Ok(scanned)
}

#[cfg(test)]
mod tests;
