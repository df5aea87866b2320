//! Converse content blocks <-> IR blocks, shared by requests and responses.
//!
//! A Converse `ContentBlock` is a union: an object with exactly one member.
//!
//! ```text
//!   text                      <-> Text              citationsContent <-> Text + citations
//!   image / document / audio  <-> Image / Document / Audio   (see media.rs)
//!   toolUse                   <-> ToolUse           toolResult       <-> ToolResult
//!   reasoningContent          <-> Thinking (reasoningText) / RedactedThinking (redactedContent)
//!   cachePoint after a block  <-> that block's cache mark (Text, Image, Document, ToolResult)
//!   anything else             <-> Raw (video, guardContent, searchResult, server tool use, ...)
//! ```
//!
//! This file parses (`emit.rs` writes). A known member with the wrong JSON shape is an error
//! naming its path; a valid block the IR cannot hold exactly (an unknown format, an
//! `s3Location` with a `bucketOwner`, an extra member) is kept raw. Spellings the IR folds together are kept as [`Hints`]: a tool result
//! `{json}` part (carried as a Text block holding the serialized JSON, so that it reaches
//! OpenAI and Anthropic as text), an explicit `status: success`, `citations.enabled: false`,
//! and the `content` list of a `citationsContent` block.

use super::media::{self, Kind};
use crate::Protocol;
use crate::ir::{Block, CacheControl, Citation, Media};
use serde_json::{Map, Value, json};

/// The `ext.bedrock` key the hints of a message (or of a response's content) live under.
const HINTS_KEY: &str = "_blocks";

/// Per-block spellings, keyed by the IR block's index (`"3"`) or a tool result part's
/// (`"3/1"`): written at parse time, read back by the writer of the same protocol only.
#[derive(Debug, Default)]
pub(super) struct Hints(Map<String, Value>);

impl Hints {
    /// The hints stored in an extension slot (none for an IR from another protocol).
    pub(super) fn of(ext: &Map<String, Value>) -> Hints {
        Hints(
            ext.get(HINTS_KEY)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Stores the hints in an extension slot, when there are any.
    pub(super) fn store(self, ext: &mut Map<String, Value>) {
        if !self.0.is_empty() {
            ext.insert(HINTS_KEY.into(), Value::Object(self.0));
        }
    }

    fn set(&mut self, at: &str, key: &str, v: Value) {
        let slot = self.0.entry(at.to_string()).or_insert_with(|| json!({}));
        if let Value::Object(o) = slot {
            o.insert(key.into(), v);
        }
    }

    pub(super) fn get(&self, at: &str, key: &str) -> Option<&Value> {
        self.0.get(at)?.get(key)
    }
}

/// The one member of a union object.
fn single(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    o.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn opt_str(o: &Map<String, Value>, k: &str, p: &str) -> Result<Option<String>, String> {
    match o.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{p}.{k} must be a string")),
    }
}

fn req_str(o: &Map<String, Value>, k: &str, p: &str) -> Result<String, String> {
    opt_str(o, k, p)?.ok_or_else(|| format!("{p}.{k} must be a string"))
}

fn object<'a>(v: &'a Value, p: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{p} must be an object"))
}

fn only(o: &Map<String, Value>, allowed: &[&str]) -> bool {
    o.keys().all(|k| allowed.contains(&k.as_str()))
}

/// A `{cachePoint: {type: default, ttl?}}` block as an IR cache mark.
pub(super) fn cache_point_of(v: &Value) -> Option<CacheControl> {
    let ("cachePoint", cp) = single(v)? else {
        return None;
    };
    let cp = cp.as_object()?;
    if cp.get("type")? != "default" || !only(cp, &["type", "ttl"]) {
        return None;
    }
    let ttl = match cp.get("ttl") {
        None => None,
        Some(t) => Some(t.as_str()?.to_string()),
    };
    Some(CacheControl {
        kind: "ephemeral".into(),
        ttl,
    })
}

/// An IR cache mark as a `cachePoint` block (every kind is Converse's `default`).
pub(super) fn cache_point_json(c: &CacheControl) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("default"));
    if let Some(t) = &c.ttl {
        o.insert("ttl".into(), json!(t));
    }
    json!({ "cachePoint": o })
}

fn cache_slot(b: &mut Block) -> Option<&mut Option<CacheControl>> {
    match b {
        Block::Text { cache, .. }
        | Block::Image { cache, .. }
        | Block::Document { cache, .. }
        | Block::ToolResult { cache, .. } => Some(cache),
        _ => None,
    }
}

pub(super) fn cache_of(b: &Block) -> Option<&CacheControl> {
    match b {
        Block::Text { cache, .. }
        | Block::Image { cache, .. }
        | Block::Document { cache, .. }
        | Block::ToolResult { cache, .. } => cache.as_ref(),
        _ => None,
    }
}

