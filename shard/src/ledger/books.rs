//! The ledger's books, in memory: one [`Account`] per key or environment limit and period,
//! each with what every shard holds of it. Plain state, no file and no thread: the ledger
//! thread feeds it messages and writes what it says is dirty.
//!
//! ```text
//!   lease(shard, account, want)
//!     available >= want      -> grant want + headroom (a little more, so the next requests
//!                               need no round trip; never past what is left)
//!     short, others hold some -> recall: every other holder gives back what it has not
//!                               reserved; the ask waits until all have answered (or 500 ms)
//!     short                  -> grant 0, with what is available
//!   release(shard, n)        -> lease back to the pool (answers a recall)
//!   settle(shard, n)         -> lease turned into spend
//! ```
//!
//! A refusal after a recall means the cap minus spend minus reservations in flight is less
//! than the request's worst case: nothing idle was left anywhere.

use super::fleet_books::{FleetBooks, keep_until, top_up};
use busbar_core::govern::{Account, AccountId, EnvRecord, Holder, KeyRecord, Limit, Micros};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a lease request waits for other shards to give back what they hold.
const RECALL_WAIT: Duration = Duration::from_millis(500);
/// Most a grant adds beyond what was asked, in multiples of the ask (bounds what a crash can
/// leave unsettled).
const HEADROOM_ASKS: u64 = 64;

/// What the books say to a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    /// An answer to a lease request: `granted` (0: refused) and what was left; `ahead`: the
    /// request was an ask ahead.
    Grant {
        shard: usize,
        account: AccountId,
        granted: u64,
        available: u64,
        ahead: bool,
    },
    /// Give back what you hold of `account` and have not reserved.
    Recall { shard: usize, account: AccountId },
    /// A lease request that needed the fleet's books while Redis could not be reached (and
    /// `on_unreachable` is `closed`, or the local allowance is used up).
    Down { shard: usize, account: AccountId },
}

/// A shard's request for `want` more of `account`, whose period ends at `ends_at_ms`;
/// `ahead`: asked before the shard ran out, answered at once with what is free (no recall).
pub(crate) struct Ask {
    pub(crate) shard: usize,
    pub(crate) account: AccountId,
    pub(crate) want: u64,
    pub(crate) ends_at_ms: u64,
    pub(crate) ahead: bool,
}

pub(super) struct Recall {
    /// Shards that have not answered yet.
    pending: Vec<bool>,
    /// Asks waiting for the answers.
    parked: Vec<(usize, u64)>,
    started: Instant,
}

/// One account's book (the fleet's side reads and changes it too, see `super::fleet_books`).
pub(super) struct Book {
    /// In fleet mode the account's cap is this node's allotment from Redis (it grows as Redis
    /// grants more, and shrinks as idle allotment goes back).
    pub(super) account: Account,
    pub(super) ends_at_ms: u64,
    pub(super) recall: Option<Recall>,
    /// The holder's real cap (fleet mode: what Redis checks every node's leases against).
    pub(super) cap: u64,
    /// Fleet mode, `open` while Redis is unreachable: allotment taken without Redis.
    pub(super) unshared: u64,
    /// When a shard last asked for more (idle allotment goes back to Redis after a while).
    pub(super) last_ask: Instant,
    /// Fleet mode: the account's Redis key.
    pub(super) key: String,
}

/// Every account in memory, and the records their caps come from.
pub(crate) struct Books {
    pub(super) shards: usize,
    pub(super) keys: HashMap<Arc<str>, KeyRecord>,
    pub(super) envs: HashMap<Arc<str>, EnvRecord>,
    pub(super) accounts: HashMap<AccountId, Book>,
    pub(super) fleet: Option<FleetBooks>,
}

impl Books {
    pub(crate) fn new(shards: usize, keys: Vec<KeyRecord>, envs: Vec<EnvRecord>) -> Books {
        Books {
            shards,
            keys: keys
                .into_iter()
                .map(|k| (k.id.as_str().into(), k))
                .collect(),
            envs: envs
                .into_iter()
                .map(|e| (e.name.as_str().into(), e))
                .collect(),
            accounts: HashMap::new(),
            fleet: None,
        }
    }

