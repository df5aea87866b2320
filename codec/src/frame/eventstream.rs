//! AWS event-stream (`application/vnd.amazon.eventstream`), the framing of Bedrock's
//! `converse-stream`, both ways.
//!
//! ```text
//!   | total len u32 | headers len u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32 |
//!     headers: | name len u8 | name | type u8 | value |  (type 7 = string: u16 len + bytes)
//! ```
//!
//! Both checksums (CRC-32/IEEE, `crc32fast`) are verified on the way in and computed on the
//! way out. The decoder buffers at most one message, bounded by `max_message`.

use super::FrameError;

const PRELUDE: usize = 12;
const MIN_MESSAGE: usize = PRELUDE + 4;

/// A header value (every type the format defines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 and 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6.
    Bytes(Vec<u8>),
    /// Type 7.
    String(String),
    /// Type 8 (milliseconds since the epoch).
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

/// One message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers in order (`:event-type`, `:content-type`, `:message-type`, ...).
    pub headers: Vec<(String, HeaderValue)>,
    /// The payload (JSON for Bedrock).
    pub payload: Vec<u8>,
}

impl Message {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// An incremental decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    max_message: usize,
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

impl Decoder {
    /// A decoder that refuses messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_message,
        }
    }

    /// Feeds bytes; calls `out` with every message they complete.
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(Message)) -> Result<(), FrameError> {
        self.feed_at(input, |_, m| out(m))
    }

    /// As `feed`, with where in `input` each message ended (the offset just past its last
    /// byte).
    pub fn feed_at(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(usize, Message),
    ) -> Result<(), FrameError> {
        // Bytes held from earlier reads: a message that completes now ends in `input`.
        let held = self.buf.len();
        self.buf.extend_from_slice(input);
        let mut start = 0;
        while self.buf.len() - start >= PRELUDE {
            let b = &self.buf[start..];
            let total = be32(b);
            if total > self.max_message {
                return Err(FrameError::TooLarge(self.max_message));
            }
            if total < MIN_MESSAGE {
                return Err(FrameError::Malformed(format!(
                    "message length {total} is too small"
                )));
            }
            if crc32fast::hash(&b[..8]) as usize != be32(&b[8..]) {
                return Err(FrameError::Checksum("prelude"));
            }
            if b.len() < total {
                break;
            }
            let msg = &b[..total];
            if crc32fast::hash(&msg[..total - 4]) as usize != be32(&msg[total - 4..]) {
                return Err(FrameError::Checksum("message"));
            }
            let headers_len = be32(&msg[4..]);
            if PRELUDE + headers_len > total - 4 {
                return Err(FrameError::Malformed("headers overrun the message".into()));
            }
            let headers = parse_headers(&msg[PRELUDE..PRELUDE + headers_len])?;
            out(
                (start + total).saturating_sub(held),
                Message {
                    headers,
                    payload: msg[PRELUDE + headers_len..total - 4].to_vec(),
                },
            );
            start += total;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Whether a partial message is buffered (the stream ended mid-message).
    pub fn is_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn parse_headers(mut h: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let bad = |what: &str| FrameError::Malformed(format!("header {what}"));
    let mut out = Vec::new();
    while !h.is_empty() {
        let n = h[0] as usize;
        let name = h.get(1..1 + n).ok_or_else(|| bad("name overruns"))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| bad("name is not UTF-8"))?
            .to_string();
        let rest = &h[1 + n..];
        let (&ty, rest) = rest.split_first().ok_or_else(|| bad("type missing"))?;
        let take = |len: usize| rest.get(..len).ok_or_else(|| bad("value overruns"));
        let (value, used) = match ty {
            0 => (HeaderValue::Bool(true), 0),
            1 => (HeaderValue::Bool(false), 0),
            2 => (HeaderValue::Byte(take(1)?[0] as i8), 1),
            3 => (
                HeaderValue::Short(i16::from_be_bytes(
                    take(2)?.try_into().map_err(|_| bad("short"))?,
                )),
                2,
            ),
            4 => (
                HeaderValue::Int(i32::from_be_bytes(
                    take(4)?.try_into().map_err(|_| bad("int"))?,
                )),
                4,
            ),
            5 | 8 => {
                let v = i64::from_be_bytes(take(8)?.try_into().map_err(|_| bad("long"))?);
                (
                    if ty == 5 {
                        HeaderValue::Long(v)
                    } else {
                        HeaderValue::Timestamp(v)
                    },
                    8,
                )
            }
            6 | 7 => {
                let len =
                    u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("length"))?) as usize;
                let v = rest.get(2..2 + len).ok_or_else(|| bad("value overruns"))?;
                let value = if ty == 6 {
                    HeaderValue::Bytes(v.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(v)
                            .map_err(|_| bad("string is not UTF-8"))?
                            .to_string(),
                    )
                };
                (value, 2 + len)
            }
            9 => (
                HeaderValue::Uuid(take(16)?.try_into().map_err(|_| bad("uuid"))?),
                16,
            ),
            t => return Err(bad(&format!("type {t} is unknown"))),
        };
        out.push((name, value));
        h = &rest[used..];
    }
    Ok(out)
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &HeaderValue) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    match value {
        HeaderValue::Bool(true) => out.push(0),
        HeaderValue::Bool(false) => out.push(1),
        HeaderValue::Byte(v) => {
            out.push(2);
            out.push(*v as u8);
        }
        HeaderValue::Short(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Int(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Long(v) => {
            out.push(5);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Bytes(v) => {
            out.push(6);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v);
        }
        HeaderValue::String(v) => {
            out.push(7);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        HeaderValue::Timestamp(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Uuid(v) => {
            out.push(9);
            out.extend_from_slice(v);
        }
    }
}

/// Appends one message, both checksums computed. Header names are at most 255 bytes and
/// string/bytes values at most 65,535 (the format's limits; longer ones are cut).
pub fn encode(out: &mut Vec<u8>, headers: &[(&str, HeaderValue)], payload: &[u8]) {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name = &name[..name.len().min(255)];
        let value = match value {
            HeaderValue::String(s) if s.len() > 65_535 => {
                let mut cut = 65_535;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                HeaderValue::String(s[..cut].to_string())
            }
            HeaderValue::Bytes(b) if b.len() > 65_535 => HeaderValue::Bytes(b[..65_535].to_vec()),
            v => v.clone(),
        };
        write_header(&mut h, name, &value);
    }
    let total = PRELUDE + h.len() + payload.len() + 4;
    let start = out.len();
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[start..start + 8]);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A Bedrock stream event: `:event-type`, JSON content type, `:message-type: event`.
pub fn encode_event(out: &mut Vec<u8>, event_type: &str, json: &[u8]) {
    encode(
        out,
        &[
            (":event-type", HeaderValue::String(event_type.into())),
            (
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            (":message-type", HeaderValue::String("event".into())),
        ],
        json,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> Result<Vec<Message>, FrameError> {
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, |m| out.push(m))?;
        }
        Ok(out)
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        encode_event(&mut s, "messageStart", br#"{"role":"assistant"}"#);
        encode_event(
            &mut s,
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hello"}}"#,
        );
        encode(
            &mut s,
            &[
                ("flag", HeaderValue::Bool(false)),
                ("b", HeaderValue::Byte(-1)),
                ("s", HeaderValue::Short(-2)),
                ("i", HeaderValue::Int(3)),
                ("l", HeaderValue::Long(-4)),
                ("raw", HeaderValue::Bytes(vec![0, 1, 2])),
                ("t", HeaderValue::Timestamp(1_700_000_000_000)),
                ("u", HeaderValue::Uuid([7; 16])),
            ],
            b"",
        );
        encode_event(&mut s, "messageStop", br#"{"stopReason":"end_turn"}"#);
        s
    }

    #[test]
    fn encodes_decodes_and_every_cut_agrees() {
        let s = stream();
        let whole = decode(&[&s]).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[1].header(":event-type"), Some("contentBlockDelta"));
        assert_eq!(
            whole[1].payload,
            br#"{"contentBlockIndex":0,"delta":{"text":"Hello"}}"#
        );
        assert_eq!(
            whole[2].headers[5],
            ("raw".to_string(), HeaderValue::Bytes(vec![0, 1, 2]))
        );
        assert_eq!(whole[2].headers[7].1, HeaderValue::Uuid([7; 16]));
        for i in 0..=s.len() {
            assert_eq!(decode(&[&s[..i], &s[i..]]).unwrap(), whole, "cut at {i}");
        }
    }

    #[test]
    fn both_checksums_are_verified() {
        let mut s = stream();
        s[9] ^= 1; // the prelude CRC
        assert_eq!(decode(&[&s]), Err(FrameError::Checksum("prelude")));
        let mut s = stream();
        s[20] ^= 1; // a header byte of the first message
        assert_eq!(decode(&[&s]), Err(FrameError::Checksum("message")));
        let mut d = Decoder::new(32);
        assert_eq!(d.feed(&stream(), |_| {}), Err(FrameError::TooLarge(32)));
    }

    #[test]
    fn a_minimal_message_has_the_documented_layout() {
        // No headers, payload "{}": 12-byte prelude + 2 + 4-byte CRC = 18 bytes.
        let mut m = Vec::new();
        encode(&mut m, &[], b"{}");
        assert_eq!(&m[..8], &[0, 0, 0, 18, 0, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(m[8..12].try_into().unwrap()),
            crc32fast::hash(&[0, 0, 0, 18, 0, 0, 0, 0])
        );
        let got = decode(&[&m]).unwrap();
        assert_eq!(
            got,
            [Message {
                headers: vec![],
                payload: b"{}".to_vec()
            }]
        );
    }
}