fn raw(v: Value) -> Block {
    Block::Raw {
        protocol: Protocol::Bedrock,
        value: v,
    }
}

fn text(t: String) -> Block {
    Block::Text {
        text: t,
        citations: Vec::new(),
        cache: None,
    }
}

/// A `content` list -> IR blocks; `path` names the list in errors (`messages[2].content`).
pub(super) fn parse_blocks(
    list: Vec<Value>,
    path: &str,
    hints: &mut Hints,
) -> Result<Vec<Block>, String> {
    let mut out: Vec<Block> = Vec::with_capacity(list.len());
    for (j, v) in list.into_iter().enumerate() {
        let p = format!("{path}[{j}]");
        if !v.is_object() {
            return Err(format!("{p}: a content block must be an object"));
        }
        if let Some(c) = cache_point_of(&v)
            && let Some(slot) = out.last_mut().and_then(cache_slot)
            && slot.is_none()
        {
            *slot = Some(c);
            continue;
        }
        let at = out.len().to_string();
        let b = parse_block(&v, &p, &at, hints)?;
        out.push(b.unwrap_or_else(|| raw(v)));
    }
    Ok(out)
}

/// One block; `Ok(None)` keeps it raw.
fn parse_block(v: &Value, p: &str, at: &str, hints: &mut Hints) -> Result<Option<Block>, String> {
    let Some((kind, inner)) = single(v) else {
        return Ok(None);
    };
    let p = format!("{p}.{kind}");
    match kind {
        "text" => match inner {
            Value::String(t) => Ok(Some(text(t.clone()))),
            _ => Err(format!("{p} must be a string")),
        },
        "image" => image_of(inner, &p),
        "document" => document_of(inner, &p, at, hints),
        "audio" => audio_of(inner, &p),
        "toolUse" => {
            let o = object(inner, &p)?;
            let id = req_str(o, "toolUseId", &p)?;
            let name = req_str(o, "name", &p)?;
            let input = o
                .get("input")
                .cloned()
                .ok_or_else(|| format!("{p}.input is missing"))?;
            if !only(o, &["toolUseId", "name", "input"]) {
                return Ok(None); // `type: server_tool_use` and the like stay raw
            }
            Ok(Some(Block::ToolUse {
                id,
                name,
                input,
                thought_signature: None,
            }))
        }
        "toolResult" => tool_result_of(inner, &p, at, hints),
        "reasoningContent" => reasoning_of(inner, &p),
        "citationsContent" => citations_content_of(inner, &p, at, hints),
        _ => Ok(None),
    }
}

fn image_of(inner: &Value, p: &str) -> Result<Option<Block>, String> {
    let o = object(inner, p)?;
    let format = req_str(o, "format", p)?;
    let src = object(
        o.get("source").unwrap_or(&Value::Null),
        &format!("{p}.source"),
    )?;
    if !only(o, &["format", "source"]) {
        return Ok(None); // an `error` member (a response image that failed) stays raw
    }
    let mime = media::mime_of(Kind::Image, &format);
    let source =
        mime.and_then(|m| media::source_of(Kind::Image, &Value::Object(src.clone()), Some(m)));
    Ok(source.map(|source| Block::Image {
        source,
        detail: None,
        cache: None,
    }))
}

fn audio_of(inner: &Value, p: &str) -> Result<Option<Block>, String> {
    let o = object(inner, p)?;
    let format = req_str(o, "format", p)?;
    let src = object(
        o.get("source").unwrap_or(&Value::Null),
        &format!("{p}.source"),
    )?;
    if !only(o, &["format", "source"]) {
        return Ok(None);
    }
    let mime = media::mime_of(Kind::Audio, &format);
    let source =
        mime.and_then(|m| media::source_of(Kind::Audio, &Value::Object(src.clone()), Some(m)));
    Ok(source.map(|source| Block::Audio { source }))
}

fn document_of(
    inner: &Value,
    p: &str,
    at: &str,
    hints: &mut Hints,
) -> Result<Option<Block>, String> {
    let o = object(inner, p)?;
    let name = req_str(o, "name", p)?;
    let src = object(
        o.get("source").unwrap_or(&Value::Null),
        &format!("{p}.source"),
    )?;
    let format = opt_str(o, "format", p)?;
    let context = opt_str(o, "context", p)?;
    let enabled = match o.get("citations") {
        None => None,
        Some(c) => Some(
            c.get("enabled")
                .and_then(Value::as_bool)
                .ok_or_else(|| format!("{p}.citations.enabled must be a boolean"))?,
        ),
    };
    if !only(o, &["format", "name", "source", "context", "citations"]) {
        return Ok(None);
    }
    let mime = match &format {
        Some(f) => match media::mime_of(Kind::Document, f) {
            Some(m) => Some(m),
            None => return Ok(None),
        },
        None => None,
    };
    let Some(source) = media::source_of(Kind::Document, &Value::Object(src.clone()), mime) else {
        return Ok(None);
    };
    // A format-less s3 or text source would be written with a format guessed from the name.
    if format.is_none() && !matches!(source, Media::Text { .. }) {
        return Ok(None);
    }
    if enabled == Some(false) {
        hints.set(at, "citationsOff", json!(true));
    }
    Ok(Some(Block::Document {
        source,
        title: Some(name),
        context,
        citations: enabled == Some(true),
        cache: None,
    }))
}

