//! Responses `response` object <-> IR (non-streaming).
//!
//! `output` items become the IR's content (as a request's items do, items.rs); `status` and
//! `incomplete_details` its stop reason (a completed response with function calls is a tool
//! use). Usage: `input_tokens` counts cached and cache-write tokens, so the IR's input is what
//! remains. What the response echoes of its request (`tools`, `temperature`, `text`, ...) stays
//! in `ext.responses`; echoes that say nothing (`null`, `{}`, `[]`) are kept as private hints.
//!
//! From another protocol the writer fills every field the official SDK's `Response` model
//! requires (`object`, `created_at`, `status`, `output`, `parallel_tool_calls`, `tool_choice`,
//! `tools`, ...), with the values OpenAI gives when a request sets nothing, and mints item ids
//! (`msg_`, `fc_`, `rs_busbar_` + the response id's letters and digits + the block index).

use super::items::{Out, parse_item, write_items};
use crate::Protocol;
use crate::ir::{Block, LossReport, Response, Role, StopReason, Usage, caller_id};
use serde_json::{Map, Value, json};

/// Statuses a response may have besides `completed`.
const STATUSES: [&str; 5] = ["failed", "in_progress", "cancelled", "queued", "incomplete"];

/// The `incomplete_details` a stop reason implies.
fn details_of(stop: &Option<StopReason>) -> Value {
    match stop {
        Some(StopReason::MaxTokens) => json!({"reason": "max_output_tokens"}),
        Some(StopReason::ContentFilter) => json!({"reason": "content_filter"}),
        _ => Value::Null,
    }
}

/// Whether an echoed field says nothing: `null`, `{}`, `[]`, or an object of `null`s.
fn quiet(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(Value::is_null),
        _ => false,
    }
}

/// The six usage numbers, by their path in `usage`.
const USAGE_KEYS: [(&str, &str); 6] = [
    ("", "input_tokens"),
    ("", "output_tokens"),
    ("", "total_tokens"),
    ("input_tokens_details", "cached_tokens"),
    ("input_tokens_details", "cache_write_tokens"),
    ("output_tokens_details", "reasoning_tokens"),
];

/// `usage` -> the IR's usage; `hints` learn which numbers were there (and a total that is not
/// the sum), `ext` keeps anything else.
fn parse_usage(
    mut u: Map<String, Value>,
    hints: &mut Map<String, Value>,
    ext: &mut Map<String, Value>,
) -> Usage {
    let mut present = Vec::new();
    let mut n = [0u64; 6];
    for (i, (outer, key)) in USAGE_KEYS.iter().enumerate() {
        let map = if outer.is_empty() {
            Some(&mut u)
        } else {
            u.get_mut(*outer).and_then(Value::as_object_mut)
        };
        if let Some(x) = map.and_then(|m| {
            let x = m.get(*key)?.as_u64()?;
            m.remove(*key);
            Some(x)
        }) {
            n[i] = x;
            present.push(json!(key));
        }
    }
    let [input, output, total, cached, written, reasoning] = n;
    for outer in ["input_tokens_details", "output_tokens_details"] {
        if u.get(outer)
            .is_some_and(|d| d.as_object().is_some_and(Map::is_empty))
        {
            u.remove(outer);
        }
    }
    hints.insert("_usage".into(), Value::Array(present));
    if total != input + output {
        hints.insert("_total".into(), json!(total));
    }
    if !u.is_empty() {
        ext.insert("usage".into(), Value::Object(u));
    }
    Usage {
        input: input.saturating_sub(cached).saturating_sub(written),
        output,
        cache_read: cached,
        cache_write: written,
        reasoning,
    }
}

