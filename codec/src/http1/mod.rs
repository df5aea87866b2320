//! HTTP/1.1 framing pieces that are pure byte logic.
//!
//! The head itself is parsed with `httparse` in the shard; what lives here is the part httparse
//! does not do: the chunked transfer-coding, decoded incrementally so a body never has to be
//! whole in memory before it moves on.

mod chunked;

pub use chunked::{ChunkedDecoder, ChunkedError};
