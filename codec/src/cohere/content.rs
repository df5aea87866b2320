//! Cohere content parts <-> IR blocks (shared by requests and responses).
//!
//! ```text
//!   {type: text, text}              Text
//!   {type: thinking, thinking}      Thinking (no signature: Cohere has none)
//!   {type: image_url, image_url}    Image (data: URL -> Base64, else Url; detail kept)
//!   {type: document, document}      Text of its data; `_documents` in the message's ext says
//!                                   which blocks were documents (with their ids), so the same
//!                                   trip gives the same parts, while a cross trip carries the text
//! ```

use crate::Protocol;
use crate::ir::{Block, LossReport, Media};
use crate::openai::{data_url, split_data_url};
use serde_json::{Map, Value, json};

fn text(t: String) -> Block {
    Block::Text {
        text: t,
        citations: Vec::new(),
        cache: None,
    }
}

/// Content (string or parts) -> blocks, and the document hints (`{index, id?, object}`).
pub(super) fn parse_content(v: Value, path: &str) -> Result<(Vec<Block>, Vec<Value>), String> {
    let parts = match v {
        Value::Null => return Ok((Vec::new(), Vec::new())),
        Value::String(t) => return Ok((vec![text(t)], Vec::new())),
        Value::Array(p) => p,
        _ => return Err(format!("{path} must be a string or an array of parts")),
    };
    let mut blocks = Vec::new();
    let mut docs = Vec::new();
    for (k, p) in parts.into_iter().enumerate() {
        let kind = p
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let block = match (kind.as_str(), &p) {
            ("text", _)
                if p.get("text").is_some_and(Value::is_string)
                    && p.as_object().is_some_and(|o| o.len() == 2) =>
            {
                text(p["text"].as_str().unwrap_or_default().to_string())
            }
            ("thinking", _)
                if p.get("thinking").is_some_and(Value::is_string)
                    && p.as_object().is_some_and(|o| o.len() == 2) =>
            {
                Block::Thinking {
                    text: p["thinking"].as_str().unwrap_or_default().to_string(),
                    signature: None,
                }
            }
            ("image_url", _) if p["image_url"]["url"].is_string() => {
                let img = &p["image_url"];
                let url = img["url"].as_str().unwrap_or_default().to_string();
                let source = match split_data_url(&url) {
                    Some((media_type, data)) => Media::Base64 { media_type, data },
                    None => Media::Url {
                        url,
                        media_type: None,
                    },
                };
                Block::Image {
                    source,
                    detail: img
                        .get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    cache: None,
                }
            }
            ("document", _) if p.get("document").is_some_and(Value::is_object) => {
                let d = &p["document"];
                let (data, object) = match d.get("data") {
                    Some(Value::String(s)) => (s.clone(), false),
                    Some(v @ Value::Object(_)) => (v.to_string(), true),
                    _ => {
                        return Err(format!(
                            "{path}[{k}].document.data must be a string or an object"
                        ));
                    }
                };
                let mut hint = json!({"index": blocks.len(), "object": object});
                if let Some(id) = d.get("id") {
                    hint["id"] = id.clone();
                }
                docs.push(hint);
                text(data)
            }
            _ => Block::Raw {
                protocol: Protocol::Cohere,
                value: p,
            },
        };
        blocks.push(block);
    }
    Ok((blocks, docs))
}

/// Blocks -> content parts. `docs` are the document hints of a Cohere-born message.
pub(super) fn write_parts(
    blocks: &[Block],
    docs: &[Value],
    path: &str,
    loss: &mut LossReport,
) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        let p = format!("{path}[{k}]");
        let doc = docs.iter().find(|d| d["index"].as_u64() == Some(k as u64));
        let part = match b {
            Block::Text {
                text,
                citations,
                cache,
            } => {
                if citations.iter().any(|c| c.protocol != Protocol::Cohere) {
                    loss.drop_field(format!("{p}.citations"));
                }
                if cache.is_some() {
                    loss.drop_field(format!("{p}.cache_control"));
                }
                match doc {
                    Some(d) => {
                        let data = if d["object"] == true {
                            serde_json::from_str(text).unwrap_or_else(|_| json!(text))
                        } else {
                            json!(text)
                        };
                        let mut document = Map::new();
                        document.insert("data".into(), data);
                        if let Some(id) = d.get("id") {
                            document.insert("id".into(), id.clone());
                        }
                        json!({"type": "document", "document": document})
                    }
                    None => json!({"type": "text", "text": text}),
                }
            }
            Block::Refusal { text } => json!({"type": "text", "text": text}),
            Block::Thinking { text, signature } => {
                if signature.is_some() {
                    loss.drop_field(format!("{p}.signature"));
                }
                json!({"type": "thinking", "thinking": text})
            }
            Block::Image {
                source,
                detail,
                cache,
            } => {
                if cache.is_some() {
                    loss.drop_field(format!("{p}.cache_control"));
                }
                let url = match source {
                    Media::Base64 { media_type, data } => data_url(media_type, data),
                    Media::Url { url, .. } => url.clone(),
                    Media::FileId { .. } | Media::Text { .. } => {
                        loss.drop_field(p);
                        continue;
                    }
                };
                let mut img = json!({"url": url});
                if let Some(d) = detail {
                    img["detail"] = json!(d);
                }
                json!({"type": "image_url", "image_url": img})
            }
            Block::Document {
                source: Media::Text { text, .. },
                title,
                context,
                citations,
                cache,
            } => {
                loss.drop_present(&p, &crate::ir::document_extras(context, *citations, cache));
                let mut document = json!({"data": text});
                if let Some(t) = title {
                    document["id"] = json!(t);
                }
                json!({"type": "document", "document": document})
            }
            Block::Raw {
                protocol: Protocol::Cohere,
                value,
            } => value.clone(),
            _ => {
                loss.drop_field(p);
                continue;
            }
        };
        out.push(part);
    }
    out
}
