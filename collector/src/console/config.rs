//! `[collector.console]`: the web console's switch, its sessions' lifetimes and when a
//! host counts as silent.

use std::time::Duration;

use picket_common::config::KeyError;
use serde::Deserialize;

/// `[collector.console]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console at `/console/` on the API's listener (and TLS). Reading it
    /// needs what searching needs: a user of `users_file` or a token with the `reader`
    /// or `analyst` role (the collector's own `<data_dir>/read.token` too); triage needs
    /// `analyst`. `shipper` tokens and users get 403.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// A console session ends after this long without a request, in seconds.
    #[serde(
        default = "default_session_idle_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub session_idle_secs: u64,
    /// ...and this long after logging in, whatever its use, in seconds.
    #[serde(
        default = "default_session_max_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub session_max_secs: u64,
    /// A host whose last heartbeat is older than this, in seconds, is shown as silent
    /// (agents send one every `heartbeat_secs`, 60 by default).
    #[serde(
        default = "default_silent_after_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub silent_after_secs: u64,
}

fn default_enabled() -> bool {
    true
}
fn default_session_idle_secs() -> u64 {
    3_600
}
fn default_session_max_secs() -> u64 {
    12 * 3_600
}
fn default_silent_after_secs() -> u64 {
    180
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: default_enabled(),
            session_idle_secs: default_session_idle_secs(),
            session_max_secs: default_session_max_secs(),
            silent_after_secs: default_silent_after_secs(),
        }
    }
}

/// The console's checked settings.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub enabled: bool,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub silent_after: Duration,
}

impl ConsoleConfig {
    pub fn build(&self) -> Result<ConsoleSettings, KeyError> {
        if self.session_idle_secs == 0 {
            return Err(KeyError::new(
                "collector.console.session_idle_secs",
                "must be at least 1",
            ));
        }
        if self.session_max_secs < self.session_idle_secs {
            return Err(KeyError::new(
                "collector.console.session_max_secs",
                format!(
                    "must be at least session_idle_secs ({})",
                    self.session_idle_secs
                ),
            ));
        }
        if self.silent_after_secs == 0 {
            return Err(KeyError::new(
                "collector.console.silent_after_secs",
                "must be at least 1",
            ));
        }
        Ok(ConsoleSettings {
            enabled: self.enabled,
            session_idle: Duration::from_secs(self.session_idle_secs),
            session_max: Duration::from_secs(self.session_max_secs),
            silent_after: Duration::from_secs(self.silent_after_secs),
        })
    }
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleConfig::default()
            .build()
            .expect("the defaults are valid") // invariant: checked by a test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_and_bad_values_are_named() {
        let settings = ConsoleSettings::default();
        assert!(settings.enabled);
        assert_eq!(settings.silent_after, Duration::from_secs(180));
        let bad = ConsoleConfig {
            session_max_secs: 10,
            ..ConsoleConfig::default()
        };
        assert!(
            bad.build()
                .unwrap_err()
                .to_string()
                .contains("session_max_secs")
        );
    }
}
