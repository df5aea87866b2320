//! Responses items and content parts <-> IR blocks, shared by requests (`input`) and responses
//! (`output`).

use super::REASONING_ID_PREFIX;
use crate::Protocol;
use crate::ir::{Block, Citation, LossReport, Media, Role};
use crate::openai::{data_url, split_data_url};
use serde_json::{Map, Value, json};

fn text_block(text: String, citations: Vec<Citation>) -> Block {
    Block::Text {
        text,
        citations,
        cache: None,
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn citation(a: &Value) -> Citation {
    Citation {
        protocol: Protocol::OpenAiResponses,
        raw: a.clone(),
        cited_text: None,
        source: s(a, "url")
            .or_else(|| s(a, "title"))
            .or_else(|| s(a, "filename")),
    }
}

/// One content part of a message item -> a block.
fn parse_part(p: Value) -> Block {
    let kind = p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let keys = |allowed: &[&str]| {
        p.as_object()
            .is_some_and(|o| o.keys().all(|k| allowed.contains(&k.as_str())))
    };
    match kind.as_str() {
        "input_text" if keys(&["type", "text"]) => {
            text_block(s(&p, "text").unwrap_or_default(), Vec::new())
        }
        "output_text" if keys(&["type", "text", "annotations"]) => {
            let cites = p["annotations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(citation)
                .collect();
            text_block(s(&p, "text").unwrap_or_default(), cites)
        }
        "refusal" if keys(&["type", "refusal"]) => Block::Refusal {
            text: s(&p, "refusal").unwrap_or_default(),
        },
        "input_image" if keys(&["type", "image_url", "file_id", "detail"]) => {
            let source = if let Some(url) = s(&p, "image_url") {
                match split_data_url(&url) {
                    Some((media_type, data)) => Media::Base64 { media_type, data },
                    None => Media::Url {
                        url,
                        media_type: None,
                    },
                }
            } else if let Some(id) = s(&p, "file_id") {
                Media::FileId { id }
            } else {
                return Block::Raw {
                    protocol: Protocol::OpenAiResponses,
                    value: p,
                };
            };
            Block::Image {
                source,
                detail: s(&p, "detail"),
                cache: None,
            }
        }
        "input_file" if keys(&["type", "file_data", "file_id", "file_url", "filename"]) => {
            let source = if let Some(id) = s(&p, "file_id") {
                Media::FileId { id }
            } else if let Some(url) = s(&p, "file_url") {
                Media::Url {
                    url,
                    media_type: None,
                }
            } else if let Some((media_type, data)) =
                s(&p, "file_data").as_deref().and_then(split_data_url)
            {
                Media::Base64 { media_type, data }
            } else {
                return Block::Raw {
                    protocol: Protocol::OpenAiResponses,
                    value: p,
                };
            };
            Block::Document {
                source,
                title: s(&p, "filename"),
                context: None,
                citations: false,
                cache: None,
            }
        }
        _ => Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value: p,
        },
    }
}

/// What one item became: a role, its blocks, and the hint that writes it back the same way.
pub(super) struct Parsed {
    pub(super) role: Role,
    pub(super) blocks: Vec<Block>,
    pub(super) hint: Value,
    /// Items that never merge with their neighbours (tool outputs, unknown kinds).
    pub(super) alone: bool,
}

/// One item of `input` or `output` -> IR blocks, with the hint that writes it back the same way.
pub(super) fn parse_item(item: Value, path: &str) -> Result<Parsed, String> {
    let Value::Object(mut o) = item else {
        return Err(format!("{path} must be an object or a string"));
    };
    let kind = match o.get("type") {
        Some(Value::String(t)) => t.clone(),
        None if o.contains_key("role") => "message".into(),
        _ => String::new(),
    };
    let mut hint = Map::new();
    hint.insert("kind".into(), json!(kind));
    for k in ["id", "status"] {
        if let Some(v) = o.get(k) {
            hint.insert(k.into(), v.clone());
        }
    }
    let parsed = match kind.as_str() {
        "message" => {
            if o.get("type").is_none() {
                hint.insert("untyped".into(), json!(true));
            }
            let role = match o.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("system") => Role::System,
                Some("developer") => Role::Developer,
                other => {
                    return Err(format!(
                        "{path}.role must be user, assistant, system or developer, not {other:?}"
                    ));
                }
            };
            let extra = o
                .keys()
                .any(|k| !matches!(k.as_str(), "type" | "role" | "id" | "status" | "content"));
            if extra {
                return Ok(raw(o, role));
            }
            let blocks = match o.remove("content") {
                Some(Value::String(t)) => {
                    hint.insert("string".into(), json!(true));
                    vec![text_block(t, Vec::new())]
                }
                Some(Value::Array(parts)) => parts.into_iter().map(parse_part).collect(),
                _ => {
                    return Err(format!(
                        "{path}.content must be a string or an array of parts"
                    ));
                }
            };
            hint.insert("n".into(), json!(blocks.len()));
            Parsed {
                role,
                blocks,
                hint: Value::Null,
                alone: false,
            }
        }
        "function_call" => {
            let (Some(call_id), Some(name)) = (
                o.get("call_id").and_then(Value::as_str),
                o.get("name").and_then(Value::as_str),
            ) else {
                return Err(format!("{path}: a function_call needs call_id and name"));
            };
            let args = o.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            let input = match serde_json::from_str::<Value>(args) {
                Ok(v) if serde_json::to_string(&v).ok().as_deref() == Some(args) => v,
                Ok(v) => {
                    hint.insert("arguments".into(), json!(args));
                    v
                }
                Err(_) => json!(args),
            };
            let block = Block::ToolUse {
                id: call_id.to_string(),
                name: name.to_string(),
                input,
                thought_signature: None,
            };
            if o.keys().any(|k| {
                !matches!(
                    k.as_str(),
                    "type" | "id" | "status" | "call_id" | "name" | "arguments"
                )
            }) {
                return Ok(raw(o, Role::Assistant));
            }
            Parsed {
                role: Role::Assistant,
                blocks: vec![block],
                hint: Value::Null,
                alone: false,
            }
        }
        "function_call_output" => {
            let Some(call_id) = o.get("call_id").and_then(Value::as_str).map(str::to_string) else {
                return Err(format!("{path}: a function_call_output needs call_id"));
            };
            let content = match o.remove("output") {
                Some(Value::String(t)) => vec![text_block(t, Vec::new())],
                Some(Value::Array(parts)) => {
                    hint.insert("parts".into(), json!(true));
                    parts.into_iter().map(parse_part).collect()
                }
                _ => return Err(format!("{path}.output must be a string or an array")),
            };
            if o.keys()
                .any(|k| !matches!(k.as_str(), "type" | "id" | "status" | "call_id"))
            {
                return Err(format!("{path}: unexpected fields in function_call_output"));
            }
            let block = Block::ToolResult {
                tool_use_id: call_id,
                name: None,
                content,
                is_error: false,
                cache: None,
            };
            Parsed {
                role: Role::Tool,
                blocks: vec![block],
                hint: Value::Null,
                alone: true,
            }
        }
        "reasoning" => {
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let summary = match o.get("summary") {
                Some(Value::Array(a)) => a.clone(),
                None => Vec::new(),
                Some(_) => return Err(format!("{path}.summary must be an array")),
            };
            let plain = summary.iter().all(|p| {
                p.get("type") == Some(&json!("summary_text"))
                    && p.get("text").is_some_and(Value::is_string)
                    && p.as_object().is_some_and(|x| x.len() == 2)
            });
            let known = o.keys().all(|k| {
                matches!(
                    k.as_str(),
                    "type" | "id" | "status" | "summary" | "encrypted_content" | "content"
                )
            });
            if !plain || !known || !id.starts_with(REASONING_ID_PREFIX) {
                return Ok(raw(o, Role::Assistant));
            }
            let mut blocks: Vec<Block> = Vec::new();
            for (k, p) in summary.iter().enumerate() {
                blocks.push(Block::Thinking {
                    text: s(p, "text").unwrap_or_default(),
                    signature: (k == 0).then(|| id.clone()),
                });
            }
            if summary.is_empty() {
                blocks.push(Block::Thinking {
                    text: String::new(),
                    signature: Some(id.clone()),
                });
                hint.insert("empty".into(), json!(true));
            }
            if let Some(Value::String(enc)) = o.get("encrypted_content") {
                blocks.push(Block::RedactedThinking { data: enc.clone() });
            } else if o.get("encrypted_content") == Some(&Value::Null) {
                hint.insert("encrypted_null".into(), json!(true));
            }
            if let Some(c) = o.get("content") {
                hint.insert("content".into(), c.clone());
            }
            Parsed {
                role: Role::Assistant,
                blocks,
                hint: Value::Null,
                alone: false,
            }
        }
        _ => return Ok(raw(o, Role::Assistant)),
    };
    Ok(Parsed {
        hint: Value::Object(hint),
        ..parsed
    })
}

fn raw(o: Map<String, Value>, role: Role) -> Parsed {
    Parsed {
        role,
        blocks: vec![Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value: Value::Object(o),
        }],
        hint: json!({"kind": "raw"}),
        alone: true,
    }
}

