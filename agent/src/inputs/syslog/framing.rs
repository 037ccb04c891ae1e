//! Cutting a TCP or TLS byte stream into syslog messages (RFC 6587): octet counting
//! (`LEN SP MSG`, RFC 5425's only framing) or non-transparent framing (each message
//! ends with LF), told apart by the connection's first bytes — octet counting starts
//! with a digit and is followed by a space after the length; a message starts with
//! `<` (its PRI) or a letter.
//!
//! A message longer than `max` is kept cut at `max` bytes (flagged truncated); the rest
//! of it is skipped and the stream stays in step. An octet count that is no count
//! (`abc`, ten digits or more, no space after it) leaves no way to find the next
//! message: a [`FramingError`], after which the connection is closed.
//!
//! A connection holds at most about `max` bytes plus one read (its buffer shrinks back
//! after a long message), and each byte is looked at for a line end once.

use memchr::memchr;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    OctetCounting,
    /// Messages end with LF (a CR before it is dropped).
    NonTransparent,
}

/// A stream whose octet count cannot be read: the next message cannot be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad octet count at byte {at}: {found:?} (expected digits and a space)")]
pub struct FramingError {
    pub at: u64,
    pub found: String,
}

/// One message cut from the stream: where its bytes are in the buffer (read them with
/// [`Framer::bytes`] before the next [`Framer::spare`]), and whether it was cut at
/// `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    start: usize,
    end: usize,
    pub truncated: bool,
}

/// The longest octet count read (a billion bytes and more is no count).
const MAX_COUNT_DIGITS: usize = 9;

/// A connection's bytes, cut into messages as they arrive.
#[derive(Debug)]
pub struct Framer {
    framing: Option<Framing>,
    max: usize,
    buf: Vec<u8>,
    /// Start of the bytes not cut yet.
    start: usize,
    /// Bytes of an over-long message still to skip (octet counting), or
    /// `usize::MAX`: skip to the next LF (non-transparent).
    skip: usize,
    /// Bytes of the stream before `buf[0]` (for error positions).
    consumed: u64,
    /// Bytes after `start` already searched for a LF (non-transparent framing).
    scanned: usize,
}

