//! `[collector.alerts]`: whether rules run and from which folder; the notifiers' tables
//! are beside them ([`super::notify::config`], [`super::irc::config`]).

use std::path::PathBuf;

use picket_common::config::KeyError;
use serde::Deserialize;

use super::irc::config::{IrcConfig, IrcSettings};
use super::notify::config::{AlertAmqpConfig, AlertAmqpSettings, WebhookConfig, WebhookSettings};

/// `[collector.alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Run the rules (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The rules folder (`*.toml`, MozDef generic `*.json`); default
    /// `/etc/picket/rules`, where the package installs the shipped detections. A
    /// missing default folder turns alerts off with a log line; a missing configured
    /// one is an error.
    #[serde(default)]
    pub rules_dir: Option<PathBuf>,
    /// `[[collector.alerts.webhook]]`: where alerts are POSTed.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// `[collector.alerts.amqp]`: publish alerts for MozDef's bots.
    #[serde(default)]
    pub amqp: Option<AlertAmqpConfig>,
    /// `[collector.alerts.irc]`: say alerts in an IRC channel.
    #[serde(default)]
    pub irc: Option<IrcConfig>,
    /// With the Elasticsearch store (a fleet of collectors sharing it), one collector
    /// at a time runs the rules: the one holding a lease in the store, for this long
    /// from its last renewal (every third of it), in seconds. A holder that dies is
    /// replaced after at most this long. Unset: 30. (The embedded store has one
    /// collector and no lease.)
    #[serde(default, deserialize_with = "picket_common::units::secs_option")]
    pub lease_secs: Option<u64>,
}

/// The checked `[collector.alerts]`.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// The rules folder, when alerts run.
    pub rules_dir: Option<PathBuf>,
    pub webhooks: Vec<WebhookSettings>,
    pub amqp: Option<AlertAmqpSettings>,
    pub irc: Option<IrcSettings>,
    /// How long the fleet's alert lease lasts without renewal.
    pub lease: std::time::Duration,
}

/// Where the package installs the shipped detections.
const DEFAULT_RULES_DIR: &str = "/etc/picket/rules";

impl AlertsConfig {
    /// Checks every key and loads the rules once (a broken rule is a config error).
    pub fn build(&self) -> Result<AlertSettings, KeyError> {
        let rules_dir = if self.enabled == Some(false) {
            None
        } else {
            match &self.rules_dir {
                Some(dir) if !dir.is_dir() => {
                    return Err(KeyError::new(
                        "collector.alerts.rules_dir",
                        format!("{} is not a folder", dir.display()),
                    ));
                }
                Some(dir) => Some(dir.clone()),
                None => {
                    let default = PathBuf::from(DEFAULT_RULES_DIR);
                    default.is_dir().then_some(default)
                }
            }
        };
        if let Some(dir) = &rules_dir {
            super::rules::load_dir(dir)
                .map_err(|e| KeyError::new("collector.alerts.rules_dir", e.to_string()))?;
        }
        Ok(AlertSettings {
            rules_dir,
            webhooks: self
                .webhook
                .iter()
                .map(WebhookConfig::build)
                .collect::<Result<_, _>>()?,
            amqp: self.amqp.as_ref().map(AlertAmqpConfig::build).transpose()?,
            irc: self.irc.as_ref().map(IrcConfig::build).transpose()?,
            lease: {
                let secs = self.lease_secs.unwrap_or(30);
                if secs < 15 {
                    return Err(KeyError::new(
                        "collector.alerts.lease_secs",
                        format!(
                            "must be at least 15 (a third of it between renewals, 5 s of margin), not {secs}"
                        ),
                    ));
                }
                std::time::Duration::from_secs(secs)
            },
        })
    }
}
