//! One shard: its listener, its connections, its upstream pools and its view of the config.
//! Everything here is owned by one thread; shared state is `Rc`/`Cell`/`RefCell`.
//!
//! ```text
//!   serve(): bind (SO_REUSEPORT) -> report the address -> loop { accept | doorbell }
//!            on Shutdown: drop the listener, wait for in-flight requests (grace period), return
//! ```

use crate::control::{Inbox, ShardMsg};
use crate::routes::{Routes, RoutesInit};
use crate::server::conn::serve_conn;
use monoio::io::AsyncReadRent;
use monoio::net::{ListenerOpts, TcpListener, UnixStream};
use monoio::time::Instant;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

/// What a shard thread is started with (all `Send`).
pub(crate) struct ShardInit {
    pub(crate) id: usize,
    pub(crate) listen: SocketAddr,
    /// The config generation it starts on.
    pub(crate) routes: RoutesInit,
    pub(crate) inbox: Inbox,
    pub(crate) bound: SyncSender<std::io::Result<SocketAddr>>,
    /// How many shards there are (lane limits are shared out among them).
    pub(crate) shards: usize,
    /// The other shards' mailboxes.
    pub(crate) peers: Vec<crate::control::Mailbox>,
    /// The ledger, when there is one.
    pub(crate) ledger: Option<crate::ledger::LedgerHandle>,
    /// The virtual keys and environments at start-up.
    pub(crate) keys: Arc<Vec<([u8; 32], busbar_core::govern::KeyRecord)>>,
    pub(crate) envs: Arc<Vec<busbar_core::govern::EnvRecord>>,
    /// A virtual key was ever issued (the data plane needs keys).
    pub(crate) keys_issued: bool,
    /// The telemetry thread's channel, when traces or the access log are on.
    pub(crate) telemetry: Option<crossbeam_channel::Sender<crate::telemetry::export::Finished>>,
}

/// A shard's state, shared by its tasks.
pub(crate) struct Shard {
    pub(crate) id: usize,
    /// How many shards there are.
    shards: usize,
    /// The config generation new requests start on (see `routes.rs`).
    routes: RefCell<Rc<Routes>>,
    /// The other shards' mailboxes (lane changes go to them).
    peers: Rc<Vec<crate::control::Mailbox>>,
    /// Virtual keys, environments and this shard's leases on their limits.
    pub(crate) gate: Rc<crate::gate::Gate>,
    /// Requests between head and end of response.
    pub(crate) in_flight: Cell<usize>,
    /// Open client connections.
    pub(crate) open_conns: Cell<usize>,
    /// Connections answered 503 for being over `limits.max_connections`.
    pub(crate) refused_conns: Cell<u64>,
    /// TLS handshakes that failed or ran out of time (mTLS refusals among them).
    pub(crate) tls_failures: Cell<u64>,
    /// Set on shutdown: finish what is in flight, keep nothing alive.
    pub(crate) draining: Cell<bool>,
    /// Sequence for ids this shard mints.
    pub(crate) seq: Cell<u64>,
    /// Metric cells, request ids, trace contexts, the way to the telemetry thread.
    pub(crate) telemetry: crate::telemetry::Telemetry,
}

impl Shard {
    /// The current config generation; a request keeps the one it started with.
    pub(crate) fn routes(&self) -> Rc<Routes> {
        Rc::clone(&self.routes.borrow())
    }

    /// Moves new requests to generation `init`.
    fn reload(&self, init: RoutesInit) {
        let old = self.routes();
        let new = Routes::build(
            init,
            self.id,
            self.shards,
            Rc::clone(&self.peers),
            Some(&old),
        );
        *self.routes.borrow_mut() = new;
    }

    /// This shard's numbers, for `/stats` and `/metrics`.
    pub(crate) fn report(&self) -> crate::control::ShardReport {
        let r = self.routes();
        crate::control::ShardReport {
            shard: self.id,
            generation: r.generation,
            in_flight: self.in_flight.get(),
            connections: (
                self.open_conns.get(),
                self.refused_conns.get(),
                self.tls_failures.get(),
            ),
            lanes: r.lanes.snapshot(),
            leases: self.gate.held(),
            hooks: crate::hooks::report(&r),
            metrics: self.telemetry.cells.snapshot(),
        }
    }

    /// Every shard's report, this one's and its peers' (a peer that does not answer within
    /// 2 s is left out). Waits on timers, never blocks the shard.
    pub(crate) async fn gather(&self) -> Vec<crate::control::ShardReport> {
        let (tx, rx) = crossbeam_channel::bounded(self.peers.len().max(1));
        for p in self.peers.iter() {
            p.send(ShardMsg::Stats(tx.clone()));
        }
        drop(tx);
        let mut out = vec![self.report()];
        let deadline = monoio::time::Instant::now() + Duration::from_secs(2);
        while out.len() < self.shards && monoio::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(r) => out.push(r),
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    monoio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => break,
            }
        }
        out.sort_by_key(|r| r.shard);
        out
    }

    pub(crate) fn next_seq(&self) -> u64 {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        n
    }
}

