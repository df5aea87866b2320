//! Sharing a cap among shards without ever passing it.
//!
//! ```text
//!   ledger: Account { cap, spent, leased[shard] }      invariant: spent + sum(leased) <= cap
//!     grant(shard, want)   -> at most what is left after spend and the other leases
//!     settle(shard, spent) -> moves `spent` from the shard's lease to `spent`
//!     release(shard, n)    -> a shard gives back lease it does not need
//!   shard: Lease { balance }
//!     reserve(worst)       -> a reservation, or how much more lease it needs
//!     settle(r, actual)    -> min(actual, r) is spend for the ledger; the rest back to balance
//! ```
//!
//! A reservation is taken from the shard's lease, which the ledger counts as not available to
//! anyone else, so admission on any shard can never let spend pass the cap. Spend beyond a
//! reservation cannot happen: the reservation is the worst case, and settlement charges at most
//! that.

use super::Micros;

/// The ledger's view of one capped account (a key's or an environment's, in one period of one
/// window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    cap: Micros,
    spent: Micros,
    leased: Vec<Micros>,
}

impl Account {
    /// An account with `cap`, `spent` already, and no leases, for `shards` shards.
    pub fn new(cap: Micros, spent: Micros, shards: usize) -> Self {
        Self {
            cap,
            spent,
            leased: vec![0; shards],
        }
    }

    /// What is neither spent nor leased.
    pub fn available(&self) -> Micros {
        self.cap
            .saturating_sub(self.spent)
            .saturating_sub(self.leased.iter().sum())
    }

    /// Spend settled so far.
    pub fn spent(&self) -> Micros {
        self.spent
    }

    /// The cap.
    pub fn cap(&self) -> Micros {
        self.cap
    }

    /// What `shard` holds.
    pub fn leased(&self, shard: usize) -> Micros {
        self.leased.get(shard).copied().unwrap_or(0)
    }

    /// Grants `shard` up to `want` more lease; returns what was granted (0: the cap is reached).
    pub fn grant(&mut self, shard: usize, want: Micros) -> Micros {
        if shard >= self.leased.len() {
            return 0;
        }
        let give = want.min(self.available());
        self.leased[shard] += give;
        give
    }

    /// `shard` spent `amount` out of its lease.
    pub fn settle(&mut self, shard: usize, amount: Micros) {
        let Some(l) = self.leased.get_mut(shard) else {
            return;
        };
        // A shard never spends more than it was leased; should it report more, the lease is
        // used up and the spend still counts (the cap's accounting stays true).
        *l = l.saturating_sub(amount);
        self.spent = self.spent.saturating_add(amount);
    }

    /// Spend beyond any reservation (a provider billed more than the request's worst case,
    /// e.g. for content given by URL): it counts, and nothing more is granted until spend and
    /// leases fit under the cap again.
    pub fn overspend(&mut self, amount: Micros) {
        self.spent = self.spent.saturating_add(amount);
    }

    /// `shard` gives back `amount` of lease it does not need.
    pub fn release(&mut self, shard: usize, amount: Micros) {
        if let Some(l) = self.leased.get_mut(shard) {
            *l = l.saturating_sub(amount);
        }
    }

    /// A new cap (an admin change): leases stay, and grants stop until spend and leases fit
    /// under it again.
    pub fn set_cap(&mut self, cap: Micros) {
        self.cap = cap;
    }
}

/// A reservation against a shard's lease, held from admission to settlement.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be settled, or its amount stays reserved"]
pub struct Reserved(Micros);

impl Reserved {
    /// Its amount.
    pub fn amount(&self) -> Micros {
        self.0
    }
}

/// A shard's lease on one account: what it may still reserve without asking the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    balance: Micros,
    reserved: Micros,
}

impl Lease {
    /// What can be reserved now.
    pub fn balance(&self) -> Micros {
        self.balance
    }

    /// What is reserved by requests in flight.
    pub fn reserved(&self) -> Micros {
        self.reserved
    }

    /// More lease from the ledger.
    pub fn add(&mut self, granted: Micros) {
        self.balance = self.balance.saturating_add(granted);
    }

    /// Reserves `worst` for a request, or says how much more lease it needs.
    pub fn reserve(&mut self, worst: Micros) -> Result<Reserved, Micros> {
        if worst > self.balance {
            return Err(worst - self.balance);
        }
        self.balance -= worst;
        self.reserved += worst;
        Ok(Reserved(worst))
    }