fn tool_result_of(
    inner: &Value,
    p: &str,
    at: &str,
    hints: &mut Hints,
) -> Result<Option<Block>, String> {
    let o = object(inner, p)?;
    let id = req_str(o, "toolUseId", p)?;
    let Some(Value::Array(parts)) = o.get("content") else {
        return Err(format!("{p}.content must be an array"));
    };
    let status = opt_str(o, "status", p)?;
    let is_error = match status.as_deref() {
        None | Some("success") => false,
        Some("error") => true,
        Some(_) => return Ok(None),
    };
    if !only(o, &["toolUseId", "content", "status"]) {
        return Ok(None);
    }
    let mut content = Vec::with_capacity(parts.len());
    let mut part_hints = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let pp = format!("{p}.content[{k}]");
        if !part.is_object() {
            return Err(format!("{pp}: a tool result part must be an object"));
        }
        let b = match single(part) {
            Some(("text", Value::String(t))) => Some(text(t.clone())),
            Some(("text", _)) => return Err(format!("{pp}.text must be a string")),
            Some(("json", v)) => {
                part_hints.push(k);
                Some(text(v.to_string()))
            }
            Some(("image", v)) => image_of(v, &format!("{pp}.image"))?,
            Some(("document", v)) => {
                document_of(v, &format!("{pp}.document"), &format!("{at}/{k}"), hints)?
            }
            _ => None,
        };
        content.push(b.unwrap_or_else(|| raw(part.clone())));
    }
    for k in part_hints {
        hints.set(&format!("{at}/{k}"), "json", json!(true));
    }
    if status.as_deref() == Some("success") {
        hints.set(at, "status", json!("success"));
    }
    Ok(Some(Block::ToolResult {
        tool_use_id: id,
        name: None,
        content,
        is_error,
        cache: None,
    }))
}

fn reasoning_of(inner: &Value, p: &str) -> Result<Option<Block>, String> {
    object(inner, p)?;
    match single(inner) {
        Some(("reasoningText", rt)) => {
            let pp = format!("{p}.reasoningText");
            let o = object(rt, &pp)?;
            let text = req_str(o, "text", &pp)?;
            let signature = opt_str(o, "signature", &pp)?;
            if !only(o, &["text", "signature"]) {
                return Ok(None);
            }
            Ok(Some(Block::Thinking { text, signature }))
        }
        Some(("redactedContent", d)) => match d {
            Value::String(data) => Ok(Some(Block::RedactedThinking { data: data.clone() })),
            _ => Err(format!("{p}.redactedContent must be a base64 string")),
        },
        _ => Ok(None),
    }
}

/// The text of a `citationsContent.content` list, when every item is exactly `{text}`.
pub(super) fn generated_text(content: &Value) -> Option<String> {
    let mut out = String::new();
    for c in content.as_array()? {
        let ("text", Value::String(t)) = single(c)? else {
            return None;
        };
        out.push_str(t);
    }
    Some(out)
}

/// One Converse citation in IR form.
pub(crate) fn citation_of(c: &Value) -> Citation {
    let cited: Vec<&str> = c
        .get("sourceContent")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.get("text").and_then(Value::as_str))
        .collect();
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    Citation {
        protocol: Protocol::Bedrock,
        raw: c.clone(),
        cited_text: (!cited.is_empty()).then(|| cited.concat()),
        source: s(c.get("title"))
            .or_else(|| s(c.pointer("/location/web/url")))
            .or_else(|| s(c.get("source"))),
    }
}

fn citations_content_of(
    inner: &Value,
    p: &str,
    at: &str,
    hints: &mut Hints,
) -> Result<Option<Block>, String> {
    let o = object(inner, p)?;
    let (Some(content), Some(citations)) = (o.get("content"), o.get("citations")) else {
        return Ok(None);
    };
    let text = generated_text(content)
        .ok_or_else(|| format!("{p}.content must be an array of {{text}} objects"))?;
    let citations: Vec<Citation> = match citations {
        Value::Array(a) if a.iter().all(Value::is_object) => a.iter().map(citation_of).collect(),
        _ => return Err(format!("{p}.citations must be an array of objects")),
    };
    if !only(o, &["content", "citations"]) {
        return Ok(None);
    }
    let one = content.as_array().is_some_and(|a| a.len() == 1);
    if !one || citations.is_empty() {
        hints.set(at, "citationsContent", content.clone());
    }
    Ok(Some(Block::Text {
        text,
        citations,
        cache: None,
    }))
}
