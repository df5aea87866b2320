//! Bedrock `converse-stream` (AWS event-stream messages) <-> IR stream events.
//!
//! ```text
//!   messageStart{role} -> Start
//!   contentBlockStart{contentBlockIndex, start{toolUse{toolUseId, name}}} -> BlockStart ToolUse
//!     (text and reasoning blocks have no start event: their first delta starts them)
//!   contentBlockDelta{delta{text | toolUse{input} | reasoningContent{text | signature |
//!     redactedContent}}} -> Text | ToolArgs | Thinking | Signature | RedactedThinking
//!   contentBlockStop -> BlockStop   messageStop{stopReason} -> Stop
//!   metadata{usage, metrics} -> Usage, End (it comes last)
//!   :message-type exception -> Error
//! ```

use crate::frame::eventstream::{self, HeaderValue, Message};
use crate::ir::{StopReason, Usage};
use crate::stream::{BlockStart, Event};
use serde_json::{Value, json};

fn stop_of(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(None),
        "content_filtered" | "guardrail_intervened" => StopReason::ContentFilter,
        "model_context_window_exceeded" => StopReason::ContextExceeded,
        other => StopReason::Other(other.to_string()),
    }
}

fn stop_name(s: &StopReason) -> String {
    match s {
        StopReason::EndTurn | StopReason::PauseTurn => "end_turn".into(),
        StopReason::ToolUse => "tool_use".into(),
        StopReason::MaxTokens => "max_tokens".into(),
        StopReason::StopSequence(_) => "stop_sequence".into(),
        StopReason::ContentFilter | StopReason::Refusal => "content_filtered".into(),
        StopReason::ContextExceeded => "model_context_window_exceeded".into(),
        StopReason::Other(o) => o.clone(),
    }
}

/// Parses a Converse stream's event-stream messages.
#[derive(Debug, Default)]
pub struct Parser {
    /// Blocks started, by Bedrock's contentBlockIndex (which is the IR index).
    open: Vec<usize>,
    stopped: bool,
    ended: bool,
}

impl Parser {
    fn ensure(&mut self, index: usize, kind: BlockStart, out: &mut Vec<Event>) {
        if !self.open.contains(&index) {
            self.open.push(index);
            out.push(Event::BlockStart { index, kind });
        }
    }

    /// One message -> IR events.
    pub fn message(&mut self, m: &Message, out: &mut Vec<Event>) {
        let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        if m.header(":message-type") == Some("exception") {
            out.push(Event::Error {
                code: m.header(":exception-type").map(str::to_string),
                message: v
                    .get("message")
                    .or_else(|| v.get("Message"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
            return;
        }
        let index = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        match m.header(":event-type").unwrap_or_default() {
            "messageStart" => out.push(Event::Start {
                id: String::new(),
                model: String::new(),
            }),
            "contentBlockStart" => {
                if let Some(t) = v["start"].get("toolUse") {
                    let s = |k: &str| {
                        t.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    self.ensure(
                        index,
                        BlockStart::ToolUse {
                            id: s("toolUseId"),
                            name: s("name"),
                        },
                        out,
                    );
                }
            }
            "contentBlockDelta" => {
                let d = &v["delta"];
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    self.ensure(index, BlockStart::Text, out);
                    out.push(Event::Text {
                        index,
                        text: t.to_string(),
                    });
                } else if let Some(c) = d.get("citation") {
                    out.push(Event::Citation {
                        index,
                        citation: super::blocks::citation_of(c),
                    });
                } else if let Some(i) = d["toolUse"].get("input").and_then(Value::as_str) {
                    out.push(Event::ToolArgs {
                        index,
                        json: i.to_string(),
                    });
                } else if let Some(r) = d.get("reasoningContent") {
                    if let Some(data) = r.get("redactedContent").and_then(Value::as_str) {
                        self.ensure(
                            index,
                            BlockStart::RedactedThinking {
                                data: data.to_string(),
                            },
                            out,
                        );
                    } else {
                        self.ensure(index, BlockStart::Thinking, out);
                        if let Some(t) = r.get("text").and_then(Value::as_str) {
                            out.push(Event::Thinking {
                                index,
                                text: t.to_string(),
                            });
                        }
                        if let Some(s) = r.get("signature").and_then(Value::as_str) {
                            out.push(Event::Signature {
                                index,
                                signature: s.to_string(),
                            });
                        }
                    }
                }
            }
            "contentBlockStop" => {
                if let Some(at) = self.open.iter().position(|i| *i == index) {
                    self.open.remove(at);
                    out.push(Event::BlockStop { index });
                }
            }
            "messageStop" => {
                for index in std::mem::take(&mut self.open) {
                    out.push(Event::BlockStop { index });
                }
                self.stopped = true;
                let reason = v
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                out.push(Event::Stop(stop_of(reason)));
            }
            "metadata" => {
                let u = &v["usage"];
                let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                out.push(Event::Usage(Usage {
                    input: n("inputTokens"),
                    output: n("outputTokens"),
                    cache_read: n("cacheReadInputTokens"),
                    cache_write: n("cacheWriteInputTokens"),
                    reasoning: 0,
                }));
                if !self.ended {
                    self.ended = true;
                    out.push(Event::End);
                }
            }
            _ => {}
        }
    }

    /// The stream ended: a stream that stopped but sent no metadata is still complete.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.stopped && !self.ended {
            self.ended = true;
            out.push(Event::End);
        }
    }
}

/// Writes IR stream events as Converse event-stream messages.
#[derive(Debug, Default)]
pub struct Writer {
    started: bool,
    stopped: bool,
    usage: Usage,
}

impl Writer {
    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            eventstream::encode_event(
                out,
                "messageStart",
                json!({"role": "assistant"}).to_string().as_bytes(),
            );
        }
    }

