//! OpenAI Chat Completions response <-> IR (non-streaming).
//!
//! The first choice becomes the IR response; `created`, `system_fingerprint`, `service_tier`,
//! `logprobs`, further choices and usage details OpenAI alone reports stay in `ext.openai`.
//! `usage.prompt_tokens` counts cached tokens too: the IR splits it into `input` and
//! `cache_read`, and the writer adds them back.

use crate::Protocol;
use crate::ir::{Block, Citation, Extensions, LossReport, Response, StopReason, Usage};
use serde_json::{Map, Value, json};

/// Parses a `chat.completion` body into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut o) = v else {
        return Err("the response body must be a JSON object".into());
    };
    crate::ir::reserved_fields(
        &o,
        &["choices[0]", "choices[0].message", "choices[1..]"],
        "the response body",
    )?;
    let mut r = Response {
        id: take_str(&mut o, "id"),
        model: take_str(&mut o, "model"),
        ..Response::default()
    };
    let mut choices = match o.remove("choices") {
        Some(Value::Array(c)) => c,
        _ => Vec::new(),
    };
    if !choices.is_empty() {
        let Value::Object(mut choice) = choices.remove(0) else {
            return Err("a choice must be an object".into());
        };
        choice.remove("index");
        r.stop_reason = choice
            .remove("finish_reason")
            .and_then(|f| f.as_str().map(stop_from));
        if let Some(Value::Object(mut msg)) = choice.remove("message") {
            msg.remove("role");
            let annotations = msg.remove("annotations");
            if let Some(Value::String(text)) = msg.remove("content") {
                let citations = annotations
                    .as_ref()
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(citation_from).collect())
                    .unwrap_or_default();
                r.content.push(Block::Text {
                    text,
                    citations,
                    cache: None,
                });
            } else if let Some(a) =
                annotations.filter(|a| a.as_array().is_some_and(|x| !x.is_empty()))
            {
                r.ext.openai.insert("annotations".into(), a);
            }
            if let Some(Value::String(text)) = msg.remove("refusal") {
                r.content.push(Block::Refusal { text });
            }
            for c in msg
                .remove("tool_calls")
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let f = &c["function"];
                let raw = f["arguments"].as_str().unwrap_or_default().to_string();
                r.content.push(Block::ToolUse {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    name: f["name"].as_str().unwrap_or_default().to_string(),
                    input: serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
                    thought_signature: None,
                });
            }
            if !msg.is_empty() {
                r.ext
                    .openai
                    .insert("choices[0].message".into(), Value::Object(msg));
            }
        }
        if !choice.is_empty() {
            r.ext
                .openai
                .insert("choices[0]".into(), Value::Object(choice));
        }
        if !choices.is_empty() {
            r.ext
                .openai
                .insert("choices[1..]".into(), Value::Array(choices));
        }
    }
    if let Some(Value::Object(mut u)) = o.remove("usage") {
        let prompt = u
            .remove("prompt_tokens")
            .and_then(|x| x.as_u64())
            .unwrap_or(0);
        let completion = u
            .remove("completion_tokens")
            .and_then(|x| x.as_u64())
            .unwrap_or(0);
        u.remove("total_tokens");
        let cached = u
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let reasoning = u
            .get("completion_tokens_details")
            .and_then(|d| d.get("reasoning_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        r.usage = Usage {
            input: prompt.saturating_sub(cached),
            output: completion,
            cache_read: cached,
            cache_write: 0,
            reasoning,
        };
        if !u.is_empty() {
            r.ext.openai.insert("usage".into(), Value::Object(u));
        }
    }
    o.remove("object");
    r.ext.openai.extend(o);
    Ok(r)
}

