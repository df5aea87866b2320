//! Gemini `Part`s <-> IR blocks (shared by requests and responses).
//!
//! ```text
//!   {text}                         Text            {text, thought:true}  Thinking
//!   {inlineData{mimeType,data}}    Image | Document | Audio (Base64, by MIME type)
//!   {fileData{mimeType,fileUri}}   Image | Document | Audio (Url)
//!   {functionCall{name,args,id?}}  ToolUse (id minted when absent)
//!   {functionResponse{name,response,id?}}  ToolResult (response.output / .error / whole object)
//!   thoughtSignature on a function call -> ToolUse.thought_signature;
//!   on any other non-thought part -> Thinking{text:"", signature} just before that block,
//!   folded back onto the following part by the writer.
//!   anything else (executableCode, codeExecutionResult, videoMetadata, ...) -> Raw
//! ```

use super::MINTED_ID_PREFIX;
use super::keys::camel_map;
use crate::Protocol;
use crate::ir::{Block, LossReport, Media};
use serde_json::{Map, Value, json};

/// Ids for function calls Gemini sent without one, and the pairing of function responses to
/// them (by name, in order, within the preceding model turn).
#[derive(Default)]
pub(super) struct Ids {
    /// Calls of the latest model turn not yet answered: (name, id).
    open: Vec<(String, String)>,
}

impl Ids {
    fn call_id(
        &mut self,
        given: Option<String>,
        name: &str,
        mint: impl FnOnce() -> String,
    ) -> String {
        let id = given.unwrap_or_else(mint);
        self.open.push((name.to_string(), id.clone()));
        id
    }

    fn response_id(&mut self, given: Option<String>, name: &str) -> String {
        if let Some(id) = given {
            self.open.retain(|(_, i)| *i != id);
            return id;
        }
        match self.open.iter().position(|(n, _)| n == name) {
            Some(at) => self.open.remove(at).1,
            None => format!("{MINTED_ID_PREFIX}{name}"),
        }
    }

    /// A new model turn starts: earlier calls can no longer be answered by position.
    pub(super) fn new_turn(&mut self) {
        self.open.clear();
    }
}

