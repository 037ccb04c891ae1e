//! `[agent.api]`: the local listener for `/metrics` and `/health` (off unless `listen`
//! is set).

use std::net::SocketAddr;
use std::time::Duration;

use picket_common::config::KeyError;
use serde::Deserialize;

const TABLE: &str = "agent.api";

/// `[agent.api]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where to serve `/metrics` (Prometheus text) and `/health`: `ADDR:PORT`, as
    /// `127.0.0.1:9598`. Unset (the default): no listener. Plain HTTP with no
    /// authentication: keep it on loopback or a management network.
    #[serde(default)]
    pub listen: Option<String>,
    /// How long delivery may fail without a success before `/health` answers 503
    /// (a collector restart should not page anyone).
    #[serde(
        default = "default_unhealthy_after_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub unhealthy_after_secs: u64,
}

fn default_unhealthy_after_secs() -> u64 {
    60
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            unhealthy_after_secs: default_unhealthy_after_secs(),
        }
    }
}

/// The checked `[agent.api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub unhealthy_after: Duration,
}

impl ApiConfig {
    /// The listener's settings; `None` when it is off.
    pub fn build(&self) -> Result<Option<ApiSettings>, KeyError> {
        let Some(listen) = &self.listen else {
            return Ok(None);
        };
        let listen = listen.trim().parse::<SocketAddr>().map_err(|_| {
            KeyError::new(
                format!("{TABLE}.listen"),
                format!("{listen:?} is not ADDR:PORT (as \"127.0.0.1:9598\")"),
            )
        })?;
        Ok(Some(ApiSettings {
            listen,
            unhealthy_after: Duration::from_secs(self.unhealthy_after_secs),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_is_off_unless_asked_for() {
        assert_eq!(ApiConfig::default().build(), Ok(None));
        let config: ApiConfig =
            toml::from_str("listen = \"127.0.0.1:9598\"\nunhealthy_after_secs = \"2m\"\n").unwrap();
        assert_eq!(
            config.build(),
            Ok(Some(ApiSettings {
                listen: "127.0.0.1:9598".parse().unwrap(),
                unhealthy_after: Duration::from_secs(120),
            }))
        );
        let wrong: ApiConfig = toml::from_str("listen = \"localhost\"\n").unwrap();
        let error = wrong.build().unwrap_err();
        assert_eq!(error.key, "agent.api.listen");
    }
}
