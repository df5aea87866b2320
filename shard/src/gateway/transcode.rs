//! Relaying a provider's stream to a client of another protocol: each upstream read goes
//! through the codec's transcoder (framer -> parser -> writer) and whatever client events it
//! completes are written at once, as one HTTP chunk. Nothing is buffered beyond one event.
//!
//! ```text
//!   upstream body (Content-Length | chunked | until close) --de-frame HTTP-->
//!     Transcoder::feed --> client bytes --> one chunk to the client, per read
//!   end of body --> Transcoder::finish (an unfinished stream ends with an error event)
//! ```

use crate::io::write_all;
use crate::shard::Shard;
use crate::upstream::Response;
use busbar_codec::http1::{BodyFraming, ChunkedDecoder};
use busbar_codec::stream::Transcoder;
use monoio::net::TcpStream;

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

/// Streams `resp` (a 2xx) to the client through `t`. Returns whether the client connection can
/// carry another request.
pub(super) async fn stream(
    shard: &Shard,
    down: Downstream<'_>,
    provider: usize,
    resp: Response,
    mut t: Transcoder,
    extra_headers: &[(&str, String)],
) -> bool {
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
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nserver: busbar\r\ncontent-type: ");
    out.extend_from_slice(t.content_type().as_bytes());
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

    let mut decoder = ChunkedDecoder::new();
    let mut remaining = match head.framing {
        BodyFraming::Length(n) => n,
        _ => u64::MAX,
    };
    let mut data = Vec::new();
    let mut input = buffered;
    let mut clean = head.keep_alive;
    let mut events = Vec::new();
    loop {
        data.clear();
        let done = match head.framing {
            BodyFraming::Empty => true,
            BodyFraming::Length(_) => {
                let take = (remaining as usize).min(input.len());
                data.extend_from_slice(&input[..take]);
                remaining -= take as u64;
                clean &= take == input.len();
                remaining == 0
            }
            BodyFraming::Chunked => match decoder.feed(&input, |d| data.extend_from_slice(d)) {
                Ok(used) => {
                    clean &= used == input.len();
                    decoder.is_done()
                }
                Err(_) => {
                    clean = false;
                    true
                }
            },
            BodyFraming::Close => {
                data.extend_from_slice(&input);
                clean = false;
                false
            }
        };
        events.clear();
        if t.feed(&data, &mut events).is_err() {
            // An upstream event over the limit or malformed framing: end the stream with an
            // error event rather than relay garbage.
            clean = false;
            t.finish(&mut events);
            chunk(&mut out, &events, http11);
            break;
        }
        chunk(&mut out, &events, http11);
        if !out.is_empty() {
            let (res, o) = write_all(client, std::mem::take(&mut out)).await;
            if res.is_err() {
                return false;
            }
            out = o;
            out.clear();
        }
        if done {
            events.clear();
            t.finish(&mut events);
            chunk(&mut out, &events, http11);
            break;
        }
        input.clear();
        let (res, b) = shard.upstream.read_body(&mut upstream, input).await;
        input = b;
        match res {
            Ok(n) if n > 0 => {}
            _ => {
                // The provider went away (or ended a close-delimited body): finish the stream,
                // with an error event if it was not complete.
                clean = false;
                events.clear();
                t.finish(&mut events);
                chunk(&mut out, &events, http11);
                break;
            }
        }
    }
    if http11 {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if write_all(client, out).await.0.is_err() {
        return false;
    }
    if clean && t.is_complete() {
        shard.upstream.checkin(provider, upstream);
    }
    keep
}
