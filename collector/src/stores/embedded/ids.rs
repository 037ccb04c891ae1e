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
//! [`IDLE`]; yesterday, today and tomorrow may take an older day's. A further day is
//! looked up as before until a filter idles out; a day near today never loses its
//! filter, so interleaved writes to many days cannot make the store refill filters over
//! and over. A day that already holds [`MAX_FILTERED_IDS`] when it would get one goes
//! without. Filling a filter reads the day's id dictionaries under the pending-ids lock
//! (writes wait): ~1 s per ten million ids, once per day after a start or an idle spell.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use chrono::Utc;
use tantivy::schema::Field;

use super::id_terms::IdTerms;
use super::{StoreError, day_key};

/// Days with a filter at once (yesterday, today and one more: a backfill, or tomorrow
/// around midnight).
const MAX_DAYS: usize = 3;
/// A day's filter is dropped after this long without a write for the day.
const IDLE: Duration = Duration::from_secs(600);
/// A day holding more ids than this gets no filter (~25-50 MiB of it).
const MAX_FILTERED_IDS: usize = 20_000_000;

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
pub(super) struct DayFilter {
    blooms: Vec<Bloom>,
    used: Instant,
    /// How the day kept ids when the filter was made: its hashes are of that kind (a
    /// day pruned and made again keeps them otherwise, and gets a new filter).
    ids: IdTerms,
}

