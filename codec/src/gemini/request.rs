//! Gemini `generateContent` request <-> IR.
//!
//! Normal forms on the way out: camelCase field names; function declarations first in
//! `tools`, then the other tools; a schema from another protocol goes out as upper-case
//! `parameters` when the Gemini subset can say it all, else as `parametersJsonSchema`.

use super::MINTED_ID_PREFIX;
use super::keys::{camel_map, object, take};
use super::parts::{Ids, parse_part, write_parts};
use super::schema::{fits_gemini, to_gemini_schema, to_json_schema};
use crate::Protocol;
use crate::ir::{
    Block, LossReport, Message, Reasoning, ReasoningEffort, Request, ResponseFormat, Role,
    SafetySetting, Tool, ToolChoice,
};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

/// Parses a `generateContent` body into the IR; `model` comes from the URL.
pub fn parse_request(body: &[u8], model: &str) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    let mut req = Request {
        model: model.strip_prefix("models/").unwrap_or(model).to_string(),
        ..Request::default()
    };
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    let mut ids = Ids::default();
    let obj = camel_map(obj);
    crate::ir::reserved_fields(&obj, &["functionDeclarations[]"], "the request body")
        .map_err(bad)?;
    for (key, val) in obj {
        match key.as_str() {
            "contents" => {
                let Value::Array(list) = val else {
                    return Err(bad("contents must be an array"));
                };
                for (i, c) in list.into_iter().enumerate() {
                    let path = format!("contents[{i}]");
                    let mut c = object(c, &path).map_err(bad)?;
                    let role = match take(&mut c, "role") {
                        Some(Value::String(r)) if r == "model" => Role::Assistant,
                        Some(Value::String(r)) if r == "user" => Role::User,
                        None => Role::User,
                        other => {
                            return Err(bad(format!(
                                "{path}.role must be user or model, not {other:?}"
                            )));
                        }
                    };
                    if role == Role::Assistant {
                        ids.new_turn();
                    }
                    let parts = match take(&mut c, "parts") {
                        Some(Value::Array(p)) => p,
                        None => Vec::new(),
                        Some(_) => return Err(bad(format!("{path}.parts must be an array"))),
                    };
                    let mut content = Vec::new();
                    for (k, p) in parts.into_iter().enumerate() {
                        let mint = || format!("{MINTED_ID_PREFIX}{i}_{k}");
                        content.extend(
                            parse_part(p, &mut ids, mint)
                                .map_err(|e| bad(format!("{path}.parts[{k}]: {e}")))?,
                        );
                    }
                    let ext = crate::ir::Extensions {
                        gemini: c,
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
            "systemInstruction" => {
                let mut c = object(val, "systemInstruction").map_err(bad)?;
                if let Some(role) = take(&mut c, "role") {
                    req.ext.gemini.insert("_systemRole".into(), role);
                }
                if let Some(Value::Array(parts)) = take(&mut c, "parts") {
                    for (k, p) in parts.into_iter().enumerate() {
                        req.system.extend(
                            parse_part(p, &mut ids, String::new)
                                .map_err(|e| bad(format!("systemInstruction.parts[{k}]: {e}")))?,
                        );
                    }
                }
            }
            "tools" => parse_tools(val, &mut req)?,
            "toolConfig" => {
                let mut tc = object(val, "toolConfig").map_err(bad)?;
                if let Some(f) = tc.get("functionCallingConfig").cloned() {
                    let f = object(f, "toolConfig.functionCallingConfig").map_err(bad)?;
                    let mode = f.get("mode").and_then(Value::as_str);
                    let names = f.get("allowedFunctionNames").and_then(Value::as_array);
                    let choice = match (mode, names.map(Vec::as_slice), f.len()) {
                        (Some("AUTO"), None, 1) => Some(ToolChoice::Auto),
                        (Some("NONE"), None, 1) => Some(ToolChoice::None),
                        (Some("ANY"), None, 1) => Some(ToolChoice::Required),
                        (Some("ANY"), Some([Value::String(n)]), 2) => {
                            Some(ToolChoice::Tool(n.clone()))
                        }
                        _ => None,
                    };
                    if let Some(c) = choice {
                        req.tool_choice = Some(c);
                        tc.remove("functionCallingConfig");
                    }
                }
                if !tc.is_empty() {
                    req.ext
                        .gemini
                        .insert("toolConfig".into(), Value::Object(tc));
                }
            }
            "safetySettings" => {
                let Value::Array(list) = val else {
                    return Err(bad("safetySettings must be an array"));
                };
                for (i, s) in list.into_iter().enumerate() {
                    let s = object(s, &format!("safetySettings[{i}]")).map_err(bad)?;
                    let get = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
                    let (Some(category), Some(threshold)) = (get("category"), get("threshold"))
                    else {
                        return Err(bad(format!(
                            "safetySettings[{i}] needs a category and a threshold"
                        )));
                    };
                    req.safety.push(SafetySetting {
                        category,
                        threshold,
                        method: get("method"),
                    });
                }
            }
            "generationConfig" => {
                parse_generation(object(val, "generationConfig").map_err(bad)?, &mut req)?
            }
            _ => {
                req.ext.gemini.insert(key, val);
            }
        }
    }
    Ok(req)
}

fn parse_tools(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let Value::Array(list) = val else {
        return Err(bad("tools must be an array"));
    };
    let mut others = Vec::new();
    let mut json_schema_tools = Vec::new();
    let mut decl_extra = Map::new();
    for (i, t) in list.into_iter().enumerate() {
        let mut t = object(t, &format!("tools[{i}]")).map_err(bad)?;
        if let Some(decls) = t.remove("functionDeclarations") {
            let Value::Array(decls) = decls else {
                return Err(bad(format!(
                    "tools[{i}].functionDeclarations must be an array"
                )));
            };
            for (j, d) in decls.into_iter().enumerate() {
                let mut d =
                    object(d, &format!("tools[{i}].functionDeclarations[{j}]")).map_err(bad)?;
                let name = match d.remove("name") {
                    Some(Value::String(n)) => n,
                    _ => {
                        return Err(bad(format!(
                            "tools[{i}].functionDeclarations[{j}] needs a name"
                        )));
                    }
                };
                let description = match d.remove("description") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let parameters = if let Some(p) = d.remove("parametersJsonSchema") {
                    json_schema_tools.push(json!(name));
                    p
                } else if let Some(p) = d.remove("parameters") {
                    to_json_schema(&p)
                } else {
                    json_schema_tools.push(json!(name));
                    json!({"type": "object", "properties": {}})
                };
                if !d.is_empty() {
                    decl_extra.insert(name.clone(), Value::Object(d));
                }
                req.tools.push(Tool {
                    name,
                    description,
                    parameters,
                    strict: None,
                    cache: None,
                });
            }
        }
        if !t.is_empty() {
            others.push(Value::Object(t));
        }
    }
    if !others.is_empty() {
        req.ext.gemini.insert("tools".into(), Value::Array(others));
    }
    if !json_schema_tools.is_empty() {
        req.ext
            .gemini
            .insert("_jsonSchemaTools".into(), Value::Array(json_schema_tools));
    }
    if !decl_extra.is_empty() {
        req.ext
            .gemini
            .insert("functionDeclarations[]".into(), Value::Object(decl_extra));
    }
    Ok(())
}

fn parse_generation(mut g: Map<String, Value>, req: &mut Request) -> Result<(), RequestError> {
    let num = |g: &mut Map<String, Value>, k: &str| g.remove(k);
    if let Some(v) = num(&mut g, "stopSequences") {
        match v {
            Value::Array(a) => {
                req.stop = a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            }
            _ => return Err(bad("generationConfig.stopSequences must be an array")),
        }
    }
    req.max_output_tokens = num(&mut g, "maxOutputTokens").and_then(|v| v.as_u64());
    req.sampling.temperature = num(&mut g, "temperature").and_then(|v| v.as_f64());
    req.sampling.top_p = num(&mut g, "topP").and_then(|v| v.as_f64());
    req.sampling.top_k = num(&mut g, "topK").and_then(|v| v.as_u64());
    req.sampling.seed = num(&mut g, "seed").and_then(|v| v.as_i64());
    req.sampling.presence_penalty = num(&mut g, "presencePenalty").and_then(|v| v.as_f64());
    req.sampling.frequency_penalty = num(&mut g, "frequencyPenalty").and_then(|v| v.as_f64());
    req.sampling.candidates = num(&mut g, "candidateCount").and_then(|v| v.as_u64());

    let mime = g
        .get("responseMimeType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let has_schema = g.contains_key("responseSchema");
    let has_json_schema = g.contains_key("responseJsonSchema");
    match (mime.as_deref(), has_schema, has_json_schema) {
        (Some("application/json"), true, false) => {
            let s = g.remove("responseSchema").unwrap_or(Value::Null);
            req.response_format = Some(ResponseFormat::JsonSchema {
                name: None,
                description: None,
                schema: to_json_schema(&s),
                strict: None,
            });
            g.remove("responseMimeType");
        }
        (Some("application/json"), false, true) => {
            let s = g.remove("responseJsonSchema").unwrap_or(Value::Null);
            req.response_format = Some(ResponseFormat::JsonSchema {
                name: None,
                description: None,
                schema: s,
                strict: None,
            });
            req.ext
                .gemini
                .insert("_responseJsonSchema".into(), json!(true));
            g.remove("responseMimeType");
        }
        (Some("application/json"), false, false) => {
            req.response_format = Some(ResponseFormat::JsonObject);
            g.remove("responseMimeType");
        }
        (Some("text/plain"), false, false) => {
            req.response_format = Some(ResponseFormat::Text);
            g.remove("responseMimeType");
        }
        _ => {}
    }
    if let Some(t) = g.remove("thinkingConfig") {
        let mut t = object(t, "generationConfig.thinkingConfig").map_err(bad)?;
        let mut r = Reasoning::default();
        if let Some(Value::Bool(b)) = t.get("includeThoughts") {
            r.include_thoughts = Some(*b);
            t.remove("includeThoughts");
        }
        match t.get("thinkingBudget").and_then(Value::as_i64) {
            Some(0) => r.enabled = Some(false),
            Some(-1) => {
                r.enabled = Some(true);
                req.ext.gemini.insert("_dynamicBudget".into(), json!(true));
            }
            Some(n) => r.budget_tokens = Some(n),
            None => {}
        }
        if r.enabled.is_some() || r.budget_tokens.is_some() {
            t.remove("thinkingBudget");
        }
        if let Some(e) = t
            .get("thinkingLevel")
            .and_then(Value::as_str)
            .and_then(ReasoningEffort::from_name)
        {
            r.effort = Some(e);
            t.remove("thinkingLevel");
        }
        req.reasoning = Some(r);
        if !t.is_empty() {
            g.insert("thinkingConfig".into(), Value::Object(t));
        }
    }
    if !g.is_empty() {
        req.ext
            .gemini
            .insert("generationConfig".into(), Value::Object(g));
    }
    Ok(())
}

/// Writes the IR as a `generateContent` body (the model goes in the URL).
pub fn write_request(req: &Request, loss: &mut LossReport) -> Vec<u8> {
    let ext = &req.ext.gemini;
    let mut names: HashMap<&str, &str> = HashMap::new();
    for m in &req.messages {
        for b in &m.content {
            if let Block::ToolUse { id, name, .. } = b {
                names.insert(id.as_str(), name.as_str());
            }
        }
    }
    let name_of = |id: &str| names.get(id).map(|n| n.to_string());
    let mut o = Map::new();

    let mut system: Vec<Block> = req.system.clone();
    let mut contents: Vec<Value> = Vec::new();
    let mut last_tool = false;
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let role = match m.role {
            Role::System | Role::Developer => {
                system.extend(m.content.iter().cloned());
                continue;
            }
            Role::Assistant => "model",
            Role::User | Role::Tool => "user",
        };
        if m.name.is_some() {
            loss.drop_field(format!("{path}.name"));
        }
        for f in m.ext.foreign_fields(Protocol::Gemini) {
            loss.drop_field(format!("{path}.{f}"));
        }
        let parts = write_parts(&m.content, &format!("{path}.content"), loss, &name_of);
        // Answers to parallel calls go back in one turn.
        let is_tool = m.role == Role::Tool;
        if is_tool && last_tool {
            if let Some(Value::Array(prev)) = contents.last_mut().and_then(|c| c.get_mut("parts")) {
                prev.extend(parts);
                continue;
            }
        }
        last_tool = is_tool;
        let mut c = Map::new();
        c.insert("role".into(), json!(role));
        c.insert("parts".into(), Value::Array(parts));
        for (k, v) in &m.ext.gemini {
            c.insert(k.clone(), v.clone());
        }
        contents.push(Value::Object(c));
    }
    o.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        let parts = write_parts(&system, "system", loss, &name_of);
        let mut si = json!({"parts": parts});
        if let Some(role) = ext.get("_systemRole") {
            si["role"] = role.clone();
        }
        o.insert("systemInstruction".into(), si);
    }

    let json_tools: Vec<&str> = ext
        .get("_jsonSchemaTools")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let decl_extra = ext.get("functionDeclarations[]").and_then(Value::as_object);
    let mut tools: Vec<Value> = Vec::new();
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.strict.is_some() {
                    loss.drop_field(format!("tools[{i}].strict"));
                }
                if t.cache.is_some() {
                    loss.drop_field(format!("tools[{i}].cache_control"));
                }
                let mut d = Map::new();
                d.insert("name".into(), json!(t.name));
                if let Some(desc) = &t.description {
                    d.insert("description".into(), json!(desc));
                }
                let as_json = json_tools.contains(&t.name.as_str()) || !fits_gemini(&t.parameters);
                if as_json {
                    d.insert("parametersJsonSchema".into(), t.parameters.clone());
                } else {
                    let s =
                        to_gemini_schema(&t.parameters, &format!("tools[{i}].parameters"), loss);
                    d.insert("parameters".into(), s);
                }
                if let Some(Value::Object(extra)) = decl_extra.and_then(|x| x.get(&t.name)) {
                    d.extend(extra.clone());
                }
                Value::Object(d)
            })
            .collect();
        tools.push(json!({"functionDeclarations": decls}));
    }
    if let Some(Value::Array(others)) = ext.get("tools") {
        tools.extend(others.iter().cloned());
    }
    if !tools.is_empty() {
        o.insert("tools".into(), Value::Array(tools));
    }

    let mut tool_config = ext
        .get("toolConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(c) = &req.tool_choice {
        let f = match c {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
        };
        tool_config.insert("functionCallingConfig".into(), f);
    }
    if !tool_config.is_empty() {
        o.insert("toolConfig".into(), Value::Object(tool_config));
    }
    if req.parallel_tool_calls == Some(false) {
        loss.drop_field("parallel_tool_calls");
    }
    if !req.safety.is_empty() {
        let list: Vec<Value> = req
            .safety
            .iter()
            .map(|s| {
                let mut v = json!({"category": s.category, "threshold": s.threshold});
                if let Some(m) = &s.method {
                    v["method"] = json!(m);
                }
                v
            })
            .collect();
        o.insert("safetySettings".into(), Value::Array(list));
    }

    let mut g = ext
        .get("generationConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !req.stop.is_empty() {
        g.insert("stopSequences".into(), json!(req.stop));
    }
    let s = &req.sampling;
    crate::ir::insert_some(
        &mut g,
        [
            ("maxOutputTokens", req.max_output_tokens.map(|x| json!(x))),
            ("temperature", s.temperature.map(|x| json!(x))),
            ("topP", s.top_p.map(|x| json!(x))),
            ("topK", s.top_k.map(|x| json!(x))),
            ("seed", s.seed.map(|x| json!(x))),
            ("presencePenalty", s.presence_penalty.map(|x| json!(x))),
            ("frequencyPenalty", s.frequency_penalty.map(|x| json!(x))),
            ("candidateCount", s.candidates.map(|x| json!(x))),
        ],
    );
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            g.insert("responseMimeType".into(), json!("text/plain"));
        }
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema {
            schema,
            description,
            ..
        }) => {
            if description.is_some() {
                loss.drop_field("response_format.description");
            }
            g.insert("responseMimeType".into(), json!("application/json"));
            if ext.contains_key("_responseJsonSchema") || !fits_gemini(schema) {
                g.insert("responseJsonSchema".into(), schema.clone());
            } else {
                let s = to_gemini_schema(schema, "response_format.schema", loss);
                g.insert("responseSchema".into(), s);
            }
        }
    }
    if let Some(r) = &req.reasoning {
        let mut t = g
            .get("thinkingConfig")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(b) = r.include_thoughts {
            t.insert("includeThoughts".into(), json!(b));
        }
        match (r.enabled, r.budget_tokens, r.effort) {
            (Some(false), _, _) => {
                t.insert("thinkingBudget".into(), json!(0));
            }
            (_, Some(b), _) => {
                t.insert("thinkingBudget".into(), json!(b));
            }
            (_, None, Some(e)) => {
                t.insert("thinkingLevel".into(), json!(e.as_str()));
            }
            (Some(true), None, None) => {
                t.insert("thinkingBudget".into(), json!(-1));
            }
            (None, None, None) => {}
        }
        if !t.is_empty() {
            g.insert("thinkingConfig".into(), Value::Object(t));
        }
    }
    if !g.is_empty() {
        o.insert("generationConfig".into(), Value::Object(g));
    }
    if req.user.is_some() {
        loss.drop_field("user");
    }
    for (k, v) in ext {
        let consumed = matches!(
            k.as_str(),
            "tools" | "toolConfig" | "generationConfig" | "functionDeclarations[]"
        );
        if !consumed && !k.starts_with('_') {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::Gemini) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
