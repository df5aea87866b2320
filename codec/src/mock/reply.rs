//! The mock model's answer at the IR level, for every protocol: a protocol's codec writes it out.
//!
//! ```text
//!   last turn carries tool results   -> text that quotes them              (EndTurn)
//!   tools offered, choice not `none` -> a call of the chosen (or first) tool (ToolUse)
//!   otherwise                        -> the echo-and-pad text of MockReply  (EndTurn / MaxTokens)
//!   reasoning asked for              -> a thinking block with a signature first
//! ```
//!
//! Deterministic: the same request gives the same answer, so tests can assert on it.

use super::{MockReply, MockRequest};
use crate::ir::{Block, Request, Response, Role, StopReason, ToolChoice, Usage};
use serde_json::{Map, Value, json};

/// A signature the mock puts on its thinking: base64 (as providers' are, and as Gemini's SDK
/// insists) of a fixed prefix and a hash of the text, so a test can check that the very
/// signature the mock gave came back on the next turn.
pub fn thinking_signature(text: &str) -> String {
    // FNV-1a: stable across runs and platforms, which is all a mock needs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("mocksig{h:016x}"))
}

fn text_of(blocks: &[Block]) -> String {
    let mut out = Vec::new();
    for b in blocks {
        match b {
            Block::Text { text, .. } => out.push(text.clone()),
            Block::ToolResult { content, .. } => out.push(text_of(content)),
            _ => {}
        }
    }
    out.join(" ")
}

/// Arguments that satisfy `schema`'s required properties (all properties when none are listed).
fn arguments(schema: &Value) -> Value {
    let props = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_else(|| {
            props
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default()
        });
    let mut out = Map::new();
    for name in required {
        let p = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
        out.insert(name.to_string(), sample(p));
    }
    Value::Object(out)
}

fn sample(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_ascii_lowercase(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => arguments(schema),
        _ => json!("mock"),
    }
}

/// The mock's answer to `req`, `tokens` words of text long (capped by the request's max output
/// tokens). The id is left empty: the caller mints one in its protocol's format.
pub fn reply(req: &Request, tokens: u64) -> Response {
    let mut chars = text_of(&req.system).len();
    for m in &req.messages {
        chars += text_of(&m.content).len() + 12;
    }
    let last = req.messages.last();
    let last_user_text = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| text_of(&m.content))
        .unwrap_or_default();
    let mock = MockRequest {
        model: req.model.clone(),
        stream: req.stream,
        include_usage: req.stream_usage,
        max_output_tokens: req.max_output_tokens,
        last_user_text: last_user_text.clone(),
        prompt_tokens: chars.div_ceil(4).max(1) as u64,
    };
    let mut content = Vec::new();
    let mut usage = Usage {
        input: mock.prompt_tokens,
        ..Usage::default()
    };
    let thinking = req.reasoning.as_ref().is_some_and(|r| {
        r.enabled != Some(false)
            && (r.enabled.is_some() || r.budget_tokens.is_some() || r.effort.is_some())
    });
    if thinking {
        let text = format!("The user said: {last_user_text}");
        usage.reasoning = text.split_whitespace().count() as u64;
        content.push(Block::Thinking {
            signature: Some(thinking_signature(&text)),
            text,
        });
    }
    let answered_tool = last.is_some_and(|m| {
        m.role == Role::Tool
            || m.content
                .iter()
                .any(|b| matches!(b, Block::ToolResult { .. }))
    });
    let chosen = match &req.tool_choice {
        Some(ToolChoice::None) => None,
        Some(ToolChoice::Tool(name)) => req.tools.iter().find(|t| &t.name == name),
        _ => req.tools.first(),
    };
    let stop = match chosen {
        Some(tool) if !answered_tool => {
            let n = req.messages.len();
            content.push(Block::ToolUse {
                id: format!("call_mock_{n}_0"),
                name: tool.name.clone(),
                input: arguments(&tool.parameters),
                thought_signature: None,
            });
            usage.output = 12;
            StopReason::ToolUse
        }
        _ => {
            let plan = MockReply::plan(&mock, tokens);
            let text = if answered_tool {
                let quoted = last.map(|m| text_of(&m.content)).unwrap_or_default();
                format!("The tool said: {quoted}")
            } else {
                plan.text()
            };
            usage.output = plan.tokens.len() as u64;
            content.push(Block::Text {
                text,
                citations: Vec::new(),
                cache: None,
            });
            if plan.truncated {
                StopReason::MaxTokens
            } else {
                StopReason::EndTurn
            }
        }
    };
    usage.output += usage.reasoning;
    Response {
        id: String::new(),
        model: req.model.clone(),
        content,
        stop_reason: Some(stop),
        usage,
        safety: Vec::new(),
        ext: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Message, Reasoning, Tool};

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            content: vec![Block::Text {
                text: text.into(),
                citations: vec![],
                cache: None,
            }],
            name: None,
            ext: Default::default(),
        }
    }

    #[test]
    fn tools_thinking_and_tool_results() {
        let mut req = Request {
            model: "m".into(),
            messages: vec![user("weather in Paris?")],
            tools: vec![Tool {
                name: "get_weather".into(),
                description: None,
                parameters: json!({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"enum":["c","f"]}},"required":["city","unit"]}),
                strict: None,
                cache: None,
            }],
            reasoning: Some(Reasoning {
                enabled: Some(true),
                budget_tokens: Some(1024),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = reply(&req, 8);
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        let [
            Block::Thinking { text, signature },
            Block::ToolUse { name, input, .. },
        ] = r.content.as_slice()
        else {
            panic!("{:?}", r.content)
        };
        assert_eq!(
            signature.as_deref(),
            Some(thinking_signature(text).as_str())
        );
        assert_eq!(
            (name.as_str(), input),
            ("get_weather", &json!({"city": "mock", "unit": "c"}))
        );
        assert!(r.usage.reasoning > 0 && r.usage.output > r.usage.reasoning);

        req.messages.push(Message {
            role: Role::Tool,
            content: vec![Block::ToolResult {
                tool_use_id: "call_mock_1_0".into(),
                name: None,
                content: vec![Block::Text {
                    text: "18C sunny".into(),
                    citations: vec![],
                    cache: None,
                }],
                is_error: false,
                cache: None,
            }],
            name: None,
            ext: Default::default(),
        });
        req.reasoning = None;
        let r = reply(&req, 8);
        assert_eq!(r.stop_reason, Some(StopReason::EndTurn));
        assert!(
            matches!(&r.content[0], Block::Text { text, .. } if text == "The tool said: 18C sunny")
        );
    }
}
