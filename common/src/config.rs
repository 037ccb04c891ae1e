//! Config files: a main file and its drop-ins merged into one table, the record of which
//! file set each key, and the errors that name them.
//!
//! A component's table is checked by the component (`build()` beside its `*Config`),
//! which answers a [`KeyError`]: the key's full dotted path and what is wrong. The root
//! turns it into a [`ConfigError`] naming the file that set the key
//! ([`Sources::invalid`]), so an operator with twenty drop-ins edits the right one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use thiserror::Error;

/// A key of a config table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The key's full path (`agent.buffer.sync_interval_ms`).
    pub key: String,
    pub message: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> KeyError {
        KeyError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {}: {}", self.key, self.message)
    }
}

impl std::error::Error for KeyError {}

/// Why a configuration could not be used. The binaries exit with 78 (`EX_CONFIG`).
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: key {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The files a configuration was merged from, and which of them set each key.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The main file first, then the drop-ins in the order they were merged.
    pub files: Vec<PathBuf>,
    /// Dotted key (`agent.inputs.file.paths`) → index in `files` of the last file
    /// that set it.
    origins: HashMap<String, usize>,
}

impl Sources {
    /// One file and nothing else.
    pub fn single(path: &Path) -> Sources {
        Sources {
            files: vec![path.to_path_buf()],
            origins: HashMap::new(),
        }
    }

    /// The file that set `key` (or the nearest table above it); the main file when
    /// none did (a default).
    pub fn file_for(&self, key: &str) -> &Path {
        let mut key = key;
        loop {
            if let Some(&index) = self.origins.get(key) {
                return &self.files[index];
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => {
                    return self
                        .files
                        .first()
                        .map_or(Path::new("(no file)"), PathBuf::as_path);
                }
            }
        }
    }

    /// A component's [`KeyError`] as the root's error, naming the file that set the key.
    pub fn invalid(&self, error: KeyError) -> ConfigError {
        ConfigError::Invalid {
            path: self.file_for(&error.key).to_path_buf(),
            key: error.key,
            message: error.message,
        }
    }

    fn record(&mut self, prefix: &str, table: &toml::Table, index: usize) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let toml::Value::Table(inner) = value {
                self.record(&key, inner, index);
            }
            self.origins.insert(key, index);
        }
    }
}

/// The drop-in folder of a config file: `agent.d/` beside `agent.toml`.
pub fn dropin_dir(path: &Path) -> PathBuf {
    path.with_extension("d")
}

/// Reads and parses a config file and its drop-ins (syntax and key names only).
///
/// Drop-ins are the `*.toml` files of [`dropin_dir`] (`/etc/picket/agent.d/`), merged
/// over the main file in byte order of their names: a table merges key by key, any
/// other value (a list too) replaces the one before. Each file must be valid as a `T`
/// on its own or merged over the files before it, so a typo is reported with the file
/// that holds it. Other files there
/// (`.dpkg-old`, editor backups, hidden files) are skipped.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(T, Sources), ConfigError> {
    let mut files = vec![path.to_path_buf()];
    let dir = dropin_dir(path);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut dropins: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && !is_hidden(p))
                .collect();
            dropins.sort();
            files.extend(dropins);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ConfigError::Read { path: dir, source }),
    }
    let mut merged = toml::Table::new();
    let mut sources = Sources::default();
    for (index, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            path: file.clone(),
            source,
        })?;
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: file.clone(),
            message: e.to_string(),
        };
        let table: toml::Table = toml::from_str(&text).map_err(parse_error)?;
        sources.record("", &table, index);
        // Unknown keys and wrong types are the fault of the file that brings them: it
        // must be valid alone, or over the files before it (a drop-in that sets only
        // `password_file` of a table whose `url` the main file holds).
        let alone = toml::Value::Table(table.clone()).try_into::<T>();
        merge(&mut merged, table);
        if alone.is_err() {
            toml::Value::Table(merged.clone())
                .try_into::<T>()
                .map_err(parse_error)?;
        }
    }
    sources.files = files;
    let config = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok((config, sources))
}

/// Merges `over` into `base`: tables merge key by key, any other value (arrays
/// included) replaces what was there.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (name, value) in over {
        match (base.get_mut(&name), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

/// `Err` naming `key` when `value` is 0.
pub fn at_least_one(key: &str, value: u64) -> Result<(), KeyError> {
    if value == 0 {
        return Err(KeyError::new(key, "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blamed_on_the_file_that_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("c.toml");
        std::fs::write(&main, "[a]\nx = 1\n").unwrap();
        std::fs::create_dir(dir.path().join("c.d")).unwrap();
        std::fs::write(dir.path().join("c.d/10.toml"), "[a.b]\ny = 2\n").unwrap();
        let (value, sources) = load::<toml::Table>(&main).unwrap();
        assert_eq!(value["a"]["x"].as_integer(), Some(1));
        assert_eq!(value["a"]["b"]["y"].as_integer(), Some(2));
        assert_eq!(sources.file_for("a.b.y"), dir.path().join("c.d/10.toml"));
        assert_eq!(sources.file_for("a.b.z"), dir.path().join("c.d/10.toml"));
        assert_eq!(sources.file_for("a.x"), main);
        // A key no file set: the last file that wrote its table.
        assert_eq!(sources.file_for("a.w"), dir.path().join("c.d/10.toml"));
        assert_eq!(sources.file_for("q"), main);
        let err = sources
            .invalid(KeyError::new("a.b.y", "too big"))
            .to_string();
        assert!(
            err.contains("10.toml") && err.contains("a.b.y: too big"),
            "{err}"
        );
        assert_eq!(Sources::default().file_for("a"), Path::new("(no file)"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Table {
        t: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        url: String,
        #[serde(default)]
        password_file: Option<String>,
    }

    #[test]
    fn a_dropin_may_complete_a_table_whose_required_key_is_in_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("c.toml");
        std::fs::write(&main, "[t]\nurl = \"amqp://x/\"\n").unwrap();
        std::fs::create_dir(dir.path().join("c.d")).unwrap();
        std::fs::write(
            dir.path().join("c.d/10.toml"),
            "[t]\npassword_file = \"/p\"\n",
        )
        .unwrap();
        let (value, _) = load::<Table>(&main).unwrap();
        assert_eq!(value.t.url, "amqp://x/");
        assert_eq!(value.t.password_file.as_deref(), Some("/p"));
        // A typo is still the drop-in's.
        std::fs::write(
            dir.path().join("c.d/20.toml"),
            "[t]\npasword_file = \"/p\"\n",
        )
        .unwrap();
        let err = load::<Table>(&main).unwrap_err().to_string();
        assert!(
            err.contains("20.toml") && err.contains("pasword_file"),
            "{err}"
        );
    }
}
