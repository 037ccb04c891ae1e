//! Reading records for the shipper: whole, CRC-checked records from the read point up
//! to what is durable, into one [`Batch`], skipping known lost stretches.

use super::*;

impl DiskBuffer {
    /// Up to `max` durable records after the reader's position into `batch` (emptied
    /// first; its memory is reused), back to back, with the position just after the
    /// last (what to acknowledge once they are delivered). Each segment's span is read
    /// with one `read`, and the headers are dropped in place: no allocation per record.
    /// On an error the batch is empty and the reader's position is where it was: the
    /// records it had passed are read again next time, not skipped.
    pub fn read_into(&mut self, max: usize, batch: &mut Batch) -> Result<(), BufferError> {
        batch.start_filling();
        let from = self.read_at;
        let read = self.fill(max, batch);
        if read.is_err() {
            self.read_at = from;
            batch.start_filling();
        }
        batch.bytes = Bytes::from(std::mem::take(&mut batch.filling));
        read
    }

    pub(super) fn fill(&mut self, max: usize, batch: &mut Batch) -> Result<(), BufferError> {
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
}

/// Appends exactly `len` bytes from `file` to `out` (into its spare capacity: nothing
/// is zeroed first).
pub(super) fn read_span(file: &mut File, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
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
