//! Incremental decoder for the chunked transfer-coding (RFC 9112 section 7.1).
//!
//! ```text
//!   Size --hex--> Size --';'--> Ext --CR--> SizeLf --LF--> Data(n) --> DataCr --> DataLf --> Size
//!                                              \ n == 0 --> Trailer --CR LF (empty)--> Done
//! ```
//!
//! Bytes go in one read at a time, split anywhere; decoded data comes out through a callback as
//! borrowed slices of the input (no copy). The decoder is strict: line ends must be CRLF, sizes
//! must be hex and fit in 63 bits, and chunk-size lines and trailers are bounded. It never
//! consumes past the end of the message, so pipelined bytes that follow stay with the caller.

use thiserror::Error;

/// Longest chunk-size line we accept, extensions included.
const MAX_SIZE_LINE: usize = 4096;
/// Largest total size of the trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk size that is not hexadecimal, or is empty.
    #[error("invalid chunk size line")]
    InvalidSize,
    /// A chunk size too large to represent.
    #[error("chunk size overflows")]
    SizeOverflow,
    /// A chunk-size line (with extensions) longer than the limit.
    #[error("chunk size line too long")]
    LineTooLong,
    /// A line that did not end in CRLF, or chunk data not followed by CRLF.
    #[error("malformed chunk framing: expected CRLF")]
    ExpectedCrlf,
    /// The trailer section exceeded its limit.
    #[error("chunked trailers too large")]
    TrailersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size; `digits` so far.
    Size { digits: u8 },
    /// Inside chunk extensions (or trailing whitespace), skipping to CR.
    Ext,
    /// Saw CR after the size line, expecting LF.
    SizeLf,
    /// Inside chunk data with this many bytes left.
    Data { remaining: u64 },
    /// After data, expecting CR.
    DataCr,
    /// After data and CR, expecting LF.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a non-empty trailer line.
    TrailerLine,
    /// Saw CR ending a non-empty trailer line.
    TrailerLf,
    /// Saw CR at the start of a line: the final empty line.
    FinalLf,
    /// The last chunk and the trailers are read.
    Done,
}

