//! OpenAI Responses streams (typed SSE events with sequence numbers) <-> IR stream events.
//!
//! ```text
//!   response.created                          -> Start
//!   output_item.added{function_call}          -> BlockStart ToolUse (call_id, name)
//!   output_item.added{reasoning}              -> BlockStart Thinking
//!   content_part.added{output_text}           -> BlockStart Text
//!   output_text.delta / function_call_arguments.delta / reasoning_summary_text.delta
//!   content_part.done / output_item.done      -> BlockStop (a reasoning item's id as its
//!                                                signature; its encrypted content after it)
//!   response.completed | response.incomplete  -> Usage, Stop, End       error -> Error
//! ```
//! The writer keeps the items it streamed, because `response.completed` carries the whole
//! response: that one event is the largest it writes.

use crate::Protocol;
use crate::frame::sse;
use crate::ir::{StopReason, Usage, caller_id};
use crate::stream::{BlockStart, Event};
use serde_json::{Value, json};

/// Parses a Responses stream's SSE events.
#[derive(Debug, Default)]
pub struct Parser {
    next: usize,
    /// (output_index, content_index or u64::MAX for the item itself) -> IR index.
    blocks: Vec<(u64, u64, usize)>,
    saw_call: bool,
    ended: bool,
}

const ITEM: u64 = u64::MAX;

impl Parser {
    fn open(&mut self, output: u64, content: u64, kind: BlockStart, out: &mut Vec<Event>) -> usize {
        let index = self.next;
        self.next += 1;
        self.blocks.push((output, content, index));
        out.push(Event::BlockStart { index, kind });
        index
    }

    fn find(&self, output: u64, content: u64) -> Option<usize> {
        self.blocks
            .iter()
            .find(|b| b.0 == output && b.1 == content)
            .map(|b| b.2)
    }

