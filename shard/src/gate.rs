//! Governance on a shard: its view of the virtual keys and environments, its leases on their
//! caps and limits, admission (reserve a request's worst case against every limit that
//! applies) and settlement (correct it to what the request cost). Nothing here blocks: a lease
//! that runs short is asked of the ledger through its channel, and the request waits on a
//! local oneshot until the grant comes back through this shard's mailbox.
//!
//! ```text
//!   admit(key, worst)      for the key, then its environment, each limit that is set:
//!                            Lease::reserve(amount) ── short ──> LedgerMsg::Lease ... Granted
//!                          any refusal: what was reserved goes back, the client gets 429
//!   Ticket::settle(bill)   each reservation settled at the actual amount; the spend and the
//!                          usage go to the ledger (LedgerMsg::Settle)
//!   ShardMsg::Recall       give back what is leased and not reserved
//!   ShardMsg::Key / Env    the view changes; leases of that holder go back (new caps apply
//!                          to the next grant); the admin thread is told it is done
//! ```

use crate::ledger::store::{Settled, Usage};
use crate::ledger::{LedgerHandle, LedgerMsg};
use busbar_core::govern::{
    AccountId, EnvRecord, Holder, KeyRecord, Lease, Limit, Micros, Reserved,
};
use local_sync::oneshot;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The wall clock in Unix milliseconds (calendar windows are UTC).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Longest a request waits for the ledger to answer a lease request.
const LEASE_WAIT: Duration = Duration::from_secs(2);

/// What the ledger said to a lease request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Granted,
    Refused {
        available: u64,
    },
    /// The fleet's books (Redis) could not be reached and nothing may be granted without them.
    FleetDown,
}

/// This shard's lease on one account, and the requests waiting for more of it.
struct Slot {
    lease: Lease,
    ends_at_ms: u64,
    /// An ask that requests wait for is out (the ledger recalls idle lease from other shards
    /// for it if it must).
    needing: bool,
    /// An ask ahead is out: asked while the balance still covers requests, nobody waits for
    /// it, and the ledger grants only what is free at once.
    ahead_out: bool,
    waiters: Vec<oneshot::Sender<Answer>>,
    /// Ask ahead when the balance falls under this (half the last grant), so that requests
    /// seldom wait for the ledger.
    low_water: u64,
    /// Asking ahead is worth it (cleared when the ledger had nothing free to give ahead).
    ahead: bool,
}

/// Why a reservation could not be made.
enum Short {
    /// The limit has only this much left.
    Limit(u64),
    /// The ledger did not answer in time.
    Ledger,
    /// The fleet's books could not be reached.
    FleetDown,
}

/// Why admission stopped a request.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    /// A limit has no room for the request's worst case.
    Limit {
        holder: Holder,
        /// The key's name or the environment's label, for the message.
        name: String,
        limit: Limit,
        cap: u64,
        /// What the request would reserve.
        amount: u64,
        /// What was left (cap - spend - reservations in flight), as far as is known.
        available: Option<u64>,
        /// When the limit's window ends (Unix ms; `u64::MAX` for all time).
        resets_at_ms: u64,
    },
    /// The ledger did not answer in time.
    Ledger,
    /// The fleet's books (Redis) are unreachable and `fleet.on_unreachable` refuses leases.
    FleetDown,
    /// The key was revoked, expired or deleted while the request waited.
    KeyGone,
}

/// What a request turned out to cost.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bill {
    /// No provider answered it: nothing was spent.
    Nothing,
    /// A provider answered, and said what it used.
    Known {
        input: u64,
        output: u64,
        cost: Micros,
    },
    /// A provider answered but its usage could not be read: the worst case is charged.
    Unknown,
}

