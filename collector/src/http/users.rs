//! HTTP Basic users (`collector.http.users_file`), for shippers that can send a user
//! name and password but no bearer token (rsyslog's `omelasticsearch`, syslog-ng's
//! `elasticsearch-http()`, Fluent Bit's `es` output). Same roles as the tokens.
//!
//! The file is `htpasswd -B`'s (one `<user>:<bcrypt hash>` a line) with an optional
//! role after a space; `picket-collector hash-password` makes a hash too, and argon2
//! PHC strings (`$argon2id$…`, Debian's `argon2 <salt> -id -e`) are taken as well.
//! Only these hashes are: a file of plain passwords is refused at load. The same
//! users log in to the console (`reader`, `analyst`).
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
            if !is_bcrypt(hash) && !is_argon2(hash) {
                return Err(invalid(
                    number + 1,
                    format!(
                        "the password of {name:?} is not a bcrypt ($2y$…) or argon2 ($argon2id$…) hash: make one with `htpasswd -nB {name}` or `picket-collector hash-password`"
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
        // The decoy costs what the users' hashes cost: bcrypt at the highest cost, argon2
        // with the users' most expensive parameters; when the file has both kinds, the
        // one that takes longer to check (timed here), so that an unknown user is
        // never answered faster than a known one.
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).expect("the system's random source");
        let secret = format!("{secret:?}");
        let unusable = |problem: String| UsersError::Invalid {
            path: path.to_path_buf(),
            line: 0,
            problem,
        };
        let argon2_decoy = users
            .values()
            .filter_map(|u| argon2_params(&u.hash))
            .max_by_key(|(_, p)| {
                u64::from(p.m_cost()) * u64::from(p.t_cost()) * u64::from(p.p_cost())
            })
            .map(|params| argon2_hash(&secret, params))
            .transpose()
            .map_err(|e| unusable(format!("argon2 parameters that cannot be used: {e}")))?;
        let bcrypt_cost = users
            .values()
            .filter(|u| is_bcrypt(&u.hash))
            .filter_map(|u| u.hash.get(4..6)?.parse::<u32>().ok())
            .max();
        let bcrypt_decoy = bcrypt_cost
            .map(|cost| {
                bcrypt::hash(&secret, cost)
                    .map_err(|e| unusable(format!("a bcrypt cost of {cost} cannot be used: {e}")))
            })
            .transpose()?;
        let decoy = match (argon2_decoy, bcrypt_decoy) {
            (Some(argon2), Some(bcrypt)) => {
                let took = |hash: &str| {
                    let started = Instant::now();
                    verify("not the password", hash);
                    started.elapsed()
                };
                if took(&argon2) >= took(&bcrypt) {
                    argon2
                } else {
                    bcrypt
                }
            }
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => {
                return Err(UsersError::Empty {
                    path: path.to_path_buf(),
                });
            }
        };
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
        let matches = tokio::task::spawn_blocking(move || verify(&password, &hash))
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

/// An argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`, also `argon2i`,
/// `argon2d`), as the `argon2` tool and most password managers write them.
fn is_argon2(hash: &str) -> bool {
    ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
        && argon2::password_hash::PasswordHash::new(hash)
            .is_ok_and(|parsed| parsed.hash.is_some() && argon2_params(hash).is_some())
}

/// The parameters of an argon2 hash (for the decoy), if `hash` is one.
fn argon2_params(hash: &str) -> Option<(argon2::Algorithm, argon2::Params)> {
    let parsed = argon2::password_hash::PasswordHash::new(hash).ok()?;
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
    let params = argon2::Params::try_from(&parsed).ok()?;
    Some((algorithm, params))
}

fn argon2_hash(
    password: &str,
    (algorithm, params): (argon2::Algorithm, argon2::Params),
) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source");
    let salt = SaltString::encode_b64(&bytes)?;
    let hasher = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params);
    Ok(hasher
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` is the one `hash` (bcrypt or argon2) was made from.
fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::password_hash::PasswordVerifier as _;
        return argon2::password_hash::PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
    }
    bcrypt::verify(password, hash).unwrap_or(false)
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

    #[tokio::test]
    async fn argon2_hashes_are_taken_too() {
        // Made by the reference tool (Debian's `argon2`): `echo -n s3cret-argon | argon2 somesaltsalt -id -t 2 -m 12 -p 1 -e`.
        let reference = "$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHRzYWx0$Br9Hj2rnIkYIznbCKEJf7FCpOTx1M9YWJG8yPF7LpZ0";
        let params = argon2::Params::new(4096, 2, 1, None).unwrap();
        let made = argon2_hash("other-pass", (argon2::Algorithm::Argon2id, params)).unwrap();
        let bcrypt = bcrypt::hash("bcrypt-pass", 4).unwrap();
        let (_dir, path) = write(&format!(
            "argon:{reference} analyst
made:{made} reader
old:{bcrypt}
"
        ));
        let users = Users::load(&path).unwrap();
        assert!(
            users.decoy.starts_with("$argon2id$v=19$m=4096,t=2,p=1$"),
            "{}",
            users.decoy
        );
        assert_eq!(
            users.role_of("argon", "s3cret-argon").await,
            Some(Role::Analyst)
        );
        assert_eq!(users.role_of("argon", "s3cret-argoN").await, None);
        assert_eq!(
            users.role_of("made", "other-pass").await,
            Some(Role::Reader)
        );
        assert_eq!(
            users.role_of("old", "bcrypt-pass").await,
            Some(Role::Shipper)
        );
        assert_eq!(users.role_of("nobody", "s3cret-argon").await, None);
        let (_dir, path) = write("x:$argon2id$v=19$m=4096,t=2,p=1$broken\n");
        assert!(
            Users::load(&path)
                .unwrap_err()
                .to_string()
                .contains("argon2")
        );
    }

    #[test]
    fn a_bad_users_file_names_the_line() {
        let hash = hash_password("x").unwrap();
        for (text, expect) in [
            (
                "rsyslog:plaintext\n".to_string(),
                "line 1: the password of \"rsyslog\" is not a bcrypt ($2y$…) or argon2",
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
