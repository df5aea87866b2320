//! The control plane's link to the shards: one bounded crossbeam channel per shard plus a
//! doorbell (a socketpair) that wakes the shard's event loop when a message is waiting.
//!
//! ```text
//!   signal thread ─┐                      ┌─> shard 0: doorbell task drains its channel
//!   dns thread   ──┼─> Mailbox::send ─────┼─> shard 1
//!   admin thread ──┤   (never blocks)     └─> ...
//!   other shards ──┘   (breaker changes)
//! ```
//!
//! A sender never blocks: a full channel is counted and reported, and a doorbell whose socket
//! buffer is full already has a wake-up pending.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A message from the control plane to a shard.
#[derive(Debug, Clone)]
pub(crate) enum ShardMsg {
    /// Stop accepting, finish in-flight requests within the grace period, exit.
    Shutdown,
    /// Fresh addresses for a provider (index into `Config::providers`) or a webhook (after
    /// them) of config generation `generation`.
    Resolved {
        generation: u64,
        provider: usize,
        addrs: Vec<SocketAddr>,
    },
    /// Another shard's breaker replica for a lane (index into `Config::models`) changed state.
    Lane {
        generation: u64,
        lane: usize,
        change: busbar_core::breaker::Change,
    },
    /// A new config generation: new requests use it once the shard has answered on `ack`.
    Reload {
        routes: crate::routes::RoutesInit,
        ack: crossbeam_channel::Sender<usize>,
    },
    /// The admin thread asks for this shard's view of its lanes.
    Stats(crossbeam_channel::Sender<ShardReport>),
    /// The ledger answers a lease request (`granted` 0: refused, `available` left; `ahead`:
    /// it was an ask ahead).
    Granted {
        account: busbar_core::govern::AccountId,
        granted: u64,
        available: u64,
        ahead: bool,
    },
    /// The ledger could not lease an account: the fleet's books are unreachable.
    FleetDown {
        account: busbar_core::govern::AccountId,
    },
    /// The ledger wants back what this shard holds of an account and has not reserved.
    Recall {
        account: busbar_core::govern::AccountId,
    },
    /// A virtual key is new or changed (`record`), or deleted (`None`); the shard answers on
    /// `ack` once the change is in force.
    Key {
        id: String,
        digest: Option<[u8; 32]>,
        record: Option<Arc<busbar_core::govern::KeyRecord>>,
        ack: crossbeam_channel::Sender<usize>,
    },
    /// An environment's limits are new, changed or gone; answered on `ack`.
    Env {
        name: String,
        record: Option<Arc<busbar_core::govern::EnvRecord>>,
        ack: crossbeam_channel::Sender<usize>,
    },
}

/// One shard's answer to [`ShardMsg::Stats`].
#[derive(Debug, Clone)]
pub(crate) struct ShardReport {
    pub(crate) shard: usize,
    /// The config generation new requests use.
    pub(crate) generation: u64,
    /// Hook counters: (name, counts), and the audit queue's.
    pub(crate) hooks: crate::hooks::HooksReport,
    pub(crate) in_flight: usize,
    /// Client connections: open now, refused over the limit, failed TLS handshakes.
    pub(crate) connections: (usize, u64, u64),
    pub(crate) lanes: Vec<crate::lanes::LaneSnapshot>,
    /// Governance leases held: (accounts, unreserved, reserved).
    pub(crate) leases: (usize, u64, u64),
    /// The shard's metric cells.
    pub(crate) metrics: crate::telemetry::cells::Snapshot,
}

/// Messages dropped because a shard's channel was full.
pub(crate) static CHANNEL_FULL: AtomicU64 = AtomicU64::new(0);

/// The sending side of one shard's mailbox.
pub(crate) struct Mailbox {
    tx: Sender<ShardMsg>,
    bell: UnixStream,
}

/// The receiving side, handed to the shard thread.
pub(crate) struct Inbox {
    pub(crate) rx: Receiver<ShardMsg>,
    pub(crate) bell: UnixStream,
}

/// A mailbox pair with room for `capacity` messages.
pub(crate) fn mailbox(capacity: usize) -> std::io::Result<(Mailbox, Inbox)> {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((Mailbox { tx, bell: a }, Inbox { rx, bell: b }))
}

impl Mailbox {
    /// Another sender to the same shard (for the shards, which tell each other of breaker
    /// changes).
    pub(crate) fn try_clone(&self) -> std::io::Result<Mailbox> {
        Ok(Mailbox {
            tx: self.tx.clone(),
            bell: self.bell.try_clone()?,
        })
    }

    /// Queues `msg` and rings the doorbell. Never blocks.
    pub(crate) fn send(&self, msg: ShardMsg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                CHANNEL_FULL.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("control -> shard channel full; message dropped");
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
        // WouldBlock means a wake-up is already pending; any other error means the shard is gone.
        let _ = (&self.bell).write(&[1]);
    }
}
