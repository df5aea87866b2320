//! Gemini `generateContent` request <-> IR.
//!
//! ```text
//!   contents[{role, parts}]        messages (user | model -> Assistant)
//!   systemInstruction{parts}       system
//!   tools[].functionDeclarations   tools (schemas as JSON Schema); other tools -> ext.gemini.tools
//!   toolConfig.functionCallingConfig  tool_choice (AUTO | NONE | ANY | ANY + one name)
//!   safetySettings                 safety
//!   generationConfig               sampling, max_output_tokens, stop, response_format,
//!                                  reasoning (thinkingConfig); the rest -> ext.gemini
//!   cachedContent, labels, ...     ext.gemini
//! ```
//!
//! Normal forms on the way out: camelCase field names (snake_case is read). Function
//! declarations from another protocol come first in `tools`, then the other tools; a body
//! parsed here keeps its own layout (`_tools` hint). A schema from another protocol goes out as
//! upper-case `parameters` / `responseSchema` when the Gemini subset can say it all, else as
//! `parametersJsonSchema` / `responseJsonSchema` (see `schema.rs`). An effort goes out as
//! `thinkingLevel`, a budget as `thinkingBudget` (`0` = off, `-1` = dynamic).

use super::MINTED_ID_PREFIX;
use super::keys::{normalize, object};
use super::parts::{Ids, PartHints, WriteCtx, parse_parts, write_parts};
use super::schema::{fits_gemini, to_gemini_schema, to_json_schema};
use crate::Protocol;
use crate::ir::{
    Block, Extensions, LossReport, Message, Reasoning, ReasoningEffort, Request, ResponseFormat,
    Role, SafetySetting, Tool, ToolChoice,
};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

/// The ext slots this codec fills under names a body does not use itself.
const SLOTS: &[&str] = &["functionDeclarations[]"];