fn part_json(b: &Block, role: Role, path: &str, loss: &mut LossReport) -> Option<Value> {
    let input = role != Role::Assistant;
    Some(match b {
        Block::Text {
            text,
            citations,
            cache,
        } => {
            if cache.is_some() {
                loss.drop_field(format!("{path}.cache_control"));
            }
            if input {
                if !citations.is_empty() {
                    loss.drop_field(format!("{path}.citations"));
                }
                json!({"type": "input_text", "text": text})
            } else {
                let own: Vec<Value> = citations
                    .iter()
                    .filter(|c| c.protocol == Protocol::OpenAiResponses)
                    .map(|c| c.raw.clone())
                    .collect();
                if own.len() < citations.len() {
                    loss.drop_field(format!("{path}.citations"));
                }
                json!({"type": "output_text", "text": text, "annotations": own})
            }
        }
        Block::Refusal { text } => json!({"type": "refusal", "refusal": text}),
        Block::Image {
            source,
            detail,
            cache,
        } => {
            if cache.is_some() {
                loss.drop_field(format!("{path}.cache_control"));
            }
            let mut o = json!({"type": "input_image", "detail": detail.clone().unwrap_or_else(|| "auto".into())});
            match source {
                Media::Base64 { media_type, data } => {
                    o["image_url"] = json!(data_url(media_type, data))
                }
                Media::Url { url, .. } => o["image_url"] = json!(url),
                Media::FileId { id } => o["file_id"] = json!(id),
                Media::Text { .. } => {
                    loss.drop_field(path.to_string());
                    return None;
                }
            }
            if detail.is_none() {
                o.as_object_mut()?.remove("detail");
            }
            o
        }
        Block::Document {
            source,
            title,
            context,
            citations,
            cache,
        } => {
            loss.drop_present(
                path,
                &crate::ir::document_extras(context, *citations, cache),
            );
            let mut o = json!({"type": "input_file"});
            match source {
                Media::Base64 { media_type, data } => {
                    o["file_data"] = json!(data_url(media_type, data))
                }
                Media::Url { url, .. } => o["file_url"] = json!(url),
                Media::FileId { id } => o["file_id"] = json!(id),
                Media::Text { text, .. } => {
                    return Some(json!({"type": "input_text", "text": text}));
                }
            }
            if let Some(t) = title {
                o["filename"] = json!(t);
            }
            o
        }
        Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value,
        } => value.clone(),
        _ => {
            loss.drop_field(path.to_string());
            return None;
        }
    })
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
        Role::System => "system",
        Role::Developer => "developer",
    }
}

