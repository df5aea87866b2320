//! Gemini's streamed JSON array: `streamGenerateContent` without `alt=sse` answers with one
//! JSON array whose elements (whole `GenerateContentResponse` objects) arrive one by one:
//!
//! ```text
//!   [{"candidates": ...}
//!   ,{"candidates": ...}
//!   ]
//! ```
//!
//! The decoder tracks only nesting depth and string state, and hands out each element's bytes
//! as soon as its closing brace arrives; memory is bounded by the largest element.

use super::FrameError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Between elements: expecting an element, `,` or `]`.
    Between { need_element: bool },
    /// Inside an element.
    Element {
        depth: usize,
        in_string: bool,
        escaped: bool,
    },
    /// After the closing `]`.
    Done,
}

/// An incremental decoder of a JSON array of objects.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    element: Vec<u8>,
    max_element: usize,
}

impl Decoder {
    /// A decoder that refuses elements larger than `max_element` bytes.
    pub fn new(max_element: usize) -> Self {
        Self {
            state: State::Start,
            element: Vec::new(),
            max_element,
        }
    }

    /// Whether the closing `]` has arrived.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds bytes; calls `out` with the bytes of every element they complete.
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), FrameError> {
        self.feed_at(input, |_, e| out(e))
    }

    /// As `feed`, with where in `input` each element ended (the offset just past its `}`).
    pub fn feed_at(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(usize, &[u8]),
    ) -> Result<(), FrameError> {
        let bad = |c: u8, what: &str| {
            FrameError::Malformed(format!("unexpected {:?} {what}", char::from(c)))
        };
        for (i, &c) in input.iter().enumerate() {
            match &mut self.state {
                State::Start => match c {
                    b'[' => {
                        self.state = State::Between {
                            need_element: false,
                        }
                    }
                    c if c.is_ascii_whitespace() => {}
                    c => return Err(bad(c, "before the array")),
                },
                State::Between { need_element } => match c {
                    b'{' => {
                        self.element.push(c);
                        self.state = State::Element {
                            depth: 1,
                            in_string: false,
                            escaped: false,
                        };
                    }
                    b',' if !*need_element => *need_element = true,
                    b']' if !*need_element => self.state = State::Done,
                    c if c.is_ascii_whitespace() => {}
                    c => return Err(bad(c, "between elements")),
                },
                State::Element {
                    depth,
                    in_string,
                    escaped,
                } => {
                    self.element.push(c);
                    if self.element.len() > self.max_element {
                        return Err(FrameError::TooLarge(self.max_element));
                    }
                    if *in_string {
                        match (c, *escaped) {
                            (_, true) => *escaped = false,
                            (b'\\', false) => *escaped = true,
                            (b'"', false) => *in_string = false,
                            _ => {}
                        }
                        continue;
                    }
                    match c {
                        b'"' => *in_string = true,
                        b'{' | b'[' => *depth += 1,
                        b'}' | b']' => {
                            *depth -= 1;
                            if *depth == 0 {
                                out(i + 1, &self.element);
                                self.element.clear();
                                self.state = State::Between {
                                    need_element: false,
                                };
                            }
                        }
                        _ => {}
                    }
                }
                State::Done => {
                    if !c.is_ascii_whitespace() {
                        return Err(bad(c, "after the array"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"[{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"He said \\\"}{]\\\" \"}]}}]}\r\n,{\"usageMetadata\": {\"promptTokenCount\": 3}}\r\n]";

    fn decode(parts: &[&[u8]]) -> Result<(Vec<Vec<u8>>, bool), FrameError> {
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, |e| out.push(e.to_vec()))?;
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn elements_come_out_whole_at_every_cut() {
        let (whole, done) = decode(&[STREAM]).unwrap();
        assert!(done);
        assert_eq!(whole.len(), 2);
        let first: serde_json::Value = serde_json::from_slice(&whole[0]).unwrap();
        assert_eq!(
            first["candidates"][0]["content"]["parts"][0]["text"],
            "He said \"}{]\" "
        );
        for i in 0..=STREAM.len() {
            assert_eq!(
                decode(&[&STREAM[..i], &STREAM[i..]]).unwrap(),
                (whole.clone(), true),
                "cut at {i}"
            );
        }
    }

    #[test]
    fn garbage_and_size_are_refused() {
        assert!(decode(&[b"{}"]).is_err(), "not an array");
        assert!(decode(&[b"[{},,{}]"]).is_err());
        assert!(decode(&[b"[{}] x"]).is_err());
        assert!(decode(&[b"[1]"]).is_err(), "elements are objects");
        let mut d = Decoder::new(4);
        assert_eq!(
            d.feed(b"[{\"abc\":1}]", |_| {}),
            Err(FrameError::TooLarge(4))
        );
        let (els, done) = decode(&[b"  [ ]  "]).unwrap();
        assert!(els.is_empty() && done);
    }
}