    fn delta(out: &mut Vec<u8>, index: usize, delta: Value) {
        let v = json!({"contentBlockIndex": index, "delta": delta});
        eventstream::encode_event(out, "contentBlockDelta", v.to_string().as_bytes());
    }

    /// Writes one event.
    pub fn event(&mut self, e: &Event, out: &mut Vec<u8>) {
        if !matches!(e, Event::Error { .. } | Event::Usage(_)) {
            self.start(out);
        }
        match e {
            Event::Start { .. } => {}
            // Converse sends no start for text and reasoning blocks (boto3 refuses an empty one).
            Event::BlockStart {
                kind: BlockStart::Text | BlockStart::Thinking,
                ..
            } => {}
            Event::BlockStart {
                index,
                kind: BlockStart::RedactedThinking { data },
            } => {
                Self::delta(
                    out,
                    *index,
                    json!({"reasoningContent": {"redactedContent": data}}),
                );
            }
            Event::BlockStart {
                index,
                kind: BlockStart::ToolUse { id, name },
            } => {
                let v = json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}});
                eventstream::encode_event(out, "contentBlockStart", v.to_string().as_bytes());
            }
            Event::Text { index, text } => Self::delta(out, *index, json!({"text": text})),
            Event::Thinking { index, text } => {
                Self::delta(out, *index, json!({"reasoningContent": {"text": text}}))
            }
            Event::Signature { index, signature } => Self::delta(
                out,
                *index,
                json!({"reasoningContent": {"signature": signature}}),
            ),
            Event::ToolArgs { index, json: j } => {
                Self::delta(out, *index, json!({"toolUse": {"input": j}}))
            }
            Event::BlockStop { index } => {
                let v = json!({"contentBlockIndex": index});
                eventstream::encode_event(out, "contentBlockStop", v.to_string().as_bytes());
            }
            // Converse's own citations; another protocol's have no Converse form (as in a whole
            // response).
            Event::Citation { index, citation } => {
                if citation.protocol == crate::Protocol::Bedrock {
                    Self::delta(out, *index, json!({"citation": citation.raw}));
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::Stop(s) => {
                self.stopped = true;
                eventstream::encode_event(
                    out,
                    "messageStop",
                    json!({"stopReason": stop_name(s)}).to_string().as_bytes(),
                );
            }
            Event::Error { code, message } => {
                let kind = match code.as_deref() {
                    Some(c) if c.ends_with("Exception") => c.to_string(),
                    _ => "internalServerException".to_string(),
                };
                eventstream::encode(
                    out,
                    &[
                        (":exception-type", HeaderValue::String(kind)),
                        (
                            ":content-type",
                            HeaderValue::String("application/json".into()),
                        ),
                        (":message-type", HeaderValue::String("exception".into())),
                    ],
                    json!({"message": message}).to_string().as_bytes(),
                );
            }
            Event::End => {
                if !self.stopped {
                    self.stopped = true;
                    eventstream::encode_event(out, "messageStop", br#"{"stopReason":"end_turn"}"#);
                }
                let u = &self.usage;
                let mut usage = json!({"inputTokens": u.input, "outputTokens": u.output,
                    "totalTokens": u.input + u.output + u.cache_read + u.cache_write});
                if u.cache_read > 0 {
                    usage["cacheReadInputTokens"] = json!(u.cache_read);
                }
                if u.cache_write > 0 {
                    usage["cacheWriteInputTokens"] = json!(u.cache_write);
                }
                let v = json!({"usage": usage, "metrics": {"latencyMs": 0}});
                eventstream::encode_event(out, "metadata", v.to_string().as_bytes());
            }
        }
    }
}
