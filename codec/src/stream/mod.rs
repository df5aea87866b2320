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
    /// A citation on a text block (written where the client's protocol carries it: its own
    /// citations as they came, another protocol's where the client has a form for them).
    Citation {
        /// Block index.
        index: usize,
        /// The citation.
        citation: crate::ir::Citation,
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
use crate::frame::{FrameError, eventstream, jsonarray, sse};

/// The error code of an upstream event no parser could read.
pub const MALFORMED: &str = "malformed_stream";

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
    JsonArray(jsonarray::Decoder),
}

/// One protocol's stream read into IR events: its framer and its parser.
struct Reader {
    framer: Framer,
    parser: Parser,
}

impl Reader {
    fn new(protocol: Protocol, json_array: bool) -> Self {
        let parser = match protocol {
            Protocol::OpenAiChat => Parser::OpenAi(Default::default()),
            Protocol::Anthropic => Parser::Anthropic(Default::default()),
            Protocol::Gemini => Parser::Gemini(Default::default()),
            Protocol::Bedrock => Parser::Bedrock(Default::default()),
            Protocol::Cohere => Parser::Cohere(Default::default()),
            Protocol::OpenAiResponses => Parser::Responses(Default::default()),
        };
        let framer = match protocol {
            Protocol::Bedrock => Framer::EventStream(eventstream::Decoder::new(MAX_EVENT)),
            Protocol::Gemini if json_array => Framer::JsonArray(jsonarray::Decoder::new(MAX_EVENT)),
            _ => Framer::Sse(sse::Decoder::new(MAX_EVENT)),
        };
        Self { framer, parser }
    }

    /// Frames `input`; for every whole upstream event, its IR events go to `events` and
    /// `frame` is called with where in `input` the event ended, its SSE form (when it has one)
    /// and the IR events it gave.
    fn feed(
        &mut self,
        input: &[u8],
        events: &mut Vec<Event>,
        mut frame: impl FnMut(usize, Option<&sse::Event>, &[Event]),
    ) -> Result<(), FrameError> {
        let Self { framer, parser } = self;
        match framer {
            Framer::Sse(d) => d.feed_at(input, |end, e| {
                let before = events.len();
                match parser {
                    Parser::OpenAi(p) => p.event(&e, events),
                    Parser::Anthropic(p) => p.event(&e, events),
                    Parser::Gemini(p) => p.event(&e, events),
                    Parser::Cohere(p) => p.event(&e, events),
                    Parser::Responses(p) => p.event(&e, events),
                    Parser::Bedrock(_) => {}
                }
                frame(end, Some(&e), &events[before..]);
            }),
            Framer::EventStream(d) => d.feed_at(input, |end, m| {
                if let Parser::Bedrock(p) = parser {
                    let before = events.len();
                    p.message(&m, events);
                    frame(end, None, &events[before..]);
                }
            }),
            Framer::JsonArray(d) => d.feed_at(input, |end, chunk| {
                if let Parser::Gemini(p) = parser {
                    let before = events.len();
                    p.chunk(chunk, events);
                    frame(end, None, &events[before..]);
                }
            }),
        }
    }

    /// The upstream body ended on its own framing (not cut off).
    fn end_of_body(&mut self, events: &mut Vec<Event>) {
        if let Parser::Gemini(p) = &mut self.parser {
            p.end_of_body(events);
        }
    }

    /// The upstream ended: whatever the parser still held.
    fn finish(&mut self, events: &mut Vec<Event>) {
        if let Framer::Sse(d) = &mut self.framer {
            d.finish();
        }
        if let Parser::Bedrock(p) = &mut self.parser {
            p.finish(events);
        }
    }
}

/// What the client gets.
enum Output {
    /// Another protocol: every IR event written in the client's.
    Write(StreamWriter),
    /// The same protocol: the provider's bytes as they are, released one whole, readable event
    /// at a time (`held`: the bytes of the event still arriving), so a malformed event never
    /// reaches the client. `writer` writes only an error event of busbar's own. With
    /// `hide_usage`, an OpenAI usage chunk the client did not ask for is left out (the events
    /// are then written back in OpenAI's own framing).
    Pass {
        writer: StreamWriter,
        held: Vec<u8>,
        hide_usage: bool,
    },
}

/// Whether an upstream event was unreadable (the parsers' own error, not the provider's).
fn malformed(got: &[Event]) -> bool {
    got.iter()
        .any(|e| matches!(e, Event::Error { code: Some(c), .. } if c == MALFORMED))
}

