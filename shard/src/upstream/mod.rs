//! The upstream client of one shard: a keep-alive HTTP/1.1 pool per provider origin, plain or
//! TLS connections, or, for an `https://` origin that picks `h2` by ALPN, one h2 connection
//! per origin on this shard that carries every request to it as a stream; deadlines for
//! connect and for the response head either way.
//!
//! ```text
//!   exchange(): h2 connection to the origin? -- open a stream -- response head (deadline)
//!               idle conn from the pool? -- write request -- read head (deadline)
//!                 \-- none / stale --> connect (deadline: TCP + TLS; ALPN h2 | http/1.1) --/
//!   the caller relays the body and hands an HTTP/1.1 connection back with `checkin`
//! ```
//!
//! The gateway writes every upstream request as HTTP/1.1 bytes; for h2 they are read back
//! into a request (the same parser as for clients) and the h2 response is given the head an
//! HTTP/1.1 response would have, so the relay, the transcoders and usage reading are the same
//! for both.
//!
//! A pooled connection the provider closed while idle shows up as a write error or an EOF
//! before any byte of a response; that exchange is retried once on a fresh connection. Nothing
//! else is retried here: failover between providers is the gateway's decision.

mod stream;
pub(crate) mod tls;

pub(crate) use stream::UpstreamStream;

