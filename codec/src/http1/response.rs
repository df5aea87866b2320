//! Parsing a provider's response head and deciding how its body is framed (RFC 9112 section
//! 6.3): no body (HEAD, 1xx, 204, 304), chunked, Content-Length, or until the connection closes.

use super::{Fields, has_token};
use thiserror::Error;

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// There is no body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer-coding.
    Chunked,
    /// Until the provider closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, as sent.
    pub headers: Fields,
    /// Length of the head in bytes.
    pub head_len: usize,
    /// How the body is framed.
    pub framing: BodyFraming,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}

/// Why a provider's response head was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Not HTTP, or malformed.
    #[error("malformed response head from the provider: {0}")]
    Malformed(String),
    /// Larger than the limit.
    #[error("response head from the provider is larger than {0} bytes")]
    TooLarge(usize),
    /// Contradictory or invalid framing.
    #[error("response from the provider has invalid framing: {0}")]
    Framing(&'static str),
}

/// Parses the response head at the start of `buf`; `Ok(None)` means read more.
/// `head_request` says whether the request was HEAD (no body whatever the fields say).
pub fn parse_response_head(
    buf: &[u8],
    max_head: usize,
    head_request: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut res = httparse::Response::new(&mut fields);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_head {
                Err(ResponseError::TooLarge(max_head))
            } else {
                Ok(None)
            };
        }
        Err(e) => return Err(ResponseError::Malformed(e.to_string())),
    };
    if head_len > max_head {
        return Err(ResponseError::TooLarge(max_head));
    }
    let status = res.code.unwrap_or(0);
    let minor_version = res.version.unwrap_or(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = minor_version == 0;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .and_then(|v| v.parse::<u64>().ok());
            match (v, length) {
                (None, _) => return Err(ResponseError::Framing("invalid Content-Length")),
                (Some(a), Some(b)) if a != b => {
                    return Err(ResponseError::Framing("conflicting Content-Length"));
                }
                (Some(a), _) => length = Some(a),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                close = true;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                close = true;
            } else if minor_version == 0 && has_token(h.value, "keep-alive") {
                close = false;
            }
        }
    }
    let headers = Fields::from_parsed(&buf[..head_len], res.headers);
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        BodyFraming::Empty
    } else if chunked {
        BodyFraming::Chunked
    } else if let Some(n) = length {
        BodyFraming::Length(n)
    } else {
        close = true;
        BodyFraming::Close
    };
    Ok(Some(ResponseHead {
        status,
        reason: res.reason.unwrap_or("").to_string(),
        minor_version,
        headers,
        head_len,
        framing,
        keep_alive: !close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ResponseHead {
        parse_response_head(s.as_bytes(), 8192, false)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn framings() {
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").framing,
            BodyFraming::Length(3)
        );
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(h.keep_alive);
        let h = parse("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Close);
        assert!(!h.keep_alive);
        assert_eq!(
            parse("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing,
            BodyFraming::Empty
        );
        assert!(!parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive);
        assert!(
            !parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").keep_alive
        );
        assert_eq!(
            parse("HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n")
                .header("retry-after"),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn refuses_bad_heads() {
        assert!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 8192, false)
                .is_err()
        );
        assert!(
            parse_response_head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                8192,
                false
            )
            .is_err()
        );
        assert!(parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n", 8192, false).is_err());
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n", 8192, false),
            Ok(None)
        );
        assert!(matches!(
            parse_response_head(&[b'a'; 9000], 8192, false),
            Err(ResponseError::Malformed(_)) | Err(ResponseError::TooLarge(_))
        ));
    }
}