/// Parses a `response` object into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut o) = v else {
        return Err("the response body must be a JSON object".into());
    };
    crate::ir::reserved_fields(&o, &["item.", "part."], "the response body")?;
    let mut r = Response::default();
    let mut take_str = |k: &str| match o.remove(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{k} must be a string")),
    };
    r.id = take_str("id")?.unwrap_or_default();
    r.model = take_str("model")?.unwrap_or_default();
    let status = take_str("status")?;
    let ext = &mut r.ext.responses;
    if status.is_none() {
        ext.insert("_no_status".into(), json!(true));
    }
    match o.remove("object") {
        Some(v) if v == "response" => {}
        Some(v) => {
            ext.insert("_object".into(), v);
        }
        None => {
            ext.insert("_no_object".into(), json!(true));
        }
    }
    let output = match o.remove("output") {
        Some(Value::Array(items)) => items,
        None => {
            ext.insert("_no_output".into(), json!(true));
            Vec::new()
        }
        Some(_) => return Err("output must be an array".into()),
    };
    let mut hints = Vec::with_capacity(output.len());
    for (i, item) in output.into_iter().enumerate() {
        let p = parse_item(item, &format!("output[{i}]"), true)?;
        r.content.extend(p.blocks);
        hints.push(p.hint);
        for (k, v) in p.report {
            ext.entry(k).or_insert(v);
        }
    }
    ext.insert("_items".into(), Value::Array(hints));
    let status = status.unwrap_or_else(|| "completed".into());
    let details = o.remove("incomplete_details");
    let reason = details
        .as_ref()
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    let calls = r.content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    r.stop_reason = Some(match (status.as_str(), reason) {
        ("completed", _) if calls => StopReason::ToolUse,
        ("completed", _) => StopReason::EndTurn,
        ("incomplete", Some("max_output_tokens")) => StopReason::MaxTokens,
        ("incomplete", Some("content_filter")) => StopReason::ContentFilter,
        (s, _) => {
            ext.insert("_status".into(), json!(s));
            StopReason::Other(s.to_string())
        }
    });
    if details.as_ref() != Some(&details_of(&r.stop_reason)) {
        ext.insert(
            "_incomplete".into(),
            details.map_or(json!([]), |d| json!([d])),
        );
    }
    let mut hints = Map::new();
    match o.remove("usage") {
        Some(Value::Object(u)) => {
            r.usage = parse_usage(u, &mut hints, &mut r.ext.responses);
        }
        None => {
            hints.insert("_no_usage".into(), json!(true));
        }
        Some(Value::Null) => {
            hints.insert("_null_usage".into(), json!(true));
        }
        Some(_) => return Err("usage must be an object".into()),
    }
    let ext = &mut r.ext.responses;
    ext.extend(hints);
    let mut echoes = Map::new();
    for (k, v) in o {
        if quiet(&v) {
            echoes.insert(k, v);
        } else {
            ext.insert(k, v);
        }
    }
    if !echoes.is_empty() {
        ext.insert("_quiet".into(), Value::Object(echoes));
    }
    Ok(r)
}

/// `status` and `incomplete_details` for the IR's stop reason; what Responses cannot say is
/// reported.
/// (`None`: the response came without `incomplete_details`.)
fn status_of(r: &Response, loss: &mut LossReport) -> (String, Option<Value>) {
    let ext = &r.ext.responses;
    let details = match ext.get("_incomplete").and_then(Value::as_array) {
        Some(d) => d.first().cloned(),
        None => Some(details_of(&r.stop_reason)),
    };
    let status = match &r.stop_reason {
        None | Some(StopReason::EndTurn | StopReason::ToolUse) => "completed".to_string(),
        Some(StopReason::StopSequence(seq)) => {
            // Responses has no stop sequences: which one matched has no place.
            loss.drop_present("", &[(seq.is_some(), "stop_sequence")]);
            "completed".into()
        }
        Some(StopReason::MaxTokens | StopReason::ContentFilter) => "incomplete".into(),
        Some(StopReason::ContextExceeded) => {
            loss.drop_field("stop_reason");
            return (
                "incomplete".into(),
                Some(json!({"reason": "max_output_tokens"})),
            );
        }
        Some(StopReason::Other(s))
            if STATUSES.contains(&s.as_str())
                || ext.get("_status").and_then(Value::as_str) == Some(s.as_str()) =>
        {
            s.clone()
        }
        Some(StopReason::Refusal | StopReason::PauseTurn | StopReason::Other(_)) => {
            loss.drop_field("stop_reason");
            "completed".into()
        }
    };
    (status, details)
}

