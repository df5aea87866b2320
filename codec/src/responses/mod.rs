//! OpenAI Responses (`POST /v1/responses`) <-> IR, non-streaming.
//!
//! ```text
//!   input items                           IR
//!   message{role, content parts}     ->   a Message of that role (consecutive items of one
//!   function_call{call_id, ...}      ->     role merge: text + calls + reasoning = one turn)
//!   reasoning{id, summary, encrypted} ->  Thinking per summary part (the first one's signature
//!                                          is the item id, `rs_...`) + RedactedThinking
//!   function_call_output{call_id}    ->   a Tool message with a ToolResult
//!   anything else                    ->   Raw
//! ```
//!
//! Item ids, statuses and spellings ride in the message's `ext.responses._items`, so the same
//! trip gives the same items. A reasoning item's id travels as its thinking signature, so a
//! client of another protocol hands it back unchanged on its next turn. Reasoning summaries and
//! encrypted reasoning come back only when asked for: a request from a protocol whose client
//! wants thinking asks for both (`reasoning.summary`, `include`).

mod items;
mod request;
mod response;
pub mod stream;

pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};

/// Prefix of reasoning item ids, which the IR carries as thinking signatures.
pub const REASONING_ID_PREFIX: &str = "rs_";
