//! `after_response`: events about answered requests, delivered to a webhook off the request
//! path.
//!
//! ```text
//!   request done -> push(event): queue full? drop + count : enqueue      (never waits)
//!   drain task   -> one event at a time -> webhook POST (deadline) -> sent | failed
//! ```
//!
//! The queue is per shard and bounded; the drain task holds only a weak reference to its
//! config generation, so a reload retires the old one once its last request is done.

use super::webhook::Webhook;
use crate::routes::Routes;
use busbar_core::route::Summary;
use local_sync::mpsc::unbounded;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// How a request ended, as the audit event tells it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) latency_ms: f64,
    pub(crate) usage: Option<Usage>,
    pub(crate) cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

struct Event {
    request: Summary,
    outcome: Outcome,
}

/// Delivery counters, for `/stats`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuditCounts {
    pub(crate) queued: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
}

/// The `after_response` stage on one shard.
pub(crate) struct Audit {
    webhook: Webhook,
    capacity: usize,
    pub(crate) headers: Vec<String>,
    waiting: Cell<usize>,
    tx: unbounded::Tx<Event>,
    rx: RefCell<Option<unbounded::Rx<Event>>>,
    counts: Cell<AuditCounts>,
}

impl Audit {
    pub(crate) fn new(webhook: Webhook, capacity: usize, headers: Vec<String>) -> Self {
        let (tx, rx) = unbounded::channel();
        Self {
            webhook,
            capacity,
            headers,
            waiting: Cell::new(0),
            tx,
            rx: RefCell::new(Some(rx)),
            counts: Cell::new(AuditCounts::default()),
        }
    }

    fn count(&self, f: impl FnOnce(&mut AuditCounts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }

    /// Queues an event; a full queue drops it (counted). Never waits.
    pub(crate) fn push(&self, request: Summary, outcome: Outcome) {
        if self.waiting.get() >= self.capacity {
            self.count(|c| c.dropped += 1);
            return;
        }
        if self.tx.send(Event { request, outcome }).is_err() {
            self.count(|c| c.dropped += 1);
            return;
        }
        self.waiting.set(self.waiting.get() + 1);
        self.count(|c| c.queued += 1);
    }

    pub(crate) fn counts(&self) -> AuditCounts {
        self.counts.get()
    }

    /// Starts this generation's drain task (once).
    pub(crate) fn start(routes: &Rc<Routes>) {
        let Some(audit) = routes.hooks.after.as_ref() else {
            return;
        };
        let Some(rx) = audit.rx.borrow_mut().take() else {
            return;
        };
        monoio::spawn(drain(rx, Rc::downgrade(routes)));
    }
}

async fn drain(mut rx: unbounded::Rx<Event>, routes: Weak<Routes>) {
    while let Some(ev) = rx.recv().await {
        let Some(r) = routes.upgrade() else {
            return;
        };
        let Some(audit) = r.hooks.after.as_ref() else {
            return;
        };
        audit.waiting.set(audit.waiting.get().saturating_sub(1));
        #[derive(Serialize)]
        struct Wire<'a> {
            stage: &'static str,
            request: &'a Summary,
            outcome: &'a Outcome,
        }
        let body = serde_json::to_vec(&Wire {
            stage: "after_response",
            request: &ev.request,
            outcome: &ev.outcome,
        });
        let ok = match body {
            Ok(b) => audit
                .webhook
                .post(&r.upstream, &b, |_| Ok(()))
                .await
                .is_ok(),
            Err(_) => false,
        };
        audit.count(|c| if ok { c.sent += 1 } else { c.failed += 1 });
    }
}