/// A virtual key's view on this shard.
pub(crate) struct Gate {
    shard: usize,
    ledger: Option<LedgerHandle>,
    by_digest: RefCell<HashMap<[u8; 32], Arc<str>>>,
    keys: RefCell<HashMap<Arc<str>, Rc<KeyRecord>>>,
    envs: RefCell<HashMap<Arc<str>, Rc<EnvRecord>>>,
    slots: RefCell<HashMap<AccountId, Slot>>,
    /// A virtual key was ever issued: every request needs a key (deleting the last one does
    /// not open the gateway).
    closed: std::cell::Cell<bool>,
}

/// A request's reservations, from admission to settlement. Dropped unsettled, it is settled
/// at its worst case (nothing is ever given back that might have been spent).
pub(crate) struct Ticket {
    gate: Rc<Gate>,
    key: Rc<KeyRecord>,
    held: Vec<(AccountId, Reserved)>,
    at_ms: u64,
    worst_cost: Micros,
    worst_tokens: u64,
    model: String,
    settled: bool,
}

impl Gate {
    pub(crate) fn new(
        shard: usize,
        ledger: Option<LedgerHandle>,
        keys: &[([u8; 32], KeyRecord)],
        envs: &[EnvRecord],
        issued: bool,
    ) -> Gate {
        let g = Gate {
            shard,
            ledger,
            by_digest: RefCell::default(),
            keys: RefCell::default(),
            envs: RefCell::default(),
            slots: RefCell::default(),
            closed: std::cell::Cell::new(issued || !keys.is_empty()),
        };
        for (d, k) in keys {
            let id: Arc<str> = k.id.as_str().into();
            g.by_digest.borrow_mut().insert(*d, Arc::clone(&id));
            g.keys.borrow_mut().insert(id, Rc::new(k.clone()));
        }
        for e in envs {
            g.envs
                .borrow_mut()
                .insert(e.name.as_str().into(), Rc::new(e.clone()));
        }
        g
    }

    /// Whether a virtual key was ever issued (then every request needs a key).
    pub(crate) fn has_keys(&self) -> bool {
        self.closed.get()
    }

    /// The key whose secret has this digest.
    pub(crate) fn key(&self, digest: &[u8; 32]) -> Option<Rc<KeyRecord>> {
        let id = self.by_digest.borrow().get(digest).cloned()?;
        self.keys.borrow().get(&id).cloned()
    }

    /// Whether the request's key or its environment has a spend cap or a token limit (then
    /// its output must be bounded).
    pub(crate) fn bounds_output(&self, key: &KeyRecord) -> bool {
        let has = |caps: &busbar_core::govern::Caps, rates: &busbar_core::govern::Rates| {
            caps.daily.is_some()
                || caps.monthly.is_some()
                || caps.all_time.is_some()
                || rates.tpm.is_some()
        };
        has(&key.caps, &key.rates)
            || self
                .envs
                .borrow()
                .get(key.environment.as_str())
                .is_some_and(|e| has(&e.caps, &e.rates))
    }

