//! Start-up: one pinned thread per shard, each running its own monoio runtime, plus the
//! control threads (signals, DNS refresh). Returns when every shard has drained and stopped.
//!
//! ```text
//!   main ── resolve providers, build TLS config
//!     ├── busbar-shard-0  (pinned, own SO_REUSEPORT listener)  binds first: learns the port
//!     ├── busbar-shard-1..N                                      bind the same port
//!     ├── busbar-signals  SIGTERM/SIGINT -> Shutdown to every shard (second signal: exit now)
//!     ├── busbar-admin    GET /stats, /healthz: asks every shard through its mailbox
//!     └── busbar-dns      re-resolves provider hosts -> Resolved to every shard
//! ```

use crate::control::{Inbox, Mailbox, ShardMsg, mailbox};
use crate::routes::RoutesInit;
use crate::shard::{self, ShardInit};
use crate::upstream::tls;
use busbar_core::config::{Config, Driver, Endpoint};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

const DNS_REFRESH: Duration = Duration::from_secs(30);
const STARTUP_DNS_WAIT: Duration = Duration::from_secs(2);

/// Which driver a shard actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActualDriver {
    IoUring,
    Epoll,
}

impl ActualDriver {
    fn as_str(self) -> &'static str {
        match self {
            ActualDriver::IoUring => "io_uring",
            ActualDriver::Epoll => "epoll",
        }
    }
}

fn choose_driver(d: Driver) -> Result<ActualDriver, String> {
    let uring = monoio::utils::detect_uring();
    match d {
        Driver::Auto if uring => Ok(ActualDriver::IoUring),
        Driver::Auto | Driver::Epoll => Ok(ActualDriver::Epoll),
        Driver::IoUring if uring => Ok(ActualDriver::IoUring),
        Driver::IoUring => Err(
            "driver = \"io_uring\" but this kernel does not offer io_uring; use auto or epoll"
                .into(),
        ),
    }
}

/// Resolves every HTTP provider's host, then every webhook's (blocking; only on control
/// threads).
pub(crate) fn resolve_all(config: &Config) -> Vec<Vec<SocketAddr>> {
    config
        .providers
        .iter()
        .map(|p| (p.name.as_str(), &p.endpoint))
        .chain(
            crate::hooks::webhook_urls(config)
                .into_iter()
                .map(|u| (u.url.as_str(), &u.endpoint)),
        )
        .map(|(name, endpoint)| match endpoint {
            Endpoint::Http { host, port, .. } => match (host.as_str(), *port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    tracing::warn!(endpoint = %name, %host, "cannot resolve host: {e}");
                    Vec::new()
                }
            },
            Endpoint::Mock(_) => Vec::new(),
        })
        .collect()
}

/// Loads the config again (file, CLI overrides, scripts), for a reload.
pub(crate) type Loader = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// The generation the shards run, as the control plane knows it (only control threads touch
/// it: the admin thread, the signal thread, the DNS thread).
pub(crate) struct Current {
    /// One reload at a time.
    reloading: std::sync::Mutex<()>,
    state: std::sync::Mutex<RoutesInit>,
    loader: Loader,
    tls: Arc<rustls::ClientConfig>,
    mailboxes: Arc<Vec<Mailbox>>,
}

