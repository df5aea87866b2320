//! Governance arithmetic, sans-io: what a request may cost at worst, which calendar window a
//! moment falls in, and how a cap is shared out among shards as leases so that the shards
//! together can never spend past it.
//!
//! ```text
//!   admission (shard)   worst case = prompt bound + max output, at the model's price
//!                       Lease::reserve(worst) ── balance short? ──> ask the ledger for more
//!   ledger (one thread) Account::grant(shard, want) <= cap - spent - leased to others
//!   settlement (shard)  Lease::settle(reserved, actual): unused goes back to the balance,
//!                       `actual` goes to the ledger as spend (Account::settle)
//!   invariant           spent + sum of leases <= cap, for every account, at every step
//! ```
//!
//! Keys: what the admin API accepts (`KeySpec`, each refusal naming its field) and what the
//! ledger stores (`KeyRecord`).
//!
//! Money is integer micro-USD ([`Micros`]): a price in USD per million tokens is exactly
//! micro-USD per token, so costs add up without rounding drift.

mod account;
mod budget;
mod cost;
mod key;
mod window;

pub use account::{AccountId, EnvRecord, Holder, Limit};
pub use budget::{Account, Lease, Reserved};
pub use cost::{Micros, Prices, actual_cost, prompt_token_bound, worst_case};
pub use key::{Caps, FieldError, KeyRecord, KeySpec, LimitsSpec, Rates, env_from_json};
pub use window::{Period, Window};
