//! Read positions, so a restarted agent resumes where it stopped.
//!
//! ## On disk
//!
//! `<data_dir>/checkpoints.json`: `{"version": 1, "files": {KEY: {"path", "offset",
//! "updated"}}, "journald": CURSOR}`, where KEY is a file's identity
//! (`dev:inode:fingerprint`, see [`FileIdentity`]) and `offset` the byte after the last
//! line whose event is fsynced in the disk buffer.
//!
//! ## Invariants and recovery
//!
//! - An offset is written only after the events before it are durable in the disk
//!   buffer, so a crash re-reads (and the deterministic event id makes the re-read a
//!   no-op at the collector), never skips.
//! - The file is replaced atomically: written to a temporary file, fsynced, renamed over
//!   the old one, and the directory fsynced. A crash leaves the old or the new file,
//!   never a torn one. An unreadable file (a disk error, a hand edit) is moved aside
//!   (`checkpoints.json.corrupt`) with an error log, and the positions count as *lost*
//!   ([`CheckpointStore::lost_since`]), also at later starts while no good file has
//!   been saved since (`checkpoints.json` missing beside a `.corrupt` one).
//! - Lost positions are not a first start: `start_at = "end"` would skip every line
//!   written while the agent was down. The buffer holds events, not positions (and only
//!   until delivered), so it cannot say where each file was. Instead the file input
//!   reads files without a position from their start and the journald input from when
//!   the lost file was last written (its modification time); what was delivered before
//!   is sent again with the same event ids (file identity and offset, journal cursor),
//!   which the collector stores once. Both log at WARN what they do.
//! - Entries not updated for 30 days are pruned.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{error, info, warn};

/// Why checkpoints could not be read or written.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoints to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What tells one file from another: device and inode, plus a hash of its first line
/// (up to 1 KiB), so a reused inode or a file recreated with other content is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: u64,
}

impl FileIdentity {
    /// The checkpoint key.
    pub fn key(&self) -> String {
        format!("{}:{}:{:016x}", self.dev, self.ino, self.fingerprint)
    }

    /// The source identity that goes into event ids.
    pub fn source_identity(&self) -> String {
        format!("file:{}", self.key())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    path: String,
    offset: u64,
    updated: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: BTreeMap<String, Entry>,
    /// The cursor of the last journal entry delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journald: Option<String>,
}

/// The checkpoints of every file the agent reads.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
    journal_cursor: Option<String>,
    /// The positions were lost (see the module doc): when they were last saved.
    lost_since: Option<SystemTime>,
}

const FILE_NAME: &str = "checkpoints.json";
const KEEP_DAYS: i64 = 30;

impl CheckpointStore {
    /// Loads `<dir>/checkpoints.json`, creating `dir` when missing.
    pub fn load(dir: &Path) -> Result<CheckpointStore, CheckpointError> {
        fs::create_dir_all(dir).map_err(|source| CheckpointError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let aside = path.with_extension("json.corrupt");
        let modified = |path: &Path| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let mut lost_since = None;
        let (entries, journal_cursor) = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(on_disk) => (on_disk.files, on_disk.journald),
                Err(e) => {
                    lost_since = Some(modified(&path));
                    error!(path = %path.display(), error = %e, aside = %aside.display(), "Checkpoints unreadable; moved aside. Files without a position are read from their start (not start_at), the journal from when they were last saved.");
                    let _ = fs::rename(&path, &aside);
                    (BTreeMap::new(), None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if aside.exists() {
                    // Found unreadable at an earlier start, and nothing saved since.
                    lost_since = Some(modified(&aside));
                    warn!(aside = %aside.display(), "No checkpoints saved since they were found unreadable; still reading files without a position from their start.");
                }
                (BTreeMap::new(), None)
            }
            Err(e) => {
                lost_since = Some(modified(&path));
                error!(path = %path.display(), error = %e, "Checkpoints unreadable. Files without a position are read from their start (not start_at), the journal from when they were last saved.");
                (BTreeMap::new(), None)
            }
        };
        if !entries.is_empty() {
            info!(path = %path.display(), files = entries.len(), "Checkpoints loaded.");
        }
        Ok(CheckpointStore {
            path,
            entries,
            journal_cursor,
            lost_since,
        })
    }

    /// When the positions were lost (unreadable at load, see the module doc), the time
    /// they were last saved; `None` when they were read, or never written (a first
    /// start).
    pub fn lost_since(&self) -> Option<SystemTime> {
        self.lost_since
    }

    /// The saved offset of `identity`, if any.
    pub fn offset(&self, identity: &FileIdentity) -> Option<u64> {
        self.entries.get(&identity.key()).map(|e| e.offset)
    }

    /// Whether some file was already read under `path` (then a new file there is a
    /// rotation, read from its start, not a file never seen).
    pub fn knows_path(&self, path: &str) -> bool {
        self.entries.values().any(|e| e.path == path)
    }

    /// The cursor of the last journal entry delivered.
    pub fn journal_cursor(&self) -> Option<&str> {
        self.journal_cursor.as_deref()
    }

    /// Records that the journal was delivered up to `cursor`.
    pub fn set_journal_cursor(&mut self, cursor: &str) {
        self.journal_cursor = Some(cursor.to_string());
    }

    /// Drops the entries whose path `keep` refuses; returns how many.
    pub fn prune(&mut self, keep: impl Fn(&str) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| keep(&e.path));
        before - self.entries.len()
    }

