//! A fleet node's side of the shared books in Redis. Each governed account (a key's or an
//! environment's limit in one period) is one Redis hash: what the whole fleet has spent, and
//! what each node holds as a lease. Three Lua scripts change it, each one atomic step in
//! Redis, so the sum of every node's leases and the fleet's spend never passes the cap:
//!
//! ```text
//!   {prefix}a:<holder>:<limit>:<period>   hash  spent, held, lease:<node>, seq:<node> ...
//!   {prefix}n:<node>                       sorted set: the accounts the node has leased
//!                                          (score: when Redis may forget the account)
//!   {prefix}life                           a random number: this Redis's "life"
//!   {prefix}life:<n>:nodes                 set: the nodes that gave their spend to life n
//!   {prefix}nodes                          sorted set: every node, by when it was last seen
//!                                          (Redis's clock, ms; a node is seen every second)
//!
//!   LEASE   available = cap - spent - held; >= min: grant min(ask, available) to the node
//!   SETTLE  the node turns part of its lease into spend (and adds any spend beyond it)
//!   RELEASE the node gives back lease it does not need
//! ```
//!
//! Settlements and releases are numbered by the node and applied at most once (so a batch
//! whose reply was lost is simply sent again). A node that starts gives back every lease the
//! set names (what it held when it last stopped or crashed), after its journaled settlements.
//!
//! Every script first checks that Redis is in the life the node knows. A Redis that lost its
//! data (restarted without persistence, flushed, replaced) has no life, or a new one: each
//! node then gives it, once (CONTRIBUTE), what its own ledger file says it spent in the open
//! periods and what its shards hold, and drops what it was about to send the old life. The
//! fleet's spend is back to the sum of the nodes' files.
//!
//! Used by the ledger thread only (blocking calls, each bounded by `fleet.timeout_ms`), never
//! by a shard. While Redis cannot be reached, every call fails fast (a reconnect is tried at
//! most every [`RETRY`]) and the caller applies `fleet.on_unreachable`. The scripts are loaded
//! once per connection and called by their SHA-1 (EVALSHA).

mod scripts;
pub(crate) mod sync;

pub(crate) use scripts::ALIVE_ERROR;
use scripts::{FORGET, LIFE_ERROR, Scripts};

use busbar_core::config::Fleet;
use busbar_core::govern::AccountId;
use std::time::{Duration, Instant};

/// Least time between two tries to reach Redis after it failed.
pub(crate) const RETRY: Duration = Duration::from_millis(250);

/// The next number a node may give a settlement or release, after `last`: never below the
/// clock in µs, so a node whose file lost its count still numbers above what Redis has seen.
pub(crate) fn next_seq(last: u64) -> u64 {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    now_us.max(last.saturating_add(1))
}

/// Whether a script refused with its own error `code` (the code leads Redis's error; a
/// pipeline's error carries it in its text).
pub(crate) fn refused_with(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code) || e.to_string().contains(code)
}

/// How long after its last sign of life a node counts as gone (it gives one every second).
pub(crate) const ALIVE_MS: u64 = 3_000;

/// [`FORGET`]s `node`, on a connection of the caller's own (the admin API's): the number of
/// accounts whose lease went back.
pub(crate) fn forget_node(
    conn: &mut redis::Connection,
    prefix: &str,
    node: &str,
) -> redis::RedisResult<u64> {
    redis::Script::new(FORGET)
        .key(format!("{prefix}n:{node}"))
        .key(format!("{prefix}nodes"))
        .arg(node)
        .arg(ALIVE_MS)
        .invoke(conn)
}

/// The fleet as Redis sees it.
pub(crate) struct View {
    /// Redis's clock (Unix ms).
    pub(crate) now_ms: u64,
    /// Its life (0: none yet).
    pub(crate) life: u64,
    /// Every node, with when it was last seen (Unix ms, Redis's clock).
    pub(crate) nodes: Vec<(String, u64)>,
}

