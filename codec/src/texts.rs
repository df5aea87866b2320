//! The texts of a request, for hooks that read or rewrite them (PII redaction, guardrails).
//!
//! ```text
//!   collect(body) -> [(JSON Pointer, text)]   every string a person or a tool wrote: system
//!                                             prompts, message contents, text parts, tool results
//!   apply(body, [(pointer, new text)])        the same body with those strings replaced
//! ```
//!
//! One rule serves all six protocols: a string under a key `text`, `content`, `system`,
//! `instructions` or `input` is a text, except inside configuration subtrees (tool definitions,
//! response formats, generation settings), which are not conversation. Pointers are RFC 6901
//! paths into the body as the client sent it; a hook treats them as opaque ids.

use serde_json::Value;

/// Keys whose string value is a text.
const TEXT_KEYS: [&str; 5] = ["text", "content", "system", "instructions", "input"];
/// Keys whose subtree is configuration, never conversation.
const SKIP: [&str; 12] = [
    "tools",
    "tool_choice",
    "toolConfig",
    "response_format",
    "generationConfig",
    "inferenceConfig",
    "safetySettings",
    "metadata",
    "thinking",
    "reasoning",
    "signature",
    "model",
];
/// Most texts collected from one request.
pub const MAX_TEXTS: usize = 4096;

/// Why a rewrite could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextsError {
    /// The body is not a JSON object.
    #[error("the request body is not a JSON object")]
    NotJson,
    /// A pointer that does not name one of the request's texts.
    #[error("`{0}` is not the path of one of the request's texts")]
    UnknownPath(String),
}

/// Every text of `body` with its JSON Pointer, in document order (at most [`MAX_TEXTS`]).
pub fn collect(body: &[u8]) -> Result<Vec<(String, String)>, TextsError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| TextsError::NotJson)?;
    if !v.is_object() {
        return Err(TextsError::NotJson);
    }
    let mut out = Vec::new();
    let mut path = String::new();
    walk(&v, None, &mut path, &mut out);
    Ok(out)
}

fn walk(v: &Value, key: Option<&str>, path: &mut String, out: &mut Vec<(String, String)>) {
    if out.len() >= MAX_TEXTS {
        return;
    }
    match v {
        Value::String(s) if key.is_some_and(|k| TEXT_KEYS.contains(&k)) => {
            out.push((path.clone(), s.clone()));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                // An array's items inherit its key: `content: ["a", "b"]` are texts too.
                walk(item, key, path, out);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                if SKIP.contains(&k.as_str()) {
                    continue;
                }
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                walk(item, Some(k), path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// `body` with the texts at `changes`' pointers replaced. Every pointer must be one
/// [`collect`] gives for this body.
pub fn apply(body: &[u8], changes: &[(String, String)]) -> Result<Vec<u8>, TextsError> {
    let texts = collect(body)?;
    let mut v: Value = serde_json::from_slice(body).map_err(|_| TextsError::NotJson)?;
    for (pointer, text) in changes {
        if !texts.iter().any(|(p, _)| p == pointer) {
            return Err(TextsError::UnknownPath(pointer.clone()));
        }
        match v.pointer_mut(pointer) {
            Some(slot @ Value::String(_)) => *slot = Value::String(text.clone()),
            _ => return Err(TextsError::UnknownPath(pointer.clone())),
        }
    }
    serde_json::to_vec(&v).map_err(|_| TextsError::NotJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(body: &str) -> Vec<(String, String)> {
        collect(body.as_bytes()).unwrap()
    }

    #[test]
    fn every_protocols_texts_and_nothing_else() {
        let openai = r#"{"model":"m","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"mail a@b.co"},{"type":"image_url","image_url":{"url":"http://x"}}]}],
            "tools":[{"type":"function","function":{"name":"f","description":"text"}}],
            "response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"properties":{"text":{"type":"string"}}}}}}"#;
        assert_eq!(
            paths(openai),
            [
                ("/messages/0/content".to_string(), "be brief".to_string()),
                ("/messages/1/content/0/text".into(), "mail a@b.co".into())
            ]
        );
        let gemini = r#"{"systemInstruction":{"parts":[{"text":"sys"}]},"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":5}}"#;
        assert_eq!(
            paths(gemini)
                .iter()
                .map(|p| p.0.as_str())
                .collect::<Vec<_>>(),
            [
                "/contents/0/parts/0/text",
                "/systemInstruction/parts/0/text"
            ]
        );
        let anthropic = r#"{"model":"m","system":"sys","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"result 4111"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"}]}]}"#;
        assert_eq!(
            paths(anthropic),
            [
                (
                    "/messages/0/content/0/content".to_string(),
                    "result 4111".to_string()
                ),
                ("/system".into(), "sys".into())
            ]
        );
        let responses = r#"{"model":"m","instructions":"ins","input":"hello"}"#;
        assert_eq!(paths(responses).len(), 2);
        assert_eq!(collect(b"[1]"), Err(TextsError::NotJson));
        assert_eq!(collect(b"nope"), Err(TextsError::NotJson));
    }

    #[test]
    fn apply_replaces_only_known_texts() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]}"#;
        let out = apply(
            body,
            &[("/messages/0/content".into(), "card [card]".into())],
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["messages"][0]["content"], "card [card]");
        assert_eq!(v["model"], "m");
        assert_eq!(
            apply(body, &[("/model".into(), "other".into())]),
            Err(TextsError::UnknownPath("/model".into()))
        );
    }

    #[test]
    fn keys_with_slashes_and_tildes_are_escaped() {
        let body = br#"{"a/b":{"te~xt":"no","text":"yes"}}"#;
        let p = paths(std::str::from_utf8(body).unwrap());
        assert_eq!(p, [("/a~1b/text".to_string(), "yes".to_string())]);
        let out = apply(body, &[("/a~1b/text".into(), "changed".into())]).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("changed"));
    }
}
