//! Converse request settings <-> IR: `inferenceConfig`, `toolConfig`,
//! `additionalModelRequestFields` (Anthropic's `thinking` and `top_k`) and `outputConfig`
//! (`textFormat`, `effort`).
//!
//! Each is parsed into its typed IR home only when it has exactly the documented shape; the
//! rest of it (or all of it, for a `toolConfig` with a `systemTool`) stays in `ext.bedrock` and
//! is merged back on the way out. `outputConfig.textFormat...schema` is a JSON *text* in
//! Converse: it is parsed into the IR schema, and its original spelling kept as `_schemaText`.

use super::blocks::{cache_point_json, cache_point_of};
use super::{f64_at, u64_at};
use crate::ir::{
    LossReport, Reasoning, ReasoningEffort, Request, ResponseFormat, Tool, ToolChoice,
};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

pub(super) fn parse_inference(val: Value, req: &mut Request) -> Result<(), String> {
    let Value::Object(mut o) = val else {
        return Err("inferenceConfig must be an object".into());
    };
    if let Some(v) = o.remove("maxTokens") {
        req.max_output_tokens = Some(u64_at(&v, "inferenceConfig.maxTokens")?);
    }
    if let Some(v) = o.remove("temperature") {
        req.sampling.temperature = Some(f64_at(&v, "inferenceConfig.temperature")?);
    }
    if let Some(v) = o.remove("topP") {
        req.sampling.top_p = Some(f64_at(&v, "inferenceConfig.topP")?);
    }
    if let Some(v) = o.remove("stopSequences") {
        let err = || "inferenceConfig.stopSequences must be an array of strings".to_string();
        let list = v.as_array().ok_or_else(err)?;
        req.stop = list
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(err))
            .collect::<Result<_, _>>()?;
    }
    if !o.is_empty() {
        req.ext
            .bedrock
            .insert("inferenceConfig".into(), Value::Object(o));
    }
    Ok(())
}

pub(super) fn parse_tool_config(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let tools = val.get("tools");
    if !val.is_object() || !tools.is_some_and(Value::is_array) {
        return Err(bad("toolConfig must be an object with a tools array"));
    }
    match typed_tools(&val) {
        Some((tools, choice)) => {
            req.tools = tools;
            req.tool_choice = choice;
        }
        None => {
            req.ext.bedrock.insert("toolConfig".into(), val);
        }
    }
    Ok(())
}

/// `toolSpec` tools (each optionally followed by a `cachePoint`) and a tool choice, or `None`
/// when the configuration holds something the IR has no type for.
fn typed_tools(val: &Value) -> Option<(Vec<Tool>, Option<ToolChoice>)> {
    let o = val.as_object()?;
    if !o.keys().all(|k| k == "tools" || k == "toolChoice") {
        return None;
    }
    let mut tools: Vec<Tool> = Vec::new();
    for t in o.get("tools")?.as_array()? {
        if let Some(c) = cache_point_of(t) {
            let last = tools.last_mut().filter(|l| l.cache.is_none())?;
            last.cache = Some(c);
            continue;
        }
        let t = t.as_object().filter(|t| t.len() == 1)?;
        let spec = t.get("toolSpec")?.as_object()?;
        let allowed = ["name", "description", "inputSchema", "strict"];
        if !spec.keys().all(|k| allowed.contains(&k.as_str())) {
            return None;
        }
        let schema = spec.get("inputSchema")?.as_object()?;
        if schema.len() != 1 {
            return None;
        }
        tools.push(Tool {
            name: spec.get("name")?.as_str()?.to_string(),
            description: match spec.get("description") {
                None => None,
                Some(d) => Some(d.as_str()?.to_string()),
            },
            parameters: schema.get("json")?.clone(),
            strict: match spec.get("strict") {
                None => None,
                Some(s) => Some(s.as_bool()?),
            },
            cache: None,
        });
    }
    if tools.is_empty() {
        return None;
    }
    let choice = match o.get("toolChoice") {
        None => None,
        Some(c) => {
            let c = c.as_object().filter(|c| c.len() == 1)?;
            let (k, v) = c.iter().next()?;
            let v = v.as_object()?;
            match k.as_str() {
                "auto" if v.is_empty() => Some(ToolChoice::Auto),
                "any" if v.is_empty() => Some(ToolChoice::Required),
                "tool" if v.len() == 1 => Some(ToolChoice::Tool(v.get("name")?.as_str()?.into())),
                _ => return None,
            }
        }
    };
    Some((tools, choice))
}

/// `additionalModelRequestFields`: Anthropic's `thinking` and `top_k` get their typed homes,
/// the rest stays as it came.
pub(super) fn parse_model_fields(val: Value, req: &mut Request) {
    let Value::Object(mut o) = val else {
        req.ext
            .bedrock
            .insert("additionalModelRequestFields".into(), val);
        return;
    };
    let was_empty = o.is_empty();
    if let Some((enabled, budget)) = o.get("thinking").and_then(thinking_of) {
        o.remove("thinking");
        let r = req.reasoning.get_or_insert_with(Reasoning::default);
        r.enabled = Some(enabled);
        r.budget_tokens = budget;
    }
    if let Some(k) = o.get("top_k").and_then(Value::as_u64) {
        o.remove("top_k");
        req.sampling.top_k = Some(k);
    }
    if !o.is_empty() || was_empty {
        req.ext
            .bedrock
            .insert("additionalModelRequestFields".into(), Value::Object(o));
    }
}

