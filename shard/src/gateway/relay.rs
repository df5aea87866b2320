//! Relaying a provider's response to the client as it arrives: never buffered whole, written
//! out after every read.
//!
//! ```text
//!   provider framing   client HTTP/1.1                  client HTTP/1.0
//!   Content-Length     same bytes, same length          same
//!   chunked            same bytes (decoder only watches) de-chunked, then close
//!   until-close        re-framed as chunked             same bytes, then close
//! ```
//!
//! The connection goes back to the pool only when its body ended cleanly on its own framing.
//! If the client goes away mid-body the provider connection is dropped at once.

use crate::server::client::{ClientIo, Watch};
use crate::server::respond::reason;
use crate::upstream::Response;
use busbar_codec::http1::{BodyFraming, ChunkedDecoder, write_forwardable};

enum Mode {
    Empty,
    Length { remaining: u64 },
    ChunkedPass(ChunkedDecoder),
    ChunkedDecode(ChunkedDecoder),
    CloseWrap,
    CloseRaw,
}

/// What the relay did with a piece of upstream bytes.
struct Step {
    /// Whether the body is complete.
    done: bool,
    /// Whether bytes past the end of the body arrived (the connection cannot be reused).
    excess: bool,
}

impl Mode {
    /// Moves the body bytes of `input` into `out`, framed for the client.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Step, ()> {
        match self {
            Mode::Empty => Ok(Step {
                done: true,
                excess: !input.is_empty(),
            }),
            Mode::Length { .. } | Mode::ChunkedPass(_) => {
                let (step, used) = self.pass(input)?.unwrap_or((
                    Step {
                        done: true,
                        excess: true,
                    },
                    0,
                ));
                out.extend_from_slice(&input[..used]);
                Ok(step)
            }
            Mode::ChunkedDecode(d) => {
                let used = d
                    .feed(input, |data| out.extend_from_slice(data))
                    .map_err(|_| ())?;
                Ok(Step {
                    done: d.is_done(),
                    excess: used < input.len(),
                })
            }
            Mode::CloseWrap => {
                if !input.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", input.len()).as_bytes());
                    out.extend_from_slice(input);
                    out.extend_from_slice(b"\r\n");
                }
                Ok(Step {
                    done: false,
                    excess: false,
                })
            }
            Mode::CloseRaw => {
                out.extend_from_slice(input);
                Ok(Step {
                    done: false,
                    excess: false,
                })
            }
        }
    }

    /// For the modes that relay bytes unchanged: how much of `input` belongs to the body (the
    /// caller writes that prefix as it is). `None` for the modes that re-frame.
    fn pass(&mut self, input: &[u8]) -> Result<Option<(Step, usize)>, ()> {
        match self {
            Mode::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64) as usize;
                *remaining -= take as u64;
                Ok(Some((
                    Step {
                        done: *remaining == 0,
                        excess: take < input.len(),
                    },
                    take,
                )))
            }
            Mode::ChunkedPass(d) => {
                let used = d.feed(input, |_| {}).map_err(|_| ())?;
                Ok(Some((
                    Step {
                        done: d.is_done(),
                        excess: used < input.len(),
                    },
                    used,
                )))
            }
            _ => Ok(None),
        }
    }

    /// Whether the client connection must close after this response.
    fn closes_client(&self) -> bool {
        matches!(self, Mode::ChunkedDecode(_) | Mode::CloseRaw)
    }
}

