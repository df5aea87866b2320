//! Responses request <-> IR.
//!
//! Normal forms on the way out: function tools before the other tools; `output_text` parts
//! always carry `annotations` (empty when there are none).

use super::items::{parse_item, write_items};
use crate::Protocol;
use crate::ir::{
    Block, Extensions, LossReport, Message, Reasoning, ReasoningEffort, Request, ResponseFormat,
    Role, Tool, ToolChoice,
};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

/// Items -> IR messages: consecutive items of one role merge; tool outputs and unknown items
/// stand alone. Each message remembers its items in `ext.responses._items`.
pub(super) fn messages_of(items: Vec<Value>, path: &str) -> Result<Vec<Message>, String> {
    let mut out: Vec<Message> = Vec::new();
    let mut last_alone = true;
    for (i, item) in items.into_iter().enumerate() {
        let p = parse_item(item, &format!("{path}[{i}]"))?;
        let merge = !p.alone && !last_alone && out.last().is_some_and(|m| m.role == p.role);
        last_alone = p.alone;
        if merge {
            if let Some(m) = out.last_mut() {
                m.content.extend(p.blocks);
                if let Some(Value::Array(h)) = m.ext.responses.get_mut("_items") {
                    h.push(p.hint);
                }
                continue;
            }
        }
        let mut ext = Extensions::default();
        ext.responses.insert("_items".into(), json!([p.hint]));
        out.push(Message {
            role: p.role,
            content: p.blocks,
            name: None,
            ext,
        });
    }
    Ok(out)
}

