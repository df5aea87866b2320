//! What one request asks of the mock: read from its `x-mock-*` headers and the `mock-*=`
//! markers of its body, then overridden by the fault rule that fired for it (rules.rs).
//!
//! ```text
//!   head + body --Steer::from--> Steer --apply(rule actions)--> Steer --> answer / error / drip
//! ```
//!
//! Pure: no I/O, no clock. Body markers survive any translation by the gateway, so a test can
//! steer the mock through any client SDK without custom headers.

use super::MockOptions;
use busbar_codec::http1::RequestHead;
use std::time::Duration;

/// Per-request settings after header, marker and rule overrides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Steer {
    /// An HTTP status to answer with (>= 300: the provider's error for it).
    pub(crate) status: Option<u16>,
    /// A named fault (`context`, `auth`, `billing`, `overloaded`, `rate`, ...): the provider's
    /// own error for it, at the provider's own status. Wins over `status`.
    pub(crate) fault: Option<String>,
    /// Whether the error was asked by a rule (answered in the provider's exact words) rather
    /// than by the request (a status asked by the request is tagged `mock: status N`).
    pub(crate) by_rule: bool,
    pub(crate) ttft: Duration,
    pub(crate) gap: Duration,
    pub(crate) tokens: u64,
    pub(crate) hang: bool,
    pub(crate) retry_after: Option<u64>,
    /// Break a stream mid-way, and after how many text deltas.
    pub(crate) brk: Option<Break>,
    pub(crate) break_after: u64,
    /// Write the whole response a few bytes at a time.
    pub(crate) drip: Option<Drip>,
}

/// How a steered stream breaks (`x-mock-break`, or `mock-break=` in the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    /// The protocol's own mid-stream error event, then a clean end of the body.
    Error,
    /// Bytes that are no frame of the protocol, then the connection closes.
    Garbage,
    /// A TCP reset.
    Reset,
}

impl Break {
    pub(crate) fn parse(s: &[u8]) -> Option<Break> {
        match s {
            b"error" => Some(Break::Error),
            b"garbage" => Some(Break::Garbage),
            b"reset" => Some(Break::Reset),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Break::Error => "error",
            Break::Garbage => "garbage",
            Break::Reset => "reset",
        }
    }
}

/// A slow drip: `bytes` per write, `gap` between writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drip {
    pub(crate) gap: Duration,
    pub(crate) bytes: usize,
}

/// What a fault rule sets; `None` leaves the request's own steering.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Actions {
    pub(crate) status: Option<u16>,
    pub(crate) fault: Option<String>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) hang: Option<bool>,
    pub(crate) drip_ms: Option<u64>,
    pub(crate) drip_bytes: Option<u64>,
    pub(crate) brk: Option<Break>,
    pub(crate) break_after: Option<u64>,
    pub(crate) ttft_ms: Option<u64>,
    pub(crate) gap_ms: Option<u64>,
    pub(crate) tokens: Option<u64>,
}

