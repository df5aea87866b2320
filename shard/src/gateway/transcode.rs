//! Relaying a provider's stream to a client: each upstream read goes through the codec's
//! transcoder (framer -> parser -> writer, or the same protocol passed through and read on the
//! side) and whatever client bytes it completes are written at once, as one HTTP chunk.
//! Nothing is buffered beyond one event, except before the stream commits.
//!
//! ```text
//!   upstream body (Content-Length | chunked | until close) --de-frame HTTP-->
//!     Transcoder::feed --> client bytes
//!   before the first content event: held (a provider that fails now is replaced, unseen)
//!   after: one chunk to the client per read
//!   end of body --> Transcoder::finish (an unfinished stream ends with an error event)
//!   deadlines: the first whole upstream event within first_event_timeout_ms, then at most
//!   event_gap_timeout_ms between two (bytes that complete no event do not count)
//! ```
//!
//! How it went is classified for the lane's breaker: a provider's error event by its code and
//! message, a deadline as a timeout, a cut-off or unreadable body as a network or server error.

use crate::server::client::{ClientIo, Watch};
use crate::server::respond::ApiError;
use crate::upstream::Response;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{BodyFraming, ChunkedDecoder};
use busbar_codec::stream::{MALFORMED, Transcoder};
use busbar_core::fault::{Class, Facts, classify};
use monoio::time::Instant;

/// Most client bytes held back while a stream has not committed; past this it commits anyway.
const MAX_HELD: usize = 1024 * 1024;

