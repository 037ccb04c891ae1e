//! The agent↔collector contract: the MozDef event schema as `../shared/spec/EVENTS.md`
//! makes it exact.
//!
//! - [`event`]: the [`Event`] type every parser produces and every store keeps.
//! - [`severity`]: RFC 5424 severity names, from syslog PRI, CEF and free text.
//! - [`time`]: reading timestamps in every shape shippers send, and writing them the
//!   way MozDef does (`+00:00`, microseconds).
//! - [`eventid`]: the deterministic id that makes re-reads and resends idempotent.
//! - [`normalize`]: the collector's normalization of events from any shipper.
//! - [`wire`]: request bodies (one object, an array, or NDJSON) split into items.
//! - [`fields`]: field-name constants.
//!
//! This crate does no I/O and knows nothing of tokio; both binaries depend on it.

pub mod event;
pub mod eventid;
pub mod fields;
pub mod normalize;
pub mod severity;
pub mod time;
pub mod wire;

pub use event::Event;
pub use eventid::event_id;
pub use normalize::normalize;
pub use severity::Severity;
