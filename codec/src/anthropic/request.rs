//! Anthropic Messages request <-> IR.
//!
//! Normal forms on the way out: a system prompt or message content that is one plain text
//! block is written as a string. `max_tokens` is required by Anthropic: when the IR has none
//! (it came from a protocol where it is optional), the caller's default is written.

use super::blocks::{cache_json, cache_of, parse_block, write_block};
use crate::Protocol;
use crate::ir::{
    Block, LossReport, Message, Reasoning, ReasoningEffort, Request, Role, Tool, ToolChoice,
};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

fn blocks_of(v: Value) -> Vec<Block> {
    match v {
        Value::String(text) => vec![Block::Text {
            text,
            citations: Vec::new(),
            cache: None,
        }],
        Value::Array(a) => a.into_iter().map(parse_block).collect(),
        _ => Vec::new(),
    }
}

fn custom_tools(v: &Value) -> bool {
    v.as_array().is_some_and(|a| {
        a.iter()
            .all(|t| t.get("type").is_none_or(|k| k == "custom") && t.get("input_schema").is_some())
    })
}

/// Parses a Messages request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    let mut req = Request::default();
    for (key, val) in obj {
        match key.as_str() {
            "model" => req.model = RequestError::model(&val)?,
            "system" => req.system = blocks_of(val),
            "messages" => {
                let Value::Array(list) = val else {
                    return Err(bad("messages must be an array"));
                };
                for (i, m) in list.into_iter().enumerate() {
                    let Value::Object(mut o) = m else {
                        return Err(bad(format!("messages[{i}] must be an object")));
                    };
                    let role = match o.remove("role").as_ref().and_then(Value::as_str) {
                        Some("user") => Role::User,
                        Some("assistant") => Role::Assistant,
                        other => {
                            return Err(bad(format!(
                                "messages[{i}]: role must be user or assistant, not {other:?}"
                            )));
                        }
                    };
                    let content = blocks_of(o.remove("content").unwrap_or(Value::Null));
                    let ext = crate::ir::Extensions {
                        anthropic: o,
                        ..Default::default()
                    };
                    req.messages.push(Message {
                        role,
                        content,
                        name: None,
                        ext,
                    });
                }
            }
            "max_tokens" => req.max_output_tokens = val.as_u64(),
            "stop_sequences" => req.stop = crate::ir::string_list(&val),
            "stream" => req.stream = val.as_bool().unwrap_or(false),
            "temperature" => req.sampling.temperature = val.as_f64(),
            "top_p" => req.sampling.top_p = val.as_f64(),
            "top_k" => req.sampling.top_k = val.as_u64(),
            "tools" if custom_tools(&val) => {
                for t in val.as_array().into_iter().flatten() {
                    req.tools.push(Tool {
                        name: t
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        description: t
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        parameters: t.get("input_schema").cloned().unwrap_or(Value::Null),
                        strict: None,
                        cache: cache_of(t),
                    });
                }
            }
            "tool_choice" => {
                let choice = match val.get("type").and_then(Value::as_str) {
                    Some("auto") => Some(ToolChoice::Auto),
                    Some("any") => Some(ToolChoice::Required),
                    Some("none") => Some(ToolChoice::None),
                    Some("tool") => val
                        .get("name")
                        .and_then(Value::as_str)
                        .map(|n| ToolChoice::Tool(n.to_string())),
                    _ => None,
                };
                match choice {
                    Some(c) => {
                        req.tool_choice = Some(c);
                        req.parallel_tool_calls = val
                            .get("disable_parallel_tool_use")
                            .and_then(Value::as_bool)
                            .map(|d| !d);
                    }
                    None => {
                        req.ext.anthropic.insert(key, val);
                    }
                }
            }
            "thinking" => match Reasoning::from_switch(&val, "budget_tokens") {
                Some(r) => req.reasoning = Some(r),
                None => {
                    req.ext.anthropic.insert(key, val);
                }
            },
            "metadata" => {
                let mut m = val.as_object().cloned().unwrap_or_default();
                req.user = m
                    .remove("user_id")
                    .and_then(|u| u.as_str().map(str::to_string));
                if !m.is_empty() {
                    req.ext.anthropic.insert(key, Value::Object(m));
                }
            }
            _ => {
                req.ext.anthropic.insert(key, val);
            }
        }
    }
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    Ok(req)
}

/// Content as Anthropic writes it: a string for one plain text block, else blocks.
fn content_json(blocks: &[Block], path: &str, loss: &mut LossReport) -> Value {
    if let [
        Block::Text {
            text,
            citations,
            cache: None,
        },
    ] = blocks
        && citations.is_empty()
    {
        return json!(text);
    }
    Value::Array(
        blocks
            .iter()
            .enumerate()
            .filter_map(|(k, b)| write_block(b, &format!("{path}[{k}]"), loss))
            .collect(),
    )
}

