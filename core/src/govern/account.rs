//! What one lease is about: a holder (a key or an environment), one of its limits, and the
//! period of that limit's window. Shards reserve against leases of these; the ledger keeps one
//! [`super::Account`] for each.
//!
//! ```text
//!   AccountId { holder: Key("key_..") | Environment("staging"),
//!               limit:  Daily | Monthly | AllTime   (micro-USD, kept in the ledger file)
//!                       Rpm | Tpm                   (requests / tokens per UTC minute),
//!               period: which day / month / minute }
//! ```

use super::{Caps, Micros, Rates, Window};
use std::sync::Arc;

/// One limit of a key or an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    /// Spend per UTC day.
    Daily,
    /// Spend per UTC month.
    Monthly,
    /// Spend ever.
    AllTime,
    /// Requests per UTC minute.
    Rpm,
    /// Tokens per UTC minute.
    Tpm,
}

impl Limit {
    /// Every limit, in the order admission checks them.
    pub const ALL: [Limit; 5] = [
        Limit::Rpm,
        Limit::Tpm,
        Limit::Daily,
        Limit::Monthly,
        Limit::AllTime,
    ];

    /// The window it counts over.
    pub fn window(self) -> Window {
        match self {
            Limit::Daily => Window::Day,
            Limit::Monthly => Window::Month,
            Limit::AllTime => Window::AllTime,
            Limit::Rpm | Limit::Tpm => Window::Minute,
        }
    }

    /// Whether it counts money (kept in the ledger file, so a restart forgets nothing); rate
    /// limits live only in memory (a restart starts a fresh minute).
    pub fn is_spend(self) -> bool {
        matches!(self, Limit::Daily | Limit::Monthly | Limit::AllTime)
    }

    /// How it is named in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Limit::Daily => "daily spend cap",
            Limit::Monthly => "monthly spend cap",
            Limit::AllTime => "all-time spend cap",
            Limit::Rpm => "requests-per-minute limit",
            Limit::Tpm => "tokens-per-minute limit",
        }
    }

    /// Its field in the admin API (`limits.<name>`).
    pub fn field(self) -> &'static str {
        match self {
            Limit::Daily => "daily_usd",
            Limit::Monthly => "monthly_usd",
            Limit::AllTime => "all_time_usd",
            Limit::Rpm => "rpm",
            Limit::Tpm => "tpm",
        }
    }

    /// Its value in `caps` and `rates`, if set.
    pub fn of(self, caps: &Caps, rates: &Rates) -> Option<u64> {
        match self {
            Limit::Daily => caps.daily,
            Limit::Monthly => caps.monthly,
            Limit::AllTime => caps.all_time,
            Limit::Rpm => rates.rpm,
            Limit::Tpm => rates.tpm,
        }
    }

    /// What a request reserves against it at worst (`cost` in micro-USD, `tokens`).
    pub fn amount(self, cost: Micros, tokens: u64) -> u64 {
        match self {
            Limit::Daily | Limit::Monthly | Limit::AllTime => cost,
            Limit::Rpm => 1,
            Limit::Tpm => tokens,
        }
    }
}

/// Who a limit belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    /// A virtual key, by id.
    Key(Arc<str>),
    /// An environment label.
    Environment(Arc<str>),
}

impl Holder {
    /// `k` or `e`: the prefix of its records in the ledger file.
    pub fn tag(&self) -> char {
        match self {
            Holder::Key(_) => 'k',
            Holder::Environment(_) => 'e',
        }
    }

    /// The key id or the environment label.
    pub fn name(&self) -> &str {
        match self {
            Holder::Key(s) | Holder::Environment(s) => s,
        }
    }
}

/// One account: a holder's limit in one period.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId {
    /// Whose.
    pub holder: Holder,
    /// Which limit.
    pub limit: Limit,
    /// Which period of the limit's window (see [`Window::period`]).
    pub period: u64,
}

impl AccountId {
    /// The account of `holder`'s `limit` for the period `now_ms` falls in, and when that
    /// period ends (Unix ms).
    pub fn at(holder: Holder, limit: Limit, now_ms: u64) -> (AccountId, u64) {
        let p = limit.window().period(now_ms);
        (
            AccountId {
                holder,
                limit,
                period: p.index,
            },
            p.ends_at_ms,
        )
    }