/// Parses a `generateContent` body into the IR; `model` comes from the URL path (a leading
/// `models/` is stripped).
pub fn parse_request(body: &[u8], model: &str) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    let mut req = Request {
        model: model.strip_prefix("models/").unwrap_or(model).to_string(),
        ..Request::default()
    };
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    let Value::Object(obj) = normalize(Value::Object(obj)) else {
        return Err(bad("the request body must be a JSON object"));
    };
    crate::ir::reserved_fields(&obj, SLOTS, "the request body").map_err(bad)?;
    if !obj.contains_key("contents") {
        req.ext.gemini.insert("_noContents".into(), json!(true));
    }
    let mut ids = Ids::default();
    for (key, val) in obj {
        match key.as_str() {
            "contents" => parse_contents(val, &mut ids, &mut req)?,
            "systemInstruction" => {
                let mut c = object(val, "systemInstruction").map_err(bad)?;
                if let Some(role) = c.remove("role") {
                    req.ext.gemini.insert("_systemRole".into(), role);
                }
                let parts = match c.remove("parts") {
                    Some(Value::Array(p)) => p,
                    None => Vec::new(),
                    Some(_) => return Err(bad("systemInstruction.parts must be an array")),
                };
                req.ext.gemini.insert("_system".into(), json!(true));
                if !c.is_empty() {
                    req.ext
                        .gemini
                        .insert("systemInstruction".into(), Value::Object(c));
                }
                let (blocks, hints) =
                    parse_parts(parts, &mut ids, &|_| String::new(), "systemInstruction")
                        .map_err(bad)?;
                req.system = blocks;
                if let Some(h) = hints.to_json() {
                    req.ext.gemini.insert("_systemHints".into(), h);
                }
            }
            "tools" => parse_tools(val, &mut req)?,
            "toolConfig" => parse_tool_config(val, &mut req)?,
            "safetySettings" => parse_safety(val, &mut req)?,
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

fn parse_contents(val: Value, ids: &mut Ids, req: &mut Request) -> Result<(), RequestError> {
    let Value::Array(list) = val else {
        return Err(bad("contents must be an array"));
    };
    for (i, c) in list.into_iter().enumerate() {
        let path = format!("contents[{i}]");
        let mut c = object(c, &path).map_err(bad)?;
        crate::ir::reserved_fields(&c, &[], &path).map_err(bad)?;
        let mut ext = Map::new();
        let role = match c.remove("role") {
            Some(Value::String(r)) if r == "model" => Role::Assistant,
            Some(Value::String(r)) if r == "user" => Role::User,
            None => {
                ext.insert("_noRole".into(), json!(true));
                Role::User
            }
            Some(other) => {
                return Err(bad(format!(
                    "{path}.role must be user or model, not {other}"
                )));
            }
        };
        if role == Role::Assistant {
            ids.new_turn();
        }
        let parts = match c.remove("parts") {
            Some(Value::Array(p)) => p,
            None => Vec::new(),
            Some(_) => return Err(bad(format!("{path}.parts must be an array"))),
        };
        let mint = |k: usize| format!("{MINTED_ID_PREFIX}{i}_{k}");
        let (content, hints) = parse_parts(parts, ids, &mint, &path).map_err(bad)?;
        if let Some(h) = hints.to_json() {
            ext.insert("_partHints".into(), h);
        }
        ext.extend(c);
        req.messages.push(Message {
            role,
            content,
            name: None,
            ext: Extensions {
                gemini: ext,
                ..Extensions::default()
            },
        });
    }
    Ok(())
}

/// A declaration's schema spelling, for the `_tools` hint: `parametersJsonSchema`, `none`, or
/// `parameters` (with the original when the JSON Schema does not convert back to it exactly).
fn spelling_of(d: &mut Map<String, Value>, name: &str) -> (Value, Value) {
    if let Some(p) = d.remove("parametersJsonSchema") {
        (json!("parametersJsonSchema"), p)
    } else if let Some(p) = d.remove("parameters") {
        let j = to_json_schema(&p);
        let mut scratch = LossReport::default();
        if to_gemini_schema(&j, name, &mut scratch) == p && scratch.is_empty() {
            (json!("parameters"), j)
        } else {
            (json!({"parameters": p}), j)
        }
    } else {
        (json!("none"), json!({"type": "object", "properties": {}}))
    }
}

fn parse_tools(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let Value::Array(list) = val else {
        return Err(bad("tools must be an array"));
    };
    let mut others = Vec::new();
    let mut layout = Vec::new();
    let mut decl_extra = Map::new();
    for (i, t) in list.into_iter().enumerate() {
        let mut t = object(t, &format!("tools[{i}]")).map_err(bad)?;
        let mut spellings = Vec::new();
        if let Some(decls) = t.remove("functionDeclarations") {
            let Value::Array(decls) = decls else {
                return Err(bad(format!(
                    "tools[{i}].functionDeclarations must be an array"
                )));
            };
            for (j, d) in decls.into_iter().enumerate() {
                let path = format!("tools[{i}].functionDeclarations[{j}]");
                let mut d = object(d, &path).map_err(bad)?;
                let Some(Value::String(name)) = d.remove("name") else {
                    return Err(bad(format!("{path} needs a name (a string)")));
                };
                let description = match d.remove("description") {
                    Some(Value::String(s)) => Some(s),
                    None => None,
                    Some(_) => return Err(bad(format!("{path}.description must be a string"))),
                };
                let (spelling, parameters) = spelling_of(&mut d, &name);
                spellings.push(spelling);
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
        layout.push(json!({"decls": spellings, "other": !t.is_empty()}));
        if !t.is_empty() {
            others.push(Value::Object(t));
        }
    }
    if !others.is_empty() {
        req.ext.gemini.insert("tools".into(), Value::Array(others));
    }
    req.ext.gemini.insert("_tools".into(), Value::Array(layout));
    if !decl_extra.is_empty() {
        req.ext
            .gemini
            .insert("functionDeclarations[]".into(), Value::Object(decl_extra));
    }
    Ok(())
}

fn parse_tool_config(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let mut tc = object(val, "toolConfig").map_err(bad)?;
    if let Some(Value::Object(f)) = tc.get("functionCallingConfig") {
        let mode = f.get("mode").and_then(Value::as_str);
        let names = f.get("allowedFunctionNames").and_then(Value::as_array);
        let choice = match (mode, names.map(Vec::as_slice), f.len()) {
            (Some("AUTO"), None, 1) => Some(ToolChoice::Auto),
            (Some("NONE"), None, 1) => Some(ToolChoice::None),
            (Some("ANY"), None, 1) => Some(ToolChoice::Required),
            (Some("ANY"), Some([Value::String(n)]), 2) => Some(ToolChoice::Tool(n.clone())),
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
    Ok(())
}

fn parse_safety(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let Value::Array(list) = &val else {
        return Err(bad("safetySettings must be an array"));
    };
    let mut typed = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let path = format!("safetySettings[{i}]");
        let Some(o) = s.as_object() else {
            return Err(bad(format!("{path} must be an object")));
        };
        let get = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(category), Some(threshold)) = (get("category"), get("threshold")) else {
            return Err(bad(format!(
                "{path} needs a category and a threshold (strings)"
            )));
        };
        let plain = o.iter().all(|(k, v)| {
            matches!(k.as_str(), "category" | "threshold") || (k == "method" && v.is_string())
        });
        if !plain {
            // A field the IR has no place for: the whole list stays Gemini's.
            req.ext.gemini.insert("safetySettings".into(), val);
            return Ok(());
        }
        typed.push(SafetySetting {
            category,
            threshold,
            method: get("method"),
        });
    }
    req.safety = typed;
    Ok(())
}

/// Takes `key` when it has the type `get` reads; leaves a `null` in place (for ext); any other
/// value is an error.
fn typed<T>(
    g: &mut Map<String, Value>,
    key: &str,
    what: &str,
    get: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, RequestError> {
    match g.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match get(v) {
            Some(x) => {
                g.remove(key);
                Ok(Some(x))
            }
            None => Err(bad(format!("generationConfig.{key} must be {what}"))),
        },
    }
}

fn parse_generation(mut g: Map<String, Value>, req: &mut Request) -> Result<(), RequestError> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let count = "a non-negative integer";
    req.stop = typed(&mut g, "stopSequences", "an array of strings", strings)?.unwrap_or_default();
    req.max_output_tokens = typed(&mut g, "maxOutputTokens", count, Value::as_u64)?;
    let s = &mut req.sampling;
    s.temperature = typed(&mut g, "temperature", "a number", Value::as_f64)?;
    s.top_p = typed(&mut g, "topP", "a number", Value::as_f64)?;
    s.top_k = typed(&mut g, "topK", count, Value::as_u64)?;
    s.seed = typed(&mut g, "seed", "an integer", Value::as_i64)?;
    s.presence_penalty = typed(&mut g, "presencePenalty", "a number", Value::as_f64)?;
    s.frequency_penalty = typed(&mut g, "frequencyPenalty", "a number", Value::as_f64)?;
    s.candidates = typed(&mut g, "candidateCount", count, Value::as_u64)?;

    let mime = g.get("responseMimeType").and_then(Value::as_str);
    let schema = g.contains_key("responseSchema");
    let json_schema = g.contains_key("responseJsonSchema");
    let format = match (mime, schema, json_schema) {
        (Some("application/json"), true, false) => {
            let s = g.remove("responseSchema").unwrap_or_default();
            let j = to_json_schema(&s);
            let mut scratch = LossReport::default();
            let hint = if to_gemini_schema(&j, "", &mut scratch) == s && scratch.is_empty() {
                json!("responseSchema")
            } else {
                json!({"responseSchema": s})
            };
            req.ext.gemini.insert("_responseSchema".into(), hint);
            Some(json_format(j))
        }
        (Some("application/json"), false, true) => {
            let s = g.remove("responseJsonSchema").unwrap_or_default();
            req.ext
                .gemini
                .insert("_responseSchema".into(), json!("responseJsonSchema"));
            Some(json_format(s))
        }
        (Some("application/json"), false, false) => Some(ResponseFormat::JsonObject),
        (Some("text/plain"), false, false) => Some(ResponseFormat::Text),
        _ => None,
    };
    if format.is_some() {
        g.remove("responseMimeType");
        req.response_format = format;
    }
    if let Some(Value::Object(mut t)) = g.remove("thinkingConfig").and_then(|t| match t {
        Value::Object(_) => Some(t),
        other => {
            g.insert("thinkingConfig".into(), other);
            None
        }
    }) {
        let mut r = Reasoning::default();
        match t.get("includeThoughts") {
            Some(Value::Bool(b)) => {
                r.include_thoughts = Some(*b);
                t.remove("includeThoughts");
            }
            Some(_) => {}
            None => {
                req.ext
                    .gemini
                    .insert("_noIncludeThoughts".into(), json!(true));
            }
        }
        let budget = t.get("thinkingBudget").and_then(Value::as_i64);
        match budget {
            Some(0) => r.enabled = Some(false),
            Some(-1) => {
                r.enabled = Some(true);
                req.ext.gemini.insert("_dynamicBudget".into(), json!(true));
            }
            Some(n) if n > 0 => r.budget_tokens = Some(n),
            _ => {}
        }
        if r.enabled.is_some() || r.budget_tokens.is_some() {
            t.remove("thinkingBudget");
        }
        if let Some(level) = t.get("thinkingLevel").and_then(Value::as_str)
            && let Some(e) = ReasoningEffort::from_name(level)
        {
            if level != e.as_str() {
                req.ext.gemini.insert("_thinkingLevel".into(), json!(level));
            }
            r.effort = Some(e);
            t.remove("thinkingLevel");
        }
        if r != Reasoning::default() {
            req.reasoning = Some(r);
        }
        if !t.is_empty() || req.reasoning.is_none() {
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

fn json_format(schema: Value) -> ResponseFormat {
    ResponseFormat::JsonSchema {
        name: None,
        description: None,
        schema,
        strict: None,
    }
}

/// Writes the IR as a `generateContent` body (the model goes in the URL, which the caller
/// builds). What Gemini cannot carry is named in `loss`.
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
        if m.name.is_some() {
            loss.drop_field(format!("{path}.name"));
        }
        for f in m.ext.foreign_fields(Protocol::Gemini) {
            loss.drop_field(format!("{path}.{f}"));
        }
        let role = match m.role {
            Role::System | Role::Developer => {
                // Gemini has one system instruction: inner system turns join it.
                system.extend(m.content.iter().cloned());
                continue;
            }
            Role::Assistant => "model",
            Role::User | Role::Tool => "user",
        };
        let cx = WriteCtx {
            path: &format!("{path}.content"),
            name_of: &name_of,
            hints: PartHints::from_json(m.ext.gemini.get("_partHints")),
            response: false,
        };
        let parts = write_parts(&m.content, &cx, loss);
        // Answers to parallel calls (OpenAI sends one `tool` message each) go back in one turn.
        let is_tool = m.role == Role::Tool;
        if is_tool
            && last_tool
            && let Some(Value::Array(prev)) = contents.last_mut().and_then(|c| c.get_mut("parts"))
        {
            prev.extend(parts);
            continue;
        }
        last_tool = is_tool;
        let mut c = Map::new();
        if !m.ext.gemini.contains_key("_noRole") {
            c.insert("role".into(), json!(role));
        }
        c.insert("parts".into(), Value::Array(parts));
        for (k, v) in m.ext.gemini.iter().filter(|(k, _)| !k.starts_with('_')) {
            c.insert(k.clone(), v.clone());
        }
        contents.push(Value::Object(c));
    }
    if !contents.is_empty() || !ext.contains_key("_noContents") {
        o.insert("contents".into(), Value::Array(contents));
    }
    let si_extra = ext.get("systemInstruction").and_then(Value::as_object);
    if !system.is_empty() || ext.contains_key("_system") || si_extra.is_some() {
        let cx = WriteCtx {
            path: "system",
            name_of: &name_of,
            hints: PartHints::from_json(ext.get("_systemHints")),
            response: false,
        };
        let mut si = Map::new();
        if let Some(role) = ext.get("_systemRole") {
            si.insert("role".into(), role.clone());
        }
        si.insert(
            "parts".into(),
            Value::Array(write_parts(&system, &cx, loss)),
        );
        if let Some(extra) = si_extra {
            si.extend(extra.clone());
        }
        o.insert("systemInstruction".into(), Value::Object(si));
    }
    if let Some(tools) = write_tools(req, loss) {
        o.insert("tools".into(), tools);
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
    let g = write_generation(req, loss);
    if !g.is_empty() {
        o.insert("generationConfig".into(), Value::Object(g));
    }
    if req.user.is_some() {
        loss.drop_field("user");
    }
    for (k, v) in ext {
        let consumed = matches!(
            k.as_str(),
            "tools"
                | "toolConfig"
                | "generationConfig"
                | "functionDeclarations[]"
                | "systemInstruction"
        );
        if !consumed && !k.starts_with('_') && !o.contains_key(k) {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::Gemini) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

/// One function declaration. `spelling` is the `_tools` hint for it, when there is one.
fn declaration(t: &Tool, i: usize, spelling: Option<&Value>, loss: &mut LossReport) -> Value {
    loss.drop_present(
        &format!("tools[{i}]"),
        &[
            (t.strict.is_some(), "strict"),
            (t.cache.is_some(), "cache_control"),
        ],
    );
    let mut d = Map::new();
    d.insert("name".into(), json!(t.name));
    if let Some(desc) = &t.description {
        d.insert("description".into(), json!(desc));
    }
    let original = spelling
        .and_then(|s| s.get("parameters"))
        .filter(|p| to_json_schema(p) == t.parameters);
    let empty = json!({"type": "object", "properties": {}});
    match spelling.and_then(Value::as_str) {
        _ if original.is_some() => {
            d.insert("parameters".into(), original.cloned().unwrap_or_default());
        }
        Some("none") if t.parameters == empty => {}
        Some("parametersJsonSchema") => {
            d.insert("parametersJsonSchema".into(), t.parameters.clone());
        }
        Some("parameters") => {
            let path = format!("tools[{i}].parameters");
            d.insert(
                "parameters".into(),
                to_gemini_schema(&t.parameters, &path, loss),
            );
        }
        _ if fits_gemini(&t.parameters) => {
            let path = format!("tools[{i}].parameters");
            d.insert(
                "parameters".into(),
                to_gemini_schema(&t.parameters, &path, loss),
            );
        }
        _ => {
            d.insert("parametersJsonSchema".into(), t.parameters.clone());
        }
    }
    Value::Object(d)
}

/// `tools`: in the layout the body had (`_tools`), when the IR still matches it; else the
/// function declarations in one entry, then the other tools.
fn write_tools(req: &Request, loss: &mut LossReport) -> Option<Value> {
    let ext = &req.ext.gemini;
    let extra = ext.get("functionDeclarations[]").and_then(Value::as_object);
    let others: Vec<Value> = match ext.get("tools") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let layout: Vec<(Vec<Value>, bool)> = ext
        .get("_tools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let decls = e.get("decls").and_then(Value::as_array).cloned();
                    (
                        decls.unwrap_or_default(),
                        e.get("other") == Some(&json!(true)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let fits = layout.iter().map(|(d, _)| d.len()).sum::<usize>() == req.tools.len()
        && layout.iter().filter(|(_, o)| *o).count() == others.len()
        && !layout.is_empty();
    let mut decls = req.tools.iter().enumerate();
    let decl = |i: usize, t: &Tool, spelling: Option<&Value>, loss: &mut LossReport| {
        let mut d = declaration(t, i, spelling, loss);
        if let (Some(Value::Object(x)), Value::Object(d)) =
            (extra.and_then(|x| x.get(&t.name)), &mut d)
        {
            d.extend(x.clone());
        }
        d
    };
    let mut tools = Vec::new();
    if fits {
        let mut others = others.into_iter();
        for (spellings, other) in layout {
            let mut entry = Map::new();
            if !spellings.is_empty() {
                let list: Vec<Value> = spellings
                    .iter()
                    .filter_map(|s| decls.next().map(|(i, t)| decl(i, t, Some(s), loss)))
                    .collect();
                entry.insert("functionDeclarations".into(), Value::Array(list));
            }
            if other && let Some(Value::Object(o)) = others.next() {
                entry.extend(o);
            }
            tools.push(Value::Object(entry));
        }
    } else {
        let list: Vec<Value> = decls.map(|(i, t)| decl(i, t, None, loss)).collect();
        if !list.is_empty() {
            tools.push(json!({"functionDeclarations": list}));
        }
        tools.extend(others);
    }
    (!tools.is_empty()).then_some(Value::Array(tools))
}

fn write_generation(req: &Request, loss: &mut LossReport) -> Map<String, Value> {
    let ext = &req.ext.gemini;
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
            name,
            description,
            strict,
        }) => {
            loss.drop_present(
                "response_format",
                &[
                    (name.is_some(), "name"),
                    (description.is_some(), "description"),
                    (strict.is_some(), "strict"),
                ],
            );
            g.insert("responseMimeType".into(), json!("application/json"));
            let hint = ext.get("_responseSchema");
            let original = hint
                .and_then(|h| h.get("responseSchema"))
                .filter(|s| to_json_schema(s) == *schema);
            let (key, value) = match hint.and_then(Value::as_str) {
                _ if original.is_some() => {
                    ("responseSchema", original.cloned().unwrap_or_default())
                }
                Some("responseJsonSchema") => ("responseJsonSchema", schema.clone()),
                Some("responseSchema") => (
                    "responseSchema",
                    to_gemini_schema(schema, "response_format.schema", loss),
                ),
                _ if fits_gemini(schema) => (
                    "responseSchema",
                    to_gemini_schema(schema, "response_format.schema", loss),
                ),
                _ => ("responseJsonSchema", schema.clone()),
            };
            g.insert(key.into(), value);
        }
    }
    if let Some(r) = &req.reasoning {
        let mut t = g
            .get("thinkingConfig")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // A client that switches thinking on (Anthropic, Bedrock, Cohere) expects to see it:
        // Gemini returns thought summaries only when asked for.
        let asked = r.enabled == Some(true) && !ext.contains_key("_noIncludeThoughts");
        if let Some(b) = r.include_thoughts.or(asked.then_some(true)) {
            t.insert("includeThoughts".into(), json!(b));
        }
        let dynamic = ext.contains_key("_dynamicBudget") || r.effort.is_none();
        match (r.enabled, r.budget_tokens) {
            (Some(false), _) => {
                t.insert("thinkingBudget".into(), json!(0));
            }
            (_, Some(b)) => {
                t.insert("thinkingBudget".into(), json!(b));
            }
            (Some(true), None) if dynamic => {
                t.insert("thinkingBudget".into(), json!(-1));
            }
            _ => {}
        }
        if let Some(e) = r.effort {
            let level = match ext.get("_thinkingLevel").and_then(Value::as_str) {
                Some(l) if ReasoningEffort::from_name(l) == Some(e) => l.to_string(),
                _ => e.as_str().to_string(),
            };
            t.insert("thinkingLevel".into(), json!(level));
        }
        if !t.is_empty() {
            g.insert("thinkingConfig".into(), Value::Object(t));
        }
    }
    g
}