fn chunk(out: &mut Vec<u8>, data: &[u8], http11: bool) {
    if data.is_empty() {
        return;
    }
    if http11 {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// The client side of a streamed answer.
pub(super) struct Downstream<'a> {
    pub(super) stream: &'a mut ClientIo,
    /// The client's HTTP minor version (1.0 clients get the bytes raw, then a close).
    pub(super) minor: u8,
    pub(super) keep_alive: bool,
}

/// How a stream went.
pub(super) enum Streamed {
    /// It reached the client: whether the client connection can carry another request, and
    /// what went wrong after it began, if anything (the stream ended with an error event).
    Done {
        keep: bool,
        failure: Option<Class>,
        /// What the provider said the stream used, if it did.
        usage: Option<busbar_codec::ir::Usage>,
    },
    /// The provider failed before the stream committed: the client has seen nothing, and
    /// another provider may answer instead. `class: None`: the pool's failover deadline ran
    /// out, which is not the provider's fault.
    Failed {
        error: ApiError,
        class: Option<Class>,
    },
}

/// The upstream body, de-framed from HTTP, one read at a time.
struct Body {
    framing: BodyFraming,
    decoder: ChunkedDecoder,
    remaining: u64,
    /// The body ended on its own framing with nothing after it (the connection is reusable).
    clean: bool,
}

impl Body {
    /// Moves the body bytes of `input` into `data`; returns whether the body is complete, or
    /// `Err` for broken chunked framing.
    fn step(&mut self, input: &[u8], data: &mut Vec<u8>) -> Result<bool, ()> {
        data.clear();
        match self.framing {
            BodyFraming::Empty => Ok(true),
            BodyFraming::Length(_) => {
                let take = (self.remaining as usize).min(input.len());
                data.extend_from_slice(&input[..take]);
                self.remaining -= take as u64;
                self.clean &= take == input.len();
                Ok(self.remaining == 0)
            }
            BodyFraming::Chunked => {
                let used = self
                    .decoder
                    .feed(input, |d| data.extend_from_slice(d))
                    .map_err(|_| ())?;
                self.clean &= used == input.len();
                Ok(self.decoder.is_done())
            }
            BodyFraming::Close => {
                data.extend_from_slice(input);
                self.clean = false;
                Ok(false)
            }
        }
    }
}

/// Streams `resp` (a 2xx) to the client through `t`. Until the stream commits, nothing waits
/// past `latest` (the request's failover deadline).
pub(super) async fn stream(
    routes: &crate::routes::Routes,
    down: Downstream<'_>,
    provider: usize,
    resp: Response,
    mut t: Transcoder,
    extra_headers: &[(&str, String)],
    latest: Instant,
) -> Streamed {
    let Downstream {
        stream: client,
        minor: client_minor,
        keep_alive,
    } = down;
    let Response {
        stream: mut upstream,
        head,
        buffered,
    } = resp;
    let http11 = client_minor == 1;
    let keep = keep_alive && http11;
    let limit = std::time::Duration::from_millis(routes.config.limits.write_timeout_ms);

    let mut body = Body {
        framing: head.framing,
        decoder: ChunkedDecoder::new(),
        remaining: match head.framing {
            BodyFraming::Length(n) => n,
            _ => u64::MAX,
        },
        clean: head.keep_alive,
    };
    // Client bytes not yet written: until the stream commits, everything it has produced.
    let mut out = Vec::with_capacity(4096);
    let mut committed = false;
    let mut data = Vec::new();
    let mut events = Vec::new();
    let mut input = buffered;
    let mut cut = false;
    // Why the upstream ended early, when it did not just stop, and what kind of failure that is.
    let mut why: Option<String> = None;
    let mut why_class = Class::Network;
    let (first_event, gap) = routes.upstream.stream_deadlines();
    let first_deadline = Instant::now() + first_event;
    let mut seen = 0;
    let mut last_event = Instant::now();
    // The pool's failover deadline (not the provider's own) ended the wait.
    let mut pool_deadline = false;
    let mut watch = Watch::default();
    loop {
        events.clear();
        let done = match body.step(&input, &mut data) {
            Ok(done) => {
                if let Err(e) = t.feed(&data, &mut events) {
                    // An upstream event over the limit or malformed framing: end the stream
                    // with an error event rather than relay garbage.
                    body.clean = false;
                    cut = true;
                    why = Some(e.to_string());
                    why_class = Class::ServerError;
                    true
                } else {
                    if done && !cut {
                        t.end_of_body(&mut events);
                    }
                    done
                }
            }
            Err(()) => {
                body.clean = false;
                cut = true;
                why = Some("malformed chunked framing".into());
                why_class = Class::ServerError;
                true
            }
        };
        if t.upstream_events() > seen {
            seen = t.upstream_events();
            last_event = Instant::now();
        }
        if done {
            t.finish_because(why.as_deref(), &mut events);
        }
        if !committed {
            if let Some((code, message)) = t.error().filter(|_| !t.is_committed()) {
                // Failed before anything the client must see: nothing is written.
                let class = failure_class(routes, provider, &t, why_class).unwrap_or(why_class);
                return Streamed::Failed {
                    error: failed(routes, provider, code, message, class),
                    class: (!pool_deadline).then_some(class),
                };
            }
            out.extend_from_slice(&events);
            if t.is_committed() || out.len() > MAX_HELD {
                committed = true;
                let held = std::mem::take(&mut out);
                out = stream_head(t.content_type(), http11, keep, extra_headers);
                chunk(&mut out, &held, http11);
            }
        } else {
            chunk(&mut out, &events, http11);
        }
        if committed && done && http11 {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        if committed && !out.is_empty() {
            let (res, o) = client.send_within(limit, std::mem::take(&mut out)).await;
            if res.is_err() {
                return Streamed::Done {
                    keep: false,
                    failure: None,
                    usage: t.usage().copied(),
                };
            }
            out = o;
            out.clear();
            // Time spent waiting on a slow client is not the provider's silence.
            if seen > 0 {
                last_event = last_event.max(Instant::now());
            }
        }
        if done {
            break;
        }
        input.clear();
        let (wait, deadline) = if seen == 0 {
            ("first event", first_deadline)
        } else {
            ("next event", last_event + gap)
        };
        let deadline = if committed {
            deadline
        } else {
            deadline.min(latest)
        };
        let read = routes
            .upstream
            .read_body_until(&mut upstream, input, deadline);
        let Some(read) = client.unless_gone(&mut watch, read).await else {
            // Nobody will read the rest: the provider's connection is dropped now (not at the
            // next write), and what the stream used so far is what gets billed.
            return Streamed::Done {
                keep: false,
                failure: None,
                usage: t.usage().copied(),
            };
        };
        let res = match read {
            Ok((res, b)) => {
                input = b;
                res
            }
            Err(b) => {
                input = b;
                pool_deadline = !committed && deadline == latest;
                let waited = deadline.saturating_duration_since(if seen == 0 {
                    first_deadline - first_event
                } else {
                    last_event
                });
                why_class = Class::Timeout;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the provider's {wait} did not arrive within {} ms",
                        waited.as_millis()
                    ),
                ))
            }
        };
        if !matches!(res, Ok(n) if n > 0) {
            // The provider went away (or ended a close-delimited body): finish the stream,
            // with an error event if it was not complete.
            if let Err(e) = res {
                why = Some(e.to_string());
            }
            body.clean = false;
            // A close-delimited body ends this way; any other is cut off.
            cut = !matches!(body.framing, BodyFraming::Close);
            input.clear();
            body.framing = BodyFraming::Empty;
        }
    }
    if !committed {
        // Ended whole without content (an empty answer): still an answer.
        let mut all = stream_head(t.content_type(), http11, keep, extra_headers);
        chunk(&mut all, &out, http11);
        if http11 {
            all.extend_from_slice(b"0\r\n\r\n");
        }
        if client.send_within(limit, all).await.0.is_err() {
            return Streamed::Done {
                keep: false,
                failure: None,
                usage: t.usage().copied(),
            };
        }
    }
    if let Some(u) = t.usage() {
        tracing::debug!(
            shard = routes.shard,
            provider = %routes.config.providers[provider].name,
            input = u.input,
            output = u.output,
            cache_read = u.cache_read,
            cache_write = u.cache_write,
            reasoning = u.reasoning,
            "stream usage"
        );
    }
    if body.clean && t.is_complete() {
        routes.upstream.checkin(provider, upstream);
    }
    Streamed::Done {
        keep,
        failure: failure_class(routes, provider, &t, why_class),
        usage: t.usage().copied(),
    }
}