/// Relays `resp` to the client. Returns whether the client connection can carry another request.
pub(super) async fn relay(
    routes: &crate::routes::Routes,
    client: &mut ClientIo,
    provider: usize,
    resp: Response,
    client_minor: u8,
    keep_alive: bool,
    mut tap: Option<&mut Vec<u8>>,
) -> bool {
    let Response {
        mut stream,
        head,
        buffered,
    } = resp;
    let mut keep_tap = |bytes: &[u8]| {
        if let Some(t) = tap.as_mut() {
            if t.len() + bytes.len() <= MAX_TAP {
                t.extend_from_slice(bytes);
            } else {
                // Too big to read for usage: the request is billed at its worst case.
                t.clear();
                tap = None;
            }
        }
    };
    keep_tap(&buffered);
    let http11 = client_minor == 1;
    let limit = std::time::Duration::from_millis(routes.config.limits.write_timeout_ms);
    let mut mode = match head.framing {
        BodyFraming::Empty => Mode::Empty,
        BodyFraming::Length(n) => Mode::Length { remaining: n },
        BodyFraming::Chunked if http11 => Mode::ChunkedPass(ChunkedDecoder::new()),
        BodyFraming::Chunked => Mode::ChunkedDecode(ChunkedDecoder::new()),
        BodyFraming::Close if http11 => Mode::CloseWrap,
        BodyFraming::Close => Mode::CloseRaw,
    };
    let keep_client = keep_alive && !mode.closes_client();

    let mut out = routes.upstream.buffers.take();
    out.reserve(1024 + buffered.len());
    status_and_headers(&mut out, &head);
    match (&mode, head.framing) {
        (Mode::Length { .. }, BodyFraming::Length(n)) => {
            out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes())
        }
        (Mode::ChunkedPass(_) | Mode::CloseWrap, _) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n")
        }
        (Mode::Empty, _) => {
            if let Some(v) = head.header("content-length") {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
        }
        _ => {}
    }
    if !keep_client {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");

    let mut reusable = head.keep_alive;
    let Ok(mut step) = mode.step(&buffered, &mut out) else {
        return false;
    };
    reusable &= !step.excess;
    let (res, mut out) = client.send_within(limit, out).await;
    if res.is_err() {
        return false;
    }
    let mut buf = buffered;
    let mut watch = Watch::default();
    while !step.done {
        buf.clear();
        let read = routes.upstream.read_body(&mut stream, buf);
        // A client that goes away stops the relay at once: the provider's connection is
        // dropped (not put back) and the request settles with what was read.
        let Some((res, b)) = client.unless_gone(&mut watch, read).await else {
            return false;
        };
        buf = b;
        match res {
            Ok(0) => {
                if matches!(mode, Mode::CloseWrap | Mode::CloseRaw) {
                    if matches!(mode, Mode::CloseWrap) {
                        let _ = client.send_within(limit, b"0\r\n\r\n".to_vec()).await;
                    }
                    return keep_client;
                }
                // The provider ended the body early: the client must see a broken response,
                // not a short one that looks whole.
                tracing::debug!(shard = routes.shard, "provider closed mid-body");
                return false;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(shard = routes.shard, "reading provider body failed: {e}");
                return false;
            }
        }
        keep_tap(&buf);
        let res = match mode.pass(&buf) {
            // The provider's bytes go to the client as they are: the read buffer itself is
            // written, no copy.
            Ok(Some((st, used))) => {
                step = st;
                buf.truncate(used);
                let (res, b) = client.send_within(limit, buf).await;
                buf = b;
                res
            }
            Ok(None) => {
                out.clear();
                let Ok(st) = mode.step(&buf, &mut out) else {
                    return false;
                };
                step = st;
                let (res, o) = client.send_within(limit, out).await;
                out = o;
                res
            }
            Err(()) => return false,
        };
        reusable &= !step.excess;
        if res.is_err() {
            return false;
        }
    }
    routes.upstream.buffers.give(out);
    routes.upstream.buffers.give(buf);
    if reusable {
        routes.upstream.checkin(provider, stream);
    }
    keep_client
}

/// Most body bytes kept on the side to read a relayed answer's usage.
const MAX_TAP: usize = 8 * 1024 * 1024;

/// The body in `raw` (the bytes that followed the head), undone from its framing; `None` when
/// it is not whole.
pub(super) fn body_of(framing: BodyFraming, raw: &[u8]) -> Option<Vec<u8>> {
    match framing {
        BodyFraming::Empty => Some(Vec::new()),
        BodyFraming::Length(n) => raw.get(..usize::try_from(n).ok()?).map(<[u8]>::to_vec),
        BodyFraming::Close => Some(raw.to_vec()),
        BodyFraming::Chunked => {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::with_capacity(raw.len());
            d.feed(raw, |data| out.extend_from_slice(data)).ok()?;
            d.is_done().then_some(out)
        }
    }
}

/// The provider's status line and the headers a client may see, without its framing headers
/// (the relay writes its own).
fn status_and_headers(out: &mut Vec<u8>, head: &busbar_codec::http1::ResponseHead) {
    let phrase = if head.reason.is_empty() {
        reason(head.status)
    } else {
        &head.reason
    };
    out.extend_from_slice(format!("HTTP/1.1 {} {phrase}\r\n", head.status).as_bytes());
    write_forwardable(out, &head.headers, |name| {
        name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("content-length")
    });
}

/// A provider's response that was read whole (an error, to classify it first), as the client
/// gets it: the provider's status, headers and body, with a Content-Length.
pub(super) fn whole(
    head: &busbar_codec::http1::ResponseHead,
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + body.len());
    status_and_headers(&mut out, head);
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