/// `{type: enabled, budget_tokens}` or `{type: disabled}`, exactly.
fn thinking_of(v: &Value) -> Option<(bool, Option<i64>)> {
    let o = v.as_object()?;
    match (o.get("type")?.as_str()?, o.len()) {
        ("enabled", 2) => Some((true, Some(o.get("budget_tokens")?.as_i64()?))),
        ("disabled", 1) => Some((false, None)),
        _ => None,
    }
}

fn effort_of(s: &str) -> Option<ReasoningEffort> {
    match s {
        "low" => Some(ReasoningEffort::Low),
        "medium" => Some(ReasoningEffort::Medium),
        "high" => Some(ReasoningEffort::High),
        _ => None,
    }
}

pub(super) fn parse_output_config(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let Value::Object(mut o) = val else {
        return Err(bad("outputConfig must be an object"));
    };
    let was_empty = o.is_empty();
    if let Some((format, text)) = o.get("textFormat").and_then(text_format_of) {
        o.remove("textFormat");
        if serde_json::to_string(&schema_of(&format)).ok().as_deref() != Some(&text) {
            req.ext.bedrock.insert("_schemaText".into(), json!(text));
        }
        req.response_format = Some(format);
    }
    if let Some(e) = o.get("effort").and_then(Value::as_str).and_then(effort_of) {
        o.remove("effort");
        req.reasoning.get_or_insert_with(Reasoning::default).effort = Some(e);
    }
    if !o.is_empty() || was_empty {
        req.ext
            .bedrock
            .insert("outputConfig".into(), Value::Object(o));
    }
    Ok(())
}

fn schema_of(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::JsonSchema { schema, .. } => schema.clone(),
        _ => Value::Null,
    }
}

/// `{type: json_schema, structure: {jsonSchema: {schema, name?, description?}}}`, with the
/// schema (a JSON text in Converse) parsed; also returns that text.
fn text_format_of(v: &Value) -> Option<(ResponseFormat, String)> {
    let o = v.as_object()?;
    if o.len() != 2 || o.get("type")? != "json_schema" {
        return None;
    }
    let st = o.get("structure")?.as_object().filter(|s| s.len() == 1)?;
    let js = st.get("jsonSchema")?.as_object()?;
    if !js
        .keys()
        .all(|k| ["schema", "name", "description"].contains(&k.as_str()))
    {
        return None;
    }
    let text = js.get("schema")?.as_str()?.to_string();
    let schema: Value = serde_json::from_str(&text).ok()?;
    let s = |k: &str| -> Option<Option<String>> {
        match js.get(k) {
            None => Some(None),
            Some(v) => Some(Some(v.as_str()?.to_string())),
        }
    };
    Some((
        ResponseFormat::JsonSchema {
            name: s("name")?,
            description: s("description")?,
            schema,
            strict: None,
        },
        text,
    ))
}

/// `inferenceConfig`, `toolConfig`, `additionalModelRequestFields` and `outputConfig` from the
/// IR's typed fields, merged with what `ext.bedrock` kept of them.
pub(super) fn write_settings(req: &Request, o: &mut Map<String, Value>, loss: &mut LossReport) {
    let ext = &req.ext.bedrock;
    write_inference(req, o, loss);
    write_tools(req, o, loss);
    let mut fields = match ext.get("additionalModelRequestFields") {
        Some(Value::Object(f)) => Some(f.clone()),
        Some(other) => {
            o.insert("additionalModelRequestFields".into(), other.clone());
            None
        }
        None => Some(Map::new()),
    };
    let mut output = ext
        .get("outputConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(k) = req.sampling.top_k {
        match fields.as_mut() {
            Some(f) => {
                f.insert("top_k".into(), json!(k));
            }
            None => loss.drop_field("top_k"),
        }
    }
    if let Some(r) = &req.reasoning {
        write_reasoning(r, fields.as_mut(), &mut output, loss);
    }
    match &req.response_format {
        Some(ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        }) => {
            if *strict == Some(false) {
                loss.drop_field("response_format.strict");
            }
            let text = ext
                .get("_schemaText")
                .and_then(Value::as_str)
                .filter(|t| serde_json::from_str::<Value>(t).ok().as_ref() == Some(schema))
                .map_or_else(|| schema.to_string(), str::to_string);
            let mut js = Map::new();
            js.insert("schema".into(), json!(text));
            if let Some(n) = name {
                js.insert("name".into(), json!(n));
            }
            if let Some(d) = description {
                js.insert("description".into(), json!(d));
            }
            output.insert(
                "textFormat".into(),
                json!({"type": "json_schema", "structure": {"jsonSchema": js}}),
            );
        }
        Some(ResponseFormat::JsonObject) => loss.drop_field("response_format"),
        Some(ResponseFormat::Text) | None => {}
    }
    if let Some(f) = fields
        && (!f.is_empty() || ext.contains_key("additionalModelRequestFields"))
    {
        o.insert("additionalModelRequestFields".into(), Value::Object(f));
    }
    if !output.is_empty() || ext.contains_key("outputConfig") {
        o.insert("outputConfig".into(), Value::Object(output));
    }
}

