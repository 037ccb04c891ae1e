//! Secrets named by `*_file` keys: a password, a token, an API key. The file's first
//! line that is neither blank nor a `#` comment is the secret; an environment variable
//! naming another file wins over the config, so secrets can live outside configuration
//! management. A [`Secret`] prints `**REDACTED**` in `Debug` and `Display`: a settings
//! struct that derives `Debug` cannot leak one into a log.

use std::path::{Path, PathBuf};

use crate::config::KeyError;

/// A secret value. Use [`Secret::expose`] where it must be sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the header or URL that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// A secret file's path: the environment variable `env`'s when set and not empty, else
/// the configured one.
pub fn secret_path(env: &str, configured: &Option<PathBuf>) -> Option<PathBuf> {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.clone())
}

/// Reads a secret file; `key` names the config key in errors.
pub fn read_secret(key: &str, path: &Path) -> Result<Secret, KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError::new(key, format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::new)
        .ok_or_else(|| KeyError::new(key, format!("{} holds no secret", path.display())))
}

/// The secret of `key`: the file `env` names, else the configured file, else none.
pub fn configured_secret(
    key: &str,
    env: &str,
    configured: &Option<PathBuf>,
) -> Result<Option<Secret>, KeyError> {
    secret_path(env, configured)
        .map(|path| read_secret(key, &path))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_and_is_read_past_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "# the broker's\n\n  hunter2  \nnext\n").unwrap();
        let secret = read_secret("x.password_file", &path).unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "**REDACTED** **REDACTED**");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Settings {
            password: Option<Secret>,
        }
        let shown = format!(
            "{:?}",
            Settings {
                password: Some(secret)
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        std::fs::write(&path, "# nothing\n\n").unwrap();
        let err = read_secret("x.password_file", &path).unwrap_err();
        assert_eq!(err.key, "x.password_file");
        assert!(err.message.contains("holds no secret"), "{err}");
    }
}
