//! Messages and their typed content blocks.

use serde_json::Value;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The end user (and tool results, in protocols that carry them in user turns).
    User,
    /// The model.
    Assistant,
    /// A system instruction given inside the conversation (OpenAI `system` messages).
    System,
    /// A developer instruction (OpenAI `developer` messages); a system instruction elsewhere.
    Developer,
    /// A tool result turn (OpenAI `tool` role).
    Tool,
}

/// Prompt-cache mark on a block or tool (Anthropic `cache_control`, Bedrock `cachePoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `ephemeral` today.
    pub kind: String,
    /// Optional time to live, as the provider spells it (`5m`, `1h`).
    pub ttl: Option<String>,
}

/// Where media bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// Inline, base64-encoded.
    Base64 {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// The base64 text, as received (not decoded: passing it on costs no copy of the bytes).
        data: String,
    },
    /// By URL (http(s), or a provider file URI such as `gs://`).
    Url {
        /// The URL.
        url: String,
        /// MIME type when the protocol gives one.
        media_type: Option<String>,
    },
    /// A file the provider already holds.
    FileId {
        /// The provider's file id.
        id: String,
    },
    /// Plain text content of a document.
    Text {
        /// The text.
        text: String,
        /// MIME type, usually `text/plain`.
        media_type: Option<String>,
    },
}

/// A citation attached to text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citation {
    /// The protocol whose shape `raw` has.
    pub protocol: crate::Protocol,
    /// The provider's citation object as received; its shape differs per protocol, and it is
    /// carried, not interpreted, when source and target agree.
    pub raw: Value,
    /// The cited text, when the protocol names it (used when translating).
    pub cited_text: Option<String>,
    /// The source's title or URL, when the protocol names it.
    pub source: Option<String>,
}

/// One typed piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Text, with its citations.
    Text {
        /// The text.
        text: String,
        /// Citations on this text.
        citations: Vec<Citation>,
        /// Cache mark.
        cache: Option<CacheControl>,
    },
    /// An image.
    Image {
        /// Its bytes or location.
        source: Media,
        /// OpenAI's `detail` (`low`, `high`, `auto`).
        detail: Option<String>,
        /// Cache mark.
        cache: Option<CacheControl>,
    },
    /// A document (PDF, text) for the model to read.
    Document {
        /// Its bytes or location.
        source: Media,
        /// Title, where the protocol has one.
        title: Option<String>,
        /// Anthropic `context`.
        context: Option<String>,
        /// Whether citations are enabled for it.
        citations: bool,
        /// Cache mark.
        cache: Option<CacheControl>,
    },
    /// Audio input (OpenAI `input_audio`, Gemini inline audio).
    Audio {
        /// Its bytes or location.
        source: Media,
    },
    /// The model's reasoning, with its signature (Anthropic `thinking`, Gemini thought parts,
    /// Bedrock `reasoningContent`, Responses reasoning summaries).
    Thinking {
        /// The reasoning text (or summary).
        text: String,
        /// The provider's signature over it; must travel back unchanged on the next turn.
        signature: Option<String>,
    },
    /// Reasoning the provider returns encrypted (Anthropic `redacted_thinking`, Responses
    /// `encrypted_content`, Bedrock `redactedContent`).
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// The model calls a tool.
    ToolUse {
        /// Call id (minted stably where the protocol has none, as Gemini).
        id: String,
        /// Tool name.
        name: String,
        /// Arguments, as a JSON value.
        input: Value,
        /// Gemini's thought signature on a function-call part.
        thought_signature: Option<String>,
    },
    /// The result of a tool call.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// Tool name, where the protocol carries it (Gemini `functionResponse.name`).
        name: Option<String>,
        /// What the tool returned.
        content: Vec<Block>,
        /// Whether the tool failed.
        is_error: bool,
        /// Cache mark.
        cache: Option<CacheControl>,
    },
    /// A refusal from the model (OpenAI `refusal`).
    Refusal {
        /// The refusal text.
        text: String,
    },
    /// A block of a kind only `protocol` has (Anthropic server tool results, search results,
    /// ...), carried as received: kept on a same-protocol trip, reported as lost on a cross one.
    Raw {
        /// The protocol it belongs to.
        protocol: crate::Protocol,
        /// The block as received.
        value: Value,
    },
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said, in order.
    pub content: Vec<Block>,
    /// OpenAI's participant `name`.
    pub name: Option<String>,
    /// Fields of this message that only one protocol has (e.g. OpenAI assistant `audio`),
    /// kept for a same-protocol trip and reported as lost on a cross one.
    pub ext: super::Extensions,
}