/// Parses a Responses request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    crate::ir::reserved_fields(&obj, &[], "the request body").map_err(bad)?;
    let mut req = Request::default();
    for (key, val) in obj {
        match key.as_str() {
            "model" => req.model = RequestError::model(&val)?,
            "input" => match val {
                Value::String(t) => {
                    let mut ext = Extensions::default();
                    ext.responses.insert("_inputString".into(), json!(true));
                    req.messages.push(Message {
                        role: Role::User,
                        content: vec![Block::Text {
                            text: t,
                            citations: Vec::new(),
                            cache: None,
                        }],
                        name: None,
                        ext,
                    });
                }
                Value::Array(items) => req.messages = messages_of(items, "input").map_err(bad)?,
                _ => return Err(bad("input must be a string or an array of items")),
            },
            "instructions" if val.is_string() => {
                req.system = vec![Block::Text {
                    text: val.as_str().unwrap_or_default().to_string(),
                    citations: Vec::new(),
                    cache: None,
                }]
            }
            "tools" => {
                let Value::Array(list) = val else {
                    return Err(bad("tools must be an array"));
                };
                let mut others = Vec::new();
                for (i, t) in list.into_iter().enumerate() {
                    let is_fn = t.get("type").and_then(Value::as_str) == Some("function")
                        && t.as_object().is_some_and(|o| {
                            o.keys().all(|k| {
                                matches!(
                                    k.as_str(),
                                    "type" | "name" | "description" | "parameters" | "strict"
                                )
                            })
                        });
                    if !is_fn {
                        others.push(t);
                        continue;
                    }
                    let name = t["name"]
                        .as_str()
                        .ok_or_else(|| bad(format!("tools[{i}].name is missing")))?;
                    req.tools.push(Tool {
                        name: name.to_string(),
                        description: t
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        parameters: t.get("parameters").cloned().unwrap_or(Value::Null),
                        strict: t.get("strict").and_then(Value::as_bool),
                        cache: None,
                    });
                }
                if !others.is_empty() {
                    req.ext
                        .responses
                        .insert("tools".into(), Value::Array(others));
                }
            }
            "tool_choice" => {
                let c = match &val {
                    Value::String(s) if s == "auto" => Some(ToolChoice::Auto),
                    Value::String(s) if s == "none" => Some(ToolChoice::None),
                    Value::String(s) if s == "required" => Some(ToolChoice::Required),
                    Value::Object(o)
                        if o.get("type") == Some(&json!("function")) && o.len() == 2 =>
                    {
                        o.get("name")
                            .and_then(Value::as_str)
                            .map(|n| ToolChoice::Tool(n.to_string()))
                    }
                    _ => None,
                };
                match c {
                    Some(c) => req.tool_choice = Some(c),
                    None => {
                        req.ext.responses.insert(key, val);
                    }
                }
            }
            "text" => {
                let Value::Object(mut t) = val else {
                    return Err(bad("text must be an object"));
                };
                if let Some(f) = t.get("format") {
                    let rf = match f.get("type").and_then(Value::as_str) {
                        Some("text") if f.as_object().is_some_and(|o| o.len() == 1) => {
                            Some(ResponseFormat::Text)
                        }
                        Some("json_object") if f.as_object().is_some_and(|o| o.len() == 1) => {
                            Some(ResponseFormat::JsonObject)
                        }
                        Some("json_schema") if f.get("schema").is_some() => {
                            Some(ResponseFormat::JsonSchema {
                                name: f.get("name").and_then(Value::as_str).map(str::to_string),
                                description: f
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .map(str::to_string),
                                schema: f["schema"].clone(),
                                strict: f.get("strict").and_then(Value::as_bool),
                            })
                        }
                        _ => None,
                    };
                    if rf.is_some() {
                        req.response_format = rf;
                        t.remove("format");
                    }
                }
                req.ext.responses.insert("text".into(), Value::Object(t));
            }
            "reasoning" => {
                let Value::Object(mut r) = val else {
                    return Err(bad("reasoning must be an object"));
                };
                let effort = r
                    .get("effort")
                    .and_then(Value::as_str)
                    .and_then(ReasoningEffort::from_name);
                let summary = r.get("summary").cloned();
                let mut ir = Reasoning {
                    effort,
                    ..Reasoning::default()
                };
                if effort.is_some() {
                    r.remove("effort");
                }
                if let Some(s) = summary.filter(|s| s.is_string()) {
                    ir.include_thoughts = Some(true);
                    req.ext.responses.insert("_summary".into(), s);
                    r.remove("summary");
                }
                req.reasoning = Some(ir);
                req.ext
                    .responses
                    .insert("reasoning".into(), Value::Object(r));
            }
            "max_output_tokens" => req.max_output_tokens = val.as_u64(),
            "temperature" => req.sampling.temperature = val.as_f64(),
            "top_p" => req.sampling.top_p = val.as_f64(),
            "parallel_tool_calls" => req.parallel_tool_calls = val.as_bool(),
            "stream" => req.stream = val.as_bool().unwrap_or(false),
            "user" if val.is_string() => req.user = val.as_str().map(str::to_string),
            _ => {
                req.ext.responses.insert(key, val);
            }
        }
    }
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    Ok(req)
}