/// Runs the shard until it has been told to stop and has drained.
pub(crate) async fn serve(init: ShardInit) {
    let opts = ListenerOpts::new()
        .reuse_port(true)
        .reuse_addr(true)
        .backlog(4096);
    let listener = match TcpListener::bind_with_config(init.listen, &opts) {
        Ok(l) => l,
        Err(e) => {
            let _ = init.bound.send(Err(e));
            return;
        }
    };
    let bell = match UnixStream::from_std(init.inbox.bell) {
        Ok(b) => b,
        Err(e) => {
            let _ = init.bound.send(Err(e));
            return;
        }
    };
    let local = listener.local_addr().unwrap_or(init.listen);
    let peers = Rc::new(init.peers);
    let telemetry_settings = init.routes.config.telemetry.clone();
    let routes = Routes::build(init.routes, init.id, init.shards, Rc::clone(&peers), None);
    let mut seed = [0u8; 8];
    // A shard's ids need only be unpredictable enough not to collide across shards and
    // restarts; without the OS's entropy the shard id and the time still tell them apart.
    if getrandom::fill(&mut seed).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        seed = (now ^ (init.id as u64).rotate_left(48)).to_le_bytes();
    }
    let shard = Rc::new(Shard {
        id: init.id,
        shards: init.shards,
        routes: RefCell::new(routes),
        peers,
        gate: Rc::new(crate::gate::Gate::new(
            init.id,
            init.ledger,
            &init.keys,
            &init.envs,
            init.keys_issued,
        )),
        in_flight: Cell::new(0),
        open_conns: Cell::new(0),
        refused_conns: Cell::new(0),
        tls_failures: Cell::new(0),
        draining: Cell::new(false),
        seq: Cell::new(0),
        telemetry: crate::telemetry::Telemetry::new(
            telemetry_settings,
            init.telemetry,
            u64::from_le_bytes(seed),
        ),
    });
    let _ = init.bound.send(Ok(local));
    monoio::spawn(sweep_idle(Rc::clone(&shard)));

    let rx = init.inbox.rx;
    let mut bell_wait = Box::pin(ring(bell));
    // The accept stays in flight while mailbox messages are handled: under io_uring, dropping
    // an accept the kernel has already completed would lose that connection (its client would
    // wait for ever), so it is only ever replaced once it has finished.
    let mut accept = Box::pin(listener.accept());
    loop {
        monoio::select! {
            accepted = &mut accept => {
                match accepted {
                    Ok((stream, _peer)) => {
                        monoio::spawn(serve_conn(Rc::clone(&shard), stream));
                    }
                    Err(e) => {
                        tracing::warn!(shard = shard.id, "accept failed: {e}");
                        monoio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                accept = Box::pin(listener.accept());
            },
            bell = &mut bell_wait => {
                let mut stop = false;
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        ShardMsg::Shutdown => stop = true,
                        ShardMsg::Resolved { generation, provider, addrs } => {
                            let r = shard.routes();
                            if r.generation == generation {
                                r.upstream.set_addrs(provider, addrs);
                            }
                        }
                        ShardMsg::Lane { generation, lane, change } => {
                            let r = shard.routes();
                            if r.lanes.generation() == generation {
                                r.lanes.apply(lane, &change);
                            }
                        }
                        ShardMsg::Stats(reply) => {
                            let _ = reply.try_send(shard.report());
                        }
                        ShardMsg::Reload { routes, ack } => {
                            shard.reload(routes);
                            let _ = ack.try_send(shard.id);
                        }
                        ShardMsg::FleetDown { account } => shard.gate.fleet_down(&account),
                        ShardMsg::Granted { account, granted, available, ahead } => {
                            shard.gate.granted(&account, granted, available, ahead);
                        }
                        ShardMsg::Recall { account } => shard.gate.recall(&account),
                        ShardMsg::Key { id, digest, record, ack } => {
                            shard.gate.set_key(&id, digest, record);
                            let _ = ack.try_send(shard.id);
                        }
                        ShardMsg::Env { name, record, ack } => {
                            shard.gate.set_env(&name, record);
                            let _ = ack.try_send(shard.id);
                        }
                    }
                }
                if stop {
                    break;
                }
                bell_wait = Box::pin(ring(bell));
            }
        }
    }

    drop(accept);
    drop(listener);
    shard.draining.set(true);
    let grace = Duration::from_millis(shard.routes().config.limits.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    while shard.in_flight.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    if shard.in_flight.get() > 0 {
        tracing::warn!(
            shard = shard.id,
            in_flight = shard.in_flight.get(),
            "grace period over; dropping requests"
        );
    }
    shard.gate.surrender_everything();
}

/// Waits for the doorbell, consumes what is rung, and hands the socket back.
async fn ring(mut bell: UnixStream) -> UnixStream {
    let buf = vec![0u8; 64];
    let (res, _) = bell.read(buf).await;
    if let Ok(0) | Err(_) = res {
        // The control side is gone: nothing will ever ring again. Park this future forever
        // rather than spin.
        std::future::pending::<()>().await;
    }
    bell
}

/// Drops idle upstream connections past their keep-alive time.
async fn sweep_idle(shard: Rc<Shard>) {
    loop {
        let every = Duration::from_millis(
            shard
                .routes()
                .config
                .upstream
                .pool_idle_timeout_ms
                .clamp(100, 5_000),
        );
        monoio::time::sleep(every).await;
        shard.routes().upstream.sweep(Instant::now());
        shard.gate.sweep(crate::gate::now_ms());
    }
}