    /// The cap of `account` as the records say now (`u64::MAX`: none; a key that is gone: 0).
    fn cap_of(&self, account: &AccountId) -> u64 {
        let l = account.limit;
        match &account.holder {
            Holder::Key(id) => match self.keys.get(id) {
                Some(k) => l.of(&k.caps, &k.rates).unwrap_or(u64::MAX),
                None => 0,
            },
            Holder::Environment(name) => self
                .envs
                .get(name)
                .and_then(|e| l.of(&e.caps, &e.rates))
                .unwrap_or(u64::MAX),
        }
    }

    /// The book of `account`, opened with what is already charged to it.
    fn book(
        &mut self,
        account: &AccountId,
        ends_at_ms: u64,
        charged: impl FnOnce() -> Micros,
    ) -> &mut Book {
        if !self.accounts.contains_key(account) {
            let cap = self.cap_of(account);
            // In a fleet the spend is Redis's, and this node's cap starts at nothing: it is
            // what Redis allots it.
            let key = self
                .fleet
                .as_ref()
                .map(|f| f.client.key(account))
                .unwrap_or_default();
            let (local_cap, spent) = if self.fleet.is_some() {
                (0, 0)
            } else if account.limit.is_spend() {
                (cap, charged())
            } else {
                (cap, 0)
            };
            self.accounts.insert(
                account.clone(),
                Book {
                    account: Account::new(local_cap, spent, self.shards),
                    ends_at_ms,
                    recall: None,
                    cap,
                    unshared: 0,
                    last_ask: Instant::now(),
                    key,
                },
            );
        }
        self.accounts
            .get_mut(account)
            .expect("inserted just above when missing")
    }

    /// What the shards together hold of `account` (to write to the file).
    pub(crate) fn leased(&self, account: &AccountId) -> Micros {
        self.accounts
            .get(account)
            .map_or(0, |b| (0..self.shards).map(|s| b.account.leased(s)).sum())
    }

    /// A shard asks for more of an account. `charged` reads what the file has charged to it,
    /// the first time the account is opened.
    pub(crate) fn lease(
        &mut self,
        ask: Ask,
        charged: impl FnOnce() -> Micros,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let Ask {
            shard,
            account,
            want,
            ends_at_ms,
            ahead,
        } = ask;
        let shards = self.shards;
        self.book(&account, ends_at_ms, charged);
        if let Some(fleet) = self.fleet.as_mut()
            && let Some(b) = self.accounts.get_mut(&account)
        {
            b.last_ask = now;
            if b.recall.is_none()
                && b.account.available() < want
                && !top_up(fleet, b, &account, want, ahead, now)
            {
                out.push(Out::Down { shard, account });
                return;
            }
        }
        let Some(b) = self.accounts.get_mut(&account) else {
            return;
        };
        if b.recall.is_none() && b.account.available() >= want {
            grant(b, shard, &account, want, shards, ahead, out);
            return;
        }
        if ahead {
            out.push(Out::Grant {
                shard,
                account,
                granted: 0,
                available: b.account.available(),
                ahead,
            });
            return;
        }
        if let Some(r) = &mut b.recall {
            r.parked.push((shard, want));
            return;
        }
        let holders: Vec<bool> = (0..shards)
            .map(|s| s != shard && b.account.leased(s) > 0)
            .collect();
        if holders.iter().any(|h| *h) {
            for (s, _) in holders.iter().enumerate().filter(|(_, h)| **h) {
                out.push(Out::Recall {
                    shard: s,
                    account: account.clone(),
                });
            }
            b.recall = Some(Recall {
                pending: holders,
                parked: vec![(shard, want)],
                started: now,
            });
            return;
        }
        out.push(Out::Grant {
            shard,
            account,
            granted: 0,
            available: b.account.available(),
            ahead: false,
        });
    }

