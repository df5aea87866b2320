//! The ledger: the one thread that writes the LMDB file (keys, environments, usage, leases).
//! Shards send it what they settle and the leases they need through one bounded crossbeam
//! channel; the admin thread sends key and environment changes through the same channel. It
//! takes whatever has queued up, applies it to its books, writes it in one transaction (a
//! group commit: one fsync for many requests), and only then answers: lease grants and recalls
//! to the shards' mailboxes, confirmations to the admin thread.
//!
//! ```text
//!   shards ──Settle / Lease / Release──┐   ┌───────────────────────────────────┐
//!   admin  ──Admin(op, reply)──────────┼──>│ busbar-ledger: recv, drain queue,  │──> LMDB
//!                                      │   │ books (leases, recalls), one txn   │   (commit)
//!                                      │   └───────────────────────────────────┘
//!   shards <── Granted / Recall (mailbox + doorbell), sent after the commit
//! ```
//!
//! A full channel is counted and never blocks a shard. A lost lease request is a timeout at
//! the shard (503); a lost settlement leaves its lease counted as held (never less spend than
//! there was).

pub(crate) mod books;
pub(crate) mod fleet_books;
pub(crate) mod store;

use crate::control::{Mailbox, ShardMsg};
use books::{Books, Out};
use busbar_core::govern::{AccountId, EnvRecord, KeyRecord};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::{Settled, Store};

/// An admin change's confirmation channel, and what to send on it after the commit.
type Reply = (Sender<Result<(), String>>, Result<(), String>);

/// Most messages taken into one transaction.
const MAX_BATCH: usize = 4096;
/// Longest the thread sleeps: recalls to time out, old periods to forget, and settlements
/// waiting on the bulk channel (which does not wake it).
const TICK: Duration = Duration::from_millis(100);
/// How soon it looks at the bulk channel again after finding something there.
const BULK_SOON: Duration = Duration::from_millis(10);

/// A change the admin API makes.
#[derive(Debug)]
pub(crate) enum AdminOp {
    /// A key, new (with its secret's digest) or changed.
    PutKey {
        key: KeyRecord,
        digest: Option<[u8; 32]>,
    },
    DeleteKey(String),
    PutEnv(EnvRecord),
    DeleteEnv(String),
    /// The process is ending: answered once everything sent before it is in the file; in a
    /// fleet, what waits for Redis goes to it and every lease this node holds there goes back
    /// (what Redis cannot take stays journaled).
    Close,
}

/// A message to the ledger thread.
#[derive(Debug)]
pub(crate) enum LedgerMsg {
    /// A request's actual usage, and what its reservations turned into.
    Settle(Settled),
    /// A shard needs `want` more of `account` (whose period ends at `ends_at_ms`); `ahead`:
    /// asked before it ran out, so only what is free at once (no recall, no waiting).
    Lease {
        shard: usize,
        account: AccountId,
        want: u64,
        ends_at_ms: u64,
        ahead: bool,
    },
    /// A shard gives back lease it does not need; `recalled`: in answer to a recall.
    Release {
        shard: usize,
        account: AccountId,
        amount: u64,
        recalled: bool,
    },
    /// A change from the admin API, answered once it is in the file.
    Admin(AdminOp, Sender<Result<(), String>>),
}

/// What the ledger thread has done, readable from any thread.
#[derive(Debug, Default)]
pub(crate) struct LedgerStats {
    /// Settled requests committed to the file.
    pub(crate) committed: AtomicU64,
    /// Transactions committed.
    pub(crate) batches: AtomicU64,
    /// Transactions that failed (their requests are logged and lost from the file).
    pub(crate) failed: AtomicU64,
    /// Messages a full channel refused.
    pub(crate) dropped: AtomicU64,
    /// Lease requests granted, and refused (nothing left under some cap).
    pub(crate) granted: AtomicU64,
    pub(crate) refused: AtomicU64,
    /// Recalls sent to shards.
    pub(crate) recalls: AtomicU64,
    /// Fleet mode: settlements waiting for Redis to be reachable again.
    pub(crate) fleet_pending: AtomicU64,
    /// Fleet mode: round trips to Redis made by the ledger thread.
    pub(crate) fleet_round_trips: AtomicU64,
    /// Fleet mode: lease requests refused because they needed Redis and it could not be
    /// reached (closed, or the open allowance used up).
    pub(crate) fleet_down: AtomicU64,
}

