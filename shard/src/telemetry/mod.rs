//! What busbar tells about itself. Each request leaves a [`Trail`]; when its answer is out
//! the shard counts it in its own metric cells (merged with the other shards' at scrape time,
//! `exposition.rs`) and, when traced or logged, hands it to the telemetry thread
//! (`export.rs`), which exports OTLP spans and writes the access log. A shard never waits:
//! a full channel drops the trail and counts it.
//!
//! ```text
//!   handle: begin (request id, trace context) -> ... -> finish (status, times)
//!        -> Cells::record (this shard)
//!        -> sampled or logged: Finished -> [channel] -> telemetry thread
//! ```

pub(crate) mod cells;
pub(crate) mod export;
pub(crate) mod exposition;
pub(crate) mod trail;

use busbar_codec::http1::{Method, RequestHead};
use busbar_core::config::Telemetry as Settings;
use crossbeam_channel::{Sender, TrySendError};
use std::cell::RefCell;
pub(crate) use trail::{AttemptTrail, TraceCx, Trail};

/// Longest `x-request-id` taken from a client; a longer one (or one with bytes that do not
/// belong in a header or a log) is replaced by one busbar mints.
const MAX_REQUEST_ID: usize = 128;

/// A shard's telemetry: its cells, its way to the telemetry thread, its id source.
pub(crate) struct Telemetry {
    pub(crate) cells: cells::Cells,
    sink: Option<Sender<export::Finished>>,
    settings: Settings,
    tracing: bool,
    rng: RefCell<fastrand::Rng>,
}

impl Telemetry {
    pub(crate) fn new(
        settings: Settings,
        sink: Option<Sender<export::Finished>>,
        seed: u64,
    ) -> Self {
        Self {
            cells: cells::Cells::default(),
            tracing: sink.is_some() && settings.otlp_endpoint.is_some(),
            sink,
            settings,
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// Whether anything here reports a request's usage (so a relayed body is read for it).
    pub(crate) fn wants_usage(&self) -> bool {
        self.settings.metrics || self.sink.is_some()
    }

    /// A new span id (never all zero).
    pub(crate) fn span_id(&self) -> [u8; 8] {
        let mut rng = self.rng.borrow_mut();
        loop {
            let v = rng.u64(..);
            if v != 0 {
                return v.to_be_bytes();
            }
        }
    }

    /// A request begins: its id (the client's `x-request-id` when it is a sane one) and, when
    /// tracing is on, its trace context (the client's `traceparent` followed; otherwise a new
    /// trace, sampled at `sample_ratio`).
    pub(crate) fn begin(&self, head: &RequestHead) -> Trail {
        let id = head
            .header("x-request-id")
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= MAX_REQUEST_ID
                    && v.iter()
                        .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\\')
            })
            .and_then(|v| std::str::from_utf8(v).ok())
            .map_or_else(|| self.mint_id(), str::to_string);
        let path = head.path();
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        // Methods outside the known set are `_OTHER`, as the HTTP conventions say.
        let method = match head.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other(_) => "_OTHER",
        };
        let mut t = Trail::new(id, method, path);
        if self.tracing {
            let span_id = self.span_id();
            t.trace = Some(
                match head
                    .header("traceparent")
                    .and_then(trail::parse_traceparent)
                {
                    Some((trace_id, parent, sampled)) => TraceCx {
                        trace_id,
                        parent: Some(parent),
                        span_id,
                        sampled,
                    },
                    None => {
                        let mut rng = self.rng.borrow_mut();
                        let trace_id = loop {
                            let v = rng.u128(..);
                            if v != 0 {
                                break v.to_be_bytes();
                            }
                        };
                        let sampled = rng.f64() < self.settings.sample_ratio;
                        TraceCx {
                            trace_id,
                            parent: None,
                            span_id,
                            sampled,
                        }
                    }
                },
            );
        }
        t
    }

    fn mint_id(&self) -> String {
        let mut rng = self.rng.borrow_mut();
        format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
    }

    /// The request is over: counted here, and handed to the telemetry thread when it is
    /// traced or logged.
    pub(crate) fn finish(&self, shard: usize, trail: Trail) {
        if self.settings.metrics {
            self.cells.record(&trail);
        }
        let Some(sink) = &self.sink else {
            return;
        };
        let span = self.tracing && trail.trace.is_some_and(|c| c.sampled);
        let log = self.settings.access_log.is_some();
        if !(span || log) {
            return;
        }
        match sink.try_send(export::Finished {
            shard,
            trail,
            span,
            log,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.cells.telemetry_dropped();
            }
        }
    }
}
