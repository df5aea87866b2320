//! A shard's lanes: for every model, this shard's replica of its breaker, its bulkhead and its
//! recent history. What one replica decides reaches the others through the shard mailboxes.
//!
//! ```text
//!   enter(lane)  breaker: closed -> go | open -> refused | half-open -> win the one
//!                process-wide probe slot (an atomic flag per lane) or be refused
//!   slot(lane)   bulkhead: a permit, or wait in a bounded queue until a deadline
//!   record(..)   outcome -> breaker replica -> Change? -> every other shard's mailbox
//!   apply(..)    a Change from another shard
//! ```
//!
//! Never blocks and never locks: replicas are `RefCell`s on this shard, the probe slot is one
//! compare-and-swap, a full peer mailbox is counted and skipped.
//!
//! Why the probe slot is a shared atomic flag and not a message: a probe owned by one shard
//! through the channels would wait for traffic to reach that shard, and a shard may see none
//! for the lane; any shard that has a request when the cooldown ends can claim the flag, and a
//! claim never blocks. Everything else about a lane crosses shards as messages.

use crate::control::{Mailbox, ShardMsg};
use busbar_core::breaker::{Admit, Breaker, Change, State};
use busbar_core::config::Config;
use busbar_core::fault::Class;
use busbar_core::route::facts::{Ewma, RateReading};
use local_sync::semaphore::{Semaphore, SemaphorePermit};
use monoio::time::Instant;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Most recent failures kept per lane per shard, for `/stats`.
const RECENT: usize = 16;

/// What every shard shares about a lane: its probe slot, and how many hard failures it had.
#[derive(Debug, Default)]
pub(crate) struct LaneShared {
    probing: AtomicBool,
    hard_failures: AtomicU64,
    /// Trip numbers: taken once per trip (never per request), so no two shards' trips share
    /// a number and a close can only end the trip it names.
    trips: AtomicU64,
}

/// Process-wide lane state, one entry per model.
pub(crate) type Shared = Arc<Vec<LaneShared>>;

pub(crate) fn shared(config: &Config) -> Shared {
    Arc::new(
        config
            .models
            .iter()
            .map(|_| LaneShared::default())
            .collect(),
    )
}

struct Lane {
    breaker: RefCell<Breaker>,
    permits: Semaphore,
    limit: usize,
    max_queue: usize,
    queue_timeout: Duration,
    waiting: Cell<usize>,
    requests: Cell<u64>,
    /// Outcomes that count against the provider (not client errors or context overflows).
    failures: Cell<u64>,
    by_class: RefCell<[u64; Class::ALL.len()]>,
    recent: RefCell<VecDeque<(Instant, Class)>>,
    /// How long the last change from another shard took to arrive here.
    last_spread: Cell<Option<Duration>>,
    /// Moving averages of whole-request latency and time to the response head, in ms.
    latency: Cell<Ewma>,
    ttft: Cell<Ewma>,
    /// The provider's rate limits left, from its last response headers.
    rate: Cell<RateReading>,
}

/// Why a lane did not take a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    /// Its breaker is open (or half-open with the probe out elsewhere).
    Open {
        class: Option<Class>,
        left: Duration,
    },
    /// Its bulkhead is full and the wait was over or the queue full.
    Busy,
}

/// The lane's one probe, while this request holds it; released when dropped.
pub(crate) struct Probe {
    shared: Shared,
    lane: usize,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shared[self.lane]
            .probing
            .store(false, Ordering::Release);
    }
}

/// A request's admission to a lane: the probe it holds, if it is the lane's probe.
pub(crate) struct Entry {
    pub(crate) probe: Option<Probe>,
}

/// The lanes of one shard.
pub(crate) struct Lanes {
    shard: usize,
    /// The config generation these lanes belong to; changes name it so a peer on another
    /// generation ignores them.
    generation: u64,
    lanes: Vec<Lane>,
    shared: Shared,
    peers: std::rc::Rc<Vec<Mailbox>>,
}

