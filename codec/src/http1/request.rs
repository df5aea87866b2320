//! Parsing a request head, with the framing decisions RFC 9112 section 6 requires.
//!
//! httparse finds the request line and the fields; this module decides the body's framing and
//! refuses every ambiguous shape instead of guessing: Transfer-Encoding with Content-Length,
//! repeated or malformed Content-Length, a transfer-coding other than `chunked`, a missing Host
//! on HTTP/1.1. It returns owned data so the read buffer can be reused at once.

use super::{Fields, has_token};
use thiserror::Error;

/// The request method, as far as routing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    /// The method as text.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other(m) => m,
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Request target as sent (path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, as sent.
    pub headers: Fields,
    /// Length of the head in bytes, blank line included.
    pub head_len: usize,
    /// Body length when framed by Content-Length.
    pub content_length: Option<u64>,
    /// Whether the body is chunked.
    pub chunked: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
}

impl RequestHead {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// Whether a body follows the head.
    pub fn has_body(&self) -> bool {
        self.chunked || self.content_length.is_some_and(|n| n > 0)
    }
}

/// Why a head was refused; each maps to one status.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed request line or fields: 400.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// More header fields than allowed: 431.
    #[error("too many header fields (limit {0})")]
    TooManyHeaders(usize),
    /// Head larger than allowed: 431.
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    /// A framing shape that must not be guessed at: 400.
    #[error("{0}")]
    Framing(&'static str),
    /// A transfer-coding busbar does not implement: 501.
    #[error("unsupported transfer-coding (only chunked is accepted)")]
    UnsupportedCoding,
    /// An `Expect` other than `100-continue`: 417.
    #[error("unsupported Expect value (only 100-continue is accepted)")]
    Expectation,
    /// HTTP version other than 1.0 or 1.1: 505.
    #[error("unsupported HTTP version")]
    Version,
}

impl HeadError {
    /// The status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Malformed(_) | HeadError::Framing(_) => 400,
            HeadError::TooManyHeaders(_) | HeadError::TooLarge(_) => 431,
            HeadError::UnsupportedCoding => 501,
            HeadError::Expectation => 417,
            HeadError::Version => 505,
        }
    }
}

const STACK_FIELDS: usize = 128;

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more (the caller
/// enforces `max_head` on what it has buffered by calling again; this function also checks).
pub fn parse_request_head(
    buf: &[u8],
    max_head: usize,
    max_headers: usize,
) -> Result<Option<RequestHead>, HeadError> {
    // Up to STACK_FIELDS field slots live on the stack; a larger configured limit allocates.
    let mut on_stack = [httparse::EMPTY_HEADER; STACK_FIELDS];
    let mut on_heap = Vec::new();
    let fields: &mut [httparse::Header<'_>] = if max_headers <= STACK_FIELDS {
        &mut on_stack[..max_headers]
    } else {
        on_heap.resize(max_headers, httparse::EMPTY_HEADER);
        &mut on_heap
    };
    let mut req = httparse::Request::new(fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_head {
                Err(HeadError::TooLarge(max_head))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders(max_headers)),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if head_len > max_head {
        return Err(HeadError::TooLarge(max_head));
    }
    let minor_version = req.version.unwrap_or(1);
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        other => Method::Other(other.to_string()),
    };
    let target = req.path.unwrap_or("/").to_string();

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut host = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    for h in req.headers.iter() {
        // Names compared in place, without lower-casing a copy.
        let known = [
            "content-length",
            "transfer-encoding",
            "expect",
            "host",
            "connection",
        ]
        .into_iter()
        .find(|k| h.name.eq_ignore_ascii_case(k))
        .unwrap_or("");
        match known {
            "content-length" => {
                if content_length.is_some() {
                    return Err(HeadError::Framing("more than one Content-Length field"));
                }
                content_length = Some(parse_length(h.value)?);
            }
            "transfer-encoding" => {
                if transfer_encoding || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(HeadError::UnsupportedCoding);
                }
                transfer_encoding = true;
                chunked = true;
            }
            "expect" => {
                if h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = minor_version == 1;
                } else {
                    return Err(HeadError::Expectation);
                }
            }
            "host" => {
                if host {
                    return Err(HeadError::Framing("more than one Host field"));
                }
                host = true;
            }
            "connection" => {
                conn_close |= has_token(h.value, "close");
                conn_keep_alive |= has_token(h.value, "keep-alive");
            }
            _ => {}
        }
    }
    let headers = Fields::from_parsed(&buf[..head_len], req.headers);
    if transfer_encoding && content_length.is_some() {
        return Err(HeadError::Framing(
            "both Transfer-Encoding and Content-Length are present",
        ));
    }
    if transfer_encoding && minor_version == 0 {
        return Err(HeadError::Framing(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    if minor_version == 1 && !host {
        return Err(HeadError::Framing("HTTP/1.1 request without a Host field"));
    }
    let keep_alive = if minor_version == 1 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };
    Ok(Some(RequestHead {
        method,
        target,
        minor_version,
        headers,
        head_len,
        content_length,
        chunked,
        expect_continue,
        keep_alive,
    }))
}

fn parse_length(v: &[u8]) -> Result<u64, HeadError> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Framing("invalid Content-Length value"));
    }
    // Checked above: 1 to 19 ASCII digits always fit in u64.
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(s.as_bytes(), 8192, 32)
    }

    #[test]
    fn a_normal_post() {
        let h = parse("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nExpect: 100-continue\r\nAuthorization: Bearer k\r\n\r\n{")
            .unwrap()
            .unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path(), "/v1/chat/completions");
        assert_eq!(h.content_length, Some(12));
        assert!(h.expect_continue && h.keep_alive && !h.chunked && h.has_body());
        assert_eq!(h.header("authorization"), Some(&b"Bearer k"[..]));
        assert_eq!(h.head_len, 118);
    }

    #[test]
    fn keep_alive_rules() {
        let h = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn partial_then_too_large() {
        assert_eq!(parse("POST / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(&big), Err(HeadError::TooLarge(8192)));
    }

    #[test]
    fn refuses_ambiguous_framing() {
        let cases = [
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: fancy\r\n\r\n", 417),
            ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("G\0T / HTTP/1.1\r\n\r\n", 400),
        ];
        for (text, status) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.status(), status, "{text:?}: {e}");
        }
        let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
        let e = parse(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err();
        assert_eq!(e, HeadError::TooManyHeaders(32));
    }
}
