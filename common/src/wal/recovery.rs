//! Opening a buffer after a stop or a crash (the module doc's "Recovery"): the
//! segments listed, those wholly acknowledged deleted, each scanned from the ack point
//! record by record (CRC-checked, resynchronised past damage), a torn tail cut.

use super::*;

/// The segment numbers in `dir`, oldest first.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, BufferError> {
    let mut segments: Vec<u64> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".seg").and_then(|n| n.parse().ok())
        })
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

/// The ack point (`saved`, else the start of the oldest segment), with the segments
/// wholly before it (acknowledged garbage) deleted and left out of `segments`.
pub(super) fn drop_acked(dir: &Path, segments: &mut Vec<u64>, saved: Option<Position>) -> Position {
    let mut acked = saved.unwrap_or(Position {
        segment: segments.first().copied().unwrap_or(0),
        offset: 0,
    });
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
    acked
}

/// What scanning the segments found.
pub(super) struct Recovered {
    pub(super) recovery: Recovery,
    /// The end of the last whole record of the newest segment (`None`: no segment).
    pub(super) end: Option<Position>,
    /// Each segment's length once cut to whole records.
    pub(super) sealed: BTreeMap<u64, u64>,
    /// Lost stretches before each segment's end, skipped when reading.
    pub(super) holes: BTreeMap<u64, Vec<(u64, u64)>>,
}

/// Scans every segment from the ack point: counts records, finds lost stretches and
/// cuts a torn tail off the newest segment.
pub(super) fn recover_segments(
    dir: &Path,
    segments: &[u64],
    acked: Position,
) -> Result<Recovered, BufferError> {
    let mut found = Recovered {
        recovery: Recovery::default(),
        end: None,
        sealed: BTreeMap::new(),
        holes: BTreeMap::new(),
    };
    for (i, segment) in segments.iter().enumerate() {
        let path = segment_path(dir, *segment);
        let start = if *segment == acked.segment {
            acked.offset
        } else {
            0
        };
        let newest = i + 1 == segments.len();
        let scanned = scan(&path, start, newest)?;
        found.recovery.records += scanned.records;
        found.recovery.torn_bytes += scanned.torn;
        for (from, to, records) in scanned.lost {
            found.recovery.lost.push(LostStretch {
                segment: *segment,
                offset: from,
                bytes: to - from,
                records,
            });
            if to <= scanned.end {
                found.holes.entry(*segment).or_default().push((from, to));
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
        found.sealed.insert(*segment, scanned.end);
        found.end = Some(Position {
            segment: *segment,
            offset: scanned.end,
        });
    }
    Ok(found)
}

/// A record header at the start of `bytes`: its length and the payload's, or `None`
/// when `bytes` is shorter than the header. The magic says which format it is.
pub(super) fn record_header(bytes: &[u8]) -> Option<(usize, usize)> {
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
pub(super) fn record_crc(payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(payload.len() as u32).to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Moves `at` past the lost stretches it is at; returns where the next one starts in
/// its segment (`u64::MAX` when none follows).
pub(super) fn skip_holes(holes: &BTreeMap<u64, Vec<(u64, u64)>>, at: &mut Position) -> u64 {
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
pub(super) enum Check {
    /// Whole and CRC-checked; the next record starts at `next`. `old`: version 1.
    Good { next: usize, old: bool },
    /// Its header or payload runs past the end of the segment.
    Incomplete,
    /// Anything else: a CRC that does not match, an impossible length.
    Bad,
}

pub(super) fn check(bytes: &[u8], at: usize) -> Check {
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
pub(super) fn resync(bytes: &[u8], from: usize, old: bool) -> Option<usize> {
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
pub(super) struct Scanned {
    /// Whole records from the start position.
    pub(super) records: u64,
    /// Lost stretches: start, end, records in it.
    pub(super) lost: Vec<(u64, u64, u64)>,
    /// Where the segment's records end: its length, or (newest segment) where an
    /// unreadable end is cut off.
    pub(super) end: u64,
    /// Bytes of a torn tail after `end` (newest segment).
    pub(super) torn: u64,
    /// The file's length.
    pub(super) len: u64,
}

/// Records of the segment at `path` after `start`, as the module doc's recovery says;
/// `newest`: the segment the writer appends to (its end may be torn).
pub(super) fn scan(path: &Path, start: u64, newest: bool) -> Result<Scanned, BufferError> {
    scan_records(path, start, newest, &mut |_| {})
}

/// [`scan`], handing each whole record's payload to `record` in order.
pub(super) fn scan_records(
    path: &Path,
    start: u64,
    newest: bool,
    record: &mut dyn FnMut(&[u8]),
) -> Result<Scanned, BufferError> {
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
                let header = if old { OLD_HEADER } else { HEADER } as usize;
                record(&bytes[at + header..next]);
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
