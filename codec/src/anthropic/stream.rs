//! Anthropic Messages streams <-> IR stream events.
//!
//! ```text
//!   message_start{message{id, model, usage}}  -> Start (+ Usage)
//!   content_block_start{index, content_block}  -> BlockStart (text | thinking | redacted | tool_use)
//!   content_block_delta{text_delta | thinking_delta | signature_delta | input_json_delta}
//!   content_block_stop -> BlockStop   message_delta{stop_reason, usage} -> Stop, Usage
//!   message_stop -> End               error{error{type, message}} -> Error     ping: nothing
//! ```
//! `signature_delta` closes a thinking block's content: the writer emits it right before the
//! block's `content_block_stop`.

use crate::frame::sse;
use crate::ir::{StopReason, Usage};
use crate::stream::{BlockStart, Event};
use serde_json::{Value, json};

fn stop_of(s: &str, seq: Option<String>) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(seq),
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal,
        "model_context_window_exceeded" => StopReason::ContextExceeded,
        other => StopReason::Other(other.to_string()),
    }
}

fn usage_of(u: &Value, base: &Usage) -> Usage {
    let n = |k: &str, d: u64| u.get(k).and_then(Value::as_u64).unwrap_or(d);
    Usage {
        input: n("input_tokens", base.input),
        output: n("output_tokens", base.output),
        cache_read: n("cache_read_input_tokens", base.cache_read),
        cache_write: n("cache_creation_input_tokens", base.cache_write),
        reasoning: base.reasoning,
    }
}

/// Parses an Anthropic stream's SSE events.
#[derive(Debug, Default)]
pub struct Parser {
    usage: Usage,
}

impl Parser {
    /// One SSE event -> IR events.
    pub fn event(&mut self, e: &sse::Event, out: &mut Vec<Event>) {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            out.push(Event::Error {
                code: Some(crate::stream::MALFORMED.into()),
                message: format!("unreadable stream event: {}", e.data),
            });
            return;
        };
        let idx = || v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        let s = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match v.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                let m = &v["message"];
                out.push(Event::Start {
                    id: s(m, "id"),
                    model: s(m, "model"),
                });
                if let Some(u) = m.get("usage") {
                    self.usage = usage_of(u, &self.usage);
                    out.push(Event::Usage(self.usage));
                }
            }
            "content_block_start" => {
                let b = &v["content_block"];
                let kind = match b.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "thinking" => BlockStart::Thinking,
                    "redacted_thinking" => BlockStart::RedactedThinking { data: s(b, "data") },
                    "tool_use" | "server_tool_use" => BlockStart::ToolUse {
                        id: s(b, "id"),
                        name: s(b, "name"),
                    },
                    _ => BlockStart::Text,
                };
                out.push(Event::BlockStart { index: idx(), kind });
                if let Some(t) = b
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(Event::Text {
                        index: idx(),
                        text: t.to_string(),
                    });
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let index = idx();
                match d.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "text_delta" => out.push(Event::Text {
                        index,
                        text: s(d, "text"),
                    }),
                    "thinking_delta" => out.push(Event::Thinking {
                        index,
                        text: s(d, "thinking"),
                    }),
                    "signature_delta" => out.push(Event::Signature {
                        index,
                        signature: s(d, "signature"),
                    }),
                    "input_json_delta" => out.push(Event::ToolArgs {
                        index,
                        json: s(d, "partial_json"),
                    }),
                    "citations_delta" => out.push(Event::Citation {
                        index,
                        citation: super::blocks::citation_of(&d["citation"]),
                    }),
                    _ => {}
                }
            }
            "content_block_stop" => out.push(Event::BlockStop { index: idx() }),
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.usage = usage_of(u, &self.usage);
                    out.push(Event::Usage(self.usage));
                }
                if let Some(r) = v["delta"].get("stop_reason").and_then(Value::as_str) {
                    let seq = v["delta"]
                        .get("stop_sequence")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    out.push(Event::Stop(stop_of(r, seq)));
                }
            }
            "message_stop" => out.push(Event::End),
            "error" => out.push(Event::Error {
                code: v["error"]
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                message: s(&v["error"], "message"),
            }),
            _ => {}
        }
    }
}

