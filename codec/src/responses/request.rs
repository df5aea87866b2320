//! Responses request <-> IR.
//!
//! `input` items become the IR's turns (items.rs), `instructions` its system prompt; function
//! tools, tool choice, `text.format`, reasoning effort and summary, sampling and the output cap
//! are typed; everything else (`store`, `include`, `previous_response_id`, hosted tools,
//! `text.verbosity`, ...) stays in `ext.responses`. A field that is `null` means its default and
//! is remembered only to be written back.
//!
//! Normal forms on the way out: `output_text` parts always carry `annotations`. From another
//! protocol: a tool without `strict` is written `strict: false` (Responses would otherwise make
//! it strict); system blocks join into `instructions`; thinking another provider produced is not
//! sent (OpenAI cannot read it) but reported; a client that wants thinking gets
//! `reasoning.summary = "auto"` and `include: ["reasoning.encrypted_content"]` (with
//! `store: false`), since summaries and encrypted reasoning come back only when asked for.

use super::items::{Out, parse_item, write_items};
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

/// Items -> IR turns: consecutive items of one role merge; tool outputs stand alone. Each turn
/// remembers its items in `ext.responses._items`.
pub(super) fn messages_of(items: Vec<Value>, path: &str) -> Result<Vec<Message>, String> {
    let mut out: Vec<Message> = Vec::new();
    let mut last_alone = true;
    for (i, item) in items.into_iter().enumerate() {
        let p = parse_item(item, &format!("{path}[{i}]"), false)?;
        let merge = !p.alone && !last_alone && out.last().is_some_and(|m| m.role == p.role);
        last_alone = p.alone;
        if !merge {
            let mut ext = Extensions::default();
            ext.responses.insert("_items".into(), json!([]));
            out.push(Message {
                role: p.role,
                content: Vec::new(),
                name: None,
                ext,
            });
        }
        if let Some(m) = out.last_mut() {
            m.content.extend(p.blocks);
            if let Some(Value::Array(h)) = m.ext.responses.get_mut("_items") {
                h.push(p.hint);
            }
            for (k, v) in p.report {
                m.ext.responses.entry(k).or_insert(v);
            }
        }
    }
    Ok(out)
}

fn text_block(text: String) -> Block {
    Block::Text {
        text,
        citations: Vec::new(),
        cache: None,
    }
}

/// A function tool the IR can hold, and how its optional fields were spelled; `None` for any
/// other tool (hosted tools, or a function with fields the IR has no place for).
fn function_tool(t: &Value) -> Option<(Tool, Value)> {
    let o = t.as_object()?;
    let known = ["type", "name", "description", "parameters", "strict"];
    if o.get("type")? != "function" || !o.keys().all(|k| known.contains(&k.as_str())) {
        return None;
    }
    let name = o.get("name")?.as_str()?.to_string();
    let description = match o.get("description") {
        None => None,
        Some(d) => Some(d.as_str()?.to_string()),
    };
    let mut shape = Map::new();
    let parameters = match o.get("parameters") {
        Some(p @ Value::Object(_)) => p.clone(),
        absent_or_null => {
            if absent_or_null.is_some_and(|p| !p.is_null()) {
                return None;
            }
            let how = if absent_or_null.is_some() {
                "null"
            } else {
                "absent"
            };
            shape.insert("parameters".into(), json!(how));
            json!({"type": "object", "properties": {}})
        }
    };
    let strict = match o.get("strict") {
        None => {
            shape.insert("no_strict".into(), json!(true));
            None
        }
        Some(s) => Some(s.as_bool()?),
    };
    let tool = Tool {
        name,
        description,
        parameters,
        strict,
        cache: None,
    };
    Some((tool, Value::Object(shape)))
}

fn parse_tools(list: Vec<Value>, req: &mut Request) {
    let mut others = Vec::new();
    let mut at = Vec::new();
    let mut shapes = Vec::new();
    for (i, t) in list.into_iter().enumerate() {
        match function_tool(&t) {
            Some((tool, shape)) => {
                req.tools.push(tool);
                shapes.push(shape);
            }
            None => {
                others.push(t);
                at.push(i);
            }
        }
    }
    let ext = &mut req.ext.responses;
    if shapes
        .iter()
        .any(|s| s.as_object().is_some_and(|o| !o.is_empty()))
    {
        ext.insert("_tool_shapes".into(), Value::Array(shapes));
    }
    let n = req.tools.len();
    if !at.iter().enumerate().all(|(j, i)| *i == n + j) {
        ext.insert("_tools_at".into(), json!(at));
    }
    if others.is_empty() {
        ext.insert("_tools".into(), json!(true));
    } else {
        ext.insert("tools".into(), Value::Array(others));
    }
}

