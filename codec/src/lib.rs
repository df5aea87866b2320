//! busbar-codec: the sans-io wire layer.
//!
//! Everything here takes bytes (and, where time matters, an explicit `now`) and returns bytes or
//! decisions. Nothing here owns a socket, a runtime, a clock or a thread, so every piece is unit
//! tested, fuzzed and benchmarked without I/O.
//!
//! ```text
//!   http1    chunked transfer-coding decoder (pass-through or de-chunking)
//!   openai   OpenAI Chat Completions: request head scan, model splice, error bodies
//!   mock     a deterministic mock model, used by the built-in `mock` provider and busbar-bench
//!   ir       the translation IR: the union of the six protocols, with per-protocol extensions
//!   <proto>  openai, responses, anthropic, gemini, cohere, bedrock: request/response <-> IR
//!   frame    stream framers: SSE, AWS event-stream, Gemini's JSON array
//!   errors   error bodies in each protocol's shape
//! ```
#![warn(missing_docs)]

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod errors;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod gemini;
pub mod http1;
pub mod ir;
pub mod mock;
pub mod openai;
mod protocol;
pub mod responses;
pub mod stream;
pub mod texts;
pub mod translate;
pub mod usage;

pub use protocol::Protocol;
