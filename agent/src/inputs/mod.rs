//! Where lines come from. Today: [`file`], following files by polling. Each input
//! parses its lines into events and sends them, with the position to checkpoint once
//! they are delivered, to the shipper.

pub mod file;

use std::sync::Arc;

use mozdef::Event;

use crate::checkpoint::FileIdentity;

/// An event and where its line ended: the offset to checkpoint once it is delivered.
#[derive(Debug, Clone)]
pub struct ReadEvent {
    pub event: Event,
    pub identity: FileIdentity,
    pub path: Arc<str>,
    pub next_offset: u64,
}
