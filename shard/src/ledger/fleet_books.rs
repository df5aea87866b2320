//! The ledger's side of a fleet: this node's allotments from Redis, and what it owes Redis.
//! The books ([`super::books`]) grant shards out of a node's allotment as a single node grants
//! out of its cap; this module tops the allotment up from Redis, queues settlements and
//! releases (joined per account, sent every few milliseconds in one pipeline, journaled in the
//! ledger file until Redis has them), gives idle allotment back, and carries the node through
//! Redis outages and a Redis that lost its data. It never runs on a shard: only the ledger
//! thread calls it, and its Redis calls are bounded by `fleet.timeout_ms`.
//!
//! ```text
//!   shard asks more ─ books: allotment short? ─ top_up ─ LEASE ─> Redis
//!   shard settles   ─ books ─ FleetBooks::push ─ journal (LMDB) ─ flush every 5 ms ─ SETTLE/RELEASE
//!   Redis in a new life ─ Books::fleet_reset ─ CONTRIBUTE (the file's totals) ─> Redis
//! ```

use super::books::{Book, Books};
use busbar_core::govern::{AccountId, Holder, Limit, Micros};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The fleet's books in Redis, when this node is one of a fleet.
pub(crate) struct FleetBooks {
    pub(crate) client: crate::fleet::FleetClient,
    pub(crate) unreachable: busbar_core::config::Unreachable,
    /// Settlements and releases Redis has not taken yet, numbered in the order they
    /// happened, sent in that order (every [`FLEET_FLUSH_EVERY`], or sooner when many wait).
    pending: Vec<Pending>,
    /// Per account (Redis key): where its latest entry is in `pending`.
    last: HashMap<String, usize>,
    /// How many of `pending` (from the front) have been sent at least once.
    tried: usize,
    /// The last number given (never below the clock in µs, the file's last, or the journal's).
    seq: u64,
    /// Journal records of entries Redis has taken, to delete from the file.
    done: Vec<u64>,
    last_flush: Instant,
    /// The leases the node held when it last stopped are still to be given back (before it
    /// takes any new one).
    reclaim: bool,
    /// Redis is in a life this node has not given its spend to yet (see `Books::fleet_reset`).
    reset: bool,
    /// The life the node is in changed since the file last heard.
    life_changed: bool,
    /// Whether this run has seen Redis in the node's life (else it looks first).
    life_checked: bool,
    /// The node's first try to give its spend to a Redis life: (life, the last number it
    /// covered). Should its answer be lost, a later try that Redis answers "given already"
    /// drops only what that first one covered.
    attempt: Option<(u64, u64)>,
    /// `attempt` changed, or numbers were given, since the file last heard.
    attempt_changed: bool,
    seq_written: u64,
    /// When the node last looked at Redis's life while idle.
    life_seen: Instant,
    /// When the node last tried to give a new life its spend.
    reset_tried: Option<Instant>,
}

/// What the ledger file keeps for the fleet.
#[derive(Default)]
pub(crate) struct FleetFile {
    /// What waits for Redis, in order.
    pub(crate) journal: Vec<(u64, crate::fleet::Op)>,
    /// The last number given.
    pub(crate) seq: u64,
    /// The life of Redis the node was in.
    pub(crate) life: u64,
    /// Its first try to give its spend to a new life (see `FleetBooks::attempt`).
    pub(crate) attempt: Option<(u64, u64)>,
}

/// One entry waiting for Redis.
struct Pending {
    seq: u64,
    op: crate::fleet::Op,
    /// The number it is journaled under in the file, if it is.
    written: Option<u64>,
}

impl Pending {
    fn step(&self) -> Option<crate::fleet::Step<'_>> {
        match &self.op {
            crate::fleet::Op::Settle {
                key,
                from_lease,
                over,
                keep,
            } => Some(crate::fleet::Step::Settle {
                key,
                from_lease: *from_lease,
                over: *over,
                expire_at_ms: *keep,
                seq: self.seq,
            }),
            crate::fleet::Op::Release { key, amount } => Some(crate::fleet::Step::Release {
                key,
                amount: *amount,
                seq: self.seq,
            }),
            crate::fleet::Op::Unsettled { .. } => None,
        }
    }
}