/// A provider's stream on its way to a client, one event at a time: transcoded to another
/// protocol, or passed through untouched with the events read on the side. Either way the
/// final usage, the stream's completion and a provider error are known to the gateway.
/// Memory: the framer's current event and the IR events of one upstream event.
pub struct Transcoder {
    reader: Reader,
    output: Output,
    events: Vec<Event>,
    ended: bool,
    error: Option<(Option<String>, String)>,
    committed: bool,
    usage: Option<Usage>,
    /// Passthrough only: an unreadable upstream event or the provider's error event was seen,
    /// and no more upstream bytes go out.
    closed: bool,
    /// Whole upstream events read so far (pings included): what a gap deadline watches.
    upstream_events: u64,
}

impl Transcoder {
    /// A transcoder from `upstream` to `client`. `created` dates OpenAI chunks;
    /// `include_usage` is whether an OpenAI client asked for the usage chunk.
    pub fn new(upstream: Protocol, client: Protocol, created: u64, include_usage: bool) -> Self {
        Self::with(
            Reader::new(upstream, false),
            Output::Write(StreamWriter::new(client, created, include_usage)),
        )
    }

    /// A same-protocol stream passed through byte for byte, read on the side. `json_array`: a
    /// Gemini stream without `alt=sse`. `hide_usage`: an OpenAI Chat upstream was asked for
    /// usage on the client's behalf, and the client did not ask for it.
    pub fn passthrough(protocol: Protocol, json_array: bool, hide_usage: bool) -> Self {
        let mut writer = StreamWriter::new(protocol, 0, false);
        if json_array {
            writer = writer.gemini_json_array().resumed();
        }
        Self::with(
            Reader::new(protocol, json_array),
            Output::Pass {
                writer,
                held: Vec::new(),
                hide_usage: hide_usage && protocol == Protocol::OpenAiChat,
            },
        )
    }

    fn with(reader: Reader, output: Output) -> Self {
        Self {
            reader,
            output,
            events: Vec::new(),
            ended: false,
            error: None,
            committed: false,
            usage: None,
            closed: false,
            upstream_events: 0,
        }
    }

    /// Notes what the events mean for the gateway, and writes them for the client (in
    /// passthrough, only an unreadable event's error: the provider's own bytes are the rest).
    fn take_events(&mut self, out: &mut Vec<u8>) {
        for e in self.events.drain(..) {
            if self.ended || self.error.is_some() {
                // Nothing after the end or a failure reaches the client.
                continue;
            }
            match &e {
                Event::End => {
                    self.ended = true;
                    self.committed = true;
                }
                Event::Usage(u) => self.usage = Some(*u),
                Event::Error { code, message } => {
                    self.error = Some((code.clone(), message.clone()));
                }
                Event::Start { .. } => {}
                _ => self.committed = true,
            }
            match &mut self.output {
                Output::Write(w) => w.event(&e, out),
                Output::Pass { writer, .. } if malformed(std::slice::from_ref(&e)) => {
                    writer.event(&e, out);
                }
                Output::Pass { .. } => {}
            }
        }
    }

