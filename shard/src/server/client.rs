//! A client as the HTTP/1.1 server and the gateway see it: a cleartext or TLS connection that
//! requests are read from and answers written to, or one HTTP/2 stream that takes an answer.
//!
//! The gateway writes every answer as HTTP/1.1 bytes (head, then a body framed by
//! content-length or chunked); an HTTP/2 stream turns those into a HEADERS frame and DATA
//! frames (`super::h2::StreamOut`), so there is one way of answering for both versions.

use crate::io::{read_append, write_all, write_all_within};
use monoio::io::{AsyncReadRent, AsyncWriteRent, PrefixedReadIo};
use monoio::net::TcpStream;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// A client's TCP connection with the bytes busbar read ahead of the TLS handshake (the
/// ClientHello it looked at for ALPN) put back in front.
pub(crate) type Replayed = PrefixedReadIo<TcpStream, io::Cursor<Vec<u8>>>;

/// A TLS session over a client's TCP connection.
pub(crate) type TlsClient = monoio_rustls::ServerTlsStream<Replayed>;

/// One client: its connection (or h2 stream) and what the answer being written carries.
pub(crate) struct ClientIo {
    io: Io,
    answer: Answer,
}

/// What the current answer's first write gets, and when it went.
#[derive(Default)]
struct Answer {
    /// `x-request-id`, put into the answer's head at its first write.
    request_id: Option<String>,
    /// When the answer's first bytes were written.
    first_byte: Option<monoio::time::Instant>,
}

/// The connection itself.
enum Io {
    /// Cleartext HTTP/1.1, with a second descriptor of its socket (made the first time an
    /// answer watches for the client going away, then kept for the connection's life).
    Plain(TcpStream, Option<Rc<TcpStream>>),
    /// HTTP/1.1 in TLS terminated here (boxed: the session state is large), with a second
    /// descriptor of its socket to watch for the client going away (the TLS stream cannot
    /// lend its socket out).
    Tls(Box<TlsClient>, Option<Rc<TcpStream>>),
    /// One HTTP/2 stream's answer (the request was read by the h2 connection).
    H2(Box<super::h2::StreamOut>),
}

/// Watches one answer's client for going away, beside each provider read of that answer.
/// Armed once per answer, not per read: on a socket it is one readiness wait for the whole
/// answer (a stream of a thousand events costs one wait, not a thousand armed and cancelled).
#[derive(Default)]
pub(crate) enum Watch {
    /// Not armed yet: the first read of the answer arms it (an answer read whole with its
    /// head never waits, and never pays for a watch).
    #[default]
    Unarmed,
    /// The client's socket closing (a second descriptor of it, shared with the connection).
    Socket(Pin<Box<dyn Future<Output = ()>>>),
    /// An h2 stream's reset, asked of the stream itself at each read (no syscall).
    Stream,
    /// Nothing to watch (no second descriptor could be had): the answer's next write tells.
    Never,
    /// The client has gone.
    Gone,
}

impl ClientIo {
    fn new(io: Io) -> Self {
        Self {
            io,
            answer: Answer::default(),
        }
    }

