//! One client connection: read a head, read its body, hand both to the gateway, repeat while
//! the connection is kept alive.

use super::client::ClientIo;
use super::respond::ApiError;
use super::{h2, tls};
use crate::gateway;
use crate::io::read_append;
use crate::shard::Shard;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{ChunkedDecoder, HeadError, RequestHead, parse_request_head};
use monoio::io::PrefixedReadIo;
use monoio::net::TcpStream;
use monoio::time::{Instant, timeout_at};
use std::rc::Rc;
use std::time::Duration;

const READ_CHUNK: usize = 16 * 1024;

enum HeadOutcome {
    Head(RequestHead),
    /// The connection ended or idled out between requests: close quietly.
    Closed,
    /// Refuse with this error, then close.
    Refuse(ApiError),
}

/// Counts a connection open for as long as it lives.
struct Open(Rc<Shard>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open_conns.set(self.0.open_conns.get() - 1);
    }
}

/// Serves one accepted connection until it closes: the connection limit, the TLS handshake
/// (under its deadline; with mTLS the client's certificate is checked here), then HTTP/1.1 or
/// h2 by ALPN (or, on cleartext with `http2.cleartext`, by the h2 connection preface).
pub(crate) async fn serve_conn(shard: Rc<Shard>, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let routes = shard.routes();
    // Over the limit the connection is still answered (503 with Retry-After), then closed.
    let over = shard.open_conns.get() >= routes.config.limits.max_connections;
    shard.open_conns.set(shard.open_conns.get() + 1);
    let _open = Open(Rc::clone(&shard));
    if over {
        shard.refused_conns.set(shard.refused_conns.get() + 1);
    }
    let tls = routes.tls.data.clone();
    let limits = routes.config.limits.clone();
    let handshake_ms = routes
        .config
        .tls
        .as_ref()
        .map_or(0, |t| t.handshake_timeout_ms);
    let h2c = routes.config.http2.enabled && routes.config.http2.cleartext;
    drop(routes);
    let Some(config) = tls else {
        if !h2c {
            return serve_h1(shard, ClientIo::plain(tcp), Vec::new(), over).await;
        }
        // h2 with prior knowledge or HTTP/1.1: the first bytes tell.
        let mut tcp = tcp;
        let deadline = Instant::now() + Duration::from_millis(limits.header_timeout_ms);
        let mut ahead = Vec::with_capacity(READ_CHUNK);
        while ahead.len() < h2::PREFACE.len() && h2::PREFACE.starts_with(&ahead) {
            match timeout_at(deadline, read_append(&mut tcp, ahead, READ_CHUNK)).await {
                Ok((Ok(n), b)) if n > 0 => ahead = b,
                _ => return,
            }
        }
        if !ahead.starts_with(h2::PREFACE) {
            return serve_h1(shard, ClientIo::plain(tcp), ahead, over).await;
        }
        let second = super::client::watcher(&tcp);
        match tcp.try_into_poll_io() {
            Ok(poll) => h2::serve(shard, h2::Replay::new(ahead, poll), over).await,
            Err((e, _)) => tracing::warn!(shard = shard.id, "h2c: {e}"),
        }
        if let Some(second) = second {
            super::client::linger(second).await;
        }
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(handshake_ms);
    let failed = |why: String| {
        shard.tls_failures.set(shard.tls_failures.get() + 1);
        tracing::debug!(shard = shard.id, "TLS handshake failed: {why}");
    };
    let mut tcp = tcp;
    // The ClientHello says whether the client offers h2; the handshake itself is then done
    // by the TLS stack of the HTTP version it leads to, from the same bytes.
    let (hello, offers_h2) = match timeout_at(deadline, tls::read_client_hello(&mut tcp)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return failed(e),
        Err(_) => return failed("not done within its deadline".into()),
    };
    if offers_h2 && config.alpn_protocols.iter().any(|p| p == tls::ALPN_H2) {
        let second = super::client::watcher(&tcp);
        let poll = match tcp.try_into_poll_io() {
            Ok(p) => p,
            Err((e, _)) => return failed(e.to_string()),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match timeout_at(deadline, acceptor.accept(h2::Replay::new(hello, poll))).await {
            Ok(Ok(s)) => {
                h2::serve(shard, s, over).await;
                if let Some(second) = second {
                    super::client::linger(second).await;
                }
            }
            Ok(Err(e)) => failed(e.to_string()),
            Err(_) => failed("not done within its deadline".into()),
        }
        return;
    }
    let acceptor = monoio_rustls::TlsAcceptor::from(config);
    let watch = super::client::watcher(&tcp).map(std::rc::Rc::new);
    let replayed = PrefixedReadIo::new(tcp, std::io::Cursor::new(hello));
    match timeout_at(deadline, acceptor.accept(replayed)).await {
        Ok(Ok(s)) => serve_h1(shard, ClientIo::tls(s, watch), Vec::new(), over).await,
        Ok(Err(e)) => failed(e.to_string()),
        Err(_) => failed("not done within its deadline".into()),
    }
}

/// HTTP/1.1 on one connection, request after request while it is kept alive.
async fn serve_h1(shard: Rc<Shard>, mut stream: ClientIo, mut buf: Vec<u8>, over: bool) {
    buf.reserve(READ_CHUNK);
    let mut first = true;
    // Ended after an error answer, the client may still be sending: closed gently.
    let refused = loop {
        let head = match read_head(&shard, &mut stream, &mut buf, first).await {
            HeadOutcome::Head(h) => h,
            HeadOutcome::Closed => break false,
            HeadOutcome::Refuse(e) => {
                let _ = stream.send(e.render(false)).await;
                break true;
            }
        };
        first = false;
        buf.drain(..head.head_len);
        if over {
            let e = busy(&shard).for_protocol(gateway::ingress::protocol_of(&head));
            let _ = stream.send(e.render(false)).await;
            break true;
        }
        shard.in_flight.set(shard.in_flight.get() + 1);
        let next = serve_request(&shard, &mut stream, &mut buf, &head).await;
        shard.in_flight.set(shard.in_flight.get() - 1);
        match next {
            Next::KeepAlive if !shard.draining.get() => {}
            Next::KeepAlive | Next::Close => break false,
            Next::Refused => break true,
        }
    };
    if refused {
        stream.close_gently().await;
    }
}

/// How a connection goes on after a request.
enum Next {
    KeepAlive,
    Close,
    /// Its body was refused (too large, too slow, malformed) and answered with an error.
    Refused,
}

/// A request body that did not come in time: past its whole deadline, or a gap between reads
/// longer than allowed.
pub(super) fn body_too_slow(limits: &busbar_core::config::Limits, deadline: Instant) -> ApiError {
    let message = if Instant::now() >= deadline {
        format!(
            "request body not received within {} ms",
            limits.body_timeout_ms
        )
    } else {
        format!(
            "no request body bytes for {} ms",
            limits.body_gap_timeout_ms
        )
    };
    ApiError::new(408, ErrorKind::InvalidRequest, message)
}

/// What a connection over the shard's limit is answered.
pub(super) fn busy(shard: &Shard) -> ApiError {
    ApiError::new(
        503,
        ErrorKind::Overloaded,
        format!(
            "busbar is at its limit of {} connections on this core; retry shortly",
            shard.routes().config.limits.max_connections
        ),
    )
    .header("retry-after", "1".into())
}

async fn serve_request(
    shard: &Rc<Shard>,
    stream: &mut ClientIo,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> Next {
    let body = match read_body(shard, stream, buf, head).await {
        Ok(b) => b,
        Err(Some(e)) => {
            let e = e.for_protocol(gateway::ingress::protocol_of(head));
            let _ = stream.send(e.render(false)).await;
            return Next::Refused;
        }
        Err(None) => return Next::Close,
    };
    let keep_alive = head.keep_alive && !shard.draining.get();
    if gateway::handle(shard, stream, head, body, keep_alive).await && keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

async fn read_head(
    shard: &Shard,
    stream: &mut ClientIo,
    buf: &mut Vec<u8>,
    first: bool,
) -> HeadOutcome {
    let routes = shard.routes();
    let limits = &routes.config.limits;
    let header_timeout = Duration::from_millis(limits.header_timeout_ms);
    let wait = if first {
        header_timeout
    } else {
        Duration::from_millis(limits.idle_timeout_ms)
    };
    let idle_deadline = Instant::now() + wait;
    let mut head_deadline = (!buf.is_empty()).then(|| Instant::now() + header_timeout);
    loop {
        if !buf.is_empty() {
            match parse_request_head(buf, limits.max_head_bytes, limits.max_headers) {
                Ok(Some(h)) => return HeadOutcome::Head(h),
                Ok(None) => {}
                Err(e) => return HeadOutcome::Refuse(head_error(e)),
            }
        }
        if buf.is_empty() && shard.draining.get() {
            return HeadOutcome::Closed;
        }
        let deadline = head_deadline.unwrap_or(idle_deadline);
        let taken = std::mem::take(buf);
        match timeout_at(deadline, stream.read_more(taken, READ_CHUNK)).await {
            Ok((Ok(0), _)) | Ok((Err(_), _)) => return HeadOutcome::Closed,
            Ok((Ok(_), b)) => {
                *buf = b;
                head_deadline.get_or_insert_with(|| Instant::now() + header_timeout);
            }
            Err(_) if head_deadline.is_none() => return HeadOutcome::Closed,
            Err(_) => {
                return HeadOutcome::Refuse(ApiError::new(
                    408,
                    ErrorKind::InvalidRequest,
                    format!(
                        "request head not received within {} ms",
                        limits.header_timeout_ms
                    ),
                ));
            }
        }
    }
}

fn head_error(e: HeadError) -> ApiError {
    let kind = if e.status() == 431 {
        ErrorKind::TooLarge
    } else {
        ErrorKind::InvalidRequest
    };
    ApiError::new(e.status(), kind, e.to_string())
}

/// Reads the body into its own buffer. `Err(None)`: the client went away.
async fn read_body(
    shard: &Shard,
    stream: &mut ClientIo,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> Result<Vec<u8>, Option<ApiError>> {
    let routes = shard.routes();
    let limits = &routes.config.limits;
    let max = limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            413,
            ErrorKind::TooLarge,
            format!("request body is larger than the limit of {max} bytes"),
        )
    };
    if !head.has_body() {
        return Ok(Vec::new());
    }
    if head.content_length.is_some_and(|n| n > max as u64) {
        return Err(Some(too_large()));
    }
    let deadline = Instant::now() + Duration::from_millis(limits.body_timeout_ms);
    let gap = Duration::from_millis(limits.body_gap_timeout_ms);
    // Each read waits at most until the body's deadline or the gap allowed between reads.
    let until = || deadline.min(Instant::now() + gap);
    let slow = || body_too_slow(limits, deadline);
    if head.expect_continue && buf.is_empty() {
        let (res, _) = stream.send(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await;
        res.map_err(|_| None)?;
    }

    if let Some(n) = head.content_length {
        let n = n as usize;
        while buf.len() < n {
            let taken = std::mem::take(buf);
            let want = (n - taken.len()).min(1 << 20);
            match timeout_at(until(), stream.read_more(taken, want)).await {
                Ok((Ok(0), _)) | Ok((Err(_), _)) => return Err(None),
                Ok((Ok(_), b)) => *buf = b,
                Err(_) => return Err(Some(slow())),
            }
        }
        let rest = buf.split_off(n);
        return Ok(std::mem::replace(buf, rest));
    }

    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    loop {
        let mut over = false;
        let used = decoder
            .feed(buf, |data| {
                if body.len() + data.len() > max {
                    over = true;
                } else {
                    body.extend_from_slice(data);
                }
            })
            .map_err(|e| {
                Some(ApiError::new(
                    400,
                    ErrorKind::InvalidRequest,
                    format!("malformed chunked body: {e}"),
                ))
            })?;
        if over {
            return Err(Some(too_large()));
        }
        buf.drain(..used);
        if decoder.is_done() {
            return Ok(body);
        }
        let taken = std::mem::take(buf);
        match timeout_at(until(), stream.read_more(taken, READ_CHUNK)).await {
            Ok((Ok(0), _)) | Ok((Err(_), _)) => return Err(None),
            Ok((Ok(_), b)) => *buf = b,
            Err(_) => return Err(Some(slow())),
        }
    }
}