/// Writes the IR as a Responses request body.
pub fn write_request(req: &Request, loss: &mut LossReport) -> Vec<u8> {
    let ext = &req.ext.responses;
    let mut o = Map::new();
    o.insert("model".into(), json!(req.model));
    // Instructions: the IR's system blocks (text).
    let mut instructions = Vec::new();
    for (k, b) in req.system.iter().enumerate() {
        match b {
            Block::Text { text, cache, .. } => {
                if cache.is_some() {
                    loss.drop_field(format!("system[{k}].cache_control"));
                }
                instructions.push(text.clone());
            }
            _ => loss.drop_field(format!("system[{k}]")),
        }
    }
    if !instructions.is_empty() {
        o.insert("instructions".into(), json!(instructions.join("\n\n")));
    }
    let single_string =
        req.messages.len() == 1 && req.messages[0].ext.responses.contains_key("_inputString");
    if single_string {
        if let [Block::Text { text, .. }] = req.messages[0].content.as_slice() {
            o.insert("input".into(), json!(text));
        }
    }
    if !o.contains_key("input") {
        let mut items = Vec::new();
        for (i, m) in req.messages.iter().enumerate() {
            let path = format!("messages[{i}]");
            if m.name.is_some() {
                loss.drop_field(format!("{path}.name"));
            }
            for f in m.ext.foreign_fields(Protocol::OpenAiResponses) {
                loss.drop_field(format!("{path}.{f}"));
            }
            let hints = m.ext.responses.get("_items").and_then(Value::as_array);
            // Tool results inside a user turn (Anthropic, Gemini, Bedrock shape) go out as
            // function_call_output items, the rest of the turn as a message.
            items.extend(write_items(
                m.role,
                &m.content,
                hints,
                &format!("{path}.content"),
                loss,
                false,
                &|_, _| String::new(),
            ));
        }
        o.insert("input".into(), Value::Array(items));
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.cache.is_some() {
                loss.drop_field(format!("tools[{i}].cache_control"));
            }
            let mut v = json!({"type": "function", "name": t.name, "parameters": t.parameters});
            if let Some(d) = &t.description {
                v["description"] = json!(d);
            }
            if let Some(s) = t.strict {
                v["strict"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(Value::Array(others)) = ext.get("tools") {
        tools.extend(others.iter().cloned());
    }
    if !tools.is_empty() {
        o.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = &req.tool_choice {
        let v = match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(n) => json!({"type": "function", "name": n}),
        };
        o.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls {
        o.insert("parallel_tool_calls".into(), json!(p));
    }
    let mut text = ext
        .get("text")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(rf) = &req.response_format {
        let f = match rf {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => {
                let mut f = json!({"type": "json_schema", "name": name.clone().unwrap_or_else(|| "response".into()), "schema": schema});
                if let Some(d) = description {
                    f["description"] = json!(d);
                }
                if let Some(s) = strict {
                    f["strict"] = json!(s);
                }
                f
            }
        };
        text.insert("format".into(), f);
    }
    if !text.is_empty() || ext.contains_key("text") {
        o.insert("text".into(), Value::Object(text));
    }
    let mut include: Vec<Value> = ext
        .get("include")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(r) = &req.reasoning {
        let mut ro = ext
            .get("reasoning")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(e) = r.effort {
            ro.insert("effort".into(), json!(e.as_str()));
        } else if r.enabled == Some(false) {
            loss.drop_field("reasoning.enabled");
        } else if let Some(b) = r.budget_tokens {
            // No budget in Responses: the nearest effort.
            let e = match b {
                ..=1024 => "low",
                1025..=8192 => "medium",
                _ => "high",
            };
            ro.insert("effort".into(), json!(e));
        }
        let native = ext.contains_key("reasoning");
        if let Some(s) = ext.get("_summary") {
            ro.insert("summary".into(), s.clone());
        } else if !native && (r.include_thoughts == Some(true) || r.enabled == Some(true)) {
            // The client wants to see thinking: ask for summaries and the encrypted reasoning,
            // which come back only when asked for.
            ro.insert("summary".into(), json!("auto"));
            let enc = json!("reasoning.encrypted_content");
            if !include.contains(&enc) {
                include.push(enc);
            }
            if !ext.contains_key("store") {
                o.insert("store".into(), json!(false));
            }
        }
        if !ro.is_empty() || native {
            o.insert("reasoning".into(), Value::Object(ro));
        }
    }
    if !include.is_empty() {
        o.insert("include".into(), Value::Array(include));
    }
    let s = &req.sampling;
    crate::ir::insert_some(
        &mut o,
        [
            ("max_output_tokens", req.max_output_tokens.map(|x| json!(x))),
            ("temperature", s.temperature.map(|x| json!(x))),
            ("top_p", s.top_p.map(|x| json!(x))),
        ],
    );
    loss.drop_present(
        "",
        &[
            (s.top_k.is_some(), "top_k"),
            (s.frequency_penalty.is_some(), "frequency_penalty"),
            (s.presence_penalty.is_some(), "presence_penalty"),
            (s.seed.is_some(), "seed"),
            (s.candidates.is_some_and(|n| n != 1), "n"),
            (!req.stop.is_empty(), "stop"),
            (!req.safety.is_empty(), "safety_settings"),
        ],
    );
    if req.stream {
        o.insert("stream".into(), json!(true));
    }
    if let Some(u) = &req.user {
        o.insert("user".into(), json!(u));
    }
    for (k, v) in ext {
        let consumed = matches!(k.as_str(), "tools" | "text" | "reasoning" | "include");
        if !consumed && !k.starts_with('_') {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::OpenAiResponses) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
