//! The admin listener: a plain thread off the data path (loopback by default, a bearer token
//! when configured). It reads the ledger file directly for what it shows, sends every change
//! to the ledger thread (the only writer) and then to every shard, and answers only when all
//! of them have it.
//!
//! ```text
//!   GET /stats, /healthz               lanes and leases, gathered from the shards (stats.rs)
//!   /admin/keys, /admin/environments,  virtual keys, environment limits, usage (govern.rs)
//!   /admin/.../usage, /admin/openapi.json
//!
//!   change: validate -> LedgerMsg::Admin (committed) -> ShardMsg::Key/Env to every shard
//!           -> every shard acks -> 200
//! ```

mod govern;
mod stats;

use crate::control::Mailbox;
use crate::ledger::LedgerHandle;
use crate::ledger::store::Store;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Largest admin request head.
const MAX_HEAD: usize = 16 * 1024;
/// Largest admin request body.
const MAX_BODY: usize = 1024 * 1024;
/// Deadline to read a request and write the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin thread works with.
pub(crate) struct Admin {
    token: Option<String>,
    current: Arc<crate::runtime::Current>,
    mailboxes: Arc<Vec<Mailbox>>,
    /// The ledger thread and a read handle on its file, when the ledger is on.
    ledger: Option<(LedgerHandle, Store)>,
}

/// A request, read whole.
pub(crate) struct Request {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

/// An answer: status, JSON body (or another, with its content type), extra headers.
pub(crate) struct Answer {
    status: u16,
    body: Value,
    allow: Option<&'static str>,
    raw: Option<(&'static str, Vec<u8>)>,
}

impl Answer {
    pub(crate) fn ok(body: Value) -> Answer {
        Answer {
            status: 200,
            body,
            allow: None,
            raw: None,
        }
    }

    pub(crate) fn status(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            allow: None,
            raw: None,
        }
    }

    /// A body that is not JSON.
    pub(crate) fn raw(content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            body: Value::Null,
            allow: None,
            raw: Some((content_type, body)),
        }
    }

    /// An error: `{"error": {"message": ...}}`.
    pub(crate) fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::status(status, json!({"error": {"message": message.into()}}))
    }

    /// A 400 naming the field at fault.
    pub(crate) fn field(field: &str, message: &str) -> Answer {
        Answer::status(
            400,
            json!({"error": {"message": format!("{field}: {message}"), "field": field}}),
        )
    }

    /// 405, with the methods `path` allows.
    pub(crate) fn method(method: &str, path: &str, allow: &'static str) -> Answer {
        Answer {
            status: 405,
            body: json!({"error": {"message": format!("{method} is not allowed on {path}; use {allow}")}}),
            allow: Some(allow),
            raw: None,
        }
    }
}

/// Serves the admin API on `listener` from a thread of its own.
pub(crate) fn start(
    listener: TcpListener,
    token: Option<String>,
    current: Arc<crate::runtime::Current>,
    mailboxes: Arc<Vec<Mailbox>>,
    ledger: Option<(LedgerHandle, Store)>,
) -> Result<(), String> {
    let admin = Admin {
        token,
        current,
        mailboxes,
        ledger,
    };
    std::thread::Builder::new()
        .name("busbar-admin".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = serve(s, &admin) {
                            tracing::debug!("admin connection: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("admin accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the admin thread: {e}"))
}

/// Reads one request (head and `content-length` body), or the answer that refuses it.
fn read(s: &mut impl Read) -> std::io::Result<Result<(Request, Option<String>), Answer>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (method, target, auth, length, head_len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                };
                let length = match header("content-length") {
                    None => 0,
                    Some(v) => match v.parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => {
                            return Ok(Err(Answer::error(400, "content-length is not a number")));
                        }
                    },
                };
                if header("transfer-encoding").is_some() {
                    return Ok(Err(Answer::error(
                        411,
                        "send the body with content-length (chunked bodies are not taken here)",
                    )));
                }
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                    header("authorization"),
                    length,
                    head_len,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Ok(Err(Answer::error(431, "the request head is over 16 KiB")));
            }
            Err(e) => return Ok(Err(Answer::error(400, format!("not an HTTP request: {e}")))),
        }
    };
    if length > MAX_BODY {
        return Ok(Err(Answer::error(413, "the request body is over 1 MiB")));
    }
    let mut body = buf.split_off(head_len);
    while body.len() < length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Ok((
        Request {
            method,
            path,
            query,
            body,
        },
        auth,
    )))
}

/// One admin connection: the TLS handshake first when `[admin.tls]` is set (with the
/// generation's certificates, so a reload changes them for the next connection; with
/// `client_ca`, a client without a certificate from that CA fails here, before its token is
/// read), then one request and its answer.
fn serve(s: TcpStream, admin: &Admin) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    match admin.current.get().server_tls.admin {
        None => serve_plain(s, admin),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, s);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock)?;
            }
            serve_plain(&mut tls, admin)?;
            tls.conn.send_close_notify();
            tls.flush()
        }
    }
}

