//! Where lines come from: [`file`] follows files, [`journald`] reads the systemd
//! journal through `journalctl`. Each input parses its lines into events and sends
//! them, with the position to checkpoint once they are delivered, to the shipper.

pub mod file;
pub mod journald;

use std::sync::Arc;

use mozdef::Event;

use crate::checkpoint::FileIdentity;

/// An event and where its line ended: the position to checkpoint once it is
/// delivered. For a file, `identity`, `path` and `next_offset`; for the journal,
/// `cursor` (and the file fields are unused).
#[derive(Debug, Clone)]
pub struct ReadEvent {
    pub event: Event,
    pub identity: FileIdentity,
    pub path: Arc<str>,
    pub next_offset: u64,
    /// The journal cursor of the entry, for journald events.
    pub cursor: Option<Arc<str>>,
}