impl Lanes {
    /// This shard's lanes; `peers` are the other shards' mailboxes.
    pub(crate) fn new(
        config: &Config,
        shard: usize,
        shards: usize,
        shared: Shared,
        peers: std::rc::Rc<Vec<Mailbox>>,
        generation: u64,
    ) -> Self {
        let lanes = config
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                // Each shard gets its share of the lane's limits, rounded up.
                let share = |n: usize| n.div_ceil(shards.max(1)).max(1);
                let limit = share(m.lane.max_concurrency);
                Lane {
                    breaker: RefCell::new(Breaker::new(
                        config.breaker,
                        (i as u64) << 16 | shard as u64,
                    )),
                    permits: Semaphore::new(limit),
                    limit,
                    max_queue: if m.lane.max_queue == 0 {
                        0
                    } else {
                        share(m.lane.max_queue)
                    },
                    queue_timeout: Duration::from_millis(m.lane.queue_timeout_ms),
                    waiting: Cell::new(0),
                    requests: Cell::new(0),
                    failures: Cell::new(0),
                    by_class: RefCell::new([0; Class::ALL.len()]),
                    recent: RefCell::new(VecDeque::with_capacity(RECENT)),
                    last_spread: Cell::new(None),
                    latency: Cell::new(Ewma::default()),
                    ttft: Cell::new(Ewma::default()),
                    rate: Cell::new(RateReading::default()),
                }
            })
            .collect();
        Self {
            shard,
            generation,
            lanes,
            shared,
            peers,
        }
    }

    /// Whether the breaker lets a request onto `lane` now; a half-open lane takes one probe
    /// for the whole process.
    pub(crate) fn enter(&self, lane: usize, now: Instant) -> Result<Entry, Refused> {
        let l = &self.lanes[lane];
        let b = l.breaker.borrow();
        match b.admit(now.into_std()) {
            Admit::Yes => Ok(Entry { probe: None }),
            Admit::No { until } => Err(Refused::Open {
                class: b.last_class(),
                left: until.saturating_duration_since(now.into_std()),
            }),
            Admit::Probe => {
                let slot = &self.shared[lane].probing;
                if slot
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    Ok(Entry {
                        probe: Some(Probe {
                            shared: Arc::clone(&self.shared),
                            lane,
                        }),
                    })
                } else {
                    Err(Refused::Open {
                        class: b.last_class(),
                        left: Duration::ZERO,
                    })
                }
            }
        }
    }

    /// A slot in the lane's bulkhead: at once if one is free, else after waiting in a queue of
    /// bounded length, until `deadline` at the latest (and the lane's own wait limit).
    pub(crate) async fn slot(
        &self,
        lane: usize,
        deadline: Instant,
    ) -> Result<SemaphorePermit<'_>, Refused> {
        let l = &self.lanes[lane];
        if let Ok(p) = l.permits.try_acquire() {
            return Ok(p);
        }
        if l.waiting.get() >= l.max_queue {
            return Err(Refused::Busy);
        }
        let until = deadline.min(Instant::now() + l.queue_timeout);
        // Counted while waiting, and uncounted however the wait ends (a dropped future too).
        struct Waiting<'a>(&'a Cell<usize>);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get().saturating_sub(1));
            }
        }
        l.waiting.set(l.waiting.get() + 1);
        let guard = Waiting(&l.waiting);
        let got = monoio::time::timeout_at(until, l.permits.acquire()).await;
        drop(guard);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Refused::Busy),
        }
    }

    /// Records how a request on `lane` went (`None`: it was answered) and spreads any change
    /// of state to the other shards.
    pub(crate) fn record(
        &self,
        lane: usize,
        outcome: Option<Class>,
        retry_after: Option<Duration>,
        probe: bool,
        name: &str,
    ) {
        let l = &self.lanes[lane];
        let now = Instant::now();
        l.requests.set(l.requests.get() + 1);
        if let Some(class) = outcome {
            if class.counts_as_failure() || class.is_hard() {
                l.failures.set(l.failures.get() + 1);
            }
            if let Some(i) = Class::ALL.iter().position(|c| *c == class) {
                l.by_class.borrow_mut()[i] += 1;
            }
            let mut recent = l.recent.borrow_mut();
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back((now, class));
            if class.is_hard() {
                self.shared[lane]
                    .hard_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut b = l.breaker.borrow_mut();
        let Some(mut change) = b.record(now.into_std(), outcome, retry_after, probe) else {
            return;
        };
        if matches!(change, Change::Tripped { .. }) {
            let n = self.shared[lane].trips.fetch_add(1, Ordering::AcqRel) + 1;
            b.renumber(&mut change, n);
        }
        drop(b);
        match change {
            Change::Tripped {
                until,
                streak,
                class,
                ..
            } => {
                let ms = until.saturating_duration_since(now.into_std()).as_millis();
                if class.is_hard() {
                    tracing::error!(
                        shard = self.shard,
                        lane = name,
                        class = class.as_str(),
                        cooldown_ms = ms as u64,
                        "lane opened: the provider refused busbar's credentials or account; fix the key or the billing, the lane stays open for the long cooldown"
                    );
                } else {
                    tracing::warn!(
                        shard = self.shard,
                        lane = name,
                        class = class.as_str(),
                        streak,
                        cooldown_ms = ms as u64,
                        "lane opened"
                    );
                }
            }
            Change::Closed { .. } => {
                tracing::info!(
                    shard = self.shard,
                    lane = name,
                    "lane closed: probe answered"
                );
            }
        }
        for p in self.peers.iter() {
            p.send(ShardMsg::Lane {
                generation: self.generation,
                lane,
                change,
            });
        }
    }

    /// The config generation of these lanes.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Carries what this shard knew of the lanes of an older generation over to the lanes of
    /// the same name here (breaker state, moving averages, rate readings): a reload must not
    /// close an open lane or forget what it measured. `old_names` are the old lanes' names.
    pub(crate) fn inherit(&self, names: &[String], old: &Lanes, old_names: &[String]) {
        for (i, name) in names.iter().enumerate() {
            let Some(j) = old_names.iter().position(|n| n == name) else {
                continue;
            };
            let (new, prev) = (&self.lanes[i], &old.lanes[j]);
            new.breaker.borrow_mut().inherit(&prev.breaker.borrow());
            new.latency.set(prev.latency.get());
            new.ttft.set(prev.ttft.get());
            new.rate.set(prev.rate.get());
        }
    }

    /// A lane answered: how long to its response head and to its end.
    pub(crate) fn observe(&self, lane: usize, ttft: Duration, total: Duration) {
        let l = &self.lanes[lane];
        let mut t = l.ttft.get();
        t.add(ttft.as_secs_f64() * 1000.0);
        l.ttft.set(t);
        let mut a = l.latency.get();
        a.add(total.as_secs_f64() * 1000.0);
        l.latency.set(a);
    }

    /// A provider's response head on `lane`: its rate-limit headers, if any.
    pub(crate) fn rate_headers<'h>(&self, lane: usize, header: impl Fn(&str) -> Option<&'h str>) {
        let l = &self.lanes[lane];
        let mut r = l.rate.get();
        r.update(header, std::time::Instant::now());
        l.rate.set(r);
    }

    /// The live facts of `lane` for a policy: (in flight, limit, latency ms, ttft ms,
    /// requests left, tokens left, half-open), or `None` while its breaker is open.
    pub(crate) fn facts(&self, lane: usize, now: std::time::Instant) -> Option<LaneFacts> {
        let l = &self.lanes[lane];
        let half_open = match l.breaker.borrow().admit(now) {
            Admit::Yes => false,
            Admit::Probe => !self.shared[lane].probing.load(Ordering::Acquire),
            Admit::No { .. } => return None,
        };
        if half_open && self.shared[lane].probing.load(Ordering::Acquire) {
            return None;
        }
        let (requests_left, tokens_left) = l.rate.get().get(now);
        Some(LaneFacts {
            in_flight: l.limit - l.permits.available_permits().min(l.limit),
            limit: l.limit,
            latency_ms: l.latency.get().get(),
            ttft_ms: l.ttft.get().get(),
            requests_left,
            tokens_left,
            half_open,
        })
    }

    /// Applies a change another shard made.
    pub(crate) fn apply(&self, lane: usize, change: &Change) {
        let Some(l) = self.lanes.get(lane) else {
            return;
        };
        let at = match change {
            Change::Tripped { at, .. } | Change::Closed { at, .. } => *at,
        };
        l.last_spread.set(Some(
            std::time::Instant::now().saturating_duration_since(at),
        ));
        l.breaker.borrow_mut().apply(change);
    }

    /// Whether any lane can take a request now (for `/healthz`); `usable` says whether a
    /// lane's provider can be used at all (credentials present).
    pub(crate) fn any_open_for_traffic(&self, usable: impl Fn(usize) -> bool) -> bool {
        let now = std::time::Instant::now();
        self.lanes
            .iter()
            .enumerate()
            .any(|(i, l)| usable(i) && !matches!(l.breaker.borrow().admit(now), Admit::No { .. }))
    }

    /// This shard's view of every lane.
    pub(crate) fn snapshot(&self) -> Vec<LaneSnapshot> {
        let now = Instant::now();
        self.lanes
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let b = l.breaker.borrow();
                LaneSnapshot {
                    state: b.state(now.into_std()),
                    cooldown_left: b.cooldown_left(now.into_std()),
                    streak: b.streak(),
                    last_class: b.last_class(),
                    in_flight: l.limit - l.permits.available_permits().min(l.limit),
                    waiting: l.waiting.get(),
                    limit: l.limit,
                    requests: l.requests.get(),
                    failures: l.failures.get(),
                    by_class: *l.by_class.borrow(),
                    recent: l
                        .recent
                        .borrow()
                        .iter()
                        .map(|(at, c)| (now.saturating_duration_since(*at), *c))
                        .collect(),
                    last_spread: l.last_spread.get(),
                    hard_failures: self.shared[i].hard_failures.load(Ordering::Relaxed),
                    probing: self.shared[i].probing.load(Ordering::Acquire),
                    trips: self.shared[i].trips.load(Ordering::Relaxed),
                    latency_ms: l.latency.get().get(),
                    ttft_ms: l.ttft.get().get(),
                }
            })
            .collect()
    }
}

