//! What one process said on earlier lines, for the lines that do not say it again.
//!
//! sshd writes several lines per connection from one process, and not all of them
//! name the peer: `Disconnecting: Too many authentication failures for root [preauth]`
//! or `fatal: Read from socket failed: Connection reset by peer [preauth]` come with
//! no address although the process knows it. And one wrong password writes up to three
//! lines (`pam_unix(sshd:auth): authentication failure`, `Failed password …`,
//! `Connection closed by authenticating user … [preauth]`), which must count as one
//! attempt.
//!
//! [`Processes`] keeps, per (host, program, pid), the last address, port and user a
//! line named, and the attempts seen so far. A parsed line that lacks one of them gets
//! it from the table (`details.correlated: true`). A line that is part of a failed
//! attempt (its [`Role`]) gets `details.attemptid`, the same for every line of the
//! attempt; all lines but one of each attempt get `details.echo: true`, so rules that
//! skip echoes count attempts, not lines:
//!
//! - an attempt begins with its first line: `Invalid user`, a PAM failure or `check
//!   pass`, or its `Failed <method>` line when nothing came before it;
//! - its `Failed <method>` line ends it (the next PAM failure begins another);
//! - lines about the attempts so far (`maximum authentication attempts exceeded`, a
//!   disconnect before authentication) belong to the last attempt, or begin one when
//!   there was none (a probe);
//! - summaries written after the connection's end (`PAM 2 more authentication
//!   failures`) are always echoes;
//! - the attempt's first line that names an address is the one counted (for sshd and
//!   dropbear, whose later lines name it; a line with no address cannot be counted
//!   per address), or its first line (other programs: login, su, gdm, polkit); the
//!   others are echoes.
//!
//! Everything is decided by the lines themselves and their timestamps, never the
//! agent's clock: the same input read again gives the same fields and ids. The table
//! lives in the input's parser, so a restart loses at most the table (the lines after
//! it are still parsed, without what the lost lines had said). When the process's
//! connection ends its entry is kept, closed, only for the summaries PAM writes as its
//! handle closes (`PAM 5 more authentication failures`, `PAM service(sshd) ignoring
//! max retries`: echoes, completed from it); any other line of that pid starts a new
//! entry. Entries go when not heard from for [`Processes::TTL_SECS`] (by the lines'
//! own times), or, past [`Processes::CAPACITY`] live processes, oldest first.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

pub use super::draft::Role;
use super::draft::{Detail, Draft};

/// The per-process table of one input.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    live: HashMap<u64, Process, BuildHasherDefault<KeyHasher>>,
    /// Keys in the order their entries were made (with the entry's serial, so a key
    /// removed and made again is not evicted for its old place).
    order: VecDeque<(u64, u64)>,
    serial: u64,
}

#[derive(Debug, Clone)]
struct Process {
    serial: u64,
    /// When the first line of this process was written (seconds, UTC).
    started: i64,
    last_seen: i64,
    address: Option<Kept>,
    /// Whether `address` is a host name rather than an address.
    address_is_name: bool,
    port: Option<i64>,
    user: Option<Kept>,
    attempts: u32,
    /// An attempt has begun whose failure line has not come yet.
    open: bool,
    /// The current attempt's counted line has been written.
    counted: bool,
    /// The connection has ended: only echoes read the entry now.
    closed: bool,
}

impl Processes {
    /// An entry not heard from for this long (by the lines' times) is forgotten.
    pub const TTL_SECS: i64 = 600;
    /// Live processes kept at most; the oldest entry goes first.
    pub const CAPACITY: usize = 4096;