fn take_str(o: &mut Map<String, Value>, key: &str) -> String {
    match o.remove(key) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

pub(crate) fn stop_from(f: &str) -> StopReason {
    match f {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

pub(crate) fn stop_to(s: &StopReason) -> String {
    match s {
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::PauseTurn => "stop",
        StopReason::MaxTokens | StopReason::ContextExceeded => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter | StopReason::Refusal => "content_filter",
        StopReason::Other(o) => o,
    }
    .to_string()
}

fn citation_from(a: &Value) -> Citation {
    let u = &a["url_citation"];
    Citation {
        protocol: Protocol::OpenAiChat,
        raw: a.clone(),
        cited_text: None,
        source: u["url"].as_str().map(str::to_string),
    }
}

/// Writes the IR as a `chat.completion` body. `created` (unix seconds) is used when the IR came
/// from another protocol and carries none; what OpenAI cannot carry is named in `loss`.
pub fn write_response(r: &Response, created: u64, loss: &mut LossReport) -> Vec<u8> {
    let mut ext: Map<String, Value> = r.ext.openai.clone();
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let mut text = String::new();
    let mut annotations = Vec::new();
    let mut tool_calls = Vec::new();
    let mut refusal = Value::Null;
    let mut has_text = false;
    for (i, b) in r.content.iter().enumerate() {
        match b {
            Block::Text {
                text: t, citations, ..
            } => {
                has_text = true;
                text.push_str(t);
                for c in citations {
                    if c.protocol == Protocol::OpenAiChat {
                        annotations.push(c.raw.clone());
                    } else {
                        loss.drop_field(format!("content[{i}].citations"));
                    }
                }
            }
            Block::Refusal { text } => refusal = json!(text),
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
                    &format!("content[{i}]"),
                    loss,
                ));
            }
            _ => loss.drop_field(format!("content[{i}]")),
        }
    }
    msg.insert(
        "content".into(),
        if has_text { json!(text) } else { Value::Null },
    );
    msg.insert("refusal".into(), refusal);
    if !tool_calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if let Some(Value::Array(a)) = ext.remove("annotations") {
        annotations.extend(a);
    }
    msg.insert("annotations".into(), Value::Array(annotations));
    if let Some(Value::Object(m)) = ext.remove("choices[0].message") {
        msg.extend(m);
    }
    let mut choice = Map::new();
    choice.insert("index".into(), json!(0));
    choice.insert("message".into(), Value::Object(msg));
    choice.insert(
        "finish_reason".into(),
        r.stop_reason
            .as_ref()
            .map_or(Value::Null, |s| json!(stop_to(s))),
    );
    if let Some(Value::Object(c)) = ext.remove("choices[0]") {
        choice.extend(c);
    } else {
        choice.entry("logprobs").or_insert(Value::Null);
    }
    let mut choices = vec![Value::Object(choice)];
    if let Some(Value::Array(more)) = ext.remove("choices[1..]") {
        choices.extend(more);
    }
    let u = &r.usage;
    let mut usage = Map::new();
    usage.insert("prompt_tokens".into(), json!(u.input + u.cache_read));
    usage.insert("completion_tokens".into(), json!(u.output));
    usage.insert(
        "total_tokens".into(),
        json!(u.input + u.cache_read + u.output),
    );
    if let Some(Value::Object(extra)) = ext.remove("usage") {
        usage.extend(extra);
    }
    if u.cache_read > 0 || usage.contains_key("prompt_tokens_details") {
        let d = usage
            .entry("prompt_tokens_details")
            .or_insert_with(|| json!({}));
        // A provider's details that are not an object (malformed) give way to the counter,
        // or stay as they came when there is nothing to say; indexing them would panic.
        match d {
            Value::Object(m) => {
                m.insert("cached_tokens".into(), json!(u.cache_read));
            }
            other if u.cache_read > 0 => *other = json!({"cached_tokens": u.cache_read}),
            _ => {}
        }
    }
    if u.reasoning > 0 || usage.contains_key("completion_tokens_details") {
        let d = usage
            .entry("completion_tokens_details")
            .or_insert_with(|| json!({}));
        match d {
            Value::Object(m) => {
                m.insert("reasoning_tokens".into(), json!(u.reasoning));
            }
            other if u.reasoning > 0 => *other = json!({"reasoning_tokens": u.reasoning}),
            _ => {}
        }
    }
    if u.cache_write > 0 {
        loss.drop_field("usage.cache_write");
    }
    let mut o = Map::new();
    o.insert("id".into(), json!(r.id));
    o.insert("object".into(), json!("chat.completion"));
    o.insert(
        "created".into(),
        ext.remove("created").unwrap_or_else(|| json!(created)),
    );
    o.insert("model".into(), json!(r.model));
    o.insert("choices".into(), Value::Array(choices));
    o.insert("usage".into(), Value::Object(usage));
    o.extend(ext);
    if !r.safety.is_empty() {
        loss.drop_field("safety_ratings");
    }
    for f in foreign(&r.ext) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

fn foreign(ext: &Extensions) -> Vec<String> {
    ext.foreign_fields(Protocol::OpenAiChat)
}
