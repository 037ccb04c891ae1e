//! The collector's configuration: the `[collector]` table of the config file, mirrored
//! by `config.example.toml`. Raw values are read with serde (unknown keys are errors)
//! and checked by [`CollectorConfig::build`] into runtime values that later code does
//! not re-check.
//!
//! This root only names the tables. Each component's table lives beside it and is
//! built by it, giving a [`KeyError`] this root turns into a [`ConfigError`] naming the
//! file that set the key: `[collector.http]` in [`crate::http::config`],
//! `[collector.stores]` in [`crate::stores::config`] (and each store's `config.rs`),
//! `[collector.amqp]` in [`crate::amqp::config`], `[collector.alerts]` in
//! [`crate::alerts::config`] (and the notifiers' `config.rs`), `[collector.cli]` (the
//! commands' way to a running collector) in [`crate::cli::config`]. Drop-ins in
//! `collector.d/` merge over the main file as the agent's do.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alerts::config::{AlertSettings, AlertsConfig};
use crate::amqp::config::{AmqpConfig, AmqpSettings};
use crate::cli::config::CliConfig;
use crate::http::config::{HttpConfig, HttpSettings};
use crate::stores::config::{StoreSettings, StoresConfig};

pub use picket_common::config::{Collect, ConfigError, KeyError, Sources};
pub use picket_common::logging::LogFormat;

/// The whole file. The agent's table may sit beside ours (one file for a demo or a
/// small site); the collector ignores it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The collector's settings.
    #[serde(default)]
    pub collector: CollectorConfig,
    /// The agent's settings, read by `picket-agent`.
    #[serde(default)]
    pub agent: Option<toml::Value>,
    /// The files it was read from (the main file, then its drop-ins).
    #[serde(skip)]
    pub sources: Sources,
}

/// `[collector]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Where the collector keeps its state (the embedded store's indices).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `[collector.http]`: the HTTP ingest and search API.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[collector.stores]`: where events are stored.
    #[serde(default)]
    pub stores: StoresConfig,
    /// `[collector.amqp]`: consume MozDef's RabbitMQ queue (off when absent).
    #[serde(default)]
    pub amqp: Option<AmqpConfig>,
    /// `[collector.alerts]`: scheduled alert rules and notifications.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[collector.console]`: the web console at `/console/`.
    #[serde(default)]
    pub console: crate::console::ConsoleConfig,
    /// `[collector.cli]`: how `search` and `alerts test` reach the collector (the
    /// service itself does not read it).
    #[serde(default)]
    pub cli: CliConfig,
    /// Events whose time is more than this many days before their reception are timed
    /// at reception, the time they carried kept in `details.timestamperror` (and
    /// counted in `picket_events_retimed_total`): a batch cannot make the store open
    /// an index per day of the last century. 0: no limit but the store's (1677–2262).
    #[serde(default = "default_max_event_age_days")]
    pub max_event_age_days: u32,
    /// The same for times ahead of reception, in hours (clock skew, a wrong time zone).
    #[serde(default = "default_max_event_future_hours")]
    pub max_event_future_hours: u32,
    /// `text` (the default) or `json` (one object per line) for the collector's own
    /// logs.
    #[serde(default)]
    pub log_format: LogFormat,
}

fn default_max_event_age_days() -> u32 {
    365
}
fn default_max_event_future_hours() -> u32 {
    24
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/picket-collector")
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            data_dir: default_data_dir(),
            http: HttpConfig::default(),
            stores: StoresConfig::default(),
            amqp: None,
            alerts: AlertsConfig::default(),
            console: crate::console::ConsoleConfig::default(),
            cli: CliConfig::default(),
            max_event_age_days: default_max_event_age_days(),
            max_event_future_hours: default_max_event_future_hours(),
            log_format: LogFormat::default(),
        }
    }
}

/// The checked configuration the collector runs with: a tree that mirrors the TOML.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub stores: StoreSettings,
    pub amqp: Option<AmqpSettings>,
    pub alerts: AlertSettings,
    pub console: crate::console::ConsoleSettings,
    /// How far from its reception an event's time may be before it is retimed.
    pub time_window: mozdef::normalize::TimeWindow,
    pub log_format: LogFormat,
}