fn write_inference(req: &Request, o: &mut Map<String, Value>, loss: &mut LossReport) {
    let mut inf = match req.ext.bedrock.get("inferenceConfig") {
        Some(Value::Object(i)) => i.clone(),
        Some(other) => {
            // Not an object: it can take no typed member, which are then lost.
            o.insert("inferenceConfig".into(), other.clone());
            for (name, present) in [
                ("max_output_tokens", req.max_output_tokens.is_some()),
                ("temperature", req.sampling.temperature.is_some()),
                ("top_p", req.sampling.top_p.is_some()),
                ("stop", !req.stop.is_empty()),
            ] {
                if present {
                    loss.drop_field(name);
                }
            }
            return;
        }
        None => Map::new(),
    };
    if let Some(m) = req.max_output_tokens {
        inf.insert("maxTokens".into(), json!(m));
    }
    if let Some(t) = req.sampling.temperature {
        inf.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.sampling.top_p {
        inf.insert("topP".into(), json!(p));
    }
    if !req.stop.is_empty() {
        inf.insert("stopSequences".into(), json!(req.stop));
    }
    if !inf.is_empty() {
        o.insert("inferenceConfig".into(), Value::Object(inf));
    }
}

fn write_tools(req: &Request, o: &mut Map<String, Value>, loss: &mut LossReport) {
    if let Some(tc) = req.ext.bedrock.get("toolConfig") {
        o.insert("toolConfig".into(), tc.clone());
        if !req.tools.is_empty() {
            loss.drop_field("tools");
        }
        if req.tool_choice.is_some() {
            loss.drop_field("tool_choice");
        }
        return;
    }
    if req.tools.is_empty() {
        // No tools: `none` and `auto` mean what Converse does anyway; a forced call cannot be.
        if matches!(
            req.tool_choice,
            Some(ToolChoice::Required | ToolChoice::Tool(_))
        ) {
            loss.drop_field("tool_choice");
        }
        return;
    }
    let mut tools = Vec::new();
    for t in &req.tools {
        let mut spec = Map::new();
        spec.insert("name".into(), json!(t.name));
        if let Some(d) = &t.description {
            spec.insert("description".into(), json!(d));
        }
        spec.insert("inputSchema".into(), json!({ "json": t.parameters }));
        if let Some(s) = t.strict {
            spec.insert("strict".into(), json!(s));
        }
        tools.push(json!({ "toolSpec": spec }));
        if let Some(c) = &t.cache {
            tools.push(cache_point_json(c));
        }
    }
    let mut tc = Map::new();
    tc.insert("tools".into(), Value::Array(tools));
    match &req.tool_choice {
        Some(ToolChoice::Auto) => {
            tc.insert("toolChoice".into(), json!({"auto": {}}));
        }
        Some(ToolChoice::Required) => {
            tc.insert("toolChoice".into(), json!({"any": {}}));
        }
        Some(ToolChoice::Tool(n)) => {
            tc.insert("toolChoice".into(), json!({"tool": {"name": n}}));
        }
        // Converse has no "no tool call": the tools stay (a history with toolUse blocks needs
        // them), no choice is written, and the caller learns the model may still call one.
        Some(ToolChoice::None) => loss.drop_field("tool_choice"),
        None => {}
    }
    o.insert("toolConfig".into(), Value::Object(tc));
}

/// Thinking goes to `additionalModelRequestFields.thinking` (Anthropic on Bedrock), effort to
/// `outputConfig.effort`.
fn write_reasoning(
    r: &Reasoning,
    fields: Option<&mut Map<String, Value>>,
    output: &mut Map<String, Value>,
    loss: &mut LossReport,
) {
    let thinking = match (r.enabled, r.budget_tokens) {
        (Some(false), _) => Some(json!({"type": "disabled"})),
        (Some(true), b) | (None, b @ Some(_)) => {
            Some(json!({"type": "enabled", "budget_tokens": b.unwrap_or(1024)}))
        }
        (None, None) => None,
    };
    if let Some(t) = thinking {
        match fields {
            Some(f) => {
                f.insert("thinking".into(), t);
            }
            None => loss.drop_field("reasoning.budget_tokens"),
        }
    }
    match r.effort {
        Some(ReasoningEffort::Low) => {
            output.insert("effort".into(), json!("low"));
        }
        Some(ReasoningEffort::Medium) => {
            output.insert("effort".into(), json!("medium"));
        }
        Some(ReasoningEffort::High) => {
            output.insert("effort".into(), json!("high"));
        }
        Some(ReasoningEffort::Minimal) => loss.drop_field("reasoning.effort"),
        None => {}
    }
    if r.include_thoughts.is_some() {
        loss.drop_field("reasoning.include_thoughts");
    }
}
