//! Model lists in each protocol's shape: OpenAI's `GET /v1/models`, Anthropic's (same path,
//! told apart by `anthropic-version`), and Gemini's `GET /v1beta/models`.

use crate::Protocol;
use serde_json::{Value, json};

/// One listed model.
#[derive(Debug, Clone)]
pub struct ModelEntry<'a> {
    /// The name a client sends as `model`.
    pub id: &'a str,
    /// Who serves it: a provider name, or `busbar` for a pool.
    pub owned_by: &'a str,
    /// Context window in tokens, when known.
    pub context_window: Option<u64>,
    /// Most output tokens, when known.
    pub max_output_tokens: Option<u64>,
}

/// The JSON body of OpenAI's `GET /v1/models`.
pub fn models_body(entries: &[ModelEntry<'_>]) -> Vec<u8> {
    list_body(Protocol::OpenAiChat, entries)
}

/// The JSON body of a model list in `protocol`'s shape (OpenAI's for protocols without one).
pub fn list_body(protocol: Protocol, entries: &[ModelEntry<'_>]) -> Vec<u8> {
    let v = match protocol {
        Protocol::Anthropic => {
            let data: Vec<Value> = entries
                .iter()
                .map(|e| {
                    json!({"type": "model", "id": e.id, "display_name": e.id,
                           "created_at": "1970-01-01T00:00:00Z"})
                })
                .collect();
            json!({
                "data": data,
                "has_more": false,
                "first_id": entries.first().map(|e| e.id),
                "last_id": entries.last().map(|e| e.id),
            })
        }
        Protocol::Gemini => {
            let models: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut m = json!({
                        "name": format!("models/{}", e.id),
                        "version": "busbar",
                        "displayName": e.id,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    });
                    if let Some(n) = e.context_window {
                        m["inputTokenLimit"] = json!(n);
                    }
                    if let Some(n) = e.max_output_tokens {
                        m["outputTokenLimit"] = json!(n);
                    }
                    m
                })
                .collect();
            json!({"models": models})
        }
        _ => {
            let data: Vec<Value> = entries
                .iter()
                .map(|e| json!({"id": e.id, "object": "model", "created": 0, "owned_by": e.owned_by}))
                .collect();
            json!({"object": "list", "data": data})
        }
    };
    serde_json::to_vec(&v).expect("a json! value always serializes")
}