use crate::io::BufPool;
use busbar_codec::http1::{
    BodyFraming, ChunkedDecoder, ResponseError, ResponseHead, is_hop_by_hop, parse_request_head,
    parse_response_head,
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
/// How many times a request that never left (its h2 connection had been sent away) is tried
/// on another connection: safe to send again, but bounded, for a provider that sends every
/// connection away at once.
const MAX_UNSENT_RETRIES: u32 = 5;
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
    /// The origin's h2 connection on this shard, once it chose h2.
    h2: RefCell<Option<SharedH2>>,
    /// Whether the origin chose HTTP/1.1 when offered h2: then connections are made freely
    /// (a pool); until then, one at a time, so a burst of first requests shares the one h2
    /// connection rather than each opening its own.
    speaks_h1: Cell<bool>,
    /// The last connect made one at a time failed: those waiting behind it do not queue on
    /// (a provider that cannot be reached would make each wait out all the connects before).
    last_failed: Cell<bool>,
    connecting: local_sync::semaphore::Semaphore,
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

/// Streams one shared h2 connection carries at once; one more request opens another
/// connection (the old one stays for the streams it has). Providers commonly allow 100.
const H2_STREAMS_PER_CONNECTION: usize = 100;

/// An origin's shared h2 connection on this shard.
#[derive(Clone)]
pub(crate) struct SharedH2 {
    /// Which connection this is, so a failure on an old one does not drop a newer one.
    id: u64,
    send: h2::client::SendRequest<bytes::Bytes>,
    /// Its streams in flight.
    active: std::rc::Rc<Cell<usize>>,
}

impl SharedH2 {
    fn has_room(&self) -> bool {
        self.active.get() < H2_STREAMS_PER_CONNECTION
    }
}

/// One stream counted on its connection until dropped (with the response body).
pub(crate) struct StreamSlot(std::rc::Rc<Cell<usize>>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// How an h2 exchange failed.
enum H2Failure {
    /// Before the request left (the shared connection was gone): safe to send again.
    Unsent(UpstreamError),
    /// After it may have reached the provider, or for a reason a new connection won't fix.
    Failed(UpstreamError),
}

impl H2Failure {
    fn into_error(self) -> UpstreamError {
        match self {
            H2Failure::Unsent(e) | H2Failure::Failed(e) => e,
        }
    }
}

/// A new connection to an origin.
enum Connected {
    /// HTTP/1.1: the connection itself.
    H1(UpstreamStream),
    /// h2: a handle on the origin's shared connection.
    H2(SharedH2),
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
    /// The same trust, offering `h2` then `http/1.1` (when `upstream.http2` is on).
    tls_h2: Option<tokio_rustls::TlsConnector>,
    origins: Vec<Option<Origin>>,
    /// The id the next h2 connection gets.
    next_h2: Cell<u64>,
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
                        h2: RefCell::new(None),
                        speaks_h1: Cell::new(false),
                        last_failed: Cell::new(false),
                        connecting: local_sync::semaphore::Semaphore::new(1),
                        next_addr: Cell::new(0),
                        idle: RefCell::new(Vec::new()),
                    })
                }
                Endpoint::Mock(_) => None,
            })
            .collect();
        let tls_h2 = config.upstream.http2.then(|| {
            let mut c = (*tls).clone();
            c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            tokio_rustls::TlsConnector::from(Arc::new(c))
        });
        Self {
            buffers: BufPool::new(READ_CHUNK, 1024),
            settings: config.upstream.clone(),
            tls: monoio_rustls::TlsConnector::from(tls),
            tls_h2,
            origins,
            next_h2: Cell::new(0),
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

    async fn connect(&self, provider: usize, latest: Instant) -> Result<Connected, UpstreamError> {
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
                    return match (&o.server_name, &self.tls_h2) {
                        (None, _) => Ok(Connected::H1(UpstreamStream::Plain(tcp))),
                        (Some(name), None) => {
                            match timeout_at(deadline, self.tls.connect(name.clone(), tcp)).await {
                                Ok(Ok(t)) => Ok(Connected::H1(UpstreamStream::Tls(Box::new(t)))),
                                Ok(Err(e)) => {
                                    Err(UpstreamError::Tls(o.label.clone(), tls_reason(e)))
                                }
                                Err(_) => Err(UpstreamError::ConnectTimeout(o.label.clone(), ms)),
                            }
                        }
                        (Some(name), Some(tls_h2)) => {
                            self.connect_alpn(o, tls_h2, name, tcp, deadline, ms).await
                        }
                    };
                }
                Ok(Err(e)) => last = Some(UpstreamError::Connect(o.label.clone(), e)),
                Err(_) => return Err(UpstreamError::ConnectTimeout(o.label.clone(), ms)),
            }
        }
        Err(last.unwrap_or_else(|| UpstreamError::NoAddress(o.label.clone())))
    }

    /// [`Upstream::connect`], one at a time for an origin that may speak h2: who waited uses
    /// the h2 connection the one before made, if it made one.
    async fn connect_once(
        &self,
        provider: usize,
        latest: Instant,
    ) -> Result<Connected, UpstreamError> {
        let o = self.origin(provider);
        if self.tls_h2.is_none() || o.server_name.is_none() || o.speaks_h1.get() {
            return self.connect(provider, latest).await;
        }
        let one = match timeout_at(latest, o.connecting.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                let ms = latest.saturating_duration_since(Instant::now()).as_millis() as u64;
                return Err(UpstreamError::ConnectTimeout(o.label.clone(), ms));
            }
        };
        let made = o.h2.borrow().clone().filter(SharedH2::has_room);
        if let Some(shared) = made {
            return Ok(Connected::H2(shared));
        }
        // The one before learned that the origin speaks HTTP/1.1, or failed: no reason to
        // connect one at a time.
        if o.speaks_h1.get() || o.last_failed.get() {
            drop(one);
        }
        let made = self.connect(provider, latest).await;
        o.last_failed.set(made.is_err());
        made
    }

    /// TLS offering h2: an h2 connection (its driver spawned on this shard, its handle kept
    /// by the origin) or an HTTP/1.1 connection, as the provider chose.
    async fn connect_alpn(
        &self,
        o: &Origin,
        tls_h2: &tokio_rustls::TlsConnector,
        name: &ServerName<'static>,
        tcp: TcpStream,
        deadline: Instant,
        ms: u64,
    ) -> Result<Connected, UpstreamError> {
        let poll = tcp
            .try_into_poll_io()
            .map_err(|(e, _)| UpstreamError::Connect(o.label.clone(), e))?;
        let tls = match timeout_at(deadline, tls_h2.connect(name.clone(), poll)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(UpstreamError::Tls(o.label.clone(), e.to_string())),
            Err(_) => return Err(UpstreamError::ConnectTimeout(o.label.clone(), ms)),
        };
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            o.speaks_h1.set(true);
            return Ok(Connected::H1(UpstreamStream::PollTls(Box::new(tls))));
        }
        o.speaks_h1.set(false);
        let handshake = h2::client::Builder::new()
            // A stream's window well under the connection's: a few relays stalled on slow
            // clients cannot take the whole connection's window from the others.
            .initial_window_size(1024 * 1024)
            .initial_connection_window_size(16 * 1024 * 1024)
            .max_header_list_size(MAX_RESPONSE_HEAD as u32)
            .handshake::<_, bytes::Bytes>(tls);
        let (send, conn) = match timeout_at(deadline, handshake).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(UpstreamError::Tls(o.label.clone(), format!("h2: {e}"))),
            Err(_) => return Err(UpstreamError::ConnectTimeout(o.label.clone(), ms)),
        };
        let label = o.label.clone();
        monoio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("h2 connection to {label} ended: {e}");
            }
        });
        let shared = SharedH2 {
            id: self.next_h2.get(),
            send,
            active: std::rc::Rc::new(Cell::new(0)),
        };
        self.next_h2.set(shared.id + 1);
        *o.h2.borrow_mut() = Some(shared.clone());
        Ok(Connected::H2(shared))
    }

    /// One exchange as an h2 stream: the HTTP/1.1 request bytes read back into a request, the
    /// response head given the shape an HTTP/1.1 head would have (content-length framing
    /// when the provider sent one, else to the end of the stream).
    async fn exchange_h2(
        &self,
        provider: usize,
        shared: SharedH2,
        request: &[u8],
        latest: Instant,
    ) -> Result<Response, H2Failure> {
        let o = self.origin(provider);
        let label = || o.label.clone();
        let failed = H2Failure::Failed;
        let retire = || {
            // This connection is no good for further streams (the current one may already be
            // a newer connection: that one stays): the next request makes another.
            let mut current = o.h2.borrow_mut();
            if current.as_ref().is_some_and(|c| c.id == shared.id) {
                current.take();
            }
        };
        let broken = |e: String| {
            retire();
            UpstreamError::Send(label(), std::io::Error::other(e))
        };
        let unusable = |e: String| UpstreamError::Send(label(), std::io::Error::other(e));
        let head = match parse_request_head(request, request.len(), 1024) {
            Ok(Some(h)) => h,
            _ => return Err(failed(unusable("unusable request head".into()))),
        };
        let body = bytes::Bytes::copy_from_slice(&request[head.head_len..]);
        let mut req = http::Request::builder()
            .method(head.method.as_str())
            .uri(format!("https://{}{}", o.host_header, head.target));
        for (name, value) in head.headers.iter() {
            let lower = name.to_ascii_lowercase();
            if is_hop_by_hop(&lower) || lower == "host" || lower == "transfer-encoding" {
                continue;
            }
            req = req.header(lower, value);
        }
        let req = req.body(()).map_err(|e| failed(unusable(e.to_string())))?;
        let now = Instant::now();
        let deadline =
            (now + Duration::from_millis(self.settings.response_head_timeout_ms)).min(latest);
        let ms = deadline.saturating_duration_since(now).as_millis() as u64;
        // Waits for a free stream slot (the provider's max_concurrent_streams) too.
        // Until the request is handed to h2, nothing has left: a connection that turns out
        // to be gone (GOAWAY, closed) is `Unsent`, and the caller makes a new one.
        let slot = StreamSlot(std::rc::Rc::clone(&shared.active));
        shared.active.set(shared.active.get() + 1);
        let mut send = match timeout_at(deadline, shared.send.clone().ready()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(H2Failure::Unsent(broken(e.to_string()))),
            Err(_) => {
                retire();
                return Err(failed(UpstreamError::SendTimeout(label(), ms)));
            }
        };
        let (response, mut stream) = send
            .send_request(req, body.is_empty())
            .map_err(|e| H2Failure::Unsent(broken(e.to_string())))?;
        if !body.is_empty() {
            stream.reserve_capacity(body.len());
            stream
                .send_data(body, true)
                .map_err(|e| failed(broken(e.to_string())))?;
        }
        let response = match timeout_at(deadline, response).await {
            Ok(Ok(r)) => r,
            // Refused, or cut by a GOAWAY (which h2 does only to streams above the GOAWAY's
            // last stream id, RFC 9113 section 6.8): the provider did not process it.
            // Only when the provider said so: a GOAWAY or reset busbar's own h2 raised (on a
            // connection error) may cut streams the provider was working on.
            Ok(Err(e))
                if e.is_remote()
                    && (e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM)) =>
            {
                return Err(H2Failure::Unsent(broken(e.to_string())));
            }
            Ok(Err(e)) if e.is_reset() => {
                return Err(failed(UpstreamError::Closed(format!(
                    "{} (stream reset: {e})",
                    label()
                ))));
            }
            Ok(Err(e)) => return Err(failed(broken(e.to_string()))),
            Err(_) => {
                // Perhaps a slow answer, perhaps a connection gone silent: new requests get a
                // new connection either way (this one keeps the streams it has).
                retire();
                return Err(failed(UpstreamError::HeadTimeout(label(), ms)));
            }
        };
        let (parts, body) = response.into_parts();
        let mut text = format!("HTTP/1.1 {} h2\r\n", parts.status.as_u16()).into_bytes();
        for (name, value) in &parts.headers {
            text.extend_from_slice(name.as_str().as_bytes());
            text.extend_from_slice(b": ");
            text.extend_from_slice(value.as_bytes());
            text.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(b"connection: close\r\n\r\n");
        let head = match parse_response_head(&text, text.len() + 1, false) {
            Ok(Some(h)) => h,
            Ok(None) => return Err(failed(UpstreamError::Closed(label()))),
            Err(e) => return Err(failed(UpstreamError::BadHead(label(), e))),
        };
        Ok(Response {
            stream: UpstreamStream::H2(Box::new(stream::H2Body {
                _slot: slot,
                body,
                rest: bytes::Bytes::new(),
            })),
            head,
            buffered: Vec::new(),
        })
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
        let h2 = self
            .origin(provider)
            .h2
            .borrow()
            .clone()
            .filter(SharedH2::has_room);
        if let Some(shared) = h2 {
            match self.exchange_h2(provider, shared, &request, latest).await {
                // The shared connection had gone before the request left: a new one below.
                Err(H2Failure::Unsent(e)) => {
                    tracing::debug!("{e}; connecting again");
                }
                r => {
                    self.buffers.give(request);
                    return r.map_err(H2Failure::into_error);
                }
            }
        }
        let mut unsent = 0;
        loop {
            let (mut stream, reused) = match self.checkout(provider) {
                Some(s) => (s, true),
                None => match self.connect_once(provider, latest).await? {
                    Connected::H1(s) => (s, false),
                    Connected::H2(shared) => {
                        match self.exchange_h2(provider, shared, &request, latest).await {
                            // That connection too was gone before the request left (one
                            // another request had made, since sent away): a new one.
                            Err(H2Failure::Unsent(e)) if unsent < MAX_UNSENT_RETRIES => {
                                unsent += 1;
                                tracing::debug!("{e}; connecting again");
                                continue;
                            }
                            r => {
                                self.buffers.give(request);
                                return r.map_err(H2Failure::into_error);
                            }
                        }
                    }
                },
            };
            // A provider that accepts the connection but never reads must not hold the
            // request: the write has the head's deadline too.
            let now = Instant::now();
            let send_deadline =
                (now + Duration::from_millis(self.settings.response_head_timeout_ms)).min(latest);
            let (res, req_back) = match timeout_at(send_deadline, stream.send(request)).await {
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
                let (res, b) = match timeout_at(deadline, stream.read_more(buf, READ_CHUNK)).await {
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
        match timeout_at(deadline, stream.read_more(buf, READ_CHUNK)).await {
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
        match timeout(Duration::from_millis(ms), stream.read_more(buf, READ_CHUNK)).await {
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
