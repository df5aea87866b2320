//! `busbar-bench mock`: a mock provider, the upstream of every benchmark and black-box test.
//!
//! ```text
//!   accept -> read request -> /_mock/requests (record inspection) | protocol handler by path
//!   protocol handlers: openai.rs (Chat Completions, JSON and SSE), protocols.rs (Responses,
//!   Anthropic, Gemini, Cohere v2, Bedrock Converse; non-streaming), chosen by path
//! ```
//!
//! Requests are recorded (last 1000) so tests can see what the gateway sent upstream; headers
//! steer the answer per request (`x-mock-status`, `x-mock-ttft-ms`, `x-mock-gap-ms`,
//! `x-mock-tokens`, `x-mock-hang`, `x-mock-retry-after`). A status can also be asked for in the
//! request body, as the text `mock-status=NNN` (and `mock-retry-after=N`): it survives any
//! translation, so a test can steer the mock through any client SDK without custom headers.
//! A stream can be broken after some text deltas (`x-mock-break: error|garbage|reset`,
//! `x-mock-break-after: N`, or `mock-break=error` / `mock-break-after=N` in the body): with the
//! protocol's own error event, with bytes that are no frame of it, or with a TCP reset.

mod openai;
mod protocols;

use crate::wire::read_request;
use busbar_codec::Protocol;
use busbar_codec::http1::{Method, RequestHead};
use monoio::io::AsyncWriteRentExt;
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use serde_json::json;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RECORDED: usize = 1000;

/// Default timing and size of answers; headers override per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MockOptions {
    pub(crate) ttft: Duration,
    pub(crate) gap: Duration,
    pub(crate) tokens: u64,
    pub(crate) record: bool,
}

/// Per-request settings after header overrides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steer {
    pub(crate) status: Option<u16>,
    pub(crate) ttft: Duration,
    pub(crate) gap: Duration,
    pub(crate) tokens: u64,
    pub(crate) hang: bool,
    pub(crate) retry_after: Option<u64>,
    /// Break a stream mid-way, and after how many text deltas.
    pub(crate) brk: Option<Break>,
    pub(crate) break_after: u64,
}

/// How a steered stream breaks (`x-mock-break`, or `mock-break=` in the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    /// The protocol's own mid-stream error event, then a clean end of the body.
    Error,
    /// Bytes that are no frame of the protocol, then the connection closes.
    Garbage,
    /// A TCP reset.
    Reset,
}

impl Break {
    fn parse(s: &[u8]) -> Option<Break> {
        match s {
            b"error" => Some(Break::Error),
            b"garbage" => Some(Break::Garbage),
            b"reset" => Some(Break::Reset),
            _ => None,
        }
    }
}

