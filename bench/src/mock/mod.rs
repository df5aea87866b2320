//! `busbar-bench mock`: a mock provider, the upstream of every benchmark and black-box test.
//!
//! ```text
//!   accept -> read request -> /_mock/requests | /_mock/faults | provider path:
//!     route (protocols.rs) -> Steer (steer.rs: headers, body markers) -> rule (rules.rs)
//!       -> hang | error in the provider's words (errors.rs) | answer (openai.rs,
//!          protocols.rs: JSON or the protocol's stream)   all written through a Sink
//!          (sink.rs: whole, or a slow drip)
//! ```
//!
//! Speaks six protocols by path: OpenAI Chat (`/chat/completions`, `/models`), Responses
//! (`/responses`), Anthropic (`/messages`), Gemini (`/models/M:generateContent`,
//! `:streamGenerateContent`), Cohere v2 (`/chat`) and Bedrock Converse (`/model/M/converse`,
//! `/converse-stream`). Requests are recorded (last 1000, unless `--no-record`).
//!
//! Steering, per request. A header, or the same knob as a marker anywhere in the body (it
//! survives any translation, so a test can steer through any client SDK):
//!
//! | header                | body marker           | effect                                      |
//! |-----------------------|-----------------------|---------------------------------------------|
//! | `x-mock-status: N`    | `mock-status=N`       | N >= 300: the provider's own error for N (body, headers), its message ending `(mock: status N as requested ...)` |
//! | `x-mock-fault: K`     | `mock-fault=K`        | the provider's own error for K, exact: `context`, `auth`, `billing`, `overloaded`, `rate` (all), `timeout` (Anthropic, Gemini, Bedrock), `not_ready`, `quota` (Bedrock); wins over the status |
//! | `x-mock-retry-after: S` | `mock-retry-after=S` | adds `Retry-After: S`; S is also the wait a rate error names (default 1) |
//! | `x-mock-hang: 1`      |                       | never answer; hold the connection            |
//! | `x-mock-ttft-ms: N`   |                       | wait N ms before the answer                  |
//! | `x-mock-gap-ms: N`    |                       | wait N ms between streamed text deltas       |
//! | `x-mock-tokens: N`    |                       | answer N tokens (capped by the request's max) |
//! | `x-mock-break: B`     | `mock-break=B`        | break the stream: `error` (the protocol's error event), `garbage` (no frame), `reset` (TCP RST) |
//! | `x-mock-break-after: N` | `mock-break-after=N` | ... after N text deltas (default 2; 0: before any) |
//! | `x-mock-drip-ms: N`   | `mock-drip-ms=N`      | write the whole response, head included, a few bytes at a time, N ms apart |
//! | `x-mock-drip-bytes: N` | `mock-drip-bytes=N`  | ... N bytes per write (default 1)            |
//!
//! The errors are the providers' own (errors.rs, bench/fixtures/errors/*.json: body, status
//! and headers such as OpenAI's `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*` with
//! RFC 3339 resets, Gemini's `RetryInfo`, Bedrock's `x-amzn-ErrorType`); a status a provider
//! has no body for comes in the protocol's error shape from busbar-codec.
//!
//! Fault rules, per rate and changeable at run time (rules.rs): `POST /_mock/faults`
//! `{"rules": [...]}` replaces them, `GET` lists them with their counts, `DELETE` clears them;
//! `--fault '<rule>'` (repeatable) starts with them. The first rule that matches a request and
//! fires overrides the request's own steering for the fields it sets. `GET` and `DELETE` on
//! `/_mock/requests` read and clear the record; `POST /_mock/v1/traces` takes OTLP trace
//! exports (a sink for benchmarks with tracing on), counted at `GET /_mock/otlp`.

mod errors;
mod openai;
mod protocols;
mod rules;
mod sink;
mod steer;

pub(crate) use rules::Rule;

use crate::wire::read_request;
use busbar_codec::Protocol;
use busbar_codec::http1::{Method, RequestHead};
use monoio::io::AsyncWriteRentExt;
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use rules::Rules;
use serde_json::json;
use sink::Sink;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use steer::Steer;

const RECORDED: usize = 1000;

/// How long a rate error says to wait when the request named no `Retry-After`.
const DEFAULT_WAIT_S: u64 = 1;

/// Default timing and size of answers; headers override per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MockOptions {
    pub(crate) ttft: Duration,
    pub(crate) gap: Duration,
    pub(crate) tokens: u64,
    pub(crate) record: bool,
}

type Records = Arc<Mutex<VecDeque<serde_json::Value>>>;

/// What the mock's threads share: the record and the fault rules.
#[derive(Clone)]
struct Shared {
    records: Records,
    rules: Arc<Rules>,
    /// OTLP trace exports taken at `/_mock/v1/traces`.
    otlp_exports: Arc<std::sync::atomic::AtomicU64>,
}

/// A fault rule from its JSON text (`--fault`).
pub(crate) fn parse_rule(text: &str) -> Result<Rule, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    Rule::parse(&v)
}

/// Runs the mock on `threads` shards (one monoio runtime each, SO_REUSEPORT); prints
/// `mock: listening on ADDR` and serves until killed.
pub(crate) fn run(
    listen: SocketAddr,
    threads: usize,
    cpu: Option<usize>,
    options: MockOptions,
    rules: Vec<Rule>,
) -> Result<(), String> {
    let shared = Shared {
        records: Arc::new(Mutex::new(VecDeque::new())),
        rules: Arc::new(Rules::new(rules)),
        otlp_exports: Arc::default(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut addr = listen;
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let shared = shared.clone();
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
            rt.block_on(serve(bind, i, options, shared, tx));
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
    shared: Shared,
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
            monoio::spawn(conn(stream, options, shared.clone(), Rc::clone(&seq)));
        }
    }
}

