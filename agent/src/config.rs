//! The agent's configuration: the `[agent]` table of the config file, mirrored by
//! `config.example.toml`. Raw values are read with serde (unknown keys are errors) and
//! checked by [`AgentConfig::build`] into [`Settings`] that later code does not
//! re-check.
//!
//! Each component's table lives beside the component and is built by it, giving a
//! [`KeyError`] that this root turns into a [`ConfigError`] naming the file:
//! `[agent.buffer]` in [`crate::buffer::config`], `[agent.inputs.file]` in
//! [`crate::inputs::file::config`], `[agent.inputs.journald]` in
//! [`crate::inputs::journald::config`], `[agent.inputs.syslog]` in
//! [`crate::inputs::syslog::config`], `[agent.api]` in [`crate::api::config`],
//! `[agent.shippers]` in [`crate::shippers::config`]
//! and each shipper's `config.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::datadir::{self, Owners};
use crate::host::{self, HostIdentity};
use crate::parsers::TimeZoneChoice;
use crate::shippers::common::Batching;

pub use crate::api::config::{ApiConfig, ApiSettings};
pub use crate::buffer::config::{BufferConfig, BufferSettings, WhenFull};
pub use crate::inputs::StartAt;
pub use crate::inputs::file::config::{FileInputConfig, FileInputSettings};
pub use crate::inputs::journald::config::{JournaldInputConfig, JournaldMode, JournaldSettings};
pub use crate::inputs::syslog::config::{SyslogInputConfig, SyslogSettings};
pub use crate::shippers::amqp::config::{AmqpAuth, AmqpSettings, AmqpShipperConfig};
pub use crate::shippers::config::{ShipperSettings, ShippersConfig};
pub use crate::shippers::http::config::{HttpSettings, HttpShipperConfig};
pub use picket_common::logging::LogFormat;
pub use picket_common::tls::{ClientCertificate, TlsFiles};

pub use picket_common::config::{Collect, ConfigError, KeyError, Sources};

/// The whole file; the collector's table may sit beside ours and is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The agent's settings.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The collector's settings, read by `picket-collector`.
    #[serde(default)]
    pub collector: Option<toml::Value>,
    /// The files it was read from (the main file, then its drop-ins).
    #[serde(skip)]
    pub sources: Sources,
}

/// `[agent]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Host name for lines that name none (default: this host's FQDN).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Stable host id, an input of every event id (default: /etc/machine-id).
    #[serde(default)]
    pub host_id: Option<String>,
    /// Where the state is kept (disk buffer, read positions, dead letters): owned by the
    /// agent's user or root, writable by no one else (see [`crate::datadir`]).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Zone of lines without one: an IANA name, `UTC` or `local`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `[agent.inputs]`.
    #[serde(default)]
    pub inputs: InputsConfig,
    /// `[agent.buffer]`.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// `[agent.shippers]`.
    #[serde(default)]
    pub shippers: ShippersConfig,
    /// `[agent.api]`.
    #[serde(default)]
    pub api: ApiConfig,
    /// `text` (the default) or `json` (one object per line) for the agent's own logs.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Seconds between heartbeat events (0: none).
    #[serde(
        default = "default_heartbeat_secs",
        deserialize_with = "picket_common::units::secs"
    )]
    pub heartbeat_secs: u64,
}

fn default_heartbeat_secs() -> u64 {
    60
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/picket-agent")
}
fn default_timezone() -> String {
    "local".to_string()
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            hostname: None,
            host_id: None,
            data_dir: default_data_dir(),
            timezone: default_timezone(),
            inputs: InputsConfig::default(),
            buffer: BufferConfig::default(),
            shippers: ShippersConfig::default(),
            api: ApiConfig::default(),
            log_format: LogFormat::default(),
            heartbeat_secs: default_heartbeat_secs(),
        }
    }
}

/// `[agent.inputs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsConfig {
    /// `[agent.inputs.file]`.
    #[serde(default)]
    pub file: FileInputConfig,
    /// `[agent.inputs.journald]`.
    #[serde(default)]
    pub journald: JournaldInputConfig,
    /// `[agent.inputs.syslog]`.
    #[serde(default)]
    pub syslog: SyslogInputConfig,
}

/// The checked configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: HostIdentity,
    pub data_dir: PathBuf,
    pub timezone: TimeZoneChoice,
    pub file: FileInputSettings,
    /// The journal is read (mode `on`, or `auto` on a host whose log files are
    /// missing).
    pub journald: Option<JournaldSettings>,
    /// The syslog listener, when it listens anywhere.
    pub syslog: Option<SyslogSettings>,
    pub buffer: BufferSettings,
    pub shipper: ShipperSettings,
    /// Events per batch and batches in flight.
    pub batching: Batching,
    /// Every this often an `agent heartbeat` event is emitted; `None`: never.
    pub heartbeat: Option<Duration>,
    /// The local `/metrics` and `/health` listener, when on.
    pub api: Option<ApiSettings>,
    pub log_format: LogFormat,
}