impl Current {
    /// The generation in force.
    pub(crate) fn get(&self) -> RoutesInit {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Loads the config again and moves every shard to it; returns the new generation once
    /// every shard has it in force. An invalid config is refused with the reason, and the
    /// old one stays.
    pub(crate) fn reload(&self) -> Result<ReloadReport, String> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.get();
        let config = (self.loader)()?;
        let mut kept = Vec::new();
        let o = &old.config;
        if config.listen != o.listen {
            kept.push("listen");
        }
        if config.shards != o.shards {
            kept.push("shards");
        }
        if config.driver != o.driver {
            kept.push("driver");
        }
        let admin_place = |a: &Option<busbar_core::config::Admin>| {
            a.as_ref()
                .map(|a| (a.listen, a.token.clone(), a.tls.is_some()))
        };
        if admin_place(&config.admin) != admin_place(&o.admin) {
            kept.push("admin");
        }
        if config.ledger != o.ledger {
            kept.push("ledger");
        }
        if config.upstream.extra_ca_files != o.upstream.extra_ca_files {
            kept.push("upstream.extra_ca_files");
        }
        if config.telemetry != o.telemetry {
            kept.push("telemetry");
        }
        if config.fleet != o.fleet {
            kept.push("fleet");
        }
        // Certificates are checked before any shard hears of the new config.
        let server_tls = crate::server::tls::ServerTls::build(&config)?;
        let init = RoutesInit {
            generation: old.generation + 1,
            server_tls,
            addrs: resolve_all(&config),
            lanes: crate::lanes::shared(&config),
            config: Arc::new(config),
            tls: Arc::clone(&self.tls),
        };
        let (tx, rx) = crossbeam_channel::bounded(self.mailboxes.len());
        for m in self.mailboxes.iter() {
            m.send(ShardMsg::Reload {
                routes: init.clone(),
                ack: tx.clone(),
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut acked = 0;
        while acked < self.mailboxes.len() {
            match rx.recv_deadline(deadline) {
                Ok(_) => acked += 1,
                Err(_) => break,
            }
        }
        let report = ReloadReport {
            generation: init.generation,
            providers: init.config.providers.len(),
            models: init.config.models.len(),
            pools: init.config.pools.len(),
            shards_acked: acked,
            shards: self.mailboxes.len(),
            needs_restart: kept.iter().map(|s| s.to_string()).collect(),
        };
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = init;
        if acked < self.mailboxes.len() {
            return Err(format!(
                "only {acked} of {} shards confirmed the new config within 10 s",
                self.mailboxes.len()
            ));
        }
        tracing::info!(
            generation = report.generation,
            needs_restart = ?report.needs_restart,
            "config reloaded on every shard"
        );
        Ok(report)
    }
}

/// What a reload did.
#[derive(Debug, Clone)]
pub(crate) struct ReloadReport {
    pub(crate) generation: u64,
    pub(crate) providers: usize,
    pub(crate) models: usize,
    pub(crate) pools: usize,
    pub(crate) shards_acked: usize,
    pub(crate) shards: usize,
    /// Settings that changed in the file but only take effect on a restart.
    pub(crate) needs_restart: Vec<String>,
}

/// Runs the gateway until it is told to stop.
pub(crate) fn run(config: Config, loader: Loader) -> Result<(), String> {
    let driver = choose_driver(config.driver)?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let count = match config.shards {
        0 => cores.len().max(1),
        n => n,
    };
    let tls = tls::client_config(&config.upstream.extra_ca_files)?;
    let config = Arc::new(config);
    let addrs = initial_addresses(&config);

    let mut mailboxes: Vec<Mailbox> = Vec::with_capacity(count);
    let mut inboxes: Vec<Inbox> = Vec::with_capacity(count);
    for _ in 0..count {
        let (m, i) = mailbox(1024).map_err(|e| format!("cannot create shard mailbox: {e}"))?;
        mailboxes.push(m);
        inboxes.push(i);
    }

    // The admin listener binds before the shards start, so a taken port fails start-up.
    let admin = match &config.admin {
        Some(a) => Some(
            std::net::TcpListener::bind(a.listen)
                .map_err(|e| format!("cannot listen on {} (admin): {e}", a.listen))?,
        ),
        None => None,
    };
    let first = RoutesInit {
        generation: 0,
        server_tls: crate::server::tls::ServerTls::build(&config)?,
        config: Arc::clone(&config),
        tls: Arc::clone(&tls),
        addrs: addrs.clone(),
        lanes: crate::lanes::shared(&config),
    };
    if config.fleet.is_some() && config.ledger.is_none() {
        return Err("[fleet] needs the ledger (its local journal and this node's view of the keys): do not turn it off".into());
    }
    let ledger = match &config.ledger {
        Some(path) => Some(open_ledger(
            std::path::Path::new(path),
            count,
            &mailboxes,
            config.fleet.as_ref(),
        )?),
        None => None,
    };
    let (keys, envs) = match &ledger {
        Some(l) => (Arc::clone(&l.keys), Arc::clone(&l.envs)),
        None => (Arc::new(Vec::new()), Arc::new(Vec::new())),
    };

    let telemetry = crate::telemetry::export::start(&config.telemetry)?;

    let mut handles = Vec::with_capacity(count);
    let mut listen = config.listen;
    for (id, inbox) in inboxes.into_iter().enumerate() {
        // Every other shard's mailbox: breaker changes go to them.
        let peers = mailboxes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != id)
            .map(|(_, m)| m.try_clone())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| format!("cannot create shard mailbox: {e}"))?;
        let (bound_tx, bound_rx) = std::sync::mpsc::sync_channel(1);
        let init = ShardInit {
            id,
            listen,
            routes: first.clone(),
            inbox,
            bound: bound_tx,
            shards: count,
            peers,
            ledger: ledger.as_ref().map(|l| l.handle.clone()),
            keys: Arc::clone(&keys),
            envs: Arc::clone(&envs),
            // A fleet node always needs keys: the fleet's keys may not have reached it yet.
            keys_issued: ledger.as_ref().is_some_and(|l| l.keys_issued) || config.fleet.is_some(),
            telemetry: telemetry.clone(),
        };
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("busbar-shard-{id}"))
            .spawn(move || {
                if let Some(core) = core
                    && !core_affinity::set_for_current(core)
                {
                    tracing::warn!(shard = id, "could not pin shard to core {}", core.id);
                }
                run_shard(driver, init)
            })
            .map_err(|e| format!("cannot start shard thread: {e}"))?;
        match bound_rx.recv() {
            Ok(Ok(addr)) => listen = addr,
            Ok(Err(e)) => return Err(format!("cannot listen on {listen}: {e}")),
            Err(_) => return Err(format!("shard {id} failed to start")),
        }
        handles.push(handle);
    }

