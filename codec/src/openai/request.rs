//! OpenAI Chat Completions request <-> IR.
//!
//! `parse_request` gives every field a home: shared concepts go to typed IR fields, the rest to
//! `ext.openai` (kept whole, so a same-protocol trip loses nothing). `write_request` emits the
//! OpenAI shape and reports in the [`LossReport`] what the IR holds that OpenAI cannot carry.
//!
//! Normal forms on the way out (same meaning, possibly different bytes from the input): a message
//! whose content is one plain text block is written as a string; `stop` as an array;
//! `max_tokens` as `max_completion_tokens`.

use super::RequestError;
use crate::Protocol;
use crate::ir::{
    Block, LossReport, Media, Message, Reasoning, ReasoningEffort, Request, ResponseFormat, Role,
    Tool, ToolChoice,
};
use serde_json::{Map, Value, json};

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

/// Parses a Chat Completions request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    let mut req = Request::default();
    let mut stream_options: Option<Map<String, Value>> = None;
    for (key, val) in obj {
        match key.as_str() {
            "model" => req.model = RequestError::model(&val)?,
            "messages" => {
                let Value::Array(list) = val else {
                    return Err(bad("messages must be an array"));
                };
                for (i, m) in list.into_iter().enumerate() {
                    req.messages
                        .push(parse_message(m).map_err(|e| bad(format!("messages[{i}]: {e}")))?);
                }
            }
            "tools" if all_function_tools(&val) => {
                for t in val.as_array().into_iter().flatten() {
                    let f = &t["function"];
                    req.tools.push(Tool {
                        name: str_of(f, "name").unwrap_or_default(),
                        description: str_of(f, "description"),
                        parameters: f
                            .get("parameters")
                            .cloned()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        strict: f.get("strict").and_then(Value::as_bool),
                        cache: None,
                    });
                }
            }
            "tool_choice" => match parse_tool_choice(&val) {
                Some(c) => req.tool_choice = Some(c),
                None => {
                    req.ext.openai.insert(key, val);
                }
            },
            "parallel_tool_calls" => req.parallel_tool_calls = val.as_bool(),
            "temperature" => req.sampling.temperature = val.as_f64(),
            "top_p" => req.sampling.top_p = val.as_f64(),
            "frequency_penalty" => req.sampling.frequency_penalty = val.as_f64(),
            "presence_penalty" => req.sampling.presence_penalty = val.as_f64(),
            "seed" => req.sampling.seed = val.as_i64(),
            "n" => req.sampling.candidates = val.as_u64(),
            "max_completion_tokens" => req.max_output_tokens = val.as_u64(),
            "max_tokens" => {
                req.max_output_tokens = req.max_output_tokens.or(val.as_u64());
            }
            "stop" => {
                req.stop = match val {
                    Value::String(s) => vec![s],
                    Value::Array(a) => a
                        .into_iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                }
            }
            "stream" => req.stream = val.as_bool().unwrap_or(false),
            "stream_options" => stream_options = val.as_object().cloned(),
            "reasoning_effort" => match val.as_str().and_then(ReasoningEffort::from_name) {
                Some(e) => {
                    req.reasoning = Some(Reasoning {
                        effort: Some(e),
                        ..Reasoning::default()
                    })
                }
                None => {
                    req.ext.openai.insert(key, val);
                }
            },
            "response_format" => match parse_response_format(&val) {
                Some(f) => req.response_format = Some(f),
                None => {
                    req.ext.openai.insert(key, val);
                }
            },
            "user" => req.user = val.as_str().map(str::to_string),
            _ => {
                req.ext.openai.insert(key, val);
            }
        }
    }
    if let Some(mut o) = stream_options {
        req.stream_usage = o
            .remove("include_usage")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if !o.is_empty() {
            req.ext
                .openai
                .insert("stream_options".into(), Value::Object(o));
        }
    }
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    Ok(req)
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn all_function_tools(v: &Value) -> bool {
    v.as_array().is_some_and(|a| {
        a.iter()
            .all(|t| t["type"] == "function" && t["function"].is_object())
    })
}

fn parse_tool_choice(v: &Value) -> Option<ToolChoice> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => None,
        },
        Value::Object(o)
            if o.get("type").and_then(Value::as_str) == Some("function") && o.len() == 2 =>
        {
            o.get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|n| ToolChoice::Tool(n.to_string()))
        }
        _ => None,
    }
}