fn parse_tool_choice(v: &Value) -> Option<ToolChoice> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => None,
        },
        Value::Object(o) if o.get("type") == Some(&json!("function")) && o.len() == 2 => o
            .get("name")
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Tool(n.to_string())),
        _ => None,
    }
}

fn parse_format(f: &Value) -> Option<ResponseFormat> {
    let o = f.as_object()?;
    let opt_str = |k: &str| match o.get(k) {
        None => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    };
    match o.get("type")?.as_str()? {
        "text" if o.len() == 1 => Some(ResponseFormat::Text),
        "json_object" if o.len() == 1 => Some(ResponseFormat::JsonObject),
        "json_schema" => {
            let known = ["type", "name", "schema", "description", "strict"];
            if !o.keys().all(|k| known.contains(&k.as_str())) {
                return None;
            }
            Some(ResponseFormat::JsonSchema {
                name: Some(o.get("name")?.as_str()?.to_string()),
                description: opt_str("description")?,
                schema: o.get("schema")?.clone(),
                strict: match o.get("strict") {
                    None => None,
                    Some(s) => Some(s.as_bool()?),
                },
            })
        }
        _ => None,
    }
}

/// `reasoning` -> the IR's effort and summary switch; the rest stays in `ext.responses`.
fn parse_reasoning(mut r: Map<String, Value>, req: &mut Request) {
    let ext = &mut req.ext.responses;
    let mut ir = Reasoning::default();
    if let Some(name) = r.get("effort").and_then(Value::as_str).map(str::to_string) {
        // `none` turns reasoning off; `xhigh` and `max` are the IR's highest effort.
        let known = match name.as_str() {
            "none" => {
                ir.enabled = Some(false);
                true
            }
            "xhigh" | "max" => {
                ir.effort = Some(ReasoningEffort::High);
                true
            }
            n => {
                ir.effort = ReasoningEffort::from_name(n).filter(|_| n == n.to_lowercase());
                ir.effort.is_some()
            }
        };
        if known {
            if ir.effort.is_none_or(|e| e.as_str() != name) {
                ext.insert("_effort".into(), json!(name));
            }
            r.remove("effort");
        }
    }
    if let Some(s) = r.get("summary").filter(|s| s.is_string()).cloned() {
        ir.include_thoughts = Some(true);
        ext.insert("_summary".into(), s);
        r.remove("summary");
    }
    req.reasoning = Some(ir);
    if r.values().all(Value::is_null) {
        ext.insert("_reasoning".into(), Value::Object(r));
    } else {
        ext.insert("reasoning".into(), Value::Object(r));
    }
}

/// Parses a Responses request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    crate::ir::reserved_fields(&obj, &[], "the request body").map_err(bad)?;
    let mut req = Request::default();
    let mut nulls = Vec::new();
    let mut input = false;
    for (key, val) in obj {
        if val.is_null() && key != "model" {
            nulls.push(json!(key));
            continue;
        }
        let wrong = |what: &str| bad(format!("{key} must be {what}"));
        match key.as_str() {
            "model" => req.model = RequestError::model(&val)?,
            "input" => {
                input = true;
                match val {
                    Value::String(t) => {
                        let mut ext = Extensions::default();
                        ext.responses.insert("_inputString".into(), json!(true));
                        req.messages.push(Message {
                            role: Role::User,
                            content: vec![text_block(t)],
                            name: None,
                            ext,
                        });
                    }
                    Value::Array(items) => {
                        req.messages = messages_of(items, "input").map_err(bad)?;
                    }
                    _ => return Err(wrong("a string or an array of items")),
                }
            }
            "instructions" => match val {
                Value::String(t) => req.system = vec![text_block(t)],
                _ => return Err(wrong("a string")),
            },
            "tools" => match val {
                Value::Array(list) => parse_tools(list, &mut req),
                _ => return Err(wrong("an array")),
            },
            "tool_choice" => match parse_tool_choice(&val) {
                Some(c) => req.tool_choice = Some(c),
                None => {
                    req.ext.responses.insert(key, val);
                }
            },
            "text" => {
                let Value::Object(mut t) = val else {
                    return Err(wrong("an object"));
                };
                if let Some(f) = t.get("format").and_then(parse_format) {
                    req.response_format = Some(f);
                    t.remove("format");
                }
                if t.is_empty() {
                    req.ext.responses.insert("_text".into(), json!(true));
                } else {
                    req.ext.responses.insert(key, Value::Object(t));
                }
            }
            "reasoning" => match val {
                Value::Object(r) => parse_reasoning(r, &mut req),
                _ => return Err(wrong("an object")),
            },
            "max_output_tokens" => {
                req.max_output_tokens = Some(val.as_u64().ok_or_else(|| wrong("an integer"))?)
            }
            "temperature" => {
                req.sampling.temperature = Some(val.as_f64().ok_or_else(|| wrong("a number"))?)
            }
            "top_p" => req.sampling.top_p = Some(val.as_f64().ok_or_else(|| wrong("a number"))?),
            "parallel_tool_calls" => {
                req.parallel_tool_calls = Some(val.as_bool().ok_or_else(|| wrong("a boolean"))?)
            }
            "stream" => {
                req.stream = val.as_bool().ok_or_else(|| wrong("a boolean"))?;
                if !req.stream {
                    req.ext.responses.insert("_stream".into(), json!(false));
                }
            }
            "user" => match val {
                Value::String(u) => req.user = Some(u),
                _ => return Err(wrong("a string")),
            },
            _ => {
                req.ext.responses.insert(key, val);
            }
        }
    }
    if req.model.is_empty() {
        return Err(RequestError::MissingModel);
    }
    if !input {
        req.ext.responses.insert("_no_input".into(), json!(true));
    }
    if !nulls.is_empty() {
        req.ext
            .responses
            .insert("_nulls".into(), Value::Array(nulls));
    }
    Ok(req)
}