    /// One SSE event -> IR events.
    pub fn event(&mut self, e: &sse::Event, out: &mut Vec<Event>) {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            out.push(Event::Error {
                code: Some(crate::stream::MALFORMED.into()),
                message: format!("unreadable stream event: {}", e.data),
            });
            return;
        };
        let oi = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let ci = v.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let s = |x: &Value, k: &str| {
            x.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match v.get("type").and_then(Value::as_str).unwrap_or_default() {
            "response.created" => out.push(Event::Start {
                id: s(&v["response"], "id"),
                model: s(&v["response"], "model"),
            }),
            "response.output_item.added" => {
                let item = &v["item"];
                match item.get("type").and_then(Value::as_str) {
                    Some("function_call") => {
                        self.saw_call = true;
                        self.open(
                            oi,
                            ITEM,
                            BlockStart::ToolUse {
                                id: s(item, "call_id"),
                                name: s(item, "name"),
                            },
                            out,
                        );
                    }
                    Some("reasoning") => {
                        self.open(oi, ITEM, BlockStart::Thinking, out);
                    }
                    _ => {}
                }
            }
            "response.content_part.added"
                if v["part"]["type"] == "output_text" || v["part"]["type"] == "refusal" =>
            {
                self.open(oi, ci, BlockStart::Text, out);
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(index) = self.find(oi, ci) {
                    out.push(Event::Text {
                        index,
                        text: s(&v, "delta"),
                    });
                }
            }
            "response.output_text.annotation.added" => {
                if let Some(index) = self.find(oi, ci) {
                    out.push(Event::Citation {
                        index,
                        citation: super::parts::citation(&v["annotation"], ""),
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(index) = self.find(oi, ITEM) {
                    out.push(Event::ToolArgs {
                        index,
                        json: s(&v, "delta"),
                    });
                }
            }
            "response.reasoning_summary_text.delta" => {
                if let Some(index) = self.find(oi, ITEM) {
                    out.push(Event::Thinking {
                        index,
                        text: s(&v, "delta"),
                    });
                }
            }
            "response.content_part.done" => {
                if let Some(index) = self.find(oi, ci) {
                    out.push(Event::BlockStop { index });
                }
            }
            "response.output_item.done" => {
                let item = &v["item"];
                if let Some(index) = self.find(oi, ITEM) {
                    let id = s(item, "id");
                    let enc = item.get("encrypted_content").and_then(Value::as_str);
                    // Another provider's thinking handed to a Responses client earlier (an
                    // `rs_busbar_` item): its encrypted content is that provider's signature.
                    let foreign = id.starts_with(super::FOREIGN_REASONING_PREFIX);
                    if item["type"] == "reasoning" {
                        let signature = if foreign {
                            enc.map(str::to_string)
                        } else {
                            Some(id).filter(|id| !id.is_empty())
                        };
                        if let Some(signature) = signature {
                            out.push(Event::Signature { index, signature });
                        }
                    }
                    out.push(Event::BlockStop { index });
                    // OpenAI's own encrypted reasoning rides as redacted thinking.
                    if let Some(enc) = enc.filter(|_| !foreign) {
                        let i = self.next;
                        self.next += 1;
                        out.push(Event::BlockStart {
                            index: i,
                            kind: BlockStart::RedactedThinking {
                                data: enc.to_string(),
                            },
                        });
                        out.push(Event::BlockStop { index: i });
                    }
                }
            }
            kind @ ("response.completed" | "response.incomplete") => {
                let r = &v["response"];
                let u = &r["usage"];
                let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                let detail = |k: &str| u["input_tokens_details"][k].as_u64().unwrap_or(0);
                let (cached, written) = (detail("cached_tokens"), detail("cache_write_tokens"));
                out.push(Event::Usage(Usage {
                    // `input_tokens` counts cache reads and writes too (as in a whole response).
                    input: n("input_tokens").saturating_sub(cached + written),
                    output: n("output_tokens"),
                    cache_read: cached,
                    cache_write: written,
                    reasoning: u["output_tokens_details"]["reasoning_tokens"]
                        .as_u64()
                        .unwrap_or(0),
                }));
                let stop = match (kind, r["incomplete_details"]["reason"].as_str()) {
                    ("response.incomplete", Some("content_filter")) => StopReason::ContentFilter,
                    ("response.incomplete", _) => StopReason::MaxTokens,
                    _ if self.saw_call => StopReason::ToolUse,
                    _ => StopReason::EndTurn,
                };
                out.push(Event::Stop(stop));
                if !self.ended {
                    self.ended = true;
                    out.push(Event::End);
                }
            }
            "response.failed" => out.push(Event::Error {
                code: v["response"]["error"]
                    .get("code")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                message: s(&v["response"]["error"], "message"),
            }),
            "error" => out.push(Event::Error {
                code: v.get("code").and_then(Value::as_str).map(str::to_string),
                message: s(&v, "message"),
            }),
            _ => {}
        }
    }
}

/// One output item being streamed.
#[derive(Debug)]
struct Item {
    index: usize,
    output_index: usize,
    id: String,
    kind: BlockStart,
    text: String,
    /// Citations on a text item, written as annotations when its text is whole.
    citations: Vec<crate::ir::Citation>,
    /// A thinking item's signature (another provider's), sent as its `encrypted_content`.
    signature: Option<String>,
}

/// Writes IR stream events as a Responses stream.
#[derive(Debug)]
pub struct Writer {
    created_at: u64,
    id: String,
    model: String,
    seq: u64,
    started: bool,
    open: Vec<Item>,
    /// Finished output items, for `response.completed`.
    done: Vec<Value>,
    usage: Usage,
    stop: Option<StopReason>,
}

impl Writer {
    /// A writer dating the response `created_at` (Unix seconds).
    pub fn new(created_at: u64) -> Self {
        Self {
            created_at,
            id: String::new(),
            model: String::new(),
            seq: 0,
            started: false,
            open: Vec::new(),
            done: Vec::new(),
            usage: Usage::default(),
            stop: None,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, mut v: Value) {
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let kind = v["type"].as_str().unwrap_or_default().to_string();
        sse::encode(out, Some(&kind), &v.to_string());
    }

    fn response(&self, status: &str) -> Value {
        let u = &self.usage;
        let mut r = json!({"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null,
            "model": self.model, "output": self.done, "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": null,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": null,
            "truncation": "disabled", "usage": null, "user": null, "metadata": {}});
        if status != "in_progress" {
            let input = u.input + u.cache_read + u.cache_write;
            r["usage"] = json!({"input_tokens": input,
                "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
                "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": u.reasoning},
                "total_tokens": input + u.output});
        }
        r
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = caller_id("resp_", id);
        self.model = model.to_string();
        let r = self.response("in_progress");
        self.emit(out, json!({"type": "response.created", "response": r}));
        let r = self.response("in_progress");
        self.emit(out, json!({"type": "response.in_progress", "response": r}));
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
        let tail: String = self
            .id
            .trim_start_matches("resp_")
            .chars()
            .take(24)
            .collect();
        match e {
            Event::Start { id, model } => self.start(id, model, out),
            Event::BlockStart { index, kind } => {
                let output_index = self.done.len() + self.open.len();
                // Another provider's thinking is an `rs_busbar_` item: its opaque part rides in
                // `encrypted_content` and comes back as the same block (see reasoning.rs).
                let prefix = match kind {
                    BlockStart::Text => "msg",
                    BlockStart::ToolUse { .. } => "fc",
                    _ => "rs_busbar",
                };
                let id = format!("{prefix}_{tail}{output_index}");
                let item = match kind {
                    BlockStart::Text => {
                        json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []})
                    }
                    BlockStart::ToolUse { id: call, name } => {
                        json!({"type": "function_call", "id": id, "call_id": call, "name": name, "arguments": "", "status": "in_progress"})
                    }
                    BlockStart::Thinking => json!({"type": "reasoning", "id": id, "summary": []}),
                    BlockStart::RedactedThinking { data } => {
                        let item = json!({"type": "reasoning", "id": id, "summary": [], "encrypted_content": data});
                        self.emit(out, json!({"type": "response.output_item.added", "output_index": output_index, "item": item}));
                        self.emit(out, json!({"type": "response.output_item.done", "output_index": output_index, "item": item}));
                        self.done.push(item);
                        return;
                    }
                };
                self.emit(out, json!({"type": "response.output_item.added", "output_index": output_index, "item": item}));
                match kind {
                    BlockStart::Text => self.emit(out, json!({"type": "response.content_part.added", "item_id": id, "output_index": output_index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})),
                    BlockStart::Thinking => self.emit(out, json!({"type": "response.reasoning_summary_part.added", "item_id": id, "output_index": output_index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}})),
                    _ => {}
                }
                self.open.push(Item {
                    index: *index,
                    output_index,
                    id,
                    kind: kind.clone(),
                    text: String::new(),
                    citations: Vec::new(),
                    signature: None,
                });
            }
            Event::Text { index, text }
            | Event::Thinking { index, text }
            | Event::ToolArgs { index, json: text } => {
                let Some(at) = self.open.iter().position(|i| i.index == *index) else {
                    return;
                };
                self.open[at].text.push_str(text);
                let (id, oi) = (self.open[at].id.clone(), self.open[at].output_index);
                let v = match &self.open[at].kind {
                    BlockStart::Text => {
                        json!({"type": "response.output_text.delta", "item_id": id, "output_index": oi, "content_index": 0, "delta": text, "logprobs": []})
                    }
                    BlockStart::Thinking => {
                        json!({"type": "response.reasoning_summary_text.delta", "item_id": id, "output_index": oi, "summary_index": 0, "delta": text})
                    }
                    _ => {
                        json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": oi, "delta": text})
                    }
                };
                self.emit(out, v);
            }
            Event::Signature { index, signature } => {
                if let Some(it) = self.open.iter_mut().find(|i| i.index == *index) {
                    it.signature = Some(signature.clone());
                }
            }
            Event::BlockStop { index } => {
                let Some(at) = self.open.iter().position(|i| i.index == *index) else {
                    return;
                };
                let it = self.open.remove(at);
                let (id, oi, text) = (it.id.clone(), it.output_index, it.text.clone());
                let item = match &it.kind {
                    BlockStart::Text => {
                        // Responses' own annotations as they came; another protocol's where
                        // they name a web page (over the whole text, as their block was).
                        let annotations: Vec<Value> = it
                            .citations
                            .iter()
                            .filter_map(|c| match c.protocol {
                                Protocol::OpenAiResponses => Some(c.raw.clone()),
                                _ => super::parts::annotation(c, &text),
                            })
                            .collect();
                        for (n, a) in annotations.iter().enumerate() {
                            self.emit(out, json!({"type": "response.output_text.annotation.added", "item_id": id, "output_index": oi, "content_index": 0, "annotation_index": n, "annotation": a}));
                        }
                        self.emit(out, json!({"type": "response.output_text.done", "item_id": id, "output_index": oi, "content_index": 0, "text": text, "logprobs": []}));
                        let part = json!({"type": "output_text", "text": text, "annotations": annotations, "logprobs": []});
                        self.emit(out, json!({"type": "response.content_part.done", "item_id": id, "output_index": oi, "content_index": 0, "part": part}));
                        json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": [part]})
                    }
                    BlockStart::Thinking => {
                        self.emit(out, json!({"type": "response.reasoning_summary_text.done", "item_id": id, "output_index": oi, "summary_index": 0, "text": text}));
                        let part = json!({"type": "summary_text", "text": text});
                        self.emit(out, json!({"type": "response.reasoning_summary_part.done", "item_id": id, "output_index": oi, "summary_index": 0, "part": part}));
                        let mut item = json!({"type": "reasoning", "id": id, "summary": [part]});
                        if let Some(s) = &it.signature {
                            item["encrypted_content"] = json!(s);
                        }
                        item
                    }
                    BlockStart::ToolUse { id: call, name } => {
                        self.emit(out, json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": oi, "name": name, "arguments": text}));
                        json!({"type": "function_call", "id": id, "call_id": call, "name": name, "arguments": text, "status": "completed"})
                    }
                    BlockStart::RedactedThinking { .. } => return,
                };
                self.emit(
                    out,
                    json!({"type": "response.output_item.done", "output_index": oi, "item": item}),
                );
                // Items complete in output order.
                self.done.push(item);
            }
            Event::Citation { index, citation } => {
                if let Some(it) = self.open.iter_mut().find(|i| i.index == *index) {
                    it.citations.push(citation.clone());
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::Stop(s) => self.stop = Some(s.clone()),
            Event::Error { code, message } => {
                if self.started {
                    // A response under way fails as a whole: `response.failed`, its error set.
                    let mut r = self.response("failed");
                    r["error"] = json!({"code": code.as_deref().unwrap_or("server_error"), "message": message});
                    self.emit(out, json!({"type": "response.failed", "response": r}));
                } else {
                    self.emit(
                        out,
                        json!({"type": "error", "code": code, "message": message, "param": null}),
                    );
                }
            }
            Event::End => {
                for index in self.open.iter().map(|i| i.index).collect::<Vec<_>>() {
                    self.event(&Event::BlockStop { index }, out);
                }
                let (kind, status, details) = match &self.stop {
                    Some(StopReason::MaxTokens | StopReason::ContextExceeded) => (
                        "response.incomplete",
                        "incomplete",
                        json!({"reason": "max_output_tokens"}),
                    ),
                    Some(StopReason::ContentFilter) => (
                        "response.incomplete",
                        "incomplete",
                        json!({"reason": "content_filter"}),
                    ),
                    _ => ("response.completed", "completed", Value::Null),
                };
                let mut r = self.response(status);
                r["incomplete_details"] = details;
                self.emit(out, json!({"type": kind, "response": r}));
            }
        }
    }
}