fn parse_response_format(v: &Value) -> Option<ResponseFormat> {
    match v.get("type")?.as_str()? {
        "text" => Some(ResponseFormat::Text),
        "json_object" => Some(ResponseFormat::JsonObject),
        "json_schema" => {
            let s = v.get("json_schema")?;
            Some(ResponseFormat::JsonSchema {
                name: str_of(s, "name"),
                description: str_of(s, "description"),
                schema: s.get("schema").cloned().unwrap_or(Value::Null),
                strict: s.get("strict").and_then(Value::as_bool),
            })
        }
        _ => None,
    }
}

/// `data:<media type>;base64,<data>` -> (media type, data).
pub(crate) fn split_data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type.to_string(), data.to_string()))
}

fn parse_part(p: Value) -> Result<Block, String> {
    let kind = p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match kind.as_str() {
        "text" => Ok(Block::Text {
            text: str_of(&p, "text").unwrap_or_default(),
            citations: Vec::new(),
            cache: None,
        }),
        "image_url" => {
            let img = &p["image_url"];
            let url = str_of(img, "url").ok_or("image_url.url is missing")?;
            let source = match split_data_url(&url) {
                Some((media_type, data)) => Media::Base64 { media_type, data },
                None => Media::Url {
                    url,
                    media_type: None,
                },
            };
            Ok(Block::Image {
                source,
                detail: str_of(img, "detail"),
                cache: None,
            })
        }
        "input_audio" => {
            let a = &p["input_audio"];
            let format = str_of(a, "format").unwrap_or_else(|| "wav".into());
            Ok(Block::Audio {
                source: Media::Base64 {
                    media_type: format!("audio/{format}"),
                    data: str_of(a, "data").unwrap_or_default(),
                },
            })
        }
        "file" => {
            let f = &p["file"];
            let source = if let Some(id) = str_of(f, "file_id") {
                Media::FileId { id }
            } else {
                let data = str_of(f, "file_data").ok_or("file needs file_id or file_data")?;
                match split_data_url(&data) {
                    Some((media_type, data)) => Media::Base64 { media_type, data },
                    None => Media::Base64 {
                        media_type: "application/pdf".into(),
                        data,
                    },
                }
            };
            Ok(Block::Document {
                source,
                title: str_of(f, "filename"),
                context: None,
                citations: false,
                cache: None,
            })
        }
        "refusal" => Ok(Block::Refusal {
            text: str_of(&p, "refusal").unwrap_or_default(),
        }),
        _ => Ok(Block::Raw {
            protocol: Protocol::OpenAiChat,
            value: p,
        }),
    }
}

fn parse_content(v: Value) -> Result<Vec<Block>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(vec![Block::Text {
            text,
            citations: Vec::new(),
            cache: None,
        }]),
        Value::Array(parts) => parts.into_iter().map(parse_part).collect(),
        _ => Err("content must be a string or an array of parts".into()),
    }
}

fn parse_message(m: Value) -> Result<Message, String> {
    let Value::Object(mut o) = m else {
        return Err("a message must be an object".into());
    };
    let role = match o.remove("role").as_ref().and_then(Value::as_str) {
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => return Err(format!("unsupported role `{other}`")),
        None => return Err("role is missing".into()),
    };
    let name = o
        .remove("name")
        .and_then(|n| n.as_str().map(str::to_string));
    let mut content = parse_content(o.remove("content").unwrap_or(Value::Null))?;
    if let Some(r) = o
        .remove("refusal")
        .and_then(|r| r.as_str().map(str::to_string))
    {
        content.push(Block::Refusal { text: r });
    }
    if let Some(calls) = o.remove("tool_calls") {
        for c in calls.as_array().into_iter().flatten() {
            let f = &c["function"];
            let raw = str_of(f, "arguments").unwrap_or_default();
            let input = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
            content.push(Block::ToolUse {
                id: str_of(c, "id").unwrap_or_default(),
                name: str_of(f, "name").unwrap_or_default(),
                input,
                thought_signature: None,
            });
        }
    }
    if role == Role::Tool {
        if content.iter().any(|b| !matches!(b, Block::Text { .. })) {
            return Err("a tool message's content parts must be text".into());
        }
        let id = o
            .remove("tool_call_id")
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or("tool message needs tool_call_id")?;
        content = vec![Block::ToolResult {
            tool_use_id: id,
            name: None,
            content,
            is_error: false,
            cache: None,
        }];
    }
    let ext = crate::ir::Extensions {
        openai: o,
        ..Default::default()
    };
    Ok(Message {
        role,
        content,
        name,
        ext,
    })
}

