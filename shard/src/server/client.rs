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
    /// HTTP/1.1 in TLS terminated here (boxed: the session state is large), with a second
    /// descriptor of its socket to watch for the client going away (the TLS stream cannot
    /// lend its socket out).
    Tls(Box<TlsClient>, Option<TcpStream>),
    /// One HTTP/2 stream's answer (the request was read by the h2 connection).
    H2(Box<super::h2::StreamOut>),
}

impl ClientIo {
    /// Writes all of `buf`; returns it for reuse.
    pub(crate) async fn send(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            ClientIo::Plain(s) => write_all(s, buf).await,
            ClientIo::Tls(s, _) => write_all(s.as_mut(), buf).await,
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
            ClientIo::Tls(s, _) => write_all_within(s.as_mut(), limit, buf).await,
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
            ClientIo::Tls(s, _) => read_append(s.as_mut(), buf, min_spare).await,
            ClientIo::H2(_) => (Err(io::ErrorKind::Unsupported.into()), buf),
        }
    }

    /// Completes when the client has gone away (closed its connection, or reset its h2
    /// stream); never completes while it is still there. Awaited beside a provider read, so an
    /// answer nobody will read stops at once, not at its next write.
    pub(crate) async fn gone(&mut self) {
        match self {
            ClientIo::Plain(s) => socket_closed(s).await,
            ClientIo::Tls(_, Some(watch)) => socket_closed(watch).await,
            ClientIo::Tls(_, None) => std::future::pending().await,
            ClientIo::H2(s) => s.reset().await,
        }
    }

    /// `fut`, unless the client goes away first (`None`).
    pub(crate) async fn unless_gone<T>(
        &mut self,
        fut: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        monoio::select! {
            out = fut => Some(out),
            _ = self.gone() => None,
        }
    }
}

/// A second descriptor of `tcp`'s socket, for [`ClientIo::gone`] once TLS owns the first.
pub(crate) fn watcher(tcp: &TcpStream) -> Option<TcpStream> {
    use std::os::fd::{AsRawFd, FromRawFd};
    #[allow(unsafe_code)]
    // SAFETY: `tcp` is open for the whole call, so its descriptor is valid to duplicate; the
    // duplicate is a new descriptor that nothing else owns, handed to the std stream that
    // closes it.
    let dup = unsafe { libc::dup(tcp.as_raw_fd()) };
    if dup < 0 {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: `dup` was just returned by dup(2), is open, and is owned by nothing else.
    let std = unsafe { std::net::TcpStream::from_raw_fd(dup) };
    TcpStream::from_std(std).ok()
}

/// Completes once the peer has closed or reset the socket. Bytes waiting to be read (a
/// pipelined request) say it is still there: from then on this never completes.
async fn socket_closed(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    loop {
        if tcp.readable(false).await.is_err() {
            return;
        }
        let mut byte = [0u8; 1];
        #[allow(unsafe_code)]
        // SAFETY: the descriptor is open (borrowed from `tcp` for the call) and `byte` is a
        // valid one-byte buffer; MSG_PEEK leaves the data where it is, MSG_DONTWAIT never
        // blocks the shard.
        let n = unsafe {
            libc::recv(
                tcp.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return,
            n if n > 0 => return std::future::pending().await,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
        }
    }
}
