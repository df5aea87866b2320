//! A shard's metric cells: plain counters and histograms behind `RefCell`s, written by the
//! shard's own requests only, copied out when the admin thread asks (a scrape) and merged
//! there with the other shards'. Nothing here is shared or atomic; a request costs a few map
//! lookups keyed by borrowed names (no allocation once a label set has been seen).

use super::trail::Trail;
use busbar_codec::Protocol;
use busbar_core::fault::Class;
use hashbrown::{Equivalent, HashMap};
use std::cell::RefCell;
use std::hash::Hash;

/// Upper bounds (seconds) of the request-duration and upstream time-to-first-byte buckets.
pub(crate) const LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// Upper bounds (seconds) of busbar's own overhead: microseconds to milliseconds.
pub(crate) const OVERHEAD_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// A histogram over fixed buckets (counts per bucket, not cumulative; the last is +Inf).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Hist {
    pub(crate) counts: Vec<u64>,
    pub(crate) sum: f64,
}

impl Hist {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
    }

    /// Adds another shard's histogram over the same buckets.
    pub(crate) fn merge(&mut self, other: &Hist) {
        if self.counts.is_empty() {
            self.counts = vec![0; other.counts.len()];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Labels of a request: ingress, egress, pool, model, status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestKey {
    pub(crate) ingress: String,
    pub(crate) egress: String,
    pub(crate) pool: String,
    pub(crate) model: String,
    pub(crate) status: u16,
}

/// Borrowed [`RequestKey`] for lookups (hashes the same: fields in the same order).
#[derive(Hash)]
struct RequestRef<'a> {
    ingress: &'a str,
    egress: &'a str,
    pool: &'a str,
    model: &'a str,
    status: u16,
}

impl Equivalent<RequestKey> for RequestRef<'_> {
    fn equivalent(&self, k: &RequestKey) -> bool {
        self.status == k.status
            && self.ingress == k.ingress
            && self.egress == k.egress
            && self.pool == k.pool
            && self.model == k.model
    }
}

/// A label tuple of strings, owned ([`Labels`]) or borrowed (`[&str; N]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Labels<const N: usize>(pub(crate) [String; N]);

#[derive(Hash)]
struct LabelsRef<'a, const N: usize>([&'a str; N]);

impl<const N: usize> Equivalent<Labels<N>> for LabelsRef<'_, N> {
    fn equivalent(&self, k: &Labels<N>) -> bool {
        self.0.iter().zip(&k.0).all(|(a, b)| *a == b.as_str())
    }
}

/// Tokens and spend of one key, environment and model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Spend {
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
    pub(crate) reasoning: u64,
    /// Micro-dollars.
    pub(crate) cost_micros: u64,
}

/// Everything a shard counts; [`Cells::snapshot`] copies it for a scrape.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) requests: HashMap<RequestKey, u64>,
    /// (ingress, pool, model).
    pub(crate) duration: HashMap<Labels<3>, Hist>,
    /// (model, provider).
    pub(crate) upstream_ttfb: HashMap<Labels<2>, Hist>,
    /// (ingress).
    pub(crate) overhead: HashMap<Labels<1>, Hist>,
    /// (key, environment, model).
    pub(crate) spend: HashMap<Labels<3>, Spend>,
    /// (pool, model that failed, reason).
    pub(crate) failovers: HashMap<Labels<3>, u64>,
    /// (pool, policy, model chosen first).
    pub(crate) decisions: HashMap<Labels<3>, u64>,
    /// (ingress, egress, field).
    pub(crate) dropped: HashMap<Labels<3>, u64>,
    /// Trails the telemetry thread's channel had no room for.
    pub(crate) telemetry_dropped: u64,
}

/// One shard's cells.
#[derive(Debug, Default)]
pub(crate) struct Cells {
    s: RefCell<Snapshot>,
}

