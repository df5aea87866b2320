//! OpenAI Chat Completions streams (`chat.completion.chunk` over SSE, ending `data: [DONE]`)
//! <-> IR stream events.
//!
//! OpenAI has no block boundaries on the wire: a text block starts with the first `content`
//! delta, a tool block with the first fragment of a new `tool_calls[].index`, and all end at
//! `finish_reason`. Usage arrives only when `stream_options.include_usage` was set, in an extra
//! chunk with empty `choices`: the writer emits it only for a client that asked.

use super::response::{stop_from, stop_to};
use crate::frame::sse;
use crate::ir::{StopReason, Usage};
use crate::stream::{BlockStart, Event};
use serde_json::{Value, json};

/// Parses an OpenAI stream's SSE events.
#[derive(Debug, Default)]
pub struct Parser {
    started: bool,
    next: usize,
    text: Option<usize>,
    thinking: Option<usize>,
    /// OpenAI tool-call index -> IR block index.
    tools: Vec<(u64, usize)>,
    open: Vec<usize>,
    ended: bool,
}

impl Parser {
    fn block(&mut self, kind: BlockStart, out: &mut Vec<Event>) -> usize {
        let index = self.next;
        self.next += 1;
        self.open.push(index);
        out.push(Event::BlockStart { index, kind });
        index
    }

    fn close_all(&mut self, out: &mut Vec<Event>) {
        for index in std::mem::take(&mut self.open) {
            out.push(Event::BlockStop { index });
        }
        self.text = None;
        self.thinking = None;
    }

    /// One SSE event -> IR events.
    pub fn event(&mut self, e: &sse::Event, out: &mut Vec<Event>) {
        if e.data.trim() == "[DONE]" {
            self.close_all(out);
            if !self.ended {
                self.ended = true;
                out.push(Event::End);
            }
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            out.push(Event::Error {
                code: Some(crate::stream::MALFORMED.into()),
                message: format!("unreadable stream chunk: {}", e.data),
            });
            return;
        };
        if let Some(err) = v.get("error") {
            out.push(Event::Error {
                code: err
                    .get("code")
                    .or_else(|| err.get("type"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
            return;
        }
        if !self.started {
            self.started = true;
            let s = |k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            out.push(Event::Start {
                id: s("id"),
                model: s("model"),
            });
        }
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let d = &c["delta"];
            if let Some(t) = d
                .get("reasoning_content")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                let index = match self.thinking {
                    Some(i) => i,
                    None => {
                        let i = self.block(BlockStart::Thinking, out);
                        self.thinking = Some(i);
                        i
                    }
                };
                out.push(Event::Thinking {
                    index,
                    text: t.to_string(),
                });
            }
            for key in ["content", "refusal"] {
                if let Some(t) = d.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    let index = match self.text {
                        Some(i) => i,
                        None => {
                            let i = self.block(BlockStart::Text, out);
                            self.text = Some(i);
                            i
                        }
                    };
                    out.push(Event::Text {
                        index,
                        text: t.to_string(),
                    });
                }
            }
            for tc in d
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                let f = &tc["function"];
                let index = match self.tools.iter().find(|(t, _)| *t == k) {
                    Some((_, i)) => *i,
                    None => {
                        let id = tc
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let name = f
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let i = self.block(BlockStart::ToolUse { id, name }, out);
                        self.tools.push((k, i));
                        i
                    }
                };
                if let Some(a) = f
                    .get("arguments")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                {
                    out.push(Event::ToolArgs {
                        index,
                        json: a.to_string(),
                    });
                }
            }
            if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                self.close_all(out);
                out.push(Event::Stop(stop_from(f)));
            }
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            let cached = u["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
            out.push(Event::Usage(Usage {
                input: n("prompt_tokens").saturating_sub(cached),
                output: n("completion_tokens"),
                cache_read: cached,
                cache_write: 0,
                reasoning: u["completion_tokens_details"]["reasoning_tokens"]
                    .as_u64()
                    .unwrap_or(0),
            }));
        }
    }
}

/// Writes IR stream events as an OpenAI stream.
#[derive(Debug)]
pub struct Writer {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    started: bool,
    /// IR block index -> OpenAI tool-call index.
    tools: Vec<(usize, usize)>,
    usage: Option<Usage>,
    stop: Option<StopReason>,
}

impl Writer {
    /// A writer for a client that did (or did not) ask for usage; `created` dates the chunks.
    pub fn new(created: u64, include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            started: false,
            tools: Vec::new(),
            usage: None,
            stop: None,
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, choices: Value, usage: Option<Value>) {
        let mut v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": choices});
        // With `include_usage`, every chunk has a `usage` field: null until the last.
        match usage {
            Some(u) => v["usage"] = u,
            None if self.include_usage => v["usage"] = Value::Null,
            None => {}
        }
        sse::encode(out, None, &v.to_string());
    }

    fn delta(&self, out: &mut Vec<u8>, delta: Value) {
        self.chunk(
            out,
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            None,
        );
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = crate::ir::caller_id("chatcmpl-", id);
        self.model = model.to_string();
        self.delta(out, json!({"role": "assistant", "content": ""}));
    }

    /// Writes one event.
    pub fn event(&mut self, e: &Event, out: &mut Vec<u8>) {
        if !self.started
            && !matches!(
                e,
                Event::Start { .. } | Event::Error { .. } | Event::Usage(_)
            )
        {
            self.start("", "", out);
        }
        match e {
            Event::Start { id, model } => self.start(id, model, out),
            Event::BlockStart {
                index,
                kind: BlockStart::ToolUse { id, name },
            } => {
                let k = self.tools.len();
                self.tools.push((*index, k));
                self.delta(out, json!({"tool_calls": [{"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}));
            }
            Event::Text { text, .. } => self.delta(out, json!({"content": text})),
            Event::ToolArgs { index, json: j } => {
                if let Some((_, k)) = self.tools.iter().find(|(i, _)| i == index) {
                    self.delta(
                        out,
                        json!({"tool_calls": [{"index": k, "function": {"arguments": j}}]}),
                    );
                }
            }
            // Thinking, signatures and redacted thinking have no Chat Completions form.
            Event::BlockStart { .. }
            | Event::Thinking { .. }
            | Event::Signature { .. }
            | Event::BlockStop { .. } => {}
            // A chunk's delta has no field for citations.
            Event::Citation { .. } => {}
            Event::Usage(u) => self.usage = Some(*u),
            Event::Stop(s) => self.stop = Some(s.clone()),
            Event::Error { code, message } => {
                let v = json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": code}});
                sse::encode(out, None, &v.to_string());
            }
            Event::End => {
                let reason = stop_to(self.stop.as_ref().unwrap_or(&StopReason::EndTurn));
                self.chunk(
                    out,
                    json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}]),
                    None,
                );
                if self.include_usage {
                    let u = self.usage.unwrap_or_default();
                    let usage = json!({"prompt_tokens": u.input + u.cache_read, "completion_tokens": u.output,
                        "total_tokens": u.input + u.cache_read + u.output,
                        "prompt_tokens_details": {"cached_tokens": u.cache_read},
                        "completion_tokens_details": {"reasoning_tokens": u.reasoning}});
                    self.chunk(out, json!([]), Some(usage));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
        }
    }
}