    /// Its record in the ledger file (the same key its usage totals are kept under).
    pub fn record_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.holder.tag(),
            self.holder.name(),
            self.limit.window().as_str(),
            self.period
        )
    }

    /// When its period ends (Unix ms; `u64::MAX` for all time).
    pub fn ends_at_ms(&self) -> u64 {
        self.limit.window().end_of(self.period)
    }

    /// The spend account whose [`AccountId::record_key`] is `record` (rate accounts have no
    /// record). A holder's name may hold `|`: the tag is read from the left, the window and
    /// period from the right.
    pub fn from_record_key(record: &str) -> Option<AccountId> {
        let mut right = record.rsplitn(3, '|');
        let period = right.next()?.parse().ok()?;
        let limit = match right.next()? {
            "daily" => Limit::Daily,
            "monthly" => Limit::Monthly,
            "all-time" => Limit::AllTime,
            _ => return None,
        };
        let holder = match right.next()?.split_once('|')? {
            ("k", name) => Holder::Key(name.into()),
            ("e", name) => Holder::Environment(name.into()),
            _ => return None,
        };
        Some(AccountId {
            holder,
            limit,
            period,
        })
    }
}

/// An environment's own caps and limits, on top of each of its keys'.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvRecord {
    /// The label keys carry.
    pub name: String,
    /// Spend caps.
    pub caps: Caps,
    /// Rate limits.
    pub rates: Rates,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_follow_their_window() {
        // 2026-11-24T15:49:56Z
        let now = 1_795_535_396_000;
        let k = Holder::Key("key_a".into());
        let (day, ends) = AccountId::at(k.clone(), Limit::Daily, now);
        assert_eq!(ends, 1_795_564_800_000);
        assert_eq!(
            day.record_key(),
            format!("k|key_a|daily|{}", now / 86_400_000)
        );
        let (minute, ends) = AccountId::at(k.clone(), Limit::Rpm, now);
        assert_eq!(ends, (now / 60_000 + 1) * 60_000);
        assert_ne!(day, minute);
        // The same limit a millisecond before midnight and at midnight: two accounts.
        let (a, _) = AccountId::at(k.clone(), Limit::Daily, 1_795_564_799_999);
        let (b, _) = AccountId::at(k, Limit::Daily, 1_795_564_800_000);
        assert_ne!(a, b);
        assert_eq!(b.period, a.period + 1);
        let caps = Caps {
            daily: Some(5),
            monthly: None,
            all_time: Some(9),
        };
        let rates = Rates {
            rpm: Some(60),
            tpm: None,
        };
        let set: Vec<_> = Limit::ALL
            .iter()
            .filter_map(|l| l.of(&caps, &rates).map(|v| (*l, v)))
            .collect();
        assert_eq!(
            set,
            [(Limit::Rpm, 60), (Limit::Daily, 5), (Limit::AllTime, 9)]
        );
        assert_eq!(Limit::Tpm.amount(100, 7), 7);
        assert_eq!(Limit::Rpm.amount(100, 7), 1);
        assert_eq!(Limit::Monthly.amount(100, 7), 100);
    }

    #[test]
    fn spend_records_read_back_into_their_accounts() {
        for a in [
            AccountId::at(Holder::Key("key_a".into()), Limit::Daily, 1_795_535_396_000).0,
            AccountId::at(Holder::Environment("a|b".into()), Limit::Monthly, 1).0,
            AccountId::at(Holder::Key("".into()), Limit::AllTime, 0).0,
        ] {
            assert_eq!(AccountId::from_record_key(&a.record_key()), Some(a));
        }
        let rpm = AccountId::at(Holder::Key("key_a".into()), Limit::Rpm, 1).0;
        assert_eq!(AccountId::from_record_key(&rpm.record_key()), None);
        for bad in [
            "",
            "k|x|daily",
            "x|key|daily|1",
            "k|key|daily|-1",
            "kkey|daily|1",
        ] {
            assert_eq!(AccountId::from_record_key(bad), None, "{bad}");
        }
    }
}
