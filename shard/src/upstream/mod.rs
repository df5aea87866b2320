//! The upstream HTTP/1.1 client of one shard: a keep-alive pool per provider origin, plain or
//! TLS connections, deadlines for connect and for the response head.
//!
//! ```text
//!   exchange(): idle conn from the pool? -- write request -- read head (deadline)
//!                 \-- none / stale --> connect (deadline: TCP + TLS) --/
//!   the caller relays the body and hands the connection back with `checkin` if reusable
//! ```
//!
//! A pooled connection the provider closed while idle shows up as a write error or an EOF
//! before any byte of a response; that exchange is retried once on a fresh connection. Nothing
//! else is retried here: failover between providers is the gateway's decision.

mod stream;
pub(crate) mod tls;

pub(crate) use stream::UpstreamStream;

use crate::io::{BufPool, read_append, write_all};
use busbar_codec::http1::{
    BodyFraming, ChunkedDecoder, ResponseError, ResponseHead, parse_response_head,
};
use busbar_core::config::{Config, Endpoint, UpstreamSettings};
use busbar_core::fault::Transport;
use monoio::net::TcpStream;
use monoio::time::{Instant, timeout, timeout_at};
use rustls_pki_types::ServerName;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange with a provider failed before its response head arrived.
#[derive(Debug, Error)]
pub(crate) enum UpstreamError {
    /// The host has no known address (DNS failed or has not answered yet).
    #[error("cannot resolve {0}")]
    NoAddress(String),
    /// TCP connect failed.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// TCP connect or TLS handshake did not finish in time.
    #[error("connecting to {0} timed out after {1} ms")]
    ConnectTimeout(String, u64),
    /// The TLS handshake failed.
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(String, String),
    /// Writing the request failed.
    #[error("sending the request to {0} failed: {1}")]
    Send(String, std::io::Error),
    /// No response head within the deadline.
    #[error("{0} did not answer within {1} ms")]
    HeadTimeout(String, u64),
    /// The request could not be written within the deadline (the provider does not read).
    #[error("{0} did not take the request within {1} ms")]
    SendTimeout(String, u64),
    /// The connection closed or failed before a whole response head arrived.
    #[error("{0} closed the connection before answering")]
    Closed(String),
    /// The response head was not valid HTTP/1.1.
    #[error("{1} (from {0})")]
    BadHead(String, ResponseError),
}

impl UpstreamError {
    /// Whether this is a timeout (504) rather than a failure (502).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout(..)
                | UpstreamError::HeadTimeout(..)
                | UpstreamError::SendTimeout(..)
        )
    }

    /// What kind of transport failure it is, for classification.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            UpstreamError::NoAddress(_) => Transport::NoAddress,
            UpstreamError::Connect(..) => Transport::Connect,
            UpstreamError::ConnectTimeout(..) => Transport::ConnectTimeout,
            UpstreamError::Tls(..) => Transport::Tls,
            UpstreamError::Send(..) => Transport::Send,
            UpstreamError::HeadTimeout(..) | UpstreamError::SendTimeout(..) => {
                Transport::HeadTimeout
            }
            UpstreamError::Closed(_) => Transport::Closed,
            UpstreamError::BadHead(..) => Transport::BadHead,
        }
    }
}

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

struct Origin {
    label: String,
    host_header: String,
    server_name: Option<ServerName<'static>>,
    addrs: RefCell<Vec<SocketAddr>>,
    next_addr: Cell<usize>,
    idle: RefCell<Vec<Idle>>,
}

/// monoio-rustls's error says only "io error"; the reason is inside it.
fn tls_reason(e: monoio_rustls::TlsError) -> String {
    match e {
        monoio_rustls::TlsError::Io(e) => e.to_string(),
        monoio_rustls::TlsError::Rustls(e) => e.to_string(),
    }
}

/// A response whose head has arrived; the body follows on `stream`.
pub(crate) struct Response {
    pub(crate) stream: UpstreamStream,
    pub(crate) head: ResponseHead,
    /// Bytes read after the head (the start of the body).
    pub(crate) buffered: Vec<u8>,
}

/// Per-shard upstream state.
pub(crate) struct Upstream {
    /// I/O buffers for requests and responses on this shard.
    pub(crate) buffers: BufPool,
    settings: UpstreamSettings,
    tls: monoio_rustls::TlsConnector,
    origins: Vec<Option<Origin>>,
}