    let mailboxes = Arc::new(mailboxes);
    let current = Arc::new(Current {
        reloading: std::sync::Mutex::new(()),
        state: std::sync::Mutex::new(first),
        loader,
        tls: Arc::clone(&tls),
        mailboxes: Arc::clone(&mailboxes),
    });
    if let Some((f, l)) = config.fleet.as_ref().zip(ledger.as_ref()) {
        crate::fleet::sync::start(
            f,
            l.handle.clone(),
            Arc::clone(&mailboxes),
            &l.keys,
            &l.envs,
        )?;
    }
    start_signal_thread(Arc::clone(&mailboxes), Arc::clone(&current))?;
    start_dns_thread(Arc::clone(&current), Arc::clone(&mailboxes));

    if let (Some(l), Some(a)) = (admin, &config.admin) {
        let at = l.local_addr().unwrap_or(a.listen);
        crate::admin::start(
            l,
            a.token.clone(),
            Arc::clone(&current),
            Arc::clone(&mailboxes),
            ledger.as_ref().map(|l| (l.handle.clone(), l.store.clone())),
        )?;
        println!(
            "busbar: admin on {at} (status page at /; GET /metrics, /stats, /healthz, /admin/...)"
        );
    }
    println!(
        "busbar: listening on {listen} (shards={count}, driver={})",
        driver.as_str()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let mut failed = false;
    for h in handles {
        failed |= h.join().is_err();
    }
    if let Some(l) = &ledger {
        // What the shards settled last is in the file (and, in a fleet, in Redis, with this
        // node's leases given back) before the process ends.
        if let Err(e) = l
            .handle
            .admin(crate::ledger::AdminOp::Close, Duration::from_secs(5))
        {
            tracing::warn!("the ledger did not confirm its last writes: {e}");
        }
    }
    if failed {
        return Err("a shard thread panicked".into());
    }
    tracing::info!("all shards stopped; exiting");
    Ok(())
}

/// The ledger, open and running.
struct OpenLedger {
    handle: crate::ledger::LedgerHandle,
    store: crate::ledger::store::Store,
    keys: Arc<Vec<([u8; 32], busbar_core::govern::KeyRecord)>>,
    envs: Arc<Vec<busbar_core::govern::EnvRecord>>,
    keys_issued: bool,
    /// Held for the life of the process: no second busbar writes the same file.
    _lock: std::fs::File,
}

/// Opens the ledger in `dir` (taking its lock), reads the keys and environments the shards
/// start with, and starts the ledger thread.
fn open_ledger(
    dir: &std::path::Path,
    shards: usize,
    mailboxes: &[Mailbox],
    fleet: Option<&busbar_core::config::Fleet>,
) -> Result<OpenLedger, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("ledger {}: {e}", dir.display()))?;
    let lock_path = dir.join("busbar.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("ledger {}: {e}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        format!(
            "ledger {}: another busbar is using it (set [ledger] path, or --ledger, to another directory)",
            dir.display()
        )
    })?;
    let store = crate::ledger::store::Store::open(dir, fleet.is_some())?;
    let keys = store
        .keys_with_digests()
        .map_err(|e| format!("ledger {}: {e}", dir.display()))?;
    let envs = store
        .envs()
        .map_err(|e| format!("ledger {}: {e}", dir.display()))?;
    let keys_issued = store
        .keys_issued()
        .map_err(|e| format!("ledger {}: {e}", dir.display()))?;
    let boxes = mailboxes
        .iter()
        .map(Mailbox::try_clone)
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("cannot create shard mailbox: {e}"))?;
    let fleet = fleet
        .map(|f| {
            let file = store
                .fleet_file()
                .map_err(|e| format!("ledger {}: {e}", dir.display()))?;
            if !file.journal.is_empty() {
                tracing::info!(
                    waiting = file.journal.len(),
                    "fleet: settlements the last run could not give Redis are sent first"
                );
            }
            crate::fleet::FleetClient::new(f)
                .map(|c| crate::ledger::fleet_books::FleetBooks::new(c, f.unreachable, file))
        })
        .transpose()?;
    let (handle, _join) = crate::ledger::start(store.clone(), shards, boxes, 65_536, fleet)?;
    tracing::info!(
        path = %dir.display(),
        keys = keys.len(),
        environments = envs.len(),
        "ledger open"
    );
    Ok(OpenLedger {
        handle,
        store,
        keys: Arc::new(keys),
        envs: Arc::new(envs),
        keys_issued,
        _lock: lock,
    })
}

