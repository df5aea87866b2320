//! Gemini `Part`s <-> IR blocks (shared by requests and responses; keys already camelCase).
//!
//! ```text
//!   {text}                          Text           {text, thought:true}  Thinking
//!   {inlineData{mimeType,data}}     Image | Document | Audio (Base64; image/*, audio/*, else)
//!   {fileData{mimeType,fileUri}}    Image | Document | Audio (Url)
//!   {functionCall{name,args,id?}}   ToolUse (id minted `gcall_...` when absent, never written)
//!   {functionResponse{name,response,id?,parts?}}
//!                                   ToolResult: response {output: "s"} -> text "s";
//!                                   {error: "s"} -> text "s", is_error; any other object ->
//!                                   its JSON text; `parts` media -> Image/Document/Audio after it
//!   anything else (executableCode, codeExecutionResult, videoMetadata, ...) -> Raw
//! ```
//!
//! Thought signatures: on a function call -> `ToolUse.thought_signature`; on a thought part ->
//! `Thinking.signature`; on any other part (the text after the thoughts, typically) -> a
//! `Thinking { text: "", signature }` right before that part's block, which is how an Anthropic
//! or OpenAI client sees it (a signed, empty thinking block) and hands it back. The writer folds
//! such a block onto the following part; a part that carried only a signature is remembered
//! by index (`_partHints.looseSignatures`) so it goes back as it came. A signature-only block
//! with nothing to fold onto is written as `{"text": "", "thoughtSignature": ...}`.
//!
//! A function call from another protocol goes out without a signature: none is invented.
//! (Gemini 3 documents the dummy `skip_thought_signature_validator` for histories it did not
//! produce; busbar does not send it on its own.)

use super::MINTED_ID_PREFIX;
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
    fn call_id(&mut self, given: Option<String>, name: &str, minted: String) -> String {
        let id = given.unwrap_or(minted);
        self.open.push((name.to_string(), id.clone()));
        id
    }

    fn response_id(&mut self, given: Option<String>, name: &str, minted: String) -> String {
        if let Some(id) = given {
            self.open.retain(|(_, i)| *i != id);
            return id;
        }
        match self.open.iter().position(|(n, _)| n == name) {
            Some(at) => self.open.remove(at).1,
            None => minted,
        }
    }

    /// A new model turn starts: earlier calls can no longer be answered by position.
    pub(super) fn new_turn(&mut self) {
        self.open.clear();
    }
}

/// Per-message facts a same-protocol trip needs that the IR blocks cannot say, by block index.
#[derive(Default, Debug, PartialEq)]
pub(super) struct PartHints {
    /// Signature-only blocks that were parts of their own (not on the following part).
    loose: Vec<usize>,
    /// Function calls that had no `args` (the IR holds `{}`).
    no_args: Vec<usize>,
}

impl PartHints {
    /// As a `_partHints` value, or `None` when there is nothing to remember.
    pub(super) fn to_json(&self) -> Option<Value> {
        if self.loose.is_empty() && self.no_args.is_empty() {
            return None;
        }
        Some(json!({"looseSignatures": self.loose, "noArgs": self.no_args}))
    }

