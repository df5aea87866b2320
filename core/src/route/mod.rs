//! Routing: from the name a client sent to an ordered list of models to try.
//!
//! ```text
//!   name -> model (one candidate) | pool -> members
//!   members -> eligible candidates (breaker not open, allowed to the key, context window fits)
//!           -> policy: weighted | cheapest | fastest | least_busy | usage   (built-in, sans-io)
//!                      script (Rhai, sandboxed)  | webhook (in the shard)   (fall back to a built-in)
//!           -> Decision: an order of candidates, or a rejection
//! ```
//!
//! A policy sees a [`Summary`] of the request and each [`Candidate`] with its live facts, and
//! never does I/O. The same summary goes to scripts and webhooks (serialized as JSON).

pub mod facts;
mod policy;
pub mod script;
mod weighted;

pub use policy::{Builtin, DEFAULT_EXPECTED_OUTPUT, estimated_cost, order_builtin};
pub use weighted::SmoothWeighted;

use crate::config::Config;
use serde::Serialize;
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

/// What a routing decision knows of the request. Serialized as the `request` object of a
/// webhook's JSON and passed to scripts as a map with the same fields.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The caller's protocol (`openai`, `responses`, `anthropic`, `gemini`, `cohere`,
    /// `bedrock`).
    pub protocol: &'static str,
    /// The model or pool name the client asked for.
    pub model: String,
    /// Messages (turns) in the request.
    pub messages: u32,
    /// Estimated prompt tokens (request bytes / 4).
    pub estimated_tokens: u64,
    /// The most output tokens the request asks for, if it says.
    pub max_output_tokens: Option<u64>,
    /// Whether the request offers tools.
    pub tools: bool,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The busbar key's name, when the caller used one.
    pub key: Option<String>,
    /// The key's environment label.
    pub environment: Option<String>,
    /// The request headers the pool's policy asked to see (lower-case names); a JSON object.
    #[serde(serialize_with = "as_object")]
    pub headers: Vec<(String, String)>,
}

fn as_object<S: serde::Serializer>(h: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(h.iter().map(|(k, v)| (k, v)))
}

/// A breaker's state as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneState {
    /// Taking traffic.
    Closed,
    /// Cooled down; the next request is the lane's probe.
    HalfOpen,
}

/// One member a policy may choose, with its live facts on this shard.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate<'a> {
    /// The model's name in the config.
    pub name: &'a str,
    /// Its provider's name.
    pub provider: &'a str,
    /// Index of the member in its pool (not serialized: the name identifies it).
    #[serde(skip)]
    pub member: usize,
    /// Its weight in the pool.
    pub weight: u32,
    /// USD per million input tokens.
    pub input_price: f64,
    /// USD per million output tokens.
    pub output_price: f64,
    /// What this request is estimated to cost on it, in USD (estimated prompt tokens plus the
    /// expected output, at its prices).
    pub estimated_cost: f64,
    /// Its context window in tokens, if known.
    pub context_window: Option<u64>,
    /// Requests in flight on its lane (this shard).
    pub in_flight: u32,
    /// Its lane's concurrency limit (this shard's share).
    pub max_concurrency: u32,
    /// Moving average of whole-request latency in ms, once it has answered.
    pub latency_ms: Option<f64>,
    /// Moving average of time to the first byte of an answer in ms.
    pub ttft_ms: Option<f64>,
    /// Share of the provider's request rate limit left (0..=1), from its last response headers.
    pub requests_left: Option<f64>,
    /// Share of the provider's token rate limit left (0..=1).
    pub tokens_left: Option<f64>,
    /// Its breaker's state.
    pub state: LaneState,
}

impl Candidate<'_> {
    /// Share of its own concurrency limit in use (0 idle, 1 full).
    pub fn busy(&self) -> f64 {
        if self.max_concurrency == 0 {
            1.0
        } else {
            f64::from(self.in_flight) / f64::from(self.max_concurrency)
        }
    }

    /// Headroom: the least share left under the provider's rate limits and under busbar's
    /// own concurrency limit (1 when nothing is known to be used).
    pub fn headroom(&self) -> f64 {
        let own = 1.0 - self.busy();
        self.requests_left
            .unwrap_or(1.0)
            .min(self.tokens_left.unwrap_or(1.0))
            .min(own)
            .max(0.0)
    }
}

/// What a policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try these candidates (indices into the slice the policy was given), in this order.
    Order(Vec<usize>),
    /// Refuse the request with this status (400..=599) and message.
    Reject {
        /// HTTP status for the client.
        status: u16,
        /// What the client is told.
        message: String,
    },
}