    /// Reserves a request's worst case (`worst_cost` micro-USD, `worst_tokens`) against every
    /// limit of `key` and of its environment.
    pub(crate) async fn admit(
        self: &Rc<Self>,
        key: &Rc<KeyRecord>,
        worst_cost: Micros,
        worst_tokens: u64,
        now_ms: u64,
    ) -> Result<Ticket, Stop> {
        let mut t = Ticket {
            gate: Rc::clone(self),
            key: Rc::clone(key),
            held: Vec::new(),
            at_ms: now_ms,
            worst_cost,
            worst_tokens,
            model: String::new(),
            settled: false,
        };
        let env = self.envs.borrow().get(key.environment.as_str()).cloned();
        let mut holders = vec![(
            Holder::Key(key.id.as_str().into()),
            key.name.as_str(),
            key.caps,
            key.rates,
        )];
        if let Some(e) = &env {
            holders.push((
                Holder::Environment(e.name.as_str().into()),
                e.name.as_str(),
                e.caps,
                e.rates,
            ));
        }
        for (holder, name, caps, rates) in holders {
            for limit in Limit::ALL {
                let Some(cap) = limit.of(&caps, &rates) else {
                    continue;
                };
                let amount = limit.amount(worst_cost, worst_tokens);
                if amount == 0 {
                    continue;
                }
                let (id, ends) = AccountId::at(holder.clone(), limit, now_ms);
                let stop = |available| Stop::Limit {
                    holder: holder.clone(),
                    name: name.to_string(),
                    limit,
                    cap,
                    amount,
                    available,
                    resets_at_ms: ends,
                };
                if amount > cap {
                    // More than the whole cap: no grant could ever cover it.
                    t.release();
                    return Err(stop(Some(cap)));
                }
                match self.reserve(&id, ends, amount).await {
                    Ok(r) => t.held.push((id, r)),
                    Err(short) => {
                        t.release();
                        return Err(match short {
                            Short::Limit(available) => stop(Some(available)),
                            Short::Ledger => Stop::Ledger,
                            Short::FleetDown => Stop::FleetDown,
                        });
                    }
                }
            }
        }
        // A revocation that landed while the request waited for a lease stops it here.
        let live = self
            .keys
            .borrow()
            .get(key.id.as_str())
            .is_some_and(|k| k.is_live(now_ms));
        if !live {
            t.release();
            return Err(Stop::KeyGone);
        }
        Ok(t)
    }

    /// Reserves `amount` of `id`, asking the ledger for more lease while short. `Err(Some(n))`:
    /// refused, `n` left; `Err(None)`: the ledger did not answer.
    async fn reserve(
        &self,
        id: &AccountId,
        ends_at_ms: u64,
        amount: u64,
    ) -> Result<Reserved, Short> {
        let deadline = monoio::time::Instant::now() + LEASE_WAIT;
        loop {
            let rx = {
                let mut slots = self.slots.borrow_mut();
                let slot = slots.entry(id.clone()).or_insert_with(|| Slot {
                    lease: Lease::default(),
                    ends_at_ms,
                    needing: false,
                    ahead_out: false,
                    waiters: Vec::new(),
                    low_water: 0,
                    ahead: false,
                });
                let short = match slot.lease.reserve(amount) {
                    Ok(r) => {
                        if slot.ahead
                            && !slot.ahead_out
                            && !slot.needing
                            && slot.lease.balance() < slot.low_water
                            && self.ask(id, amount, ends_at_ms, true)
                        {
                            slot.ahead_out = true;
                        }
                        return Ok(r);
                    }
                    Err(short) => short,
                };
                let (tx, rx) = oneshot::channel();
                slot.waiters.push(tx);
                // Asked in earnest even if an ask ahead is out: that one may come late (it does
                // not wake the ledger) or be refused without a recall.
                if !slot.needing {
                    if !self.ask(id, short, ends_at_ms, false) {
                        slot.waiters.pop();
                        return Err(Short::Ledger);
                    }
                    slot.needing = true;
                }
                rx
            };
            let left = deadline.saturating_duration_since(monoio::time::Instant::now());
            match monoio::time::timeout(left, rx).await {
                Ok(Ok(Answer::Granted)) => continue,
                Ok(Ok(Answer::Refused { available })) => {
                    // Refused for another waiter's ask: try again if this one would fit.
                    let balance = self.slots.borrow().get(id).map_or(0, |s| s.lease.balance());
                    if amount > balance.saturating_add(available) {
                        return Err(Short::Limit(available.saturating_add(balance)));
                    }
                }
                Ok(Ok(Answer::FleetDown)) => return Err(Short::FleetDown),
                Ok(Err(_)) | Err(_) => return Err(Short::Ledger),
            }
        }
    }