impl Steer {
    fn from(head: &RequestHead, body: &[u8], o: &MockOptions) -> Steer {
        let num = |name: &str| {
            head.header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let marked = |key: &str| -> Option<u64> {
            let at = body.windows(key.len()).position(|w| w == key.as_bytes())? + key.len();
            let digits: Vec<u8> = body[at..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            std::str::from_utf8(&digits).ok()?.parse().ok()
        };
        Steer {
            status: num("x-mock-status")
                .or_else(|| marked("mock-status="))
                .and_then(|s| u16::try_from(s).ok()),
            ttft: num("x-mock-ttft-ms").map_or(o.ttft, Duration::from_millis),
            gap: num("x-mock-gap-ms").map_or(o.gap, Duration::from_millis),
            tokens: num("x-mock-tokens").unwrap_or(o.tokens),
            hang: num("x-mock-hang") == Some(1),
            retry_after: num("x-mock-retry-after").or_else(|| marked("mock-retry-after=")),
            brk: head
                .header("x-mock-break")
                .and_then(|v| Break::parse(v.trim_ascii()))
                .or_else(|| {
                    let key = b"mock-break=";
                    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
                    let word: Vec<u8> = body[at..]
                        .iter()
                        .copied()
                        .take_while(u8::is_ascii_lowercase)
                        .collect();
                    Break::parse(&word)
                }),
            break_after: num("x-mock-break-after")
                .or_else(|| marked("mock-break-after="))
                .unwrap_or(2),
        }
    }
}

type Records = Arc<Mutex<VecDeque<serde_json::Value>>>;

/// Runs the mock on `threads` shards (one monoio runtime each, SO_REUSEPORT); prints
/// `mock: listening on ADDR` and serves until killed.
pub(crate) fn run(
    listen: SocketAddr,
    threads: usize,
    cpu: Option<usize>,
    options: MockOptions,
) -> Result<(), String> {
    let records: Records = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut addr = listen;
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let records = Arc::clone(&records);
        let tx = tx.clone();
        let bind = addr;
        handles.push(std::thread::spawn(move || {
            if let Some(c) = cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            let mut rt = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(serve(bind, i, options, records, tx));
        }));
        addr = rx.recv().map_err(|_| "mock thread died".to_string())??;
    }
    println!("mock: listening on {addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

async fn serve(
    listen: SocketAddr,
    _shard: usize,
    options: MockOptions,
    records: Records,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
) {
    let listener = match TcpListener::bind_with_config(
        listen,
        &ListenerOpts::new().reuse_port(true).backlog(4096),
    ) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("mock cannot listen on {listen}: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(listener.local_addr().unwrap_or(listen)));
    let seq = Rc::new(std::cell::Cell::new(0u64));
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            monoio::spawn(conn(stream, options, Arc::clone(&records), Rc::clone(&seq)));
        }
    }
}

async fn conn(
    mut stream: TcpStream,
    options: MockOptions,
    records: Records,
    seq: Rc<std::cell::Cell<u64>>,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Ok(Some((head, body))) = read_request(&mut stream, &mut buf).await {
        let path = head.path().to_string();
        let record_this = options.record && !path.starts_with("/_mock/");
        if record_this {
            let headers: serde_json::Map<String, serde_json::Value> = head
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), json!(String::from_utf8_lossy(v))))
                .collect();
            let entry = json!({"method": head.method.as_str(), "path": head.target, "headers": headers, "body": String::from_utf8_lossy(&body)});
            let mut r = records.lock().unwrap_or_else(|p| p.into_inner());
            if r.len() == RECORDED {
                r.pop_front();
            }
            r.push_back(entry);
        }
        let steer = Steer::from(&head, &body, &options);
        let keep = match (&head.method, path.as_str()) {
            (Method::Get, "/_mock/requests") => {
                let all: Vec<serde_json::Value> = records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                write(
                    &mut stream,
                    respond(
                        200,
                        "application/json",
                        &serde_json::to_vec(&all).unwrap_or_default(),
                        &[],
                    ),
                )
                .await
            }
            (Method::Other(m), "/_mock/requests") if m == "DELETE" => {
                records.lock().unwrap_or_else(|p| p.into_inner()).clear();
                write(&mut stream, respond(204, "application/json", b"", &[])).await
            }
            _ => match protocols::route(&path) {
                Some((Protocol::OpenAiChat, _)) => {
                    openai::handle(&mut stream, &head, &body, steer, &seq).await
                }
                Some((p, model)) => {
                    protocols::handle(&mut stream, &head, &body, steer, &seq, p, &model).await
                }
                None => {
                    let msg = json!({"error": {"message": format!("mock: no route for {path}"), "type": "invalid_request_error"}});
                    write(
                        &mut stream,
                        respond(404, "application/json", msg.to_string().as_bytes(), &[]),
                    )
                    .await
                }
            },
        };
        if !keep || !head.keep_alive {
            break;
        }
    }
}

/// A whole response with Content-Length.
pub(crate) fn respond(
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, String)],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} Mock\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in extra {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Writes bytes; returns whether the connection is still good.
pub(crate) async fn write(stream: &mut TcpStream, bytes: Vec<u8>) -> bool {
    stream.write_all(bytes).await.0.is_ok()
}

/// Holds the connection without answering until the peer closes it.
pub(crate) async fn hang(stream: &mut TcpStream) -> bool {
    use monoio::io::AsyncReadRent;
    loop {
        let (res, _) = stream.read(vec![0u8; 1024]).await;
        if !matches!(res, Ok(n) if n > 0) {
            return false;
        }
    }
}
