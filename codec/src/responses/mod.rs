//! OpenAI Responses (`POST /v1/responses`) <-> IR; `stream` does the same for its event stream.
//!
//! ```text
//!   input / output items                    IR
//!   message{role, content parts}       ->   a Message of that role; consecutive items of one
//!   function_call{call_id, arguments}  ->     role merge into one turn (text + calls + reasoning)
//!   reasoning{id, summary[], content[],->   Thinking per summary/content part, each signed with
//!             encrypted_content}              the item id (`rs_...`), then RedactedThinking
//!   function_call_output{call_id}      ->   a Tool message with one ToolResult
//!   web_search_call, item_reference, ...->  Raw
//! ```
//!
//! Reasoning across protocols. A reasoning item's id travels as the signature of its thinking
//! blocks and its encrypted content as a redacted-thinking block, so a client of another protocol
//! (Anthropic, Bedrock) hands both back on its next turn and the item is rebuilt. The other way,
//! thinking from another provider goes to a Responses client as a reasoning item whose id starts
//! with [`FOREIGN_REASONING_PREFIX`] and whose `encrypted_content` is that provider's signature
//! (or its redacted data, with an empty summary); when the client sends the item back, it becomes
//! the same thinking block again. Such items are never sent to OpenAI from another protocol.
//!
//! Item ids, statuses, spellings and fields the IR has no place for ride in the message's
//! `ext.responses._items` (one hint per item, in order), so the same trip gives the same items;
//! each field without an IR home is also named in the message's (or response's) extension as
//! `item.<field>` / `part.<field>`, so a trip to another protocol reports it. Reasoning summaries
//! and encrypted reasoning come back only when asked for: a request from a protocol whose client
//! wants thinking asks for both (`reasoning.summary`, `include`).
//!
//! Nothing here does I/O or panics on input: malformed bodies are errors naming the place.

mod items;
mod parts;
mod reasoning;
mod request;
mod response;
pub mod stream;

pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};

/// Prefix of reasoning item ids, which the IR carries as thinking signatures.
pub const REASONING_ID_PREFIX: &str = "rs_";

/// Prefix of the reasoning item ids busbar mints for another provider's thinking; such an
/// item's `encrypted_content` is that provider's signature, not OpenAI's.
pub const FOREIGN_REASONING_PREFIX: &str = "rs_busbar_";

/// Whether `signature` is the id of a reasoning item OpenAI produced.
fn native_reasoning_id(signature: &str) -> bool {
    signature.starts_with(REASONING_ID_PREFIX) && !signature.starts_with(FOREIGN_REASONING_PREFIX)
}