impl ConfigFile {
    /// Reads and parses a config file and its drop-ins (`agent.d/*.toml`; syntax and
    /// key names only): see [`picket_common::config::load`].
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let (mut config, sources): (ConfigFile, Sources) =
            picket_common::config::load(path, Some("agent"))?;
        config.sources = sources;
        Ok(config)
    }

    /// Reads, interpolates and checks the configuration: the settings, or every error
    /// of every file (syntax, unknown keys, types, units, values), each with its file,
    /// line and column. `owners`: see [`AgentConfig::build_with`].
    pub fn settings(path: &Path, owners: Owners) -> Result<(Settings, Sources), ConfigError> {
        picket_common::config::load_all::<ConfigFile>(path, Some("agent"))
            .build(|file, sources| file.agent.build_with(sources, owners))
    }
}

impl AgentConfig {
    /// Checks every value and resolves the host's identity; `path` names the file in
    /// errors.
    pub fn build(&self, path: &Path) -> Result<Settings, ConfigError> {
        self.build_from(&Sources::single(path))
    }

    /// Like [`AgentConfig::build`] for a merged configuration: an error names the file
    /// that set the bad key.
    pub fn build_from(&self, sources: &Sources) -> Result<Settings, ConfigError> {
        self.build_with(sources, Owners::Agent)
    }