/// Writes the IR as a Messages request body. `default_max_tokens` fills Anthropic's required
/// `max_tokens` when the IR has none.
pub fn write_request(req: &Request, default_max_tokens: u64, loss: &mut LossReport) -> Vec<u8> {
    let mut o = Map::new();
    o.insert("model".into(), json!(req.model));
    o.insert(
        "max_tokens".into(),
        json!(req.max_output_tokens.unwrap_or(default_max_tokens)),
    );
    // System: the IR's system blocks, then any system/developer turns from protocols that put
    // instructions inside the conversation (Anthropic has one system prompt, before the turns).
    let mut system: Vec<Block> = req.system.clone();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let role = match m.role {
            Role::System | Role::Developer => {
                system.extend(m.content.iter().cloned());
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        if m.name.is_some() {
            loss.drop_field(format!("{path}.name"));
        }
        let content = content_json(&m.content, &format!("{path}.content"), loss);
        let mut msg = Map::new();
        msg.insert("role".into(), json!(role));
        msg.insert("content".into(), content);
        for (k, v) in &m.ext.anthropic {
            msg.insert(k.clone(), v.clone());
        }
        for f in m.ext.foreign_fields(Protocol::Anthropic) {
            loss.drop_field(format!("{path}.{f}"));
        }
        // Consecutive tool-result turns (OpenAI `tool` messages) become one user turn.
        let merge = m.role == Role::Tool
            && messages
                .last()
                .is_some_and(|p: &Value| p["role"] == "user" && p["content"].is_array());
        if merge
            && let (Some(Value::Array(prev)), Value::Array(more)) = (
                messages.last_mut().map(|p| &mut p["content"]),
                msg.remove("content").unwrap_or(Value::Null),
            )
        {
            prev.extend(more);
            continue;
        }
        messages.push(Value::Object(msg));
    }
    if !system.is_empty() {
        o.insert("system".into(), content_json(&system, "system", loss));
    }
    o.insert("messages".into(), Value::Array(messages));
    let s = &req.sampling;
    crate::ir::insert_some(
        &mut o,
        [
            ("temperature", s.temperature.map(|x| json!(x))),
            ("top_p", s.top_p.map(|x| json!(x))),
            ("top_k", s.top_k.map(|x| json!(x))),
        ],
    );
    loss.drop_present(
        "",
        &[
            (s.frequency_penalty.is_some(), "frequency_penalty"),
            (s.presence_penalty.is_some(), "presence_penalty"),
            (s.seed.is_some(), "seed"),
            (s.candidates.is_some_and(|n| n != 1), "n"),
            (req.response_format.is_some(), "response_format"),
            (!req.safety.is_empty(), "safety_settings"),
        ],
    );
    if !req.stop.is_empty() {
        o.insert("stop_sequences".into(), json!(req.stop));
    }
    if req.stream {
        o.insert("stream".into(), json!(true));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.strict.is_some() {
                    loss.drop_field(format!("tools[{i}].strict"));
                }
                let mut x = Map::new();
                x.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    x.insert("description".into(), json!(d));
                }
                x.insert("input_schema".into(), t.parameters.clone());
                if let Some(c) = &t.cache {
                    x.insert("cache_control".into(), cache_json(c));
                }
                Value::Object(x)
            })
            .collect();
        o.insert("tools".into(), Value::Array(tools));
    }
    let choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Tool(n) => json!({"type": "tool", "name": n}),
    });
    match (choice, req.parallel_tool_calls) {
        (Some(mut c), Some(p)) => {
            c["disable_parallel_tool_use"] = json!(!p);
            o.insert("tool_choice".into(), c);
        }
        (Some(c), None) => {
            o.insert("tool_choice".into(), c);
        }
        (None, Some(false)) => {
            o.insert(
                "tool_choice".into(),
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            );
        }
        (None, _) => {}
    }
    if let Some(r) = &req.reasoning {
        let budget = r.budget_tokens.or(r.effort.map(|e| match e {
            ReasoningEffort::Minimal => 1024,
            ReasoningEffort::Low => 2048,
            ReasoningEffort::Medium => 8192,
            ReasoningEffort::High => 24576,
        }));
        match (r.enabled, budget) {
            (Some(false), _) | (None, None) => {
                if r.enabled == Some(false) {
                    o.insert("thinking".into(), json!({"type": "disabled"}));
                }
            }
            (_, Some(b)) => {
                // Anthropic wants 1024 <= budget_tokens < max_tokens: a budget from another
                // protocol (or from an effort) is raised to the floor, and a cap it does not fit
                // under is raised to leave the answer the room the cap gave it.
                let b = b.max(1024);
                let cap = o["max_tokens"].as_i64().unwrap_or(i64::MAX);
                if b >= cap {
                    o.insert("max_tokens".into(), json!(b.saturating_add(cap)));
                }
                o.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": b}),
                );
            }
            (Some(true), None) => {
                let cap = o["max_tokens"].as_u64().unwrap_or(u64::MAX);
                if cap <= 1024 {
                    o.insert("max_tokens".into(), json!(1024 + cap));
                }
                o.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": 1024}),
                );
            }
        }
        if r.include_thoughts.is_some() {
            loss.drop_field("reasoning.include_thoughts");
        }
    }
    let mut metadata = req
        .ext
        .anthropic
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(u) = &req.user {
        metadata.insert("user_id".into(), json!(u));
    }
    if !metadata.is_empty() {
        o.insert("metadata".into(), Value::Object(metadata));
    }
    for (k, v) in &req.ext.anthropic {
        if k != "metadata" {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::Anthropic) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
