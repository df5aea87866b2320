//! The request side of the IR.

use super::{Block, CacheControl, Extensions, Message};
use serde_json::Value;

/// Sampling parameters, each as the union of the protocols' spellings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p` / `topP` / `p` (Cohere).
    pub top_p: Option<f64>,
    /// `top_k` / `topK` / `k` (Cohere).
    pub top_k: Option<u64>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `seed`.
    pub seed: Option<i64>,
    /// Number of candidates (`n`, `candidateCount`).
    pub candidates: Option<u64>,
}

/// How hard the model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningEffort {
    /// `minimal` (OpenAI), thinking off elsewhere.
    Minimal,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
}

impl ReasoningEffort {
    /// The effort a protocol names (`minimal`, `low`, `medium`, `high`; any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "minimal" => Some(Self::Minimal),
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    /// The lower-case name OpenAI, Responses and Gemini use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Reasoning controls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasoning {
    /// Effort level (OpenAI `reasoning_effort`, Responses `reasoning.effort`).
    pub effort: Option<ReasoningEffort>,
    /// Token budget (Anthropic `thinking.budget_tokens`, Gemini `thinkingBudget`).
    pub budget_tokens: Option<i64>,
    /// Whether thinking is on at all (Anthropic `thinking.type`).
    pub enabled: Option<bool>,
    /// Whether thoughts / summaries are returned (Gemini `includeThoughts`, Responses summary).
    pub include_thoughts: Option<bool>,
}

impl Reasoning {
    /// A `{"type": "enabled", <budget_key>: n}` or `{"type": "disabled"}` switch (Anthropic's and
    /// Cohere's `thinking`); `None` for any other shape.
    pub fn from_switch(v: &Value, budget_key: &str) -> Option<Reasoning> {
        let enabled = match v.get("type").and_then(Value::as_str)? {
            "enabled" => true,
            "disabled" => false,
            _ => return None,
        };
        Some(Reasoning {
            enabled: Some(enabled),
            budget_tokens: if enabled {
                v.get(budget_key).and_then(Value::as_i64)
            } else {
                None
            },
            ..Reasoning::default()
        })
    }
}

/// Output format constraints.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Plain text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name (OpenAI requires one).
        name: Option<String>,
        /// What the output is for.
        description: Option<String>,
        /// The JSON Schema.
        schema: Value,
        /// OpenAI `strict`.
        strict: Option<bool>,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its parameters as JSON Schema (Gemini's upper-case types are converted on the way in).
    pub parameters: Value,
    /// OpenAI `strict`.
    pub strict: Option<bool>,
    /// Cache mark.
    pub cache: Option<CacheControl>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool call.
    None,
    /// Some tool call (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    /// This tool.
    Tool(String),
}

/// A safety threshold (Gemini `safetySettings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetySetting {
    /// Harm category, e.g. `HARM_CATEGORY_HATE_SPEECH`.
    pub category: String,
    /// Threshold, e.g. `BLOCK_ONLY_HIGH`.
    pub threshold: String,
    /// Gemini `method` (`SEVERITY`, `PROBABILITY`), if given.
    pub method: Option<String>,
}

/// A request in IR form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// The model asked for.
    pub model: String,
    /// System instructions (Anthropic `system`, Gemini `systemInstruction`, OpenAI leading
    /// `system`/`developer` messages, Bedrock `system`, Responses `instructions`).
    pub system: Vec<Block>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools offered.
    pub tools: Vec<Tool>,
    /// Tool choice.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Sampling parameters.
    pub sampling: Sampling,
    /// Output token cap.
    pub max_output_tokens: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// Whether the final usage is wanted in a stream (OpenAI `stream_options.include_usage`).
    pub stream_usage: bool,
    /// Reasoning controls.
    pub reasoning: Option<Reasoning>,
    /// Output format.
    pub response_format: Option<ResponseFormat>,
    /// Safety settings.
    pub safety: Vec<SafetySetting>,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Protocol-only fields.
    pub ext: Extensions,
}
