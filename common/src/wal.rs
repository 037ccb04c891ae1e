//! A write-ahead log: segments of CRC-checked records, appended and fsynced in groups,
//! read back from an acknowledgement point. The agent's disk buffer is one (it holds
//! events between the inputs and the shipper, so nothing read is lost while the
//! collector is down or the agent restarts: its buffer stage appends and fsyncs, its
//! ship stage reads durable records and acknowledges them after a 2xx).
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

mod read;
mod records;
mod recovery;

pub use self::records::{Batch, Records};
use self::recovery::*;

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

/// What [`inspect`] found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub segment: u64,
    /// The file's length.
    pub bytes: u64,
    /// Where reading starts in it (the ack point's offset in the oldest one, else 0).
    pub from: u64,
    /// Whole records from there.
    pub records: u64,
    /// Bytes of records from there.
    pub pending_bytes: u64,
    /// Unreadable stretches from there (lost events).
    pub lost: Vec<LostStretch>,
    /// An incomplete last record (newest segment): a write a crash cut short, or one
    /// the running agent is making.
    pub torn_bytes: u64,
}

/// A buffer directory as [`inspect`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The first record not yet acknowledged.
    pub acked: Position,
    /// Whether `ack` was there and readable (else delivery restarts at the oldest
    /// segment).
    pub ack_readable: bool,
    /// Segments from the ack point's on, oldest first.
    pub segments: Vec<SegmentReport>,
}

impl Inspection {
    /// Records not yet acknowledged.
    pub fn pending_records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Bytes of them.
    pub fn pending_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.pending_bytes).sum()
    }

    /// Unreadable stretches among them.
    pub fn lost(&self) -> impl Iterator<Item = &LostStretch> {
        self.segments.iter().flat_map(|s| s.lost.iter())
    }
}

/// Reads the buffer in `dir` without changing anything (no recovery, no cut, no
/// deletion; safe while an agent runs on it): every segment from the ack point,
/// record by record, CRC-checked as recovery would, each pending record's payload
/// handed to `record` in order.
pub fn inspect(dir: &Path, record: &mut dyn FnMut(&[u8])) -> Result<Inspection, BufferError> {
    let segments = list_segments(dir)?;
    let saved = fs::read(dir.join("ack"))
        .ok()
        .and_then(|bytes| read_ack(&bytes));
    let mut acked = saved.unwrap_or(Position {
        segment: segments.first().copied().unwrap_or(0),
        offset: 0,
    });
    if segments.first().is_some_and(|s| *s > acked.segment) {
        acked = Position {
            segment: segments[0],
            offset: 0,
        };
    }
    let live: Vec<u64> = segments
        .into_iter()
        .filter(|s| *s >= acked.segment)
        .collect();
    let mut reports = Vec::new();
    for (i, segment) in live.iter().enumerate() {
        let from = if *segment == acked.segment {
            acked.offset
        } else {
            0
        };
        let mut pending_bytes = 0;
        let scanned = match scan_records(
            &segment_path(dir, *segment),
            from,
            i + 1 == live.len(),
            &mut |payload| {
                pending_bytes += payload.len() as u64;
                record(payload);
            },
        ) {
            Ok(scanned) => scanned,
            // The running agent acknowledged it and deleted it since it was listed.
            Err(BufferError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                continue;
            }
            Err(e) => return Err(e),
        };
        reports.push(SegmentReport {
            segment: *segment,
            bytes: scanned.len,
            from,
            records: scanned.records,
            pending_bytes,
            lost: scanned
                .lost
                .iter()
                .map(|(start, end, records)| LostStretch {
                    segment: *segment,
                    offset: *start,
                    bytes: end - start,
                    records: *records,
                })
                .collect(),
            torn_bytes: scanned.torn,
        });
    }
    Ok(Inspection {
        acked,
        ack_readable: saved.is_some(),
        segments: reports,
    })
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

/// A writer appending to a segment (created when missing: then the directory is
/// fsynced too, so that a power cut cannot lose the new file's name while the records
/// fdatasynced into it count as durable).
fn segment_writer(dir: &Path, segment: u64) -> Result<BufWriter<File>, BufferError> {
    let path = segment_path(dir, segment);
    let created = !path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    if created {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
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
        let mut segments = list_segments(dir)?;
        let ack_path = dir.join("ack");
        let saved = fs::read(&ack_path).ok().and_then(|bytes| read_ack(&bytes));
        let acked = drop_acked(dir, &mut segments, saved);
        let Recovered {
            recovery,
            end,
            mut sealed,
            holes,
        } = recover_segments(dir, &segments, acked)?;
        let mut end = end.unwrap_or(acked);
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
            // Gone already (a delete that failed after an earlier one worked, retried):
            // what is wanted, not an error that would repeat on every ack.
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
                _ => {}
            }
            self.segments.retain(|s| *s != segment);
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

#[cfg(test)]
mod tests;
