//! Google Gemini `models/{model}:generateContent` (v1beta) <-> IR, non-streaming.
//!
//! ```text
//!   request:  contents[{role, parts}] systemInstruction tools toolConfig safetySettings
//!             generationConfig{... thinkingConfig}     (camelCase or snake_case accepted)
//!   response: candidates[0]{content, finishReason, safetyRatings, citationMetadata}
//!             usageMetadata modelVersion responseId
//! ```
//!
//! Gemini facts this codec honours: structural keys come in camelCase or snake_case (the Python
//! SDK sends snake_case); schemas use upper-case types and become JSON Schema in the IR; a
//! `functionCall` usually has no id, so stable ids are minted (`gcall_...`) and never written
//! back; thought signatures ride on parts (function calls, and the part after the thoughts,
//! which becomes a signed empty `Thinking` block: see `parts.rs`) and must be base64. The model
//! is in the URL, not the body. Field by field: `codec/protocols/gemini.md`.

mod keys;
mod parts;
mod request;
mod response;
mod schema;
pub mod stream;

pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};
pub use schema::{fits_gemini, to_gemini_schema, to_json_schema};

/// The prefix of function-call ids busbar mints (Gemini sent none); such ids never go back.
pub const MINTED_ID_PREFIX: &str = "gcall_";
