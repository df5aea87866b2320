//! Converse response <-> IR (non-streaming).
//!
//! ```text
//!   output.message.content  <-> content          stopReason <-> stop_reason
//!   usage.inputTokens       <-> usage.input      (Converse counts cache reads and writes apart)
//!   usage.cacheRead/WriteInputTokens <-> usage.cache_read / cache_write
//!   usage.totalTokens       <-  input + output + cache reads + cache writes
//!   additionalModelResponseFields.stop_sequence <-> StopReason::StopSequence(Some(..))
//! ```
//!
//! A Converse response has no id and no model: the IR's stay empty, and writing one from
//! another protocol's IR leaves them out (the gateway sends `x-amzn-RequestId`), which is not
//! a loss. The writer always emits what boto3 requires of a `ConverseResponse`: `output`,
//! `stopReason`, `usage` with `inputTokens` / `outputTokens` / `totalTokens`, and `metrics`
//! (`latencyMs: 0` when the IR has none). `metrics`, `trace`, `performanceConfig`,
//! `serviceTier`, `cacheDetails` and other response fields stay in `ext.bedrock`.

use super::blocks::{Hints, parse_blocks};
use super::emit::write_blocks;
use super::{no_hint_keys, u64_at};
use crate::Protocol;
use crate::ir::{LossReport, Response, StopReason, Usage};
use serde_json::{Map, Value, json};

const FIELDS: &str = "additionalModelResponseFields";

/// Usage members with a typed IR home, in the order they are written.
const USAGE: [&str; 5] = [
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "cacheReadInputTokens",
    "cacheWriteInputTokens",
];

/// Parses a Converse response body into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut o) = v else {
        return Err("the response body must be a JSON object".into());
    };
    no_hint_keys(&o, "response")?;
    let mut r = Response::default();
    let ext = &mut r.ext.bedrock;

    let Some(Value::Object(mut output)) = o.remove("output") else {
        return Err("output must be an object".into());
    };
    let Some(Value::Object(mut message)) = output.remove("message") else {
        return Err("output.message must be an object".into());
    };
    if message.remove("role").as_ref().and_then(Value::as_str) != Some("assistant") {
        return Err("output.message.role must be assistant".into());
    }
    let Some(Value::Array(list)) = message.remove("content") else {
        return Err("output.message.content must be an array".into());
    };
    let mut hints = Hints::default();
    r.content = parse_blocks(list, "output.message.content", &mut hints)?;
    hints.store(ext);
    if !message.is_empty() {
        output.insert("message".into(), Value::Object(message));
    }
    if !output.is_empty() {
        ext.insert("output".into(), Value::Object(output));
    }

    let mut fields = match o.remove(FIELDS) {
        Some(Value::Object(f)) => Some(f),
        Some(other) => {
            ext.insert(FIELDS.into(), other);
            None
        }
        None => None,
    };
    r.stop_reason = match o.remove("stopReason") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => {
                // Claude reports the matched sequence when it was asked for.
                let seq = fields
                    .as_mut()
                    .filter(|f| f.get("stop_sequence").is_some_and(Value::is_string))
                    .and_then(|f| f.remove("stop_sequence"))
                    .and_then(|s| s.as_str().map(str::to_string));
                StopReason::StopSequence(seq)
            }
            "content_filtered" => StopReason::ContentFilter,
            "guardrail_intervened" => {
                ext.insert("_stopReason".into(), json!(s));
                StopReason::ContentFilter
            }
            "model_context_window_exceeded" => StopReason::ContextExceeded,
            _ => StopReason::Other(s),
        }),
        Some(_) => return Err("stopReason must be a string".into()),
    };
    if let Some(f) = fields
        && !f.is_empty()
    {
        ext.insert(FIELDS.into(), Value::Object(f));
    }

    match o.remove("usage") {
        None => {}
        Some(Value::Object(mut u)) => {
            let mut n = |k: &str| -> Result<Option<u64>, String> {
                u.remove(k)
                    .map(|v| u64_at(&v, &format!("usage.{k}")))
                    .transpose()
            };
            let [input, output, total, read, write] = [
                n(USAGE[0])?,
                n(USAGE[1])?,
                n(USAGE[2])?,
                n(USAGE[3])?,
                n(USAGE[4])?,
            ];
            r.usage = Usage {
                input: input.unwrap_or(0),
                output: output.unwrap_or(0),
                cache_read: read.unwrap_or(0),
                cache_write: write.unwrap_or(0),
                reasoning: 0,
            };
            if let Some(t) = total.filter(|t| *t != total_of(&r.usage)) {
                ext.insert("_totalTokens".into(), json!(t));
            }
            // Cache counts are written when non-zero; an explicit zero is remembered.
            let zeros: Vec<&str> = [(USAGE[3], read), (USAGE[4], write)]
                .into_iter()
                .filter(|(_, v)| *v == Some(0))
                .map(|(k, _)| k)
                .collect();
            if !zeros.is_empty() {
                ext.insert("_zeros".into(), json!(zeros));
            }
            if !u.is_empty() {
                ext.insert("usage".into(), Value::Object(u));
            }
        }
        Some(_) => return Err("usage must be an object".into()),
    }
    // metrics, trace, performanceConfig, serviceTier, and fields not known yet.
    ext.extend(o);
    Ok(r)
}

