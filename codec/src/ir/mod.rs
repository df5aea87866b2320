//! The IR: one request and one response model that is the union of the six protocols (OpenAI
//! Chat Completions, OpenAI Responses, Anthropic Messages, Gemini, Cohere v2, Bedrock Converse).
//!
//! ```text
//!   ingress bytes --parse--> Request (IR) --serialize--> egress bytes      (+ LossReport)
//!   egress bytes  --parse--> Response (IR) --serialize--> ingress bytes    (+ LossReport)
//! ```
//!
//! Shared concepts have typed fields here (messages with typed blocks, tools, sampling,
//! reasoning, response format, usage, stop reasons, safety). A field only one protocol has lives
//! in that protocol's typed extension ([`Extensions`]); a field no codec models yet is kept in
//! the extension's `other` map. So a same-protocol trip through the IR loses nothing, and a cross
//! trip can name every field the target could not carry: nothing is dropped in silence.
//!
//! The IR is plain data: no I/O, no clock. Codecs fill it and read it.

mod content;
mod request;
mod response;

pub use content::{Block, CacheControl, Citation, Media, Message, Role};
pub use request::{
    Reasoning, ReasoningEffort, Request, ResponseFormat, SafetySetting, Sampling, Tool, ToolChoice,
};
pub use response::{Response, SafetyRating, StopReason, Usage};

use serde_json::{Map, Value};

/// Protocol-only fields, one typed slot per protocol. A codec reads its own slot and reports
/// every other non-empty slot as lost when the target is not that protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extensions {
    /// Fields only OpenAI Chat Completions has (`logit_bias`, `logprobs`, `service_tier`, ...).
    pub openai: Map<String, Value>,
    /// Fields only OpenAI Responses has (`previous_response_id`, `store`, `include`, ...).
    pub responses: Map<String, Value>,
    /// Fields only Anthropic Messages has (`metadata`, `container`, `mcp_servers`, ...).
    pub anthropic: Map<String, Value>,
    /// Fields only Gemini has (`cachedContent`, `labels`, response modalities, ...).
    pub gemini: Map<String, Value>,
    /// Fields only Cohere v2 has (`safety_mode`, `documents` options, ...).
    pub cohere: Map<String, Value>,
    /// (In every slot, a key that starts with `_` is a codec's private hint for a same-protocol
    /// trip, such as which of two spellings a field came in; it is never reported as lost.)
    ///
    /// Fields only Bedrock Converse has (`guardrailConfig`, `additionalModelRequestFields`, ...).
    pub bedrock: Map<String, Value>,
}

impl Extensions {
    /// The non-empty slots other than `keep`, as `protocol.field` names: what a translation to
    /// `keep` cannot carry.
    pub fn foreign_fields(&self, keep: crate::Protocol) -> Vec<String> {
        use crate::Protocol as P;
        let slots: [(P, &Map<String, Value>); 6] = [
            (P::OpenAiChat, &self.openai),
            (P::OpenAiResponses, &self.responses),
            (P::Anthropic, &self.anthropic),
            (P::Gemini, &self.gemini),
            (P::Cohere, &self.cohere),
            (P::Bedrock, &self.bedrock),
        ];
        slots
            .iter()
            .filter(|(p, _)| *p != keep)
            .flat_map(|(p, m)| {
                m.keys()
                    .filter(|k| !k.starts_with('_'))
                    .map(move |k| format!("{}.{k}", p.as_str()))
            })
            .collect()
    }
}

/// An id in the caller's format: `id` itself when it already has `prefix` (it came from a
/// provider of the caller's protocol), else `prefix` followed by `id`'s letters and digits (or
/// by `busbar` when it has none). Stable: the same `id` always gives the same answer, so an id
/// minted on one turn is recognised on the next.
pub fn caller_id(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) {
        return id.to_string();
    }
    let tail: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{prefix}{}", if tail.is_empty() { "busbar" } else { &tail })
}

/// Refuses a field name a codec keeps for itself in its extension slot: a private hint (`_...`)
/// or one of `slots` (a slot ending in `.` is a prefix), so that input can never forge one.
pub(crate) fn reserved_fields(
    o: &Map<String, Value>,
    slots: &[&str],
    path: &str,
) -> Result<(), String> {
    let taken = |k: &str| {
        k.starts_with('_')
            || slots
                .iter()
                .any(|s| k == *s || (s.ends_with('.') && k.starts_with(s)))
    };
    match o.keys().find(|k| taken(k)) {
        Some(k) => Err(format!("{path}: unknown field `{k}`")),
        None => Ok(()),
    }
}

/// The strings of a JSON array (stop sequences and the like); anything else is no strings.
pub(crate) fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Inserts each field that has a value (sampling parameters and the like, written by every codec).
pub(crate) fn insert_some<const N: usize>(
    o: &mut Map<String, Value>,
    fields: [(&str, Option<Value>); N],
) {
    for (k, v) in fields {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    }
}

/// The document fields most protocols have no place for, for [`LossReport::drop_present`].
pub(crate) fn document_extras(
    context: &Option<String>,
    citations: bool,
    cache: &Option<CacheControl>,
) -> [(bool, &'static str); 3] {
    [
        (context.is_some(), "context"),
        (citations, "citations"),
        (cache.is_some(), "cache_control"),
    ]
}

/// What a translation could not carry into its target, by field path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossReport {
    /// Paths of the dropped fields, e.g. `anthropic.metadata` or `messages[2].citations`.
    pub dropped: Vec<String>,
}

impl LossReport {
    /// Records a dropped field.
    pub fn drop_field(&mut self, path: impl Into<String>) {
        let p = path.into();
        if !self.dropped.contains(&p) {
            self.dropped.push(p);
        }
    }

    /// Records `path.field` (or `field` when `path` is empty) for each field that is present.
    pub fn drop_present(&mut self, path: &str, fields: &[(bool, &str)]) {
        for (present, field) in fields {
            if *present {
                if path.is_empty() {
                    self.drop_field(*field);
                } else {
                    self.drop_field(format!("{path}.{field}"));
                }
            }
        }
    }

    /// Whether nothing was lost.
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty()
    }

    /// The value of the `x-busbar-dropped` response header.
    pub fn header_value(&self) -> String {
        self.dropped.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    #[test]
    fn foreign_fields_name_other_protocols_only() {
        let mut ext = Extensions::default();
        ext.anthropic.insert("metadata".into(), Value::Null);
        ext.openai.insert("logit_bias".into(), Value::Null);
        assert_eq!(
            ext.foreign_fields(Protocol::Anthropic),
            ["openai.logit_bias"]
        );
        assert_eq!(
            ext.foreign_fields(Protocol::OpenAiChat),
            ["anthropic.metadata"]
        );
        let mut loss = LossReport::default();
        loss.drop_field("anthropic.metadata");
        loss.drop_field("anthropic.metadata");
        loss.drop_field("messages[0].citations");
        assert_eq!(
            loss.header_value(),
            "anthropic.metadata, messages[0].citations"
        );
    }
}
