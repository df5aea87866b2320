//! The HTTP/2 server side (the `h2` crate) on a shard: TLS connections that chose `h2` by
//! ALPN, and cleartext ones that open with the h2 preface when `http2.cleartext` is on.
//!
//! ```text
//!   connection: h2 handshake (deadline) -> accept streams, each a task of its own
//!               (at most max_concurrent_streams; idle -> GOAWAY; draining -> GOAWAY)
//!   stream:     request head + body (size limit, deadlines, flow control released as read)
//!               -> the same HTTP/1.1 head the gateway takes -> gateway -> StreamOut:
//!               the HTTP/1.1 answer the gateway writes becomes HEADERS + DATA frames,
//!               sent only as the client's window allows
//! ```
//!
//! Limits set deliberately: concurrent streams, stream and connection windows, frame size,
//! header list size (the HTTP/1.1 head limit), a send buffer per stream, and reset streams:
//! h2 itself bounds streams reset before they are accepted, and a client that resets more
//! than `max_pending_resets` streams busbar had started work for (rapid reset) is sent
//! GOAWAY ENHANCE_YOUR_CALM and closed.

use super::client::ClientIo;
use super::respond::ApiError;
use crate::gateway;
use crate::shard::Shard;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{
    BodyFraming, ChunkedDecoder, RequestHead, is_hop_by_hop, parse_request_head,
    parse_response_head,
};
use bytes::Bytes;
use monoio::time::{Instant, timeout, timeout_at};
use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The connection preface every h2 client sends first (RFC 9113 section 3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Most bytes of an answer h2 buffers for one stream beyond what the client's window takes.
const SEND_BUFFER: usize = 256 * 1024;

/// A poll-style connection with bytes read ahead of it put back in front (the ClientHello
/// read for ALPN, or the h2 preface read to tell h2 from HTTP/1.1).
pub(crate) struct Replay<IO> {
    ahead: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO> Replay<IO> {
    pub(crate) fn new(ahead: Vec<u8>, io: IO) -> Self {
        Self { ahead, at: 0, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replay<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.ahead.len() {
            let n = buf.remaining().min(this.ahead.len() - this.at);
            buf.put_slice(&this.ahead[this.at..this.at + n]);
            this.at += n;
            if this.at == this.ahead.len() {
                this.ahead = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replay<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves one h2 connection until it closes. `over`: the shard is over its connection limit,
/// so every stream is answered 503 with Retry-After.
pub(crate) async fn serve<IO>(shard: Rc<Shard>, io: IO, over: bool)
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let routes = shard.routes();
    let h = routes.config.http2.clone();
    let limits = routes.config.limits.clone();
    drop(routes);
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(h.max_concurrent_streams)
        .initial_window_size(h.initial_window_size)
        .initial_connection_window_size(h.initial_connection_window_size)
        .max_frame_size(h.max_frame_size)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(h.max_pending_resets)
        .max_local_error_reset_streams(Some(h.max_pending_resets))
        .max_send_buffer_size(SEND_BUFFER);
    let header_timeout = Duration::from_millis(limits.header_timeout_ms);
    let mut conn = match timeout(header_timeout, builder.handshake::<_, Bytes>(io)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(shard = shard.id, "h2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(
                shard = shard.id,
                "h2 handshake not done within its deadline"
            );
            return;
        }
    };
    let resets = Rc::new(Cell::new(0usize));
    // Request body bytes held by this connection's streams: at most one body's limit in all,
    // as on an HTTP/1.1 connection (many streams must not multiply it).
    let held = Rc::new(Cell::new(0usize));
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    // Over the connection limit: its streams are answered 503, and it is asked to go at once.
    let mut closing = over;
    if over {
        conn.graceful_shutdown();
    }
    loop {
        if !closing && (shard.draining.get() || resets.get() > h.max_pending_resets) {
            if resets.get() > h.max_pending_resets {
                tracing::debug!(shard = shard.id, "h2 client reset too many streams");
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            } else {
                conn.graceful_shutdown();
            }
            closing = true;
        }
        // Accepting also drives the connection (every stream's frames go through it), so
        // it is awaited for as long as streams are open; only an idle connection times out.
        // A closing connection gets the shutdown grace at most (a client that never answers
        // the GOAWAY's PING must not keep it).
        let next = if closing {
            match timeout(grace, conn.accept()).await {
                Ok(n) => Ok(n),
                Err(_) => {
                    conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                    break;
                }
            }
        } else if conn.has_streams() {
            Ok(conn.accept().await)
        } else {
            timeout(idle, conn.accept()).await
        };
        match next {
            Ok(Some(Ok((request, respond)))) => {
                monoio::spawn(stream(
                    Rc::clone(&shard),
                    request,
                    respond,
                    over,
                    Rc::clone(&resets),
                    Rc::clone(&held),
                ));
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(shard = shard.id, "h2 connection: {e}");
                break;
            }
            Ok(None) => break,
            Err(_) => {
                conn.graceful_shutdown();
                closing = true;
            }
        }
    }
    // Let the GOAWAY (and anything queued) reach the client.
    let _ = timeout(Duration::from_secs(1), poll_fn(|cx| conn.poll_closed(cx))).await;
}

/// One stream: its request read and checked, the gateway's answer sent back.
async fn stream(
    shard: Rc<Shard>,
    request: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
    over: bool,
    resets: Rc<Cell<usize>>,
    held: Rc<Cell<usize>>,
) {
    let (parts, body) = request.into_parts();
    let head_request = parts.method == http::Method::HEAD;
    let limit = Duration::from_millis(shard.routes().config.limits.write_timeout_ms);
    let mut out = ClientIo::h2(StreamOut::new(respond, head_request, limit));
    shard.in_flight.set(shard.in_flight.get() + 1);
    let protocol = |head: &RequestHead| gateway::ingress::protocol_of(head);
    let held_here = Held(held, Cell::new(0));
    let served = async {
        if over {
            let head = request_head(&shard, &parts, 0).ok();
            let p = head
                .as_ref()
                .map_or(busbar_codec::Protocol::OpenAiChat, protocol);
            return Some(super::conn::busy(&shard).for_protocol(p));
        }
        let body = match read_body(&shard, body, &held_here).await {
            Ok(b) => b,
            Err(Some(e)) => return Some(e),
            Err(None) => return None,
        };
        let head = match request_head(&shard, &parts, body.len()) {
            Ok(h) => h,
            Err(e) => return Some(e),
        };
        gateway::handle(&shard, &mut out, &head, body, true).await;
        None
    }
    .await;
    if let Some(e) = served {
        let _ = out.send(e.render(true)).await;
    }
    shard.in_flight.set(shard.in_flight.get() - 1);
    // Resets count up, streams that end normally count down: a client that stops a
    // generation now and then is fine; one that mostly resets (rapid reset) is cut off.
    if let Some(s) = out.h2_stream() {
        if s.finish() {
            resets.set(resets.get() + 1);
        } else {
            resets.set(resets.get().saturating_sub(1));
        }
    }
}

/// The request body, whole: within `limits.max_body_bytes`, `body_timeout_ms` in all and
/// `body_gap_timeout_ms` between frames, the window given back as it is read. `Err(None)`:
/// the client reset the stream.
/// This stream's share of its connection's held body bytes, given back when it ends.
struct Held(Rc<Cell<usize>>, Cell<usize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(self.1.get()));
    }
}

async fn read_body(
    shard: &Shard,
    mut body: h2::RecvStream,
    held: &Held,
) -> Result<Vec<u8>, Option<ApiError>> {
    let routes = shard.routes();
    let limits = &routes.config.limits;
    let max = limits.max_body_bytes;
    let deadline = Instant::now() + Duration::from_millis(limits.body_timeout_ms);
    let gap = Duration::from_millis(limits.body_gap_timeout_ms);
    let mut out = Vec::new();
    loop {
        let until = deadline.min(Instant::now() + gap);
        let chunk = match timeout_at(until, body.data()).await {
            Ok(None) => return Ok(out),
            Ok(Some(Ok(c))) => c,
            Ok(Some(Err(_))) => return Err(None),
            Err(_) => return Err(Some(super::conn::body_too_slow(limits, deadline))),
        };
        if out.len() + chunk.len() > max {
            return Err(Some(ApiError::new(
                413,
                ErrorKind::TooLarge,
                format!("request body is larger than the limit of {max} bytes"),
            )));
        }
        if held.0.get() + chunk.len() > max {
            return Err(Some(ApiError::new(
                413,
                ErrorKind::TooLarge,
                format!(
                    "the request bodies in flight on this connection are over the limit of {max} bytes; send fewer at once"
                ),
            )));
        }
        held.0.set(held.0.get() + chunk.len());
        held.1.set(held.1.get() + chunk.len());
        out.extend_from_slice(&chunk);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
}

/// The HTTP/1.1 head the gateway takes, made from the h2 request: the same parser and limits
/// as for HTTP/1.1 clients, `:authority` as `host`, the body's length as `content-length`.
fn request_head(
    shard: &Shard,
    parts: &http::request::Parts,
    body_len: usize,
) -> Result<RequestHead, ApiError> {
    let routes = shard.routes();
    let limits = &routes.config.limits;
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(a) = parts.uri.authority() {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(a.as_str().as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if n == "content-length" || (n == "host" && parts.uri.authority().is_some()) {
            continue;
        }
        head.extend_from_slice(n.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(format!("content-length: {body_len}\r\n\r\n").as_bytes());
    let refused = |e: busbar_codec::http1::HeadError| {
        let kind = if e.status() == 431 {
            ErrorKind::TooLarge
        } else {
            ErrorKind::InvalidRequest
        };
        ApiError::new(e.status(), kind, e.to_string())
    };
    // One field more than the client sent may be added (`host`), and the head a little
    // longer than the h2 header list it came from.
    match parse_request_head(&head, limits.max_head_bytes + 1024, limits.max_headers + 2) {
        Ok(Some(h)) => Ok(h),
        Ok(None) => Err(ApiError::new(
            400,
            ErrorKind::InvalidRequest,
            "the request head is incomplete",
        )),
        Err(e) => Err(refused(e)),
    }
}

/// Where an answer on an h2 stream is.
enum Out {
    /// Collecting the HTTP/1.1 head the gateway writes.
    Head(Vec<u8>),
    /// Head sent; the body is going out.
    Body {
        stream: h2::SendStream<Bytes>,
        framing: BodyFraming,
        /// Body bytes still to come (content-length framing).
        left: u64,
        decoder: ChunkedDecoder,
        /// Chunked bytes not yet decodable (a chunk-size line split between writes).
        pending: Vec<u8>,
    },
    /// The end of the stream has been sent.
    Done,
}

/// One h2 stream's answer, fed with the HTTP/1.1 bytes the gateway writes.
pub(crate) struct StreamOut {
    respond: Option<h2::server::SendResponse<Bytes>>,
    head_request: bool,
    out: Out,
    /// Longest a write may wait for the client's window (`limits.write_timeout_ms`): a
    /// client that grants none must not hold the stream, its task or its connection.
    limit: Duration,
}

fn broken(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what.to_string())
}

impl StreamOut {
    fn new(respond: h2::server::SendResponse<Bytes>, head_request: bool, limit: Duration) -> Self {
        Self {
            respond: Some(respond),
            head_request,
            out: Out::Head(Vec::new()),
            limit,
        }
    }

    /// Takes the next bytes of the HTTP/1.1 answer, within the write limit.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let limit = self.limit;
        match timeout(limit, self.write_now(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing for {} ms", limit.as_millis()),
            )),
        }
    }

    async fn write_now(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if let Out::Head(buf) = &mut self.out {
            buf.extend_from_slice(bytes);
            let head = match parse_response_head(buf, 64 * 1024, self.head_request) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) => return Err(broken(format!("unusable answer head: {e}"))),
            };
            let rest = buf.split_off(head.head_len);
            let mut response = http::Response::builder().status(head.status);
            for (name, value) in head.headers.iter() {
                let lower = name.to_ascii_lowercase();
                if is_hop_by_hop(&lower)
                    || lower == "transfer-encoding"
                    || (lower == "content-length" && head.framing == BodyFraming::Chunked)
                {
                    continue;
                }
                response = response.header(lower, value);
            }
            let response = response.body(()).map_err(broken)?;
            let empty = matches!(head.framing, BodyFraming::Empty | BodyFraming::Length(0));
            let respond = self
                .respond
                .as_mut()
                .ok_or_else(|| broken("answered twice"))?;
            let mut stream = respond.send_response(response, empty).map_err(broken)?;
            self.out = if empty {
                Out::Done
            } else {
                stream.reserve_capacity(0);
                Out::Body {
                    stream,
                    framing: head.framing,
                    left: match head.framing {
                        BodyFraming::Length(n) => n,
                        _ => 0,
                    },
                    decoder: ChunkedDecoder::new(),
                    pending: Vec::new(),
                }
            };
            return self.body(&rest).await;
        }
        // The head is out: what follows is body.
        let owned;
        if let Out::Body { pending, .. } = &mut self.out
            && !pending.is_empty()
        {
            pending.extend_from_slice(bytes);
            owned = std::mem::take(pending);
            bytes = &owned;
        }
        self.body(bytes).await
    }

    /// Completes when the client resets the stream (or the connection goes).
    pub(crate) async fn reset(&mut self) {
        let _ = poll_fn(|cx| match (&mut self.out, &mut self.respond) {
            (Out::Body { stream, .. }, _) => stream.poll_reset(cx),
            (Out::Head(_), Some(r)) => r.poll_reset(cx),
            _ => Poll::Pending,
        })
        .await;
    }

    /// Sends body bytes, framed as the head said.
    async fn body(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Out::Body {
            stream,
            framing,
            left,
            decoder,
            pending,
        } = &mut self.out
        else {
            return Ok(());
        };
        let (data, end) = match framing {
            BodyFraming::Length(_) => {
                let n = (*left).min(bytes.len() as u64) as usize;
                *left -= n as u64;
                (Bytes::copy_from_slice(&bytes[..n]), *left == 0)
            }
            BodyFraming::Chunked => {
                let mut data = Vec::with_capacity(bytes.len());
                let used = decoder
                    .feed(bytes, |d| data.extend_from_slice(d))
                    .map_err(|e| broken(format!("unusable chunked answer: {e}")))?;
                pending.extend_from_slice(&bytes[used..]);
                (Bytes::from(data), decoder.is_done())
            }
            BodyFraming::Close => (Bytes::copy_from_slice(bytes), false),
            BodyFraming::Empty => (Bytes::new(), true),
        };
        send_data(stream, data, end).await?;
        if end {
            self.out = Out::Done;
        }
        Ok(())
    }

    /// Ends the stream once the gateway is done with it. An answer cut short (the gateway
    /// stopped before its body ended) is reset, so the client knows it is incomplete, as an
    /// HTTP/1.1 client knows by the connection closing. Returns whether the client had reset
    /// the stream itself before the answer was complete.
    fn finish(&mut self) -> bool {
        match std::mem::replace(&mut self.out, Out::Done) {
            Out::Done => false,
            Out::Head(_) => {
                if let Some(mut r) = self.respond.take() {
                    let gone = poll_now(|cx| r.poll_reset(cx));
                    r.send_reset(h2::Reason::INTERNAL_ERROR);
                    return gone;
                }
                false
            }
            Out::Body {
                mut stream,
                framing,
                ..
            } => {
                let gone = poll_now(|cx| stream.poll_reset(cx));
                if framing == BodyFraming::Close && !gone {
                    let _ = stream.send_data(Bytes::new(), true);
                } else {
                    stream.send_reset(h2::Reason::INTERNAL_ERROR);
                }
                gone
            }
        }
    }
}

/// Whether a reset has already arrived (polled once, without waiting).
fn poll_now(f: impl FnOnce(&mut Context<'_>) -> Poll<Result<h2::Reason, h2::Error>>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    matches!(f(&mut cx), Poll::Ready(_))
}

/// Sends `data` as the client's window allows (h2 buffers nothing beyond what was granted
/// here, so a client that stops reading holds back the gateway, and with it the provider).
async fn send_data(
    stream: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> io::Result<()> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(broken(e)),
            None => return Err(broken("the client closed the stream")),
        };
        if granted == 0 {
            continue;
        }
        let part = data.split_to(granted.min(data.len()));
        let last = end && data.is_empty();
        stream.send_data(part, last).map_err(broken)?;
        if last {
            return Ok(());
        }
    }
    if end {
        stream.send_data(Bytes::new(), true).map_err(broken)?;
    }
    Ok(())
}