/// The number after `key` in `body` (`mock-status=503` -> 503).
fn marked(body: &[u8], key: &str) -> Option<u64> {
    let at = find(body, key.as_bytes())? + key.len();
    let digits: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// The word (`[a-z_]`) after `key` in `body` (`mock-fault=context` -> `context`).
fn marked_word(body: &[u8], key: &str) -> Option<Vec<u8>> {
    let at = find(body, key.as_bytes())? + key.len();
    let word: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
        .collect();
    (!word.is_empty()).then_some(word)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn drip(ms: Option<u64>, bytes: Option<u64>) -> Option<Drip> {
    let ms = ms?;
    Some(Drip {
        gap: Duration::from_millis(ms),
        bytes: usize::try_from(bytes.unwrap_or(1).max(1)).unwrap_or(usize::MAX),
    })
}

impl Steer {
    /// The request's own steering: headers first, then body markers, then the mock's defaults.
    pub(crate) fn from(head: &RequestHead, body: &[u8], o: &MockOptions) -> Steer {
        let num = |name: &str| {
            head.header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let word = |name: &str| {
            head.header(name)
                .map(|v| v.trim_ascii().to_ascii_lowercase())
        };
        let fault = word("x-mock-fault")
            .or_else(|| marked_word(body, "mock-fault="))
            .and_then(|w| String::from_utf8(w).ok());
        Steer {
            status: num("x-mock-status")
                .or_else(|| marked(body, "mock-status="))
                .and_then(|s| u16::try_from(s).ok()),
            fault,
            by_rule: false,
            ttft: num("x-mock-ttft-ms").map_or(o.ttft, Duration::from_millis),
            gap: num("x-mock-gap-ms").map_or(o.gap, Duration::from_millis),
            tokens: num("x-mock-tokens").unwrap_or(o.tokens),
            hang: num("x-mock-hang") == Some(1),
            retry_after: num("x-mock-retry-after").or_else(|| marked(body, "mock-retry-after=")),
            brk: word("x-mock-break")
                .and_then(|w| Break::parse(&w))
                .or_else(|| marked_word(body, "mock-break=").and_then(|w| Break::parse(&w))),
            break_after: num("x-mock-break-after")
                .or_else(|| marked(body, "mock-break-after="))
                .unwrap_or(2),
            drip: drip(
                num("x-mock-drip-ms").or_else(|| marked(body, "mock-drip-ms=")),
                num("x-mock-drip-bytes").or_else(|| marked(body, "mock-drip-bytes=")),
            ),
        }
    }

    /// Overrides what a fired rule sets. `status` and `fault` are one choice: a rule that sets
    /// either replaces the request's error entirely.
    pub(crate) fn apply(&mut self, a: &Actions) {
        if a.status.is_some() || a.fault.is_some() {
            self.status = a.status;
            self.fault = a.fault.clone();
            self.by_rule = true;
        }
        if let Some(s) = a.retry_after {
            self.retry_after = Some(s);
        }
        if let Some(h) = a.hang {
            self.hang = h;
        }
        if a.drip_ms.is_some() {
            let bytes = a.drip_bytes.or_else(|| self.drip.map(|d| d.bytes as u64));
            self.drip = drip(a.drip_ms, bytes);
        } else if let (Some(b), Some(d)) = (a.drip_bytes, self.drip.as_mut()) {
            d.bytes = usize::try_from(b.max(1)).unwrap_or(usize::MAX);
        }
        if let Some(b) = a.brk {
            self.brk = Some(b);
        }
        if let Some(n) = a.break_after {
            self.break_after = n;
        }
        if let Some(ms) = a.ttft_ms {
            self.ttft = Duration::from_millis(ms);
        }
        if let Some(ms) = a.gap_ms {
            self.gap = Duration::from_millis(ms);
        }
        if let Some(n) = a.tokens {
            self.tokens = n;
        }
    }

    /// The error to answer with, if any: a fault, else a status >= 300.
    pub(crate) fn error(&self) -> Option<Ask<'_>> {
        if let Some(f) = &self.fault {
            return Some(Ask::Fault(f));
        }
        self.status.filter(|s| *s >= 300).map(Ask::Status)
    }
}

/// An error the mock was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask<'a> {
    /// The provider's error for this status.
    Status(u16),
    /// The provider's error of this name.
    Fault(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar_codec::http1::parse_request_head;

    fn opts() -> MockOptions {
        MockOptions {
            ttft: Duration::ZERO,
            gap: Duration::ZERO,
            tokens: 16,
            record: false,
        }
    }

    fn steer(headers: &str, body: &str) -> Steer {
        let raw = format!("POST /v1/messages HTTP/1.1\r\nhost: x\r\n{headers}\r\n");
        let head = parse_request_head(raw.as_bytes(), 1 << 16, 64)
            .expect("a valid head")
            .expect("a whole head");
        Steer::from(&head, body.as_bytes(), &opts())
    }

    #[test]
    fn headers_and_markers_both_steer() {
        let s = steer(
            "x-mock-fault: Rate\r\nx-mock-drip-ms: 5\r\nx-mock-drip-bytes: 3\r\n",
            "",
        );
        assert_eq!(s.fault.as_deref(), Some("rate"));
        assert_eq!(
            s.drip,
            Some(Drip {
                gap: Duration::from_millis(5),
                bytes: 3
            })
        );
        let s = steer(
            "",
            r#"{"messages":[{"content":"hi mock-fault=context mock-drip-ms=7 mock-status=503"}]}"#,
        );
        assert_eq!(s.error(), Some(Ask::Fault("context")));
        assert_eq!(
            s.drip.map(|d| (d.gap, d.bytes)),
            Some((Duration::from_millis(7), 1))
        );
        assert_eq!(s.status, Some(503));
        let s = steer("", "mock-status=429 mock-retry-after=7 mock-break=reset");
        assert_eq!(
            (s.error(), s.retry_after, s.brk),
            (Some(Ask::Status(429)), Some(7), Some(Break::Reset))
        );
        assert_eq!(steer("x-mock-status: 200\r\n", "").error(), None);
        assert_eq!(steer("", "mock-fault= nothing").fault, None);
    }

    #[test]
    fn a_rule_overrides_only_what_it_sets() {
        let mut s = steer("x-mock-hang: 1\r\nx-mock-drip-ms: 5\r\n", "mock-fault=auth");
        s.apply(&Actions {
            status: Some(503),
            hang: Some(false),
            drip_bytes: Some(4),
            ..Actions::default()
        });
        assert_eq!(
            s.error(),
            Some(Ask::Status(503)),
            "status replaces the fault"
        );
        assert!(s.by_rule && !s.hang);
        assert_eq!(s.drip.map(|d| d.bytes), Some(4));
        assert_eq!(s.drip.map(|d| d.gap), Some(Duration::from_millis(5)));
        let before = s.clone();
        s.apply(&Actions::default());
        assert_eq!(s, before);
        s.apply(&Actions {
            fault: Some("rate".into()),
            drip_ms: Some(1),
            brk: Some(Break::Error),
            break_after: Some(0),
            ..Actions::default()
        });
        assert_eq!(s.error(), Some(Ask::Fault("rate")));
        assert_eq!(s.status, None);
        assert_eq!(
            s.drip.map(|d| (d.gap, d.bytes)),
            Some((Duration::from_millis(1), 4))
        );
        assert_eq!((s.brk, s.break_after), (Some(Break::Error), 0));
    }
}