fn usage_json(r: &Response) -> Value {
    let u = &r.usage;
    let ext = &r.ext.responses;
    let input = u.input + u.cache_read + u.cache_write;
    let total = ext
        .get("_total")
        .cloned()
        .unwrap_or_else(|| json!(input + u.output));
    let numbers = [
        json!(input),
        json!(u.output),
        total,
        json!(u.cache_read),
        json!(u.cache_write),
        json!(u.reasoning),
    ];
    let present = ext.get("_usage").and_then(Value::as_array);
    let mut usage = ext
        .get("usage")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for ((outer, key), n) in USAGE_KEYS.iter().zip(numbers) {
        if present.is_some_and(|p| !p.contains(&json!(key))) {
            continue;
        }
        if outer.is_empty() {
            usage.insert(key.to_string(), n);
        } else if let Some(d) = usage
            .entry(outer.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            d.insert(key.to_string(), n);
        }
    }
    Value::Object(usage)
}

/// Writes the IR as a `response` object; `created_at` (Unix seconds) when the IR has none.
pub fn write_response(r: &Response, created_at: u64, loss: &mut LossReport) -> Vec<u8> {
    let ext = &r.ext.responses;
    let hints = ext.get("_items").and_then(Value::as_array);
    let id = caller_id("resp_", &r.id);
    let tail: String = id
        .trim_start_matches("resp_")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    let (status, details) = status_of(r, loss);
    let item_status = if status == "incomplete" {
        "incomplete"
    } else {
        "completed"
    };
    let mint = |prefix: &str, k: usize| format!("{prefix}{tail}_{k}");
    let out = Out {
        output: true,
        mint: &mint,
        status: item_status,
    };
    let output = write_items(Role::Assistant, &r.content, hints, "content", &out, loss);
    let mut o = Map::new();
    if hints.is_none() {
        // What a Responses client expects to find, when the response came from elsewhere.
        for (k, v) in [
            ("created_at", json!(created_at)),
            ("error", Value::Null),
            ("instructions", Value::Null),
            ("max_output_tokens", Value::Null),
            ("metadata", json!({})),
            ("parallel_tool_calls", json!(true)),
            ("previous_response_id", Value::Null),
            ("reasoning", json!({"effort": null, "summary": null})),
            ("store", json!(false)),
            ("temperature", Value::Null),
            ("text", json!({"format": {"type": "text"}})),
            ("tool_choice", json!("auto")),
            ("tools", json!([])),
            ("top_p", Value::Null),
            ("truncation", json!("disabled")),
            ("user", Value::Null),
        ] {
            o.insert(k.into(), v);
        }
    }
    if let Some(Value::Object(q)) = ext.get("_quiet") {
        o.extend(q.clone());
    }
    for (k, v) in ext {
        let ours = k.starts_with('_') || k.starts_with("item.") || k.starts_with("part.");
        if !ours && k != "usage" {
            o.insert(k.clone(), v.clone());
        }
    }
    o.insert("id".into(), json!(id));
    match ext.get("_object") {
        Some(v) => {
            o.insert("object".into(), v.clone());
        }
        None if ext.contains_key("_no_object") => {}
        None => {
            o.insert("object".into(), json!("response"));
        }
    }
    o.insert("model".into(), json!(r.model));
    if !ext.contains_key("_no_status") || status != "completed" {
        o.insert("status".into(), json!(status));
    }
    if let Some(d) = details {
        o.insert("incomplete_details".into(), d);
    }
    if !output.is_empty() || !ext.contains_key("_no_output") {
        o.insert("output".into(), Value::Array(output));
    }
    let unused = r.usage == Usage::default();
    if ext.contains_key("_null_usage") && unused {
        o.insert("usage".into(), Value::Null);
    } else if !(ext.contains_key("_no_usage") && unused) {
        o.insert("usage".into(), usage_json(r));
    }
    if !r.safety.is_empty() {
        loss.drop_field("safety_ratings");
    }
    for f in r.ext.foreign_fields(Protocol::OpenAiResponses) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
