//! The mock's answer in OpenAI Chat Completions shape, whole or as SSE events.

use super::{MockReply, MockRequest};
use serde_json::{Value, json};

fn usage(req: &MockRequest, reply: &MockReply) -> Value {
    let completion = reply.tokens.len() as u64;
    json!({
        "prompt_tokens": req.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": req.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

fn finish_reason(reply: &MockReply) -> &'static str {
    if reply.truncated { "length" } else { "stop" }
}

/// A whole `chat.completion` object.
pub fn openai_completion(req: &MockRequest, reply: &MockReply, id: &str, created: u64) -> Vec<u8> {
    let v = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.text(), "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": finish_reason(reply),
        }],
        "usage": usage(req, reply),
        "service_tier": "default",
        "system_fingerprint": "fp_busbar_mock",
    });
    serde_json::to_vec(&v).expect("a json! value always serializes")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Role,
    Token(usize),
    Finish,
    Usage,
    Done,
    End,
}

/// The mock's answer as `chat.completion.chunk` SSE events, one `next_event` at a time:
/// role, one chunk per token, the finish reason, the usage chunk if asked for, `[DONE]`.
#[derive(Debug)]
pub struct OpenAiStream {
    req: MockRequest,
    reply: MockReply,
    id: String,
    created: u64,
    next: Next,
}

impl OpenAiStream {
    /// A stream for `reply` to `req`.
    pub fn new(req: MockRequest, reply: MockReply, id: String, created: u64) -> Self {
        Self {
            req,
            reply,
            id,
            created,
            next: Next::Role,
        }
    }

    /// Whether the next event carries a token (the caller waits the inter-token gap first).
    pub fn next_is_token(&self) -> bool {
        matches!(self.next, Next::Token(i) if i > 0)
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Vec<u8> {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.req.model,
            "service_tier": "default",
            "system_fingerprint": "fp_busbar_mock",
            "choices": choices,
        });
        if self.req.include_usage {
            v["usage"] = usage.unwrap_or(Value::Null);
        }
        let mut out = b"data: ".to_vec();
        serde_json::to_writer(&mut out, &v).expect("a json! value always serializes");
        out.extend_from_slice(b"\n\n");
        out
    }

    /// The next SSE event, or `None` after `data: [DONE]`.
    pub fn next_event(&mut self) -> Option<Vec<u8>> {
        let (out, next) = match self.next {
            Next::Role => (
                self.chunk(
                    json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null},
                            "logprobs": null, "finish_reason": null}]),
                    None,
                ),
                if self.reply.tokens.is_empty() { Next::Finish } else { Next::Token(0) },
            ),
            Next::Token(i) => (
                self.chunk(
                    json!([{"index": 0, "delta": {"content": self.reply.tokens[i]},
                            "logprobs": null, "finish_reason": null}]),
                    None,
                ),
                if i + 1 < self.reply.tokens.len() { Next::Token(i + 1) } else { Next::Finish },
            ),
            Next::Finish => (
                self.chunk(
                    json!([{"index": 0, "delta": {}, "logprobs": null,
                            "finish_reason": finish_reason(&self.reply)}]),
                    None,
                ),
                if self.req.include_usage { Next::Usage } else { Next::Done },
            ),
            Next::Usage => (self.chunk(json!([]), Some(usage(&self.req, &self.reply))), Next::Done),
            Next::Done => (b"data: [DONE]\n\n".to_vec(), Next::End),
            Next::End => return None,
        };
        self.next = next;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_reassembles_to_the_completion() {
        let req = MockRequest::from_openai(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
                "messages":[{"role":"user","content":"one two"}]}"#,
        )
        .unwrap();
        let reply = MockReply::plan(&req, 5);
        let whole: Value =
            serde_json::from_slice(&openai_completion(&req, &reply, "id1", 7)).unwrap();
        let mut s = OpenAiStream::new(req, reply, "id1".into(), 7);
        let mut text = String::new();
        let mut usage = Value::Null;
        let mut finish = Value::Null;
        let mut events = 0;
        while let Some(ev) = s.next_event() {
            events += 1;
            let line = std::str::from_utf8(&ev).unwrap();
            assert!(line.starts_with("data: ") && line.ends_with("\n\n"));
            let data = &line[6..line.len() - 2];
            if data == "[DONE]" {
                assert!(s.next_event().is_none());
                break;
            }
            let v: Value = serde_json::from_str(data).unwrap();
            if let Some(c) = v["choices"].get(0) {
                text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
                if !c["finish_reason"].is_null() {
                    finish = c["finish_reason"].clone();
                }
            } else {
                usage = v["usage"].clone();
            }
        }
        assert_eq!(events, 1 + 5 + 1 + 1 + 1);
        assert_eq!(
            text,
            whole["choices"][0]["message"]["content"].as_str().unwrap()
        );
        assert_eq!(finish, whole["choices"][0]["finish_reason"]);
        assert_eq!(usage, whole["usage"]);
    }
}