/// The decoder. One per body; `Default` starts at the first chunk size.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line_len: usize,
    trailer_len: usize,
    total: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            line_len: 0,
            trailer_len: 0,
            total: 0,
        }
    }

    /// Whether the terminating chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes seen so far.
    pub fn decoded_len(&self) -> u64 {
        self.total
    }

    /// Feeds `input`; calls `data` with each run of decoded body bytes, borrowed from `input`.
    /// Returns how many bytes of `input` belong to this body: all of them, unless the body ended
    /// inside `input`, in which case the rest is the next message's.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => match hex_value(b) {
                    Some(v) => {
                        if self.size >> 59 != 0 {
                            return Err(ChunkedError::SizeOverflow);
                        }
                        self.size = (self.size << 4) | u64::from(v);
                        self.state = State::Size {
                            digits: digits.saturating_add(1),
                        };
                        self.bump_line()?;
                        i += 1;
                    }
                    None if digits == 0 => return Err(ChunkedError::InvalidSize),
                    None if b == b'\r' => {
                        self.state = State::SizeLf;
                        i += 1;
                    }
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.state = State::Ext;
                        self.bump_line()?;
                        i += 1;
                    }
                    None => return Err(ChunkedError::InvalidSize),
                },
                State::Ext => match memchr::memchr2(b'\r', b'\n', &input[i..]) {
                    Some(off) if input[i + off] == b'\r' => {
                        self.line_len += off;
                        if self.line_len > MAX_SIZE_LINE {
                            return Err(ChunkedError::LineTooLong);
                        }
                        self.state = State::SizeLf;
                        i += off + 1;
                    }
                    // A bare LF: too long first if the line already is (the same answer
                    // whether the line came in one read or several).
                    Some(off) if self.line_len + off > MAX_SIZE_LINE => {
                        return Err(ChunkedError::LineTooLong);
                    }
                    Some(_) => return Err(ChunkedError::ExpectedCrlf),
                    None => {
                        self.line_len += input.len() - i;
                        if self.line_len > MAX_SIZE_LINE {
                            return Err(ChunkedError::LineTooLong);
                        }
                        i = input.len();
                    }
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::ExpectedCrlf);
                    }
                    i += 1;
                    self.line_len = 0;
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data {
                            remaining: self.size,
                        }
                    };
                    self.size = 0;
                }
                State::Data { remaining } => {
                    let avail = (input.len() - i) as u64;
                    let take = remaining.min(avail) as usize;
                    data(&input[i..i + take]);
                    self.total += take as u64;
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkedError::ExpectedCrlf);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::ExpectedCrlf);
                    }
                    self.state = State::Size { digits: 0 };
                    i += 1;
                }
                State::TrailerStart => {
                    i += 1;
                    self.bump_trailer(1)?;
                    self.state = if b == b'\r' {
                        State::FinalLf
                    } else if b == b'\n' {
                        return Err(ChunkedError::ExpectedCrlf);
                    } else {
                        State::TrailerLine
                    };
                }
                State::TrailerLine => match memchr::memchr2(b'\r', b'\n', &input[i..]) {
                    Some(off) if input[i + off] == b'\r' => {
                        self.bump_trailer(off + 1)?;
                        self.state = State::TrailerLf;
                        i += off + 1;
                    }
                    // A bare LF: too large first if the trailers already are (as for the
                    // extension above: one answer however the bytes were split).
                    Some(off) if self.trailer_len + off > MAX_TRAILERS => {
                        return Err(ChunkedError::TrailersTooLarge);
                    }
                    Some(_) => return Err(ChunkedError::ExpectedCrlf),
                    None => {
                        self.bump_trailer(input.len() - i)?;
                        i = input.len();
                    }
                },
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::ExpectedCrlf);
                    }
                    self.bump_trailer(1)?;
                    self.state = State::TrailerStart;
                    i += 1;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::ExpectedCrlf);
                    }
                    self.state = State::Done;
                    i += 1;
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn bump_line(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > MAX_SIZE_LINE {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }

    fn bump_trailer(&mut self, n: usize) -> Result<(), ChunkedError> {
        self.trailer_len += n;
        if self.trailer_len > MAX_TRAILERS {
            return Err(ChunkedError::TrailersTooLarge);
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.feed(input, |s| out.extend_from_slice(s))?;
        Ok((out, n, d.is_done()))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n7;name=val\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT";

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (out, n, done) = decode_all(BODY).unwrap();
        assert_eq!(out, b"hello, world");
        assert!(done);
        assert_eq!(
            &BODY[n..],
            b"NEXT",
            "stops exactly at the end of the message"
        );
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let whole = decode_all(BODY).unwrap();
        for cut in 0..=BODY.len() {
            for cut2 in cut..=BODY.len() {
                let mut d = ChunkedDecoder::new();
                let mut out = Vec::new();
                let mut used = 0;
                for part in [&BODY[..cut], &BODY[cut..cut2], &BODY[cut2..]] {
                    if d.is_done() {
                        break;
                    }
                    used += d.feed(part, |s| out.extend_from_slice(s)).unwrap();
                }
                assert_eq!((out.clone(), used, d.is_done()), whole, "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn an_over_long_trailer_ending_in_a_bare_lf_is_too_large_whole_or_split() {
        // Found by fuzzing: whole it was ExpectedCrlf, split before the LF TrailersTooLarge.
        let mut body = b"0\r\nX-T: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_TRAILERS + 10));
        body.push(b'\n');
        assert_eq!(
            decode_all(&body).unwrap_err(),
            ChunkedError::TrailersTooLarge
        );
        for cut in [5, MAX_TRAILERS, body.len() - 1] {
            let mut d = ChunkedDecoder::new();
            let first = d.feed(&body[..cut], |_| {});
            let second = first.and_then(|_| d.feed(&body[cut..], |_| {}));
            assert_eq!(
                second.unwrap_err(),
                ChunkedError::TrailersTooLarge,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn uppercase_hex_and_large_chunks() {
        let mut body = b"1A\r\n".to_vec();
        body.extend_from_slice(&[b'x'; 26]);
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let (out, n, done) = decode_all(&body).unwrap();
        assert_eq!(out.len(), 26);
        assert_eq!(n, body.len());
        assert!(done);
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(
            decode_all(b"zz\r\n").unwrap_err(),
            ChunkedError::InvalidSize
        );
        assert_eq!(decode_all(b"\r\n").unwrap_err(), ChunkedError::InvalidSize);
        assert_eq!(
            decode_all(b"5\nhello").unwrap_err(),
            ChunkedError::InvalidSize
        );
        assert_eq!(
            decode_all(b"5\r\nhelloXX").unwrap_err(),
            ChunkedError::ExpectedCrlf
        );
        assert_eq!(
            decode_all(b"5\r\nhello\r\n0\r\n\n").unwrap_err(),
            ChunkedError::ExpectedCrlf
        );
        assert_eq!(
            decode_all(b"fffffffffffffffffff\r\n").unwrap_err(),
            ChunkedError::SizeOverflow
        );
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE + 1));
        assert_eq!(decode_all(&long).unwrap_err(), ChunkedError::LineTooLong);
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Filler: aaaaaaaaaa\r\n");
        }
        assert_eq!(
            decode_all(&trailers).unwrap_err(),
            ChunkedError::TrailersTooLarge
        );
    }

    #[test]
    fn incomplete_body_is_not_done() {
        let (out, n, done) = decode_all(b"5\r\nhel").unwrap();
        assert_eq!(out, b"hel");
        assert_eq!(n, 6);
        assert!(!done);
    }
}
