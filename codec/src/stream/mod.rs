//! The streaming side of the IR: the events every protocol's stream is parsed into and written
//! from, and the transcoder that joins a framer, a parser and a writer.
//!
//! ```text
//!   upstream bytes --framer (frame::sse, ...)--> frames --Parser (egress protocol)--> Events
//!        --Writer (ingress protocol)--> client bytes          one event at a time, no buffering
//! ```
//!
//! Block indices are the IR's content indices (the order blocks start in), whatever numbering
//! the protocols use on the wire.

use crate::ir::{StopReason, Usage};

/// What kind of block starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockStart {
    /// Text.
    Text,
    /// Reasoning (deltas and a signature follow).
    Thinking,
    /// Encrypted reasoning, whole.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// A tool call (argument fragments follow).
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
}

/// One streamed event in IR form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The response began.
    Start {
        /// Response id (may be empty).
        id: String,
        /// Model.
        model: String,
    },
    /// A block began at `index`.
    BlockStart {
        /// IR content index.
        index: usize,
        /// Its kind.
        kind: BlockStart,
    },
    /// Text appended to a text block.
    Text {
        /// Block index.
        index: usize,
        /// The fragment.
        text: String,
    },
    /// Reasoning text appended to a thinking block.
    Thinking {
        /// Block index.
        index: usize,
        /// The fragment.
        text: String,
    },
    /// A thinking block's signature.
    Signature {
        /// Block index.
        index: usize,
        /// The signature.
        signature: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolArgs {
        /// Block index.
        index: usize,
        /// The fragment (not valid JSON by itself).
        json: String,
    },
    /// A block ended.
    BlockStop {
        /// Block index.
        index: usize,
    },
    /// Usage so far (cumulative: the last one wins).
    Usage(Usage),
    /// Why the model stopped.
    Stop(StopReason),
    /// A provider error in mid-stream.
    Error {
        /// The provider's error type or code.
        code: Option<String>,
        /// Its message.
        message: String,
    },
    /// The stream ended normally.
    End,
}

use crate::Protocol;
use crate::frame::{FrameError, eventstream, sse};

/// Largest single upstream event a transcoder accepts.
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

enum Parser {
    OpenAi(crate::openai::stream::Parser),
    Anthropic(crate::anthropic::stream::Parser),
    Gemini(crate::gemini::stream::Parser),
    Bedrock(crate::bedrock::stream::Parser),
    Cohere(crate::cohere::stream::Parser),
    Responses(crate::responses::stream::Parser),
}

/// The upstream framing.
enum Framer {
    Sse(sse::Decoder),
    EventStream(eventstream::Decoder),
}

/// Upstream stream bytes of one protocol -> client stream bytes of another, one event at a
/// time. Memory: the framer's current event and the events of one upstream event.
pub struct Transcoder {
    decoder: Framer,
    parser: Parser,
    writer: StreamWriter,
    events: Vec<Event>,
    ended: bool,
}

impl Transcoder {
    /// A transcoder from `upstream` to `client`, or `None` for a pair not streamed yet.
    /// `created` dates OpenAI chunks; `include_usage` is whether an OpenAI client asked for the
    /// usage chunk.
    pub fn new(
        upstream: Protocol,
        client: Protocol,
        created: u64,
        include_usage: bool,
    ) -> Option<Self> {
        let parser = match upstream {
            Protocol::OpenAiChat => Parser::OpenAi(Default::default()),
            Protocol::Anthropic => Parser::Anthropic(Default::default()),
            // Busbar asks Gemini for SSE (`alt=sse`).
            Protocol::Gemini => Parser::Gemini(Default::default()),
            Protocol::Bedrock => Parser::Bedrock(Default::default()),
            Protocol::Cohere => Parser::Cohere(Default::default()),
            Protocol::OpenAiResponses => Parser::Responses(Default::default()),
        };
        let framer = match upstream {
            Protocol::Bedrock => Framer::EventStream(eventstream::Decoder::new(MAX_EVENT)),
            _ => Framer::Sse(sse::Decoder::new(MAX_EVENT)),
        };
        let writer = StreamWriter::new(client, created, include_usage)?;
        Some(Self {
            decoder: framer,
            parser,
            writer,
            events: Vec::new(),
            ended: false,
        })
    }

    fn write_events(&mut self, out: &mut Vec<u8>) {
        for e in self.events.drain(..) {
            if e == Event::End {
                if self.ended {
                    continue;
                }
                self.ended = true;
            }
            self.writer.event(&e, out);
        }
    }

