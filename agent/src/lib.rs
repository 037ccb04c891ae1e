//! The Picket agent: follows log files, parses each line into a MozDef event, and ships
//! events to a collector, checkpointing read positions only after delivery.
//!
//! - [`config`]: the `[agent]` config table and its checked [`config::Settings`].
//! - [`host`]: this host's FQDN and stable id.
//! - [`parsers`]: one line → one event.
//! - [`inputs::file`]: following files (its own thread).
//! - [`shippers`]: NDJSON batches to the collector over HTTP(S) ([`shippers::http`]) or
//!   messages to RabbitMQ ([`shippers::amqp`]).
//! - [`deadletter`]: events the collector refused, kept with the reason.
//! - [`heartbeat`]: the agent's own periodic event.
//! - [`checkpoint`]: read positions on disk.
//! - [`datadir`]: whether `data_dir` can be trusted with them and the buffer.
//! - [`buffer`]: the disk buffer (segment log).
//! - [`metrics`]: the counters, and the state `/health` reports.
//! - [`api`]: the local `/metrics` and `/health` listener (`[agent.api]`).
//! - [`footprint`]: giving back the pages start-up mapped.
//! - [`service`]: the agent as a process: [`run`] until a shutdown, [`serve`] until
//!   SIGTERM with SIGHUP reloads.
//! - [`pipeline`]: one pipeline on one set of settings: input threads → bounded channel
//!   → buffer stage (append, group fsync, then input checkpoints) → disk buffer → ship
//!   stage (batch, send, acknowledge).
//!
//! `main.rs` parses the command line and calls [`serve`].

pub mod api;
pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod datadir;
pub mod deadletter;
pub mod footprint;
pub mod heartbeat;
pub mod host;
pub mod inputs;
pub mod metrics;
pub use picket_parsers as parsers;
pub mod pipeline;
pub mod service;
pub mod shippers;

pub use pipeline::{DRAIN_TIMEOUT, RunError};
pub use service::{run, serve};

/// Settings of the disk buffer (`[agent.buffer]`, checked).
pub use crate::config::BufferSettings;