fn s(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

fn media_block(mime: &str, source: Media) -> Block {
    if mime.starts_with("image/") {
        Block::Image {
            source,
            detail: None,
            cache: None,
        }
    } else if mime.starts_with("audio/") {
        Block::Audio { source }
    } else {
        Block::Document {
            source,
            title: None,
            context: None,
            citations: false,
            cache: None,
        }
    }
}

const KNOWN: &[&str] = &[
    "text",
    "thought",
    "thoughtSignature",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
];

/// One part -> IR blocks. `mint` gives the id of a call without one.
pub(super) fn parse_part(
    v: Value,
    ids: &mut Ids,
    mint: impl FnOnce() -> String,
) -> Result<Vec<Block>, String> {
    let Value::Object(raw) = v else {
        return Err("a part must be an object".into());
    };
    let mut o = camel_map(raw.clone());
    let raw_block = || {
        vec![Block::Raw {
            protocol: Protocol::Gemini,
            value: Value::Object(camel_map(raw.clone())),
        }]
    };
    if o.keys().any(|k| !KNOWN.contains(&k.as_str())) {
        return Ok(raw_block());
    }
    let signature = match o.remove("thoughtSignature") {
        Some(Value::String(sig)) => Some(sig),
        Some(_) => return Ok(raw_block()),
        None => None,
    };
    let thought = match o.remove("thought") {
        Some(Value::Bool(b)) => b,
        Some(_) => return Ok(raw_block()),
        None => false,
    };
    if o.len() > 1 {
        return Ok(raw_block());
    }
    let mut out = Vec::new();
    let lead = |out: &mut Vec<Block>, sig: Option<String>| {
        if let Some(signature) = sig {
            out.push(Block::Thinking {
                text: String::new(),
                signature: Some(signature),
            });
        }
    };
    match o.into_iter().next() {
        Some((k, Value::String(text))) if k == "text" && thought => {
            out.push(Block::Thinking { text, signature });
        }
        Some((k, Value::String(text))) if k == "text" => {
            lead(&mut out, signature);
            out.push(Block::Text {
                text,
                citations: Vec::new(),
                cache: None,
            });
        }
        Some((k, Value::Object(d))) if k == "inlineData" && !thought => {
            let d = camel_map(d);
            let (Some(mime), Some(data)) = (s(&d, "mimeType"), s(&d, "data")) else {
                return Ok(raw_block());
            };
            if d.len() != 2 {
                return Ok(raw_block());
            }
            lead(&mut out, signature);
            out.push(media_block(
                &mime,
                Media::Base64 {
                    media_type: mime.clone(),
                    data,
                },
            ));
        }
        Some((k, Value::Object(d))) if k == "fileData" && !thought => {
            let d = camel_map(d);
            let Some(uri) = s(&d, "fileUri") else {
                return Ok(raw_block());
            };
            let mime = s(&d, "mimeType");
            if d.len() != 1 + usize::from(mime.is_some()) {
                return Ok(raw_block());
            }
            lead(&mut out, signature);
            let kind = mime.clone().unwrap_or_default();
            out.push(media_block(
                &kind,
                Media::Url {
                    url: uri,
                    media_type: mime,
                },
            ));
        }
        Some((k, Value::Object(c))) if k == "functionCall" && !thought => {
            let mut c = camel_map(c);
            let Some(name) = s(&c, "name") else {
                return Ok(raw_block());
            };
            c.remove("name");
            let input = c.remove("args").unwrap_or_else(|| json!({}));
            let given = match c.remove("id") {
                Some(Value::String(id)) => Some(id),
                None => None,
                Some(_) => return Ok(raw_block()),
            };
            if !c.is_empty() {
                return Ok(raw_block());
            }
            let id = ids.call_id(given, &name, mint);
            out.push(Block::ToolUse {
                id,
                name,
                input,
                thought_signature: signature,
            });
        }
        Some((k, Value::Object(r))) if k == "functionResponse" && !thought => {
            let mut r = camel_map(r);
            let Some(name) = s(&r, "name") else {
                return Ok(raw_block());
            };
            r.remove("name");
            let response = r.remove("response").unwrap_or_else(|| json!({}));
            let given = match r.remove("id") {
                Some(Value::String(id)) => Some(id),
                None => None,
                Some(_) => return Ok(raw_block()),
            };
            if !r.is_empty() {
                return Ok(raw_block());
            }
            lead(&mut out, signature);
            let (text, is_error) = match &response {
                Value::Object(m) if m.len() == 1 => match m.iter().next() {
                    Some((k, Value::String(t))) if k == "output" => (t.clone(), false),
                    Some((k, Value::String(t))) if k == "error" => (t.clone(), true),
                    _ => (response.to_string(), false),
                },
                _ => (response.to_string(), false),
            };
            out.push(Block::ToolResult {
                tool_use_id: ids.response_id(given, &name),
                name: Some(name),
                content: vec![Block::Text {
                    text,
                    citations: Vec::new(),
                    cache: None,
                }],
                is_error,
                cache: None,
            });
        }
        _ => return Ok(raw_block()),
    }
    Ok(out)
}

fn media_part(source: &Media, fallback_mime: &str, path: &str, loss: &mut LossReport) -> Value {
    match source {
        Media::Base64 { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Media::Url { url, media_type } => {
            json!({"fileData": {"mimeType": media_type.clone().unwrap_or_else(|| fallback_mime.to_string()), "fileUri": url}})
        }
        Media::FileId { id } => {
            // Gemini names uploaded files by URI; a bare id from another provider means nothing.
            loss.drop_field(format!("{path}.file_id"));
            json!({"fileData": {"mimeType": fallback_mime, "fileUri": id}})
        }
        Media::Text { text, .. } => json!({"text": text}),
    }
}

/// IR blocks -> parts. `name_of` finds a tool's name by call id (for results that lack one).
pub(super) fn write_parts(
    blocks: &[Block],
    path: &str,
    loss: &mut LossReport,
    name_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::new();
    let mut pending_sig: Option<String> = None;
    for (k, b) in blocks.iter().enumerate() {
        let p = format!("{path}[{k}]");
        let part = match b {
            Block::Thinking { text, signature } if text.is_empty() && signature.is_some() => {
                if pending_sig.is_some() {
                    loss.drop_field(format!("{p}.signature"));
                }
                pending_sig = signature.clone();
                continue;
            }
            Block::Thinking { text, signature } => {
                let mut o = json!({"text": text, "thought": true});
                if let Some(sig) = signature {
                    o["thoughtSignature"] = json!(sig);
                }
                parts.push(o);
                continue;
            }
            Block::Text {
                text,
                citations,
                cache,
            } => {
                if citations.iter().any(|c| c.protocol != Protocol::Gemini) {
                    loss.drop_field(format!("{p}.citations"));
                }
                if cache.is_some() {
                    loss.drop_field(format!("{p}.cache_control"));
                }
                json!({"text": text})
            }
            Block::Refusal { text } => json!({"text": text}),
            Block::Image {
                source,
                detail,
                cache,
            } => {
                if detail.is_some() {
                    loss.drop_field(format!("{p}.detail"));
                }
                if cache.is_some() {
                    loss.drop_field(format!("{p}.cache_control"));
                }
                media_part(source, "image/jpeg", &p, loss)
            }
            Block::Document {
                source,
                title,
                context,
                citations,
                cache,
            } => {
                loss.drop_present(&p, &[(title.is_some(), "title")]);
                loss.drop_present(&p, &crate::ir::document_extras(context, *citations, cache));
                media_part(source, "application/pdf", &p, loss)
            }
            Block::Audio { source } => media_part(source, "audio/wav", &p, loss),
            Block::ToolUse {
                id,
                name,
                input,
                thought_signature,
            } => {
                let mut call = json!({"name": name, "args": input});
                if !id.starts_with(MINTED_ID_PREFIX) && !id.is_empty() {
                    call["id"] = json!(id);
                }
                let mut o = json!({"functionCall": call});
                if let Some(sig) = thought_signature.clone().or(pending_sig.take()) {
                    o["thoughtSignature"] = json!(sig);
                }
                parts.push(o);
                continue;
            }
            Block::ToolResult {
                tool_use_id,
                name,
                content,
                is_error,
                cache,
            } => {
                if cache.is_some() {
                    loss.drop_field(format!("{p}.cache_control"));
                }
                let name = name
                    .clone()
                    .or_else(|| name_of(tool_use_id))
                    .unwrap_or_else(|| {
                        loss.drop_field(format!("{p}.name"));
                        tool_use_id.clone()
                    });
                let mut texts = Vec::new();
                for (j, c) in content.iter().enumerate() {
                    match c {
                        Block::Text { text, .. } => texts.push(text.clone()),
                        _ => loss.drop_field(format!("{p}.content[{j}]")),
                    }
                }
                let text = texts.join("\n");
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) if !*is_error => Value::Object(m),
                    _ if *is_error => json!({"error": text}),
                    _ => json!({"output": text}),
                };
                let mut r = json!({"name": name, "response": response});
                if !tool_use_id.starts_with(MINTED_ID_PREFIX) && !tool_use_id.is_empty() {
                    r["id"] = json!(tool_use_id);
                }
                json!({"functionResponse": r})
            }
            Block::Raw {
                protocol: Protocol::Gemini,
                value,
            } => value.clone(),
            Block::RedactedThinking { .. } | Block::Raw { .. } => {
                loss.drop_field(p);
                continue;
            }
        };
        let mut part = part;
        if let Some(sig) = pending_sig.take() {
            part["thoughtSignature"] = json!(sig);
        }
        parts.push(part);
    }
    if let Some(sig) = pending_sig {
        parts.push(json!({"text": "", "thoughtSignature": sig}));
    }
    parts
}