/// Builds a runtime on driver `$d` and runs the shard on it (the two drivers are distinct types).
macro_rules! block_on_driver {
    ($d:ty, $init:expr) => {
        match monoio::RuntimeBuilder::<$d>::new()
            .with_entries(4096)
            .uring_builder(uring_setup())
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(shard::serve($init)),
            Err(e) => {
                let _ = $init.bound.send(Err(e));
            }
        }
    };
}

/// io_uring set-up for a shard: one thread submits (SINGLE_ISSUER), and completions run when
/// the shard next enters the kernel instead of interrupting it with an IPI (COOP_TASKRUN).
fn uring_setup() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun().setup_single_issuer();
    b
}

fn run_shard(driver: ActualDriver, init: ShardInit) {
    match driver {
        ActualDriver::IoUring => block_on_driver!(monoio::IoUringDriver, init),
        ActualDriver::Epoll => block_on_driver!(monoio::LegacyDriver, init),
    }
}

/// Resolves provider hosts before the shards start, but waits at most `STARTUP_DNS_WAIT`:
/// a slow resolver must not hold up start-up (the DNS thread fills the gaps later).
fn initial_addresses(config: &Arc<Config>) -> Vec<Vec<SocketAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let c = Arc::clone(config);
    let spawned = std::thread::Builder::new()
        .name("busbar-dns-init".into())
        .spawn(move || {
            let _ = tx.send(resolve_all(&c));
        });
    match spawned
        .ok()
        .and_then(|_| rx.recv_timeout(STARTUP_DNS_WAIT).ok())
    {
        Some(a) => a,
        None => {
            tracing::warn!(
                "provider DNS did not answer within {STARTUP_DNS_WAIT:?}; starting without it"
            );
            vec![Vec::new(); config.providers.len()]
        }
    }
}

fn start_signal_thread(mailboxes: Arc<Vec<Mailbox>>, current: Arc<Current>) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("busbar-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    // Off this thread, so a second SIGTERM is still seen during a reload.
                    let c = Arc::clone(&current);
                    let _ = std::thread::Builder::new()
                        .name("busbar-reload".into())
                        .spawn(move || match c.reload() {
                            Ok(r) => {
                                tracing::info!(generation = r.generation, "SIGHUP: config reloaded")
                            }
                            Err(e) => tracing::error!(
                                "SIGHUP: config not reloaded, the old one stays: {e}"
                            ),
                        });
                    continue;
                }
                seen += 1;
                if seen > 1 {
                    tracing::warn!("second signal: exiting without waiting for in-flight requests");
                    std::process::exit(130);
                }
                tracing::info!(
                    signal = sig,
                    "shutting down: no new connections, draining in-flight requests"
                );
                for m in mailboxes.iter() {
                    m.send(ShardMsg::Shutdown);
                }
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    Ok(())
}

/// Re-resolves the current generation's hosts every `DNS_REFRESH` and sends what changed.
fn start_dns_thread(current: Arc<Current>, mailboxes: Arc<Vec<Mailbox>>) {
    let spawned = std::thread::Builder::new()
        .name("busbar-dns".into())
        .spawn(move || {
            let mut last = current.get();
            let mut last_addrs = last.addrs.clone();
            loop {
                std::thread::sleep(DNS_REFRESH);
                let now = current.get();
                if now.generation != last.generation {
                    // A reload resolved its own addresses.
                    last_addrs = now.addrs.clone();
                    last = now;
                    continue;
                }
                let has_names = last.config.providers.iter().map(|p| &p.endpoint).any(|e| {
                    matches!(e, Endpoint::Http { host, .. } if host.parse::<std::net::IpAddr>().is_err())
                });
                if !has_names {
                    continue;
                }
                let fresh = resolve_all(&last.config);
                for (i, (old, new)) in last_addrs.iter().zip(&fresh).enumerate() {
                    if !new.is_empty() && old != new {
                        for m in mailboxes.iter() {
                            m.send(ShardMsg::Resolved {
                                generation: last.generation,
                                provider: i,
                                addrs: new.clone(),
                            });
                        }
                    }
                }
                last_addrs = fresh;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start DNS refresh thread: {e}");
    }
}