    /// Feeds upstream bytes; appends whatever client bytes they complete to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let Self {
            reader,
            events,
            output,
            closed,
            upstream_events,
            ..
        } = self;
        match output {
            Output::Write(_) => reader.feed(input, events, |_, _, _| *upstream_events += 1)?,
            Output::Pass {
                held, hide_usage, ..
            } => {
                // Released: `input` up to the end of the last whole, readable event; nothing
                // after an unreadable event, nor after the provider's own error event.
                let hide = *hide_usage;
                let mut released = 0;
                let res = reader.feed(input, events, |end, sse, got| {
                    *upstream_events += 1;
                    if *closed {
                        return;
                    }
                    if malformed(got) {
                        *closed = true;
                        return;
                    }
                    if hide {
                        // The usage chunk (`choices: []`) reads as usage alone.
                        let usage_only = got.len() == 1 && matches!(got[0], Event::Usage(_));
                        if let (false, Some(e)) = (usage_only, sse) {
                            sse::encode(out, e.event.as_deref(), &e.data);
                        }
                    } else {
                        out.append(held);
                        out.extend_from_slice(&input[released..end]);
                        released = end;
                    }
                    *closed |= got.iter().any(|e| matches!(e, Event::Error { .. }));
                });
                if *closed {
                    held.clear();
                } else if !hide {
                    held.extend_from_slice(&input[released..]);
                }
                res?;
            }
        }
        self.take_events(out);
        Ok(())
    }

    /// The upstream body ended on its own framing (a chunked body's last chunk, all of a
    /// Content-Length): for a protocol whose stream has no closing event (Gemini), that is
    /// what completes it. Call before `finish`.
    pub fn end_of_body(&mut self, out: &mut Vec<u8>) {
        self.reader.end_of_body(&mut self.events);
        self.take_events(out);
    }

    /// The upstream stream ended (or failed): a stream that never said it was complete ends
    /// with an error event in the client's protocol, never as if it were whole.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish_because(None, out);
    }

    /// As `finish`, saying why the upstream ended early (`why`: e.g. a read timeout), in the
    /// error event a stream that was not complete ends with.
    pub fn finish_because(&mut self, why: Option<&str>, out: &mut Vec<u8>) {
        self.reader.finish(&mut self.events);
        self.take_events(out);
        if let Output::Pass { held, .. } = &mut self.output {
            // What followed the last event (a line end, the array's `]`) is the provider's
            // too, once the stream is whole; a partial event never goes out.
            if self.ended && self.error.is_none() {
                out.append(held);
            }
            held.clear();
        }
        if self.ended || self.error.is_some() {
            return;
        }
        let mut message = String::from("the provider's stream ended before it was complete");
        if let Some(why) = why {
            message.push_str(": ");
            message.push_str(why);
        }
        let e = Event::Error {
            code: Some("stream_interrupted".into()),
            message,
        };
        match &mut self.output {
            Output::Write(w) | Output::Pass { writer: w, .. } => w.event(&e, out),
        }
        if let Event::Error { code, message } = e {
            self.error = Some((code, message));
        }
    }

    /// For a Gemini client that did not ask for `alt=sse`: write the streamed JSON array.
    pub fn gemini_json_array(mut self) -> Self {
        if let Output::Write(w) = self.output {
            self.output = Output::Write(w.gemini_json_array());
        }
        self
    }

    /// The client stream's content type.
    pub fn content_type(&self) -> &'static str {
        match &self.output {
            Output::Write(w) | Output::Pass { writer: w, .. } => w.content_type(),
        }
    }

    /// Whether the upstream stream said it was complete.
    pub fn is_complete(&self) -> bool {
        self.ended
    }

    /// Whether the stream has carried something a client must see (content, a stop, the end):
    /// before that, a failed upstream can still be replaced by another without the client
    /// knowing.
    pub fn is_committed(&self) -> bool {
        self.committed
    }

    /// The provider's error (or busbar's, for a stream cut short), if the stream failed: its
    /// code and message.
    pub fn error(&self) -> Option<(Option<&str>, &str)> {
        self.error.as_ref().map(|(c, m)| (c.as_deref(), m.as_str()))
    }

    /// The final usage as the stream reported it (cumulative: the last report).
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// How many whole upstream events have been read (keep-alive pings included, SSE comments
    /// not): a stream whose count stops moving is stalled, however many bytes trickle in.
    pub fn upstream_events(&self) -> u64 {
        self.upstream_events
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
                if let Block::Text { citations, .. } = b {
                    out.extend(citations.iter().map(|c| Event::Citation {
                        index,
                        citation: c.clone(),
                    }));
                }
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
    out.push(Event::Usage(r.usage));
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
    /// A writer for `client`. `created` dates OpenAI chunks; `include_usage` is whether an
    /// OpenAI client asked for the usage chunk.
    pub fn new(client: Protocol, created: u64, include_usage: bool) -> Self {
        match client {
            Protocol::OpenAiChat => {
                Self::OpenAi(crate::openai::stream::Writer::new(created, include_usage))
            }
            Protocol::Anthropic => Self::Anthropic(Default::default()),
            Protocol::Gemini => Self::Gemini(crate::gemini::stream::Writer::new(true)),
            Protocol::Bedrock => Self::Bedrock(Default::default()),
            Protocol::Cohere => Self::Cohere(Default::default()),
            Protocol::OpenAiResponses => {
                Self::Responses(crate::responses::stream::Writer::new(created))
            }
        }
    }

    /// A writer that continues a stream someone else began (only an error event is written
    /// after it): a Gemini JSON array is already open.
    pub fn resumed(self) -> Self {
        match self {
            Self::Gemini(w) => Self::Gemini(w.resumed()),
            other => other,
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