impl ConfigFile {
    /// Reads and parses a config file and its drop-ins (`collector.d/*.toml`; syntax
    /// and key names only): see [`picket_common::config::load`].
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let (mut config, sources): (ConfigFile, Sources) =
            picket_common::config::load(path, Some("collector"))?;
        config.sources = sources;
        Ok(config)
    }

    /// Reads, interpolates and checks the configuration: the settings, or every error
    /// of every file, each with its file, line and column.
    pub fn settings(path: &Path) -> Result<(Settings, Sources), ConfigError> {
        picket_common::config::load_all::<ConfigFile>(path, Some("collector"))
            .build(|file, sources| file.collector.build_from(sources))
    }
}

impl CollectorConfig {
    /// Checks every value; `path` names the file in errors.
    pub fn build(&self, path: &Path) -> Result<Settings, ConfigError> {
        self.build_from(&Sources::single(path))
    }

    /// Like [`CollectorConfig::build`] for a merged configuration: an error names the
    /// file that set the bad key.
    pub fn build_from(&self, sources: &Sources) -> Result<Settings, ConfigError> {
        // Every table is checked, so one run reports every table's error.
        let mut errors = Collect::new(sources);
        if self.data_dir.as_os_str().is_empty() {
            errors.push(KeyError::new("collector.data_dir", "must not be empty"));
        }
        let http = errors.take(self.http.build());
        let stores = errors.take(self.stores.build(&self.data_dir));
        let amqp = errors.take(self.amqp.as_ref().map(AmqpConfig::build).transpose());
        let alerts = errors.take(self.alerts.build());
        let console = errors.take(self.console.build());
        let (Some(http), Some(stores), Some(amqp), Some(alerts), Some(console)) =
            (http, stores, amqp, alerts, console)
        else {
            return Err(errors.into_error());
        };
        errors.finish()?;
        Ok(Settings {
            data_dir: self.data_dir.clone(),
            http,
            stores,
            amqp,
            alerts,
            console,
            time_window: mozdef::normalize::TimeWindow {
                max_age: (self.max_event_age_days > 0)
                    .then(|| chrono::Duration::days(i64::from(self.max_event_age_days))),
                max_future: chrono::Duration::hours(i64::from(self.max_event_future_hours)),
            },
            log_format: self.log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_builds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
        let file = ConfigFile::load(&path).unwrap();
        assert!(file.agent.is_some(), "the example documents the agent too");
        let settings = file.collector.build(&path).unwrap();
        assert_eq!(settings.http.listen.port(), 8080);
    }

    #[test]
    fn a_typo_is_refused_with_its_name() {
        let err = toml::from_str::<ConfigFile>("[collector.http]\nlisten_addr = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let file: ConfigFile = toml::from_str("[collector.http]\nlisten = \"nope\"\n").unwrap();
        let err = file
            .collector
            .build(Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("collector.http.listen") && err.contains("c.toml"),
            "{err}"
        );
    }

    #[test]
    fn dropins_merge_and_a_bad_value_names_its_dropin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(
            &path,
            "[collector.http]\nlisten = \"127.0.0.1:8080\"\nmax_body_bytes = 2000000\n",
        )
        .unwrap();
        let dropins = dir.path().join("collector.d");
        std::fs::create_dir(&dropins).unwrap();
        std::fs::write(
            dropins.join("10-listen.toml"),
            "[collector.http]\nlisten = \"127.0.0.1:9090\"\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        let settings = file.collector.build_from(&file.sources).unwrap();
        assert_eq!(settings.http.listen.port(), 9090);
        assert_eq!(settings.http.max_body_bytes, 2_000_000);
        std::fs::write(
            dropins.join("20-store.toml"),
            "[collector.stores.embedded]\ncommit_interval_ms = 1\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        let err = file
            .collector
            .build_from(&file.sources)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("20-store.toml")
                && err.contains("collector.stores.embedded.commit_interval_ms"),
            "{err}"
        );
        std::fs::write(
            dropins.join("30-typo.toml"),
            "[collector.http]\nlisten_on = 1\n",
        )
        .unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("30-typo.toml") && err.contains("listen_on"),
            "{err}"
        );
    }

    #[test]
    fn settings_print_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("es.password");
        std::fs::write(&password, "s3cret-es-password\n").unwrap();
        let text = format!(
            "[collector.stores.elasticsearch]\nurls = [\"https://es.example:9200\"]\nusername = \"picket\"\npassword_file = {:?}\n",
            password.display().to_string()
        );
        let file: ConfigFile = toml::from_str(&text).unwrap();
        let settings = file.collector.build(Path::new("c.toml")).unwrap();
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("picket") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