    /// Completes `event` (parsed by a program parser) from what its process said
    /// before, records what it says, and marks its place in an attempt (its
    /// [`Role`]). When the line closes the process's connection (`event.ends`), its
    /// entry is closed: only echoes read it after this line.
    ///
    /// `remote` says the program serves remote peers (sshd, dropbear), whose attempts
    /// are counted on a line that names the peer; a local program's (login, su, gdm)
    /// attempt is counted on its first line.
    pub fn apply(&mut self, event: &mut Draft<'_>, remote: bool) {
        if event.processid <= 0 || event.role == Role::Listener {
            return;
        }
        let (role, ends) = (event.role, event.ends);
        let Named {
            ip: named_ip,
            host: named_host,
            user: named_user,
            port: named_port,
        } = Named::of(event);
        let named_address = named_ip.is_some() || named_host.is_some();
        let key = key(&event.hostname, &event.processname, event.processid);
        let now = utc_seconds(event.utctimestamp.as_str()).unwrap_or(0);
        // A line of a process with nothing to say or take (most lines): no entry made.
        // A stale entry, or a closed one for anything but an echo (a new connection
        // given the same pid), is dropped and made again.
        if self.live.get(&key).is_some_and(|p| {
            now - p.last_seen > Self::TTL_SECS
                || now < p.started
                || (p.closed && role != Role::Echo)
        }) {
            self.live.remove(&key);
        }
        let process = match self.live.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            // A line of a process with nothing to say or take (most lines): no entry.
            Entry::Vacant(_) if role == Role::None && !named_address && named_user.is_none() => {
                return;
            }
            Entry::Vacant(_) if role == Role::Echo => {
                // The process's entry is gone (its connection ended): an echo of
                // attempts already counted.
                event.details.insert("echo", true);
                return;
            }
            Entry::Vacant(entry) => {
                self.serial += 1;
                self.order.push_back((key, self.serial));
                entry.insert(Process {
                    serial: self.serial,
                    started: now,
                    last_seen: now,
                    address: None,
                    address_is_name: false,
                    port: None,
                    user: None,
                    attempts: 0,
                    open: false,
                    counted: false,
                    closed: false,
                })
            }
        };
        process.last_seen = process.last_seen.max(now);
        // What the line names is kept; what it lacks is given from what was kept.
        let gives = process.keep(named_ip, named_host, named_user, named_port);
        let has_address = process.give(gives, named_address, event);
        if role != Role::None {
            process.count(role);
            let attempt = attempt_id(key, process.started, process.attempts.max(1));
            event.details.insert("attemptid", Detail::Hex(attempt));
            if !process.counted && (has_address || !remote) && role != Role::Echo {
                process.counted = true;
            } else {
                event.details.insert("echo", true);
            }
        }
        if ends {
            process.closed = true;
        }
        self.evict();
    }

    /// Drops the oldest entries past [`Processes::CAPACITY`], and the stale places of
    /// entries already gone.
    fn evict(&mut self) {
        while self.live.len() > Self::CAPACITY || self.order.len() > 2 * Self::CAPACITY {
            let Some((key, serial)) = self.order.pop_front() else {
                break;
            };
            if self.live.get(&key).is_some_and(|p| p.serial == serial) {
                self.live.remove(&key);
            }
        }
    }
}

/// Sets `slot` to `text`, without a new allocation when it holds it already (most
/// lines of a process repeat its peer and user).
fn keep(slot: &mut Option<Kept>, text: &str) {
    match slot {
        Some(kept) if kept.bytes() == text.as_bytes() => {}
        _ => *slot = Some(Kept::new(text)),
    }
}

/// A text the table keeps: inline when short (addresses, most user names), so making
/// and evicting entries allocates nothing.
#[derive(Debug, Clone)]
enum Kept {
    Inline { len: u8, bytes: [u8; Kept::INLINE] },
    Heap(Box<str>),
}

impl Kept {
    /// The longest IPv6 address with a zone fits.
    const INLINE: usize = 54;

