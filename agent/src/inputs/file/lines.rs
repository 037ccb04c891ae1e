//! Cutting an open file's bytes into lines: partial lines held until their newline (or
//! flushed after `partial_line_flush_ms` idle), over-long lines cut at `max_line_bytes`.

use super::*;

impl OpenFile {
    /// A partial last line idle for `partial_flush` is a line: the writer is not going
    /// to finish it soon, and holding it would hold its event back.
    pub(super) fn flush_if_idle(
        &mut self,
        path_text: &Arc<str>,
        input: &FileInput,
        chunk: &mut Chunk,
    ) {
        if self.pending.is_empty() || self.last_data.elapsed() < input.settings.partial_flush {
            return;
        }
        if self.identity.is_none() {
            self.learn_identity();
        }
        let Some(identity) = self.identity else {
            // The file's only bytes are this partial line, too short to fingerprint.
            return;
        };
        debug!(path = %path_text, offset = self.line_start, "Partial line idle; sending it as a line.");
        self.take_pending(path_text, identity, input, chunk);
        self.line_start = self.read_offset;
    }

    /// Fingerprints the file, once its first line (or first KiB) is there.
    pub(super) fn learn_identity(&mut self) {
        self.identity =
            fingerprint(&self.file, self.gzip.is_some()).map(|fingerprint| FileIdentity {
                dev: self.dev,
                ino: self.ino,
                fingerprint,
            });
        self.source_identity = self
            .identity
            .map(|identity| identity.source_identity())
            .unwrap_or_default();
    }

    /// Adds bytes to the line being assembled, never past `max` bytes.
    pub(super) fn append(&mut self, bytes: &[u8], max: usize) {
        let room = max.saturating_sub(self.pending.len());
        if bytes.len() > room {
            self.overflow = true;
        }
        self.pending
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The complete line assembled in `pending` as an event into `chunk`.
    pub(super) fn take_pending(
        &mut self,
        path: &Arc<str>,
        identity: FileIdentity,
        input: &FileInput,
        chunk: &mut Chunk,
    ) {
        let mut line = std::mem::take(&mut self.pending);
        self.take_line(&line, path, identity, input, chunk);
        line.clear();
        self.pending = line;
    }

    /// A complete line as an event into `chunk` (none for a blank line); `overflow`
    /// says it was cut at `max_line_bytes`.
    pub(super) fn take_line(
        &mut self,
        line: &[u8],
        path: &Arc<str>,
        identity: FileIdentity,
        input: &FileInput,
        chunk: &mut Chunk,
    ) {
        let overflow = std::mem::take(&mut self.overflow);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        input.metrics.lines_read.fetch_add(1, Ordering::Relaxed);
        if overflow {
            input
                .metrics
                .lines_truncated
                .fetch_add(1, Ordering::Relaxed);
            warn!(path = %path, offset = self.line_start, max_line_bytes = input.settings.max_line_bytes, "Line longer than max_line_bytes; kept its start and flagged it truncated.");
        }
        let context = LineContext {
            source: path,
            source_identity: &self.source_identity,
            offset: self.line_start,
            read_at: self.read_at,
        };
        let next_offset = self.read_offset;
        input.parser.parse_line(line, &context, |event| {
            if overflow {
                event
                    .details
                    .insert(mozdef::fields::details::TRUNCATED, true);
            }
            chunk.push(event, identity, path, next_offset, None);
        });
    }
}