/// What a policy sees of a lane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneFacts {
    pub(crate) in_flight: usize,
    pub(crate) limit: usize,
    pub(crate) latency_ms: Option<f64>,
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) requests_left: Option<f64>,
    pub(crate) tokens_left: Option<f64>,
    pub(crate) half_open: bool,
}

/// One shard's view of one lane, sent to the admin thread.
#[derive(Debug, Clone)]
pub(crate) struct LaneSnapshot {
    pub(crate) state: State,
    pub(crate) cooldown_left: Duration,
    pub(crate) streak: u32,
    pub(crate) last_class: Option<Class>,
    pub(crate) in_flight: usize,
    pub(crate) waiting: usize,
    pub(crate) limit: usize,
    pub(crate) requests: u64,
    pub(crate) failures: u64,
    pub(crate) by_class: [u64; Class::ALL.len()],
    /// (how long ago, class), oldest first.
    pub(crate) recent: Vec<(Duration, Class)>,
    pub(crate) last_spread: Option<Duration>,
    pub(crate) hard_failures: u64,
    pub(crate) probing: bool,
    /// Times the lane tripped, on any shard, in this config generation.
    pub(crate) trips: u64,
    /// Moving averages of whole-request latency and time to the response head (ms).
    pub(crate) latency_ms: Option<f64>,
    pub(crate) ttft_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> Config {
        busbar_core::config::parse(
            "[breaker]\nconsecutive_failures = 1\ncooldown_ms = 1000\njitter = 0.0\n\
             [providers.p]\nprotocol = \"openai\"\nmock = {}\n[models.m]\nprovider = \"p\"\n",
            &|_| None,
        )
        .unwrap()
    }