    /// Asks the ledger for `want` more of `id` (`ahead`: only what is free at once); whether
    /// the ask went out.
    fn ask(&self, id: &AccountId, want: u64, ends_at_ms: u64, ahead: bool) -> bool {
        self.ledger.as_ref().is_some_and(|l| {
            l.send(LedgerMsg::Lease {
                shard: self.shard,
                account: id.clone(),
                want,
                ends_at_ms,
                ahead,
            })
        })
    }

    /// The ledger answered this shard's lease request on `account`.
    pub(crate) fn granted(&self, account: &AccountId, granted: u64, available: u64, ahead: bool) {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(account) else {
            // Nobody waits any more: give it straight back.
            drop(slots);
            self.release(account.clone(), granted, false);
            return;
        };
        slot.lease.add(granted);
        if granted > 0 {
            slot.low_water = granted / 2;
            slot.ahead = true;
        }
        let answer = if ahead {
            slot.ahead_out = false;
            if granted == 0 {
                // Nothing free to give ahead: stop asking ahead until an ask in earnest is
                // granted. Whoever waits, waits for its own ask.
                slot.ahead = false;
                return;
            }
            Answer::Granted
        } else {
            slot.needing = false;
            if granted > 0 {
                Answer::Granted
            } else {
                Answer::Refused { available }
            }
        };
        for w in slot.waiters.drain(..) {
            let _ = w.send(answer);
        }
    }

    /// The ledger could not lease `account` without the fleet's books, which are unreachable.
    pub(crate) fn fleet_down(&self, account: &AccountId) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(account) {
            slot.needing = false;
            for w in slot.waiters.drain(..) {
                let _ = w.send(Answer::FleetDown);
            }
        }
    }

    /// The ledger wants back what this shard holds of `account` and has not reserved.
    pub(crate) fn recall(&self, account: &AccountId) {
        let back = self
            .slots
            .borrow_mut()
            .get_mut(account)
            .map_or(0, |s| s.lease.surrender());
        self.release(account.clone(), back, true);
    }

    fn release(&self, account: AccountId, amount: u64, recalled: bool) {
        if amount == 0 && !recalled {
            return;
        }
        if let Some(l) = &self.ledger {
            l.send(LedgerMsg::Release {
                shard: self.shard,
                account,
                amount,
                recalled,
            });
        }
    }

    /// Gives back every unreserved lease of `holder` (its caps changed, or it is gone).
    fn surrender_all(&self, holder: &Holder) {
        let back: Vec<(AccountId, u64)> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter(|(id, _)| &id.holder == holder)
            .map(|(id, s)| (id.clone(), s.lease.surrender()))
            .collect();
        for (id, n) in back {
            self.release(id, n, false);
        }
    }

    /// A key is new, changed (`record`) or deleted (`None`).
    pub(crate) fn set_key(
        &self,
        id: &str,
        digest: Option<[u8; 32]>,
        record: Option<Arc<KeyRecord>>,
    ) {
        let id: Arc<str> = id.into();
        match record {
            Some(k) => {
                if let Some(d) = digest {
                    self.by_digest.borrow_mut().insert(d, Arc::clone(&id));
                    self.closed.set(true);
                }
                self.keys
                    .borrow_mut()
                    .insert(Arc::clone(&id), Rc::new((*k).clone()));
            }
            None => {
                self.keys.borrow_mut().remove(&id);
                self.by_digest.borrow_mut().retain(|_, v| *v != id);
            }
        }
        self.surrender_all(&Holder::Key(id));
    }

    /// An environment's limits are new, changed or gone.
    pub(crate) fn set_env(&self, name: &str, record: Option<Arc<EnvRecord>>) {
        let name: Arc<str> = name.into();
        match record {
            Some(e) => {
                self.envs
                    .borrow_mut()
                    .insert(Arc::clone(&name), Rc::new((*e).clone()));
            }
            None => {
                self.envs.borrow_mut().remove(&name);
            }
        }
        self.surrender_all(&Holder::Environment(name));
    }

    /// Gives back every unreserved lease (the shard is stopping: what it holds must not be
    /// counted as unsettled at the next start).
    pub(crate) fn surrender_everything(&self) {
        let back: Vec<(AccountId, u64)> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .map(|(id, s)| (id.clone(), s.lease.surrender()))
            .collect();
        for (id, n) in back {
            self.release(id, n, false);
        }
    }

    /// Forgets leases of periods that are over and that nothing reserves any more.
    pub(crate) fn sweep(&self, now_ms: u64) {
        let mut back = Vec::new();
        self.slots.borrow_mut().retain(|id, s| {
            let over = now_ms >= s.ends_at_ms && s.lease.reserved() == 0 && s.waiters.is_empty();
            if over {
                back.push((id.clone(), s.lease.surrender()));
            }
            !over
        });
        for (id, n) in back {
            self.release(id, n, false);
        }
    }

    /// Leases held, for `/stats`: (accounts, unreserved balance, reserved).
    pub(crate) fn held(&self) -> (usize, u64, u64) {
        let slots = self.slots.borrow();
        slots.values().fold((slots.len(), 0, 0), |(n, b, r), s| {
            (n, b + s.lease.balance(), r + s.lease.reserved())
        })
    }
}

