//! Cohere v2 chat streams (SSE, typed events) <-> IR stream events.
//!
//! ```text
//!   message-start{id} -> Start
//!   content-start{index, text | thinking} / content-delta / content-end -> a text or thinking block
//!   tool-call-start{index, id, name} / tool-call-delta{arguments} / tool-call-end -> a tool block
//!   tool-plan-delta -> (the plan has no IR stream home: not carried)
//!   message-end{finish_reason, usage{billed_units, tokens}} -> Usage, Stop, End
//! ```
//! Content and tool calls are numbered apart on the wire; the IR numbers all blocks together.

use crate::frame::sse;
use crate::ir::{StopReason, Usage};
use crate::stream::{BlockStart, Event};
use serde_json::{Value, json};

fn stop_of(f: &str) -> StopReason {
    match f {
        "COMPLETE" => StopReason::EndTurn,
        "STOP_SEQUENCE" => StopReason::StopSequence(None),
        "MAX_TOKENS" => StopReason::MaxTokens,
        "TOOL_CALL" => StopReason::ToolUse,
        other => StopReason::Other(other.to_string()),
    }
}

fn finish_name(s: &StopReason) -> &str {
    match s {
        StopReason::EndTurn
        | StopReason::PauseTurn
        | StopReason::Refusal
        | StopReason::ContentFilter => "COMPLETE",
        StopReason::StopSequence(_) => "STOP_SEQUENCE",
        StopReason::MaxTokens | StopReason::ContextExceeded => "MAX_TOKENS",
        StopReason::ToolUse => "TOOL_CALL",
        StopReason::Other(o) if matches!(o.as_str(), "ERROR" | "TIMEOUT") => o,
        StopReason::Other(_) => "COMPLETE",
    }
}

/// Parses a Cohere stream's SSE events.
#[derive(Debug, Default)]
pub struct Parser {
    next: usize,
    /// (is a tool call, wire index) -> IR index.
    blocks: Vec<(bool, u64, usize)>,
    ended: bool,
}

impl Parser {
    fn index(&mut self, tool: bool, wire: u64) -> Option<usize> {
        self.blocks
            .iter()
            .find(|b| b.0 == tool && b.1 == wire)
            .map(|b| b.2)
    }

    fn open(&mut self, tool: bool, wire: u64) -> usize {
        let i = self.next;
        self.next += 1;
        self.blocks.push((tool, wire, i));
        i
    }

    /// One SSE event -> IR events.
    pub fn event(&mut self, e: &sse::Event, out: &mut Vec<Event>) {
        // The stream's terminator (after `message-end`).
        if e.data == "[DONE]" {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            out.push(Event::Error {
                code: Some(crate::stream::MALFORMED.into()),
                message: format!("unreadable stream event: {}", e.data),
            });
            return;
        };
        let wire = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let m = &v["delta"]["message"];
        match v.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message-start" => out.push(Event::Start {
                id: v
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                model: String::new(),
            }),
            "content-start" => {
                let thinking = m["content"]["type"] == "thinking";
                let index = self.open(false, wire);
                out.push(Event::BlockStart {
                    index,
                    kind: if thinking {
                        BlockStart::Thinking
                    } else {
                        BlockStart::Text
                    },
                });
                let first = m["content"]
                    .get(if thinking { "thinking" } else { "text" })
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !first.is_empty() {
                    let text = first.to_string();
                    out.push(if thinking {
                        Event::Thinking { index, text }
                    } else {
                        Event::Text { index, text }
                    });
                }
            }
            "content-delta" => {
                let Some(index) = self.index(false, wire) else {
                    return;
                };
                if let Some(t) = m["content"].get("text").and_then(Value::as_str) {
                    out.push(Event::Text {
                        index,
                        text: t.to_string(),
                    });
                } else if let Some(t) = m["content"].get("thinking").and_then(Value::as_str) {
                    out.push(Event::Thinking {
                        index,
                        text: t.to_string(),
                    });
                }
            }
            "content-end" => {
                if let Some(index) = self.index(false, wire) {
                    out.push(Event::BlockStop { index });
                }
            }
            "tool-call-start" => {
                let c = &m["tool_calls"];
                let index = self.open(true, wire);
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                out.push(Event::BlockStart {
                    index,
                    kind: BlockStart::ToolUse {
                        id: s(&c["id"]),
                        name: s(&c["function"]["name"]),
                    },
                });
                if let Some(a) = c["function"]
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
            "tool-call-delta" => {
                let Some(index) = self.index(true, wire) else {
                    return;
                };
                if let Some(a) = m["tool_calls"]["function"]
                    .get("arguments")
                    .and_then(Value::as_str)
                {
                    out.push(Event::ToolArgs {
                        index,
                        json: a.to_string(),
                    });
                }
            }
            "tool-call-end" => {
                if let Some(index) = self.index(true, wire) {
                    out.push(Event::BlockStop { index });
                }
            }
            "citation-start" => {
                let c = &m["citations"];
                let content = c.get("content_index").and_then(Value::as_u64);
                let index = match content {
                    Some(w) => self.index(false, w),
                    None => self.blocks.iter().rev().find(|b| !b.0).map(|b| b.2),
                };
                if let Some(index) = index {
                    out.push(Event::Citation {
                        index,
                        citation: super::response::citation_of(c.clone()),
                    });
                }
            }
            "message-end" if v["delta"]["finish_reason"] == "ERROR" => {
                // A generation that failed in mid-stream.
                let e = &v["delta"]["error"];
                out.push(Event::Error {
                    code: Some("ERROR".into()),
                    message: e
                        .as_str()
                        .unwrap_or("the generation failed in mid-stream")
                        .to_string(),
                });
            }
            "message-end" => {
                let d = &v["delta"];
                let b = &d["usage"]["billed_units"];
                let n = |k: &str| b.get(k).and_then(Value::as_f64).map_or(0, |x| x as u64);
                out.push(Event::Usage(Usage {
                    input: n("input_tokens"),
                    output: n("output_tokens"),
                    cache_read: d["usage"]
                        .get("cached_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    ..Usage::default()
                }));
                if let Some(f) = d.get("finish_reason").and_then(Value::as_str) {
                    out.push(Event::Stop(stop_of(f)));
                }
                if !self.ended {
                    self.ended = true;
                    out.push(Event::End);
                }
            }
            _ => {}
        }
    }
}