/// A buffer grown past this for a long message is shrunk back once it is cut.
const KEPT_CAPACITY: usize = 128 * 1024;

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            framing: None,
            max,
            buf: Vec::with_capacity(max.min(64 * 1024) + 32),
            start: 0,
            skip: 0,
            consumed: 0,
            scanned: 0,
        }
    }

    /// How the stream frames its messages, once its first bytes told.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// The buffer to read into (append to it), after moving what is not cut yet to
    /// its front.
    pub fn spare(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.consumed += self.start as u64;
            self.start = 0;
        }
        if self.buf.capacity() > KEPT_CAPACITY && self.buf.len() < KEPT_CAPACITY / 2 {
            self.buf.shrink_to(KEPT_CAPACITY);
        }
        // A whole message and its count fit.
        let want = (self.max + 32).min(self.buf.len() + 64 * 1024);
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf
                .reserve(want.saturating_sub(self.buf.len()).max(16 * 1024));
        }
        &mut self.buf
    }

    /// The bytes of `frame`.
    pub fn bytes(&self, frame: &Frame) -> &[u8] {
        &self.buf[frame.start..frame.end]
    }

    /// The next whole message in what was read, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            if self.skip > 0 && !self.skip_bytes() {
                return Ok(None);
            }
            let framing = match self.framing {
                Some(framing) => framing,
                None => match self.detect() {
                    Some(framing) => framing,
                    None => return Ok(None),
                },
            };
            let frame = match framing {
                Framing::NonTransparent => self.next_line(),
                Framing::OctetCounting => self.next_counted()?,
            };
            match frame {
                // Blank lines between messages are no messages.
                Some(frame) if frame.start == frame.end && !frame.truncated => continue,
                other => return Ok(other),
            }
        }
    }

    /// What is left when the stream ends: a last message without its LF, or the part
    /// of a counted message that came (flagged truncated). `None` when nothing is.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.skip > 0 {
            self.skip_bytes();
            if self.skip > 0 {
                return None;
            }
        }
        let rest = &self.buf[self.start..];
        if rest.iter().all(u8::is_ascii_whitespace) {
            self.start = self.buf.len();
            return None;
        }
        let (start, truncated) = match self.framing {
            Some(Framing::OctetCounting) => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let body = if rest.get(digits) == Some(&b' ') {
                    digits + 1
                } else {
                    0
                };
                (self.start + body, true)
            }
            _ => (self.start, false),
        };
        let end = strip_line_end(&self.buf, start, self.buf.len()).min(start + self.max);
        self.start = self.buf.len();
        self.scanned = 0;
        Some(Frame {
            start,
            end,
            truncated: truncated || self.buf.len() - start > self.max,
        })
    }

    /// Skips what is left of an over-long message; false when more bytes are needed.
    fn skip_bytes(&mut self) -> bool {
        let rest = &self.buf[self.start..];
        if self.skip == usize::MAX {
            match memchr(b'\n', rest) {
                Some(at) => {
                    self.start += at + 1;
                    self.skip = 0;
                    self.scanned = 0;
                    true
                }
                None => {
                    self.start = self.buf.len();
                    false
                }
            }
        } else {
            let n = self.skip.min(rest.len());
            self.start += n;
            self.skip -= n;
            self.skip == 0
        }
    }

    /// Tells the framing from the first bytes; `None` when they do not tell yet.
    fn detect(&mut self) -> Option<Framing> {
        let rest = &self.buf[self.start..];
        // Blank bytes before the first message say nothing.
        let lead = rest
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r' | b' ' | b'\0'))
            .count();
        self.start += lead;
        let rest = &self.buf[self.start..];
        let first = *rest.first()?;
        let framing = if first.is_ascii_digit() && first != b'0' {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            match rest.get(digits) {
                None if digits <= MAX_COUNT_DIGITS => return None,
                Some(b' ') if digits <= MAX_COUNT_DIGITS => Framing::OctetCounting,
                _ => Framing::NonTransparent,
            }
        } else {
            Framing::NonTransparent
        };
        self.framing = Some(framing);
        Some(framing)
    }

    fn next_line(&mut self) -> Option<Frame> {
        let rest = &self.buf[self.start..];
        // A line of `max` bytes and its CR LF ends within `max + 2` bytes.
        let window = rest.len().min(self.max + 2);
        let from = self.scanned.min(window);
        let found = memchr(b'\n', &rest[from..window]).map(|at| at + from);
        match found {
            Some(at) => {
                let start = self.start;
                let end = strip_line_end(&self.buf, start, start + at);
                self.start += at + 1;
                self.scanned = 0;
                Some(Frame {
                    start,
                    end: end.min(start + self.max),
                    truncated: end - start > self.max,
                })
            }
            None if rest.len() >= self.max + 2 => {
                let start = self.start;
                self.start += self.max;
                self.skip = usize::MAX;
                self.scanned = 0;
                Some(Frame {
                    start,
                    end: start + self.max,
                    truncated: true,
                })
            }
            None => {
                self.scanned = window;
                None
            }
        }
    }

    fn next_counted(&mut self) -> Result<Option<Frame>, FramingError> {
        let rest = &self.buf[self.start..];
        // Senders may put a LF after each counted message.
        let lead = rest
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        self.start += lead;
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return Ok(None);
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let bad = || FramingError {
            at: self.consumed + self.start as u64,
            found: String::from_utf8_lossy(&rest[..rest.len().min(16)]).into_owned(),
        };
        if digits > MAX_COUNT_DIGITS || (digits == 0) {
            return Err(bad());
        }
        match rest.get(digits) {
            None => return Ok(None),
            Some(b' ') => {}
            Some(_) => return Err(bad()),
        }
        let len: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)?;
        let body = self.start + digits + 1;
        let available = self.buf.len() - body;
        if len <= self.max {
            if available < len {
                return Ok(None);
            }
            self.start = body + len;
            let end = strip_line_end(&self.buf, body, body + len);
            return Ok(Some(Frame {
                start: body,
                end,
                truncated: false,
            }));
        }
        if available < self.max {
            return Ok(None);
        }
        self.start = body + self.max;
        self.skip = len - self.max;
        Ok(Some(Frame {
            start: body,
            end: body + self.max,
            truncated: true,
        }))
    }
}