/// Reads the fleet's [`View`] on a connection of the caller's own.
pub(crate) fn fleet_view(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<View> {
    let mut pipe = redis::pipe();
    pipe.cmd("TIME")
        .cmd("GET")
        .arg(format!("{prefix}life"))
        .cmd("ZRANGE")
        .arg(format!("{prefix}nodes"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    let ((secs, micros), life, nodes) = pipe.query::<((u64, u64), Option<u64>, _)>(conn)?;
    Ok(View {
        now_ms: secs * 1000 + micros / 1000,
        life: life.unwrap_or(0),
        nodes,
    })
}

/// A release of everything a node holds of an account (Lua numbers are doubles: 2^53).
pub(crate) const ALL: u64 = 1 << 53;

/// A settlement or a release in a [`FleetClient::batch`], on the account whose Redis key is
/// `key` ([`FleetClient::key`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    Settle {
        key: &'a str,
        from_lease: u64,
        over: u64,
        expire_at_ms: u64,
        seq: u64,
    },
    Release {
        key: &'a str,
        amount: u64,
        seq: u64,
    },
}

/// What a node has to tell Redis, kept (and journaled in the ledger file) until Redis has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// `from_lease` of the node's lease on the account under `key` became spend, and `over`
    /// was spent beyond it; Redis may forget the account at `keep` (0: leave as it is).
    Settle {
        key: String,
        from_lease: u64,
        over: u64,
        keep: u64,
    },
    /// Allotment given back.
    Release { key: String, amount: u64 },
    /// What the shards held of a spend account (by its record in the ledger file) when the
    /// process died: the file counts it as spent, so the fleet must too. Read back as a
    /// settlement from the lease when the node starts.
    Unsettled { record: String, amount: u64 },
}

impl Op {
    /// The account's Redis key, or the record it will become one of.
    pub(crate) fn key(&self) -> &str {
        match self {
            Op::Settle { key, .. } | Op::Release { key, .. } => key,
            Op::Unsettled { record, .. } => record,
        }
    }
}

/// Why a fleet call did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FleetError {
    /// Redis could not be reached (or answered too late); the call may be tried again.
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
    /// Redis answered with an error (a script or data fault): not retried.
    #[error("Redis refused the call: {0}")]
    Refused(String),
    /// Redis is not in the life this node knows (it lost its data, or the node is new): the
    /// node gives it its spend before anything else.
    #[error("Redis is in a new life (it lost its data, or this node is new to it)")]
    NewLife,
}

impl From<redis::RedisError> for FleetError {
    fn from(e: redis::RedisError) -> Self {
        if refused_with(&e, LIFE_ERROR) {
            FleetError::NewLife
        } else if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            FleetError::Unreachable(e.to_string())
        } else {
            FleetError::Refused(e.to_string())
        }
    }
}

/// One account as Redis has it.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Shared {
    /// What the fleet has spent.
    pub(crate) spent: u64,
    /// What every node holds together.
    pub(crate) held: u64,
    /// What this node holds.
    pub(crate) mine: u64,
}

/// This node's connection to the fleet's books.
pub(crate) struct FleetClient {
    link: Link,
    prefix: String,
    node: String,
    /// `{prefix}n:<node>`.
    holdings: String,
    /// `{prefix}life`.
    life_key: String,
    /// The life of Redis this node knows (0: none yet).
    life: u64,
}

/// The connection, made again after a failure (not sooner than [`RETRY`]).
struct Link {
    client: redis::Client,
    conn: Option<redis::Connection>,
    timeout: Duration,
    quiet_until: Option<Instant>,
    scripts: Scripts,
    /// Requests sent and answered (or not) so far: a pipeline is one.
    round_trips: u64,
}