/// The shards' (and the admin thread's) side of the ledger: two channels. What a request
/// waits for (a lease it needs, an answer to a recall, an admin change) goes on `urgent`, which
/// wakes the ledger at once; what nobody waits for (settlements, asks ahead, leases given back)
/// goes on `bulk`, which the ledger drains every few milliseconds without being woken: a shard
/// settling a request costs no wake-up of another thread.
#[derive(Clone)]
pub(crate) struct LedgerHandle {
    urgent: Sender<LedgerMsg>,
    bulk: Sender<LedgerMsg>,
    pub(crate) stats: Arc<LedgerStats>,
}

impl LedgerMsg {
    fn is_urgent(&self) -> bool {
        match self {
            LedgerMsg::Settle(_) => false,
            // An ask ahead is answered with the next bulk round: a request that runs short
            // before then asks in earnest.
            LedgerMsg::Lease { ahead, .. } => !ahead,
            LedgerMsg::Release { recalled, .. } => *recalled,
            LedgerMsg::Admin(..) => true,
        }
    }
}

impl LedgerHandle {
    /// Queues `msg`; never blocks. A full channel is counted (and the message lost).
    pub(crate) fn send(&self, msg: LedgerMsg) -> bool {
        let tx = if msg.is_urgent() {
            &self.urgent
        } else {
            &self.bulk
        };
        match tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Sends an admin change and waits (up to `wait`) until it is in the file.
    pub(crate) fn admin(&self, op: AdminOp, wait: Duration) -> Result<(), String> {
        let (tx, rx) = bounded(1);
        self.urgent
            .send_timeout(LedgerMsg::Admin(op, tx), wait)
            .map_err(|_| "the ledger is not taking changes (its queue is full)".to_string())?;
        rx.recv_timeout(wait)
            .map_err(|_| "the ledger did not confirm the change in time".to_string())?
    }
}

/// Starts the ledger thread on `store` for `shards` shards (answering through `mailboxes`),
/// with a channel of `capacity` messages. The thread ends when every handle is dropped, after
/// writing what was queued.
pub(crate) fn start(
    store: Store,
    shards: usize,
    mailboxes: Vec<Mailbox>,
    capacity: usize,
    fleet: Option<fleet_books::FleetBooks>,
) -> Result<(LedgerHandle, std::thread::JoinHandle<()>), String> {
    let mut books = Books::new(
        shards,
        store.keys().map_err(|e| format!("ledger: {e}"))?,
        store.envs().map_err(|e| format!("ledger: {e}"))?,
    );
    if let Some(f) = fleet {
        books = books.with_fleet(f);
    }
    let (urgent, urgent_rx) = bounded(capacity);
    let (bulk, bulk_rx) = bounded(capacity);
    let stats = Arc::new(LedgerStats::default());
    let s = Arc::clone(&stats);
    let join = std::thread::Builder::new()
        .name("busbar-ledger".into())
        .spawn(move || run(store, books, (urgent_rx, bulk_rx), &mailboxes, &s))
        .map_err(|e| format!("cannot start the ledger thread: {e}"))?;
    Ok((
        LedgerHandle {
            urgent,
            bulk,
            stats,
        },
        join,
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn run(
    store: Store,
    mut books: Books,
    (urgent, bulk): (Receiver<LedgerMsg>, Receiver<LedgerMsg>),
    mailboxes: &[Mailbox],
    stats: &LedgerStats,
) {
    let mut batch: Vec<LedgerMsg> = Vec::with_capacity(MAX_BATCH);
    let mut out: Vec<Out> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    let mut dirty: HashSet<AccountId> = HashSet::new();
    let mut tally = store::Tally::default();
    let mut last_sweep = Instant::now();
    let mut wait = TICK;
    let mut open = true;
    // A fleet node, before its first lease: what its last run left for Redis goes to it, and
    // its old leases go back; a Redis in a new life gets this node's spend.
    books.fleet_start(Instant::now());
    write_journal(&store, &mut books);
    while open || !bulk.is_empty() {
        match urgent.recv_timeout(wait) {
            Ok(m) => batch.push(m),
            Err(RecvTimeoutError::Timeout) => {}
            // Every handle is gone: write what is left, then end.
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        while batch.len() < MAX_BATCH {
            match urgent.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match bulk.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        // Busy: look again soon; idle: sleep up to the tick.
        wait = if batch.len() > before {
            BULK_SOON
        } else {
            (wait * 2).min(TICK)
        };
        let now = Instant::now();
        // Settlements waiting for Redis go within their flush interval.
        if let Some(w) = books.fleet_wait(now) {
            wait = wait.min(w.max(Duration::from_millis(1)));
        }
        books.fleet_beat(now);
        if batch.is_empty() {
            books.fleet_tick(now);
            fleet_stats(stats, &books);
            if books.fleet_reset_due() || books.fleet_journal_behind() {
                write_journal(&store, &mut books);
            }
            books.expire_recalls(now, &mut out);
            send(mailboxes, stats, &mut out, &mut replies);
            if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                books.sweep(now_ms());
                last_sweep = now;
            }
            continue;
        }
        let mut wtxn = match store.write_txn() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("the ledger cannot open a write transaction: {e}");
                stats.failed.fetch_add(1, Ordering::Relaxed);
                refuse_all(&mut batch, &mut out, &mut replies, &e.to_string());
                send(mailboxes, stats, &mut out, &mut replies);
                std::thread::sleep(TICK);
                continue;
            }
        };
        let mut write = false;
        let mut closing = false;
        let mut settled = 0u64;
        for msg in batch.drain(..) {
            match msg {
                LedgerMsg::Settle(s) => {
                    for (a, n, over) in &s.charges {
                        books.settle(s.shard, a, *n, *over);
                        if a.limit.is_spend() {
                            dirty.insert(a.clone());
                        }
                    }
                    tally.add(s);
                    settled += 1;
                    write = true;
                }
                LedgerMsg::Lease {
                    shard,
                    account,
                    want,
                    ends_at_ms,
                    ahead,
                } => {
                    if account.limit.is_spend() {
                        dirty.insert(account.clone());
                    }
                    let record = account.record_key();
                    books.lease(
                        books::Ask {
                            shard,
                            account,
                            want,
                            ends_at_ms,
                            ahead,
                        },
                        // A file that cannot be read grants nothing.
                        || store.charged_in(&wtxn, &record).unwrap_or(u64::MAX),
                        now,
                        &mut out,
                    );
                }
                LedgerMsg::Release {
                    shard,
                    account,
                    amount,
                    recalled,
                } => {
                    books.release(shard, &account, amount, recalled, &mut out);
                    if account.limit.is_spend() {
                        dirty.insert(account);
                    }
                }
                LedgerMsg::Admin(AdminOp::Close, reply) => {
                    closing = true;
                    replies.push((reply, Ok(())));
                }
                LedgerMsg::Admin(op, reply) => {
                    let r = admin(&store, &mut wtxn, &mut books, op).map_err(|e| e.to_string());
                    replies.push((reply, r));
                    write = true;
                }
            }
        }
        books.expire_recalls(now, &mut out);
        if closing {
            books.fleet_close(now);
        } else {
            books.fleet_flush(now);
        }
        if !tally.is_empty()
            && let Err(e) = store.write_tally_in(&mut wtxn, &mut tally)
        {
            tracing::error!(requests = settled, "the ledger could not record usage: {e}");
        }
        // After the tally: the totals given to a Redis in a new life include this batch.
        if books.fleet_reset_due() {
            books.fleet_reset(
                &|record| store.charged_in(&wtxn, record).unwrap_or(0),
                now_ms(),
            );
        }
        // Last: what a reset changed (the life, its first try) goes in with this batch.
        match books.fleet_journal(&store, &mut wtxn) {
            Ok(wrote) => write |= wrote,
            Err(e) => tracing::error!("the ledger could not journal fleet settlements: {e}"),
        }
        for a in dirty.drain() {
            if let Err(e) = store.set_leased_in(&mut wtxn, &a.record_key(), books.leased(&a)) {
                tracing::error!("the ledger could not record a lease: {e}");
            }
            write = true;
        }
        if write {
            match wtxn.commit() {
                Ok(()) => {
                    stats.committed.fetch_add(settled, Ordering::Release);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // Nothing of this batch is in the file: no grant may go out (the books
                    // keep counting them as held, so no budget is handed out twice).
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        requests = settled,
                        "the ledger could not write its transaction: {e}"
                    );
                    for o in out.iter_mut() {
                        if let Out::Grant { granted, .. } = o {
                            *granted = 0;
                        }
                    }
                    for (_, r) in replies.iter_mut() {
                        *r = Err(format!("the ledger could not write the change: {e}"));
                    }
                }
            }
        } else {
            wtxn.abort();
        }
        send(mailboxes, stats, &mut out, &mut replies);
        fleet_stats(stats, &books);
        if now.duration_since(last_sweep) >= Duration::from_secs(1) {
            books.sweep(now_ms());
            last_sweep = now;
        }
    }
    books.fleet_close(Instant::now());
    write_journal(&store, &mut books);
}

fn fleet_stats(stats: &LedgerStats, books: &Books) {
    stats
        .fleet_pending
        .store(books.fleet_pending() as u64, Ordering::Relaxed);
    stats
        .fleet_round_trips
        .store(books.fleet_round_trips(), Ordering::Relaxed);
}

/// Brings the fleet's journal in the file up to date in a transaction of its own (and gives
/// a Redis in a new life this node's spend, when it is due).
fn write_journal(store: &Store, books: &mut Books) {
    let r = store.write_txn().and_then(|mut txn| {
        if books.fleet_reset_due() {
            books.fleet_reset(
                &|record| store.charged_in(&txn, record).unwrap_or(0),
                now_ms(),
            );
        }
        if books.fleet_journal(store, &mut txn)? {
            txn.commit()
        } else {
            txn.abort();
            Ok(())
        }
    });
    if let Err(e) = r {
        tracing::error!("the ledger could not journal fleet settlements: {e}");
    }
}

/// Applies an admin change to the file (inside `wtxn`) and to the books.
fn admin(
    store: &Store,
    wtxn: &mut heed::RwTxn<'_>,
    books: &mut Books,
    op: AdminOp,
) -> heed::Result<()> {
    match op {
        AdminOp::PutKey { key, digest } => {
            store.put_key_in(wtxn, &key, digest.as_ref())?;
            books.set_key(key);
        }
        AdminOp::DeleteKey(id) => {
            store.delete_key_in(wtxn, &id)?;
            books.remove_key(&id);
        }
        AdminOp::PutEnv(env) => {
            store.put_env_in(wtxn, &env)?;
            books.set_env(env);
        }
        AdminOp::DeleteEnv(name) => {
            store.delete_env_in(wtxn, &name)?;
            books.remove_env(&name);
        }
        AdminOp::Close => {}
    }
    Ok(())
}

/// The file cannot be written: every lease ask in `batch` is refused and every admin change
/// fails; settlements stay counted as held.
fn refuse_all(batch: &mut Vec<LedgerMsg>, out: &mut Vec<Out>, replies: &mut Vec<Reply>, why: &str) {
    for msg in batch.drain(..) {
        match msg {
            LedgerMsg::Lease {
                shard,
                account,
                ahead,
                ..
            } => out.push(Out::Grant {
                shard,
                account,
                granted: 0,
                available: 0,
                ahead,
            }),
            LedgerMsg::Admin(_, reply) => {
                replies.push((reply, Err(format!("the ledger cannot write: {why}"))));
            }
            LedgerMsg::Settle(_) | LedgerMsg::Release { .. } => {}
        }
    }
}

/// Answers, after the commit.
fn send(mailboxes: &[Mailbox], stats: &LedgerStats, out: &mut Vec<Out>, replies: &mut Vec<Reply>) {
    for o in out.drain(..) {
        match o {
            Out::Grant {
                shard,
                account,
                granted,
                available,
                ahead,
            } => {
                let c = if granted > 0 {
                    &stats.granted
                } else {
                    &stats.refused
                };
                c.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = mailboxes.get(shard) {
                    m.send(ShardMsg::Granted {
                        account,
                        granted,
                        available,
                        ahead,
                    });
                }
            }
            Out::Down { shard, account } => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                stats.fleet_down.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = mailboxes.get(shard) {
                    m.send(ShardMsg::FleetDown { account });
                }
            }
            Out::Recall { shard, account } => {
                stats.recalls.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = mailboxes.get(shard) {
                    m.send(ShardMsg::Recall { account });
                }
            }
        }
    }
    for (reply, r) in replies.drain(..) {
        let _ = reply.try_send(r);
    }
}

/// `busbar bench-ledger`: how many settled requests per second the ledger thread commits to a
/// real file, fed by `producers` threads as fast as they can (each waits when the channel is
/// full, so nothing is dropped and every request is counted).
pub(crate) fn bench(dir: &std::path::Path, requests: u64, producers: usize) -> Result<(), String> {
    let store = Store::open(dir, false)?;
    let (handle, join) = start(store, 1, Vec::new(), 65_536, None)?;
    let started = std::time::Instant::now();
    let per = requests / producers.max(1) as u64;
    let threads: Vec<_> = (0..producers.max(1))
        .map(|p| {
            let h = handle.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    let mut msg = LedgerMsg::Settle(Settled {
                        key: format!("key_{}", i % 64),
                        environment: if i % 2 == 0 { "production" } else { "staging" }.into(),
                        model: format!("model-{}", (i + p as u64) % 8),
                        at_ms: 1_795_535_396_000 + i,
                        usage: store::Usage {
                            spent: 150 + i % 100,
                            input_tokens: 1000,
                            output_tokens: 200,
                            requests: 1,
                            unsettled: 0,
                        },
                        shard: 0,
                        charges: Vec::new(),
                    });
                    // The benchmark waits rather than drop: it measures the ledger, not the
                    // channel.
                    loop {
                        match h.bulk.try_send(msg) {
                            Ok(()) => break,
                            Err(TrySendError::Full(m)) => {
                                msg = m;
                                std::thread::yield_now();
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let stats = Arc::clone(&handle.stats);
    drop(handle);
    let _ = join.join();
    let secs = started.elapsed().as_secs_f64();
    let committed = stats.committed.load(Ordering::Acquire);
    let batches = stats.batches.load(Ordering::Relaxed).max(1);
    println!(
        "ledger: {committed} settled requests in {secs:.2} s = {:.0} per second ({batches} transactions, {:.0} requests each; {} failed)",
        committed as f64 / secs,
        committed as f64 / batches as f64,
        stats.failed.load(Ordering::Relaxed)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar_core::govern::Window;
    use store::{Subject, Usage};

    #[test]
    fn everything_sent_is_committed_in_batches_before_the_thread_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (h, join) = start(
            Store::open(dir.path(), false).unwrap(),
            1,
            Vec::new(),
            1 << 16,
            None,
        )
        .unwrap();
        let at = 1_795_535_396_000;
        for i in 0..5000u64 {
            assert!(h.send(LedgerMsg::Settle(Settled {
                key: "key_a".into(),
                environment: "production".into(),
                model: "gpt".into(),
                at_ms: at + i,
                usage: Usage {
                    spent: 3,
                    input_tokens: 2,
                    output_tokens: 1,
                    requests: 1,
                    unsettled: 0,
                },
                shard: 0,
                charges: Vec::new(),
            })));
        }
        let stats = Arc::clone(&h.stats);
        drop(h);
        join.join().unwrap();
        assert_eq!(stats.committed.load(Ordering::Acquire), 5000);
        let batches = stats.batches.load(Ordering::Relaxed);
        assert!((2..=5000).contains(&batches), "{batches} transactions");
        // What the thread wrote is in the file.
        let s = Store::open(dir.path(), false).unwrap();
        let u = s.usage(Subject::Key("key_a"), Window::Day, at).unwrap();
        assert_eq!((u.spent, u.requests, u.output_tokens), (15_000, 5000, 5000));
    }
}
