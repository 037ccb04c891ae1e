//! Which ids a day being written may hold, in memory: a Bloom filter per day over every
//! id in its index plus every id logged for it since. Deciding a write asks it first;
//! only a "maybe" (a resend, or one false positive in ~100) looks the id up in the
//! index, a term-dictionary probe in every segment of the day (nearly every id being
//! new, that probe was ~7% of the collector's CPU on the ingest bench, ~3% on the
//! HTTPS path).
//!
//! The filter may only err towards "maybe": it is filled from the day's searcher and
//! its pending ids under the lock that keeps an id always in one or the other, then
//! given every id decided new. Ids it holds that the index lost (a pruned day, a failed
//! append) cost a lookup, never a wrong answer.
//!
//! At most [`MAX_DAYS`] days have one (a filter costs ~1.25-2.5 bytes per id of its
//! day): the first days written, each kept until no write has come for it for
//! [`IDLE`]. A further day is looked up as before until a filter idles out; a filter
//! is never dropped for another while in use, so interleaved writes to many days cannot
//! make the store refill filters over and over.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::{Duration, Instant};

use tantivy::schema::Field;

use super::StoreError;

/// Days with a filter at once (yesterday, today and one more: a backfill, or tomorrow
/// around midnight).
const MAX_DAYS: usize = 3;
/// A day's filter is dropped after this long without a write for the day.
const IDLE: Duration = Duration::from_secs(600);

/// Bits per id: with 7 probes, about 1% false positives.
const BITS_PER_ID: usize = 10;
const PROBES: u64 = 7;
/// The smallest filter made (64 Ki ids, 80 KiB).
const MIN_CAPACITY: usize = 1 << 16;

/// One fixed-size Bloom filter.
struct Bloom {
    bits: Vec<u64>,
    capacity: usize,
    len: usize,
}

impl Bloom {
    fn new(capacity: usize) -> Bloom {
        let words = (capacity * BITS_PER_ID).div_ceil(64).max(1);
        Bloom {
            bits: vec![0; words],
            capacity,
            len: 0,
        }
    }