/// What kind of failure ended the stream, if it failed: the provider's own error event by
/// its code and message; busbar's (cut off, unreadable, a deadline) by what happened.
fn failure_class(
    routes: &crate::routes::Routes,
    provider: usize,
    t: &Transcoder,
    why: Class,
) -> Option<Class> {
    let (code, message) = t.error()?;
    Some(match code {
        Some("stream_interrupted") => why,
        Some(c) if c == MALFORMED => Class::ServerError,
        _ => {
            let p = &routes.config.providers[provider];
            classify(
                &Facts {
                    protocol: p.protocol,
                    status: None,
                    code,
                    message,
                    body: b"",
                },
                &p.faults,
            )
        }
    })
}

/// The client's response head for a stream.
fn stream_head(
    content_type: &str,
    http11: bool,
    keep: bool,
    extra_headers: &[(&str, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nserver: busbar\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncache-control: no-cache\r\n");
    if http11 {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    for (k, v) in extra_headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A stream that failed before it committed, as the error the client gets if no other
/// provider answers.
fn failed(
    routes: &crate::routes::Routes,
    provider: usize,
    code: Option<&str>,
    message: &str,
    class: Class,
) -> ApiError {
    let name = &routes.config.providers[provider].name;
    tracing::debug!(shard = routes.shard, provider = %name, class = class.as_str(), "stream failed before its first event: {message}");
    let mut e = ApiError::new(
        if class == Class::Timeout { 504 } else { 502 },
        ErrorKind::Upstream,
        format!("provider `{name}` failed before its stream began: {message}"),
    );
    if let Some(code) = code {
        e = e.header(
            "x-busbar-upstream-error",
            super::generate::header_safe(code, 200),
        );
    }
    e
}