    fn new(text: &str) -> Kept {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= Self::INLINE => {
                let mut bytes = [0u8; Self::INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Kept::Inline { len, bytes }
            }
            _ => Kept::Heap(text.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Kept::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Kept::Heap(text) => text.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`: always UTF-8.
            Kept::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Kept::Heap(text) => text,
        }
    }
}

/// The table's key: a 64-bit hash of (host, program, pid), eight bytes a step (the
/// table hashes it no further: [`KeyHasher`]).
fn key(host: &str, program: &str, pid: i64) -> u64 {
    let mut hash = mix(0xcbf2_9ce4_8422_2325, pid as u64);
    for text in [host, program] {
        let mut chunks = text.as_bytes().chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            hash = mix(hash, u64::from_le_bytes(word));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        // The length ends the text, so `ab` + `c` and `a` + `bc` differ.
        hash = mix(mix(hash, u64::from_le_bytes(last)), text.len() as u64);
    }
    hash
}

/// One step of the key's hash (FxHash's).
fn mix(hash: u64, word: u64) -> u64 {
    (hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// The table's hasher: its keys are hashes already.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = mix(self.0, u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// `details.attemptid` (written as 16 hex digits): a hash of the process (host,
/// program, pid, when it was first heard from) and the attempt's number in it. The
/// hash is this module's own ([`mix`]), so ids stay the same when Rust is upgraded.
fn attempt_id(key: u64, started: i64, attempt: u32) -> u64 {
    let hash = mix(
        mix(mix(key, started as u64), u64::from(attempt)),
        0x9e37_79b9,
    );
    // A last avalanche, so ids of one process's attempts differ in every digit.
    (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (hash >> 32)
}

/// Seconds since the epoch of a stamp written `YYYY-MM-DDTHH:MM:SS…` (UTC).
pub(super) fn utc_seconds(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut n = 0i64;
        for &d in b.get(range)? {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Some(n)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * 86_400
            + num(11..13)? * 3_600
            + num(14..16)? * 60
            + num(17..19)?,
    )
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// What a line names, read in one pass over its details.
struct Named<'e> {
    ip: Option<&'e str>,
    host: Option<&'e str>,
    user: Option<&'e str>,
    /// `Some(None)` for a port that is no number (kept as it is).
    port: Option<Option<i64>>,
}

impl<'e> Named<'e> {
    #[inline(always)]
    fn of(event: &'e Draft<'_>) -> Named<'e> {
        let mut named = Named {
            ip: None,
            host: None,
            user: None,
            port: None,
        };
        for (key, value) in event.details.iter() {
            match key {
                "sourceipaddress" => named.ip = value.as_str(),
                "sourcehostname" => named.host = value.as_str(),
                "username" => named.user = value.as_str(),
                "sourceport" => {
                    named.port = Some(match value {
                        Detail::Int(port) => Some(*port),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        named
    }
}

/// Which kept values a line lacks and is given.
#[derive(Clone, Copy)]
struct Gives {
    address: bool,
    port: bool,
    user: bool,
}

impl Process {
    /// Keeps what the line names; says what it lacks that was kept before.
    #[inline(always)]
    fn keep(
        &mut self,
        ip: Option<&str>,
        host: Option<&str>,
        user: Option<&str>,
        port: Option<Option<i64>>,
    ) -> Gives {
        let named_address = ip.is_some() || host.is_some();
        let address = match (ip, host) {
            (Some(ip), _) => {
                keep(&mut self.address, ip);
                self.address_is_name = false;
                false
            }
            _ if self.address.is_some() => !named_address || !self.address_is_name,
            (None, Some(name)) => {
                keep(&mut self.address, name);
                self.address_is_name = true;
                false
            }
            (None, None) => false,
        };
        let port = match port {
            Some(Some(port)) => {
                self.port = Some(port);
                false
            }
            Some(None) => false,
            None => self.port.is_some(),
        };
        let user = match user {
            Some(user) => {
                keep(&mut self.user, user);
                false
            }
            None => self.user.is_some(),
        };
        Gives {
            address,
            port,
            user,
        }
    }

    /// Gives the line what it lacks (marked `correlated`); true when it then has an
    /// address.
    #[inline(always)]
    fn give(&self, gives: Gives, named_address: bool, event: &mut Draft<'_>) -> bool {
        let mut has_address = named_address;
        if gives.address
            && let Some(address) = &self.address
        {
            let field = match self.address_is_name {
                false => "sourceipaddress",
                true => "sourcehostname",
            };
            event
                .details
                .insert(field, Cow::<str>::Owned(address.as_str().to_owned()));
            has_address = true;
        }
        if gives.port
            && let Some(port) = self.port
        {
            event.details.insert("sourceport", port);
        }
        if gives.user
            && let Some(user) = &self.user
        {
            event
                .details
                .insert("username", Cow::<str>::Owned(user.as_str().to_owned()));
        }
        if gives.address || gives.port || gives.user {
            event.details.insert("correlated", true);
        }
        has_address
    }

    /// Counts the attempt a line with `role` begins, fails or follows.
    #[inline(always)]
    fn count(&mut self, role: Role) {
        match role {
            Role::Begins if !self.open => {
                self.attempts += 1;
                self.open = true;
                self.counted = false;
            }
            Role::Fails => {
                if !self.open {
                    self.attempts += 1;
                    self.counted = false;
                }
                self.open = false;
            }
            Role::Follows if self.attempts == 0 => {
                self.attempts = 1;
                self.counted = false;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_as_epoch_seconds() {
        assert_eq!(utc_seconds("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(
            utc_seconds("2026-12-05T10:00:01.5+00:00"),
            Some(
                chrono::DateTime::parse_from_rfc3339("2026-12-05T10:00:01Z")
                    .unwrap()
                    .timestamp()
            )
        );
        assert_eq!(utc_seconds("garbage"), None);
        for (stamp, epoch) in [
            ("2000-02-29T00:00:00Z", 951_782_400),
            ("1969-12-31T23:59:59Z", -1),
            ("2100-03-01T12:00:00Z", 4_107_585_600),
            ("2026-01-01T00:00:00Z", 1_767_225_600),
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(stamp)
                .unwrap()
                .timestamp();
            assert_eq!(want, epoch, "{stamp}");
            assert_eq!(utc_seconds(stamp), Some(epoch), "{stamp}");
        }
    }
}
