//! The ledger: the one thread that writes the LMDB file (keys, usage). Shards send it what
//! they settle through a bounded crossbeam channel; it writes whatever has queued up in one
//! transaction (a group commit: one fsync for many requests), so its throughput grows with the
//! load instead of being one fsync per request.
//!
//! ```text
//!   shard 0 ─┐  LedgerMsg::Settle   ┌──────────────────────────────┐
//!   shard 1 ─┼──────────────────────>  busbar-ledger: recv one,    │──> store.settle(batch)
//!   ...     ─┘  (try_send: a full   │  take what else is queued    │    (one transaction)
//!               channel is counted) └──────────────────────────────┘
//! ```
//!
//! The lease grants and key changes it will send back to the shards come with the rest of the
//! governance work (issue 6).

pub(crate) mod store;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::{Settled, Store};

/// Most settled requests written in one transaction.
const MAX_BATCH: usize = 4096;

/// A message to the ledger thread.
#[derive(Debug)]
pub(crate) enum LedgerMsg {
    /// A request's actual usage.
    Settle(Settled),
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
}

/// The shards' side of the ledger.
#[derive(Clone)]
pub(crate) struct LedgerHandle {
    tx: Sender<LedgerMsg>,
    pub(crate) stats: Arc<LedgerStats>,
}

impl LedgerHandle {
    /// Queues `msg`; never blocks. A full channel is counted (and the message lost).
    pub(crate) fn send(&self, msg: LedgerMsg) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Starts the ledger thread on `store`, with a channel of `capacity` messages. The thread ends
/// when every handle is dropped, after writing what was queued.
pub(crate) fn start(
    store: Store,
    capacity: usize,
) -> std::io::Result<(LedgerHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = bounded(capacity);
    let stats = Arc::new(LedgerStats::default());
    let s = Arc::clone(&stats);
    let join = std::thread::Builder::new()
        .name("busbar-ledger".into())
        .spawn(move || run(store, rx, &s))?;
    Ok((LedgerHandle { tx, stats }, join))
}

fn run(store: Store, rx: Receiver<LedgerMsg>, stats: &LedgerStats) {
    let mut batch: Vec<Settled> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        let LedgerMsg::Settle(s) = first;
        batch.push(s);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(LedgerMsg::Settle(s)) => batch.push(s),
                Err(_) => break,
            }
        }
        match store.settle(&batch) {
            Ok(()) => {
                stats
                    .committed
                    .fetch_add(batch.len() as u64, Ordering::Release);
                stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    requests = batch.len(),
                    "the ledger could not write settled usage: {e}"
                );
            }
        }
        batch.clear();
    }
}

/// `busbar bench-ledger`: how many settled requests per second the ledger thread commits to a
/// real file, fed by `producers` threads as fast as they can (each waits when the channel is
/// full, so nothing is dropped and every request is counted).
pub(crate) fn bench(dir: &std::path::Path, requests: u64, producers: usize) -> Result<(), String> {
    let store = Store::open(dir)?;
    let (handle, join) =
        start(store, 65_536).map_err(|e| format!("cannot start the ledger thread: {e}"))?;
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
                        },
                    });
                    // The benchmark waits rather than drop: it measures the ledger, not the
                    // channel.
                    loop {
                        match h.tx.try_send(msg) {
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
        let (h, join) = start(Store::open(dir.path()).unwrap(), 1 << 16).unwrap();
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
                },
            })));
        }
        let stats = Arc::clone(&h.stats);
        drop(h);
        join.join().unwrap();
        assert_eq!(stats.committed.load(Ordering::Acquire), 5000);
        let batches = stats.batches.load(Ordering::Relaxed);
        assert!((2..=5000).contains(&batches), "{batches} transactions");
        // What the thread wrote is in the file.
        let s = Store::open(dir.path()).unwrap();
        let u = s.usage(Subject::Key("key_a"), Window::Day, at).unwrap();
        assert_eq!((u.spent, u.requests, u.output_tokens), (15_000, 5000, 5000));
    }
}
