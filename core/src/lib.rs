//! busbar-core: the sans-io decisions of the gateway.
//!
//! ```text
//!   breaker  one lane's circuit breaker (a replica per shard), with an injected clock
//!   fault    what an upstream failure is: client error, overflow, rate limit, outage, auth ...
//!   govern   worst-case cost, UTC windows, caps shared out among shards as leases
//!   config   the TOML model: parse, validate (errors with line and column), embedded default
//!   route    resolving a requested name to candidates; smooth weighted round-robin
//!   keys     client keys, stored and compared as SHA-256 digests
//! ```
//!
//! Nothing here owns a socket, a runtime, a clock or a thread; the environment is passed in as a
//! lookup function, so every decision is testable on its own.
#![warn(missing_docs)]

pub mod breaker;
pub mod config;
pub mod fault;
pub mod govern;
pub mod keys;
pub mod route;