    /// Feeds upstream bytes; appends whatever client bytes they complete to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let Self {
            decoder,
            parser,
            events,
            ..
        } = self;
        match decoder {
            Framer::Sse(d) => d.feed(input, |e| match parser {
                Parser::OpenAi(p) => p.event(&e, events),
                Parser::Anthropic(p) => p.event(&e, events),
                Parser::Gemini(p) => p.event(&e, events),
                Parser::Cohere(p) => p.event(&e, events),
                Parser::Responses(p) => p.event(&e, events),
                Parser::Bedrock(_) => {}
            })?,
            Framer::EventStream(d) => d.feed(input, |m| {
                if let Parser::Bedrock(p) = parser {
                    p.message(&m, events);
                }
            })?,
        }
        self.write_events(out);
        Ok(())
    }

    /// The upstream stream ended: a stream that never said it was complete ends with an error
    /// event in the client's protocol, never as if it were whole.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Framer::Sse(d) = &mut self.decoder {
            d.finish();
        }
        if let Parser::Bedrock(p) = &mut self.parser {
            p.finish(&mut self.events);
            self.write_events(out);
        }
        if !self.ended {
            self.events.push(Event::Error {
                code: Some("stream_interrupted".into()),
                message: "the provider's stream ended before it was complete".into(),
            });
        }
        self.write_events(out);
    }

    /// For a Gemini client that did not ask for `alt=sse`: write the streamed JSON array.
    pub fn gemini_json_array(mut self) -> Self {
        self.writer = self.writer.gemini_json_array();
        self
    }

    /// The client stream's content type.
    pub fn content_type(&self) -> &'static str {
        self.writer.content_type()
    }

    /// Whether the upstream stream said it was complete.
    pub fn is_complete(&self) -> bool {
        self.ended
    }
}

/// A whole response as the events of its stream (used by the mock to stream any protocol, and
/// to turn a buffered answer into a stream): text and thinking as one delta per word.
pub fn events_of(r: &crate::ir::Response) -> Vec<Event> {
    use crate::ir::Block;
    let mut out = vec![Event::Start {
        id: r.id.clone(),
        model: r.model.clone(),
    }];
    let words = |t: &str| -> Vec<String> { t.split_inclusive(' ').map(str::to_string).collect() };
    for (index, b) in r.content.iter().enumerate() {
        match b {
            Block::Text { text, .. } | Block::Refusal { text } => {
                out.push(Event::BlockStart {
                    index,
                    kind: BlockStart::Text,
                });
                out.extend(
                    words(text)
                        .into_iter()
                        .map(|text| Event::Text { index, text }),
                );
            }
            Block::Thinking { text, signature } => {
                out.push(Event::BlockStart {
                    index,
                    kind: BlockStart::Thinking,
                });
                out.extend(
                    words(text)
                        .into_iter()
                        .map(|text| Event::Thinking { index, text }),
                );
                if let Some(s) = signature {
                    out.push(Event::Signature {
                        index,
                        signature: s.clone(),
                    });
                }
            }
            Block::RedactedThinking { data } => {
                out.push(Event::BlockStart {
                    index,
                    kind: BlockStart::RedactedThinking { data: data.clone() },
                });
            }
            Block::ToolUse {
                id, name, input, ..
            } => {
                out.push(Event::BlockStart {
                    index,
                    kind: BlockStart::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                    },
                });
                out.push(Event::ToolArgs {
                    index,
                    json: input.to_string(),
                });
            }
            _ => continue,
        }
        out.push(Event::BlockStop { index });
    }
    out.push(Event::Usage(r.usage.clone()));
    if let Some(s) = &r.stop_reason {
        out.push(Event::Stop(s.clone()));
    }
    out.push(Event::End);
    out
}

/// Writes IR stream events in `client`'s protocol, for the protocols that have a writer.
pub enum StreamWriter {
    /// OpenAI Chat chunks.
    OpenAi(crate::openai::stream::Writer),
    /// Anthropic events.
    Anthropic(crate::anthropic::stream::Writer),
    /// Gemini chunks (SSE, or the JSON array).
    Gemini(crate::gemini::stream::Writer),
    /// Bedrock event-stream messages.
    Bedrock(crate::bedrock::stream::Writer),
    /// Cohere v2 events.
    Cohere(crate::cohere::stream::Writer),
    /// Responses typed events.
    Responses(crate::responses::stream::Writer),
}

impl StreamWriter {
    /// A writer for `client`, or `None` when that protocol cannot be streamed yet.
    pub fn new(client: Protocol, created: u64, include_usage: bool) -> Option<Self> {
        match client {
            Protocol::OpenAiChat => Some(Self::OpenAi(crate::openai::stream::Writer::new(
                created,
                include_usage,
            ))),
            Protocol::Anthropic => Some(Self::Anthropic(Default::default())),
            Protocol::Gemini => Some(Self::Gemini(crate::gemini::stream::Writer::new(true))),
            Protocol::Bedrock => Some(Self::Bedrock(Default::default())),
            Protocol::Cohere => Some(Self::Cohere(Default::default())),
            Protocol::OpenAiResponses => Some(Self::Responses(
                crate::responses::stream::Writer::new(created),
            )),
        }
    }

    /// For a Gemini client that did not ask for `alt=sse`: the streamed JSON array instead.
    pub fn gemini_json_array(self) -> Self {
        match self {
            Self::Gemini(_) => Self::Gemini(crate::gemini::stream::Writer::new(false)),
            other => other,
        }
    }

    /// Writes one event.
    pub fn event(&mut self, e: &Event, out: &mut Vec<u8>) {
        match self {
            Self::OpenAi(w) => w.event(e, out),
            Self::Anthropic(w) => w.event(e, out),
            Self::Gemini(w) => w.event(e, out),
            Self::Bedrock(w) => w.event(e, out),
            Self::Cohere(w) => w.event(e, out),
            Self::Responses(w) => w.event(e, out),
        }
    }

    /// The stream's content type.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Bedrock(_) => "application/vnd.amazon.eventstream",
            Self::Gemini(w) if !w.is_sse() => "application/json",
            _ => "text/event-stream",
        }
    }
}
