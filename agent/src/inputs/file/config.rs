//! `[agent.inputs.file]`: its keys, their defaults, and the checked settings the file
//! input runs on.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::discover::Discovery;
use crate::inputs::StartAt;
use picket_common::config::KeyError;

/// `[agent.inputs.file]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInputConfig {
    /// Files to follow, globs allowed; files that appear later are picked up.
    #[serde(default = "default_paths")]
    pub paths: Vec<PathBuf>,
    /// Globs of files not to follow, though `paths` match them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether gzip-rotated files (`*.gz`) that `paths` match are read.
    #[serde(default)]
    pub read_gzip: bool,
    /// `beginning` or `end`, for files never read before.
    #[serde(default = "crate::inputs::default_start_at")]
    pub start_at: StartAt,
    /// How often to look for new lines when no change notification comes, in
    /// milliseconds (with inotify working, at most once a second).
    #[serde(
        default = "default_poll_interval_ms",
        deserialize_with = "picket_common::units::millis"
    )]
    pub poll_interval_ms: u64,
    /// How often to expand `paths` again for new files, in milliseconds (created files
    /// are also found at once when inotify reports them).
    #[serde(
        default = "default_scan_interval_ms",
        deserialize_with = "picket_common::units::millis"
    )]
    pub scan_interval_ms: u64,
    /// How long a rotated-away or deleted file is still read after its last new byte,
    /// in seconds (writers append until they reopen).
    #[serde(
        default = "default_rotated_idle_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub rotated_idle_secs: u64,
    /// How long a last line without its newline waits before it is sent as it is, in
    /// milliseconds.
    #[serde(
        default = "default_partial_line_flush_ms",
        deserialize_with = "picket_common::units::millis"
    )]
    pub partial_line_flush_ms: u64,
    /// Longest line kept whole, in bytes.
    #[serde(
        default = "default_max_line_bytes",
        deserialize_with = "picket_common::units::bytes_usize"
    )]
    pub max_line_bytes: usize,
}

fn default_paths() -> Vec<PathBuf> {
    vec![
        PathBuf::from("/var/log/auth.log"),
        PathBuf::from("/var/log/secure"),
    ]
}
fn default_poll_interval_ms() -> u64 {
    250
}
fn default_scan_interval_ms() -> u64 {
    10_000
}
fn default_rotated_idle_secs() -> u64 {
    5
}
fn default_partial_line_flush_ms() -> u64 {
    5_000
}
fn default_max_line_bytes() -> usize {
    64 * 1024
}

impl Default for FileInputConfig {
    fn default() -> Self {
        FileInputConfig {
            paths: default_paths(),
            exclude: Vec::new(),
            read_gzip: false,
            start_at: crate::inputs::default_start_at(),
            poll_interval_ms: default_poll_interval_ms(),
            scan_interval_ms: default_scan_interval_ms(),
            rotated_idle_secs: default_rotated_idle_secs(),
            partial_line_flush_ms: default_partial_line_flush_ms(),
            max_line_bytes: default_max_line_bytes(),
        }
    }
}

/// The checked file input settings.
#[derive(Debug, Clone)]
pub struct FileInputSettings {
    pub discovery: Discovery,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub scan_interval: Duration,
    pub rotated_idle: Duration,
    pub partial_flush: Duration,
    pub max_line_bytes: usize,
}

impl FileInputConfig {
    /// The checked settings (the globs compiled), or the key that is wrong.
    pub fn build(&self) -> Result<FileInputSettings, KeyError> {
        if self.paths.is_empty() {
            return Err(KeyError::new(
                "agent.inputs.file.paths",
                "must name at least one file",
            ));
        }
        if let Some(p) = self.paths.iter().find(|p| !p.is_absolute()) {
            return Err(KeyError::new(
                "agent.inputs.file.paths",
                format!("{} is not an absolute path", p.display()),
            ));
        }
        let discovery =
            Discovery::build(&self.paths, &self.exclude, self.read_gzip).map_err(|e| {
                let key = if e.in_exclude() { "exclude" } else { "paths" };
                KeyError::new(format!("agent.inputs.file.{key}"), e.to_string())
            })?;
        if self.scan_interval_ms < 100 {
            return Err(KeyError::new(
                "agent.inputs.file.scan_interval_ms",
                "must be at least 100",
            ));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err(KeyError::new(
                "agent.inputs.file.poll_interval_ms",
                "must be between 10 and 60000",
            ));
        }
        if !(256..=64 * 1024 * 1024).contains(&self.max_line_bytes) {
            return Err(KeyError::new(
                "agent.inputs.file.max_line_bytes",
                "must be between 256 and 67108864",
            ));
        }
        Ok(FileInputSettings {
            discovery,
            start_at: self.start_at,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            scan_interval: Duration::from_millis(self.scan_interval_ms),
            rotated_idle: Duration::from_secs(self.rotated_idle_secs),
            partial_flush: Duration::from_millis(self.partial_line_flush_ms),
            max_line_bytes: self.max_line_bytes,
        })
    }
}
