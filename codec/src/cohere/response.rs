//! Cohere v2 chat response <-> IR (non-streaming).
//!
//! `message.citations` index into the content (`content_index`): each is attached to the text
//! block it cites, and gathered back in block order by the writer. Usage: the IR carries
//! `billed_units` (what is paid for) and `cached_tokens`; the raw `tokens` and the other billed
//! units stay in `ext.cohere.usage`. Written from another protocol, both `billed_units` and
//! `tokens` are filled from the IR numbers.

use super::content::{parse_content, write_parts};
use crate::Protocol;
use crate::ir::{Block, Citation, LossReport, Response, StopReason, Usage};
use serde_json::{Map, Value, json};

/// Parses a v2 chat response body into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut o) = v else {
        return Err("the response body must be a JSON object".into());
    };
    crate::ir::reserved_fields(&o, &["message."], "the response body")?;
    let mut r = Response::default();
    if let Some(Value::String(id)) = o.remove("id") {
        r.id = id;
    }
    if let Some(Value::String(f)) = o.remove("finish_reason") {
        r.stop_reason = Some(match f.as_str() {
            "COMPLETE" => StopReason::EndTurn,
            "STOP_SEQUENCE" => StopReason::StopSequence(None),
            "MAX_TOKENS" => StopReason::MaxTokens,
            "TOOL_CALL" => StopReason::ToolUse,
            _ => {
                r.ext.cohere.insert("_finish_reason".into(), json!(f));
                StopReason::Other(f)
            }
        });
    }
    if let Some(m) = o.remove("message") {
        let Value::Object(mut m) = m else {
            return Err("message must be an object".into());
        };
        if let Some(role) = m.remove("role")
            && role != "assistant"
        {
            r.ext.cohere.insert("_role".into(), role);
        }
        let (blocks, docs) = parse_content(
            m.remove("content").unwrap_or(Value::Null),
            "message.content",
        )?;
        if !docs.is_empty() {
            r.ext.cohere.insert("_documents".into(), Value::Array(docs));
        }
        r.content = blocks;
        if let Some(Value::Array(cites)) = m.remove("citations") {
            let mut unplaced = Vec::new();
            for c in cites {
                let at = c.get("content_index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let citation = citation_of(c);
                match r.content.get_mut(at) {
                    Some(Block::Text { citations, .. }) => citations.push(citation),
                    _ => unplaced.push(citation.raw),
                }
            }
            if !unplaced.is_empty() {
                r.ext
                    .cohere
                    .insert("citations".into(), Value::Array(unplaced));
            }
        }
        if let Some(Value::Array(calls)) = m.remove("tool_calls") {
            for c in calls {
                let f = &c["function"];
                let args = f["arguments"].as_str().unwrap_or("{}");
                r.content.push(Block::ToolUse {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    name: f["name"].as_str().unwrap_or_default().to_string(),
                    input: serde_json::from_str(args).unwrap_or_else(|_| json!(args)),
                    thought_signature: None,
                });
            }
        }
        // tool_plan and anything else the message has, apart from the top-level fields.
        for (k, v) in m {
            r.ext.cohere.insert(format!("message.{k}"), v);
        }
    }
    if let Some(u) = o.remove("usage") {
        let Value::Object(mut u) = u else {
            return Err("usage must be an object".into());
        };
        let mut billed = match u.remove("billed_units") {
            Some(Value::Object(b)) => b,
            _ => Map::new(),
        };
        let mut n = |k: &str| {
            billed
                .remove(k)
                .and_then(|x| x.as_f64())
                .map_or(0, |x| x as u64)
        };
        r.usage = Usage {
            input: n("input_tokens"),
            output: n("output_tokens"),
            ..Usage::default()
        };
        r.usage.cache_read = u
            .remove("cached_tokens")
            .and_then(|x| x.as_u64())
            .unwrap_or(0);
        if !billed.is_empty() {
            u.insert("billed_units".into(), Value::Object(billed));
        }
        r.ext.cohere.insert("usage".into(), Value::Object(u));
    }
    r.ext.cohere.extend(o);
    Ok(r)
}

