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
//! ```

use crate::io::write_all;
use crate::server::respond::ApiError;
use crate::shard::Shard;
use crate::upstream::Response;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{BodyFraming, ChunkedDecoder};
use busbar_codec::stream::Transcoder;
use monoio::net::TcpStream;

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
    pub(super) stream: &'a mut TcpStream,
    /// The client's HTTP minor version (1.0 clients get the bytes raw, then a close).
    pub(super) minor: u8,
    pub(super) keep_alive: bool,
}

/// How a stream went.
pub(super) enum Streamed {
    /// It reached the client; whether the client connection can carry another request.
    Done(bool),
    /// The provider failed before the stream committed: the client has seen nothing, and
    /// another provider may answer instead.
    Failed(ApiError),
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

/// Streams `resp` (a 2xx) to the client through `t`.
pub(super) async fn stream(
    shard: &Shard,
    down: Downstream<'_>,
    provider: usize,
    resp: Response,
    mut t: Transcoder,
    extra_headers: &[(&str, String)],
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
    // Why the upstream ended early, when it did not just stop.
    let mut why: Option<String> = None;
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
                true
            }
        };
        if done {
            t.finish_because(why.as_deref(), &mut events);
        }
        if !committed {
            if let Some((code, message)) = t.error().filter(|_| !t.is_committed()) {
                // Failed before anything the client must see: nothing is written.
                return Streamed::Failed(failed(shard, provider, code, message));
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
            let (res, o) = write_all(client, std::mem::take(&mut out)).await;
            if res.is_err() {
                return Streamed::Done(false);
            }
            out = o;
            out.clear();
        }
        if done {
            break;
        }
        input.clear();
        let (res, b) = shard.upstream.read_body(&mut upstream, input).await;
        input = b;
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
        if write_all(client, all).await.0.is_err() {
            return Streamed::Done(false);
        }
    }
    if let Some(u) = t.usage() {
        tracing::debug!(
            shard = shard.id,
            provider = %shard.config.providers[provider].name,
            input = u.input,
            output = u.output,
            cache_read = u.cache_read,
            cache_write = u.cache_write,
            reasoning = u.reasoning,
            "stream usage"
        );
    }
    if body.clean && t.is_complete() {
        shard.upstream.checkin(provider, upstream);
    }
    Streamed::Done(keep)
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
fn failed(shard: &Shard, provider: usize, code: Option<&str>, message: &str) -> ApiError {
    let name = &shard.config.providers[provider].name;
    tracing::debug!(shard = shard.id, provider = %name, "stream failed before its first event: {message}");
    let mut e = ApiError::new(
        502,
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