impl Link {
    /// Connects, unless connected (or a failure was too recent).
    fn connect(&mut self) -> Result<(), FleetError> {
        if self.conn.is_none() {
            if self.quiet_until.is_some_and(|t| Instant::now() < t) {
                return Err(FleetError::Unreachable(
                    "not tried again yet after the last failure".into(),
                ));
            }
            let timeout = self.timeout;
            let c = self
                .client
                .get_connection_with_timeout(timeout)
                .and_then(|mut c| {
                    c.set_read_timeout(Some(timeout))?;
                    c.set_write_timeout(Some(timeout))?;
                    self.round_trips += 1;
                    self.scripts.load(&mut c)?;
                    Ok(c)
                });
            match c {
                Ok(c) => {
                    self.conn = Some(c);
                    self.quiet_until = None;
                }
                Err(e) => {
                    self.quiet_until = Some(Instant::now() + RETRY);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on the connection; an unreachable Redis drops it (the next call reconnects).
    /// Scripts Redis has forgotten (SCRIPT FLUSH) are loaded again and `f` is run once more.
    fn call<T>(
        &mut self,
        f: impl Fn(&mut redis::Connection, &Scripts) -> redis::RedisResult<T>,
    ) -> Result<T, FleetError> {
        self.connect()?;
        let (Some(conn), scripts) = (self.conn.as_mut(), &self.scripts) else {
            return Err(FleetError::Unreachable("no connection".into()));
        };
        self.round_trips += 1;
        let mut result = f(conn, scripts);
        if let Err(e) = &result
            && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        {
            self.round_trips += 2;
            result = scripts.load(conn).and_then(|()| f(conn, scripts));
        }
        result.map_err(|e| {
            let e = FleetError::from(e);
            if matches!(e, FleetError::Unreachable(_)) {
                self.conn = None;
                self.quiet_until = Some(Instant::now() + RETRY);
            }
            e
        })
    }
}

/// A Redis client for `fleet.url`, with the CA and client certificate the config names for
/// rediss:// (without a CA: the public web roots).
pub(crate) fn client(fleet: &Fleet) -> redis::RedisResult<redis::Client> {
    if fleet.tls_ca.is_none() && fleet.tls_client.is_none() {
        return redis::Client::open(fleet.url.as_str());
    }
    redis::Client::build_with_tls(
        fleet.url.as_str(),
        redis::TlsCertificates {
            client_tls: fleet
                .tls_client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.pem.as_bytes().to_vec(),
                    client_key: key.pem.as_bytes().to_vec(),
                }),
            root_cert: fleet.tls_ca.as_ref().map(|c| c.pem.as_bytes().to_vec()),
        },
    )
}

impl FleetClient {
    pub(crate) fn new(fleet: &Fleet) -> Result<FleetClient, String> {
        let client = client(fleet).map_err(|e| format!("fleet: {e}"))?;
        Ok(FleetClient {
            link: Link {
                client,
                conn: None,
                timeout: Duration::from_millis(fleet.timeout_ms),
                quiet_until: None,
                scripts: Scripts::new(),
                round_trips: 0,
            },
            holdings: format!("{}n:{}", fleet.key_prefix, fleet.node_id),
            life_key: format!("{}life", fleet.key_prefix),
            life: 0,
            prefix: fleet.key_prefix.clone(),
            node: fleet.node_id.clone(),
        })
    }

    /// The Redis key of an account. The holder's name is length-prefixed, so no name can
    /// make two accounts share a key.
    pub(crate) fn key(&self, a: &AccountId) -> String {
        let name = a.holder.name();
        format!(
            "{}a:{}{}:{name}:{}:{}",
            self.prefix,
            a.holder.tag(),
            name.len(),
            a.limit.field(),
            a.period
        )
    }

    /// Asks for `ask` of `account` (at least `min`, else nothing) under `cap`; the hash is
    /// kept until `expire_at_ms` (0: for ever). Returns (granted, what is still available).
    pub(crate) fn lease(
        &mut self,
        account: &AccountId,
        cap: u64,
        min: u64,
        ask: u64,
        expire_at_ms: u64,
    ) -> Result<(u64, u64), FleetError> {
        let key = self.key(account);
        let (node, holdings, life_key, life) =
            (&self.node, &self.holdings, &self.life_key, self.life);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.link.call(|c, s| {
            redis::cmd("EVALSHA")
                .arg(s.lease.get_hash())
                .arg(3)
                .arg(&key)
                .arg(holdings)
                .arg(life_key)
                .arg(node)
                .arg(cap)
                .arg(min)
                .arg(ask.max(min))
                .arg(expire_at_ms)
                .arg(now_ms)
                .arg(life)
                .query::<(u64, u64)>(c)
        })
    }

    /// Whether Redis can be reached now (a connection is made if none is and a try is due):
    /// false, and nothing sent can have reached it.
    pub(crate) fn reachable(&mut self) -> bool {
        self.link.connect().is_ok()
    }

    /// Round trips to Redis so far (a pipeline is one).
    pub(crate) fn round_trips(&self) -> u64 {
        self.link.round_trips
    }

    /// The life of Redis this node knows (0: none yet).
    pub(crate) fn life(&self) -> u64 {
        self.life
    }

    /// Takes `life` as the one this node knows (read from its ledger file).
    pub(crate) fn set_life(&mut self, life: u64) {
        self.life = life;
    }

    /// Redis's life: the one it has, or (none yet) a new random one this node sets. Not yet
    /// the node's own: that is [`FleetClient::contribute`]. Also this node's sign of life.
    pub(crate) fn current_life(&mut self) -> Result<u64, FleetError> {
        let (key, mine) = (&self.life_key, fastrand::u64(1..1 << 53));
        let (nodes, node) = (format!("{}nodes", self.prefix), &self.node);
        self.link.call(|c, s| {
            redis::cmd("EVALSHA")
                .arg(s.beat.get_hash())
                .arg(2)
                .arg(key)
                .arg(&nodes)
                .arg(mine)
                .arg(node)
                .query::<u64>(c)
        })
    }

    /// Gives Redis in life `life` this node's part of the fleet's books: per account (Redis
    /// key) what the node spent, what its shards hold (becoming the node's lease), and when
    /// Redis may forget it. Done once per node and life (a repeat adds nothing); the node is
    /// in that life from now on.
    pub(crate) fn contribute(
        &mut self,
        life: u64,
        accounts: &[(String, u64, u64, u64)],
    ) -> Result<bool, FleetError> {
        let (node, holdings, life_key) = (&self.node, &self.holdings, &self.life_key);
        let given = self.link.call(|c, s| {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(s.contribute.get_hash())
                .arg(3 + accounts.len())
                .arg(life_key)
                .arg(format!("{life_key}:{life}:nodes"))
                .arg(holdings);
            for (key, ..) in accounts {
                cmd.arg(key);
            }
            cmd.arg(node);
            for (_, spent, held, keep) in accounts {
                cmd.arg(spent).arg(held).arg(keep);
            }
            cmd.arg(life).query::<u8>(c)
        })?;
        self.life = life;
        Ok(given == 1)
    }

    /// The Redis keys of the accounts this node may hold a lease on (what it leased and Redis
    /// has not forgotten).
    pub(crate) fn holdings(&mut self) -> Result<Vec<String>, FleetError> {
        let holdings = &self.holdings;
        self.link
            .call(|c, _| redis::cmd("ZRANGE").arg(holdings).arg(0).arg(-1).query(c))
    }

    /// Gives back everything this node holds of the accounts `keys` (numbered from `seq` up)
    /// and forgets them in its set.
    pub(crate) fn reclaim(&mut self, keys: &[String], seq: u64) -> Result<(), FleetError> {
        if keys.is_empty() {
            return Ok(());
        }
        let steps: Vec<Step<'_>> = keys
            .iter()
            .zip(seq..)
            .map(|(key, seq)| Step::Release {
                key,
                amount: ALL,
                seq,
            })
            .collect();
        let holdings = self.holdings.clone();
        self.send(&steps, |pipe| {
            pipe.cmd("ZREM").arg(&holdings).arg(keys).ignore();
        })
    }

    /// Turns `from_lease` of this node's lease into spend, and adds `over` spent beyond it.
    /// `seq`: this call's number in the node's order (a repeat is not applied twice).
    #[cfg(test)]
    pub(crate) fn settle(
        &mut self,
        account: &AccountId,
        (from_lease, over): (u64, u64),
        expire_at_ms: u64,
        seq: u64,
    ) -> Result<(), FleetError> {
        let key = self.key(account);
        self.batch(&[Step::Settle {
            key: &key,
            from_lease,
            over,
            expire_at_ms,
            seq,
        }])
    }

    /// Gives back `amount` of this node's lease; `seq` as for [`FleetClient::settle`].
    #[cfg(test)]
    pub(crate) fn release(
        &mut self,
        account: &AccountId,
        amount: u64,
        seq: u64,
    ) -> Result<(), FleetError> {
        let key = self.key(account);
        self.batch(&[Step::Release {
            key: &key,
            amount,
            seq,
        }])
    }

    /// Sends settlements and releases in one round trip, in order (each applied at most once,
    /// by its sequence number, so a batch that failed half-way is sent again whole).
    pub(crate) fn batch(&mut self, steps: &[Step<'_>]) -> Result<(), FleetError> {
        if steps.is_empty() {
            return Ok(());
        }
        self.send(steps, |_| {})
    }

    /// `steps` in one pipeline, then whatever `more` adds.
    fn send(
        &mut self,
        steps: &[Step<'_>],
        more: impl Fn(&mut redis::Pipeline),
    ) -> Result<(), FleetError> {
        let (node, life_key, life) = (&self.node, &self.life_key, self.life);
        self.link.call(|c, s| {
            let mut pipe = redis::pipe();
            for step in steps {
                match *step {
                    Step::Settle {
                        key,
                        from_lease,
                        over,
                        expire_at_ms,
                        seq,
                    } => pipe
                        .cmd("EVALSHA")
                        .arg(s.settle.get_hash())
                        .arg(2)
                        .arg(key)
                        .arg(life_key)
                        .arg(node)
                        .arg(from_lease)
                        .arg(seq)
                        .arg(over)
                        .arg(expire_at_ms)
                        .arg(life),
                    Step::Release { key, amount, seq } => pipe
                        .cmd("EVALSHA")
                        .arg(s.release.get_hash())
                        .arg(2)
                        .arg(key)
                        .arg(life_key)
                        .arg(node)
                        .arg(amount)
                        .arg(seq)
                        .arg(life),
                }
                .ignore();
            }
            more(&mut pipe);
            pipe.query::<()>(c)
        })
    }

    /// The account as Redis has it now.
    #[cfg(test)]
    pub(crate) fn shared(&mut self, account: &AccountId) -> Result<Shared, FleetError> {
        let key = self.key(account);
        let field = format!("lease:{}", self.node);
        self.link.call(|c, _| {
            let (spent, held, mine): (Option<u64>, Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("spent")
                .arg("held")
                .arg(&field)
                .query(c)?;
            Ok(Shared {
                spent: spent.unwrap_or(0),
                held: held.unwrap_or(0),
                mine: mine.unwrap_or(0),
            })
        })
    }
}

/// A fleet node's client of a test's real `redis-server`.
#[cfg(test)]
pub(crate) mod testing {
    pub(crate) use busbar_tests::RedisServer as Redis;

    /// A node's client of `redis`, in its life (the first client sets one).
    pub(crate) fn client(redis: &Redis, prefix: &str, node: &str) -> super::FleetClient {
        let mut c = unborn(redis, prefix, node);
        let life = c.current_life().expect("life");
        c.contribute(life, &[]).expect("join the life");
        c
    }

    /// A node's client of `redis` that knows no life yet.
    pub(crate) fn unborn(redis: &Redis, prefix: &str, node: &str) -> super::FleetClient {
        super::FleetClient::new(&busbar_core::config::Fleet {
            url: redis.url(),
            key_prefix: prefix.into(),
            node_id: node.into(),
            unreachable: busbar_core::config::Unreachable::Closed,
            timeout_ms: 200,
            tls_ca: None,
            tls_client: None,
        })
        .expect("client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar_core::govern::{Holder, Limit};
    use testing::Redis;

    fn node(redis: &Redis, id: &str) -> FleetClient {
        testing::client(redis, "test:", id)
    }

    fn account(name: &str) -> AccountId {
        AccountId {
            holder: Holder::Key(name.into()),
            limit: Limit::Daily,
            period: 20_000,
        }
    }

    fn seq() -> u64 {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn leases_of_many_nodes_at_once_never_pass_the_cap() {
        let redis = Redis::start();
        let cap = 1_000_000u64;
        let a = account("key_race");
        // All six start at once (else the first may take everything before the others run).
        let start = std::sync::Barrier::new(6);
        let granted: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|i| {
                    let mut n = node(&redis, &format!("node-{i}"));
                    let (a, start) = (a.clone(), &start);
                    s.spawn(move || {
                        start.wait();
                        let mut got = 0;
                        loop {
                            let (g, _) = n.lease(&a, cap, 700, 3_000, 0).expect("lease");
                            if g == 0 {
                                break;
                            }
                            got += g;
                            // Spend some of it, give some back.
                            n.settle(&a, (g / 2, 0), 0, seq()).expect("settle");
                        }
                        got
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("node"))
                .collect()
        });
        let mut n = node(&redis, "observer");
        let shared = n.shared(&a).expect("shared");
        // What was spent plus what is still held is exactly what was granted, and never more
        // than the cap; less than the smallest ask is left.
        let total: u64 = granted.iter().sum();
        assert_eq!(shared.spent + shared.held, total);
        assert!(total <= cap, "granted {total} over the cap {cap}");
        assert!(cap - total < 700, "stopped with {} left", cap - total);
        assert!(
            granted.iter().filter(|g| **g > 0).count() >= 2,
            "{granted:?}"
        );
    }

    #[test]
    fn settle_and_release_move_a_nodes_lease_and_spend_beyond_it_is_kept() {
        let redis = Redis::start();
        let a = account("key_moves");
        let mut n1 = node(&redis, "n1");
        let mut n2 = node(&redis, "n2");
        assert_eq!(
            n1.lease(&a, 10_000, 1_000, 4_000, 0).unwrap(),
            (4_000, 6_000)
        );
        assert_eq!(
            n2.lease(&a, 10_000, 1_000, 5_000, 0).unwrap(),
            (5_000, 1_000)
        );
        // Less than the minimum is left: nothing.
        assert_eq!(n2.lease(&a, 10_000, 2_000, 2_000, 0).unwrap(), (0, 1_000));
        n1.settle(&a, (3_000, 500), 0, 10).unwrap();
        // Spend beyond the reservation came out of the node's allotment too.
        assert_eq!(n1.shared(&a).unwrap().mine, 500);
        // A repeat (a reply that was lost) is not applied twice.
        n1.settle(&a, (3_000, 500), 0, 10).unwrap();
        n1.release(&a, 5_000, 11).unwrap();
        n1.release(&a, 5_000, 11).unwrap();
        let s = n1.shared(&a).unwrap();
        assert_eq!(
            s,
            Shared {
                spent: 3_500,
                held: 5_000,
                mine: 0
            }
        );
        assert_eq!(n2.shared(&a).unwrap().mine, 5_000);
        // The cap was lowered below spend + held: nothing more for anyone.
        assert_eq!(n1.lease(&a, 8_000, 1, 1_000, 0).unwrap(), (0, 0));
        // Different holders never share a key, whatever their names.
        let odd = AccountId {
            holder: Holder::Key("a:b".into()),
            ..a.clone()
        };
        assert_ne!(n1.key(&odd), n1.key(&account("a")));
    }

    #[test]
    fn an_unreachable_redis_fails_fast_and_is_reached_again_when_back() {
        let redis = Redis::start();
        let port = redis.port;
        let a = account("key_outage");
        let mut n = node(&redis, "n1");
        assert_eq!(n.lease(&a, 10_000, 10, 100, 0).unwrap().0, 625);
        drop(redis);
        let err = n.lease(&a, 10_000, 10, 100, 0).unwrap_err();
        assert!(matches!(err, FleetError::Unreachable(_)), "{err}");
        // Within the retry pause, no new try is made at all.
        assert!(matches!(
            n.lease(&a, 10_000, 10, 100, 0).unwrap_err(),
            FleetError::Unreachable(_)
        ));
        let _back = Redis::start_on(port);
        std::thread::sleep(RETRY);
        // A fresh server (nothing persisted) is in no life: nothing is done there until the
        // node has given it its part (here: nothing spent, nothing held).
        assert!(matches!(
            n.lease(&a, 10_000, 10, 100, 0).unwrap_err(),
            FleetError::NewLife
        ));
        let life = n.current_life().unwrap();
        assert_ne!(life, 0);
        n.contribute(life, &[]).unwrap();
        // (A sixteenth of what is left is more than the 100 asked.)
        assert_eq!(n.lease(&a, 10_000, 10, 100, 0).unwrap(), (625, 9_375));
    }
}