impl Ticket {
    /// Names the model that answered (its usage is recorded under it).
    pub(crate) fn answered_by(&mut self, model: &str) {
        if self.model != model {
            self.model = model.to_string();
        }
    }

    /// Settles every reservation at what the request cost, and tells the ledger.
    pub(crate) fn settle(mut self, bill: Bill) {
        self.finish(bill, true);
    }

    /// Gives every reservation back unspent and uncounted (admission stopped the request).
    fn release(&mut self) {
        self.finish(Bill::Nothing, false);
    }

    fn finish(&mut self, bill: Bill, admitted: bool) {
        if self.settled {
            return;
        }
        self.settled = true;
        let (cost, tokens, usage) = match bill {
            Bill::Nothing => (0, 0, Usage::default()),
            Bill::Known {
                input,
                output,
                cost,
            } => (
                cost,
                input.saturating_add(output),
                Usage {
                    spent: cost,
                    input_tokens: input,
                    output_tokens: output,
                    requests: 1,
                    unsettled: 0,
                },
            ),
            Bill::Unknown => (
                self.worst_cost,
                self.worst_tokens,
                Usage {
                    spent: self.worst_cost,
                    requests: 1,
                    ..Usage::default()
                },
            ),
        };
        let mut charges = Vec::with_capacity(self.held.len());
        {
            let mut slots = self.gate.slots.borrow_mut();
            for (id, r) in self.held.drain(..) {
                let actual = match id.limit {
                    // Admitted, so it counts, whatever came of it.
                    Limit::Rpm => u64::from(admitted),
                    Limit::Tpm => tokens,
                    Limit::Daily | Limit::Monthly | Limit::AllTime => cost,
                };
                let spend = match slots.get_mut(&id) {
                    Some(s) => s.lease.settle(r, actual),
                    // Unreachable while reserved (a slot with reservations is never swept);
                    // the reservation is counted spent rather than lost.
                    None => r.amount(),
                };
                // More than the worst case (content by URL the body's size does not bound):
                // it still counts against the cap.
                charges.push((id, spend, actual.saturating_sub(spend)));
            }
        }
        if matches!(bill, Bill::Nothing) && charges.iter().all(|(_, n, over)| *n == 0 && *over == 0)
        {
            return;
        }
        if let Some(l) = &self.gate.ledger {
            l.send(LedgerMsg::Settle(Settled {
                key: self.key.id.clone(),
                environment: self.key.environment.clone(),
                model: std::mem::take(&mut self.model),
                at_ms: self.at_ms,
                usage,
                shard: self.gate.shard,
                charges,
            }));
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Unsettled: the request ended in a way nobody accounted for; charge the worst case.
        self.finish(Bill::Unknown, true);
    }
}
