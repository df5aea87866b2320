//! Cohere v2 chat request <-> IR.
//!
//! Normal forms on the way out: a message whose content is one plain text block is written as
//! a string; `strict_tools: true` when every tool is strict.

use super::content::{parse_content, write_parts};
use crate::Protocol;
use crate::ir::{
    Block, Extensions, LossReport, Message, Reasoning, Request, ResponseFormat, Role, Tool,
    ToolChoice,
};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

/// Parses a v2 chat request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    crate::ir::reserved_fields(&obj, &[], "the request body").map_err(bad)?;
    let mut req = Request::default();
    let mut strict_tools = None;
    for (key, val) in obj {
        match key.as_str() {
            "model" => req.model = RequestError::model(&val)?,
            "messages" => {
                let Value::Array(list) = val else {
                    return Err(bad("messages must be an array"));
                };
                for (i, m) in list.into_iter().enumerate() {
                    req.messages.push(parse_message(m, i).map_err(bad)?);
                }
            }
            "tools" => {
                let Value::Array(list) = val else {
                    return Err(bad("tools must be an array"));
                };
                for (i, t) in list.iter().enumerate() {
                    let f = &t["function"];
                    let name = f["name"]
                        .as_str()
                        .ok_or_else(|| bad(format!("tools[{i}].function.name is missing")))?;
                    if t.get("type").is_some_and(|k| k != "function") {
                        return Err(bad(format!("tools[{i}].type must be function")));
                    }
                    req.tools.push(Tool {
                        name: name.to_string(),
                        description: f
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        parameters: f
                            .get("parameters")
                            .cloned()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        strict: None,
                        cache: None,
                    });
                }
            }
            "strict_tools" => strict_tools = val.as_bool(),
            "tool_choice" => match val.as_str() {
                Some("REQUIRED") => req.tool_choice = Some(ToolChoice::Required),
                Some("NONE") => req.tool_choice = Some(ToolChoice::None),
                _ => return Err(bad("tool_choice must be REQUIRED or NONE")),
            },
            "response_format" => match val.get("type").and_then(Value::as_str) {
                Some("text") if val.as_object().is_some_and(|o| o.len() == 1) => {
                    req.response_format = Some(ResponseFormat::Text)
                }
                Some("json_object") => {
                    req.response_format = Some(match val.get("json_schema") {
                        Some(schema) => ResponseFormat::JsonSchema {
                            name: None,
                            description: None,
                            schema: schema.clone(),
                            strict: None,
                        },
                        None => ResponseFormat::JsonObject,
                    })
                }
                _ => {
                    req.ext.cohere.insert(key, val);
                }
            },
            "thinking" => match Reasoning::from_switch(&val, "token_budget") {
                Some(r) => req.reasoning = Some(r),
                None => {
                    req.ext.cohere.insert(key, val);
                }
            },
            "max_tokens" => req.max_output_tokens = val.as_u64(),
            "stop_sequences" => req.stop = crate::ir::string_list(&val),
            "stream" => req.stream = val.as_bool().unwrap_or(false),
            "temperature" => req.sampling.temperature = val.as_f64(),
            "seed" => req.sampling.seed = val.as_i64(),
            "frequency_penalty" => req.sampling.frequency_penalty = val.as_f64(),
            "presence_penalty" => req.sampling.presence_penalty = val.as_f64(),
            "k" => req.sampling.top_k = val.as_u64(),
            "p" => req.sampling.top_p = val.as_f64(),
            _ => {
                req.ext.cohere.insert(key, val);
            }
        }
    }
    if strict_tools == Some(true) {
        for t in &mut req.tools {
            t.strict = Some(true);
        }
    } else if let Some(s) = strict_tools {
        req.ext.cohere.insert("strict_tools".into(), json!(s));
    }
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    Ok(req)
}

