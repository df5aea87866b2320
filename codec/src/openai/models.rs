//! OpenAI's model list: `{"object": "list", "data": [{"id", "object", "created", "owned_by"}]}`.

use serde_json::json;

/// One listed model.
#[derive(Debug, Clone)]
pub struct ModelEntry<'a> {
    /// The name a client sends as `model`.
    pub id: &'a str,
    /// Who serves it: a provider name, or `busbar` for a pool.
    pub owned_by: &'a str,
}

/// The JSON body of `GET /v1/models`.
pub fn models_body(entries: &[ModelEntry<'_>]) -> Vec<u8> {
    let data: Vec<_> = entries
        .iter()
        .map(|e| json!({"id": e.id, "object": "model", "created": 0, "owned_by": e.owned_by}))
        .collect();
    serde_json::to_vec(&json!({"object": "list", "data": data}))
        .expect("a json! value always serializes")
}
