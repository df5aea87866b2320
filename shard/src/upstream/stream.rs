//! An upstream connection (or, for h2, one stream of a shared connection) behind one type, so
//! the pool and the relay do not care which: they write HTTP/1.1 request bytes and read the
//! response body.

use crate::io::{read_append, write_all};
use bytes::Bytes;
use monoio::net::TcpStream;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio_rustls::ClientTlsStream;
use std::future::poll_fn;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// TLS with a poll-style socket: how an origin that was offered h2 but chose HTTP/1.1 is
/// spoken to (the handshake that offered h2 was made on this stack).
pub(crate) type PollTls = tokio_rustls::client::TlsStream<TcpStreamPoll>;

/// One connection to a provider.
pub(crate) enum UpstreamStream {
    /// `http://`
    Plain(TcpStream),
    /// `https://` with HTTP/1.1 only offered.
    Tls(Box<ClientTlsStream<TcpStream>>),
    /// `https://`: h2 was offered, the provider chose HTTP/1.1.
    PollTls(Box<PollTls>),
    /// The body of one h2 response; its connection is shared and stays with the origin.
    H2(Box<H2Body>),
}

/// An h2 response body, read DATA frame by DATA frame, the window given back as it is read.
pub(crate) struct H2Body {
    /// Counts the stream on its connection while the body is read.
    pub(crate) _slot: super::StreamSlot,
    pub(crate) body: h2::RecvStream,
    /// Bytes of a frame not yet handed out (a frame larger than the reader's spare room).
    pub(crate) rest: Bytes,
}

impl UpstreamStream {
    /// Writes all of `buf` (HTTP/1.1 connections only).
    pub(crate) async fn send(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            UpstreamStream::Plain(s) => write_all(s, buf).await,
            UpstreamStream::Tls(s) => write_all(s.as_mut(), buf).await,
            UpstreamStream::PollTls(s) => {
                let r = s.write_all(&buf).await;
                let r = match r {
                    Ok(()) => s.flush().await,
                    Err(e) => Err(e),
                };
                (r, buf)
            }
            UpstreamStream::H2(_) => (Err(io::ErrorKind::Unsupported.into()), buf),
        }
    }

    /// Reads once, appending to `buf` (at least `min_spare` bytes of room); `Ok(0)` at the end.
    pub(crate) async fn read_more(
        &mut self,
        mut buf: Vec<u8>,
        min_spare: usize,
    ) -> (io::Result<usize>, Vec<u8>) {
        match self {
            UpstreamStream::Plain(s) => read_append(s, buf, min_spare).await,
            UpstreamStream::Tls(s) => read_append(s.as_mut(), buf, min_spare).await,
            UpstreamStream::PollTls(s) => {
                buf.reserve(min_spare);
                let r = s.read_buf(&mut buf).await;
                (r, buf)
            }
            UpstreamStream::H2(b) => {
                // An empty DATA frame is not the end: wait for one with bytes, or the end.
                while b.rest.is_empty() {
                    match poll_fn(|cx| b.body.poll_data(cx)).await {
                        None => return (Ok(0), buf),
                        Some(Ok(data)) => {
                            let _ = b.body.flow_control().release_capacity(data.len());
                            b.rest = data;
                        }
                        Some(Err(e)) => return (Err(io::Error::other(e)), buf),
                    }
                }
                let n = b.rest.len().min(min_spare.max(16 * 1024));
                buf.extend_from_slice(&b.rest.split_to(n));
                (Ok(n), buf)
            }
        }
    }
}
