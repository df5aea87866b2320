//! HTTP/1.1 on monoio sockets for the bench's own client and server, on busbar-codec's parsers:
//! read a request (head and body), read a response (noting when its body began).

use busbar_codec::http1::{
    BodyFraming, ChunkedDecoder, RequestHead, parse_request_head, parse_response_head,
};
use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;
use std::io;
use std::time::Instant;

const CHUNK: usize = 16 * 1024;

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < CHUNK {
        buf.reserve(CHUNK);
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = stream.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-message",
    )
}

/// Reads one request; `Ok(None)` when the peer closed between requests.
pub(crate) async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(RequestHead, Vec<u8>)>> {
    let head = loop {
        if !buf.is_empty() {
            match parse_request_head(buf, 1 << 20, 128) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        if fill(stream, buf).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(eof()) };
        }
    };
    buf.drain(..head.head_len);
    if head.chunked {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        loop {
            let used = d
                .feed(buf, |s| body.extend_from_slice(s))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            buf.drain(..used);
            if d.is_done() {
                return Ok(Some((head, body)));
            }
            if fill(stream, buf).await? == 0 {
                return Err(eof());
            }
        }
    }
    let n = head.content_length.unwrap_or(0) as usize;
    while buf.len() < n {
        if fill(stream, buf).await? == 0 {
            return Err(eof());
        }
    }
    let body = buf.drain(..n).collect();
    Ok(Some((head, body)))
}

/// What a response was, as the load generator sees it.
pub(crate) struct ResponseSummary {
    pub(crate) status: u16,
    /// When the first body byte arrived (or the head, for a body-less response).
    pub(crate) first_byte: Instant,
    /// When the first generated text arrived: the first body bytes holding a non-empty
    /// `"content"`, `"text"` or `"delta"` string (any of the six protocols' text deltas), or the
    /// whole body of a response that is not chunked.
    pub(crate) first_token: Instant,
    /// Whether the connection can carry another request.
    pub(crate) keep_alive: bool,
}

/// Whether a piece of a streamed body holds generated text (a text delta of any protocol).
fn has_token(data: &[u8]) -> bool {
    [&b"\"content\":\""[..], b"\"text\":\"", b"\"delta\":\""]
        .iter()
        .any(|m| {
            memchr::memmem::find_iter(data, m)
                .any(|at| data.get(at + m.len()).is_some_and(|c| *c != b'"'))
        })
}

/// Reads one whole response, discarding the body.
pub(crate) async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<ResponseSummary> {
    let head = loop {
        if let Some(h) = parse_response_head(buf, 1 << 20, false)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        {
            break h;
        }
        if fill(stream, buf).await? == 0 {
            return Err(eof());
        }
    };
    buf.drain(..head.head_len);
    let mut first_byte = None;
    let mut first_token = None;
    if !buf.is_empty() {
        first_byte = Some(Instant::now());
    }
    match head.framing {
        BodyFraming::Empty => {}
        BodyFraming::Length(n) => {
            while (buf.len() as u64) < n {
                if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
                first_byte.get_or_insert_with(Instant::now);
            }
            buf.drain(..n as usize);
        }
        BodyFraming::Chunked => {
            let mut d = ChunkedDecoder::new();
            loop {
                let used = d
                    .feed(buf, |data| {
                        if first_token.is_none() && has_token(data) {
                            first_token = Some(Instant::now());
                        }
                    })
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                buf.drain(..used);
                if d.is_done() {
                    break;
                }
                if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
                first_byte.get_or_insert_with(Instant::now);
            }
        }
        BodyFraming::Close => {
            while fill(stream, buf).await? > 0 {
                first_byte.get_or_insert_with(Instant::now);
                buf.clear();
            }
        }
    }
    let now = Instant::now();
    Ok(ResponseSummary {
        status: head.status,
        first_token: first_token.unwrap_or(now),
        first_byte: first_byte.unwrap_or(now),
        keep_alive: head.keep_alive,
    })
}
