//! A webhook: JSON POSTed to an HTTP endpoint over this shard's upstream connection pool
//! (keep-alive, reused), within a hard deadline, behind a breaker of its own.
//!
//! ```text
//!   post(): breaker open? -> Err(Open) without a call
//!           exchange + read the body, all within the deadline (a late hook is dropped mid-read)
//!           2xx -> Ok(body)     else / timeout / transport -> Err, counted by the breaker
//! ```
//!
//! Never blocks the request beyond its deadline; never retries (the caller falls back).

use crate::upstream::Upstream;
use busbar_core::breaker::{Admit, Breaker, Settings};
use busbar_core::fault::Class;
use monoio::time::{Instant, timeout_at};
use std::cell::RefCell;
use std::time::Duration;

/// Largest reply read from a hook.
const MAX_REPLY: usize = 4 * 1024 * 1024;

/// Why a hook call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookError {
    /// Its breaker is open: not called.
    Open,
    /// No whole answer within the deadline.
    Timeout,
    /// Connect, send or read failed.
    Transport(String),
    /// It answered with a status outside 2xx.
    Status(u16),
    /// Its answer was not what the stage expects.
    Malformed(String),
    /// A script failed (error, overrun, size limit); the kind says which.
    Script(&'static str, String),
}

impl HookError {
    /// A short name for counting.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            HookError::Open => "breaker_open",
            HookError::Timeout => "timeout",
            HookError::Transport(_) => "transport",
            HookError::Status(_) => "status",
            HookError::Malformed(_) => "malformed",
            HookError::Script(kind, _) => kind,
        }
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Open => f.write_str("its breaker is open after repeated failures"),
            HookError::Timeout => f.write_str("no answer within its deadline"),
            HookError::Transport(e) => f.write_str(e),
            HookError::Status(s) => write!(f, "it answered HTTP {s}"),
            HookError::Malformed(e) => write!(f, "malformed reply: {e}"),
            HookError::Script(_, e) => f.write_str(e),
        }
    }
}

/// The breaker of a hook: a few failures in a row stop calls for a second, growing to 30 s.
fn settings() -> Settings {
    Settings {
        consecutive_failures: 3,
        min_requests: 20,
        cooldown: Duration::from_secs(1),
        max_cooldown: Duration::from_secs(30),
        ..Settings::default()
    }
}

/// One webhook endpoint on one shard.
pub(crate) struct Webhook {
    /// Its origin in the shard's upstream pool.
    origin: usize,
    path: String,
    timeout: Duration,
    breaker: RefCell<Breaker>,
}

impl Webhook {
    pub(crate) fn new(origin: usize, path: &str, timeout: Duration, seed: u64) -> Self {
        Self {
            origin,
            path: path.to_string(),
            timeout,
            breaker: RefCell::new(Breaker::new(settings(), seed)),
        }
    }

    /// POSTs `body` (JSON) and reads the reply with `read` when it is a 2xx within the
    /// deadline. A reply `read` refuses counts against the hook's breaker like a failure.
    pub(crate) async fn post<T>(
        &self,
        upstream: &Upstream,
        body: &[u8],
        read: impl FnOnce(&[u8]) -> Result<T, HookError>,
    ) -> Result<T, HookError> {
        let now = std::time::Instant::now();
        let probe = match self.breaker.borrow().admit(now) {
            Admit::Yes => false,
            Admit::Probe => true,
            Admit::No { .. } => return Err(HookError::Open),
        };
        let deadline = Instant::now() + self.timeout;
        let result = timeout_at(deadline, self.exchange(upstream, body, deadline)).await;
        let result = match result {
            Ok(r) => r.and_then(|reply| read(&reply)),
            Err(_) => Err(HookError::Timeout),
        };
        let outcome = match &result {
            Ok(_) => None,
            Err(HookError::Timeout) => Some(Class::Timeout),
            Err(HookError::Status(s)) if *s < 500 => Some(Class::ServerError),
            Err(_) => Some(Class::ServerError),
        };
        self.breaker
            .borrow_mut()
            .record(std::time::Instant::now(), outcome, None, probe);
        result
    }

    async fn exchange(
        &self,
        upstream: &Upstream,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, HookError> {
        let mut req = upstream.buffers.take();
        req.clear();
        req.extend_from_slice(b"POST ");
        req.extend_from_slice(self.path.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        req.extend_from_slice(upstream.host_header(self.origin).as_bytes());
        req.extend_from_slice(
            b"\r\nuser-agent: busbar\r\ncontent-type: application/json\r\naccept: application/json\r\ncontent-length: ",
        );
        req.extend_from_slice(body.len().to_string().as_bytes());
        req.extend_from_slice(b"\r\n\r\n");
        req.extend_from_slice(body);
        let resp = upstream
            .exchange(self.origin, req, deadline)
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    HookError::Timeout
                } else {
                    HookError::Transport(e.to_string())
                }
            })?;
        let status = resp.head.status;
        let (_, reply) = upstream
            .read_to_end(self.origin, resp, MAX_REPLY)
            .await
            .map_err(HookError::Transport)?;
        if (200..300).contains(&status) {
            Ok(reply)
        } else {
            Err(HookError::Status(status))
        }
    }
}
