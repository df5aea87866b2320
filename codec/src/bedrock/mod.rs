//! AWS Bedrock Runtime Converse (`POST /model/{modelId}/converse`) <-> IR, non-streaming.
//!
//! ```text
//!   request:  messages[{role, content[ContentBlock]}] system[] inferenceConfig toolConfig
//!             additionalModelRequestFields{thinking, top_k, ...} outputConfig guardrailConfig ...
//!   response: output.message{content} stopReason usage{inputTokens, outputTokens, totalTokens,
//!             cacheReadInputTokens, cacheWriteInputTokens} metrics additionalModelResponseFields
//! ```
//!
//! Converse facts this codec honours: the model is in the URL, not the body, and a response has
//! no id (the gateway sends `x-amzn-RequestId`); a content block is a union (one member each);
//! a `cachePoint` block is the cache mark of the block before it; `inputTokens` excludes cache
//! reads and writes, while `totalTokens` counts them; Anthropic-on-Bedrock takes `thinking` and
//! `top_k` in `additionalModelRequestFields` and reports the matched stop sequence in
//! `additionalModelResponseFields.stop_sequence`. Fields the IR has no type for stay in
//! `ext.bedrock`; block kinds it has no type for are [`crate::ir::Block::Raw`].
//!
//! Private hints (keys starting with `_` in `ext.bedrock`) keep a same-protocol trip exact:
//! `_blocks` (per-block spellings, see `blocks.rs`), `_inline` (a `system` role turn),
//! `_stopReason`, `_totalTokens`, `_zeros`, `_schemaText`. Bodies that carry keys starting
//! with `_` themselves are refused, so a hint can never be forged by input.

mod blocks;
mod config;
mod emit;
mod media;
mod request;
mod response;
pub mod stream;

pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};

use serde_json::{Map, Value};

/// Refuses a key that would collide with this codec's private hints.
fn no_hint_keys(o: &Map<String, Value>, path: &str) -> Result<(), String> {
    match o.keys().find(|k| k.starts_with('_')) {
        Some(k) => Err(format!("{path}: unknown field `{k}`")),
        None => Ok(()),
    }
}

/// A non-negative integer member, or an error naming it.
fn u64_at(v: &Value, path: &str) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("{path} must be a non-negative integer"))
}

/// A number member, or an error naming it.
fn f64_at(v: &Value, path: &str) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| format!("{path} must be a number"))
}