/// Writes the IR as a Chat Completions request body. Everything the IR holds that this
/// protocol cannot carry is named in `loss`.
pub fn write_request(req: &Request, loss: &mut LossReport) -> Vec<u8> {
    let mut o = Map::new();
    o.insert("model".into(), json!(req.model));
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        let text = blocks_text(&req.system, "system", loss);
        messages.push(json!({"role": "system", "content": text}));
    }
    for (i, m) in req.messages.iter().enumerate() {
        messages.extend(write_message(m, i, loss));
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
                let mut f = Map::new();
                f.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), t.parameters.clone());
                if let Some(s) = t.strict {
                    f.insert("strict".into(), json!(s));
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        o.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = &req.tool_choice {
        let v = match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(n) => json!({"type": "function", "function": {"name": n}}),
        };
        o.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls {
        o.insert("parallel_tool_calls".into(), json!(p));
    }
    let s = &req.sampling;
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put("temperature", s.temperature.map(|x| json!(x)));
    put("top_p", s.top_p.map(|x| json!(x)));
    put("frequency_penalty", s.frequency_penalty.map(|x| json!(x)));
    put("presence_penalty", s.presence_penalty.map(|x| json!(x)));
    put("seed", s.seed.map(|x| json!(x)));
    put("n", s.candidates.map(|x| json!(x)));
    put(
        "max_completion_tokens",
        req.max_output_tokens.map(|x| json!(x)),
    );
    put("stop", (!req.stop.is_empty()).then(|| json!(req.stop)));
    put("user", req.user.as_ref().map(|u| json!(u)));
    if s.top_k.is_some() {
        loss.drop_field("top_k");
    }
    if req.stream {
        o.insert("stream".into(), json!(true));
    }
    let mut stream_options = req
        .ext
        .openai
        .get("stream_options")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if req.stream_usage {
        stream_options.insert("include_usage".into(), json!(true));
    }
    if !stream_options.is_empty() {
        o.insert("stream_options".into(), Value::Object(stream_options));
    }
    if let Some(r) = &req.reasoning {
        match r.effort {
            Some(e) => {
                o.insert("reasoning_effort".into(), json!(e.as_str()));
            }
            None if r.budget_tokens.is_some() => loss.drop_field("reasoning.budget_tokens"),
            None => {}
        }
        if r.include_thoughts.is_some() {
            loss.drop_field("reasoning.include_thoughts");
        }
    }
    if let Some(f) = &req.response_format {
        let v = match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => {
                let mut js = Map::new();
                js.insert(
                    "name".into(),
                    json!(name.clone().unwrap_or_else(|| "response".into())),
                );
                if let Some(d) = description {
                    js.insert("description".into(), json!(d));
                }
                js.insert("schema".into(), schema.clone());
                if let Some(s) = strict {
                    js.insert("strict".into(), json!(s));
                }
                json!({"type": "json_schema", "json_schema": js})
            }
        };
        o.insert("response_format".into(), v);
    }
    if !req.safety.is_empty() {
        loss.drop_field("safety_settings");
    }
    for (k, v) in &req.ext.openai {
        if k != "stream_options" {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::OpenAiChat) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

/// Text of blocks for places that take only text (system prompts from other protocols).
fn blocks_text(blocks: &[Block], path: &str, loss: &mut LossReport) -> String {
    let mut out = String::new();
    for (i, b) in blocks.iter().enumerate() {
        match b {
            Block::Text { text, cache, .. } => {
                if cache.is_some() {
                    loss.drop_field(format!("{path}[{i}].cache_control"));
                }
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
            _ => loss.drop_field(format!("{path}[{i}]")),
        }
    }
    out
}

pub(crate) fn data_url(media_type: &str, data: &str) -> String {
    format!("data:{media_type};base64,{data}")
}

fn write_part(b: &Block, path: &str, loss: &mut LossReport) -> Option<Value> {
    match b {
        Block::Text {
            text,
            citations,
            cache,
        } => {
            if !citations.is_empty() {
                loss.drop_field(format!("{path}.citations"));
            }
            if cache.is_some() {
                loss.drop_field(format!("{path}.cache_control"));
            }
            Some(json!({"type": "text", "text": text}))
        }
        Block::Image {
            source,
            detail,
            cache,
        } => {
            if cache.is_some() {
                loss.drop_field(format!("{path}.cache_control"));
            }
            let url = match source {
                Media::Base64 { media_type, data } => data_url(media_type, data),
                Media::Url { url, .. } => url.clone(),
                Media::FileId { .. } | Media::Text { .. } => {
                    loss.drop_field(path.to_string());
                    return None;
                }
            };
            let mut img = Map::new();
            img.insert("url".into(), json!(url));
            if let Some(d) = detail {
                img.insert("detail".into(), json!(d));
            }
            Some(json!({"type": "image_url", "image_url": img}))
        }
        Block::Audio {
            source: Media::Base64 { media_type, data },
        } => {
            let format = media_type.strip_prefix("audio/").unwrap_or(media_type);
            Some(json!({"type": "input_audio", "input_audio": {"data": data, "format": format}}))
        }
        Block::Document {
            source,
            title,
            context,
            citations,
            cache,
        } => {
            loss.drop_present(
                path,
                &crate::ir::document_extras(context, *citations, cache),
            );
            if let Media::Text { text, .. } = source {
                // A plain-text document is carried as a text part; its title has no place.
                loss.drop_present(path, &[(title.is_some(), "title")]);
                return Some(json!({"type": "text", "text": text}));
            }
            let mut f = Map::new();
            match source {
                Media::FileId { id } => {
                    f.insert("file_id".into(), json!(id));
                }
                Media::Base64 { media_type, data } => {
                    f.insert("file_data".into(), json!(data_url(media_type, data)));
                }
                Media::Url { .. } | Media::Text { .. } => {
                    loss.drop_field(path.to_string());
                    return None;
                }
            }
            if let Some(t) = title {
                f.insert("filename".into(), json!(t));
            }
            Some(json!({"type": "file", "file": f}))
        }
        Block::Refusal { text } => Some(json!({"type": "refusal", "refusal": text})),
        Block::Raw {
            protocol: Protocol::OpenAiChat,
            value,
        } => Some(value.clone()),
        _ => {
            loss.drop_field(path.to_string());
            None
        }
    }
}

fn write_message(m: &Message, i: usize, loss: &mut LossReport) -> Vec<Value> {
    let path = format!("messages[{i}]");
    let role = match m.role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut refusal = None;
    for (j, b) in m.content.iter().enumerate() {
        let bpath = format!("{path}.content[{j}]");
        match b {
            Block::ToolUse {
                id,
                name,
                input,
                thought_signature,
            } => {
                tool_calls.push(super::tool_call_json(
                    id,
                    name,
                    input,
                    thought_signature,
                    &bpath,
                    loss,
                ));
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
                cache,
                ..
            } => {
                loss.drop_present(
                    &bpath,
                    &[(*is_error, "is_error"), (cache.is_some(), "cache_control")],
                );
                // A tool message holds text only: other parts of a result (an image a tool
                // returned through another protocol) are reported, not sent.
                let path = format!("{bpath}.content");
                let value = json!(blocks_text(content, &path, loss));
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": value}));
            }
            Block::Refusal { text } if m.role == Role::Assistant => refusal = Some(text.clone()),
            Block::Thinking { .. } | Block::RedactedThinking { .. } => loss.drop_field(bpath),
            other => parts.extend(write_part(other, &bpath, loss)),
        }
    }
    if m.role == Role::Tool {
        // The message's own fields ride on the (first) tool message written for it.
        if let Some(Value::Object(first)) = out.first_mut() {
            if let Some(n) = &m.name {
                first.insert("name".into(), json!(n));
            }
            for (k, v) in &m.ext.openai {
                first.insert(k.clone(), v.clone());
            }
        }
        for f in m.ext.foreign_fields(Protocol::OpenAiChat) {
            loss.drop_field(format!("{path}.{f}"));
        }
        return out;
    }
    let only_tool_results = m.role == Role::User && parts.is_empty() && !out.is_empty();
    let mut o = Map::new();
    o.insert("role".into(), json!(role));
    let content = match parts.as_slice() {
        [] if !tool_calls.is_empty() || refusal.is_some() => Value::Null,
        [] => json!(""),
        [one] if one["type"] == "text" => one["text"].clone(),
        _ => Value::Array(parts),
    };
    o.insert("content".into(), content);
    if let Some(n) = &m.name {
        o.insert("name".into(), json!(n));
    }
    if let Some(r) = refusal {
        o.insert("refusal".into(), json!(r));
    }
    if !tool_calls.is_empty() {
        o.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    for (k, v) in &m.ext.openai {
        o.insert(k.clone(), v.clone());
    }
    for f in m.ext.foreign_fields(Protocol::OpenAiChat) {
        loss.drop_field(format!("{path}.{f}"));
    }
    // Tool results (from protocols that carry them in user turns) go first, as OpenAI wants
    // them right after the assistant's tool calls; a user turn that held nothing else is not
    // written as an empty message.
    if !only_tool_results {
        out.push(Value::Object(o));
    }
    out
}