    /// A shard gives back `amount` of `account`; `recalled`: in answer to a recall.
    pub(crate) fn release(
        &mut self,
        shard: usize,
        account: &AccountId,
        amount: u64,
        recalled: bool,
        out: &mut Vec<Out>,
    ) {
        let shards = self.shards;
        let Some(b) = self.accounts.get_mut(account) else {
            return;
        };
        b.account.release(shard, amount);
        if !recalled {
            return;
        }
        let done = match &mut b.recall {
            Some(r) => {
                if let Some(p) = r.pending.get_mut(shard) {
                    *p = false;
                }
                !r.pending.iter().any(|p| *p)
            }
            None => false,
        };
        if done {
            answer_parked(b, account, shards, out);
        }
    }

    /// A shard spent `amount` of its lease on `account`, and `over` beyond it.
    pub(crate) fn settle(&mut self, shard: usize, account: &AccountId, amount: u64, over: u64) {
        let Some(b) = self.accounts.get_mut(account) else {
            return;
        };
        b.account.settle(shard, amount);
        b.account.overspend(over);
        if let Some(fleet) = self.fleet.as_mut() {
            // The allotment turned into spend: in Redis too (in order, after any waiting).
            fleet.push(crate::fleet::Op::Settle {
                key: b.key.clone(),
                from_lease: amount,
                over,
                keep: keep_until(account, b.ends_at_ms),
            });
        }
    }

    /// Recalls that have waited long enough are answered with what there is.
    pub(crate) fn expire_recalls(&mut self, now: Instant, out: &mut Vec<Out>) {
        let shards = self.shards;
        for (account, b) in self.accounts.iter_mut() {
            if b.recall
                .as_ref()
                .is_some_and(|r| now.duration_since(r.started) >= RECALL_WAIT)
            {
                answer_parked(b, account, shards, out);
            }
        }
    }

    /// Forgets accounts whose period ended a while ago and that nobody holds.
    pub(crate) fn sweep(&mut self, now_ms: u64) {
        let shards = self.shards;
        self.accounts.retain(|_, b| {
            let held = (0..shards).any(|s| b.account.leased(s) > 0);
            held || b.recall.is_some() || now_ms < b.ends_at_ms.saturating_add(60_000)
        });
    }

    /// A key is new or changed: its accounts take its caps from now on.
    pub(crate) fn set_key(&mut self, key: KeyRecord) {
        let id: Arc<str> = key.id.as_str().into();
        self.keys.insert(Arc::clone(&id), key);
        self.recap(&Holder::Key(id));
    }

    /// A key is gone: its accounts grant nothing more.
    pub(crate) fn remove_key(&mut self, id: &str) {
        self.keys.remove(id);
        self.recap(&Holder::Key(id.into()));
    }

    /// An environment's limits are new or changed.
    pub(crate) fn set_env(&mut self, env: EnvRecord) {
        let name: Arc<str> = env.name.as_str().into();
        self.envs.insert(Arc::clone(&name), env);
        self.recap(&Holder::Environment(name));
    }

    /// An environment's limits are gone.
    pub(crate) fn remove_env(&mut self, name: &str) {
        self.envs.remove(name);
        self.recap(&Holder::Environment(name.into()));
    }

    fn recap(&mut self, holder: &Holder) {
        let ids: Vec<AccountId> = self
            .accounts
            .keys()
            .filter(|a| &a.holder == holder)
            .cloned()
            .collect();
        let fleet = self.fleet.is_some();
        for id in ids {
            let cap = self.cap_of(&id);
            if let Some(b) = self.accounts.get_mut(&id) {
                b.cap = cap;
                // In a fleet the local cap is the allotment; Redis checks the new cap at the
                // next lease. A key that is gone or capped at 0 stops here at once.
                if !fleet || cap == 0 {
                    b.account.set_cap(cap);
                }
            }
        }
    }

    /// Spend, leases and cap of an account, for tests and the admin API.
    #[cfg(test)]
    fn view(&self, account: &AccountId) -> Option<(Micros, Micros, Micros)> {
        self.accounts
            .get(account)
            .map(|b| (b.account.cap(), b.account.spent(), self.leased(account)))
    }
}

