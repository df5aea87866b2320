//! A client as the HTTP/1.1 server and the gateway see it: a cleartext or TLS connection that
//! requests are read from and answers written to, or one HTTP/2 stream that takes an answer.
//!
//! The gateway writes every answer as HTTP/1.1 bytes (head, then a body framed by
//! content-length or chunked); an HTTP/2 stream turns those into a HEADERS frame and DATA
//! frames (`super::h2::StreamOut`), so there is one way of answering for both versions.

use crate::io::{read_append, write_all, write_all_within};
use monoio::io::PrefixedReadIo;
use monoio::net::TcpStream;
use std::io;
use std::time::Duration;

/// A client's TCP connection with the bytes busbar read ahead of the TLS handshake (the
/// ClientHello it looked at for ALPN) put back in front.
pub(crate) type Replayed = PrefixedReadIo<TcpStream, io::Cursor<Vec<u8>>>;

/// A TLS session over a client's TCP connection.
pub(crate) type TlsClient = monoio_rustls::ServerTlsStream<Replayed>;

/// One client.
pub(crate) enum ClientIo {
    /// Cleartext HTTP/1.1.
    Plain(TcpStream),
    /// HTTP/1.1 in TLS terminated here (boxed: the session state is large).
    Tls(Box<TlsClient>),
    /// One HTTP/2 stream's answer (the request was read by the h2 connection).
    H2(Box<super::h2::StreamOut>),
}

impl ClientIo {
    /// Writes all of `buf`; returns it for reuse.
    pub(crate) async fn send(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            ClientIo::Plain(s) => write_all(s, buf).await,
            ClientIo::Tls(s) => write_all(s.as_mut(), buf).await,
            ClientIo::H2(s) => {
                let r = s.write(&buf).await;
                (r, buf)
            }
        }
    }

    /// As [`ClientIo::send`], giving up after `limit` (a client that stops reading must not
    /// hold a stream, its lane slot or its provider connection for ever).
    pub(crate) async fn send_within(
        &mut self,
        limit: Duration,
        buf: Vec<u8>,
    ) -> (io::Result<()>, Vec<u8>) {
        match self {
            ClientIo::Plain(s) => write_all_within(s, limit, buf).await,
            ClientIo::Tls(s) => write_all_within(s.as_mut(), limit, buf).await,
            ClientIo::H2(s) => match monoio::time::timeout(limit, s.write(&buf)).await {
                Ok(r) => (r, buf),
                Err(_) => (
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {} ms", limit.as_millis()),
                    )),
                    buf,
                ),
            },
        }
    }

    /// Reads once, appending to `buf` (HTTP/1.1 connections; an HTTP/2 stream has no bytes
    /// of its own to read).
    pub(crate) async fn read_more(
        &mut self,
        buf: Vec<u8>,
        min_spare: usize,
    ) -> (io::Result<usize>, Vec<u8>) {
        match self {
            ClientIo::Plain(s) => read_append(s, buf, min_spare).await,
            ClientIo::Tls(s) => read_append(s.as_mut(), buf, min_spare).await,
            ClientIo::H2(_) => (Err(io::ErrorKind::Unsupported.into()), buf),
        }
    }
}
