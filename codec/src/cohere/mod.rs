//! Cohere v2 chat (`POST /v2/chat`) <-> IR, non-streaming.
//!
//! ```text
//!   request:  model messages[system|user|assistant|tool] tools tool_choice strict_tools
//!             response_format thinking max_tokens stop_sequences temperature seed
//!             frequency_penalty presence_penalty k p (+ documents, citation_options,
//!             safety_mode, logprobs, priority in ext.cohere)
//!   response: id finish_reason message{content, tool_plan, tool_calls, citations}
//!             usage{billed_units, tokens, cached_tokens}
//! ```
//!
//! Cohere reports billed and raw token counts: the IR's usage is the billed one (what spend is
//! computed from); the raw `tokens` ride along in `ext.cohere` for a same-protocol trip.
//! `tool_plan` (the model's plan before its tool calls) has no IR type: it is kept in the
//! message's `ext.cohere` and reported when the target cannot carry it.

mod content;
mod request;
mod response;
pub mod stream;

pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};