impl Upstream {
    pub(crate) fn new(
        config: &Config,
        tls: Arc<rustls::ClientConfig>,
        addrs: Vec<Vec<SocketAddr>>,
    ) -> Self {
        let endpoints = config
            .providers
            .iter()
            .map(|p| (p.name.as_str(), &p.endpoint))
            .chain(
                crate::hooks::webhook_urls(config)
                    .into_iter()
                    .map(|u| ("webhook", &u.endpoint)),
            );
        let origins = endpoints
            .zip(addrs.into_iter().chain(std::iter::repeat_with(Vec::new)))
            .map(|((name, endpoint), addrs)| match endpoint {
                Endpoint::Http {
                    tls, host, port, ..
                } => {
                    let default_port = if *tls { 443 } else { 80 };
                    let host_part = if host.contains(':') {
                        format!("[{host}]")
                    } else {
                        host.clone()
                    };
                    let host_header = if *port == default_port {
                        host_part.clone()
                    } else {
                        format!("{host_part}:{port}")
                    };
                    Some(Origin {
                        label: format!(
                            "{name} ({}{host_header})",
                            if *tls { "https://" } else { "http://" }
                        ),
                        host_header,
                        server_name: if *tls {
                            ServerName::try_from(host.clone()).ok()
                        } else {
                            None
                        },
                        addrs: RefCell::new(addrs),
                        next_addr: Cell::new(0),
                        idle: RefCell::new(Vec::new()),
                    })
                }
                Endpoint::Mock(_) => None,
            })
            .collect();
        Self {
            buffers: BufPool::new(READ_CHUNK, 1024),
            settings: config.upstream.clone(),
            tls: monoio_rustls::TlsConnector::from(tls),
            origins,
        }
    }

    fn origin(&self, provider: usize) -> &Origin {
        // Only called for providers with an HTTP endpoint; the gateway dispatches mocks itself.
        self.origins[provider]
            .as_ref()
            .expect("HTTP provider has an origin")
    }

    /// The `Host` header value for a provider.
    pub(crate) fn host_header(&self, provider: usize) -> &str {
        &self.origin(provider).host_header
    }

    pub(crate) fn set_addrs(&self, provider: usize, addrs: Vec<SocketAddr>) {
        if let Some(Some(o)) = self.origins.get(provider) {
            *o.addrs.borrow_mut() = addrs;
            // Connections to old addresses stay usable until they idle out.
        }
    }

    /// Drops idle connections older than the keep-alive time.
    pub(crate) fn sweep(&self, now: Instant) {
        let max = Duration::from_millis(self.settings.pool_idle_timeout_ms);
        for o in self.origins.iter().flatten() {
            o.idle
                .borrow_mut()
                .retain(|i| now.saturating_duration_since(i.since) < max);
        }
    }

    /// Returns a connection whose response was read to its end, for reuse.
    pub(crate) fn checkin(&self, provider: usize, stream: UpstreamStream) {
        let o = self.origin(provider);
        let mut idle = o.idle.borrow_mut();
        if idle.len() < self.settings.max_idle_per_origin {
            idle.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    fn checkout(&self, provider: usize) -> Option<UpstreamStream> {
        let o = self.origin(provider);
        let max = Duration::from_millis(self.settings.pool_idle_timeout_ms);
        let mut idle = o.idle.borrow_mut();
        while let Some(i) = idle.pop() {
            if i.since.elapsed() < max {
                return Some(i.stream);
            }
        }
        None
    }

    async fn connect(
        &self,
        provider: usize,
        latest: Instant,
    ) -> Result<UpstreamStream, UpstreamError> {
        let o = self.origin(provider);
        let addrs = o.addrs.borrow().clone();
        if addrs.is_empty() {
            return Err(UpstreamError::NoAddress(o.label.clone()));
        }
        let now = Instant::now();
        let deadline = (now + Duration::from_millis(self.settings.connect_timeout_ms)).min(latest);
        let ms = deadline.saturating_duration_since(now).as_millis() as u64;
        // Start at the next address in rotation; on failure try the others.
        let start = o.next_addr.get();
        o.next_addr.set(start.wrapping_add(1));
        let mut last = None;
        for k in 0..addrs.len() {
            let addr = addrs[(start + k) % addrs.len()];
            match timeout_at(deadline, TcpStream::connect_addr(addr)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    return match &o.server_name {
                        None => Ok(UpstreamStream::Plain(tcp)),
                        Some(name) => {
                            match timeout_at(deadline, self.tls.connect(name.clone(), tcp)).await {
                                Ok(Ok(t)) => Ok(UpstreamStream::Tls(Box::new(t))),
                                Ok(Err(e)) => {
                                    Err(UpstreamError::Tls(o.label.clone(), tls_reason(e)))
                                }
                                Err(_) => Err(UpstreamError::ConnectTimeout(o.label.clone(), ms)),
                            }
                        }
                    };
                }
                Ok(Err(e)) => last = Some(UpstreamError::Connect(o.label.clone(), e)),
                Err(_) => return Err(UpstreamError::ConnectTimeout(o.label.clone(), ms)),
            }
        }
        Err(last.unwrap_or_else(|| UpstreamError::NoAddress(o.label.clone())))
    }

    /// Sends `request` (head and body, whole) and waits for the response head: within the
    /// connect and response-head deadlines, and never past `latest` (the request's failover
    /// deadline).
    pub(crate) async fn exchange(
        &self,
        provider: usize,
        request: Vec<u8>,
        latest: Instant,
    ) -> Result<Response, UpstreamError> {
        let label = || self.origin(provider).label.clone();
        let mut request = request;
        loop {
            let (mut stream, reused) = match self.checkout(provider) {
                Some(s) => (s, true),
                None => (self.connect(provider, latest).await?, false),
            };
            // A provider that accepts the connection but never reads must not hold the
            // request: the write has the head's deadline too.
            let now = Instant::now();
            let send_deadline =
                (now + Duration::from_millis(self.settings.response_head_timeout_ms)).min(latest);
            let (res, req_back) =
                match timeout_at(send_deadline, write_all(&mut stream, request)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let ms = send_deadline.saturating_duration_since(now).as_millis() as u64;
                        return Err(UpstreamError::SendTimeout(label(), ms));
                    }
                };
            request = req_back;
            if let Err(e) = res {
                if reused {
                    continue;
                }
                return Err(UpstreamError::Send(label(), e));
            }
            let now = Instant::now();
            let deadline =
                (now + Duration::from_millis(self.settings.response_head_timeout_ms)).min(latest);
            let ms = deadline.saturating_duration_since(now).as_millis() as u64;
            let mut buf = self.buffers.take();
            loop {
                let (res, b) =
                    match timeout_at(deadline, read_append(&mut stream, buf, READ_CHUNK)).await {
                        Ok(r) => r,
                        Err(_) => return Err(UpstreamError::HeadTimeout(label(), ms)),
                    };
                buf = b;
                match res {
                    Ok(n) if n > 0 => {}
                    // A pooled connection the provider had already closed: retry on a new one.
                    _ if reused && buf.is_empty() => break,
                    _ => return Err(UpstreamError::Closed(label())),
                }
                match parse_response_head(&buf, MAX_RESPONSE_HEAD, false) {
                    Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                        // Interim response (100 Continue, 103 Early Hints): skip it.
                        buf.drain(..head.head_len);
                        continue;
                    }
                    Ok(Some(head)) => {
                        buf.drain(..head.head_len);
                        self.buffers.give(request);
                        return Ok(Response {
                            stream,
                            head,
                            buffered: buf,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => return Err(UpstreamError::BadHead(label(), e)),
                }
            }
        }
    }

    /// Reads more of a response body, giving up at `deadline`.
    pub(crate) async fn read_body_until(
        &self,
        stream: &mut UpstreamStream,
        buf: Vec<u8>,
        deadline: Instant,
    ) -> Result<(std::io::Result<usize>, Vec<u8>), Vec<u8>> {
        match timeout_at(deadline, read_append(stream, buf, READ_CHUNK)).await {
            Ok(r) => Ok(r),
            Err(_) => Err(Vec::with_capacity(READ_CHUNK)),
        }
    }

    /// The deadlines of streams: to the first whole event, and between two.
    pub(crate) fn stream_deadlines(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.settings.first_event_timeout_ms),
            Duration::from_millis(self.settings.event_gap_timeout_ms),
        )
    }