fn json_response(status: u16, v: &serde_json::Value) -> Vec<u8> {
    respond(
        status,
        "application/json",
        &serde_json::to_vec(v).unwrap_or_default(),
        &[],
    )
}

async fn conn(
    mut stream: TcpStream,
    options: MockOptions,
    shared: Shared,
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
            let mut r = shared.records.lock().unwrap_or_else(|p| p.into_inner());
            if r.len() == RECORDED {
                r.pop_front();
            }
            r.push_back(entry);
        }
        let keep = match (&head.method, path.as_str()) {
            (Method::Get, "/_mock/requests") => {
                let all: Vec<serde_json::Value> = shared
                    .records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                write(&mut stream, json_response(200, &json!(all))).await
            }
            (Method::Other(m), "/_mock/requests") if m == "DELETE" => {
                shared
                    .records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                write(&mut stream, respond(204, "application/json", b"", &[])).await
            }
            (m, "/_mock/faults") => {
                write(&mut stream, faults_endpoint(m, &body, &shared.rules)).await
            }
            // An OTLP/HTTP trace sink (for measuring busbar with tracing on): every export is
            // taken and answered with an empty ExportTraceServiceResponse.
            (Method::Post, "/_mock/v1/traces") => {
                shared
                    .otlp_exports
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                write(
                    &mut stream,
                    respond(200, "application/x-protobuf", b"", &[]),
                )
                .await
            }
            (Method::Get, "/_mock/otlp") => {
                let n = shared
                    .otlp_exports
                    .load(std::sync::atomic::Ordering::Relaxed);
                write(&mut stream, json_response(200, &json!({"exports": n}))).await
            }
            _ => provider(&mut stream, &head, &body, &options, &shared.rules, &seq).await,
        };
        if !keep || !head.keep_alive {
            break;
        }
    }
}

/// `/_mock/faults`: GET lists the rules, POST replaces them, DELETE clears them.
fn faults_endpoint(method: &Method, body: &[u8], rules: &Rules) -> Vec<u8> {
    match method {
        Method::Get => json_response(200, &rules.to_json()),
        Method::Post => match rules::parse_list(body) {
            Ok(list) => {
                rules.replace(list);
                json_response(200, &rules.to_json())
            }
            Err(e) => json_response(400, &json!({ "error": e })),
        },
        Method::Other(m) if m == "DELETE" => {
            rules.replace(Vec::new());
            respond(204, "application/json", b"", &[])
        }
        _ => json_response(
            405,
            &json!({"error": "/_mock/faults takes GET, POST or DELETE"}),
        ),
    }
}

/// The model a request names: in its path (Gemini, Bedrock), else its body's `"model"`.
fn request_model(path_model: &str, body: &[u8]) -> Option<String> {
    if !path_model.is_empty() {
        return Some(path_model.to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("model")?.as_str().map(str::to_string)
}

/// A provider request: steered, maybe failed by a rule, then answered in its protocol.
async fn provider(
    stream: &mut TcpStream,
    head: &RequestHead,
    body: &[u8],
    options: &MockOptions,
    rules: &Rules,
    seq: &std::cell::Cell<u64>,
) -> bool {
    let path = head.path();
    let Some((protocol, path_model)) = protocols::route(path) else {
        let msg = json!({"error": {"message": format!("mock: no route for {path}"), "type": "invalid_request_error"}});
        return write(
            stream,
            respond(404, "application/json", msg.to_string().as_bytes(), &[]),
        )
        .await;
    };
    let mut steer = Steer::from(head, body, options);
    if protocol == Protocol::OpenAiChat && path.ends_with("/models") {
        return openai::models(&mut Sink::new(stream, steer.drip)).await;
    }
    if let Some(actions) = rules.fire(|| request_model(&path_model, body)) {
        steer.apply(&actions);
    }
    let mut sink = Sink::new(stream, steer.drip);
    if steer.hang {
        return sink.hang().await;
    }
    if let Some(ask) = steer.error() {
        let model = request_model(&path_model, body).unwrap_or_else(|| "mock-model".into());
        let fill = errors::Fill {
            model: &model,
            wait: steer.retry_after.unwrap_or(DEFAULT_WAIT_S),
            now: SystemTime::now(),
            request_id: errors::request_id(protocol),
        };
        let a = errors::answer(protocol, ask, !steer.by_rule, &fill);
        let mut headers: Vec<(&str, String)> = a
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(s) = steer.retry_after {
            headers.push(("retry-after", s.to_string()));
        }
        return sink
            .write(respond(a.status, "application/json", &a.body, &headers))
            .await;
    }
    match protocol {
        Protocol::OpenAiChat => openai::handle(&mut sink, body, steer, seq).await,
        p => protocols::handle(&mut sink, head, body, steer, seq, p, &path_model).await,
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

/// Writes bytes whole (the mock's own endpoints); returns whether the connection is still good.
async fn write(stream: &mut TcpStream, bytes: Vec<u8>) -> bool {
    stream.write_all(bytes).await.0.is_ok()
}