fn tools_json(req: &Request, loss: &mut LossReport) -> Option<Value> {
    let ext = &req.ext.responses;
    let shapes = ext.get("_tool_shapes").and_then(Value::as_array);
    let mut typed: Vec<Value> = Vec::with_capacity(req.tools.len());
    for (i, t) in req.tools.iter().enumerate() {
        let shape = shapes.and_then(|s| s.get(i));
        let flag = |k: &str| shape.and_then(|s| s.get(k));
        if t.cache.is_some() {
            loss.drop_field(format!("tools[{i}].cache_control"));
        }
        let mut o = Map::new();
        o.insert("type".into(), json!("function"));
        o.insert("name".into(), json!(t.name));
        if let Some(d) = &t.description {
            o.insert("description".into(), json!(d));
        }
        match flag("parameters").and_then(Value::as_str) {
            Some("absent") => {}
            Some(_) => {
                o.insert("parameters".into(), Value::Null);
            }
            None => {
                o.insert("parameters".into(), t.parameters.clone());
            }
        }
        match (t.strict, flag("no_strict")) {
            (Some(s), _) => {
                o.insert("strict".into(), json!(s));
            }
            (None, Some(_)) => {}
            // Responses makes a tool without `strict` strict; other protocols' are not.
            (None, None) => {
                o.insert("strict".into(), json!(false));
            }
        }
        typed.push(Value::Object(o));
    }
    let others: Vec<Value> = ext
        .get("tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = typed.len() + others.len();
    let at: Option<Vec<usize>> = ext.get("_tools_at").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|i| i.as_u64().and_then(|i| usize::try_from(i).ok()))
            .collect()
    });
    let mut all: Vec<Value> = match at {
        Some(at) if at.len() == others.len() && at.iter().all(|i| *i < total) => {
            let mut slots: Vec<Option<Value>> = vec![None; total];
            for (i, t) in at.into_iter().zip(others) {
                slots[i] = Some(t);
            }
            let mut typed = typed.into_iter();
            slots
                .into_iter()
                .filter_map(|s| s.or_else(|| typed.next()))
                .collect()
        }
        _ => typed.into_iter().chain(others).collect(),
    };
    all.truncate(total);
    (!all.is_empty() || ext.contains_key("_tools")).then_some(Value::Array(all))
}

fn format_json(rf: &ResponseFormat) -> Value {
    match rf {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => {
            let mut f = Map::new();
            f.insert("type".into(), json!("json_schema"));
            // A name is required; formats from protocols without one get a neutral one.
            f.insert(
                "name".into(),
                json!(name.clone().unwrap_or_else(|| "response".into())),
            );
            f.insert("schema".into(), schema.clone());
            if let Some(d) = description {
                f.insert("description".into(), json!(d));
            }
            if let Some(s) = strict {
                f.insert("strict".into(), json!(s));
            }
            Value::Object(f)
        }
    }
}

