//! One config generation as a shard holds it: the config, name lookup, static keys, upstream
//! pools, lanes and hooks. A request takes the current generation when it starts and keeps it
//! to the end, so a reload never changes what an in-flight request sees; the old generation
//! is dropped when its last request is done.
//!
//! ```text
//!   start-up / reload:  control thread -> RoutesInit (Send) -> each shard: Routes::build
//!                       -> inherits lane state by name from the generation it replaces
//!   request:            shard.routes() -> Rc<Routes> held for the request's life
//! ```

use crate::control::Mailbox;
use crate::hooks::Hooks;
use crate::lanes::Lanes;
use crate::upstream::Upstream;
use busbar_core::config::Config;
use busbar_core::keys::KeyTable;
use busbar_core::route::Names;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

/// What a shard needs to build a generation; made by the control plane, sent to every shard.
#[derive(Clone)]
pub(crate) struct RoutesInit {
    pub(crate) generation: u64,
    pub(crate) config: Arc<Config>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// The listeners' TLS, built from this generation's certificates.
    pub(crate) server_tls: crate::server::tls::ServerTls,
    /// Addresses of every provider, then of every webhook (see `hooks::webhook_urls`).
    pub(crate) addrs: Vec<Vec<SocketAddr>>,
    /// What all shards share about this generation's lanes (probe slots, trip numbers).
    pub(crate) lanes: crate::lanes::Shared,
}

impl std::fmt::Debug for RoutesInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RoutesInit(generation {})", self.generation)
    }
}

/// A config generation on one shard.
pub(crate) struct Routes {
    pub(crate) generation: u64,
    /// The shard it belongs to.
    pub(crate) shard: usize,
    pub(crate) config: Arc<Config>,
    pub(crate) names: Names,
    pub(crate) keys: KeyTable,
    pub(crate) upstream: Upstream,
    pub(crate) lanes: Lanes,
    pub(crate) hooks: Hooks,
    /// The listeners' TLS of this generation (a connection is accepted with the generation
    /// current at its accept).
    pub(crate) tls: crate::server::tls::ServerTls,
}

impl Routes {
    /// Builds generation `init` on shard `shard` of `shards`; lane state is carried over from
    /// `previous` by model name.
    pub(crate) fn build(
        init: RoutesInit,
        shard: usize,
        shards: usize,
        peers: Rc<Vec<Mailbox>>,
        previous: Option<&Routes>,
    ) -> Rc<Routes> {
        let config = init.config;
        let lanes = Lanes::new(&config, shard, shards, init.lanes, peers, init.generation);
        if let Some(old) = previous {
            let names: Vec<String> = config.models.iter().map(|m| m.name.clone()).collect();
            let old_names: Vec<String> = old.config.models.iter().map(|m| m.name.clone()).collect();
            lanes.inherit(&names, &old.lanes, &old_names);
        }
        let routes = Rc::new(Routes {
            generation: init.generation,
            shard,
            names: Names::new(&config),
            keys: KeyTable::new(&config.keys),
            upstream: Upstream::new(&config, init.tls, init.addrs),
            lanes,
            hooks: Hooks::new(&config, shard),
            tls: init.server_tls,
            config,
        });
        crate::hooks::audit::Audit::start(&routes);
        routes
    }
}