fn serve_plain(mut s: impl Read + Write, admin: &Admin) -> std::io::Result<()> {
    let (req, auth) = match read(&mut s)? {
        Ok(r) => r,
        Err(a) => return answer(&mut s, &a),
    };
    // The status page itself is static (its numbers come from /stats, which needs the token).
    let page = req.path == "/" && req.method == "GET";
    if let Some(t) = admin.token.as_ref().filter(|_| !page) {
        let given = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
        // Compared in full whatever the first difference, so timing says nothing of the token.
        let ok = given.is_some_and(|g| {
            g.len() == t.len() && g.bytes().zip(t.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
        });
        if !ok {
            return answer(
                &mut s,
                &Answer::error(
                    401,
                    "the admin API needs `Authorization: Bearer <token>` (the token in the variable admin.token_env names)",
                ),
            );
        }
    }
    let a = route(admin, &req);
    answer(&mut s, &a)
}

fn route(admin: &Admin, req: &Request) -> Answer {
    let m = req.method.as_str();
    match req.path.as_str() {
        "/stats" => match m {
            "GET" => {
                let reports = stats::gather(&admin.mailboxes);
                let config = admin.current.get().config;
                let mut v = stats::stats(&config, admin.mailboxes.len(), &reports);
                if let Some((l, _)) = &admin.ledger {
                    v["ledger"] = govern::ledger_stats(l, &reports);
                }
                Answer::ok(v)
            }
            _ => Answer::method(m, &req.path, "GET"),
        },
        "/" => match m {
            "GET" => Answer::raw(
                "text/html; charset=utf-8",
                include_bytes!("status.html").to_vec(),
            ),
            _ => Answer::method(m, &req.path, "GET"),
        },
        "/metrics" => match m {
            "GET" => {
                let reports = stats::gather(&admin.mailboxes);
                let config = admin.current.get().config;
                let outside = crate::telemetry::exposition::Outside {
                    control_full: crate::control::CHANNEL_FULL
                        .load(std::sync::atomic::Ordering::Relaxed),
                    ledger_full: admin
                        .ledger
                        .as_ref()
                        .map(|(l, _)| l.stats.dropped.load(std::sync::atomic::Ordering::Relaxed)),
                    fleet: admin
                        .ledger
                        .as_ref()
                        .filter(|_| config.fleet.is_some())
                        .map(|(l, _)| {
                            let get = |c: &std::sync::atomic::AtomicU64| {
                                c.load(std::sync::atomic::Ordering::Relaxed)
                            };
                            crate::telemetry::exposition::FleetCounts {
                                pending: get(&l.stats.fleet_pending),
                                round_trips: get(&l.stats.fleet_round_trips),
                                refused: get(&l.stats.fleet_down),
                            }
                        }),
                };
                let text = crate::telemetry::exposition::render(&config, &reports, outside);
                Answer::raw(
                    crate::telemetry::exposition::CONTENT_TYPE,
                    text.into_bytes(),
                )
            }
            _ => Answer::method(m, &req.path, "GET"),
        },
        "/healthz" => match m {
            "GET" => {
                let reports = stats::gather(&admin.mailboxes);
                let serving = stats::serving_lanes(&admin.current.get().config, &reports);
                let (status, word) = if serving > 0 {
                    (200, "ok")
                } else {
                    (503, "unavailable")
                };
                Answer::status(status, json!({"status": word, "lanes_serving": serving}))
            }
            _ => Answer::method(m, &req.path, "GET"),
        },
        "/admin/reload" => match m {
            "POST" => match admin.current.reload() {
                Ok(r) => Answer::ok(json!({
                    "reloaded": true,
                    "generation": r.generation,
                    "providers": r.providers,
                    "models": r.models,
                    "pools": r.pools,
                    "shards": r.shards,
                    "shards_confirmed": r.shards_acked,
                    "needs_restart": r.needs_restart,
                })),
                Err(e) => Answer::status(
                    400,
                    json!({"reloaded": false, "error": {"message": format!("the config was not reloaded and the old one stays in force: {e}")}}),
                ),
            },
            _ => Answer::method(m, &req.path, "POST"),
        },
        "/admin/openapi.json" => match m {
            "GET" => Answer::ok(
                serde_json::from_str(include_str!("openapi.json"))
                    .unwrap_or_else(|e| json!({"error": {"message": e.to_string()}})),
            ),
            _ => Answer::method(m, &req.path, "GET"),
        },
        p if p.starts_with("/admin/") => govern::route(admin, req),
        p => Answer::error(
            404,
            format!(
                "no admin route {p}; there are GET / (the status page), /metrics, /stats, /healthz, /admin/openapi.json, POST /admin/reload and /admin/keys, /admin/environments, /admin/models/{{name}}/usage"
            ),
        ),
    }
}

fn answer(s: &mut impl Write, a: &Answer) -> std::io::Result<()> {
    let (content_type, body) = match &a.raw {
        Some((t, b)) => (*t, std::borrow::Cow::Borrowed(b.as_slice())),
        None => (
            "application/json",
            std::borrow::Cow::Owned(serde_json::to_vec_pretty(&a.body).unwrap_or_default()),
        ),
    };
    let reason = crate::server::respond::reason(a.status);
    let allow = a
        .allow
        .map(|m| format!("allow: {m}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\n{allow}connection: close\r\n\r\n",
        a.status,
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)
}