    /// Records that everything before `offset` of `identity` was delivered.
    pub fn set(&mut self, identity: &FileIdentity, path: &str, offset: u64) {
        let entry = self.entries.entry(identity.key()).or_insert_with(|| Entry {
            path: path.to_string(),
            offset: 0,
            updated: Utc::now(),
        });
        entry.offset = entry.offset.max(offset);
        entry.path.clear();
        entry.path.push_str(path);
        entry.updated = Utc::now();
    }

    /// Writes the checkpoints atomically (see the module doc).
    pub fn save(&mut self) -> Result<(), CheckpointError> {
        let cutoff = Utc::now() - Duration::days(KEEP_DAYS);
        self.entries.retain(|_, e| e.updated >= cutoff);
        let on_disk = OnDisk {
            version: 1,
            files: self.entries.clone(),
            journald: self.journal_cursor.clone(),
        };
        let write_err = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&on_disk).map_err(|e| write_err(e.into()))?;
        let temp = self.path.with_extension("json.tmp");
        let mut file = File::create(&temp).map_err(write_err)?;
        file.write_all(&bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        drop(file);
        fs::rename(&temp, &self.path).map_err(write_err)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(write_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino: n,
            fingerprint: 0xabc,
        }
    }

    #[test]
    fn offsets_survive_a_reload_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::load(dir.path()).unwrap();
        assert_eq!(store.offset(&id(1)), None);
        store.set(&id(1), "/var/log/auth.log", 100);
        store.set(&id(1), "/var/log/auth.log", 50);
        store.save().unwrap();
        let store = CheckpointStore::load(dir.path()).unwrap();
        assert_eq!(store.offset(&id(1)), Some(100));
        assert_eq!(store.offset(&id(2)), None);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_the_positions_count_as_lost_until_saved() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            CheckpointStore::load(dir.path()).unwrap().lost_since(),
            None
        );
        let path = dir.path().join("checkpoints.json");
        fs::write(&path, b"{not json").unwrap();
        let written = fs::metadata(&path).unwrap().modified().unwrap();
        let store = CheckpointStore::load(dir.path()).unwrap();
        assert_eq!(store.offset(&id(1)), None);
        assert_eq!(store.lost_since(), Some(written));
        assert!(dir.path().join("checkpoints.json.corrupt").exists());
        drop(store);
        // A restart before anything was saved: still lost.
        let mut store = CheckpointStore::load(dir.path()).unwrap();
        assert_eq!(store.lost_since(), Some(written));
        store.set(&id(1), "/var/log/auth.log", 10);
        store.save().unwrap();
        let store = CheckpointStore::load(dir.path()).unwrap();
        assert_eq!(store.lost_since(), None);
        assert_eq!(store.offset(&id(1)), Some(10));
    }
}
