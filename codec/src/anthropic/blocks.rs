//! Anthropic content blocks <-> IR blocks (shared by requests and responses).

use crate::Protocol;
use crate::ir::{Block, CacheControl, Citation, LossReport, Media};
use serde_json::{Map, Value, json};

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

pub(super) fn cache_of(v: &Value) -> Option<CacheControl> {
    let c = v.get("cache_control")?;
    Some(CacheControl {
        kind: s(c, "type").unwrap_or_else(|| "ephemeral".into()),
        ttl: s(c, "ttl"),
    })
}

pub(super) fn cache_json(c: &CacheControl) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(c.kind));
    if let Some(t) = &c.ttl {
        o.insert("ttl".into(), json!(t));
    }
    Value::Object(o)
}

fn citations_of(v: &Value) -> Vec<Citation> {
    v.get("citations")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(citation_of).collect())
        .unwrap_or_default()
}

/// One Anthropic citation in IR form.
pub(crate) fn citation_of(c: &Value) -> Citation {
    Citation {
        protocol: Protocol::Anthropic,
        raw: c.clone(),
        cited_text: s(c, "cited_text"),
        source: s(c, "document_title")
            .or_else(|| s(c, "url"))
            .or_else(|| s(c, "title")),
    }
}

fn source_of(src: &Value) -> Option<Media> {
    match src.get("type")?.as_str()? {
        "base64" => Some(Media::Base64 {
            media_type: s(src, "media_type")?,
            data: s(src, "data")?,
        }),
        "url" => Some(Media::Url {
            url: s(src, "url")?,
            media_type: None,
        }),
        "file" => Some(Media::FileId {
            id: s(src, "file_id")?,
        }),
        "text" => Some(Media::Text {
            text: s(src, "data")?,
            media_type: s(src, "media_type"),
        }),
        _ => None,
    }
}

fn source_json(m: &Media) -> Value {
    match m {
        Media::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        Media::Url { url, .. } => json!({"type": "url", "url": url}),
        Media::FileId { id } => json!({"type": "file", "file_id": id}),
        Media::Text { text, media_type } => {
            json!({"type": "text", "media_type": media_type.clone().unwrap_or_else(|| "text/plain".into()), "data": text})
        }
    }
}

fn raw(v: Value) -> Block {
    Block::Raw {
        protocol: Protocol::Anthropic,
        value: v,
    }
}

