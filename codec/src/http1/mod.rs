//! HTTP/1.1 framing as pure byte logic: request and response heads (on `httparse`, plus the
//! framing rules httparse leaves to its caller) and the chunked transfer-coding.
//!
//! The shard owns the sockets; everything that decides what bytes mean lives here, so it can be
//! unit-tested and fuzzed on its own.

mod chunked;
mod fields;
mod request;
mod response;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use fields::Fields;
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
pub fn write_forwardable(out: &mut Vec<u8>, headers: &Fields, skip: impl Fn(&str) -> bool) {
    let listed = || {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(|t| t.trim_ascii())
    };
    for (name, value) in headers.iter() {
        if is_hop_by_hop(name)
            || skip(name)
            || listed().any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
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
        let head = b"GET / HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n\
                     Content-Length: 3\r\nX-Kept: k\r\nUpgrade: h2c\r\nHost: a\r\n\r\n";
        let h = parse_request_head(head, 4096, 20).unwrap().unwrap();
        let mut out = Vec::new();
        write_forwardable(&mut out, &h.headers, |n| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("host")
        });
        assert_eq!(out, b"X-Kept: k\r\n");
        assert_eq!(h.headers.len(), 7);
        assert_eq!(h.headers.get("x-kept"), Some(&b"k"[..]));
    }
}
