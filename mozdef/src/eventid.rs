//! The deterministic `eventid`: 32 lower-case hex characters, the 128-bit XXH3 hash of
//! (agent host id, source identity, position). The inputs are the agent's own (no log
//! text is hashed), so a fast non-cryptographic hash is enough: nobody who writes log
//! lines can steer an id. The same line read twice
//! — after a restart, a replay or a retry — gets the same id, and the collector uses the
//! id as the document key, so a resent event never becomes a second document.
//!
//! Each part is length-prefixed before hashing so that no two different triples can
//! feed the hash the same bytes (`("ab", "c")` and `("a", "bc")` differ).

/// Length of an event id in hex characters.
pub const EVENT_ID_LEN: usize = 32;

/// The id of the event at `position` (a byte offset or a journal cursor) of the source
/// `source_identity` (a file fingerprint or `journald`), read by the host `host_id`.
pub fn event_id(host_id: &str, source_identity: &str, position: &str) -> String {
    let id = event_id_bytes(host_id, source_identity, position);
    id.iter().map(|b| char::from(*b)).collect()
}

/// [`event_id`] as bytes, without allocating for the usual short inputs.
pub fn event_id_bytes(host_id: &str, source_identity: &str, position: &str) -> [u8; EVENT_ID_LEN] {
    let size = 24 + host_id.len() + source_identity.len() + position.len();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let input: &mut [u8] = if size <= stack.len() {
        &mut stack[..size]
    } else {
        heap.resize(size, 0);
        &mut heap
    };
    let mut at = 0;
    for part in [host_id, source_identity, position] {
        input[at..at + 8].copy_from_slice(&(part.len() as u64).to_le_bytes());
        input[at + 8..at + 8 + part.len()].copy_from_slice(part.as_bytes());
        at += 8 + part.len();
    }
    let hash = xxhash_rust::xxh3::xxh3_128(input).to_be_bytes();
    let mut out = [0u8; EVENT_ID_LEN];
    for (i, byte) in hash.iter().enumerate() {
        out[2 * i] = b"0123456789abcdef"[usize::from(byte >> 4)];
        out[2 * i + 1] = b"0123456789abcdef"[usize::from(byte & 0x0f)];
    }
    out
}

/// [`event_id_bytes`] for a byte offset.
pub fn event_id_bytes_at_offset(
    host_id: &str,
    source_identity: &str,
    offset: u64,
) -> [u8; EVENT_ID_LEN] {
    let mut buf = [0u8; 20];
    event_id_bytes(host_id, source_identity, format_u64(offset, &mut buf))
}

/// [`event_id`] for a byte offset, the position of a line in a file.
pub fn event_id_at_offset(host_id: &str, source_identity: &str, offset: u64) -> String {
    let id = event_id_bytes_at_offset(host_id, source_identity, offset);
    id.iter().map(|b| char::from(*b)).collect()
}

/// Whether `text` has the shape of an id this crate makes.
pub fn is_event_id(text: &str) -> bool {
    text.len() == EVENT_ID_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `n` in decimal, written into the end of `buf`, two digits at a time.
pub(crate) fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    while n >= 100 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(digit_pair((n % 100) as usize));
        n /= 100;
    }
    if n >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(digit_pair(n as usize));
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    // SAFETY: only ASCII digits were written to `buf[i..]`.
    unsafe { std::str::from_utf8_unchecked(&buf[i..]) }
}

/// `n` (below 100) as two ASCII digits.
pub(crate) fn digit_pair(n: usize) -> &'static [u8] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let at = (n % 100) * 2;
    &PAIRS[at..at + 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_give_the_same_id() {
        let a = event_id_at_offset("host-1", "file:64769:1234:abcd", 4096);
        let b = event_id_at_offset("host-1", "file:64769:1234:abcd", 4096);
        assert_eq!(a, b);
        assert!(is_event_id(&a), "{a}");
    }

    #[test]
    fn any_part_changing_changes_the_id() {
        let base = event_id("host-1", "file:1:2:3", "10");
        assert_ne!(base, event_id("host-2", "file:1:2:3", "10"));
        assert_ne!(base, event_id("host-1", "file:1:2:4", "10"));
        assert_ne!(base, event_id("host-1", "file:1:2:3", "11"));
        // Length prefixes keep shifted boundaries apart.
        assert_ne!(event_id("ab", "c", "1"), event_id("a", "bc", "1"));
    }

    #[test]
    fn long_inputs_hash_like_short_ones() {
        let long = "x".repeat(1000);
        let id = event_id(&long, "s", "1");
        assert!(is_event_id(&id), "{id}");
        assert_eq!(id, event_id(&long, "s", "1"));
        assert_ne!(id, event_id(&long[1..], "s", "1"));
    }

    #[test]
    fn offset_form_matches_text_form() {
        assert_eq!(event_id_at_offset("h", "s", 0), event_id("h", "s", "0"));
        assert_eq!(
            event_id_at_offset("h", "s", u64::MAX),
            event_id("h", "s", &u64::MAX.to_string())
        );
    }

    #[test]
    fn id_shape_is_checked() {
        assert!(!is_event_id("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_event_id("abc"));
        assert!(is_event_id("0123456789abcdef0123456789abcdef"));
    }
}