/// One Anthropic block -> IR. Kinds the IR has no type for are kept raw.
pub(super) fn parse_block(v: Value) -> Block {
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match kind.as_str() {
        "text" if v.get("text").is_some_and(Value::is_string) => Block::Text {
            text: s(&v, "text").unwrap_or_default(),
            citations: citations_of(&v),
            cache: cache_of(&v),
        },
        // A text source is a document's, not an image's: such a block is kept as it came (the
        // provider's own validation answers it), not read as an image it cannot be written as.
        "image" => match v.get("source").and_then(source_of) {
            Some(source) if !matches!(source, Media::Text { .. }) => Block::Image {
                source,
                detail: None,
                cache: cache_of(&v),
            },
            _ => raw(v),
        },
        "document" => match v.get("source").and_then(source_of) {
            Some(source) => Block::Document {
                source,
                title: s(&v, "title"),
                context: s(&v, "context"),
                citations: v
                    .get("citations")
                    .and_then(|c| c.get("enabled"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                cache: cache_of(&v),
            },
            None => raw(v),
        },
        "thinking" => Block::Thinking {
            text: s(&v, "thinking").unwrap_or_default(),
            signature: s(&v, "signature"),
        },
        "redacted_thinking" => Block::RedactedThinking {
            data: s(&v, "data").unwrap_or_default(),
        },
        // A tool call's input is an object; any other is kept as it came (see "image").
        "tool_use"
            if v.get("cache_control").is_none() && v.get("input").is_none_or(Value::is_object) =>
        {
            Block::ToolUse {
                id: s(&v, "id").unwrap_or_default(),
                name: s(&v, "name").unwrap_or_default(),
                input: v.get("input").cloned().unwrap_or_else(|| json!({})),
                thought_signature: None,
            }
        }
        "tool_result" => {
            let content = match v.get("content") {
                Some(Value::String(t)) => vec![Block::Text {
                    text: t.clone(),
                    citations: Vec::new(),
                    cache: None,
                }],
                Some(Value::Array(a)) => a.iter().cloned().map(parse_block).collect(),
                _ => Vec::new(),
            };
            Block::ToolResult {
                tool_use_id: s(&v, "tool_use_id").unwrap_or_default(),
                name: None,
                content,
                is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                cache: cache_of(&v),
            }
        }
        _ => raw(v),
    }
}

/// One IR block -> Anthropic, or `None` (and a loss entry) when Anthropic has no such block.
pub(super) fn write_block(b: &Block, path: &str, loss: &mut LossReport) -> Option<Value> {
    let with_cache = |mut o: Map<String, Value>, c: &Option<CacheControl>| {
        if let Some(c) = c {
            o.insert("cache_control".into(), cache_json(c));
        }
        Value::Object(o)
    };
    match b {
        Block::Text {
            text,
            citations,
            cache,
        } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("text"));
            o.insert("text".into(), json!(text));
            let own: Vec<Value> = citations
                .iter()
                .filter(|c| c.protocol == Protocol::Anthropic)
                .map(|c| c.raw.clone())
                .collect();
            if own.len() < citations.len() {
                loss.drop_field(format!("{path}.citations"));
            }
            if !own.is_empty() {
                o.insert("citations".into(), Value::Array(own));
            }
            Some(with_cache(o, cache))
        }
        Block::Image {
            source,
            detail,
            cache,
        } => {
            if detail.is_some() {
                loss.drop_field(format!("{path}.detail"));
            }
            if matches!(source, Media::Text { .. }) {
                loss.drop_field(path.to_string());
                return None;
            }
            let mut o = Map::new();
            o.insert("type".into(), json!("image"));
            o.insert("source".into(), source_json(source));
            Some(with_cache(o, cache))
        }
        Block::Document {
            source,
            title,
            context,
            citations,
            cache,
        } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("document"));
            o.insert("source".into(), source_json(source));
            if let Some(t) = title {
                o.insert("title".into(), json!(t));
            }
            if let Some(c) = context {
                o.insert("context".into(), json!(c));
            }
            if *citations {
                o.insert("citations".into(), json!({"enabled": true}));
            }
            Some(with_cache(o, cache))
        }
        Block::Thinking { text, signature } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("thinking"));
            o.insert("thinking".into(), json!(text));
            // A block that came without a signature is written without one: nothing is lost.
            if let Some(sig) = signature {
                o.insert("signature".into(), json!(sig));
            }
            Some(Value::Object(o))
        }
        Block::RedactedThinking { data } => {
            Some(json!({"type": "redacted_thinking", "data": data}))
        }
        Block::ToolUse {
            id,
            name,
            input,
            thought_signature,
        } => {
            if thought_signature.is_some() {
                loss.drop_field(format!("{path}.thought_signature"));
            }
            let input = match input {
                Value::Object(_) => input.clone(),
                other => {
                    loss.drop_field(format!("{path}.input"));
                    json!({"value": other})
                }
            };
            Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        }
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache,
            ..
        } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("tool_result"));
            o.insert("tool_use_id".into(), json!(tool_use_id));
            let plain = match content.as_slice() {
                [
                    Block::Text {
                        text,
                        citations,
                        cache: None,
                    },
                ] if citations.is_empty() => Some(text.clone()),
                _ => None,
            };
            match plain {
                Some(t) => {
                    o.insert("content".into(), json!(t));
                }
                None if !content.is_empty() => {
                    let parts: Vec<Value> = content
                        .iter()
                        .enumerate()
                        .filter_map(|(k, b)| write_block(b, &format!("{path}.content[{k}]"), loss))
                        .collect();
                    o.insert("content".into(), Value::Array(parts));
                }
                None => {}
            }
            if *is_error {
                o.insert("is_error".into(), json!(true));
            }
            Some(with_cache(o, cache))
        }
        Block::Refusal { text } => Some(json!({"type": "text", "text": text})),
        Block::Raw {
            protocol: Protocol::Anthropic,
            value,
        } => Some(value.clone()),
        Block::Audio { .. } | Block::Raw { .. } => {
            loss.drop_field(path.to_string());
            None
        }
    }
}
