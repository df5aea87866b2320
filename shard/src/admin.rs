//! The admin listener: a plain thread off the data path (loopback by default, a bearer token
//! when configured). Each answer is gathered from the shards through their mailboxes and
//! merged here; the shards never wait on it.
//!
//! ```text
//!   GET /stats    per lane: state, cooldown left, streak, what tripped it, recent error
//!                 classes, in flight / waiting / limit, requests, failures, how long the last
//!                 breaker change took to reach this shard; per shard states
//!   GET /healthz  200 when some lane can serve, else 503
//! ```

use crate::control::{Mailbox, ShardMsg, ShardReport};
use busbar_core::breaker::State;
use busbar_core::config::{Config, Endpoint};
use busbar_core::fault::Class;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for the shards' answers.
const GATHER: Duration = Duration::from_secs(2);
/// Largest admin request head.
const MAX_HEAD: usize = 16 * 1024;
/// Deadline to read a request and write the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin API on `listener` from a thread of its own.
pub(crate) fn start(
    listener: TcpListener,
    token: Option<String>,
    config: Arc<Config>,
    mailboxes: Arc<Vec<Mailbox>>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("busbar-admin".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = serve(s, token.as_deref(), &config, &mailboxes) {
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

fn serve(
    mut s: TcpStream,
    token: Option<&str>,
    config: &Config,
    mailboxes: &[Mailbox],
) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (method, path, auth) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let auth = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                    auth,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                return answer(&mut s, 400, &json!({"error": {"message": "bad request"}}));
            }
        }
    };
    if let Some(t) = token {
        let given = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
        if given != Some(t) {
            return answer(
                &mut s,
                401,
                &json!({"error": {"message": "the admin API needs `Authorization: Bearer <token>` (admin.token_env)"}}),
            );
        }
    }
    let path = path.split('?').next().unwrap_or("");
    match (method.as_str(), path) {
        ("GET", "/stats") => {
            let reports = gather(mailboxes);
            answer(&mut s, 200, &stats(config, mailboxes.len(), &reports))
        }
        ("GET", "/healthz") => {
            let reports = gather(mailboxes);
            let serving = serving_lanes(config, &reports);
            let status = if serving > 0 { 200 } else { 503 };
            let word = if serving > 0 { "ok" } else { "unavailable" };
            answer(
                &mut s,
                status,
                &json!({"status": word, "lanes_serving": serving}),
            )
        }
        (_, "/stats" | "/healthz") => answer(
            &mut s,
            405,
            &json!({"error": {"message": format!("{method} is not allowed on {path}; use GET")}}),
        ),
        _ => answer(
            &mut s,
            404,
            &json!({"error": {"message": format!("no admin route {path}; there are GET /stats and GET /healthz")}}),
        ),
    }
}

fn answer(s: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(body).unwrap_or_default();
    let reason = crate::server::respond::reason(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)
}

/// Every shard's report (a shard that does not answer in time is left out).
fn gather(mailboxes: &[Mailbox]) -> Vec<ShardReport> {
    let (tx, rx) = crossbeam_channel::bounded(mailboxes.len().max(1));
    for m in mailboxes {
        m.send(ShardMsg::Stats(tx.clone()));
    }
    drop(tx);
    let deadline = std::time::Instant::now() + GATHER;
    let mut out = Vec::with_capacity(mailboxes.len());
    while out.len() < mailboxes.len() {
        match rx.recv_deadline(deadline) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    out.sort_by_key(|r| r.shard);
    out
}

fn usable(config: &Config, lane: usize) -> bool {
    let p = &config.providers[config.models[lane].provider];
    matches!(p.endpoint, Endpoint::Mock(_)) || p.api_key_env.is_none() || p.api_key.is_some()
}

/// Lanes that some shard would send a request to now.
fn serving_lanes(config: &Config, reports: &[ShardReport]) -> usize {
    (0..config.models.len())
        .filter(|&i| {
            usable(config, i)
                && reports
                    .iter()
                    .any(|r| r.lanes.get(i).is_some_and(|l| l.state != State::Open))
        })
        .count()
}

fn stats(config: &Config, shards: usize, reports: &[ShardReport]) -> Value {
    let lanes: Vec<Value> = config
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let views: Vec<(usize, &crate::lanes::LaneSnapshot)> = reports
                .iter()
                .filter_map(|r| r.lanes.get(i).map(|l| (r.shard, l)))
                .collect();
            let states: Vec<State> = views.iter().map(|(_, l)| l.state).collect();
            let state = match states.first() {
                Some(first) if states.iter().all(|s| s == first) => first.as_str(),
                Some(_) => "mixed",
                None => "unknown",
            };
            let sum = |f: &dyn Fn(&crate::lanes::LaneSnapshot) -> u64| -> u64 {
                views.iter().map(|(_, l)| f(l)).sum()
            };
            let mut by_class = serde_json::Map::new();
            for (k, c) in Class::ALL.iter().enumerate() {
                let n: u64 = views.iter().map(|(_, l)| l.by_class[k]).sum();
                if n > 0 {
                    by_class.insert(c.as_str().into(), json!(n));
                }
            }
            let mut recent: Vec<(Duration, Class)> = views
                .iter()
                .flat_map(|(_, l)| l.recent.iter().copied())
                .collect();
            recent.sort_by_key(|(ago, _)| *ago);
            recent.truncate(16);
            let spread = views.iter().filter_map(|(_, l)| l.last_spread).max();
            let last_class = views
                .iter()
                .filter_map(|(_, l)| l.last_class)
                .next()
                .map(Class::as_str);
            json!({
                "lane": m.name,
                "provider": config.providers[m.provider].name,
                "upstream_model": m.upstream,
                "state": state,
                "cooldown_remaining_ms": views.iter().map(|(_, l)| l.cooldown_left.as_millis() as u64).max().unwrap_or(0),
                "streak": views.iter().map(|(_, l)| l.streak).max().unwrap_or(0),
                "last_tripped_by": last_class,
                "probe_in_flight": views.iter().any(|(_, l)| l.probing),
                "in_flight": sum(&|l| l.in_flight as u64),
                "waiting": sum(&|l| l.waiting as u64),
                "max_concurrency": sum(&|l| l.limit as u64),
                "requests": sum(&|l| l.requests),
                "failures": sum(&|l| l.failures),
                "hard_failures": views.iter().map(|(_, l)| l.hard_failures).max().unwrap_or(0),
                "errors_by_class": by_class,
                "recent_errors": recent.iter().map(|(ago, c)| json!({"class": c.as_str(), "ago_ms": ago.as_millis() as u64})).collect::<Vec<_>>(),
                "last_change_spread_us": spread.map(|d| d.as_micros() as u64),
                "shards": views.iter().map(|(s, l)| json!({
                    "shard": s,
                    "state": l.state.as_str(),
                    "cooldown_remaining_ms": l.cooldown_left.as_millis() as u64,
                    "in_flight": l.in_flight,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "shards": shards,
        "shards_answered": reports.len(),
        "in_flight": reports.iter().map(|r| r.in_flight).sum::<usize>(),
        "lanes_serving": serving_lanes(config, reports),
        "mailbox_full_drops": crate::control::CHANNEL_FULL.load(std::sync::atomic::Ordering::Relaxed),
        "lanes": lanes,
    })
}