impl DayFilter {
    fn with_capacity(count: usize, ids: IdTerms, now: Instant) -> DayFilter {
        DayFilter {
            blooms: vec![Bloom::new((count * 2).max(MIN_CAPACITY))],
            used: now,
            ids,
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

/// What a day's filter holds for `id`, on a day that keeps ids as `ids` says: its
/// digest's value there (a keyed hash already), else a hash of the id.
pub(super) fn id_hash(ids: IdTerms, id: &str) -> u64 {
    match ids {
        IdTerms::Raw => hash(id.as_bytes()),
        IdTerms::Bucketed(key) => key.digest(id).value,
    }
}

fn hash(id: &[u8]) -> u64 {
    // Fixed keys: the same id always hashes alike within a run, which is all a filter
    // needs; a crafted collision only costs its sender an index lookup. foldhash's
    // quality hash: SipHash cost ~2% of the store's thread here, twice per event.
    foldhash::quality::FixedState::with_seed(0x7069_636b_6574_2e69).hash_one(id)
}

/// Whether day `key` is yesterday, today or tomorrow (UTC): such days may take a filter
/// from an older day (a backfill's, a replay's) rather than go without.
fn near_today(key: u32) -> bool {
    let today = Utc::now().date_naive();
    [today.pred_opt(), Some(today), today.succ_opt()]
        .into_iter()
        .flatten()
        .any(|d| day_key(d) == key)
}

impl IdFilters {
    /// Whether the id of hash `id` ([`id_hash`] as `ids` says the day keeps ids) may be
    /// taken on day `key`: `None` when the day has no filter (look it up), `Some(false)`
    /// when it is surely free. `fill` makes the day's filter (see [`day_filter`]) when
    /// the day gets one; a filter made when the day kept ids otherwise (it was pruned
    /// and made again since) is dropped and made again.
    pub(super) fn may_hold(
        &mut self,
        key: u32,
        ids: IdTerms,
        id: u64,
        now: Instant,
        fill: impl FnOnce() -> Result<Option<DayFilter>, StoreError>,
    ) -> Result<Option<bool>, StoreError> {
        if self.days.get(&key).is_some_and(|filter| filter.ids != ids) {
            self.days.remove(&key);
        }
        if !self.days.contains_key(&key) {
            self.days
                .retain(|_, filter| now.saturating_duration_since(filter.used) < IDLE);
            if self.days.len() >= MAX_DAYS {
                // A day near today takes the least recently used older day's filter;
                // days near today never lose theirs, so no two days trade back and forth.
                let older = self
                    .days
                    .iter()
                    .filter(|(day, _)| !near_today(**day))
                    .min_by_key(|(_, filter)| filter.used)
                    .map(|(day, _)| *day);
                match older {
                    Some(older) if near_today(key) => {
                        self.days.remove(&older);
                    }
                    _ => return Ok(None),
                }
            }
            match fill()? {
                Some(filter) => self.days.insert(key, filter),
                None => return Ok(None),
            };
        }
        Ok(self.days.get_mut(&key).map(|filter| {
            filter.used = now;
            filter.may_hold(id)
        }))
    }

    /// The id of hash `id` ([`id_hash`] as `ids` says) is now taken on day `key` (a
    /// no-op for a day without a filter, or with one of another kind: that one is
    /// dropped, to be made again when next asked).
    pub(super) fn insert(&mut self, key: u32, ids: IdTerms, id: u64) {
        match self.days.get_mut(&key) {
            Some(filter) if filter.ids == ids => filter.insert(id),
            Some(_) => {
                self.days.remove(&key);
            }
            None => {}
        }
    }
}

/// A day's filter over the ids of `searcher`'s segments (ids of deleted documents
/// included: the filter may hold more than the index, never less) and `pending`,
/// hashed as [`id_hash`] does as they are read (no copy of them): a day of raw ids
/// from its `eventid` term dictionaries (`field`), a day of digests from its digest
/// column. `None` for a day already holding more than [`MAX_FILTERED_IDS`]: it is
/// looked up as before (its filter would take tens of MiB, and reading its ids holds
/// writes back).
pub(super) fn day_filter<'a>(
    searcher: Option<&tantivy::Searcher>,
    ids: IdTerms,
    field: Field,
    pending: impl ExactSizeIterator<Item = &'a str>,
    now: Instant,
) -> Result<Option<DayFilter>, StoreError> {
    let segments = searcher.map(|s| s.segment_readers()).unwrap_or_default();
    let mut count = pending.len();
    let mut dictionaries = Vec::new();
    match ids {
        IdTerms::Raw => {
            for segment in segments {
                let dictionary = segment.inverted_index(field).map_err(StoreError::Search)?;
                count += dictionary.terms().num_terms();
                dictionaries.push(dictionary);
            }
        }
        IdTerms::Bucketed(_) => {
            count += segments.iter().map(|s| s.max_doc() as usize).sum::<usize>();
        }
    }
    if count > MAX_FILTERED_IDS {
        return Ok(None);
    }
    let mut filter = DayFilter::with_capacity(count, ids, now);
    for dictionary in &dictionaries {
        let mut terms = dictionary
            .terms()
            .stream()
            .map_err(|e| StoreError::Search(e.into()))?;
        while terms.advance() {
            filter.insert(hash(terms.key()));
        }
    }
    if let IdTerms::Bucketed(_) = ids {
        for segment in segments {
            let column = segment
                .fast_fields()
                .u64(super::id_terms::DIGEST_FIELD)
                .map_err(StoreError::Search)?;
            for doc in 0..segment.max_doc() {
                for value in column.values_for_doc(doc) {
                    filter.insert(value);
                }
            }
        }
    }
    for id in pending {
        filter.insert(id_hash(ids, id));
    }
    Ok(Some(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_never_forgets_and_rarely_imagines() {
        let mut filter = DayFilter::with_capacity(0, IdTerms::Raw, Instant::now());
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
    fn a_day_made_again_with_another_kind_of_ids_gets_a_new_filter() {
        // A day pruned and made again (raw ids before, a digest key now): a resend
        // hashed the new way must not be missed by the filter made the old way.
        let mut filters = IdFilters::default();
        let now = Instant::now();
        let key = super::super::id_terms::IdKey::random().unwrap();
        let digests = IdTerms::Bucketed(key);
        let fills = std::cell::Cell::new(0);
        let fill = |ids: IdTerms, stored: &'static str| {
            fills.set(fills.get() + 1);
            day_filter(
                None,
                ids,
                Field::from_field_id(0),
                [stored].into_iter(),
                now,
            )
        };
        let day = 20_000_306;
        let raw = id_hash(IdTerms::Raw, "x");
        assert_eq!(
            filters
                .may_hold(day, IdTerms::Raw, raw, now, || fill(IdTerms::Raw, "a"))
                .unwrap(),
            Some(false)
        );
        filters.insert(day, IdTerms::Raw, raw);
        // Asked the new way: the old filter goes, a new one is made from the day.
        let x = id_hash(digests, "x");
        assert_eq!(
            filters
                .may_hold(day, digests, x, now, || fill(digests, "x"))
                .unwrap(),
            Some(true)
        );
        assert_eq!(fills.get(), 2);
        // An insert of the old kind drops the filter rather than fill it wrongly.
        filters.insert(day, IdTerms::Raw, id_hash(IdTerms::Raw, "y"));
        assert!(!filters.days.contains_key(&day));
    }

    #[test]
    fn a_few_days_get_filters_filled_once_and_idle_ones_make_room() {
        let mut filters = IdFilters::default();
        let start = Instant::now();
        let fills = std::cell::Cell::new(0);
        let h = |id: &str| id_hash(IdTerms::Raw, id);
        let fill = || {
            fills.set(fills.get() + 1);
            day_filter(
                None,
                IdTerms::Raw,
                Field::from_field_id(0),
                ["stored"].into_iter(),
                start,
            )
        };
        // Days long past: none is near today.
        let day = 20_000_306;
        assert_eq!(
            filters
                .may_hold(day, IdTerms::Raw, h("stored"), start, fill)
                .unwrap(),
            Some(true)
        );
        assert_eq!(
            filters
                .may_hold(day, IdTerms::Raw, h("new"), start, fill)
                .unwrap(),
            Some(false)
        );
        filters.insert(day, IdTerms::Raw, h("new"));
        assert_eq!(
            filters
                .may_hold(day, IdTerms::Raw, h("new"), start, fill)
                .unwrap(),
            Some(true)
        );
        assert_eq!(fills.get(), 1);
        // Two more days get filters; a fourth is looked up, and gets none however
        // often it is asked about while the three are in use.
        for other in [day - 1, day - 2] {
            assert_eq!(
                filters
                    .may_hold(other, IdTerms::Raw, h("stored"), start, fill)
                    .unwrap(),
                Some(true)
            );
            assert_eq!(
                filters
                    .may_hold(other, IdTerms::Raw, h("x"), start, fill)
                    .unwrap(),
                Some(false)
            );
        }
        for _ in 0..3 {
            assert_eq!(
                filters
                    .may_hold(day - 3, IdTerms::Raw, h("x"), start, fill)
                    .unwrap(),
                None
            );
        }
        filters.insert(day - 3, IdTerms::Raw, h("x"));
        assert_eq!(fills.get(), 3);
        // The three idle out (the first is used again just before): room for one.
        let later = start + IDLE - Duration::from_secs(1);
        assert_eq!(
            filters
                .may_hold(day, IdTerms::Raw, h("new"), later, fill)
                .unwrap(),
            Some(true)
        );
        let much_later = start + IDLE + Duration::from_secs(1);
        assert_eq!(
            filters
                .may_hold(day - 3, IdTerms::Raw, h("stored"), much_later, fill)
                .unwrap(),
            Some(true)
        );
        assert_eq!(fills.get(), 4);
        assert!(filters.days.contains_key(&day));
        assert!(!filters.days.contains_key(&(day - 1)));
        // Three older days in use: today still takes one of theirs (the least recently
        // used), and keeps it against the older days.
        filters
            .may_hold(day - 1, IdTerms::Raw, h("x"), much_later, fill)
            .unwrap();
        filters
            .may_hold(day - 2, IdTerms::Raw, h("x"), much_later, fill)
            .unwrap();
        assert_eq!(filters.days.len(), 3);
        let today = day_key(Utc::now().date_naive());
        assert_eq!(
            filters
                .may_hold(today, IdTerms::Raw, h("stored"), much_later, fill)
                .unwrap(),
            Some(true)
        );
        assert!(filters.days.contains_key(&today));
        assert!(!filters.days.contains_key(&day));
        assert_eq!(
            filters
                .may_hold(day, IdTerms::Raw, h("x"), much_later, fill)
                .unwrap(),
            None
        );
        assert!(filters.days.contains_key(&today));
    }
}
