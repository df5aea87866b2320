//! A scripted provider: a loopback HTTP/1.1 server (optionally TLS) that records every request
//! and answers with the raw bytes the test scripted. It stands in for the remote providers,
//! which cannot exist here; what is under test is busbar, on the other side of a real socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// A request the provider received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line method.
    pub method: String,
    /// Request target.
    pub path: String,
    /// Header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes exactly as received.
    pub body: Vec<u8>,
    /// Which accepted connection carried it (0-based).
    pub conn: usize,
}

impl Received {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the provider does with a request.
pub enum Action {
    /// Write these bytes (a whole response) and keep the connection.
    Reply(Vec<u8>),
    /// Write these parts one after another (each flushed, as a stream), then keep or close.
    Stream(Vec<Vec<u8>>, bool),
    /// Write the parts one after another, waiting for a signal on the receiver before each
    /// part after the first (the test proves what arrived before the rest was even sent).
    Gated(Vec<Vec<u8>>, Receiver<()>),
    /// Never answer; hold the connection until the peer closes it.
    Hang,
    /// Close the connection without answering.
    Close,
}

type Script = dyn Fn(&Received) -> Action + Send + Sync;

/// The running provider.
pub struct Scripted {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Receiver<Received>,
    connections: Arc<AtomicUsize>,
}

impl Scripted {
    /// A plain-HTTP provider.
    pub fn start(script: impl Fn(&Received) -> Action + Send + Sync + 'static) -> Scripted {
        Self::start_inner(Arc::new(script), None)
    }

    /// A TLS provider with this certificate chain and key.
    pub fn start_tls(
        config: Arc<rustls::ServerConfig>,
        script: impl Fn(&Received) -> Action + Send + Sync + 'static,
    ) -> Scripted {
        Self::start_inner(Arc::new(script), Some(config))
    }

    fn start_inner(script: Arc<Script>, tls: Option<Arc<rustls::ServerConfig>>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted provider");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let conns = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let n = conns.fetch_add(1, Ordering::SeqCst);
                let script = Arc::clone(&script);
                let tx = tx.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    stream.set_nodelay(true).ok();
                    match tls {
                        None => serve(stream, n, &*script, &tx),
                        Some(cfg) => {
                            let conn = rustls::ServerConnection::new(cfg).expect("tls server conn");
                            serve(rustls::StreamOwned::new(conn, stream), n, &*script, &tx)
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            received: rx,
            connections,
        }
    }

    /// The next request received (waits for it).
    pub fn next_request(&self) -> Received {
        self.received
            .recv_timeout(Duration::from_secs(30))
            .expect("provider received no request")
    }

    /// Whether a request is already waiting (does not wait).
    pub fn try_next(&self) -> Option<Received> {
        self.received.try_recv().ok()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve<S: Read + Write>(mut s: S, conn: usize, script: &Script, tx: &Sender<Received>) {
    let mut buf = Vec::new();
    loop {
        let (req, used) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 128];
            let mut r = httparse::Request::new(&mut fields);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let req = Received {
                    method: r.method.unwrap_or("").to_string(),
                    path: r.path.unwrap_or("").to_string(),
                    headers,
                    body: Vec::new(),
                    conn,
                };
                break (req, n);
            }
            let mut tmp = [0u8; 16384];
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&tmp[..k]),
            }
        };
        buf.drain(..used);
        let mut req = req;
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            let mut tmp = [0u8; 16384];
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&tmp[..k]),
            }
        }
        req.body = buf.drain(..len).collect();
        let action = script(&req);
        let _ = tx.send(req);
        match action {
            Action::Reply(bytes) => {
                if s.write_all(&bytes).and_then(|_| s.flush()).is_err() {
                    return;
                }
            }
            Action::Stream(parts, close) => {
                for p in parts {
                    if s.write_all(&p).and_then(|_| s.flush()).is_err() {
                        return;
                    }
                    // Give each part its own segment so the gateway sees separate reads.
                    std::thread::yield_now();
                }
                if close {
                    return;
                }
            }
            Action::Gated(parts, gate) => {
                for (i, p) in parts.into_iter().enumerate() {
                    if i > 0 && gate.recv_timeout(Duration::from_secs(30)).is_err() {
                        return;
                    }
                    if s.write_all(&p).and_then(|_| s.flush()).is_err() {
                        return;
                    }
                }
            }
            Action::Hang => {
                let mut tmp = [0u8; 1024];
                while matches!(s.read(&mut tmp), Ok(n) if n > 0) {}
                return;
            }
            Action::Close => return,
        }
    }
}

/// A whole JSON response with Content-Length.
pub fn json_response(status: u16, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-provider: scripted\r\n\r\n{body}", body.len()).into_bytes()
}
