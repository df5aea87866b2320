//! Gemini `streamGenerateContent` <-> IR stream events.
//!
//! Every chunk is a whole `GenerateContentResponse` holding only what is new: text and thought
//! parts are deltas, a `functionCall` arrives whole, `finishReason` comes on the last chunk, and
//! `usageMetadata` is repeated, cumulative, on every chunk (the last one wins; never summed).
//! The writer sends SSE with CRLF line ends (`alt=sse`, as Gemini does) or the streamed JSON
//! array (without `alt=sse`).

use super::MINTED_ID_PREFIX;
use super::response::{finish_reason, stop_of};
use crate::frame::sse;
use crate::ir::{LossReport, StopReason, Usage};
use crate::stream::{BlockStart, Event};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
}

/// Parses a Gemini stream's chunks (SSE `data:` or JSON-array elements).
#[derive(Debug, Default)]
pub struct Parser {
    started: bool,
    next: usize,
    open: Option<Open>,
    calls: usize,
    saw_call: bool,
    ended: bool,
    /// The latest text block (what a chunk's citations are on).
    last_text: Option<usize>,
}

impl Parser {
    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some(Open::Text(i) | Open::Thinking(i)) = self.open.take() {
            out.push(Event::BlockStop { index: i });
        }
    }

    fn open(&mut self, thinking: bool, out: &mut Vec<Event>) -> usize {
        match (self.open, thinking) {
            (Some(Open::Text(i)), false) | (Some(Open::Thinking(i)), true) => i,
            _ => {
                self.close(out);
                let i = self.next;
                self.next += 1;
                self.open = Some(if thinking {
                    Open::Thinking(i)
                } else {
                    Open::Text(i)
                });
                out.push(Event::BlockStart {
                    index: i,
                    kind: if thinking {
                        BlockStart::Thinking
                    } else {
                        BlockStart::Text
                    },
                });
                i
            }
        }
    }

    /// An SSE event (its data is one chunk).
    pub fn event(&mut self, e: &sse::Event, out: &mut Vec<Event>) {
        self.chunk(e.data.as_bytes(), out);
    }

    /// One chunk -> IR events.
    pub fn chunk(&mut self, data: &[u8], out: &mut Vec<Event>) {
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            out.push(Event::Error {
                code: Some(crate::stream::MALFORMED.into()),
                message: format!("unreadable stream chunk: {}", String::from_utf8_lossy(data)),
            });
            return;
        };
        if let Some(err) = v.get("error") {
            out.push(Event::Error {
                code: err
                    .get("status")
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
        let id = v
            .get("responseId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.started {
            self.started = true;
            let model = v
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(Event::Start {
                id: id.to_string(),
                model: model.to_string(),
            });
        }
        let cand = &v["candidates"][0];
        for p in cand["content"]["parts"].as_array().into_iter().flatten() {
            let thought = p.get("thought").and_then(Value::as_bool) == Some(true);
            let sig = p.get("thoughtSignature").and_then(Value::as_str);
            if let Some(c) = p.get("functionCall") {
                self.close(out);
                let index = self.next;
                self.next += 1;
                let id = c.get("id").and_then(Value::as_str).map_or_else(
                    || {
                        format!(
                            "{MINTED_ID_PREFIX}{}_{}",
                            id.chars()
                                .filter(char::is_ascii_alphanumeric)
                                .collect::<String>(),
                            self.calls
                        )
                    },
                    str::to_string,
                );
                self.calls += 1;
                self.saw_call = true;
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                out.push(Event::BlockStart {
                    index,
                    kind: BlockStart::ToolUse { id, name },
                });
                out.push(Event::ToolArgs {
                    index,
                    json: c
                        .get("args")
                        .cloned()
                        .unwrap_or_else(|| json!({}))
                        .to_string(),
                });
                out.push(Event::BlockStop { index });
                continue;
            }
            if let Some(sig) = sig {
                // A signature closes the thoughts before it (or stands alone).
                let index = match self.open {
                    Some(Open::Thinking(i)) => i,
                    _ => self.open(true, out),
                };
                out.push(Event::Signature {
                    index,
                    signature: sig.to_string(),
                });
            }
            if let Some(t) = p
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                let index = self.open(thought, out);
                if !thought {
                    self.last_text = Some(index);
                }
                let text = t.to_string();
                out.push(if thought {
                    Event::Thinking { index, text }
                } else {
                    Event::Text { index, text }
                });
            }
        }
        if let (Some(index), Some(cites)) = (
            self.last_text,
            cand["citationMetadata"]["citations"].as_array(),
        ) {
            for c in cites {
                out.push(Event::Citation {
                    index,
                    citation: super::response::citation(c),
                });
            }
        }
        if let Some(u) = v.get("usageMetadata") {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            let thoughts = n("thoughtsTokenCount");
            out.push(Event::Usage(Usage {
                input: n("promptTokenCount").saturating_sub(n("cachedContentTokenCount")),
                output: n("candidatesTokenCount") + thoughts,
                cache_read: n("cachedContentTokenCount"),
                cache_write: 0,
                reasoning: thoughts,
            }));
        }
        if let Some(f) = cand.get("finishReason").and_then(Value::as_str) {
            self.close(out);
            out.push(Event::Stop(stop_of(f, self.saw_call)));
            if !self.ended {
                self.ended = true;
                out.push(Event::End);
            }
        }
    }

    /// The HTTP body ended on its own framing. A Gemini stream has no closing event of its
    /// own (its last chunk carries a `finishReason`): a body that ends cleanly after some
    /// chunks is a whole stream.
    pub fn end_of_body(&mut self, out: &mut Vec<Event>) {
        if self.started && !self.ended {
            self.close(out);
            self.ended = true;
            out.push(Event::End);
        }
    }
}

