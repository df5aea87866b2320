//! A deterministic mock model: the answer a mock provider gives, as protocol bytes.
//!
//! Used by the built-in `mock` provider (so a newcomer with no provider keys gets an answer) and
//! by `busbar-bench mock` (the upstream of every benchmark). It decides *what* is said; the caller
//! decides *when* (time to first token, gap between tokens), so this stays sans-io.
//!
//! The reply echoes the last user message word by word, then pads with a fixed text, one word
//! per token, up to the requested token count (capped by the request's max output tokens).

mod openai;
mod reply;

pub use openai::{OpenAiStream, openai_completion};
pub use reply::{reply, thinking_signature};

use serde_json::Value;

const PADDING: &str = "busbar is a thread per core gateway that carries every request to the \
    right provider and brings every token back as soon as it arrives";

/// What a mock needs to know about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockRequest {
    /// The model name as received.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// Whether the final usage chunk was asked for.
    pub include_usage: bool,
    /// The request's output cap, if any.
    pub max_output_tokens: Option<u64>,
    /// The text of the last user message.
    pub last_user_text: String,
    /// An estimate of the prompt's tokens (about four bytes a token).
    pub prompt_tokens: u64,
}

impl MockRequest {
    /// Reads an OpenAI Chat Completions request.
    pub fn from_openai(body: &[u8]) -> Result<Self, crate::openai::RequestError> {
        let head = crate::openai::scan_request(body)?;
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| crate::openai::RequestError::Json(e.to_string()))?;
        let mut chars = 0usize;
        let mut last_user_text = String::new();
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for m in messages {
            let text = content_text(m.get("content"));
            chars += text.len() + 12;
            if m.get("role").and_then(Value::as_str) == Some("user") {
                last_user_text = text;
            }
        }
        Ok(Self {
            model: head.model,
            stream: head.stream,
            include_usage: head.include_usage,
            max_output_tokens: head.max_output_tokens,
            last_user_text,
            prompt_tokens: chars.div_ceil(4).max(1) as u64,
        })
    }
}

fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The words a mock says, and why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockReply {
    /// One entry per output token, each with its leading space (except the first).
    pub tokens: Vec<String>,
    /// `true` when the request's max output tokens cut the reply short.
    pub truncated: bool,
}

impl MockReply {
    /// Plans a reply of `tokens` tokens for `req`.
    pub fn plan(req: &MockRequest, tokens: u64) -> Self {
        let cap = req.max_output_tokens.unwrap_or(u64::MAX);
        let want = tokens.min(100_000);
        let n = want.min(cap) as usize;
        let words = req
            .last_user_text
            .split_whitespace()
            .chain(PADDING.split_whitespace().cycle())
            .take(n);
        let tokens = words
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_string()
                } else {
                    format!(" {w}")
                }
            })
            .collect();
        Self {
            tokens,
            truncated: cap < want,
        }
    }

    /// The whole reply text.
    pub fn text(&self) -> String {
        self.tokens.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> MockRequest {
        MockRequest::from_openai(body.as_bytes()).unwrap()
    }

    #[test]
    fn echoes_then_pads_and_respects_max_tokens() {
        let r = req(
            r#"{"model":"m","messages":[{"role":"system","content":"be nice"},
            {"role":"user","content":[{"type":"text","text":"hello there"}]}]}"#,
        );
        assert_eq!(r.last_user_text, "hello there");
        let reply = MockReply::plan(&r, 4);
        assert_eq!(reply.text(), "hello there busbar is");
        assert!(!reply.truncated);
        let r =
            req(r#"{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"a b c"}]}"#);
        let reply = MockReply::plan(&r, 10);
        assert_eq!(reply.text(), "a b");
        assert!(reply.truncated);
    }
}
