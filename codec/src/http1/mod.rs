//! HTTP/1.1 framing as pure byte logic: request and response heads (on `httparse`, plus the
//! framing rules httparse leaves to its caller) and the chunked transfer-coding.
//!
//! The shard owns the sockets; everything that decides what bytes mean lives here, so it can be
//! unit-tested and fuzzed on its own.

mod chunked;
mod request;
mod response;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use request::{HeadError, Method, RequestHead, parse_request_head};
pub use response::{BodyFraming, ResponseError, ResponseHead, parse_response_head};

/// Hop-by-hop fields (RFC 9110 section 7.6.1) that a proxy must not forward.
pub fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}