    /// Two shards' lanes over one shared state: a trip applied to both, then one probe for the
    /// whole process once the cooldown is over; the slot frees when the probe is dropped.
    #[test]
    fn one_probe_for_the_whole_process() {
        let c = config();
        let shared = shared(&c);
        let a = Lanes::new(&c, 0, 2, Arc::clone(&shared), Default::default(), 0);
        let b = Lanes::new(&c, 1, 2, Arc::clone(&shared), Default::default(), 0);
        a.record(0, Some(Class::ServerError), None, false, "m");
        // What the mailbox would carry to shard 1.
        let l = a.lanes[0].breaker.borrow();
        let until = Instant::now() + l.cooldown_left(std::time::Instant::now());
        drop(l);
        assert!(matches!(
            a.enter(0, Instant::now()),
            Err(Refused::Open { .. })
        ));
        b.lanes[0].breaker.borrow_mut().apply(&Change::Tripped {
            seq: 1,
            until: until.into_std(),
            streak: 1,
            class: Class::ServerError,
            at: std::time::Instant::now(),
        });
        assert!(matches!(
            b.enter(0, Instant::now()),
            Err(Refused::Open { .. })
        ));

        let later = Instant::now() + Duration::from_secs(5);
        let probe = a.enter(0, later).expect("shard 0 may probe");
        assert!(probe.probe.is_some());
        assert!(
            matches!(b.enter(0, later), Err(Refused::Open { left, .. }) if left.is_zero()),
            "shard 1 must not probe while shard 0 does"
        );
        assert!(
            matches!(a.enter(0, later), Err(Refused::Open { .. })),
            "nor shard 0 twice"
        );
        drop(probe);
        let again = b.enter(0, later).expect("the slot is free again");
        assert!(again.probe.is_some());
    }
}
