//! What one request leaves behind: its trail, filled in along the request path and read once
//! the answer is out (metric cells, span, access-log line). Plain data, built on the shard; no
//! I/O, no locks.

use busbar_codec::Protocol;
use busbar_codec::ir::Usage;
use busbar_core::fault::Class;
use monoio::time::Instant;
use std::time::SystemTime;

/// A W3C trace context (`traceparent`): the request's trace, the span busbar opens for it,
/// and whether it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceCx {
    pub(crate) trace_id: [u8; 16],
    /// The caller's span (from its `traceparent`), if it sent one.
    pub(crate) parent: Option<[u8; 8]>,
    /// busbar's span for the request.
    pub(crate) span_id: [u8; 8],
    pub(crate) sampled: bool,
}

/// A `traceparent` header value (version 00, and later versions read as 00 says), or `None`
/// when it is not one: lowercase hex, no all-zero ids.
pub(crate) fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], bool)> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let mut parts = v.split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if version.len() != 2 || !lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 has exactly four fields; a later one may add more after them.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !(lower_hex(trace) && lower_hex(parent) && lower_hex(flags)) {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    hex::decode_to_slice(trace, &mut t).ok()?;
    hex::decode_to_slice(parent, &mut p).ok()?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    let f = u8::from_str_radix(flags, 16).ok()?;
    Some((t, p, f & 1 == 1))
}

/// The `traceparent` value naming `span` in `cx`'s trace.
pub(crate) fn traceparent(cx: &TraceCx, span: [u8; 8]) -> String {
    format!(
        "00-{}-{}-{}",
        hex::encode(cx.trace_id),
        hex::encode(span),
        if cx.sampled { "01" } else { "00" }
    )
}

/// One upstream attempt.
#[derive(Debug, Clone)]
pub(crate) struct AttemptTrail {
    /// The lane (busbar's model name).
    pub(crate) lane: String,
    pub(crate) provider: String,
    /// The provider's protocol (egress).
    pub(crate) protocol: Protocol,
    /// The model name the provider was asked for.
    pub(crate) upstream_model: String,
    /// The provider's host and port.
    pub(crate) server: Option<(String, u16)>,
    /// This attempt's span (sent upstream in `traceparent`).
    pub(crate) span_id: [u8; 8],
    pub(crate) start: Instant,
    pub(crate) wall: SystemTime,
    /// When the provider's response head came.
    pub(crate) head_at: Option<Instant>,
    pub(crate) end: Option<Instant>,
    /// The provider's status (0: none came).
    pub(crate) status: u16,
    /// What went wrong, if anything.
    pub(crate) class: Option<Class>,
}

/// One request, as far as it got.
#[derive(Debug, Clone)]
pub(crate) struct Trail {
    /// `x-request-id`: the client's, or one minted here.
    pub(crate) request_id: String,
    pub(crate) started: Instant,
    pub(crate) wall: SystemTime,
    pub(crate) trace: Option<TraceCx>,
    pub(crate) method: &'static str,
    /// The path without its query.
    pub(crate) path: String,
    /// The ingress protocol, for generation routes.
    pub(crate) ingress: Option<Protocol>,
    /// The model (or pool) the client asked for.
    pub(crate) model: Option<String>,
    /// The pool, when the name was one.
    pub(crate) pool: Option<String>,
    /// The pool's policy, when one chose the order.
    pub(crate) policy: Option<&'static str>,
    pub(crate) stream: bool,
    pub(crate) max_tokens: Option<u64>,
    /// The caller's key name and environment (never the key itself).
    pub(crate) key: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) attempts: Vec<AttemptTrail>,
    /// The attempt whose provider answered (index into `attempts`).
    pub(crate) answered: Option<usize>,
    /// The model the provider says answered.
    pub(crate) response_model: Option<String>,
    pub(crate) usage: Option<Usage>,
    pub(crate) cost_micros: Option<u64>,
    /// Fields a translation dropped.
    pub(crate) dropped: Vec<String>,
    /// The status the client got (0 until known).
    pub(crate) status: u16,
    /// Why the request failed, in a word (`error.type`), when it did.
    pub(crate) error: Option<&'static str>,
    /// When the answer's first byte went to the client.
    pub(crate) first_byte: Option<Instant>,
    pub(crate) end: Option<Instant>,
}

impl Trail {
    pub(crate) fn new(request_id: String, method: &'static str, path: &str) -> Self {
        Self {
            request_id,
            started: Instant::now(),
            wall: SystemTime::now(),
            trace: None,
            method,
            path: path.to_string(),
            ingress: None,
            model: None,
            pool: None,
            policy: None,
            stream: false,
            max_tokens: None,
            key: None,
            environment: None,
            attempts: Vec::new(),
            answered: None,
            response_model: None,
            usage: None,
            cost_micros: None,
            dropped: Vec::new(),
            status: 0,
            error: None,
            first_byte: None,
            end: None,
        }
    }

    /// The attempt being made (the last one begun).
    pub(crate) fn current(&mut self) -> Option<&mut AttemptTrail> {
        self.attempts.last_mut()
    }

    /// Time spent waiting for providers' response heads, over every attempt.
    pub(crate) fn upstream_wait(&self) -> std::time::Duration {
        self.attempts
            .iter()
            .filter_map(|a| Some(a.head_at.or(a.end)? - a.start))
            .sum()
    }

    /// busbar's own share of the time to the client's first byte: all of it but the waits for
    /// providers' heads.
    pub(crate) fn overhead(&self) -> Option<std::time::Duration> {
        let first = self.first_byte?;
        Some((first - self.started).saturating_sub(self.upstream_wait()))
    }

    /// The answering attempt.
    pub(crate) fn answer(&self) -> Option<&AttemptTrail> {
        self.answered.and_then(|i| self.attempts.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_as_w3c_says() {
        let (t, p, s) =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p), "00f067aa0ba902b7");
        assert!(s);
        let (_, _, s) =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!s);
        // A later version may carry more fields.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"garbage",
            b"",
        ] {
            assert!(
                parse_traceparent(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let cx = TraceCx {
            trace_id: t,
            parent: Some(p),
            span_id: [1; 8],
            sampled: true,
        };
        assert_eq!(
            traceparent(&cx, [2; 8]),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0202020202020202-01"
        );
    }
}