/// Grants `want` plus headroom: a share of what would be left, at most `HEADROOM_ASKS` asks.
fn grant(
    b: &mut Book,
    shard: usize,
    account: &AccountId,
    want: u64,
    shards: usize,
    ahead: bool,
    out: &mut Vec<Out>,
) {
    let left = b.account.available().saturating_sub(want);
    let share = left / (2 * shards.max(1) as u64);
    // Spend leases are written to the file, and a crash turns them into unsettled spend: keep
    // them to a few dozen requests' worth. Rate leases live in memory only.
    let headroom = if account.limit.is_spend() {
        share.min(want.saturating_mul(HEADROOM_ASKS))
    } else {
        share
    };
    let granted = b.account.grant(shard, want.saturating_add(headroom));
    out.push(Out::Grant {
        shard,
        account: account.clone(),
        granted,
        available: b.account.available(),
        ahead,
    });
}

/// The recall is over: each parked ask gets what it wants if it is there now, else nothing.
fn answer_parked(b: &mut Book, account: &AccountId, shards: usize, out: &mut Vec<Out>) {
    let Some(r) = b.recall.take() else {
        return;
    };
    for (shard, want) in r.parked {
        if b.account.available() >= want {
            grant(b, shard, account, want, shards, false, out);
        } else {
            out.push(Out::Grant {
                shard,
                account: account.clone(),
                granted: 0,
                available: b.account.available(),
                ahead: false,
            });
        }
    }
}