/// IR blocks of one message -> items. `hints` are the message's `_items` when it was born a
/// Responses message; `mint(kind, k)` names items that need an id and have none.
pub(super) fn write_items(
    role: Role,
    blocks: &[Block],
    hints: Option<&Vec<Value>>,
    path: &str,
    loss: &mut LossReport,
    output: bool,
    mint: &dyn Fn(&str, usize) -> String,
) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    let mut k = 0;
    let mut hint_at = 0;
    while k < blocks.len() {
        let hint = hints.and_then(|h| h.get(hint_at)).cloned();
        hint_at += 1;
        let kind = hint
            .as_ref()
            .and_then(|h| h["kind"].as_str())
            .map(str::to_string);
        let b = &blocks[k];
        let p = format!("{path}[{k}]");
        let with = |mut o: Map<String, Value>, h: &Option<Value>| {
            if let Some(h) = h {
                for f in ["id", "status"] {
                    if let Some(v) = h.get(f) {
                        o.insert(f.into(), v.clone());
                    }
                }
            }
            o
        };
        match b {
            Block::ToolUse {
                id,
                name,
                input,
                thought_signature,
            } => {
                if thought_signature.is_some() {
                    loss.drop_field(format!("{p}.thought_signature"));
                }
                let arguments = hint
                    .as_ref()
                    .and_then(|h| h.get("arguments").cloned())
                    .unwrap_or_else(|| match input {
                        Value::String(s) => json!(s),
                        v => json!(v.to_string()),
                    });
                let mut o = Map::new();
                o.insert("type".into(), json!("function_call"));
                o.insert("call_id".into(), json!(id));
                o.insert("name".into(), json!(name));
                o.insert("arguments".into(), arguments);
                let mut o = with(o, &hint);
                if output && hint.is_none() {
                    o.insert("id".into(), json!(mint("fc", k)));
                    o.insert("status".into(), json!("completed"));
                }
                items.push(Value::Object(o));
                k += 1;
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
                cache,
                ..
            } => {
                loss.drop_present(
                    &p,
                    &[(*is_error, "is_error"), (cache.is_some(), "cache_control")],
                );
                let as_parts = hint.as_ref().is_some_and(|h| h.get("parts").is_some());
                let output_v = match content.as_slice() {
                    [
                        Block::Text {
                            text, citations, ..
                        },
                    ] if !as_parts && citations.is_empty() => json!(text),
                    parts => Value::Array(
                        parts
                            .iter()
                            .enumerate()
                            .filter_map(|(j, c)| {
                                part_json(c, Role::User, &format!("{p}.content[{j}]"), loss)
                            })
                            .collect(),
                    ),
                };
                let mut o = Map::new();
                o.insert("type".into(), json!("function_call_output"));
                o.insert("call_id".into(), json!(tool_use_id));
                o.insert("output".into(), output_v);
                items.push(Value::Object(with(o, &hint)));
                k += 1;
            }
            Block::Thinking {
                signature: Some(id),
                ..
            } if id.starts_with(super::REASONING_ID_PREFIX) => {
                let mut summary = Vec::new();
                let mut enc = None;
                let mut j = k;
                while j < blocks.len() {
                    match &blocks[j] {
                        Block::Thinking { text, signature } if j == k || signature.is_none() => {
                            summary.push(json!({"type": "summary_text", "text": text}));
                        }
                        Block::RedactedThinking { data } if enc.is_none() => {
                            enc = Some(data.clone())
                        }
                        _ => break,
                    }
                    j += 1;
                }
                if hint.as_ref().is_some_and(|h| h.get("empty").is_some()) {
                    summary.clear();
                }
                let mut o = Map::new();
                o.insert("type".into(), json!("reasoning"));
                o.insert("id".into(), json!(id));
                o.insert("summary".into(), Value::Array(summary));
                if let Some(e) = enc {
                    o.insert("encrypted_content".into(), json!(e));
                } else if hint
                    .as_ref()
                    .is_some_and(|h| h.get("encrypted_null").is_some())
                {
                    o.insert("encrypted_content".into(), Value::Null);
                }
                if let Some(c) = hint.as_ref().and_then(|h| h.get("content")) {
                    o.insert("content".into(), c.clone());
                }
                if let Some(st) = hint.as_ref().and_then(|h| h.get("status")) {
                    o.insert("status".into(), st.clone());
                }
                items.push(Value::Object(o));
                k = j;
            }
            Block::Thinking { text, signature } if output => {
                // Reasoning from another provider, to a Responses client: a reasoning item with
                // its text as the summary; a foreign signature has no place.
                if signature.is_some() {
                    loss.drop_field(format!("{p}.signature"));
                }
                items.push(json!({"type": "reasoning", "id": mint("rs", k), "summary": [{"type": "summary_text", "text": text}]}));
                k += 1;
            }
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {
                // Reasoning another provider produced cannot be handed to OpenAI as input.
                loss.drop_field(p);
                k += 1;
            }
            Block::Raw {
                protocol: Protocol::OpenAiResponses,
                value,
            } if kind.as_deref() == Some("raw") => {
                items.push(value.clone());
                k += 1;
            }
            _ => {
                // A run of content blocks: one message item.
                let n = match &hint {
                    Some(h) if h["kind"] == "message" => h
                        .get("n")
                        .and_then(Value::as_u64)
                        .map_or(blocks.len() - k, |n| n as usize),
                    _ => blocks[k..]
                        .iter()
                        .take_while(|b| {
                            !matches!(
                                b,
                                Block::ToolUse { .. }
                                    | Block::ToolResult { .. }
                                    | Block::Thinking { .. }
                                    | Block::RedactedThinking { .. }
                            )
                        })
                        .count()
                        .max(1),
                };
                let run = &blocks[k..(k + n).min(blocks.len())];
                let string = hint.as_ref().is_some_and(|h| h.get("string").is_some());
                let content = match run {
                    [Block::Text { text, .. }] if string => json!(text),
                    _ => Value::Array(
                        run.iter()
                            .enumerate()
                            .filter_map(|(j, b)| {
                                part_json(b, role, &format!("{path}[{}]", k + j), loss)
                            })
                            .collect(),
                    ),
                };
                let mut o = Map::new();
                if hint.as_ref().is_none_or(|h| h.get("untyped").is_none()) {
                    o.insert("type".into(), json!("message"));
                }
                o.insert("role".into(), json!(role_str(role)));
                o.insert("content".into(), content);
                let mut o = with(o, &hint);
                if output && hint.is_none() {
                    o.insert("id".into(), json!(mint("msg", k)));
                    o.insert("status".into(), json!("completed"));
                }
                items.push(Value::Object(o));
                k += n.max(1);
            }
        }
    }
    items
}
