//! Server-sent events (the WHATWG `text/event-stream` format), both ways.
//!
//! ```text
//!   bytes --feed--> lines (LF, CR or CRLF, a CRLF split across reads included)
//!         --> fields (`event`, `data`, `id`, `retry`; `:` comments ignored)
//!         --> blank line: one Event (data lines joined with "\n"), if it has data
//! ```
//!
//! The decoder keeps only the current line and the event being built: memory is bounded by
//! `max_event` bytes, over which `feed` fails.

use super::FrameError;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (type), if any.
    pub event: Option<String>,
    /// The data lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `retry:` field, if any and numeric.
    pub retry: Option<u64>,
}

/// An incremental SSE decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    line: Vec<u8>,
    /// The last byte fed was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    event: Event,
    has_data: bool,
    size: usize,
    max_event: usize,
}

impl Decoder {
    /// A decoder that refuses events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            event: Event::default(),
            has_data: false,
            size: 0,
            max_event,
        }
    }

    /// Feeds bytes; calls `out` with every event they complete.
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(Event)) -> Result<(), FrameError> {
        self.feed_at(input, |_, e| out(e))
    }

    /// As `feed`, with where in `input` each event ended (the offset just past the byte that
    /// completed it): what a relay of the raw bytes needs to release them event by event.
    pub fn feed_at(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(usize, Event),
    ) -> Result<(), FrameError> {
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut |e| out(i + 1, e));
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                    self.size += 1;
                    if self.size > self.max_event {
                        return Err(FrameError::TooLarge(self.max_event));
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an event without its final blank line is discarded, as the standard
    /// says. Returns whether anything was left unfinished.
    pub fn finish(&mut self) -> bool {
        let partial = !self.line.is_empty() || self.has_data;
        *self = Self::new(self.max_event);
        partial
    }

    fn end_line(&mut self, out: &mut impl FnMut(Event)) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out(std::mem::take(&mut self.event));
            } else {
                self.event = Event::default();
            }
            self.has_data = false;
            self.size = 0;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event.event = Some(value.into_owned()),
            b"data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.event.id = Some(value.into_owned()),
            b"retry" => self.event.retry = value.parse().ok(),
            _ => {}
        }
    }
}

/// Writes one event: `event:` when given, one `data:` line per line of `data`, a blank line.
pub fn encode(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> Vec<Event> {
        let mut d = Decoder::new(1 << 20);
        let mut events = Vec::new();
        for p in parts {
            d.feed(p, |e| events.push(e)).unwrap();
        }
        events
    }

    const STREAM: &[u8] = b": keep-alive\r\nevent: message_start\r\ndata: {\"a\":\r\ndata: 1}\r\nid: 7\r\nretry: 3000\r\n\r\ndata:no-space\rdata: second\r\r\n\nevent: ping\ndata\n\nevent: empty\n\n";

    #[test]
    fn fields_comments_and_every_line_ending() {
        let ev = decode(&[STREAM]);
        assert_eq!(
            ev,
            [
                Event {
                    event: Some("message_start".into()),
                    data: "{\"a\":\n1}".into(),
                    id: Some("7".into()),
                    retry: Some(3000)
                },
                Event {
                    event: None,
                    data: "no-space\nsecond".into(),
                    id: None,
                    retry: None
                },
                Event {
                    event: Some("ping".into()),
                    data: "".into(),
                    id: None,
                    retry: None
                },
            ]
        );
    }

    #[test]
    fn every_cut_gives_the_same_events() {
        let whole = decode(&[STREAM]);
        for i in 0..=STREAM.len() {
            assert_eq!(decode(&[&STREAM[..i], &STREAM[i..]]), whole, "cut at {i}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(decode(&bytes), whole, "one byte at a time");
    }

    #[test]
    fn encoded_events_decode_back_and_size_is_bounded() {
        let mut out = Vec::new();
        encode(
            &mut out,
            Some("content_block_delta"),
            "{\"x\":1}\nsecond line",
        );
        encode(&mut out, None, "[DONE]");
        assert_eq!(
            decode(&[&out]),
            [
                Event {
                    event: Some("content_block_delta".into()),
                    data: "{\"x\":1}\nsecond line".into(),
                    ..Event::default()
                },
                Event {
                    data: "[DONE]".into(),
                    ..Event::default()
                },
            ]
        );
        let mut d = Decoder::new(16);
        assert_eq!(d.feed(&[b'a'; 17], |_| {}), Err(FrameError::TooLarge(16)));
        let mut d = Decoder::new(64);
        d.feed(b"data: partial", |_| {}).unwrap();
        assert!(
            d.finish(),
            "an unterminated event is reported, not dispatched"
        );
    }
}