/// The limit names an account's refusal is about (used in logs).
#[allow(dead_code)]
pub(crate) fn describe(account: &AccountId) -> String {
    let who = match &account.holder {
        Holder::Key(k) => format!("key {k}"),
        Holder::Environment(e) => format!("environment {e}"),
    };
    format!("{who} {}", Limit::describe(account.limit))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use busbar_core::govern::{Caps, Rates};

    pub(in crate::ledger) fn key(daily: u64) -> KeyRecord {
        KeyRecord {
            id: "key_a".into(),
            name: "a".into(),
            environment: "staging".into(),
            allowed: Vec::new(),
            caps: Caps {
                daily: Some(daily),
                monthly: None,
                all_time: None,
            },
            rates: Rates::default(),
            expires_at_ms: None,
            revoked: false,
            created_at_ms: 0,
        }
    }

    pub(in crate::ledger) fn day() -> AccountId {
        AccountId {
            holder: Holder::Key("key_a".into()),
            limit: Limit::Daily,
            period: 7,
        }
    }

    pub(in crate::ledger) fn ask(
        shard: usize,
        account: AccountId,
        want: u64,
        ends_at_ms: u64,
    ) -> Ask {
        Ask {
            shard,
            account,
            want,
            ends_at_ms,
            ahead: false,
        }
    }

    pub(in crate::ledger) fn grants(out: &[Out]) -> Vec<(usize, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Grant { shard, granted, .. } => Some((*shard, *granted)),
                Out::Recall { .. } | Out::Down { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_grant_has_headroom_but_never_passes_the_cap() {
        let mut b = Books::new(2, vec![key(1000)], Vec::new());
        let now = Instant::now();
        let mut out = Vec::new();
        // 100 already charged in the file: 900 left; ask 10 -> 10 + min(890/4, 640) = 232.
        b.lease(ask(0, day(), 10, u64::MAX), || 100, now, &mut out);
        assert_eq!(grants(&out), [(0, 232)]);
        assert_eq!(b.view(&day()), Some((1000, 100, 232)));
        out.clear();
        b.lease(
            ask(1, day(), 600, u64::MAX),
            || unreachable!("opened"),
            now,
            &mut out,
        );
        assert_eq!(grants(&out), [(1, 600 + (68 / 4))]);
        let (cap, spent, leased) = b.view(&day()).unwrap();
        assert!(spent + leased <= cap);
    }

    #[test]
    fn a_short_ask_recalls_what_others_hold_and_then_is_answered() {
        let mut b = Books::new(3, vec![key(1000)], Vec::new());
        let now = Instant::now();
        let mut out = Vec::new();
        b.lease(ask(0, day(), 300, u64::MAX), || 0, now, &mut out);
        b.lease(ask(1, day(), 300, u64::MAX), || 0, now, &mut out);
        let (_, _, leased) = b.view(&day()).unwrap();
        out.clear();
        // Asked ahead, more than is unleased: refused at once, nobody is recalled.
        let want = 1000 - leased + 1;
        let mut early = ask(2, day(), want, u64::MAX);
        early.ahead = true;
        b.lease(early, || 0, now, &mut out);
        assert_eq!(grants(&out), [(2, 0)]);
        out.clear();
        // Shard 2 needs more than is unleased: shards 0 and 1 are asked to give back.
        b.lease(ask(2, day(), want, u64::MAX), || 0, now, &mut out);
        assert_eq!(
            out,
            [
                Out::Recall {
                    shard: 0,
                    account: day()
                },
                Out::Recall {
                    shard: 1,
                    account: day()
                }
            ]
        );
        out.clear();
        // Shard 0 gives back all but a 250 reservation; shard 1 all of it.
        let held0 = b.accounts[&day()].account.leased(0);
        b.release(0, &day(), held0 - 250, true, &mut out);
        assert!(out.is_empty(), "still waiting for shard 1");
        let held1 = b.accounts[&day()].account.leased(1);
        b.release(1, &day(), held1, true, &mut out);
        // 750 is free again: the ask and a share of what is left ((750 - 238) / 6).
        assert_eq!(grants(&out), [(2, want + 85)]);
        // An ask for more than is free recalls again; everything held is reserved, so it is
        // refused.
        out.clear();
        b.lease(ask(1, day(), 428, u64::MAX), || 0, now, &mut out);
        assert!(matches!(
            out[..],
            [Out::Recall { shard: 0, .. }, Out::Recall { shard: 2, .. }]
        ));
        out.clear();
        b.release(0, &day(), 0, true, &mut out);
        b.release(2, &day(), 0, true, &mut out);
        assert_eq!(grants(&out), [(1, 0)]);
    }

    #[test]
    fn a_silent_shard_does_not_hold_an_ask_for_ever_and_caps_follow_the_key() {
        let mut b = Books::new(2, vec![key(1000)], Vec::new());
        let now = Instant::now();
        let mut out = Vec::new();
        b.lease(ask(0, day(), 900, u64::MAX), || 0, now, &mut out);
        out.clear();
        b.lease(ask(1, day(), 500, u64::MAX), || 0, now, &mut out);
        assert!(grants(&out).is_empty());
        b.expire_recalls(now + Duration::from_millis(10), &mut out);
        assert!(grants(&out).is_empty());
        b.expire_recalls(now + RECALL_WAIT, &mut out);
        assert_eq!(grants(&out), [(1, 0)]);
        // The cap is lowered under what is held: no more grants; deleted: nothing at all.
        b.set_key(key(100));
        out.clear();
        b.release(0, &day(), 900, false, &mut out);
        b.lease(ask(0, day(), 101, u64::MAX), || 0, now, &mut out);
        assert_eq!(grants(&out), [(0, 0)]);
        b.remove_key("key_a");
        out.clear();
        b.lease(ask(0, day(), 1, u64::MAX), || 0, now, &mut out);
        assert_eq!(grants(&out), [(0, 0)]);
        // Settled spend counts; an ended period nobody holds is forgotten.
        b.set_key(key(1000));
        out.clear();
        let next = AccountId { period: 8, ..day() };
        b.lease(ask(0, next.clone(), 100, 5_000), || 0, now, &mut out);
        b.settle(0, &next, 60, 0);
        let (_, spent, _) = b.view(&next).unwrap();
        assert_eq!(spent, 60);
        b.sweep(100_000);
        assert!(b.view(&next).is_some(), "still held");
        let held = b.accounts[&next].account.leased(0);
        b.release(0, &next, held, false, &mut out);
        b.sweep(100_000);
        assert!(b.view(&next).is_none());
    }
}
