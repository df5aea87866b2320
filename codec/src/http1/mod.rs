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

/// Appends to `out` every field of `headers` that a proxy may forward: not hop-by-hop, not named
/// in a `Connection` field, and not refused by `skip` (names compared case-insensitively).
pub fn write_forwardable<N: AsRef<str>>(
    out: &mut Vec<u8>,
    headers: &[(N, Vec<u8>)],
    skip: impl Fn(&str) -> bool,
) {
    let listed: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.as_ref().eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .collect();
    for (name, value) in headers {
        let name = name.as_ref();
        if is_hop_by_hop(name)
            || skip(name)
            || listed
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_only_end_to_end_fields() {
        let headers: Vec<(String, Vec<u8>)> = [
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "s"),
            ("Keep-Alive", "timeout=5"),
            ("Content-Length", "3"),
            ("X-Kept", "k"),
            ("Upgrade", "h2c"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        let mut out = Vec::new();
        write_forwardable(&mut out, &headers, |n| {
            n.eq_ignore_ascii_case("content-length")
        });
        assert_eq!(out, b"X-Kept: k\r\n");
    }
}