/// Writes IR stream events as an Anthropic stream.
#[derive(Debug, Default)]
pub struct Writer {
    started: bool,
    usage: Usage,
    stop: Option<StopReason>,
    /// Signatures held until their block stops (`signature_delta` closes a thinking block).
    signatures: Vec<(usize, String)>,
    open: Vec<usize>,
}

fn emit(out: &mut Vec<u8>, kind: &str, v: Value) {
    sse::encode(out, Some(kind), &v.to_string());
}

impl Writer {
    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = crate::ir::caller_id("msg_", id);
        emit(
            out,
            "message_start",
            json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.usage.input, "output_tokens": 0,
                      "cache_read_input_tokens": self.usage.cache_read,
                      "cache_creation_input_tokens": self.usage.cache_write}}}),
        );
    }

    /// Writes one event.
    pub fn event(&mut self, e: &Event, out: &mut Vec<u8>) {
        if !self.started
            && !matches!(
                e,
                Event::Start { .. } | Event::Usage(_) | Event::Error { .. }
            )
        {
            self.start("", "", out);
        }
        match e {
            Event::Start { id, model } => self.start(id, model, out),
            Event::BlockStart { index, kind } => {
                let block = match kind {
                    BlockStart::Text => json!({"type": "text", "text": ""}),
                    BlockStart::Thinking => json!({"type": "thinking", "thinking": ""}),
                    BlockStart::RedactedThinking { data } => {
                        json!({"type": "redacted_thinking", "data": data})
                    }
                    BlockStart::ToolUse { id, name } => {
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                    }
                };
                self.open.push(*index);
                emit(
                    out,
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": block}),
                );
            }
            Event::Text { index, text } => emit(
                out,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            ),
            Event::Thinking { index, text } => emit(
                out,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": text}}),
            ),
            Event::Signature { index, signature } => {
                self.signatures.push((*index, signature.clone()))
            }
            Event::ToolArgs { index, json: j } => emit(
                out,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": j}}),
            ),
            Event::BlockStop { index } => self.stop_block(*index, out),
            // Anthropic's own citations; another protocol's cannot be told as one (they point
            // at the request's documents by index, or carry encrypted search indices).
            Event::Citation { index, citation } => {
                if citation.protocol == crate::Protocol::Anthropic {
                    emit(
                        out,
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "citations_delta", "citation": citation.raw}}),
                    );
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::Stop(s) => self.stop = Some(s.clone()),
            Event::Error { code, message } => {
                let kind = code.clone().unwrap_or_else(|| "api_error".into());
                emit(
                    out,
                    "error",
                    json!({"type": "error", "error": {"type": kind, "message": message}}),
                );
            }
            Event::End => {
                for index in std::mem::take(&mut self.open) {
                    self.stop_block_inner(index, out);
                }
                let (reason, seq) = match &self.stop {
                    None => ("end_turn".to_string(), None),
                    Some(StopReason::StopSequence(q)) => ("stop_sequence".to_string(), q.clone()),
                    Some(s) => (crate::anthropic::stop_name(s).to_string(), None),
                };
                emit(
                    out,
                    "message_delta",
                    json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": seq},
                    "usage": {"input_tokens": self.usage.input, "output_tokens": self.usage.output,
                              "cache_read_input_tokens": self.usage.cache_read,
                              "cache_creation_input_tokens": self.usage.cache_write}}),
                );
                emit(out, "message_stop", json!({"type": "message_stop"}));
            }
        }
    }

    fn stop_block(&mut self, index: usize, out: &mut Vec<u8>) {
        if let Some(at) = self.open.iter().position(|i| *i == index) {
            self.open.remove(at);
            self.stop_block_inner(index, out);
        }
    }

    fn stop_block_inner(&mut self, index: usize, out: &mut Vec<u8>) {
        if let Some(at) = self.signatures.iter().position(|(i, _)| *i == index) {
            let (_, sig) = self.signatures.remove(at);
            emit(
                out,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": sig}}),
            );
        }
        emit(
            out,
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
}
