//! HTTP Basic users (`collector.http.users_file`), for shippers that can send a user
//! name and password but no bearer token (rsyslog's `omelasticsearch`, syslog-ng's
//! `elasticsearch-http()`, Fluent Bit's `es` output). Same roles as the tokens.
//!
//! The file is `htpasswd -B`'s (one `<user>:<bcrypt hash>` a line) with an optional
//! role after a space; `picket-collector hash-password` makes a hash too. Only bcrypt
//! hashes are taken: a file of plain passwords is refused at load.
//!
//! bcrypt is slow on purpose (milliseconds at `htpasswd -B`'s cost 5, tens at 10): it
//! runs off the async workers, at most [`VERIFYING`] at once (a flood of wrong
//! passwords, even on `/metrics`, which the request cap leaves out, waits its turn
//! rather than taking every core), and a user's password, once verified, is remembered
//! for [`REMEMBER`] as a salted SHA-256 (compared in constant time), so a shipper that
//! sends a request a second pays it once every few minutes, not per request. An
//! unknown user is checked against a decoy hash of the file's own cost, so the answer
//! takes as long as for a known one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::role::Role;

/// How long a verified password is remembered.
pub const REMEMBER: Duration = Duration::from_secs(300);
/// Most bcrypt checks running at once.
pub const VERIFYING: usize = 2;

/// Why a users file cannot be used.
#[derive(Debug, Error)]
pub enum UsersError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {problem}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{}: holds no user", .path.display())]
    Empty { path: PathBuf },
}

/// One user: its bcrypt hash and role.
struct User {
    hash: String,
    role: Role,
}

/// The users of a users file.
pub struct Users {
    users: HashMap<String, User>,
    /// Salt of the remembered digests (random per process).
    salt: [u8; 16],
    /// user → (digest of the password verified, until when it is trusted).
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    /// A hash of a random password at the users' cost, for unknown users.
    decoy: String,
    verifying: tokio::sync::Semaphore,
}

// Never print a hash, even in a debug dump of the settings.
impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} users, **REDACTED**)", self.users.len())
    }
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |line: usize, problem: String| UsersError::Invalid {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let entry = words.next().unwrap_or_default();
            let role = match words.next() {
                None => Role::Shipper,
                Some(word) => Role::parse(word).ok_or_else(|| {
                    invalid(
                        number + 1,
                        format!("{word:?} is not a role (shipper, reader, analyst)"),
                    )
                })?,
            };
            if words.next().is_some() {
                return Err(invalid(
                    number + 1,
                    "write <user>:<hash> and at most one role".into(),
                ));
            }
            let Some((name, hash)) = entry.split_once(':') else {
                return Err(invalid(number + 1, "write <user>:<hash>".into()));
            };
            if name.is_empty() {
                return Err(invalid(number + 1, "the user name is empty".into()));
            }
            if !is_bcrypt(hash) {
                return Err(invalid(
                    number + 1,
                    format!(
                        "the password of {name:?} is not a bcrypt hash ($2y$…): make one with `htpasswd -nB {name}` or `picket-collector hash-password`"
                    ),
                ));
            }
            if users
                .insert(
                    name.to_string(),
                    User {
                        hash: hash.to_string(),
                        role,
                    },
                )
                .is_some()
            {
                return Err(invalid(
                    number + 1,
                    format!("user {name:?} is listed twice"),
                ));
            }
        }
        if users.is_empty() {
            return Err(UsersError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the system's random source");
        // The decoy costs what the users' hashes cost (the most, when they differ).
        let cost = users
            .values()
            .filter_map(|u| u.hash.get(4..6)?.parse::<u32>().ok())
            .max()
            .unwrap_or(10);
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).expect("the system's random source");
        let decoy = bcrypt::hash(format!("{secret:?}"), cost).map_err(|e| UsersError::Invalid {
            path: path.to_path_buf(),
            line: 0,
            problem: format!("a bcrypt cost of {cost} cannot be used: {e}"),
        })?;
        Ok(Users {
            users,
            salt,
            verified: Mutex::new(HashMap::new()),
            decoy,
            verifying: tokio::sync::Semaphore::new(VERIFYING),
        })
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(user.as_bytes());
        hasher.update([0]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// The role of `user` when `password` is theirs.
    pub async fn role_of(&self, user: &str, password: &str) -> Option<Role> {
        let digest = self.digest(user, password);
        let known = self.users.get(user);
        if let Some(known) = known {
            let remembered = self.verified.lock().ok().and_then(|v| v.get(user).copied());
            if let Some((verified, until)) = remembered
                && Instant::now() < until
                && bool::from(verified.ct_eq(&digest))
            {
                return Some(known.role);
            }
        }
        let hash = known
            .map_or(self.decoy.as_str(), |u| u.hash.as_str())
            .to_string();
        let password = password.to_string();
        let Ok(_turn) = self.verifying.acquire().await else {
            return None;
        };
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let known = known.filter(|_| matches)?;
        if let Ok(mut verified) = self.verified.lock() {
            verified.insert(user.to_string(), (digest, Instant::now() + REMEMBER));
        }
        Some(known.role)
    }
}

/// `$2y$<cost>$<53 characters>`, the cost one bcrypt takes (4 to 31).
fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
        && hash.len() == 60
        && hash.get(6..7) == Some("$")
        && hash
            .get(4..6)
            .and_then(|c| c.parse::<u32>().ok())
            .is_some_and(|c| (4..=31).contains(&c))
}

/// A bcrypt hash of `password` for a users file (cost 10; `htpasswd -B` uses 5 unless
/// given `-C`).
pub fn hash_password(password: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn users_are_checked_against_their_bcrypt_hash() {
        let rsyslog = bcrypt::hash("s3cret-rsyslog", 4).unwrap();
        let analyst = bcrypt::hash("s3cret-analyst", 4).unwrap();
        let (_dir, path) = write(&format!(
            "# fleet shippers\nrsyslog:{rsyslog}\nana:{analyst} analyst\n"
        ));
        let users = Users::load(&path).unwrap();
        assert_eq!(
            users.role_of("rsyslog", "s3cret-rsyslog").await,
            Some(Role::Shipper)
        );
        // Remembered, and still only for the right password.
        assert_eq!(
            users.role_of("rsyslog", "s3cret-rsyslog").await,
            Some(Role::Shipper)
        );
        assert_eq!(users.role_of("rsyslog", "wrong").await, None);
        assert_eq!(users.role_of("ana", "s3cret-rsyslog").await, None);
        assert_eq!(
            users.role_of("ana", "s3cret-analyst").await,
            Some(Role::Analyst)
        );
        assert_eq!(users.role_of("nobody", "s3cret-rsyslog").await, None);
        assert!(!format!("{users:?}").contains("$2"));
    }

    #[test]
    fn a_bad_users_file_names_the_line() {
        let hash = hash_password("x").unwrap();
        for (text, expect) in [
            (
                "rsyslog:plaintext\n".to_string(),
                "line 1: the password of \"rsyslog\" is not a bcrypt hash",
            ),
            (
                format!("# c\nu:{hash} admin\n"),
                "line 2: \"admin\" is not a role",
            ),
            (
                format!("u:{hash}\nu:{hash}\n"),
                "line 2: user \"u\" is listed twice",
            ),
            ("# nobody\n".to_string(), "holds no user"),
            (format!("{hash}\n"), "line 1"),
        ] {
            let (_dir, path) = write(&text);
            let error = Users::load(&path).unwrap_err().to_string();
            assert!(error.contains(expect), "{text}: {error}");
        }
    }
}