    /// Reads a `_partHints` value (anything malformed reads as no hints).
    pub(super) fn from_json(v: Option<&Value>) -> Self {
        let list = |k: &str| -> Vec<usize> {
            v.and_then(|v| v.get(k))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .filter_map(|n| usize::try_from(n).ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        PartHints {
            loose: list("looseSignatures"),
            no_args: list("noArgs"),
        }
    }
}

/// Whether `sig` is what Gemini's `bytes` field takes in JSON: base64 (standard or URL-safe
/// alphabet, padding optional but right when present, no stray low bits), the same test the
/// google-genai SDK applies. Anything else would fail the request (and the SDK's parse), so the
/// parser keeps such a part raw and the writer reports such a signature instead of sending it
/// (a Responses item id travelling as a signature, for one).
pub(super) fn is_base64(sig: &str) -> bool {
    use base64::Engine;
    use base64::alphabet::{STANDARD, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Padding optional but right when present; no stray low bits (the crate's default).
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_ENGINE: GeneralPurpose = GeneralPurpose::new(&STANDARD, CONFIG);
    const URL_SAFE_ENGINE: GeneralPurpose = GeneralPurpose::new(&URL_SAFE, CONFIG);
    STANDARD_ENGINE.decode(sig).is_ok() || URL_SAFE_ENGINE.decode(sig).is_ok()
}

fn s(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

fn text(text: String) -> Block {
    Block::Text {
        text,
        citations: Vec::new(),
        cache: None,
    }
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

/// `inlineData` / `fileData` (exactly those fields) -> a media block; anything else -> None.
fn media_of(key: &str, v: &Value) -> Option<Block> {
    let d = v.as_object()?;
    match key {
        "inlineData" if d.len() == 2 => {
            let (mime, data) = (s(d, "mimeType")?, s(d, "data")?);
            Some(media_block(
                &mime,
                Media::Base64 {
                    media_type: mime.clone(),
                    data,
                },
            ))
        }
        "fileData" => {
            let uri = s(d, "fileUri")?;
            let mime = s(d, "mimeType");
            if d.len() != 1 + usize::from(mime.is_some()) {
                return None;
            }
            let kind = mime.clone().unwrap_or_default();
            Some(media_block(
                &kind,
                Media::Url {
                    url: uri,
                    media_type: mime,
                },
            ))
        }
        _ => None,
    }
}

/// The text a function response becomes, and whether it reports an error. Inverse of
/// [`response_of`]: `{"output": s}` is `s` unless `s` itself reads as a JSON object (then the
/// whole response is kept as JSON text, so the writer cannot mistake it).
fn result_text(response: &Map<String, Value>) -> (String, bool) {
    if let (1, Some((k, Value::String(t)))) = (response.len(), response.iter().next()) {
        let object_text = matches!(serde_json::from_str::<Value>(t), Ok(Value::Object(_)));
        if k == "output" && !object_text {
            return (t.clone(), false);
        }
        if k == "error" {
            return (t.clone(), true);
        }
    }
    (Value::Object(response.clone()).to_string(), false)
}

/// A tool result's text -> `functionResponse.response`.
fn response_of(text: &str, is_error: bool) -> Value {
    if is_error {
        return json!({"error": text});
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Value::Object(m),
        _ => json!({"output": text}),
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

/// One part -> IR blocks, and whether it was a signature alone. `minted` is the id for a call
/// or response without one.
fn parse_part(v: Value, ids: &mut Ids, minted: String) -> Result<(Vec<Block>, Flags), String> {
    let Value::Object(o) = v else {
        return Err("a part must be an object".into());
    };
    let raw = |o: &Map<String, Value>| {
        let block = Block::Raw {
            protocol: Protocol::Gemini,
            value: Value::Object(o.clone()),
        };
        Ok((vec![block], Flags::default()))
    };
    if o.keys().any(|k| !KNOWN.contains(&k.as_str())) {
        return raw(&o);
    }
    let signature = match o.get("thoughtSignature") {
        Some(Value::String(sig)) if is_base64(sig) => Some(sig.clone()),
        Some(_) => return raw(&o),
        None => None,
    };
    let thought = match o.get("thought") {
        Some(Value::Bool(true)) => true,
        Some(_) => return raw(&o),
        None => false,
    };
    let data: Vec<(&String, &Value)> = o
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "thought" | "thoughtSignature"))
        .collect();
    let mut out = Vec::new();
    let mut flags = Flags::default();
    let lead = |out: &mut Vec<Block>| {
        if let Some(signature) = signature.clone() {
            out.push(Block::Thinking {
                text: String::new(),
                signature: Some(signature),
            });
        }
    };
    match data.as_slice() {
        [] if !thought && signature.is_some() => {
            lead(&mut out);
            flags.loose = true;
        }
        [(k, Value::String(t))] if *k == "text" && thought => {
            out.push(Block::Thinking {
                text: t.clone(),
                signature,
            });
        }
        _ if thought => return raw(&o),
        [(k, Value::String(t))] if *k == "text" => {
            lead(&mut out);
            out.push(text(t.clone()));
        }
        [(k, v)] if *k == "inlineData" || *k == "fileData" => match media_of(k, v) {
            Some(b) => {
                lead(&mut out);
                out.push(b);
            }
            None => return raw(&o),
        },
        [(k, Value::Object(c))] if *k == "functionCall" => {
            let (Some(name), true) = (s(c, "name"), c.keys().all(|k| CALL_KEYS.contains(&&**k)))
            else {
                return raw(&o);
            };
            let given = match c.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                None => None,
                Some(_) => return raw(&o),
            };
            flags.no_args = !c.contains_key("args");
            let input = c.get("args").cloned().unwrap_or_else(|| json!({}));
            let id = ids.call_id(given, &name, minted);
            out.push(Block::ToolUse {
                id,
                name,
                input,
                thought_signature: signature,
            });
        }
        [(k, Value::Object(r))] if *k == "functionResponse" => {
            let known = r.keys().all(|k| RESPONSE_KEYS.contains(&&**k));
            let (Some(name), Some(Value::Object(response)), true) =
                (s(r, "name"), r.get("response"), known)
            else {
                return raw(&o);
            };
            let given = match r.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                None => None,
                Some(_) => return raw(&o),
            };
            let (t, is_error) = result_text(response);
            let mut content = vec![text(t)];
            for p in r
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let media = p.as_object().and_then(|p| match p.iter().next() {
                    Some((k, v)) if p.len() == 1 => media_of(k, v),
                    _ => None,
                });
                match media {
                    Some(b) => content.push(b),
                    None => return raw(&o),
                }
            }
            if r.get("parts").is_some_and(|p| !p.is_array()) {
                return raw(&o);
            }
            lead(&mut out);
            out.push(Block::ToolResult {
                tool_use_id: ids.response_id(given, &name, minted),
                name: Some(name),
                content,
                is_error,
                cache: None,
            });
        }
        _ => return raw(&o),
    }
    Ok((out, flags))
}

const CALL_KEYS: &[&str] = &["name", "args", "id"];
const RESPONSE_KEYS: &[&str] = &["name", "response", "id", "parts"];

#[derive(Default)]
struct Flags {
    loose: bool,
    no_args: bool,
}

/// A list of parts -> IR blocks and the hints a same-protocol trip needs. `mint(k)` is the id of
/// part `k`'s call (or response) when it has none; errors name `path`.
pub(super) fn parse_parts(
    parts: Vec<Value>,
    ids: &mut Ids,
    mint: &dyn Fn(usize) -> String,
    path: &str,
) -> Result<(Vec<Block>, PartHints), String> {
    let mut blocks = Vec::new();
    let mut hints = PartHints::default();
    for (k, p) in parts.into_iter().enumerate() {
        let (got, flags) =
            parse_part(p, ids, mint(k)).map_err(|e| format!("{path}.parts[{k}]: {e}"))?;
        if flags.loose {
            hints.loose.push(blocks.len());
        }
        if flags.no_args {
            hints
                .no_args
                .push(blocks.len() + got.len().saturating_sub(1));
        }
        blocks.extend(got);
    }
    Ok((blocks, hints))
}

fn media_part(source: &Media, fallback_mime: &str, path: &str, loss: &mut LossReport) -> Value {
    match source {
        Media::Base64 { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Media::Url { url, media_type } => {
            let mime = media_type
                .clone()
                .unwrap_or_else(|| fallback_mime.to_string());
            json!({"fileData": {"mimeType": mime, "fileUri": url}})
        }
        Media::FileId { id } => {
            // Gemini names uploaded files by URI; another provider's file id means nothing to it.
            loss.drop_field(format!("{path}.file_id"));
            json!({"fileData": {"mimeType": fallback_mime, "fileUri": id}})
        }
        Media::Text { text, .. } => json!({"text": text}),
    }
}

/// Whether a pending signature can ride on the part `b` becomes.
fn takes_signature(b: &Block) -> bool {
    match b {
        Block::Thinking { .. } | Block::RedactedThinking { .. } => false,
        Block::ToolUse {
            thought_signature, ..
        } => !thought_signature.as_deref().is_some_and(is_base64),
        Block::Raw { protocol, value } => {
            *protocol == Protocol::Gemini && value.get("thoughtSignature").is_none()
        }
        _ => true,
    }
}

/// How [`write_parts`] is called.
pub(super) struct WriteCtx<'a> {
    /// Where the blocks sit, for loss paths (`messages[2].content`).
    pub(super) path: &'a str,
    /// Finds a tool's name by call id (for results that lack one).
    pub(super) name_of: &'a dyn Fn(&str) -> Option<String>,
    /// Hints from a same-protocol parse.
    pub(super) hints: PartHints,
    /// Response content: Gemini citations are written by the caller (`citationMetadata`).
    pub(super) response: bool,
}

/// IR blocks -> parts.
pub(super) fn write_parts(
    blocks: &[Block],
    cx: &WriteCtx<'_>,
    loss: &mut LossReport,
) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::new();
    let mut pending: Option<String> = None;
    for (k, b) in blocks.iter().enumerate() {
        let p = format!("{}[{k}]", cx.path);
        let part = match b {
            Block::Thinking {
                signature: Some(sig),
                ..
            } if !is_base64(sig) => {
                loss.drop_field(format!("{p}.signature"));
                match b {
                    Block::Thinking { text, .. } if !text.is_empty() => {
                        json!({"text": text, "thought": true})
                    }
                    _ => continue,
                }
            }
            Block::Thinking {
                text,
                signature: Some(sig),
            } if text.is_empty() => {
                let fold =
                    !cx.hints.loose.contains(&k) && blocks.get(k + 1).is_some_and(takes_signature);
                if pending.is_some() {
                    loss.drop_field(format!("{p}.signature"));
                }
                if fold {
                    pending = Some(sig.clone());
                } else if cx.hints.loose.contains(&k) {
                    parts.push(json!({"thoughtSignature": sig}));
                } else {
                    parts.push(json!({"text": "", "thoughtSignature": sig}));
                }
                continue;
            }
            Block::Thinking { text, signature } => {
                let mut o = json!({"text": text, "thought": true});
                if let Some(sig) = signature {
                    o["thoughtSignature"] = json!(sig);
                }
                o
            }
            Block::Text {
                text,
                citations,
                cache,
            } => {
                let foreign = citations
                    .iter()
                    .any(|c| !cx.response || c.protocol != Protocol::Gemini);
                loss.drop_present(
                    &p,
                    &[(foreign, "citations"), (cache.is_some(), "cache_control")],
                );
                json!({"text": text})
            }
            Block::Refusal { text } => json!({"text": text}),
            Block::Image {
                source,
                detail,
                cache,
            } => {
                loss.drop_present(
                    &p,
                    &[
                        (detail.is_some(), "detail"),
                        (cache.is_some(), "cache_control"),
                    ],
                );
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
                let mut call = Map::new();
                call.insert("name".into(), json!(name));
                let empty = input.as_object().is_some_and(Map::is_empty);
                if !(empty && cx.hints.no_args.contains(&k)) {
                    call.insert("args".into(), input.clone());
                }
                if !id.starts_with(MINTED_ID_PREFIX) && !id.is_empty() {
                    call.insert("id".into(), json!(id));
                }
                let mut o = json!({"functionCall": call});
                match thought_signature {
                    Some(sig) if is_base64(sig) => o["thoughtSignature"] = json!(sig),
                    Some(_) => loss.drop_field(format!("{p}.thought_signature")),
                    None => {}
                }
                o
            }
            Block::ToolResult {
                tool_use_id,
                name,
                content,
                is_error,
                cache,
            } => tool_result(
                tool_use_id,
                name,
                content,
                *is_error,
                cache.is_some(),
                &p,
                cx,
                loss,
            ),
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
        if let (Some(sig), Value::Object(o)) = (pending.take(), &mut part) {
            o.insert("thoughtSignature".into(), json!(sig));
        }
        parts.push(part);
    }
    parts
}

#[allow(clippy::too_many_arguments)]
fn tool_result(
    tool_use_id: &str,
    name: &Option<String>,
    content: &[Block],
    is_error: bool,
    cache: bool,
    p: &str,
    cx: &WriteCtx<'_>,
    loss: &mut LossReport,
) -> Value {
    if cache {
        loss.drop_field(format!("{p}.cache_control"));
    }
    let name = name
        .clone()
        .or_else(|| (cx.name_of)(tool_use_id))
        .unwrap_or_else(|| {
            loss.drop_field(format!("{p}.name"));
            tool_use_id.to_string()
        });
    let mut texts = Vec::new();
    let mut media = Vec::new();
    for (j, c) in content.iter().enumerate() {
        let cp = format!("{p}.content[{j}]");
        match c {
            Block::Text { text, .. } => texts.push(text.clone()),
            Block::Image { source, .. }
            | Block::Audio { source }
            | Block::Document { source, .. }
                if matches!(source, Media::Base64 { .. } | Media::Url { .. }) =>
            {
                let fallback = match c {
                    Block::Image { .. } => "image/jpeg",
                    Block::Audio { .. } => "audio/wav",
                    _ => "application/pdf",
                };
                if let Block::Image {
                    detail: Some(_), ..
                } = c
                {
                    loss.drop_field(format!("{cp}.detail"));
                }
                media.push(media_part(source, fallback, &cp, loss));
            }
            _ => loss.drop_field(cp),
        }
    }
    let mut r = Map::new();
    r.insert("name".into(), json!(name));
    r.insert("response".into(), response_of(&texts.join("\n"), is_error));
    if !media.is_empty() {
        r.insert("parts".into(), Value::Array(media));
    }
    if !tool_use_id.starts_with(MINTED_ID_PREFIX) && !tool_use_id.is_empty() {
        r.insert("id".into(), json!(tool_use_id));
    }
    json!({"functionResponse": r})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(parts: Value) -> (Vec<Block>, PartHints) {
        let Value::Array(list) = parts else { panic!() };
        parse_parts(list, &mut Ids::default(), &|k| format!("gcall_t_{k}"), "p").unwrap()
    }

    fn write(blocks: &[Block], hints: PartHints) -> (Vec<Value>, LossReport) {
        let mut loss = LossReport::default();
        let cx = WriteCtx {
            path: "content",
            name_of: &|_| None,
            hints,
            response: false,
        };
        (write_parts(blocks, &cx, &mut loss), loss)
    }

    #[test]
    fn signature_only_parts_and_text_signatures_round_trip() {
        let parts = json!([{"thoughtSignature": "AA=="}, {"text": "hi", "thoughtSignature": "Bw=="},
                           {"functionCall": {"name": "f"}, "thoughtSignature": "Cg=="}]);
        let (blocks, hints) = parse(parts.clone());
        assert_eq!(hints.loose, [0]);
        assert_eq!(hints.no_args, [3]);
        assert!(
            matches!(&blocks[1], Block::Thinking { text, signature: Some(s) } if text.is_empty() && s == "Bw==")
        );
        let (out, loss) = write(&blocks, hints);
        assert_eq!(Value::Array(out), parts);
        assert!(loss.is_empty());
        // Without hints (a cross trip): a signature folds onto the part that follows when it
        // can, else it goes as an empty text part; `args` are always written.
        let (out, _) = write(&blocks, PartHints::default());
        assert_eq!(
            Value::Array(out),
            json!([{"text": "", "thoughtSignature": "AA=="}, {"text": "hi", "thoughtSignature": "Bw=="},
                   {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "Cg=="}])
        );
    }

    #[test]
    fn signatures_are_base64_as_the_sdk_checks() {
        for ok in [
            "",
            "aQ",
            "abc",
            "abc=",
            "abE",
            "ab+/",
            "ab-_",
            "rs_A",
            "EpwBCpkBAdHtim9sig==",
        ] {
            assert!(is_base64(ok), "{ok}");
        }
        for bad in [
            "a",
            "ab",
            "ab==",
            "abF",
            "abcd=",
            "ab c",
            "ab=c",
            "rs_68af40a",
        ] {
            assert!(!is_base64(bad), "{bad}");
        }
        let (out, loss) = write(
            &[
                Block::Thinking {
                    text: "hm".into(),
                    signature: Some("rs_68af40a".into()),
                },
                Block::Thinking {
                    text: String::new(),
                    signature: Some("rs_12".into()),
                },
                text("answer".into()),
            ],
            PartHints::default(),
        );
        assert_eq!(
            Value::Array(out),
            json!([{"text": "hm", "thought": true}, {"text": "answer"}])
        );
        assert_eq!(
            loss.dropped,
            ["content[0].signature", "content[1].signature"]
        );
        let (blocks, _) = parse(json!([{"text": "x", "thoughtSignature": "not base64!"}]));
        assert!(matches!(&blocks[0], Block::Raw { .. }));
    }

    #[test]
    fn function_responses_keep_their_shape() {
        let parts = json!([
            {"functionResponse": {"name": "a", "response": {"output": "{\"x\": 1}"}}},
            {"functionResponse": {"name": "b", "response": {"error": "boom"}, "id": "call_9"}},
            {"functionResponse": {"name": "c", "response": {"output": "see image"},
                                  "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}},
            {"functionResponse": {"name": "d", "response": {"output": "x"}, "willContinue": true}}
        ]);
        let (blocks, hints) = parse(parts.clone());
        assert!(
            matches!(&blocks[1], Block::ToolResult { is_error: true, tool_use_id, .. } if tool_use_id == "call_9")
        );
        assert!(
            matches!(&blocks[2], Block::ToolResult { content, .. } if matches!(content[1], Block::Image { .. }))
        );
        assert!(matches!(&blocks[3], Block::Raw { .. }));
        let (out, loss) = write(&blocks, hints);
        assert_eq!(Value::Array(out), parts);
        assert!(loss.is_empty());
    }
}
