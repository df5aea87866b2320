//! Responses `response` object <-> IR (non-streaming).
//!
//! `output` items become the IR's content (as requests' items do); `status` and
//! `incomplete_details` its stop reason (a completed response with function calls is a tool
//! use). Usage: `input_tokens` counts cached tokens, so the IR's input is input minus cached.
//! Everything the response echoes of its request stays in `ext.responses`.

use super::items::write_items;
use super::request::messages_of;
use crate::Protocol;
use crate::ir::{Block, LossReport, Response, Role, StopReason, Usage, caller_id};
use serde_json::{Map, Value, json};

/// Parses a `response` object into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut o) = v else {
        return Err("the response body must be a JSON object".into());
    };
    crate::ir::reserved_fields(&o, &[], "the response body")?;
    let mut r = Response::default();
    if let Some(Value::String(id)) = o.remove("id") {
        r.id = id;
    }
    if let Some(Value::String(m)) = o.remove("model") {
        r.model = m;
    }
    let output = match o.remove("output") {
        Some(Value::Array(items)) => items,
        None => Vec::new(),
        Some(_) => return Err("output must be an array".into()),
    };
    let messages = messages_of(output, "output")?;
    let mut hints = Vec::new();
    for m in messages {
        if m.role != Role::Assistant {
            return Err("output items must be the assistant's".into());
        }
        if let Some(Value::Array(h)) = m.ext.responses.get("_items") {
            hints.extend(h.iter().cloned());
        }
        r.content.extend(m.content);
    }
    r.ext.responses.insert("_items".into(), Value::Array(hints));
    let status = o
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("completed")
        .to_string();
    let reason = o
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let calls = r.content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    r.stop_reason = Some(match (status.as_str(), reason.as_deref()) {
        ("completed", _) if calls => StopReason::ToolUse,
        ("completed", _) => StopReason::EndTurn,
        ("incomplete", Some("max_output_tokens")) => StopReason::MaxTokens,
        ("incomplete", Some("content_filter")) => StopReason::ContentFilter,
        (s, _) => StopReason::Other(s.to_string()),
    });
    if let Some(Value::Object(mut u)) = o.remove("usage") {
        let mut n = |k: &str| u.remove(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let input = n("input_tokens");
        let output = n("output_tokens");
        let total = n("total_tokens");
        let cached = u
            .get("input_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let reasoning = u
            .get("output_tokens_details")
            .and_then(|d| d.get("reasoning_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        r.usage = Usage {
            input: input.saturating_sub(cached),
            output,
            cache_read: cached,
            cache_write: 0,
            reasoning,
        };
        if total != input + output {
            r.ext.responses.insert("_total".into(), json!(total));
        }
        let standard = u.get("input_tokens_details") == Some(&json!({"cached_tokens": cached}))
            && u.get("output_tokens_details") == Some(&json!({"reasoning_tokens": reasoning}))
            && u.len() == 2;
        if !standard {
            r.ext.responses.insert("usage".into(), Value::Object(u));
        }
    }
    r.ext.responses.extend(o);
    Ok(r)
}

/// Writes the IR as a `response` object; `created_at` (Unix seconds) when the IR has none.
pub fn write_response(r: &Response, created_at: u64, loss: &mut LossReport) -> Vec<u8> {
    let ext = &r.ext.responses;
    let id = caller_id("resp_", &r.id);
    let tail: String = id.trim_start_matches("resp_").chars().take(40).collect();
    let hints = ext.get("_items").and_then(Value::as_array);
    let mint = |kind: &str, k: usize| format!("{kind}_{tail}{k}");
    let output = write_items(
        Role::Assistant,
        &r.content,
        hints,
        "content",
        loss,
        true,
        &mint,
    );
    let (status, incomplete) = match &r.stop_reason {
        None | Some(StopReason::EndTurn | StopReason::ToolUse | StopReason::StopSequence(_)) => {
            ("completed".to_string(), Value::Null)
        }
        Some(StopReason::MaxTokens) => {
            ("incomplete".into(), json!({"reason": "max_output_tokens"}))
        }
        Some(StopReason::ContentFilter) => {
            ("incomplete".into(), json!({"reason": "content_filter"}))
        }
        Some(StopReason::ContextExceeded) => {
            loss.drop_field("stop_reason");
            ("incomplete".into(), json!({"reason": "max_output_tokens"}))
        }
        Some(StopReason::Other(s))
            if matches!(
                s.as_str(),
                "failed" | "in_progress" | "cancelled" | "queued" | "incomplete"
            ) || ext.get("status").and_then(Value::as_str) == Some(s.as_str()) =>
        {
            let details = ext
                .get("incomplete_details")
                .cloned()
                .unwrap_or(Value::Null);
            (s.clone(), details)
        }
        Some(_) => {
            loss.drop_field("stop_reason");
            ("completed".into(), Value::Null)
        }
    };
    let u = &r.usage;
    let input = u.input + u.cache_read;
    let mut usage = ext
        .get("usage")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert(
                "input_tokens_details".into(),
                json!({"cached_tokens": u.cache_read}),
            );
            m.insert(
                "output_tokens_details".into(),
                json!({"reasoning_tokens": u.reasoning}),
            );
            m
        });
    usage.insert("input_tokens".into(), json!(input));
    usage.insert("output_tokens".into(), json!(u.output));
    usage.insert(
        "total_tokens".into(),
        ext.get("_total")
            .cloned()
            .unwrap_or_else(|| json!(input + u.output)),
    );
    if u.cache_write > 0 {
        loss.drop_field("usage.cache_write");
    }
    let mut o = Map::new();
    // What a Responses client expects to find, when the response came from another protocol.
    for (k, v) in [
        ("object", json!("response")),
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
    for (k, v) in ext {
        if !k.starts_with('_') && k != "usage" {
            o.insert(k.clone(), v.clone());
        }
    }
    o.insert("id".into(), json!(id));
    o.insert("model".into(), json!(r.model));
    o.insert("status".into(), json!(status));
    o.insert("incomplete_details".into(), incomplete);
    o.insert("output".into(), Value::Array(output));
    o.insert("usage".into(), Value::Object(usage));
    if !r.safety.is_empty() {
        loss.drop_field("safety_ratings");
    }
    for f in r.ext.foreign_fields(Protocol::OpenAiResponses) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
