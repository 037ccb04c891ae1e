//! `[agent.inputs.journald]`: its keys, their defaults, and the checked settings the
//! journald input runs on.

use std::path::PathBuf;

use serde::Deserialize;

use crate::inputs::StartAt;
use picket_common::config::KeyError;

/// Whether the journal is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournaldMode {
    /// Read the journal when none of the file input's `paths` names an existing file
    /// at start (a host without rsyslog).
    Auto,
    On,
    Off,
}

/// `[agent.inputs.journald]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldInputConfig {
    /// `auto`, `on` or `off`.
    #[serde(default = "default_journald_mode")]
    pub mode: JournaldMode,
    /// The journalctl program.
    #[serde(default = "default_journalctl")]
    pub journalctl: PathBuf,
    /// Journal directories to read instead of the system journal.
    #[serde(default)]
    pub directories: Vec<PathBuf>,
    /// Journal files to read instead of the system journal.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Syslog facilities whose entries are read (4 auth, 10 authpriv).
    #[serde(default = "default_facilities")]
    pub facilities: Vec<u8>,
    /// Programs (`SYSLOG_IDENTIFIER`) whose entries are read, whatever their facility.
    #[serde(default = "default_identifiers")]
    pub identifiers: Vec<String>,
    /// Where to start without a checkpoint: `end` (new entries) or `beginning`.
    #[serde(default = "crate::inputs::default_start_at")]
    pub start_at: StartAt,
}

fn default_journald_mode() -> JournaldMode {
    JournaldMode::Auto
}
fn default_journalctl() -> PathBuf {
    PathBuf::from("journalctl")
}
fn default_facilities() -> Vec<u8> {
    vec![4, 10]
}
fn default_identifiers() -> Vec<String> {
    [
        "sshd",
        "sshd-session",
        "sudo",
        "su",
        "useradd",
        "userdel",
        "usermod",
        "groupadd",
        "groupdel",
        "groupmod",
        "gpasswd",
        "passwd",
        "chpasswd",
        "chage",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for JournaldInputConfig {
    fn default() -> Self {
        JournaldInputConfig {
            mode: default_journald_mode(),
            journalctl: default_journalctl(),
            directories: Vec::new(),
            files: Vec::new(),
            facilities: default_facilities(),
            identifiers: default_identifiers(),
            start_at: crate::inputs::default_start_at(),
        }
    }
}

/// The checked journald settings.
#[derive(Debug, Clone)]
pub struct JournaldSettings {
    pub journalctl: PathBuf,
    pub directories: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
    pub facilities: Vec<u8>,
    pub identifiers: Vec<String>,
    pub start_at: StartAt,
}

impl JournaldInputConfig {
    /// The checked settings, `None` when the journal is not read (`off`, or `auto` on
    /// a host where `log_files_found`), or the key that is wrong.
    pub fn build(&self, log_files_found: bool) -> Result<Option<JournaldSettings>, KeyError> {
        if let Some(f) = self.facilities.iter().find(|f| **f > 23) {
            return Err(KeyError::new(
                "agent.inputs.journald.facilities",
                format!("{f} is not a syslog facility (0 to 23)"),
            ));
        }
        let on = match self.mode {
            JournaldMode::On => true,
            JournaldMode::Off => false,
            JournaldMode::Auto => !log_files_found,
        };
        Ok(on.then(|| JournaldSettings {
            journalctl: self.journalctl.clone(),
            directories: self.directories.clone(),
            files: self.files.clone(),
            facilities: self.facilities.clone(),
            identifiers: self.identifiers.clone(),
            start_at: self.start_at,
        }))
    }
}
