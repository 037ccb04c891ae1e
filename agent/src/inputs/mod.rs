//! Where lines come from: [`file`] follows files, [`journald`] reads the systemd
//! journal through `journalctl`, [`syslog`] listens for syslog over the network. Each
//! input parses its lines into events and sends them, with the position to checkpoint
//! once they are in the disk buffer (none for the network), to the buffer stage.

pub mod file;
pub mod journald;
pub mod syslog;

use std::sync::{Arc, Mutex};

use mozdef::Event;
use serde::Deserialize;

use crate::checkpoint::FileIdentity;
use crate::parsers::Draft;

/// Where to start in a file never read before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

pub(crate) fn default_start_at() -> StartAt {
    StartAt::End
}

/// Events an input read, each serialized (one JSON line) on the input's thread right
/// after it was parsed, with the read position its line ended at. The event's own
/// allocations are freed where they were made, and the buffer stage only copies bytes.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The events' JSON lines, back to back (each ends with `\n`).
    json: Vec<u8>,
    reads: Vec<Read>,
    /// The files' paths the reads name, each once per run of events from it: one
    /// reference count taken per run, not per event (the count's cache line would
    /// otherwise move between the input's core and the buffer stage's for every event).
    paths: Vec<Arc<str>>,
}

/// Where one event of a [`Chunk`] ends, and where its line ended: the position to
/// checkpoint once it is in the buffer. For a file, `identity`, `path` and
/// `next_offset`; for the journal, `cursor` (and the file fields are unused); a network
/// message has none ([`Read::positioned`] is false).
#[derive(Debug, Clone)]
pub struct Read {
    /// End of the event's JSON line in [`Chunk::json`].
    end: usize,
    pub identity: FileIdentity,
    /// The file's path: [`Chunk::path`].
    path: usize,
    pub next_offset: u64,
    pub cursor: Option<Arc<str>>,
}

/// [`Read::path`] of a read with no position.
const NO_PATH: usize = usize::MAX;

impl Read {
    /// Whether the read has a position to checkpoint (a file's or the journal's).
    pub fn positioned(&self) -> bool {
        self.path != NO_PATH || self.cursor.is_some()
    }
}

/// Chunks the buffer stage is done with, for the inputs to fill again: their memory is
/// reused rather than freed on one thread and allocated on another (which costs CPU
/// and, with per-thread heaps, holds memory). At most [`SPARE_CHUNKS`] are kept.
static SPARE: Mutex<Vec<Chunk>> = Mutex::new(Vec::new());
const SPARE_CHUNKS: usize = 8;

impl Chunk {
    /// An empty chunk with room for about `events` events: a spare one when there is.
    pub fn with_capacity(events: usize) -> Chunk {
        if let Some(chunk) = SPARE.lock().ok().and_then(|mut spare| spare.pop()) {
            return chunk;
        }
        Chunk {
            // Events are ~520 bytes of JSON on the standard workload.
            json: Vec::with_capacity(events * 640),
            reads: Vec::with_capacity(events),
            paths: Vec::new(),
        }
    }

    /// Empties the chunk and keeps it for [`Chunk::with_capacity`].
    pub fn recycle(mut self) {
        self.json.clear();
        self.reads.clear();
        self.paths.clear();
        if let Ok(mut spare) = SPARE.lock()
            && spare.len() < SPARE_CHUNKS
        {
            spare.push(self);
        }
    }

    /// Serializes `event` into the chunk, with its read position.
    pub fn push(
        &mut self,
        event: &mut Draft<'_>,
        identity: FileIdentity,
        path: &Arc<str>,
        next_offset: u64,
        cursor: Option<Arc<str>>,
    ) {
        event.write_json_line(&mut self.json);
        if !self
            .paths
            .last()
            .is_some_and(|last| Arc::ptr_eq(last, path))
        {
            self.paths.push(Arc::clone(path));
        }
        self.reads.push(Read {
            end: self.json.len(),
            identity,
            path: self.paths.len() - 1,
            next_offset,
            cursor,
        });
    }

    /// Serializes `event` into the chunk with no read position: a message the
    /// network gave, which nothing can read again.
    pub fn push_unpositioned(&mut self, event: &mut Draft<'_>) {
        event.write_json_line(&mut self.json);
        self.reads.push(Read {
            end: self.json.len(),
            identity: FileIdentity {
                dev: 0,
                ino: 0,
                fingerprint: 0,
            },
            path: NO_PATH,
            next_offset: 0,
            cursor: None,
        });
    }

    /// Where the chunk ends now, for [`Chunk::rollback`].
    pub fn mark(&self) -> (usize, usize) {
        (self.json.len(), self.reads.len())
    }

    /// Undoes what was pushed after `mark` (an event half written when a parser
    /// panicked).
    pub fn rollback(&mut self, (json, reads): (usize, usize)) {
        self.json.truncate(json);
        self.reads.truncate(reads);
    }

    /// Bytes of JSON held.
    pub fn bytes(&self) -> usize {
        self.json.len()
    }

    /// The path of the file `read` is from (empty for a network message).
    pub fn path(&self, read: &Read) -> Arc<str> {
        match self.paths.get(read.path) {
            Some(path) => Arc::clone(path),
            None => Arc::from(""),
        }
    }

    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// The read positions, in order.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    /// Each event's JSON line, in order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.reads.iter().map(move |read| {
            let record = &self.json[start..read.end];
            start = read.end;
            record
        })
    }

    /// The events decoded again, with their positions (for tests and tools; the
    /// pipeline uses [`Chunk::records`]).
    pub fn events(&self) -> Vec<ReadEvent> {
        self.records()
            .zip(&self.reads)
            .map(|(record, read)| ReadEvent {
                event: serde_json::from_slice(record)
                    .unwrap_or_else(|e| panic!("the agent's own JSON line does not decode: {e}")),
                identity: read.identity,
                path: self.path(read),
                next_offset: read.next_offset,
                cursor: read.cursor.clone(),
            })
            .collect()
    }
}

/// An event of a [`Chunk`] decoded, and where its line ended.
#[derive(Debug, Clone)]
pub struct ReadEvent {
    pub event: Event,
    pub identity: FileIdentity,
    pub path: Arc<str>,
    pub next_offset: u64,
    /// The journal cursor of the entry, for journald events.
    pub cursor: Option<Arc<str>>,
}
