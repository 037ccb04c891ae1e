//! What a read hands the shipper: a [`Batch`] of whole records in one buffer, and
//! [`Records`], a view of some of them that can be split and sent without copying.

use super::*;

/// Records read by [`DiskBuffer::read_into`]: their bytes back to back, where each
/// ends, and the position after the last. Kept and reused by the ship stage.
#[derive(Debug, Default)]
pub struct Batch {
    /// Where [`DiskBuffer::read_into`] reads to; handed over to `shared` when done.
    pub(super) filling: Vec<u8>,
    /// The records' bytes, shareable: the HTTP shipper sends them without a copy, and
    /// their memory comes back for the next batch once the request has let go of it.
    pub(super) bytes: Bytes,
    pub(super) ends: Vec<usize>,
    pub(super) last: Option<Position>,
}

impl Batch {
    /// Emptied for reading into, reusing the memory of the last batch's bytes when
    /// nothing else holds them any more.
    pub(super) fn start_filling(&mut self) {
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
    pub(super) bytes: &'a [u8],
    /// `bytes` as shared memory, when they are (a [`Batch`]'s).
    pub(super) shared: Option<&'a Bytes>,
    /// Where each record ends in `bytes`.
    pub(super) ends: &'a [usize],
    /// Where the first record starts in `bytes`.
    pub(super) from: usize,
}

impl<'a> Records<'a> {
    /// Records lying back to back in `bytes`, record `i` ending at `ends[i]` (tests and
    /// benches; the shipper gets them from a [`Batch`]).
    pub fn from_parts(bytes: &'a [u8], ends: &'a [usize]) -> Records<'a> {
        assert!(
            ends.windows(2).all(|w| w[0] <= w[1]) && ends.last().is_none_or(|&e| e <= bytes.len()),
            "record ends must rise and lie within the bytes"
        );
        Records {
            bytes,
            shared: None,
            ends,
            from: 0,
        }
    }

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
