//! What `picket-agent` and `picket-collector` both need and would otherwise each write:
//!
//! - [`config`]: reading a config file and its drop-ins, and the errors that name the
//!   file and key an operator must fix ([`config::KeyError`] from a component's table,
//!   [`config::ConfigError`] from the root).
//! - [`secret`]: `*_file` secrets (the environment variable wins) held in a
//!   [`secret::Secret`] that never prints.
//! - [`units`]: sizes (`"256MiB"`) and durations (`"60s"`) in config keys.
//! - [`tls`]: PEM CA bundles and client certificates, read and checked at load time.
//! - [`logging`]: the binaries' own logs, text or JSON.
//! - [`http_client`]: the reqwest client both binaries build, and [`http_client::error_chain`].
//! - [`amqp`]: a RabbitMQ endpoint (URL, login, TLS) checked from config and connected to.
//! - [`backoff`]: the one retry delay policy.
//! - [`prometheus`]: writing the Prometheus text format.
//! - [`ratelog`]: logging a repeated condition at most once a period.
//! - [`wal`]: the write-ahead log (segments of CRC-checked records, group fsync, an
//!   acknowledgement point, recovery) under the agent's disk buffer.
//!
//! No component logic lives here, and `mozdef/` stays free of I/O: this crate is the
//! plumbing around it.

pub mod amqp;
pub mod backoff;
pub mod config;
pub mod http_client;
pub mod logging;
pub mod prometheus;
pub mod ratelog;
pub mod secret;
pub mod tls;
pub mod units;
pub mod wal;