/// `end` moved back over a trailing LF and CR.
fn strip_line_end(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(buf[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one, collecting each message (and whether cut).
    fn cut(max: usize, chunks: &[&[u8]]) -> (Vec<(String, bool)>, Option<FramingError>) {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.spare().extend_from_slice(chunk);
            loop {
                match framer.next_frame() {
                    Ok(Some(frame)) => out.push((
                        String::from_utf8_lossy(framer.bytes(&frame)).into_owned(),
                        frame.truncated,
                    )),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        if let Some(frame) = framer.finish() {
            out.push((
                String::from_utf8_lossy(framer.bytes(&frame)).into_owned(),
                frame.truncated,
            ));
        }
        (out, None)
    }

    fn whole(texts: &[&str]) -> Vec<(String, bool)> {
        texts.iter().map(|t| (t.to_string(), false)).collect()
    }

    #[test]
    fn lines_are_messages_whatever_the_reads() {
        let stream = b"<13>Jan  1 00:00:00 h a: one\r\n<13>Jan  1 00:00:01 h a: two\n\n<14>three";
        let expected = whole(&[
            "<13>Jan  1 00:00:00 h a: one",
            "<13>Jan  1 00:00:01 h a: two",
            "<14>three",
        ]);
        // Every split of the stream into two reads gives the same messages.
        for at in 0..stream.len() {
            let (got, err) = cut(1024, &[&stream[..at], &stream[at..]]);
            assert_eq!(err, None);
            assert_eq!(got, expected, "split at {at}");
        }
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_whole_however_it_arrives() {
        let line = format!("<13>{}\r\n<13>next\n", "y".repeat(96));
        for at in 0..line.len() {
            let (got, _) = cut(100, &[&line.as_bytes()[..at], &line.as_bytes()[at..]]);
            assert_eq!(
                got[0],
                (format!("<13>{}", "y".repeat(96)), false),
                "split at {at}"
            );
            assert_eq!(got[1], ("<13>next".to_string(), false), "split at {at}");
        }
        // One byte more is cut.
        let line = format!("<13>{}\n", "y".repeat(97));
        let (got, _) = cut(100, &[line.as_bytes()]);
        assert_eq!(got, vec![(format!("<13>{}", "y".repeat(96)), true)]);
    }

    #[test]
    fn octet_counts_are_followed_across_reads() {
        let a = "<13>1 2026-12-07T10:00:00Z h app 1 - - one\nwith a newline";
        let b = "<13>1 2026-12-07T10:00:01Z h app 1 - - two";
        let stream = format!("{} {a}{} {b}\n", a.len(), b.len());
        let stream = stream.as_bytes();
        for at in 0..stream.len() {
            let (got, err) = cut(1024, &[&stream[..at], &stream[at..]]);
            assert_eq!(err, None, "split at {at}");
            assert_eq!(got, whole(&[a, b]), "split at {at}");
        }
    }

    #[test]
    fn an_over_long_message_is_cut_and_the_next_one_found() {
        let long = "x".repeat(5000);
        let line = format!("<13>{long}\n<13>next\n");
        let (got, _) = cut(100, &[line.as_bytes()]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (format!("<13>{}", &long[..96]), true));
        assert_eq!(got[1], ("<13>next".to_string(), false));
        // In pieces smaller than the limit.
        let pieces: Vec<&[u8]> = line.as_bytes().chunks(37).collect();
        assert_eq!(cut(100, &pieces).0, got);
        let counted = format!("{} <13>{long}3 abc", long.len() + 4);
        let pieces: Vec<&[u8]> = counted.as_bytes().chunks(37).collect();
        let (got, err) = cut(100, &pieces);
        assert_eq!(err, None);
        assert_eq!(got[0], (format!("<13>{}", &long[..96]), true));
        assert_eq!(got[1], ("abc".to_string(), false));
    }

    #[test]
    fn a_count_that_is_no_count_is_an_error() {
        let (got, err) = cut(1024, &[b"5 hello3 abcX7 garbage"]);
        assert_eq!(got, whole(&["hello", "abc"]));
        let err = err.expect("framing error");
        assert_eq!(err.at, 12);
        assert!(err.found.starts_with("X7"), "{err}");
        // Ten digits is no count.
        let (_, err) = cut(1024, &[b"3 abc1234567890 x"]);
        assert!(err.is_some());
    }

    #[test]
    fn a_stream_of_digits_not_followed_by_a_space_is_lines() {
        let (got, err) = cut(1024, &[b"2026-12-07T10:00:00Z host a: b\n"]);
        assert_eq!(err, None);
        assert_eq!(got, whole(&["2026-12-07T10:00:00Z host a: b"]));
        let mut framer = Framer::new(64);
        framer.spare().extend_from_slice(b"12");
        assert_eq!(framer.next_frame(), Ok(None));
        assert_eq!(framer.framing(), None);
        framer.spare().extend_from_slice(b" ");
        assert_eq!(framer.next_frame(), Ok(None));
        assert_eq!(framer.framing(), Some(Framing::OctetCounting));
    }

    #[test]
    fn a_stream_cut_inside_a_counted_message_keeps_what_came() {
        let (got, err) = cut(1024, &[b"20 <13>only part"]);
        assert_eq!(err, None);
        assert_eq!(got, vec![("<13>only part".to_string(), true)]);
    }

    #[test]
    fn binary_garbage_is_lines_and_never_a_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..200 {
            let mut bytes = Vec::new();
            for _ in 0..(round * 7 % 300) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push((state >> 24) as u8);
            }
            let pieces: Vec<&[u8]> = bytes.chunks(1 + round % 13).collect();
            let (got, _) = cut(64, &pieces);
            assert!(got.iter().all(|(m, _)| m.len() <= 64 * 3));
        }
    }
}
