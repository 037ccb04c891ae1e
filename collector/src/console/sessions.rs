//! Console sessions: who logged in, with what role, until when, and the CSRF token
//! each state-changing request of theirs must carry.
//!
//! A session's id is 32 random bytes, sent to the browser once, in the cookie
//! [`COOKIE`] (`Secure; HttpOnly; SameSite=Strict`); the collector keeps only its
//! SHA-256, so the table (memory only: a restart logs everyone out) holds nothing a
//! reader of the process could replay. A session ends after `session_idle` without a
//! request or `session_max` after the login, at logout, and for everyone when SIGHUP
//! reloads the users and tokens (a user removed from `users_file` must not stay in).
//! At most [`MAX_SESSIONS`] are kept; past that the least recently used goes.
//!
//! Logins are throttled per address: after [`MAX_FAILED_LOGINS`] wrong passwords or
//! tokens within [`FAILED_LOGIN_WINDOW`], that address is refused (429 with
//! `Retry-After`) until the window ends, whoever it claims to be (a per-user lock would
//! let anyone lock an analyst out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::role::Role;

/// The session cookie's name.
pub const COOKIE: &str = "picket_session";
/// The header a session's POSTs carry its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;
/// Wrong logins an address may make within [`FAILED_LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 10;
/// How long an address's wrong logins are counted.
pub const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// Most addresses whose wrong logins are remembered.
const MAX_THROTTLED: usize = 10_000;

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Sent back by the console in [`CSRF_HEADER`] on every POST.
    pub csrf: String,
}

struct Held {
    session: Session,
    started: Instant,
    used: Instant,
}

/// The sessions of this process.
pub struct Sessions {
    held: Mutex<HashMap<[u8; 32], Held>>,
    /// Address → (wrong logins, since when).
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
    idle: Duration,
    max: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sessions({})", self.len())
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes as 64 hex characters.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // getrandom fails only without an entropy source, where nothing here is safe.
    getrandom::fill(&mut bytes).expect("the OS gives random bytes"); // invariant: Linux getrandom(2)
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            held: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    /// Starts a session: its id (for the cookie) and what it is.
    pub fn start(&self, user: &str, role: Role) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            user: user.to_string(),
            role,
            csrf: random_hex(),
        };
        let now = Instant::now();
        if let Ok(mut held) = self.held.lock() {
            held.retain(|_, h| self.alive(h, now));
            if held.len() >= MAX_SESSIONS {
                let oldest = held.iter().min_by_key(|(_, h)| h.used).map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    held.remove(&oldest);
                }
            }
            held.insert(
                digest(&id),
                Held {
                    session: session.clone(),
                    started: now,
                    used: now,
                },
            );
        }
        (id, session)
    }

    fn alive(&self, held: &Held, now: Instant) -> bool {
        now.duration_since(held.used) < self.idle && now.duration_since(held.started) < self.max
    }

    /// The session of cookie value `id`, if it is alive (and it is used now).
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = digest(id);
        let now = Instant::now();
        let mut held = self.held.lock().ok()?;
        let alive = held.get(&key).is_some_and(|h| self.alive(h, now));
        if !alive {
            held.remove(&key);
            return None;
        }
        let found = held.get_mut(&key)?;
        found.used = now;
        Some(found.session.clone())
    }

    /// Ends the session of cookie value `id`.
    pub fn end(&self, id: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&digest(id));
        }
    }

    /// Ends every session (the users or tokens changed).
    pub fn end_all(&self) {
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
    }

    /// `Err(how long to wait)` when `address` made too many wrong logins lately.
    pub fn login_allowed(&self, address: std::net::IpAddr) -> Result<(), Duration> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        match failures.get(&address) {
            Some((count, since))
                if *count >= MAX_FAILED_LOGINS && since.elapsed() < FAILED_LOGIN_WINDOW =>
            {
                Err(FAILED_LOGIN_WINDOW.saturating_sub(since.elapsed()))
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong login from `address`.
    pub fn login_failed(&self, address: std::net::IpAddr) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if failures.len() >= MAX_THROTTLED {
            failures.retain(|_, (_, since)| now.duration_since(*since) < FAILED_LOGIN_WINDOW);
            if failures.len() >= MAX_THROTTLED {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, (_, s))| *s)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(address).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILED_LOGIN_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Forgets `address`'s wrong logins (it logged in).
    pub fn login_succeeded(&self, address: std::net::IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&address);
        }
    }

    pub fn len(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

/// `Set-Cookie` for a new session lasting at most `max`.
pub fn set_cookie(id: &str, max: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        max.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_live_until_idle_or_ended() {
        let sessions = Sessions::new(Duration::from_millis(200), Duration::from_secs(60));
        let (id, session) = sessions.start("alice", Role::Analyst);
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.get(&id), Some(session.clone()));
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&id));
        assert_eq!(sessions.get("not-a-session"), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(sessions.get(&id), None, "idle too long");
        let (id, _) = sessions.start("bob", Role::Reader);
        sessions.end(&id);
        assert_eq!(sessions.get(&id), None);
        let (id, _) = sessions.start("carol", Role::Reader);
        sessions.end_all();
        assert_eq!(sessions.get(&id), None);
    }

    #[test]
    fn sessions_end_at_their_maximum_age_however_used() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_millis(200));
        let (id, _) = sessions.start("alice", Role::Reader);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(50));
            assert!(sessions.get(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(sessions.get(&id), None);
    }

    #[test]
    fn an_address_with_too_many_wrong_logins_waits() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
        let guesser: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let analyst: std::net::IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(sessions.login_allowed(guesser).is_ok());
            sessions.login_failed(guesser);
        }
        let wait = sessions.login_allowed(guesser).unwrap_err();
        assert!(wait > Duration::from_secs(290) && wait <= FAILED_LOGIN_WINDOW);
        assert!(
            sessions.login_allowed(analyst).is_ok(),
            "others are not held"
        );
        sessions.login_failed(analyst);
        sessions.login_succeeded(analyst);
        assert!(sessions.failures.lock().unwrap().get(&analyst).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_strictly() {
        assert_eq!(cookie_value("a=1; picket_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("picket_session=; a=1"), None);
        assert_eq!(cookie_value("xpicket_session=abc"), None);
        let set = set_cookie("abc", Duration::from_secs(60));
        for part in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(set.contains(part), "{set}");
        }
    }
}