fn parse_message(m: Value, i: usize) -> Result<Message, String> {
    let path = format!("messages[{i}]");
    let Value::Object(mut o) = m else {
        return Err(format!("{path} must be an object"));
    };
    crate::ir::reserved_fields(&o, &[], &path)?;
    let role = match o.remove("role").as_ref().and_then(Value::as_str) {
        Some("system") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        other => {
            return Err(format!(
                "{path}.role must be system, user, assistant or tool, not {other:?}"
            ));
        }
    };
    let (mut content, docs) = parse_content(
        o.remove("content").unwrap_or(Value::Null),
        &format!("{path}.content"),
    )?;
    let mut ext = Extensions::default();
    if !docs.is_empty() {
        ext.cohere.insert("_documents".into(), Value::Array(docs));
    }
    match role {
        Role::Assistant => {
            if let Some(Value::Array(calls)) = o.remove("tool_calls") {
                for (k, c) in calls.into_iter().enumerate() {
                    let f = &c["function"];
                    let name = f["name"]
                        .as_str()
                        .ok_or(format!("{path}.tool_calls[{k}].function.name is missing"))?;
                    let args = f["arguments"].as_str().unwrap_or("{}");
                    content.push(Block::ToolUse {
                        id: c["id"].as_str().unwrap_or_default().to_string(),
                        name: name.to_string(),
                        input: serde_json::from_str(args).unwrap_or_else(|_| json!(args)),
                        thought_signature: None,
                    });
                }
            }
        }
        Role::Tool => {
            let id = match o.remove("tool_call_id") {
                Some(Value::String(id)) => id,
                _ => return Err(format!("{path}.tool_call_id is missing")),
            };
            content = vec![Block::ToolResult {
                tool_use_id: id,
                name: None,
                content,
                is_error: false,
                cache: None,
            }];
        }
        _ => {}
    }
    ext.cohere.extend(o);
    Ok(Message {
        role,
        content,
        name: None,
        ext,
    })
}