    /// Like [`AgentConfig::build_from`], with `owners` allowed to own `data_dir`
    /// ([`Owners::Anyone`]: `validate` run as root, which cannot tell the service's user).
    pub fn build_with(&self, sources: &Sources, owners: Owners) -> Result<Settings, ConfigError> {
        // Every table is checked, so one run reports every table's error.
        let mut errors = Collect::new(sources);
        let timezone = errors.take(
            TimeZoneChoice::parse(&self.timezone)
                .map_err(|e| KeyError::new("agent.timezone", e.to_string())),
        );
        let file = errors.take(self.inputs.file.build());
        let shipper = errors.take(self.shippers.build());
        if self.data_dir.as_os_str().is_empty() {
            errors.push(KeyError::new("agent.data_dir", "must not be empty"));
        } else if let Err(e) = datadir::check(&self.data_dir, owners) {
            errors.push(KeyError::new("agent.data_dir", e.to_string()));
        }
        if self
            .hostname
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            errors.push(KeyError::new(
                "agent.hostname",
                "must not be empty when set",
            ));
        }
        let files_exist = file
            .as_ref()
            .is_some_and(|file| !file.discovery.scan().is_empty());
        let journald = errors.take(self.inputs.journald.build(files_exist));
        let syslog = errors.take(self.inputs.syslog.build());
        let buffer = errors.take(self.buffer.build());
        let api = errors.take(self.api.build());
        let (
            Some(timezone),
            Some(file),
            Some((shipper, batching)),
            Some(journald),
            Some(syslog),
            Some(buffer),
            Some(api),
        ) = (timezone, file, shipper, journald, syslog, buffer, api)
        else {
            return Err(errors.into_error());
        };
        errors.finish()?;
        let host = host::identity(self.hostname.as_deref(), self.host_id.as_deref());
        Ok(Settings {
            host,
            data_dir: self.data_dir.clone(),
            timezone,
            journald,
            syslog,
            buffer,
            file,
            shipper,
            batching,
            heartbeat: (self.heartbeat_secs > 0).then(|| Duration::from_secs(self.heartbeat_secs)),
            api,
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
        let mut file = ConfigFile::load(&path).unwrap();
        assert!(file.collector.is_some());
        assert_eq!(file.agent.data_dir, default_data_dir());
        // Not this host's /var/lib/picket-agent, which an installed package owns.
        let state = tempfile::tempdir().unwrap();
        file.agent.data_dir = state.path().to_path_buf();
        let settings = file.agent.build(&path).unwrap();
        assert_eq!(settings.file.start_at, StartAt::End);
        let ShipperSettings::Http(http) = &settings.shipper else {
            panic!("the example ships over HTTP");
        };
        assert_eq!(http.urls[0].as_str(), "http://127.0.0.1:8080/events");
        assert_eq!(
            settings.batching,
            Batching {
                max_events: 1000,
                max_in_flight: 4
            }
        );
    }

    #[test]
    fn batches_in_flight_are_bounded() {
        let state = tempfile::tempdir().unwrap();
        for (table, in_flight, wrong) in [
            ("http", 0, true),
            ("http", 65, true),
            ("http", 64, false),
            ("amqp", 0, true),
        ] {
            let text = format!(
                "[agent]\ndata_dir = {:?}\n[agent.shippers.{table}]\nurl = \"{table}://127.0.0.1/x\"\nmax_in_flight = {in_flight}\n",
                state.path().display().to_string()
            );
            let file: ConfigFile = toml::from_str(&text).unwrap();
            let built = file.agent.build(Path::new("a.toml"));
            assert_eq!(built.is_err(), wrong, "{table} {in_flight}");
            if let Err(e) = built {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("agent.shippers.{table}.max_in_flight"))
                        && e.contains("between 1 and 64"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn a_data_dir_others_can_write_to_is_a_config_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("checkpoints.json"), b"{}").unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let text = format!("[agent]\ndata_dir = {:?}\n", state.display().to_string());
        let file: ConfigFile = toml::from_str(&text).unwrap();
        let err = file
            .agent
            .build(Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.data_dir") && err.contains("0777"),
            "{err}"
        );
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        file.agent.build(Path::new("a.toml")).unwrap();
    }

    #[test]
    fn a_typo_is_refused_with_its_name() {
        let err = toml::from_str::<ConfigFile>("[agent.inputs.file]\npath = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[agent]\ntimezone = \"Mars/Olympus\"\n", "agent.timezone"),
            (
                "[agent.inputs.file]\npaths = [\"relative.log\"]\n",
                "agent.inputs.file.paths",
            ),
            (
                "[agent.inputs.file]\npaths = []\n",
                "agent.inputs.file.paths",
            ),
            (
                "[agent.shippers.http]\nurl = \"ftp://x/\"\n",
                "agent.shippers.http.url",
            ),
            (
                "[agent.shippers.http]\nurl = \"not a url\"\n",
                "agent.shippers.http.url",
            ),
            (
                "[agent.inputs.file]\npoll_interval_ms = 0\n",
                "agent.inputs.file.poll_interval_ms",
            ),
        ];
        for (text, key) in cases {
            let file: ConfigFile = toml::from_str(text).unwrap();
            let err = file
                .agent
                .build(Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    fn dropin_setup(main: &str, dropins: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, main).unwrap();
        let dropin_dir = dir.path().join("agent.d");
        std::fs::create_dir(&dropin_dir).unwrap();
        for (name, text) in dropins {
            std::fs::write(dropin_dir.join(name), text).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn dropins_merge_over_the_main_file_in_name_order() {
        let (_dir, path) = dropin_setup(
            "[agent]\nhostname = \"main\"\ntimezone = \"UTC\"\n\
             [agent.inputs.file]\npaths = [\"/var/log/auth.log\"]\npoll_interval_ms = 300\n",
            &[
                // Written out of order: names decide, not creation.
                ("20-later.toml", "[agent]\nhostname = \"twenty\"\n"),
                (
                    "10-paths.toml",
                    "[agent]\nhostname = \"ten\"\n[agent.inputs.file]\npaths = [\"/var/log/secure\"]\n",
                ),
                // Not drop-ins: skipped.
                ("30-old.toml.dpkg-old", "[agent]\nhostname = \"dpkg\"\n"),
                (".40-hidden.toml", "[agent]\nhostname = \"hidden\"\n"),
            ],
        );
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.agent.hostname.as_deref(), Some("twenty"));
        // A list is replaced, not appended to; the table's other keys stay.
        assert_eq!(
            file.agent.inputs.file.paths,
            [PathBuf::from("/var/log/secure")]
        );
        assert_eq!(file.agent.inputs.file.poll_interval_ms, 300);
        assert_eq!(file.agent.timezone, "UTC");
        let names: Vec<String> = file
            .sources
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["agent.toml", "10-paths.toml", "20-later.toml"]);
        file.agent.build_from(&file.sources).unwrap();
    }

    #[test]
    fn a_dropin_typo_names_the_dropin() {
        let (_dir, path) = dropin_setup(
            "[agent]\n",
            &[("50-typo.toml", "[agent.inputs.file]\npath = []\n")],
        );
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("50-typo.toml") && err.contains("path"),
            "{err}"
        );
        let (_dir, path) = dropin_setup("[agent]\n", &[("60-syntax.toml", "[agent\n")]);
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("60-syntax.toml"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_file_that_set_it() {
        let (_dir, path) = dropin_setup(
            "[agent]\ntimezone = \"UTC\"\n[agent.inputs.file]\npaths = [\"/var/log/auth.log\"]\n",
            &[
                ("10-tz.toml", "[agent]\ntimezone = \"Mars/Olympus\"\n"),
                ("20-other.toml", "[agent]\nheartbeat_secs = 30\n"),
            ],
        );
        let file = ConfigFile::load(&path).unwrap();
        let err = file
            .agent
            .build_from(&file.sources)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10-tz.toml") && err.contains("agent.timezone"),
            "{err}"
        );
        // A key in a table only a drop-in has is blamed on that drop-in.
        let (_dir, path) = dropin_setup(
            "[agent]\n",
            &[("10-url.toml", "[agent.shippers.http]\nurl = \"ftp://x/\"\n")],
        );
        let file = ConfigFile::load(&path).unwrap();
        let err = file
            .agent
            .build_from(&file.sources)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10-url.toml"), "{err}");
    }
}