/// Writes IR stream events as a Gemini stream.
#[derive(Debug)]
pub struct Writer {
    /// SSE (`alt=sse`) or the streamed JSON array.
    sse: bool,
    id: String,
    model: String,
    first: bool,
    usage: Usage,
    stop: Option<StopReason>,
    /// Tool calls' arguments, gathered until their blocks end (Gemini sends calls whole;
    /// parallel calls may interleave their fragments): (index, id, name, arguments).
    calls: Vec<(usize, String, String, String)>,
    /// Citation sources for the next chunk.
    citations: Vec<Value>,
}

impl Writer {
    /// A writer of SSE (`sse`) or of the JSON array.
    pub fn new(sse: bool) -> Self {
        Self {
            sse,
            id: String::new(),
            model: String::new(),
            first: true,
            usage: Usage::default(),
            stop: None,
            calls: Vec::new(),
            citations: Vec::new(),
        }
    }

    /// A writer continuing a JSON array another writer opened.
    pub fn resumed(mut self) -> Self {
        self.first = false;
        self
    }

    fn emit(&mut self, out: &mut Vec<u8>, parts: Vec<Value>, last: bool) {
        let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if !self.citations.is_empty() {
            cand["citationMetadata"] = json!({"citations": std::mem::take(&mut self.citations)});
        }
        let mut v = json!({"candidates": [], "modelVersion": self.model, "responseId": self.id});
        let u = &self.usage;
        if last {
            let mut loss = LossReport::default();
            cand["finishReason"] = json!(finish_reason(
                self.stop.as_ref().unwrap_or(&StopReason::EndTurn),
                None,
                &mut loss
            ));
        }
        v["candidates"] = json!([cand]);
        let mut usage = json!({"promptTokenCount": u.input + u.cache_read, "candidatesTokenCount": u.output.saturating_sub(u.reasoning),
                               "totalTokenCount": u.input + u.cache_read + u.output});
        if u.reasoning > 0 {
            usage["thoughtsTokenCount"] = json!(u.reasoning);
        }
        if u.cache_read > 0 {
            usage["cachedContentTokenCount"] = json!(u.cache_read);
        }
        v["usageMetadata"] = usage;
        let data = v.to_string();
        if self.sse {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(data.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
        } else {
            out.extend_from_slice(if self.first { b"[" } else { b"\r\n," });
            out.extend_from_slice(data.as_bytes());
        }
        self.first = false;
    }

    /// Whether this writer sends SSE (else the JSON array).
    pub fn is_sse(&self) -> bool {
        self.sse
    }

    /// Writes one event.
    pub fn event(&mut self, e: &Event, out: &mut Vec<u8>) {
        match e {
            Event::Start { id, model } => {
                self.id = id.clone();
                self.model = model.clone();
            }
            Event::BlockStart {
                index,
                kind: BlockStart::ToolUse { id, name },
            } => {
                self.calls
                    .push((*index, id.clone(), name.clone(), String::new()));
            }
            Event::ToolArgs { index, json: j } => {
                if let Some((_, _, _, args)) = self.calls.iter_mut().find(|c| c.0 == *index) {
                    args.push_str(j);
                }
            }
            Event::BlockStop { index } => {
                if let Some(at) = self.calls.iter().position(|c| c.0 == *index) {
                    let (_, id, name, args) = self.calls.remove(at);
                    let args: Value = serde_json::from_str(&args).unwrap_or_else(|_| json!({}));
                    let mut call = json!({"name": name, "args": args});
                    if !id.starts_with(MINTED_ID_PREFIX) && !id.is_empty() {
                        call["id"] = json!(id);
                    }
                    self.emit(out, vec![json!({"functionCall": call})], false);
                }
            }
            Event::Text { text, .. } => self.emit(out, vec![json!({"text": text})], false),
            Event::Thinking { text, .. } => {
                self.emit(out, vec![json!({"text": text, "thought": true})], false)
            }
            Event::Signature { signature, .. } => {
                if super::parts::is_base64(signature) {
                    self.emit(
                        out,
                        vec![json!({"text": "", "thoughtSignature": signature})],
                        false,
                    );
                }
            }
            Event::BlockStart { .. } => {}
            // Gemini's own citation sources go with the next chunk; another protocol's have no
            // Gemini form (as in a whole response).
            Event::Citation { citation, .. } => {
                if citation.protocol == crate::Protocol::Gemini {
                    self.citations.push(citation.raw.clone());
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::Stop(s) => self.stop = Some(s.clone()),
            Event::Error { code, message } => {
                let v = json!({"error": {"code": 500, "message": message, "status": code.clone().unwrap_or_else(|| "INTERNAL".into())}});
                if self.sse {
                    out.extend_from_slice(format!("data: {v}\r\n\r\n").as_bytes());
                } else {
                    out.extend_from_slice(if self.first { b"[" } else { b"\r\n," });
                    out.extend_from_slice(v.to_string().as_bytes());
                    out.extend_from_slice(b"]");
                    self.first = false;
                }
            }
            Event::End => {
                self.emit(out, Vec::new(), true);
                if !self.sse {
                    out.extend_from_slice(b"]");
                }
            }
        }
    }
}