    /// Reads more of a response body, with the between-reads deadline.
    pub(crate) async fn read_body(
        &self,
        stream: &mut UpstreamStream,
        buf: Vec<u8>,
    ) -> (std::io::Result<usize>, Vec<u8>) {
        let ms = self.settings.body_read_timeout_ms;
        match timeout(
            Duration::from_millis(ms),
            read_append(stream, buf, READ_CHUNK),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => (
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data from the provider for {ms} ms"),
                )),
                Vec::with_capacity(READ_CHUNK),
            ),
        }
    }

    /// Reads a whole response body (for translation, which needs all of it), up to `max` bytes.
    /// The connection goes back to the pool when the body ended cleanly on its own framing.
    pub(crate) async fn read_to_end(
        &self,
        provider: usize,
        resp: Response,
        max: usize,
    ) -> Result<(ResponseHead, Vec<u8>), String> {
        let Response {
            mut stream,
            head,
            buffered,
        } = resp;
        let mut body = Vec::new();
        let mut decoder = ChunkedDecoder::new();
        let mut input = buffered;
        let mut clean = head.keep_alive;
        loop {
            let done = match head.framing {
                BodyFraming::Empty => {
                    clean &= input.is_empty();
                    true
                }
                BodyFraming::Length(n) => {
                    let want = (n as usize).saturating_sub(body.len());
                    let take = want.min(input.len());
                    body.extend_from_slice(&input[..take]);
                    clean &= take == input.len();
                    body.len() as u64 >= n
                }
                BodyFraming::Chunked => {
                    let used = decoder
                        .feed(&input, |d| body.extend_from_slice(d))
                        .map_err(|e| format!("bad chunked body from the provider: {e}"))?;
                    clean &= used == input.len();
                    decoder.is_done()
                }
                BodyFraming::Close => {
                    body.extend_from_slice(&input);
                    clean = false;
                    false
                }
            };
            if body.len() > max {
                return Err(format!(
                    "the provider's response is larger than {max} bytes"
                ));
            }
            if done {
                break;
            }
            input.clear();
            let (res, b) = self.read_body(&mut stream, input).await;
            input = b;
            match res {
                Ok(0) if head.framing == BodyFraming::Close => break,
                Ok(0) => return Err("the provider closed the connection mid-body".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading the provider's body failed: {e}")),
            }
        }
        self.buffers.give(input);
        if clean {
            self.checkin(provider, stream);
        }
        Ok((head, body))
    }
}