impl FleetBooks {
    /// `file`: what the ledger file kept for Redis (a node that stopped while Redis was away,
    /// or crashed), sent first unless Redis has lost it meanwhile.
    pub(crate) fn new(
        mut client: crate::fleet::FleetClient,
        unreachable: busbar_core::config::Unreachable,
        file: FleetFile,
    ) -> Self {
        let FleetFile {
            journal,
            seq: last_seq,
            life,
            attempt,
        } = file;
        client.set_life(life);
        // The last number given: each new entry takes the next one up.
        let seq = journal
            .iter()
            .map(|(s, _)| *s)
            .fold(crate::fleet::next_seq(last_seq), u64::max);
        let pending: Vec<Pending> = journal
            .into_iter()
            .filter_map(|(seq, op)| {
                let op = match op {
                    crate::fleet::Op::Unsettled { record, amount } => {
                        let Some(account) = AccountId::from_record_key(&record) else {
                            tracing::error!(record, "fleet journal: not an account; dropped");
                            return None;
                        };
                        crate::fleet::Op::Settle {
                            key: client.key(&account),
                            from_lease: amount,
                            over: 0,
                            keep: keep_until(&account, account.ends_at_ms()),
                        }
                    }
                    op => op,
                };
                Some(Pending {
                    seq,
                    op,
                    written: Some(seq),
                })
            })
            .collect();
        Self {
            client,
            unreachable,
            last: HashMap::new(),
            // Sent before, perhaps: never merged into.
            tried: pending.len(),
            pending,
            seq,
            done: Vec::new(),
            last_flush: Instant::now(),
            reclaim: true,
            reset: false,
            life_changed: false,
            life_checked: false,
            life_seen: Instant::now(),
            reset_tried: None,
            attempt,
            attempt_changed: false,
            seq_written: seq,
        }
    }

    /// Queues a settlement or release (sent with the next flush).
    pub(super) fn push(&mut self, op: crate::fleet::Op) {
        use crate::fleet::Op::Settle;
        self.seq += 1;
        // A settlement of an account whose latest entry is an unsent settlement joins it
        // (under the new number, which covers both): one per account per flush. One already
        // sent once is not joined: Redis may have applied it under its own number.
        if let Settle {
            key,
            from_lease,
            over,
            keep,
        } = &op
            && let Some(&i) = self.last.get(key.as_str())
            && i >= self.tried
            && let Some(p) = self.pending.get_mut(i)
            && let Settle {
                from_lease: n,
                over: o,
                keep: k,
                ..
            } = &mut p.op
        {
            p.seq = self.seq;
            *n += from_lease;
            *o += over;
            *k = (*k).max(*keep);
            return;
        }
        self.last.insert(op.key().to_string(), self.pending.len());
        self.pending.push(Pending {
            seq: self.seq,
            op,
            written: None,
        });
    }

    /// Settlements and releases waiting for Redis.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether a flush is due by `now` (and how long until it is, when not).
    fn due(&self, now: Instant) -> Option<Duration> {
        if self.pending.is_empty() && !self.reclaim && self.life_checked {
            return None;
        }
        if self.reset {
            return Some(self.reset_wait(now));
        }
        let since = now.saturating_duration_since(self.last_flush);
        if self.pending.len() >= FLEET_FLUSH_AT || since >= FLEET_FLUSH_EVERY {
            Some(Duration::ZERO)
        } else {
            Some(FLEET_FLUSH_EVERY - since)
        }
    }

    /// How long until the next try to give a new life this node's spend (tries are paced like
    /// reconnects).
    fn reset_wait(&self, now: Instant) -> Duration {
        self.reset_tried.map_or(Duration::ZERO, |t| {
            crate::fleet::RETRY.saturating_sub(now.saturating_duration_since(t))
        })
    }

    /// Sends everything waiting in one round trip (kept for the next try if Redis is away),
    /// then, once, gives back the leases held when the node last stopped.
    pub(crate) fn flush(&mut self, now: Instant) {
        self.last_flush = now;
        if !self.life_checked {
            match self.client.current_life() {
                Ok(life) => {
                    self.life_checked = true;
                    self.reset = life != self.client.life();
                }
                Err(_) => return,
            }
        }
        if self.reset {
            return;
        }
        while !self.pending.is_empty() {
            // Nothing is sent, so nothing is marked as sent, while Redis cannot be reached.
            if !self.client.reachable() {
                return;
            }
            let n = self.pending.len().min(FLEET_CHUNK);
            let steps: Vec<crate::fleet::Step<'_>> =
                self.pending[..n].iter().filter_map(Pending::step).collect();
            // What may have reached Redis is never merged into again (see `push`).
            self.tried = self.tried.max(n);
            match self.client.batch(&steps) {
                Ok(()) => self.forget_first(n),
                Err(crate::fleet::FleetError::Refused(e)) => {
                    tracing::error!(
                        "Redis refused settlements or releases, dropped from the fleet's books (usage stays in the local file): {e}"
                    );
                    self.forget_first(n);
                }
                Err(crate::fleet::FleetError::Unreachable(_)) => return,
                Err(crate::fleet::FleetError::NewLife) => {
                    self.reset = true;
                    return;
                }
            }
        }
        if self.reclaim {
            let Ok(keys) = self.client.holdings() else {
                return;
            };
            // The numbers are taken before the call: should its answer be lost, none of them
            // is given again.
            let first = self.seq + 1;
            self.seq += keys.len() as u64;
            match self.client.reclaim(&keys, first) {
                Ok(()) => self.reclaim = false,
                Err(crate::fleet::FleetError::Refused(e)) => {
                    tracing::error!("Redis refused to take back this node's old leases: {e}");
                    self.reclaim = false;
                }
                Err(crate::fleet::FleetError::Unreachable(_)) => {}
                Err(crate::fleet::FleetError::NewLife) => self.reset = true,
            }
        }
    }

