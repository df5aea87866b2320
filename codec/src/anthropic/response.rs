//! Anthropic Messages response <-> IR (non-streaming).

use super::blocks::{parse_block, write_block};
use crate::Protocol;
use crate::ir::{LossReport, Response, StopReason, Usage};
use serde_json::{Map, Value, json};

/// Parses a `message` body into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut o) = v else {
        return Err("the response body must be a JSON object".into());
    };
    let mut take = |k: &str| match o.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let id = take("id").unwrap_or_default();
    let model = take("model").unwrap_or_default();
    let stop = take("stop_reason");
    let stop_sequence = take("stop_sequence");
    let mut r = Response {
        id,
        model,
        ..Response::default()
    };
    r.stop_reason = stop.map(|s| match s.as_str() {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(stop_sequence.clone()),
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal,
        "model_context_window_exceeded" => StopReason::ContextExceeded,
        _ => StopReason::Other(s),
    });
    if let Some(Value::Array(blocks)) = o.remove("content") {
        r.content = blocks.into_iter().map(parse_block).collect();
    }
    if let Some(Value::Object(mut u)) = o.remove("usage") {
        let mut n = |k: &str| u.remove(k).and_then(|x| x.as_u64()).unwrap_or(0);
        r.usage = Usage {
            input: n("input_tokens"),
            output: n("output_tokens"),
            cache_read: n("cache_read_input_tokens"),
            cache_write: n("cache_creation_input_tokens"),
            reasoning: 0,
        };
        if !u.is_empty() {
            r.ext.anthropic.insert("usage".into(), Value::Object(u));
        }
    }
    o.remove("type");
    o.remove("role");
    r.ext.anthropic.extend(o);
    Ok(r)
}

/// Anthropic's `stop_reason` for an IR stop reason (a content filter is a refusal).
pub(crate) fn stop_name(s: &StopReason) -> &str {
    match s {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence(_) => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::PauseTurn => "pause_turn",
        StopReason::Refusal | StopReason::ContentFilter => "refusal",
        StopReason::ContextExceeded => "model_context_window_exceeded",
        StopReason::Other(o) => o.as_str(),
    }
}

/// Writes the IR as a `message` body; what Anthropic cannot carry is named in `loss`.
pub fn write_response(r: &Response, loss: &mut LossReport) -> Vec<u8> {
    let mut ext = r.ext.anthropic.clone();
    let content: Vec<Value> = r
        .content
        .iter()
        .enumerate()
        .filter_map(|(i, b)| write_block(b, &format!("content[{i}]"), loss))
        .collect();
    let (stop, seq) = match &r.stop_reason {
        None => (Value::Null, Value::Null),
        Some(s) => {
            let seq = match s {
                StopReason::StopSequence(q) => q.clone(),
                _ => None,
            };
            (json!(stop_name(s)), seq.map_or(Value::Null, |q| json!(q)))
        }
    };
    let u = &r.usage;
    let mut usage = Map::new();
    usage.insert("input_tokens".into(), json!(u.input));
    usage.insert("cache_creation_input_tokens".into(), json!(u.cache_write));
    usage.insert("cache_read_input_tokens".into(), json!(u.cache_read));
    usage.insert("output_tokens".into(), json!(u.output));
    if let Some(Value::Object(extra)) = ext.remove("usage") {
        usage.extend(extra);
    }
    let mut o = Map::new();
    o.insert("id".into(), json!(r.id));
    o.insert("type".into(), json!("message"));
    o.insert("role".into(), json!("assistant"));
    o.insert("model".into(), json!(r.model));
    o.insert("content".into(), Value::Array(content));
    o.insert("stop_reason".into(), stop);
    o.insert("stop_sequence".into(), seq);
    o.insert("usage".into(), Value::Object(usage));
    o.extend(ext);
    if !r.safety.is_empty() {
        loss.drop_field("safety_ratings");
    }
    for f in r.ext.foreign_fields(Protocol::Anthropic) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