fn content_json(blocks: &[Block], docs: &[Value], path: &str, loss: &mut LossReport) -> Value {
    if docs.is_empty()
        && let [
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
    Value::Array(write_parts(blocks, docs, path, loss))
}

/// Writes the IR as a v2 chat request body.
pub fn write_request(req: &Request, loss: &mut LossReport) -> Vec<u8> {
    let mut o = Map::new();
    o.insert("model".into(), json!(req.model));
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(
            json!({"role": "system", "content": content_json(&req.system, &[], "system", loss)}),
        );
    }
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        if m.name.is_some() {
            loss.drop_field(format!("{path}.name"));
        }
        for f in m.ext.foreign_fields(Protocol::Cohere) {
            loss.drop_field(format!("{path}.{f}"));
        }
        let docs: Vec<Value> = m
            .ext
            .cohere
            .get("_documents")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let extra = |msg: &mut Map<String, Value>| {
            for (k, v) in &m.ext.cohere {
                if !k.starts_with('_') {
                    msg.insert(k.clone(), v.clone());
                }
            }
        };
        match m.role {
            Role::System | Role::Developer | Role::User => {
                let role = if m.role == Role::User {
                    "user"
                } else {
                    "system"
                };
                // Tool results inside a user turn (Anthropic, Gemini, Bedrock shape) become tool
                // messages, one per result; the rest of the turn stays a user message.
                let (results, rest): (Vec<&Block>, Vec<&Block>) = m
                    .content
                    .iter()
                    .partition(|b| matches!(b, Block::ToolResult { .. }));
                for (k, r) in results.into_iter().enumerate() {
                    messages.push(tool_message(r, &[], &format!("{path}.content[{k}]"), loss));
                }
                if !rest.is_empty() || m.content.is_empty() {
                    let rest: Vec<Block> = rest.into_iter().cloned().collect();
                    let mut msg = Map::new();
                    msg.insert("role".into(), json!(role));
                    msg.insert(
                        "content".into(),
                        content_json(&rest, &docs, &format!("{path}.content"), loss),
                    );
                    extra(&mut msg);
                    messages.push(Value::Object(msg));
                }
            }
            Role::Tool => {
                for (k, r) in m.content.iter().enumerate() {
                    let mut msg = tool_message(r, &docs, &format!("{path}.content[{k}]"), loss);
                    if let Value::Object(mm) = &mut msg {
                        extra(mm);
                    }
                    messages.push(msg);
                }
            }
            Role::Assistant => {
                let mut msg = Map::new();
                msg.insert("role".into(), json!("assistant"));
                let (calls, rest): (Vec<&Block>, Vec<&Block>) = m
                    .content
                    .iter()
                    .partition(|b| matches!(b, Block::ToolUse { .. }));
                if !rest.is_empty() {
                    let rest: Vec<Block> = rest.into_iter().cloned().collect();
                    msg.insert(
                        "content".into(),
                        content_json(&rest, &docs, &format!("{path}.content"), loss),
                    );
                }
                if !calls.is_empty() {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|b| match b {
                            Block::ToolUse { id, name, input, thought_signature } => {
                                if thought_signature.is_some() {
                                    loss.drop_field(format!("{path}.thought_signature"));
                                }
                                let arguments = match input {
                                    Value::String(s) => s.clone(),
                                    v => v.to_string(),
                                };
                                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
                            }
                            _ => Value::Null,
                        })
                        .collect();
                    msg.insert("tool_calls".into(), Value::Array(calls));
                }
                extra(&mut msg);
                messages.push(Value::Object(msg));
            }
        }
    }
    o.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.cache.is_some() {
                    loss.drop_field(format!("tools[{i}].cache_control"));
                }
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        o.insert("tools".into(), Value::Array(tools));
        if req.tools.iter().all(|t| t.strict == Some(true)) {
            o.insert("strict_tools".into(), json!(true));
        } else if req.tools.iter().any(|t| t.strict == Some(true)) {
            loss.drop_field("tools.strict");
        }
    }
    match &req.tool_choice {
        Some(ToolChoice::Required) => {
            o.insert("tool_choice".into(), json!("REQUIRED"));
        }
        Some(ToolChoice::None) => {
            o.insert("tool_choice".into(), json!("NONE"));
        }
        Some(ToolChoice::Tool(_)) => {
            // Cohere cannot name the tool: any tool is required, and the choice is reported.
            o.insert("tool_choice".into(), json!("REQUIRED"));
            loss.drop_field("tool_choice");
        }
        Some(ToolChoice::Auto) | None => {}
    }
    if req.parallel_tool_calls == Some(false) {
        loss.drop_field("parallel_tool_calls");
    }
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            o.insert("response_format".into(), json!({"type": "text"}));
        }
        Some(ResponseFormat::JsonObject) => {
            o.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema {
            schema,
            description,
            ..
        }) => {
            if description.is_some() {
                loss.drop_field("response_format.description");
            }
            o.insert(
                "response_format".into(),
                json!({"type": "json_object", "json_schema": schema}),
            );
        }
    }
    if let Some(r) = &req.reasoning {
        match (r.enabled, r.budget_tokens) {
            (Some(false), _) => {
                o.insert("thinking".into(), json!({"type": "disabled"}));
            }
            (_, Some(b)) => {
                o.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "token_budget": b}),
                );
            }
            (Some(true), None) => {
                o.insert("thinking".into(), json!({"type": "enabled"}));
            }
            // An effort asks for reasoning: Cohere's is on or off (the level itself is lost,
            // and reported below).
            (None, None) if r.effort.is_some() => {
                o.insert("thinking".into(), json!({"type": "enabled"}));
            }
            (None, None) => {}
        }
        if r.effort.is_some() && r.budget_tokens.is_none() {
            loss.drop_field("reasoning.effort");
        }
        if r.include_thoughts.is_some() {
            loss.drop_field("reasoning.include_thoughts");
        }
    }
    let s = &req.sampling;
    crate::ir::insert_some(
        &mut o,
        [
            ("max_tokens", req.max_output_tokens.map(|x| json!(x))),
            ("temperature", s.temperature.map(|x| json!(x))),
            ("seed", s.seed.map(|x| json!(x))),
            ("frequency_penalty", s.frequency_penalty.map(|x| json!(x))),
            ("presence_penalty", s.presence_penalty.map(|x| json!(x))),
            ("k", s.top_k.map(|x| json!(x))),
            ("p", s.top_p.map(|x| json!(x))),
        ],
    );
    if s.candidates.is_some_and(|n| n != 1) {
        loss.drop_field("n");
    }
    if !req.stop.is_empty() {
        o.insert("stop_sequences".into(), json!(req.stop));
    }
    if req.stream {
        o.insert("stream".into(), json!(true));
    }
    if !req.safety.is_empty() {
        loss.drop_field("safety_settings");
    }
    if req.user.is_some() {
        loss.drop_field("user");
    }
    for (k, v) in &req.ext.cohere {
        if !k.starts_with('_') {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::Cohere) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

fn tool_message(b: &Block, docs: &[Value], path: &str, loss: &mut LossReport) -> Value {
    match b {
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache,
            ..
        } => {
            loss.drop_present(
                path,
                &[(*is_error, "is_error"), (cache.is_some(), "cache_control")],
            );
            json!({"role": "tool", "tool_call_id": tool_use_id, "content": content_json(content, docs, &format!("{path}.content"), loss)})
        }
        _ => {
            loss.drop_field(path.to_string());
            json!({"role": "tool", "content": ""})
        }
    }
}