/// `reasoning`, `include` and (when thinking is asked for from another protocol) `store`.
fn reasoning_json(req: &Request, o: &mut Map<String, Value>, loss: &mut LossReport) {
    let ext = &req.ext.responses;
    let mut include: Vec<Value> = ext
        .get("include")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(r) = &req.reasoning {
        let native = ext.contains_key("reasoning") || ext.contains_key("_reasoning");
        let mut ro = Map::new();
        for k in ["_reasoning", "reasoning"] {
            if let Some(Value::Object(m)) = ext.get(k) {
                ro.extend(m.clone());
            }
        }
        let spelled = ext.get("_effort").and_then(Value::as_str);
        match (r.effort, r.enabled) {
            (Some(e), _) => {
                let name = match spelled {
                    Some(s @ ("xhigh" | "max")) if e == ReasoningEffort::High => s,
                    _ => e.as_str(),
                };
                ro.insert("effort".into(), json!(name));
                loss.drop_present("reasoning", &[(r.budget_tokens.is_some(), "budget_tokens")]);
            }
            (None, Some(false)) if spelled == Some("none") => {
                ro.insert("effort".into(), json!("none"));
            }
            (None, Some(false)) => loss.drop_field("reasoning.enabled"),
            (None, _) => {
                if let Some(b) = r.budget_tokens {
                    // No budget in Responses: the nearest effort.
                    let e = match b {
                        ..=1024 => "low",
                        1025..=8192 => "medium",
                        _ => "high",
                    };
                    ro.insert("effort".into(), json!(e));
                } else if r.enabled == Some(true) {
                    // Thinking switched on without a size: OpenAI's own default level (left
                    // out, a model may not reason at all).
                    ro.insert("effort".into(), json!("medium"));
                }
            }
        }
        if let Some(s) = ext.get("_summary") {
            ro.insert("summary".into(), s.clone());
        } else if !native && (r.include_thoughts == Some(true) || r.enabled == Some(true)) {
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
    if !include.is_empty() || ext.contains_key("include") {
        o.insert("include".into(), Value::Array(include));
    }
}

/// Writes the IR as a Responses request body; what Responses cannot carry is named in `loss`.
pub fn write_request(req: &Request, loss: &mut LossReport) -> Vec<u8> {
    let ext = &req.ext.responses;
    let mut o = Map::new();
    o.insert("model".into(), json!(req.model));
    let mut instructions = Vec::new();
    for (k, b) in req.system.iter().enumerate() {
        match b {
            Block::Text {
                text,
                citations,
                cache,
            } => {
                loss.drop_present(
                    &format!("system[{k}]"),
                    &[
                        (cache.is_some(), "cache_control"),
                        (!citations.is_empty(), "citations"),
                    ],
                );
                instructions.push(text.as_str());
            }
            _ => loss.drop_field(format!("system[{k}]")),
        }
    }
    if !instructions.is_empty() {
        o.insert("instructions".into(), json!(instructions.join("\n\n")));
    }
    let one_string = match req.messages.as_slice() {
        [m] if m.ext.responses.contains_key("_inputString") => match m.content.as_slice() {
            [Block::Text { text, .. }] => Some(text),
            _ => None,
        },
        _ => None,
    };
    if let Some(t) = one_string {
        o.insert("input".into(), json!(t));
    } else if !req.messages.is_empty() || !ext.contains_key("_no_input") {
        let out = Out {
            output: false,
            mint: &|_, _| String::new(),
            status: "completed",
        };
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
            // Tool results inside a user turn (Anthropic, Gemini, Bedrock) go out as
            // function_call_output items, the rest of the turn as a message.
            items.extend(write_items(
                m.role,
                &m.content,
                hints,
                &format!("{path}.content"),
                &out,
                loss,
            ));
        }
        o.insert("input".into(), Value::Array(items));
    }
    if let Some(tools) = tools_json(req, loss) {
        o.insert("tools".into(), tools);
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
        text.insert("format".into(), format_json(rf));
    }
    if !text.is_empty() || ext.contains_key("_text") {
        o.insert("text".into(), Value::Object(text));
    }
    reasoning_json(req, &mut o, loss);
    let s = &req.sampling;
    crate::ir::insert_some(
        &mut o,
        [
            ("max_output_tokens", req.max_output_tokens.map(|x| json!(x))),
            ("temperature", s.temperature.map(|x| json!(x))),
            ("top_p", s.top_p.map(|x| json!(x))),
            ("user", req.user.as_ref().map(|u| json!(u))),
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
    if req.stream || ext.contains_key("_stream") {
        o.insert("stream".into(), json!(req.stream));
    }
    for (k, v) in ext {
        let consumed = matches!(k.as_str(), "tools" | "text" | "reasoning" | "include");
        if !consumed && !k.starts_with('_') {
            o.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    for k in ext
        .get("_nulls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(k) = k.as_str() {
            o.entry(k.to_string()).or_insert(Value::Null);
        }
    }
    for f in req.ext.foreign_fields(Protocol::OpenAiResponses) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
