//! The HTTP/1.1 server side of a shard: one task per client connection.
//!
//! ```text
//!   accept -> [idle wait] -> head (deadline) -> body (deadline, size limit) -> gateway -> repeat
//! ```
//!
//! Every limit is explicit and every refusal is an OpenAI-shaped error with its status: a head
//! too large or with too many fields is 431, a body too large 413, a client too slow 408,
//! ambiguous framing 400. Nothing here allocates per byte; the read buffer is reused across
//! requests on a connection and pipelined bytes stay in it.

pub(crate) mod client;
pub(crate) mod conn;
pub(crate) mod h2;
pub(crate) mod respond;
pub(crate) mod tls;