    /// The bit positions of `hash` (double hashing).
    fn positions(&self, hash: u64) -> impl Iterator<Item = usize> + use<> {
        let m = (self.bits.len() * 64) as u64;
        let (h1, h2) = (hash, hash.rotate_left(32) | 1);
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn insert(&mut self, hash: u64) {
        for bit in self.positions(hash) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
        self.len += 1;
    }

    fn may_hold(&self, hash: u64) -> bool {
        self.positions(hash)
            .all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// A day's filter: filters of doubling size, a new one started when the last is full
/// (so the false-positive rate holds however many ids the day gets).
struct DayFilter {
    blooms: Vec<Bloom>,
    used: Instant,
}

impl DayFilter {
    fn with_capacity(ids: usize, now: Instant) -> DayFilter {
        DayFilter {
            blooms: vec![Bloom::new((ids * 2).max(MIN_CAPACITY))],
            used: now,
        }
    }

    fn insert(&mut self, hash: u64) {
        let last = self.blooms.last().expect("a day's filter has a Bloom");
        if last.len >= last.capacity {
            let next = Bloom::new(last.capacity * 2);
            self.blooms.push(next);
        }
        self.blooms
            .last_mut()
            .expect("a day's filter has a Bloom")
            .insert(hash);
    }

    fn may_hold(&self, hash: u64) -> bool {
        self.blooms.iter().any(|b| b.may_hold(hash))
    }
}

/// The filters of the days being written. Kept under the store's pending-ids lock.
#[derive(Default)]
pub(super) struct IdFilters {
    days: HashMap<u32, DayFilter>,
}

fn hash(id: &[u8]) -> u64 {
    // Fixed keys: the same id always hashes alike within a run, which is all a filter
    // needs; a crafted collision only costs its sender an index lookup.
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

impl IdFilters {
    /// Whether `id` may be taken on day `key`: `None` when the day has no filter (look
    /// it up), `Some(false)` when it is surely free. `fill` gives the day's ids (the
    /// index's and the pending ones) when the day gets a filter.
    pub(super) fn may_hold(
        &mut self,
        key: u32,
        id: &str,
        now: Instant,
        fill: impl FnOnce() -> Result<Vec<Vec<u8>>, StoreError>,
    ) -> Result<Option<bool>, StoreError> {
        if !self.days.contains_key(&key) {
            self.days
                .retain(|_, filter| now.saturating_duration_since(filter.used) < IDLE);
            if self.days.len() >= MAX_DAYS {
                return Ok(None);
            }
            let ids = fill()?;
            let mut filter = DayFilter::with_capacity(ids.len(), now);
            for id in &ids {
                filter.insert(hash(id));
            }
            self.days.insert(key, filter);
        }
        Ok(self.days.get_mut(&key).map(|filter| {
            filter.used = now;
            filter.may_hold(hash(id.as_bytes()))
        }))
    }

    /// `id` is now taken on day `key` (a no-op for a day without a filter).
    pub(super) fn insert(&mut self, key: u32, id: &str) {
        if let Some(filter) = self.days.get_mut(&key) {
            filter.insert(hash(id.as_bytes()));
        }
    }
}

/// Every id in the eventid term dictionaries of `searcher`'s segments (ids of deleted
/// documents included: the filter may hold more than the index, never less).
pub(super) fn indexed_ids(
    searcher: &tantivy::Searcher,
    field: Field,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut ids = Vec::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(field).map_err(StoreError::Search)?;
        let mut terms = inverted
            .terms()
            .stream()
            .map_err(|e| StoreError::Search(e.into()))?;
        while terms.advance() {
            ids.push(terms.key().to_vec());
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_never_forgets_and_rarely_imagines() {
        let mut filter = DayFilter::with_capacity(0, Instant::now());
        // Three times the first Bloom's capacity: it grows.
        let n = MIN_CAPACITY * 3;
        for i in 0..n {
            filter.insert(hash(format!("id-{i}").as_bytes()));
        }
        assert!(filter.blooms.len() >= 2);
        for i in 0..n {
            assert!(filter.may_hold(hash(format!("id-{i}").as_bytes())), "{i}");
        }
        let imagined = (0..100_000)
            .filter(|i| filter.may_hold(hash(format!("other-{i}").as_bytes())))
            .count();
        // ~1% per Bloom, two or three Blooms: well under 5%.
        assert!(imagined < 5_000, "{imagined} false positives in 100,000");
    }

    #[test]
    fn a_few_days_get_filters_filled_once_and_idle_ones_make_room() {
        let mut filters = IdFilters::default();
        let start = Instant::now();
        let fills = std::cell::Cell::new(0);
        let fill = || {
            fills.set(fills.get() + 1);
            Ok(vec![b"stored".to_vec()])
        };
        let day = 20_261_206;
        assert_eq!(
            filters.may_hold(day, "stored", start, fill).unwrap(),
            Some(true)
        );
        assert_eq!(
            filters.may_hold(day, "new", start, fill).unwrap(),
            Some(false)
        );
        filters.insert(day, "new");
        assert_eq!(
            filters.may_hold(day, "new", start, fill).unwrap(),
            Some(true)
        );
        assert_eq!(fills.get(), 1);
        // Two more days get filters; a fourth is looked up, and gets none however
        // often it is asked about while the three are in use.
        for other in [day - 1, day - 2] {
            assert_eq!(
                filters.may_hold(other, "stored", start, fill).unwrap(),
                Some(true)
            );
            assert_eq!(
                filters.may_hold(other, "x", start, fill).unwrap(),
                Some(false)
            );
        }
        for _ in 0..3 {
            assert_eq!(filters.may_hold(day - 3, "x", start, fill).unwrap(), None);
        }
        filters.insert(day - 3, "x");
        assert_eq!(fills.get(), 3);
        // The three idle out (the first is used again just before): room for one.
        let later = start + IDLE - Duration::from_secs(1);
        assert_eq!(
            filters.may_hold(day, "new", later, fill).unwrap(),
            Some(true)
        );
        let much_later = start + IDLE + Duration::from_secs(1);
        assert_eq!(
            filters
                .may_hold(day - 3, "stored", much_later, fill)
                .unwrap(),
            Some(true)
        );
        assert_eq!(fills.get(), 4);
        assert!(filters.days.contains_key(&day));
        assert!(!filters.days.contains_key(&(day - 1)));
    }
}