    /// The first `n` entries are Redis's now.
    fn forget_first(&mut self, n: usize) {
        self.done
            .extend(self.pending[..n].iter().filter_map(|p| p.written));
        self.pending.drain(..n);
        self.tried = self.tried.saturating_sub(n);
        self.last.retain(|_, i| *i >= n);
        for i in self.last.values_mut() {
            *i -= n;
        }
    }

    /// What waits with a number up to `upto` is dropped (a Redis in a new life has it in
    /// what the node gave it).
    fn forget_upto(&mut self, upto: u64) {
        let (gone, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.seq <= upto);
        self.done.extend(gone.iter().filter_map(|p| p.written));
        self.pending = kept;
        self.last = self
            .pending
            .iter()
            .enumerate()
            .map(|(i, p)| (p.op.key().to_string(), i))
            .collect();
        self.tried = 0;
    }

    /// Brings the file's journal up to date inside `txn`: entries new or changed since the
    /// last call are written, those Redis has taken are deleted, and the last number used is
    /// kept (a restarted node numbers on from it, whatever its clock says).
    pub(crate) fn journal(
        &mut self,
        store: &super::store::Store,
        txn: &mut heed::RwTxn<'_>,
    ) -> heed::Result<bool> {
        let mut wrote = false;
        for p in &mut self.pending {
            if p.written == Some(p.seq) {
                continue;
            }
            if let Some(old) = p.written {
                store.fleet_forget_in(txn, old)?;
            }
            store.fleet_journal_in(txn, p.seq, &p.op)?;
            p.written = Some(p.seq);
            wrote = true;
        }
        for seq in self.done.drain(..) {
            store.fleet_forget_in(txn, seq)?;
            wrote = true;
        }
        if self.life_changed {
            store.fleet_set_life_in(txn, self.client.life())?;
            self.life_changed = false;
            wrote = true;
        }
        if self.attempt_changed {
            if let Some(a) = self.attempt {
                store.fleet_set_attempt_in(txn, a)?;
            }
            self.attempt_changed = false;
            wrote = true;
        }
        // Every number given is in the file before a restart could give it again.
        if self.seq != self.seq_written {
            store.fleet_set_seq_in(txn, self.seq)?;
            self.seq_written = self.seq;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Whether the file's journal is behind.
    pub(crate) fn journal_behind(&self) -> bool {
        self.life_changed
            || self.attempt_changed
            || self.seq != self.seq_written
            || !self.done.is_empty()
            || self.pending.iter().any(|p| p.written != Some(p.seq))
    }
}

/// Settlements and releases wait at most this long for Redis (spend within a node's lease is
/// already counted as held by the fleet, so they only move it from held to spent).
const FLEET_FLUSH_EVERY: Duration = Duration::from_millis(5);
/// ... or until this many are waiting.
const FLEET_FLUSH_AT: usize = 1024;
/// How often a node gives a sign of life (and looks at Redis's life).
const FLEET_BEAT: Duration = Duration::from_secs(1);
/// Most settlements and releases in one pipeline (a backlog goes in several).
const FLEET_CHUNK: usize = 512;

/// Most a node asks Redis for beyond what a shard needs, in multiples of the ask.
const FLEET_ASKS: u64 = 16;
/// Allotment unused this long goes back to Redis, for the other nodes.
const FLEET_IDLE: Duration = Duration::from_secs(1);
/// Redis keeps an account this long past its period (0 for all-time accounts: kept).
const FLEET_KEEP_MS: u64 = 24 * 3600 * 1000;

impl Books {
    /// This node is one of a fleet: caps are checked against every node's leases in Redis.
    pub(crate) fn with_fleet(mut self, fleet: FleetBooks) -> Books {
        self.fleet = Some(fleet);
        self
    }

    /// Sends the fleet's waiting settlements and releases, when a flush is due.
    pub(crate) fn fleet_flush(&mut self, now: Instant) {
        if let Some(f) = self.fleet.as_mut()
            && f.due(now) == Some(Duration::ZERO)
        {
            f.flush(now);
        }
    }

    /// Sends the fleet's waiting settlements and releases now.
    #[cfg(test)]
    pub(crate) fn fleet_flush_now(&mut self) {
        self.fleet_start(Instant::now());
    }

    /// Sends what the last run left for Redis and gives back its leases (or finds that Redis is
    /// in a new life).
    pub(crate) fn fleet_start(&mut self, now: Instant) {
        if let Some(f) = self.fleet.as_mut() {
            f.flush(now);
        }
    }

    /// How long the ledger may sleep before the fleet needs it.
    pub(crate) fn fleet_wait(&self, now: Instant) -> Option<Duration> {
        self.fleet.as_ref().and_then(|f| f.due(now))
    }

    /// Brings the fleet's journal in the file up to date (see [`FleetBooks::journal`]).
    pub(crate) fn fleet_journal(
        &mut self,
        store: &super::store::Store,
        txn: &mut heed::RwTxn<'_>,
    ) -> heed::Result<bool> {
        match self.fleet.as_mut() {
            Some(f) => f.journal(store, txn),
            None => Ok(false),
        }
    }

    /// Whether the fleet's journal in the file is behind.
    pub(crate) fn fleet_journal_behind(&self) -> bool {
        self.fleet.as_ref().is_some_and(FleetBooks::journal_behind)
    }

    /// Whether Redis is in a life this node has not given its spend to yet.
    pub(crate) fn fleet_reset_due(&self) -> bool {
        self.fleet
            .as_ref()
            .is_some_and(|f| f.reset && f.reset_wait(Instant::now()).is_zero())
    }

    /// Redis lost its data (or this node is new to it): gives it, once, this node's part of
    /// the fleet's books in the open periods, and starts over from there. Per account with a
    /// limit: what the node spent (`charged` reads a spend account's total from the ledger
    /// file, which has every settlement the node made, sent to Redis or not; a rate account's
    /// is in memory) and what its shards hold (the node's lease in the new life). What was
    /// waiting for the old life is dropped (it is in those totals), and so is any allotment no
    /// shard holds. On failure nothing changes here, and it is tried again.
    pub(crate) fn fleet_reset(&mut self, charged: &dyn Fn(&str) -> Micros, now_ms: u64) {
        let Some(fleet) = self.fleet.as_mut() else {
            return;
        };
        if !fleet.reset {
            return;
        }
        fleet.reset_tried = Some(Instant::now());
        let life = match fleet.client.current_life() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("fleet: cannot read Redis's life yet: {e}");
                return;
            }
        };
        // (spent, held by the shards, keep until) per account.
        let mut parts: HashMap<AccountId, (u64, u64, u64)> = HashMap::new();
        let holders = self
            .keys
            .values()
            .map(|k| (Holder::Key(k.id.as_str().into()), &k.caps, &k.rates))
            .chain(self.envs.values().map(|e| {
                (
                    Holder::Environment(e.name.as_str().into()),
                    &e.caps,
                    &e.rates,
                )
            }));
        for (holder, caps, rates) in holders {
            for limit in [Limit::Daily, Limit::Monthly, Limit::AllTime] {
                if limit.of(caps, rates).is_some() {
                    let (a, ends) = AccountId::at(holder.clone(), limit, now_ms);
                    let spent = charged(&a.record_key());
                    parts.insert(a.clone(), (spent, 0, keep_until(&a, ends)));
                }
            }
        }
        for (a, b) in &self.accounts {
            if b.ends_at_ms <= now_ms {
                continue;
            }
            let held = (0..self.shards).map(|s| b.account.leased(s)).sum::<u64>();
            let part = parts.entry(a.clone()).or_insert_with(|| {
                let spent = if a.limit.is_spend() {
                    charged(&a.record_key())
                } else {
                    b.account.spent()
                };
                (spent, 0, keep_until(a, b.ends_at_ms))
            });
            part.1 = held;
        }
        let list: Vec<(String, u64, u64, u64)> = parts
            .iter()
            .filter(|(_, (spent, held, _))| *spent > 0 || *held > 0)
            .map(|(a, (spent, held, keep))| (fleet.client.key(a), *spent, *held, *keep))
            .collect();
        // The first try for this life is remembered (in the file too) with what it covers; and
        // nothing it covers is merged into from here (see `push`).
        let covered = match fleet.attempt {
            Some((l, upto)) if l == life => upto,
            _ => {
                fleet.attempt = Some((life, fleet.seq));
                fleet.attempt_changed = true;
                fleet.seq
            }
        };
        fleet.tried = fleet.pending.len();
        let given_now = match fleet.client.contribute(life, &list) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("fleet: cannot give Redis this node's spend yet: {e}");
                return;
            }
        };
        if list.is_empty() {
            tracing::info!(
                life,
                "fleet: this node joined Redis's life (nothing of its own to give it)"
            );
        } else {
            tracing::warn!(
                life,
                accounts = list.len(),
                usd = list
                    .iter()
                    .filter(|p| p.0.contains("_usd:"))
                    .map(|p| p.1)
                    .sum::<u64>() as f64
                    / 1e6,
                given_now,
                "fleet: Redis is in a life this node had not given its spend to (it lost its data, or the node is new to it): given its spend and holdings in the open periods"
            );
        }
        // Given now: what the file says, which has everything waiting. Given by an earlier try
        // whose answer was lost: what waited then.
        let dropped = fleet.pending.len();
        fleet.forget_upto(if given_now { u64::MAX } else { covered });
        let dropped = dropped - fleet.pending.len();
        fleet.reset = false;
        fleet.life_changed = true;
        fleet.life_checked = true;
        if dropped > 0 {
            tracing::info!(
                dropped,
                "fleet: settlements meant for the old life dropped (counted in what was given)"
            );
        }
        for b in self.accounts.values_mut() {
            b.unshared = 0;
            b.account
                .set_cap(b.account.cap().saturating_sub(b.account.available()));
        }
    }

    /// The ledger is closing: what waits goes to Redis, and every lease the node holds there
    /// goes back (what its shards held is in the file as unsettled, and is settled when the
    /// node starts again). What Redis does not take stays journaled.
    pub(crate) fn fleet_close(&mut self, now: Instant) {
        if let Some(f) = self.fleet.as_mut() {
            f.reclaim = true;
            f.flush(now);
        }
    }

    /// Round trips to Redis so far (0 when not a fleet).
    pub(crate) fn fleet_round_trips(&self) -> u64 {
        self.fleet.as_ref().map_or(0, |f| f.client.round_trips())
    }

    /// Settlements waiting for Redis (0 when not a fleet).
    pub(crate) fn fleet_pending(&self) -> usize {
        self.fleet.as_ref().map_or(0, FleetBooks::pending)
    }

    /// Once a second, busy or idle: the node's sign of life (see `fleet::FORGET`), and a look
    /// at whether Redis lost its data (a busy node also hears it from its next settlement).
    pub(crate) fn fleet_beat(&mut self, now: Instant) {
        let Some(fleet) = self.fleet.as_mut() else {
            return;
        };
        if now.saturating_duration_since(fleet.life_seen) < FLEET_BEAT || fleet.reset {
            return;
        }
        fleet.life_seen = now;
        if let Ok(life) = fleet.client.current_life() {
            fleet.reset = life != fleet.client.life();
        }
    }

    /// Fleet upkeep (every tick): settlements waiting for Redis are sent, and allotment idle
    /// for a while goes back to Redis for the other nodes.
    pub(crate) fn fleet_tick(&mut self, now: Instant) {
        let Some(fleet) = self.fleet.as_mut() else {
            return;
        };
        if fleet.due(now) == Some(Duration::ZERO) {
            fleet.flush(now);
        }
        for b in self.accounts.values_mut() {
            if b.recall.is_some() || now.duration_since(b.last_ask) < FLEET_IDLE {
                continue;
            }
            // What no shard holds: the node's own idle allotment (its unshared part first).
            let idle = b.account.available();
            if idle == 0 {
                continue;
            }
            // Given up here first: should Redis not hear of it, it counts the allotment as
            // still this node's (less for the fleet, never more).
            let from_unshared = idle.min(b.unshared);
            let shared = idle - from_unshared;
            b.unshared -= from_unshared;
            b.account.set_cap(b.account.cap().saturating_sub(idle));
            if shared > 0 {
                fleet.push(crate::fleet::Op::Release {
                    key: b.key.clone(),
                    amount: shared,
                });
            }
        }
    }
}