/// Writes IR stream events as a Cohere stream.
#[derive(Debug, Default)]
pub struct Writer {
    started: bool,
    /// IR index -> (is a tool call, wire index).
    blocks: Vec<(usize, bool, usize)>,
    contents: usize,
    tools: usize,
    usage: Usage,
    stop: Option<StopReason>,
    /// Citations written so far.
    citations: usize,
}

fn emit(out: &mut Vec<u8>, v: Value) {
    let kind = v["type"].as_str().unwrap_or_default().to_string();
    sse::encode(out, Some(&kind), &v.to_string());
}

impl Writer {
    fn wire(&self, index: usize) -> Option<(bool, usize)> {
        self.blocks
            .iter()
            .find(|b| b.0 == index)
            .map(|b| (b.1, b.2))
    }

    /// Writes one event.
    pub fn event(&mut self, e: &Event, out: &mut Vec<u8>) {
        if !self.started && !matches!(e, Event::Error { .. } | Event::Usage(_)) {
            self.started = true;
            let id = match e {
                Event::Start { id, .. } if !id.is_empty() => id.clone(),
                _ => "busbar".to_string(),
            };
            emit(
                out,
                json!({"id": id, "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
            );
        }
        match e {
            Event::Start { .. }
            | Event::BlockStart {
                kind: BlockStart::RedactedThinking { .. },
                ..
            } => {}
            Event::BlockStart {
                index,
                kind: BlockStart::ToolUse { id, name },
            } => {
                let w = self.tools;
                self.tools += 1;
                self.blocks.push((*index, true, w));
                emit(
                    out,
                    json!({"type": "tool-call-start", "index": w, "delta": {"message": {"tool_calls": {"id": id, "type": "function", "function": {"name": name, "arguments": ""}}}}}),
                );
            }
            Event::BlockStart { index, kind } => {
                let w = self.contents;
                self.contents += 1;
                self.blocks.push((*index, false, w));
                let content = if *kind == BlockStart::Thinking {
                    json!({"type": "thinking", "thinking": ""})
                } else {
                    json!({"type": "text", "text": ""})
                };
                emit(
                    out,
                    json!({"type": "content-start", "index": w, "delta": {"message": {"content": content}}}),
                );
            }
            Event::Text { index, text } => {
                if let Some((false, w)) = self.wire(*index) {
                    emit(
                        out,
                        json!({"type": "content-delta", "index": w, "delta": {"message": {"content": {"text": text}}}}),
                    );
                }
            }
            Event::Thinking { index, text } => {
                if let Some((false, w)) = self.wire(*index) {
                    emit(
                        out,
                        json!({"type": "content-delta", "index": w, "delta": {"message": {"content": {"thinking": text}}}}),
                    );
                }
            }
            Event::ToolArgs { index, json: j } => {
                if let Some((true, w)) = self.wire(*index) {
                    emit(
                        out,
                        json!({"type": "tool-call-delta", "index": w, "delta": {"message": {"tool_calls": {"function": {"arguments": j}}}}}),
                    );
                }
            }
            Event::BlockStop { index } => match self.wire(*index) {
                Some((true, w)) => emit(out, json!({"type": "tool-call-end", "index": w})),
                Some((false, w)) => emit(out, json!({"type": "content-end", "index": w})),
                None => {}
            },
            Event::Signature { .. } => {}
            // Cohere's own citations; another protocol's have no Cohere form (as in a whole
            // response).
            Event::Citation { citation, .. } => {
                if citation.protocol == crate::Protocol::Cohere {
                    let n = self.citations;
                    self.citations += 1;
                    emit(
                        out,
                        json!({"type": "citation-start", "index": n, "delta": {"message": {"citations": citation.raw}}}),
                    );
                    emit(out, json!({"type": "citation-end", "index": n}));
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::Stop(s) => self.stop = Some(s.clone()),
            Event::Error { message, .. } => {
                // Cohere ends a failed stream with message-end and finish_reason ERROR.
                self.stop = Some(StopReason::Other("ERROR".into()));
                emit(
                    out,
                    json!({"type": "message-end", "delta": {"error": message, "finish_reason": "ERROR"}}),
                );
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            Event::End => {
                let u = &self.usage;
                let f = finish_name(self.stop.as_ref().unwrap_or(&StopReason::EndTurn)).to_string();
                emit(
                    out,
                    json!({"type": "message-end", "delta": {"finish_reason": f, "usage": {
                    "billed_units": {"input_tokens": u.input, "output_tokens": u.output},
                    "tokens": {"input_tokens": u.input + u.cache_read, "output_tokens": u.output}}}}),
                );
                // Cohere's stream terminator.
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
        }
    }
}
