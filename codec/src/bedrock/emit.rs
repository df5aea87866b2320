//! IR blocks -> Converse content blocks (the writing half of `blocks.rs`).
//!
//! Each IR block becomes one union object, followed by a `cachePoint` when it has a cache
//! mark. What Converse cannot take (an http URL, a provider file id, a MIME type outside the
//! documented formats, another protocol's raw block or citations) is named in the loss report
//! by its IR path. The hints `blocks.rs` left restore the spellings the IR folds together.

use super::blocks::{Hints, cache_of, cache_point_json, generated_text};
use super::media::{self, Kind};
use crate::Protocol;
use crate::ir::{Block, Citation, LossReport, Media};
use serde_json::{Map, Value, json};

/// IR blocks -> a `content` list; `path` names the IR list in loss entries.
pub(super) fn write_blocks(
    blocks: &[Block],
    path: &str,
    hints: &Hints,
    loss: &mut LossReport,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        let p = format!("{path}[{j}]");
        let Some(v) = write_block(b, &p, &j.to_string(), hints, loss) else {
            continue;
        };
        out.push(v);
        if let Some(c) = cache_of(b) {
            out.push(cache_point_json(c));
        }
    }
    out
}

fn media_json(
    kind: Kind,
    source: &Media,
    p: &str,
    loss: &mut LossReport,
) -> Option<Map<String, Value>> {
    match media::source_json(kind, source) {
        Some((format, src)) => Some(media::media_object(format, src)),
        None => {
            loss.drop_field(p.to_string());
            None
        }
    }
}

/// One IR block, or `None` (and a loss entry where something was lost).
fn write_block(
    b: &Block,
    p: &str,
    at: &str,
    hints: &Hints,
    loss: &mut LossReport,
) -> Option<Value> {
    match b {
        Block::Text {
            text, citations, ..
        } => {
            let bare = citations.is_empty() && cache_of(b).is_none();
            if text.is_empty() && bare && hints.get(at, "citationsContent").is_none() {
                return None; // Converse refuses a blank text block; an empty one carries nothing
            }
            Some(text_json(text, citations, p, at, hints, loss))
        }
        Block::Image { source, detail, .. } => {
            if detail.is_some() {
                loss.drop_field(format!("{p}.detail"));
            }
            let o = media_json(Kind::Image, source, p, loss)?;
            Some(json!({ "image": o }))
        }
        Block::Document { .. } => document_json(b, p, at, hints, loss),
        Block::Audio { source } => {
            let o = media_json(Kind::Audio, source, p, loss)?;
            Some(json!({ "audio": o }))
        }
        Block::Thinking { text, signature } => {
            let mut rt = Map::new();
            rt.insert("text".into(), json!(text));
            if let Some(s) = signature {
                rt.insert("signature".into(), json!(s));
            }
            Some(json!({"reasoningContent": {"reasoningText": rt}}))
        }
        Block::RedactedThinking { data } => {
            Some(json!({"reasoningContent": {"redactedContent": data}}))
        }
        Block::ToolUse {
            id,
            name,
            input,
            thought_signature,
        } => {
            if thought_signature.is_some() {
                loss.drop_field(format!("{p}.thought_signature"));
            }
            Some(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
        }
        Block::ToolResult {
            tool_use_id,
            name,
            content,
            is_error,
            ..
        } => {
            if name.is_some() {
                loss.drop_field(format!("{p}.name"));
            }
            let parts: Vec<Value> = content
                .iter()
                .enumerate()
                .filter_map(|(k, part)| {
                    write_part(
                        part,
                        &format!("{p}.content[{k}]"),
                        &format!("{at}/{k}"),
                        hints,
                        loss,
                    )
                })
                .collect();
            let mut o = Map::new();
            o.insert("toolUseId".into(), json!(tool_use_id));
            o.insert("content".into(), Value::Array(parts));
            if *is_error {
                o.insert("status".into(), json!("error"));
            } else if hints.get(at, "status") == Some(&json!("success")) {
                o.insert("status".into(), json!("success"));
            }
            Some(json!({ "toolResult": o }))
        }
        Block::Refusal { text } => Some(json!({ "text": text })),
        Block::Raw {
            protocol: Protocol::Bedrock,
            value,
        } => Some(value.clone()),
        Block::Raw { .. } => {
            loss.drop_field(p.to_string());
            None
        }
    }
}

fn text_json(
    text: &str,
    citations: &[Citation],
    p: &str,
    at: &str,
    hints: &Hints,
    loss: &mut LossReport,
) -> Value {
    let own: Vec<Value> = citations
        .iter()
        .filter(|c| c.protocol == Protocol::Bedrock)
        .map(|c| c.raw.clone())
        .collect();
    if own.len() < citations.len() {
        loss.drop_field(format!("{p}.citations"));
    }
    let hinted = hints.get(at, "citationsContent");
    if own.is_empty() && hinted.is_none() {
        return json!({ "text": text });
    }
    let content = hinted
        .filter(|c| generated_text(c).as_deref() == Some(text))
        .cloned()
        .unwrap_or_else(|| json!([{ "text": text }]));
    json!({"citationsContent": {"content": content, "citations": own}})
}

fn document_json(
    b: &Block,
    p: &str,
    at: &str,
    hints: &Hints,
    loss: &mut LossReport,
) -> Option<Value> {
    let Block::Document {
        source,
        title,
        context,
        citations,
        ..
    } = b
    else {
        return None;
    };
    let mut o = media_json(Kind::Document, source, p, loss)?;
    let name = match title {
        Some(t) => media::document_name(t),
        None => media::document_name(&format!("document {}", at.replace('/', "-"))),
    };
    o.insert("name".into(), json!(name));
    if let Some(c) = context {
        o.insert("context".into(), json!(c));
    }
    if *citations {
        o.insert("citations".into(), json!({"enabled": true}));
    } else if hints.get(at, "citationsOff").is_some() {
        o.insert("citations".into(), json!({"enabled": false}));
    }
    Some(json!({ "document": o }))
}

/// One part of a tool result: `text`, `json`, `image`, `document` or a raw Converse part.
fn write_part(b: &Block, p: &str, at: &str, hints: &Hints, loss: &mut LossReport) -> Option<Value> {
    if cache_of(b).is_some() {
        loss.drop_field(format!("{p}.cache_control"));
    }
    match b {
        Block::Text {
            text, citations, ..
        } => {
            if !citations.is_empty() {
                loss.drop_field(format!("{p}.citations"));
            }
            if hints.get(at, "json") == Some(&json!(true))
                && let Ok(v) = serde_json::from_str::<Value>(text)
            {
                return Some(json!({ "json": v }));
            }
            Some(json!({ "text": text }))
        }
        Block::Refusal { text } => Some(json!({ "text": text })),
        Block::Image { .. } | Block::Document { .. } => write_block(b, p, at, hints, loss),
        Block::Raw {
            protocol: Protocol::Bedrock,
            value,
        } => Some(value.clone()),
        _ => {
            loss.drop_field(p.to_string());
            None
        }
    }
}