/// When Redis may forget an account: a day after its period (never for all-time ones).
pub(super) fn keep_until(account: &AccountId, ends_at_ms: u64) -> u64 {
    // Past the year 10,000 (an all-time account's "end") is for ever too.
    const NEVER: u64 = 253_402_300_800_000;
    match ends_at_ms.checked_add(FLEET_KEEP_MS) {
        Some(t) if account.limit != Limit::AllTime && t < NEVER => t,
        _ => 0,
    }
}

/// Fleet mode: the node has less than a shard wants; it asks Redis for the rest (and some
/// headroom). Whether the node can answer at all (false: Redis is unreachable and nothing may
/// be granted without it).
pub(super) fn top_up(
    fleet: &mut FleetBooks,
    b: &mut Book,
    account: &AccountId,
    want: u64,
    ahead: bool,
    now: Instant,
) -> bool {
    // The leases of the node's last life go back first (else they would be given back with
    // the new one).
    if fleet.reclaim || !fleet.life_checked {
        fleet.flush(now);
    }
    let need = want - b.account.available();
    let ask = need.saturating_add(want.saturating_mul(FLEET_ASKS));
    let leased = if fleet.reset {
        Err(crate::fleet::FleetError::NewLife)
    } else if fleet.reclaim {
        Err(crate::fleet::FleetError::Unreachable(
            "this node's old leases are not given back yet".into(),
        ))
    } else {
        fleet
            .client
            .lease(account, b.cap, need, ask, keep_until(account, b.ends_at_ms))
    };
    match leased {
        Ok((granted, _)) => {
            b.account.set_cap(b.account.cap().saturating_add(granted));
            true
        }
        // An ask ahead is not worth an allowance.
        Err(e) if ahead => {
            fleet.reset |= matches!(e, crate::fleet::FleetError::NewLife);
            true
        }
        // Redis in a new life: the ledger gives it this node's spend next; meanwhile, as if
        // it were unreachable.
        Err(e) => {
            fleet.reset |= matches!(e, crate::fleet::FleetError::NewLife);
            match fleet.unreachable {
                busbar_core::config::Unreachable::Open { allowance }
                    if b.unshared.saturating_add(need) <= allowance =>
                {
                    tracing::warn!("fleet: {e}; granting from the local allowance");
                    b.unshared += need;
                    b.account.set_cap(b.account.cap().saturating_add(need));
                    true
                }
                _ => {
                    tracing::warn!("fleet: {e}; a lease that needs Redis is refused");
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::books::Out;
    use crate::ledger::books::tests::{ask, day, grants, key};
    use busbar_core::config::Unreachable;

    fn fleet_node(
        redis: &crate::fleet::testing::Redis,
        id: &str,
        unreachable: Unreachable,
    ) -> Books {
        let client = crate::fleet::testing::client(redis, "books:", id);
        let file = FleetFile {
            life: client.life(),
            ..FleetFile::default()
        };
        Books::new(2, vec![key(100_000)], Vec::new()).with_fleet(FleetBooks::new(
            client,
            unreachable,
            file,
        ))
    }

    #[test]
    fn two_fleet_nodes_share_one_cap_and_idle_allotment_goes_back() {
        let redis = crate::fleet::testing::Redis::start();
        let mut n1 = fleet_node(&redis, "n1", Unreachable::Closed);
        let mut n2 = fleet_node(&redis, "n2", Unreachable::Closed);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let (mut spent1, mut spent2) = (0u64, 0u64);
        // Both nodes' shards take 1,000 at a time and spend it, until nothing is granted.
        for round in 0..500 {
            let (node, spent) = if round % 2 == 0 {
                (&mut n1, &mut spent1)
            } else {
                (&mut n2, &mut spent2)
            };
            let shard = round % 4 / 2;
            out.clear();
            node.lease(ask(shard, day(), 1_000, u64::MAX - 1), || 0, t0, &mut out);
            let g: u64 = grants(&out).iter().map(|(_, g)| g).sum();
            if g >= 1_000 {
                node.settle(shard, &day(), 1_000, 0);
                node.release(shard, &day(), g - 1_000, false, &mut Vec::new());
                *spent += 1_000;
            }
        }
        // Every node's grants came out of the one cap: together they spent exactly it.
        assert_eq!(spent1 + spent2, 100_000, "{spent1} + {spent2}");
        assert!(spent1 > 0 && spent2 > 0);
        // Settlements go to Redis in one round trip per ledger batch.
        n1.fleet_flush_now();
        n2.fleet_flush_now();
        let mut probe = crate::fleet::testing::client(&redis, "books:", "probe");
        let shared = probe.shared(&day()).unwrap();
        assert_eq!(shared.spent, 100_000);
        // Nothing is left to lease anywhere.
        out.clear();
        n1.lease(ask(0, day(), 1, u64::MAX - 1), || 0, t0, &mut out);
        assert_eq!(grants(&out), vec![(0, 0)]);

        // A new day's account: n1 takes allotment, leaves it idle; after the idle time it goes
        // back to Redis and n2 can have all of it.
        let next = AccountId { period: 8, ..day() };
        out.clear();
        n1.lease(
            ask(0, next.clone(), 1_000, u64::MAX - 1),
            || 0,
            t0,
            &mut out,
        );
        n1.release(0, &next, grants(&out)[0].1, false, &mut Vec::new());
        assert!(probe.shared(&next).unwrap().held > 0);
        n1.fleet_tick(t0 + FLEET_IDLE + Duration::from_millis(1));
        n1.fleet_flush_now();
        assert_eq!(probe.shared(&next).unwrap().held, 0);
        out.clear();
        n2.lease(
            ask(0, next.clone(), 99_000, u64::MAX - 1),
            || 0,
            t0,
            &mut out,
        );
        assert_eq!(grants(&out)[0].1, 99_000.max(grants(&out)[0].1));
        assert!(grants(&out)[0].1 >= 99_000);
    }

    #[test]
    fn an_unreachable_fleet_refuses_or_grants_a_bounded_allowance_and_settles_later() {
        let redis = crate::fleet::testing::Redis::start();
        let port = redis.port;
        let mut closed = fleet_node(&redis, "closed", Unreachable::Closed);
        let mut open = fleet_node(&redis, "open", Unreachable::Open { allowance: 3_000 });
        let t0 = Instant::now();
        let mut out = Vec::new();
        open.lease(ask(0, day(), 1_000, u64::MAX - 1), || 0, t0, &mut out);
        let first: u64 = grants(&out).iter().map(|(_, g)| g).sum();
        assert!(first >= 1_000);
        // The node's whole allotment from Redis (more than its shard was granted).
        let allotted = crate::fleet::testing::client(&redis, "books:", "open")
            .shared(&day())
            .unwrap()
            .mine;
        assert!(allotted >= first);
        drop(redis);
        // Closed: a lease that needs Redis is refused as such (the shard answers 503).
        out.clear();
        closed.lease(ask(0, day(), 1_000, u64::MAX - 1), || 0, t0, &mut out);
        assert!(
            matches!(out.as_slice(), [Out::Down { shard: 0, .. }]),
            "{out:?}"
        );
        // Open: what the node already holds still serves; past it, at most the allowance.
        let mut spent = 0;
        for _ in 0..100 {
            out.clear();
            open.lease(ask(1, day(), 1_000, u64::MAX - 1), || 0, t0, &mut out);
            match out.as_slice() {
                [Out::Grant { granted, .. }] if *granted >= 1_000 => {
                    open.settle(1, &day(), 1_000, 0);
                    open.release(1, &day(), granted - 1_000, false, &mut Vec::new());
                    spent += 1_000;
                }
                [Out::Down { .. }] => break,
                other => panic!("{other:?}"),
            }
        }
        // Everything the node was allotted (but what shard 0 still holds), then the allowance,
        // and not a unit more.
        assert_eq!(
            spent,
            allotted - first + 3_000,
            "allotted {allotted}, shard 0 holds {first}"
        );
        assert!(open.fleet_pending() > 0);
        // Redis is back, empty (a new server, without the old one's data): the node sees a
        // new life and gives it what its file says it spent (here: what its shards settled)
        // and what its shards hold (shard 0's first grant), not what waited for the old life.
        let _back = crate::fleet::testing::Redis::start_on(port);
        std::thread::sleep(crate::fleet::RETRY);
        open.fleet_flush_now();
        assert!(open.fleet_reset_due());
        let file = |record: &str| {
            if record == day().record_key() {
                spent
            } else {
                0
            }
        };
        open.fleet_reset(&file, 1);
        assert!(!open.fleet_reset_due());
        assert_eq!(open.fleet_pending(), 0);
        let mut probe = crate::fleet::testing::client(&_back, "books:", "probe");
        let shared = probe.shared(&day()).unwrap();
        assert_eq!((shared.spent, shared.held), (spent, first));
        // A second reset in the same life adds nothing.
        let again = crate::fleet::testing::client(&_back, "books:", "open");
        let mut again = Books::new(2, vec![key(100_000)], Vec::new()).with_fleet(FleetBooks::new(
            again,
            Unreachable::Closed,
            FleetFile::default(),
        ));
        if let Some(f) = again.fleet.as_mut() {
            f.reset = true;
        }
        again.fleet_reset(&file, 1);
        assert_eq!(probe.shared(&day()).unwrap().spent, spent);
    }

    #[test]
    fn settlements_join_per_account_but_never_across_a_release_and_all_reach_redis() {
        let redis = crate::fleet::testing::Redis::start();
        let client = crate::fleet::testing::client(&redis, "join:", "n1");
        let file = FleetFile {
            life: client.life(),
            ..FleetFile::default()
        };
        let mut f = FleetBooks::new(client, Unreachable::Closed, file);
        let (a, b) = (day(), AccountId { period: 8, ..day() });
        let (ka, kb) = (f.client.key(&a), f.client.key(&b));
        // A node's first flush gives back what its last life held (nothing here).
        f.flush(Instant::now());
        assert!(!f.reclaim);
        // The node holds a sixteenth of each.
        for acc in [&a, &b] {
            assert_eq!(
                f.client.lease(acc, 1_000_000, 1, 10_000, 0).unwrap().0,
                62_500
            );
        }
        let settle = |key: &str, n: u64| crate::fleet::Op::Settle {
            key: key.into(),
            from_lease: n,
            over: 0,
            keep: 0,
        };
        f.push(settle(&ka, 100));
        f.push(settle(&kb, 200));
        f.push(settle(&ka, 300));
        assert_eq!(f.pending(), 2, "a's two settlements are one");
        f.push(crate::fleet::Op::Release {
            key: ka.clone(),
            amount: 1_000,
        });
        f.push(settle(&ka, 50));
        // The settlement after the release is its own entry, numbered after it.
        assert_eq!(f.pending(), 4);
        let seqs: Vec<u64> = f.pending.iter().map(|p| p.seq).collect();
        assert!(seqs[2] < seqs[3], "{seqs:?}");
        f.flush(Instant::now());
        assert_eq!(f.pending(), 0);
        let mut probe = crate::fleet::testing::client(&redis, "join:", "n1");
        let sa = probe.shared(&a).unwrap();
        assert_eq!((sa.spent, sa.mine), (450, 62_500 - 450 - 1_000));
        let sb = probe.shared(&b).unwrap();
        assert_eq!((sb.spent, sb.mine), (200, 62_500 - 200));
        // A new life of the node gives back what the old one held, and only that.
        let client = crate::fleet::testing::client(&redis, "join:", "n1");
        let file = FleetFile {
            life: client.life(),
            seq: f.seq,
            ..FleetFile::default()
        };
        let mut again = FleetBooks::new(client, Unreachable::Closed, file);
        again.flush(Instant::now());
        assert!(!again.reclaim);
        let (sa, sb) = (probe.shared(&a).unwrap(), probe.shared(&b).unwrap());
        assert_eq!((sa.spent, sa.held, sb.spent, sb.held), (450, 0, 200, 0));
    }

    #[test]
    fn a_backlog_goes_in_chunks_and_a_lost_answer_to_a_contribution_costs_nothing() {
        let redis = crate::fleet::testing::Redis::start();
        let client = crate::fleet::testing::client(&redis, "chunks:", "n1");
        let life = client.life();
        let mut f = FleetBooks::new(
            client,
            Unreachable::Closed,
            FleetFile {
                life,
                ..FleetFile::default()
            },
        );
        f.flush(Instant::now());
        // 1,300 accounts' settlements: three pipelines; then one more on the last account
        // joins nothing sent and is applied after.
        let accounts: Vec<AccountId> = (0..1_300)
            .map(|p| AccountId { period: p, ..day() })
            .collect();
        for a in &accounts {
            f.push(crate::fleet::Op::Settle {
                key: f.client.key(a),
                from_lease: 10,
                over: 0,
                keep: 0,
            });
        }
        f.flush(Instant::now());
        assert_eq!(f.pending(), 0);
        let mut probe = crate::fleet::testing::client(&redis, "chunks:", "probe");
        for a in [&accounts[0], &accounts[600], &accounts[1_299]] {
            assert_eq!(probe.shared(a).unwrap().spent, 10);
        }

        // A node whose first contribution to a new life was applied but never answered (or
        // that crashed after it): its file says which of its waiting settlements that
        // contribution covered. Redis answers "given already"; only the rest are sent.
        let life_now = probe.current_life().unwrap();
        let (a, b) = (&accounts[0], &accounts[1]);
        let mut other = crate::fleet::testing::unborn(&redis, "chunks:", "n2");
        let settle = |key: String, n: u64| crate::fleet::Op::Settle {
            key,
            from_lease: n,
            over: 0,
            keep: 0,
        };
        // The lost contribution: 1,000 on account a (its file's total then).
        other
            .contribute(life_now, &[(other.key(a), 1_000, 0, 0)])
            .unwrap();
        let (ka, kb) = (other.key(a), other.key(b));
        let file = FleetFile {
            journal: vec![
                (100, settle(ka.clone(), 400)),
                (300, settle(kb.clone(), 70)),
            ],
            seq: 300,
            life: 0,
            attempt: Some((life_now, 200)),
        };
        let mut n2 = Books::new(2, vec![key(100_000)], Vec::new()).with_fleet(FleetBooks::new(
            other,
            Unreachable::Closed,
            file,
        ));
        n2.fleet_flush_now();
        assert!(n2.fleet_reset_due());
        n2.fleet_reset(&|_| 1_000, 1);
        assert!(!n2.fleet_reset_due());
        // Only the settlement numbered after what the contribution covered is left, and sent.
        assert_eq!(n2.fleet_pending(), 1);
        n2.fleet_flush_now();
        assert_eq!(n2.fleet_pending(), 0);
        assert_eq!(probe.shared(a).unwrap().spent, 10 + 1_000);
        assert_eq!(probe.shared(b).unwrap().spent, 10 + 70);
    }
}
