//! Anthropic Messages (`POST /v1/messages`) <-> IR.
//!
//! Thinking blocks keep their signatures, redacted thinking its data, cache-control marks and
//! citations ride on their blocks; server-side tool blocks and other Anthropic-only kinds are
//! carried as [`crate::ir::Block::Raw`] and reported when the target cannot take them.

mod blocks;
mod request;
mod response;
pub mod stream;

pub use request::{parse_request, write_request};
pub(crate) use response::stop_name;
pub use response::{parse_response, write_response};
