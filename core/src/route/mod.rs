//! Routing: from the name a client sent to an ordered list of models to try.
//!
//! A name is a model or a pool. A model is one candidate; a pool is its members in the order
//! its policy picks (today smooth weighted round-robin), the first pick first and the others
//! after it as fallbacks.

mod weighted;

pub use weighted::SmoothWeighted;

use crate::config::Config;
use std::collections::HashMap;

/// What a requested name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One model (index into `Config::models`).
    Model(usize),
    /// A pool (index into `Config::pools`).
    Pool(usize),
}

/// Name lookup, built once per shard.
#[derive(Debug, Clone, Default)]
pub struct Names {
    by_name: HashMap<String, Target>,
}

impl Names {
    /// The lookup table for `config`.
    pub fn new(config: &Config) -> Self {
        let mut by_name = HashMap::new();
        for (i, m) in config.models.iter().enumerate() {
            by_name.insert(m.name.clone(), Target::Model(i));
        }
        for (i, p) in config.pools.iter().enumerate() {
            by_name.insert(p.name.clone(), Target::Pool(i));
        }
        Self { by_name }
    }

    /// What `name` means, if anything.
    pub fn resolve(&self, name: &str) -> Option<Target> {
        self.by_name.get(name).copied()
    }
}