fn total_of(u: &Usage) -> u64 {
    u.input + u.output + u.cache_read + u.cache_write
}

/// Writes the IR as a Converse response body; what Converse cannot carry is named in `loss`.
pub fn write_response(r: &Response, loss: &mut LossReport) -> Vec<u8> {
    let ext = &r.ext.bedrock;
    let hints = Hints::of(ext);
    let content = write_blocks(&r.content, "content", &hints, loss);

    let mut output = ext
        .get("output")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut message = output
        .remove("message")
        .and_then(|m| match m {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), Value::Array(content));
    output.insert("message".into(), Value::Object(message));

    let mut fields = ext.get(FIELDS).cloned();
    let stop = match &r.stop_reason {
        None | Some(StopReason::EndTurn) => "end_turn".to_string(),
        Some(StopReason::ToolUse) => "tool_use".into(),
        Some(StopReason::MaxTokens) => "max_tokens".into(),
        Some(StopReason::StopSequence(seq)) => {
            if let Some(s) = seq {
                match fields.get_or_insert_with(|| json!({})) {
                    Value::Object(f) => {
                        f.insert("stop_sequence".into(), json!(s));
                    }
                    _ => loss.drop_field("stop_sequence"),
                }
            }
            "stop_sequence".into()
        }
        Some(StopReason::ContentFilter) => match ext.get("_stopReason").and_then(Value::as_str) {
            Some("guardrail_intervened") => "guardrail_intervened".into(),
            _ => "content_filtered".into(),
        },
        // Converse's word for a model that declined is `content_filtered`.
        Some(StopReason::Refusal) => "content_filtered".into(),
        Some(StopReason::ContextExceeded) => "model_context_window_exceeded".into(),
        Some(StopReason::PauseTurn) => {
            // Converse has no paused turn: the caller would take it for a finished one.
            loss.drop_field("stop_reason");
            "end_turn".into()
        }
        Some(StopReason::Other(s)) => s.clone(),
    };

    let u = &r.usage;
    let mut usage = Map::new();
    usage.insert("inputTokens".into(), json!(u.input));
    usage.insert("outputTokens".into(), json!(u.output));
    let total = ext
        .get("_totalTokens")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| total_of(u));
    usage.insert("totalTokens".into(), json!(total));
    let zeros = ext.get("_zeros").and_then(Value::as_array);
    for (k, n) in [(USAGE[3], u.cache_read), (USAGE[4], u.cache_write)] {
        if n > 0 || zeros.is_some_and(|z| z.contains(&json!(k))) {
            usage.insert(k.into(), json!(n));
        }
    }
    if let Some(Value::Object(extra)) = ext.get("usage") {
        for (k, v) in extra {
            usage.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if u.reasoning > 0 {
        // Converse counts reasoning inside outputTokens and has no field for the split.
        loss.drop_field("usage.reasoning");
    }

    let mut o = Map::new();
    o.insert("output".into(), Value::Object(output));
    o.insert("stopReason".into(), json!(stop));
    o.insert("usage".into(), Value::Object(usage));
    o.insert(
        "metrics".into(),
        ext.get("metrics")
            .cloned()
            .unwrap_or_else(|| json!({"latencyMs": 0})),
    );
    if let Some(f) = fields {
        o.insert(FIELDS.into(), f);
    }
    for (k, v) in ext {
        let handled = ["output", "usage", "metrics", FIELDS];
        if !k.starts_with('_') && !handled.contains(&k.as_str()) {
            o.insert(k.clone(), v.clone());
        }
    }
    if !r.safety.is_empty() {
        loss.drop_field("safety_ratings");
    }
    for f in r.ext.foreign_fields(Protocol::Bedrock) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