fn bump<'m, 'q, K: Eq + Hash, V: Default, Q: Hash + Equivalent<K>>(
    map: &'m mut HashMap<K, V>,
    q: &'q Q,
    own: impl FnOnce(&'q Q) -> K,
) -> &'m mut V {
    if !map.contains_key(q) {
        map.insert(own(q), V::default());
    }
    map.get_mut(q).expect("inserted above when missing")
}

impl Cells {
    /// A copy of everything counted so far.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.s.borrow().clone()
    }

    /// A trail the telemetry thread's channel had no room for.
    pub(crate) fn telemetry_dropped(&self) {
        self.s.borrow_mut().telemetry_dropped += 1;
    }

    /// Counts a finished request.
    pub(crate) fn record(&self, t: &Trail) {
        let mut s = self.s.borrow_mut();
        let s = &mut *s;
        let ingress = t.ingress.map_or("none", Protocol::as_str);
        let answer = t.answer();
        let egress = answer.map_or("none", |a| a.protocol.as_str());
        let pool = t.pool.as_deref().unwrap_or("");
        let model = answer
            .map(|a| a.lane.as_str())
            .or(t.model.as_deref())
            .unwrap_or("");
        let q = RequestRef {
            ingress,
            egress,
            pool,
            model,
            status: t.status,
        };
        *bump(&mut s.requests, &q, |q| RequestKey {
            ingress: q.ingress.into(),
            egress: q.egress.into(),
            pool: q.pool.into(),
            model: q.model.into(),
            status: q.status,
        }) += 1;
        if let Some(end) = t.end {
            let secs = (end - t.started).as_secs_f64();
            observe(
                &mut s.duration,
                [ingress, pool, model],
                &LATENCY_BUCKETS,
                secs,
            );
        }
        if let Some(o) = t.overhead() {
            observe(
                &mut s.overhead,
                [ingress],
                &OVERHEAD_BUCKETS,
                o.as_secs_f64(),
            );
        }
        for a in &t.attempts {
            if let Some(head) = a.head_at {
                let secs = (head - a.start).as_secs_f64();
                let key = [a.lane.as_str(), a.provider.as_str()];
                observe(&mut s.upstream_ttfb, key, &LATENCY_BUCKETS, secs);
            }
        }
        // Every attempt before the answering one (or all, when none answered) failed over.
        let failed = t.answered.unwrap_or(t.attempts.len());
        for a in &t.attempts[..failed] {
            let reason = a.class.map_or("unknown", Class::as_str);
            *count(&mut s.failovers, [pool, a.lane.as_str(), reason]) += 1;
        }
        if let (Some(policy), Some(first)) = (t.policy, t.attempts.first()) {
            *count(&mut s.decisions, [pool, policy, first.lane.as_str()]) += 1;
        }
        for field in &t.dropped {
            *count(&mut s.dropped, [ingress, egress, field.as_str()]) += 1;
        }
        if let (Some(u), Some(a)) = (t.usage, answer) {
            let key = t.key.as_deref().unwrap_or("");
            let env = t.environment.as_deref().unwrap_or("");
            let sp = bump(&mut s.spend, &LabelsRef([key, env, a.lane.as_str()]), own);
            sp.input += u.input;
            sp.output += u.output;
            sp.cache_read += u.cache_read;
            sp.cache_write += u.cache_write;
            sp.reasoning += u.reasoning;
            sp.cost_micros += t.cost_micros.unwrap_or(0);
        }
    }
}

fn own<const N: usize>(q: &LabelsRef<'_, N>) -> Labels<N> {
    Labels(q.0.map(str::to_string))
}

fn count<'a, const N: usize>(map: &'a mut HashMap<Labels<N>, u64>, key: [&str; N]) -> &'a mut u64 {
    bump(map, &LabelsRef(key), own)
}

fn observe<const N: usize>(
    map: &mut HashMap<Labels<N>, Hist>,
    key: [&str; N],
    bounds: &[f64],
    v: f64,
) {
    bump(map, &LabelsRef(key), own).observe(bounds, v);
}