/// Writes the IR as a v2 chat response body; what Cohere cannot carry goes in `loss`.
pub fn write_response(r: &Response, loss: &mut LossReport) -> Vec<u8> {
    let ext = &r.ext.cohere;
    let docs: Vec<Value> = ext
        .get("_documents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (calls, rest): (Vec<&Block>, Vec<&Block>) = r
        .content
        .iter()
        .partition(|b| matches!(b, Block::ToolUse { .. }));
    let rest: Vec<Block> = rest.into_iter().cloned().collect();
    let mut message = Map::new();
    message.insert(
        "role".into(),
        ext.get("_role")
            .cloned()
            .unwrap_or_else(|| json!("assistant")),
    );
    if let Some(plan) = ext.get("message.tool_plan") {
        message.insert("tool_plan".into(), plan.clone());
    }
    if !calls.is_empty() {
        let list: Vec<Value> = calls
            .iter()
            .enumerate()
            .filter_map(|(k, b)| match b {
                Block::ToolUse { id, name, input, thought_signature } => {
                    if thought_signature.is_some() {
                        loss.drop_field(format!("tool_calls[{k}].thought_signature"));
                    }
                    let arguments = match input {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    Some(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
                }
                _ => None,
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(list));
    }
    if !rest.is_empty() {
        message.insert(
            "content".into(),
            Value::Array(write_parts(&rest, &docs, "content", loss)),
        );
    }
    let mut cites: Vec<Value> = rest
        .iter()
        .flat_map(|b| match b {
            Block::Text { citations, .. } => citations.as_slice(),
            _ => &[],
        })
        .filter(|c| c.protocol == Protocol::Cohere)
        .map(|c| c.raw.clone())
        .collect();
    if let Some(Value::Array(more)) = ext.get("message.citations") {
        cites.extend(more.iter().cloned());
    }
    if !cites.is_empty() {
        message.insert("citations".into(), Value::Array(cites));
    }
    let mut top = Map::new();
    for (k, v) in ext {
        match k.strip_prefix("message.") {
            Some("tool_plan" | "citations") => {}
            Some(field) => {
                message.insert(field.to_string(), v.clone());
            }
            None if k.starts_with('_') || matches!(k.as_str(), "usage" | "logprobs") => {}
            None => {
                top.insert(k.clone(), v.clone());
            }
        }
    }
    let exact = ext.get("_finish_reason").and_then(Value::as_str);
    let finish = r.stop_reason.as_ref().map(|s| match s {
        StopReason::Other(o) if exact == Some(o.as_str()) => o.clone(),
        StopReason::EndTurn => "COMPLETE".to_string(),
        StopReason::StopSequence(_) => "STOP_SEQUENCE".into(),
        StopReason::MaxTokens => "MAX_TOKENS".into(),
        StopReason::ToolUse => "TOOL_CALL".into(),
        StopReason::Other(o) if matches!(o.as_str(), "ERROR" | "TIMEOUT") => o.clone(),
        StopReason::ContextExceeded => {
            loss.drop_field("stop_reason");
            "MAX_TOKENS".into()
        }
        _ => {
            loss.drop_field("stop_reason");
            "COMPLETE".into()
        }
    });
    let u = &r.usage;
    let mut usage = ext
        .get("usage")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert(
                "tokens".into(),
                json!({"input_tokens": u.input + u.cache_read, "output_tokens": u.output}),
            );
            m
        });
    let mut billed = usage
        .get("billed_units")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    billed.insert("input_tokens".into(), json!(u.input));
    billed.insert("output_tokens".into(), json!(u.output));
    usage.insert("billed_units".into(), Value::Object(billed));
    if u.cache_read > 0 {
        usage.insert("cached_tokens".into(), json!(u.cache_read));
    }
    if u.cache_write > 0 {
        loss.drop_field("usage.cache_write");
    }
    let mut o = Map::new();
    o.insert(
        "id".into(),
        json!(if r.id.is_empty() {
            "busbar"
        } else {
            r.id.as_str()
        }),
    );
    if let Some(f) = finish {
        o.insert("finish_reason".into(), json!(f));
    }
    o.insert("message".into(), Value::Object(message));
    o.insert("usage".into(), Value::Object(usage));
    if let Some(l) = ext.get("logprobs") {
        o.insert("logprobs".into(), l.clone());
    }
    o.extend(top);
    if !r.safety.is_empty() {
        loss.drop_field("safety_ratings");
    }
    for f in r.ext.foreign_fields(Protocol::Cohere) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

/// One Cohere citation in IR form.
pub(crate) fn citation_of(c: Value) -> Citation {
    Citation {
        protocol: Protocol::Cohere,
        cited_text: c.get("text").and_then(Value::as_str).map(str::to_string),
        source: c["sources"][0]
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string),
        raw: c,
    }
}
