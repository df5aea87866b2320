//! One client connection: read a head, read its body, hand both to the gateway, repeat while
//! the connection is kept alive.

use super::respond::ApiError;
use crate::gateway;
use crate::io::{read_append, write_all};
use crate::shard::Shard;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{ChunkedDecoder, HeadError, RequestHead, parse_request_head};
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

/// Serves one accepted connection until it closes.
pub(crate) async fn serve_conn(shard: Rc<Shard>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    shard.open_conns.set(shard.open_conns.get() + 1);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut first = true;
    loop {
        let head = match read_head(&shard, &mut stream, &mut buf, first).await {
            HeadOutcome::Head(h) => h,
            HeadOutcome::Closed => break,
            HeadOutcome::Refuse(e) => {
                let _ = write_all(&mut stream, e.render(false)).await;
                break;
            }
        };
        first = false;
        buf.drain(..head.head_len);
        shard.in_flight.set(shard.in_flight.get() + 1);
        let keep = serve_request(&shard, &mut stream, &mut buf, &head).await;
        shard.in_flight.set(shard.in_flight.get() - 1);
        if !keep || shard.draining.get() {
            break;
        }
    }
    shard.open_conns.set(shard.open_conns.get() - 1);
}

async fn serve_request(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> bool {
    let body = match read_body(shard, stream, buf, head).await {
        Ok(b) => b,
        Err(Some(e)) => {
            let e = e.for_protocol(gateway::ingress::protocol_of(head));
            let _ = write_all(stream, e.render(false)).await;
            return false;
        }
        Err(None) => return false,
    };
    let keep_alive = head.keep_alive && !shard.draining.get();
    gateway::handle(shard, stream, head, body, keep_alive).await && keep_alive
}

async fn read_head(
    shard: &Shard,
    stream: &mut TcpStream,
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
        match timeout_at(deadline, read_append(stream, taken, READ_CHUNK)).await {
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
    stream: &mut TcpStream,
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
    let slow = || {
        ApiError::new(
            408,
            ErrorKind::InvalidRequest,
            format!(
                "request body not received within {} ms",
                limits.body_timeout_ms
            ),
        )
    };
    if head.expect_continue && buf.is_empty() {
        let (res, _) = write_all(stream, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await;
        res.map_err(|_| None)?;
    }

    if let Some(n) = head.content_length {
        let n = n as usize;
        while buf.len() < n {
            let taken = std::mem::take(buf);
            let want = (n - taken.len()).min(1 << 20);
            match timeout_at(deadline, read_append(stream, taken, want)).await {
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
        match timeout_at(deadline, read_append(stream, taken, READ_CHUNK)).await {
            Ok((Ok(0), _)) | Ok((Err(_), _)) => return Err(None),
            Ok((Ok(_), b)) => *buf = b,
            Err(_) => return Err(Some(slow())),
        }
    }
}
