//! The response side of the IR.

use super::{Block, Extensions};

/// Why the model stopped, in one vocabulary that maps to every protocol's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end (`stop`, `end_turn`, `STOP`, `COMPLETE`).
    EndTurn,
    /// The output cap was hit (`length`, `max_tokens`, `MAX_TOKENS`).
    MaxTokens,
    /// A stop sequence matched; which one, when the protocol says.
    StopSequence(Option<String>),
    /// The model called a tool (`tool_calls`, `tool_use`, `TOOL_CALL`).
    ToolUse,
    /// Content was filtered (`content_filter`, `SAFETY`, `guardrail_intervened`).
    ContentFilter,
    /// The model refused (Anthropic `refusal`).
    Refusal,
    /// A long turn paused (Anthropic `pause_turn`).
    PauseTurn,
    /// The context window was exceeded (Anthropic `model_context_window_exceeded`).
    ContextExceeded,
    /// Anything else, as the provider spelled it.
    Other(String),
}

/// Token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens, cache reads and writes not included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

/// A safety rating on a response (Gemini).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyRating {
    /// Harm category.
    pub category: String,
    /// Probability, e.g. `NEGLIGIBLE`.
    pub probability: String,
    /// Whether this rating blocked the output.
    pub blocked: bool,
}

/// A response in IR form (one candidate; protocols with several keep the rest in `ext`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The provider's response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// What the model said, in order.
    pub content: Vec<Block>,
    /// Why it stopped.
    pub stop_reason: Option<StopReason>,
    /// Token usage.
    pub usage: Usage,
    /// Safety ratings.
    pub safety: Vec<SafetyRating>,
    /// Protocol-only fields.
    pub ext: Extensions,
}