    /// Settles a reservation at `actual`: returns the spend to report to the ledger (never more
    /// than was reserved); the unused part goes back to the balance.
    pub fn settle(&mut self, r: Reserved, actual: Micros) -> Micros {
        let spend = actual.min(r.0);
        self.reserved = self.reserved.saturating_sub(r.0);
        self.balance = self.balance.saturating_add(r.0 - spend);
        spend
    }

    /// Gives the whole unreserved balance back (e.g. at the end of a window, or on a cap
    /// change); returns how much, for the ledger's `release`.
    pub fn surrender(&mut self) -> Micros {
        std::mem::take(&mut self.balance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_never_exceed_what_is_left() {
        let mut a = Account::new(1000, 100, 2);
        assert_eq!(a.grant(0, 600), 600);
        assert_eq!(a.grant(1, 600), 300);
        assert_eq!(a.available(), 0);
        assert_eq!(a.grant(1, 1), 0);
        a.settle(0, 250);
        assert_eq!((a.spent(), a.leased(0), a.available()), (350, 350, 0));
        a.overspend(10);
        assert_eq!((a.spent(), a.leased(0), a.available()), (360, 350, 0));
        a.release(0, 350);
        assert_eq!(a.available(), 340);
        assert_eq!(a.grant(7, 10), 0, "an unknown shard gets nothing");
        // A lower cap stops grants until spend and leases fit again.
        a.set_cap(500);
        assert_eq!(a.grant(0, 1), 0);
    }

    #[test]
    fn a_lease_reserves_the_worst_case_and_settles_the_actual() {
        let mut l = Lease::default();
        assert_eq!(l.reserve(100), Err(100));
        l.add(150);
        let r = l.reserve(100).unwrap();
        assert_eq!((l.balance(), l.reserved()), (50, 100));
        assert_eq!(l.reserve(60), Err(10));
        assert_eq!(l.settle(r, 30), 30);
        assert_eq!((l.balance(), l.reserved()), (120, 0));
        // Actual above the reservation is charged at the reservation (the worst case bounds it).
        let r = l.reserve(20).unwrap();
        assert_eq!(l.settle(r, 500), 20);
        assert_eq!(l.surrender(), 100);
        assert_eq!(l.balance(), 0);
    }

    /// Many shards, random requests, random actual costs, leases asked for and given back at
    /// random: spend plus everything leased never passes the cap, and every admitted request
    /// was within what its shard held.
    #[test]
    fn shards_together_never_pass_the_cap() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        for cap in [0u64, 1, 999, 50_000] {
            let shards = 4;
            let mut ledger = Account::new(cap, 0, shards);
            let mut leases = vec![Lease::default(); shards];
            let mut inflight: Vec<(usize, Reserved, Micros)> = Vec::new();
            let mut admitted_spend = 0u64;
            for _ in 0..20_000 {
                let s = next(shards as u64) as usize;
                match next(4) {
                    0 | 1 => {
                        let worst = 1 + next(400);
                        match leases[s].reserve(worst) {
                            Ok(r) => {
                                let actual = next(worst + 1);
                                inflight.push((s, r, actual));
                            }
                            Err(short) => {
                                let got = ledger.grant(s, short.max(500));
                                leases[s].add(got);
                            }
                        }
                    }
                    2 if !inflight.is_empty() => {
                        let i = next(inflight.len() as u64) as usize;
                        let (s, r, actual) = inflight.swap_remove(i);
                        let spend = leases[s].settle(r, actual);
                        ledger.settle(s, spend);
                        admitted_spend += spend;
                    }
                    _ => {
                        let back = leases[s].surrender();
                        ledger.release(s, back);
                    }
                }
                let leased: u64 = (0..shards).map(|i| ledger.leased(i)).sum();
                assert!(ledger.spent() + leased <= cap, "over the cap");
                for (i, l) in leases.iter().enumerate() {
                    assert_eq!(
                        l.balance() + l.reserved(),
                        ledger.leased(i),
                        "shard {i} books"
                    );
                }
            }
            for (s, r, actual) in inflight.drain(..) {
                let spend = leases[s].settle(r, actual);
                ledger.settle(s, spend);
                admitted_spend += spend;
            }
            assert_eq!(ledger.spent(), admitted_spend);
            assert!(ledger.spent() <= cap);
        }
    }
}