    /// Cleartext HTTP/1.1.
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self::new(Io::Plain(tcp, None))
    }

    /// HTTP/1.1 in TLS, with a second descriptor of its socket when one could be had.
    pub(crate) fn tls(s: TlsClient, watch: Option<Rc<TcpStream>>) -> Self {
        Self::new(Io::Tls(Box::new(s), watch))
    }

    /// One h2 stream's answer.
    pub(crate) fn h2(out: super::h2::StreamOut) -> Self {
        Self::new(Io::H2(Box::new(out)))
    }

    /// The h2 stream, when this is one.
    pub(crate) fn h2_stream(&mut self) -> Option<&mut super::h2::StreamOut> {
        match &mut self.io {
            Io::H2(s) => Some(s),
            _ => None,
        }
    }

    /// A new answer begins: its head will carry `x-request-id: id`.
    pub(crate) fn begin_answer(&mut self, request_id: String) {
        self.answer = Answer {
            request_id: Some(request_id),
            first_byte: None,
        };
    }

    /// When the current answer's first bytes were written (`None`: not yet).
    pub(crate) fn first_byte(&self) -> Option<monoio::time::Instant> {
        self.answer.first_byte
    }

    /// The answer's first write: the request id spliced in after the status line.
    fn mark(&mut self, buf: &mut Vec<u8>) {
        if self.answer.first_byte.is_some() || buf.is_empty() {
            return;
        }
        self.answer.first_byte = Some(monoio::time::Instant::now());
        if let Some(id) = self.answer.request_id.take()
            && buf.starts_with(b"HTTP/1.1 ")
            && let Some(eol) = memchr::memmem::find(buf, b"\r\n")
        {
            let line = format!("x-request-id: {id}\r\n");
            buf.splice(eol + 2..eol + 2, line.into_bytes());
        }
    }

    /// Writes all of `buf`; returns it for reuse.
    pub(crate) async fn send(&mut self, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.mark(&mut buf);
        match &mut self.io {
            Io::Plain(s, _) => write_all(s, buf).await,
            Io::Tls(s, _) => write_all(s.as_mut(), buf).await,
            Io::H2(s) => {
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
        mut buf: Vec<u8>,
    ) -> (io::Result<()>, Vec<u8>) {
        self.mark(&mut buf);
        match &mut self.io {
            Io::Plain(s, _) => write_all_within(s, limit, buf).await,
            Io::Tls(s, _) => write_all_within(s.as_mut(), limit, buf).await,
            Io::H2(s) => match monoio::time::timeout(limit, s.write(&buf)).await {
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
        match &mut self.io {
            Io::Plain(s, _) => read_append(s, buf, min_spare).await,
            Io::Tls(s, _) => read_append(s.as_mut(), buf, min_spare).await,
            Io::H2(_) => (Err(io::ErrorKind::Unsupported.into()), buf),
        }
    }

    /// A watch for this client going away (see [`ClientIo::unless_gone`]).
    fn arm(&mut self) -> Watch {
        let fd = match &mut self.io {
            Io::Plain(s, w) => {
                if w.is_none() {
                    *w = watcher(s).map(Rc::new);
                }
                w.clone()
            }
            Io::Tls(_, w) => w.clone(),
            Io::H2(_) => return Watch::Stream,
        };
        match fd {
            Some(fd) => Watch::Socket(Box::pin(async move { socket_closed(&fd).await })),
            None => Watch::Never,
        }
    }

    /// `fut`, unless the client goes away first (`None`). Awaited beside a provider read, so
    /// an answer nobody will read stops at once, not at its next write.
    pub(crate) async fn unless_gone<T>(
        &mut self,
        watch: &mut Watch,
        fut: impl Future<Output = T>,
    ) -> Option<T> {
        if let Watch::Unarmed = watch {
            *watch = self.arm();
        }
        let out = match (&mut *watch, &mut self.io) {
            (Watch::Socket(closed), _) => {
                monoio::select! {
                    out = fut => Some(out),
                    _ = closed.as_mut() => None,
                }
            }
            (Watch::Stream, Io::H2(s)) => {
                monoio::select! {
                    out = fut => Some(out),
                    _ = s.reset() => None,
                }
            }
            (Watch::Gone, _) => None,
            _ => Some(fut.await),
        };
        if out.is_none() {
            *watch = Watch::Gone;
        }
        out
    }
}

/// A second descriptor of `tcp`'s socket: to watch for the client going away once TLS owns the
/// first, and to close the connection gently ([`linger`]) once h2 has dropped it.
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

impl ClientIo {
    /// Closes a connection busbar ends after an error answer ([`linger`]): the client may
    /// still be sending what busbar refused to read.
    pub(crate) async fn close_gently(self) {
        let tcp = match self.io {
            Io::Plain(s, _) => s,
            Io::Tls(mut s, w) => {
                // The TLS close_notify first, then the socket through its second descriptor.
                let _ = monoio::time::timeout(LINGER, s.shutdown()).await;
                drop(s);
                match w.and_then(|w| Rc::try_unwrap(w).ok()) {
                    Some(w) => w,
                    None => return,
                }
            }
            Io::H2(_) => return,
        };
        linger(tcp).await;
    }
}

/// Longest a closing connection is read from and its bytes dropped ([`linger`]).
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes a closing connection has read and dropped.
const LINGER_BYTES: usize = 1 << 20;

/// Closes a connection gently: what was written goes out and is followed by a FIN; when the
/// client has sent bytes busbar has not read (a body it refused, the rest of an h2 frame),
/// they are read and dropped for a short while (at most [`LINGER`], [`LINGER_BYTES`]). Closed
/// with unread bytes, a socket is reset, and the reset throws away the answer not yet sent
/// (a 413, a GOAWAY). With nothing unread it closes at once: a slow client that sends its
/// next byte later gets a reset then, after its answer went out.
pub(crate) async fn linger(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() || !matches!(peek(&tcp), Peek::Bytes) {
        return;
    }
    let deadline = monoio::time::Instant::now() + LINGER;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        match monoio::time::timeout_at(deadline, tcp.read(buf)).await {
            Ok((Ok(n), b)) if n > 0 => {
                dropped += n;
                buf = b;
            }
            _ => return,
        }
    }
}

/// Completes once the peer has closed or reset the socket. Bytes waiting to be read (a
/// pipelined request) say it is still there: from then on this never completes.
async fn socket_closed(tcp: &TcpStream) {
    loop {
        if tcp.readable(false).await.is_err() {
            return;
        }
        match peek(tcp) {
            Peek::Closed => return,
            Peek::Bytes => return std::future::pending().await,
            Peek::Nothing => {}
        }
    }
}

/// What a socket holds for reading, asked without waiting.
enum Peek {
    /// Bytes are waiting.
    Bytes,
    /// Nothing yet.
    Nothing,
    /// The peer closed or reset it (or it failed).
    Closed,
}

fn peek(tcp: &TcpStream) -> Peek {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    #[allow(unsafe_code)]
    // SAFETY: the descriptor is open (borrowed from `tcp` for the call) and `byte` is a valid
    // one-byte buffer; MSG_PEEK leaves the data where it is, MSG_DONTWAIT never blocks the
    // shard.
    let n = unsafe {
        libc::recv(
            tcp.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Peek::Closed,
        n if n > 0 => Peek::Bytes,
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                Peek::Nothing
            } else {
                Peek::Closed
            }
        }
    }
}
