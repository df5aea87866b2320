//! Responses content parts <-> IR blocks: the parts of message items and of function call
//! outputs, in requests and responses alike.
//!
//! ```text
//!   input_text / output_text{annotations}  <->  Text (annotations as citations)
//!   refusal                                <->  Refusal
//!   input_image{image_url | file_id}       <->  Image (a data URL is base64)
//!   input_file{file_data | file_id | file_url, filename}  <->  Document
//!   input_audio{data, format}              <->  Audio (audio/<format>; only back to Responses)
//!   prompt_cache_breakpoint{mode}          <->  the block's cache mark
//!   any other part                         <->  Raw
//! ```
//! A field of a known part the IR has no place for (`logprobs`, a file's `detail`, ...) is kept
//! in the part's hint and written back as it came; the caller names it for the loss report.

use crate::Protocol;
use crate::ir::{Block, CacheControl, Citation, LossReport, Media};
use crate::openai::{data_url, split_data_url};
use serde_json::{Map, Value, json};

const BREAKPOINT: &str = "prompt_cache_breakpoint";

/// A parsed part: its block, and the fields the block has no place for.
pub(super) struct Part {
    pub(super) block: Block,
    pub(super) extra: Map<String, Value>,
}

fn raw(v: Value) -> Part {
    Part {
        block: Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value: v,
        },
        extra: Map::new(),
    }
}

fn str_of(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

/// The cache mark of a part: `{"mode": "explicit"}` is a breakpoint; any other value stays an
/// extra field.
fn take_cache(o: &mut Map<String, Value>) -> Option<CacheControl> {
    if o.get(BREAKPOINT)? != &json!({"mode": "explicit"}) {
        return None;
    }
    o.remove(BREAKPOINT);
    Some(CacheControl {
        kind: "ephemeral".into(),
        ttl: None,
    })
}

/// The text an annotation's `start_index..end_index` (characters) covers, when it has one.
fn cited(a: &Value, text: &str) -> Option<String> {
    let start = usize::try_from(a.get("start_index")?.as_u64()?).ok()?;
    let end = usize::try_from(a.get("end_index")?.as_u64()?).ok()?;
    if end <= start || end > text.chars().count() {
        return None;
    }
    Some(text.chars().skip(start).take(end - start).collect())
}

/// One Responses annotation in IR form (`text`: the text it annotates, when known).
pub(crate) fn citation(a: &Value, text: &str) -> Citation {
    let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    Citation {
        protocol: Protocol::OpenAiResponses,
        raw: a.clone(),
        cited_text: cited(a, text),
        source: s("url")
            .or_else(|| s("filename"))
            .or_else(|| s("title"))
            .or_else(|| s("file_id")),
    }
}

/// Exactly one of `keys` holds a string: (which, value).
fn one_source<'a>(o: &Map<String, Value>, keys: &[&'a str]) -> Option<(&'a str, String)> {
    let present: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| o.contains_key(*k))
        .collect();
    match present.as_slice() {
        [k] => Some((*k, str_of(o, k)?)),
        _ => None,
    }
}

/// One content part of an `assistant`'s message or not -> a block and its extra fields. Never
/// fails: a part of unknown kind, or of a kind or shape the IR cannot hold there, is kept raw.
pub(super) fn parse_part(p: Value, assistant: bool) -> Part {
    let Value::Object(mut o) = p else {
        return raw(p);
    };
    let kind = str_of(&o, "type").unwrap_or_default();
    let media = matches!(kind.as_str(), "input_image" | "input_file" | "input_audio");
    if (assistant && media) || (!assistant && kind == "refusal") {
        return raw(Value::Object(o));
    }
    let block = match kind.as_str() {
        "input_text" | "output_text" if o.get("text").is_some_and(Value::is_string) => {
            let text = str_of(&o, "text").unwrap_or_default();
            let citations = match o.get("annotations") {
                Some(Value::Array(a)) if kind == "output_text" => {
                    a.iter().map(|x| citation(x, &text)).collect()
                }
                _ => Vec::new(),
            };
            if kind == "output_text" && o.get("annotations").is_some_and(Value::is_array) {
                o.remove("annotations");
            }
            o.remove("text");
            // The other spelling than the role's own is kept (a spelling: never reported).
            if (kind == "output_text") == assistant {
                o.remove("type");
            }
            // Only input parts mark a cache breakpoint.
            let cache = if kind == "input_text" {
                take_cache(&mut o)
            } else {
                None
            };
            Block::Text {
                text,
                citations,
                cache,
            }
        }
        "refusal" if o.get("refusal").is_some_and(Value::is_string) => Block::Refusal {
            text: o
                .remove("refusal")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        "input_image" => {
            let Some((key, v)) = one_source(&o, &["image_url", "file_id"]) else {
                return raw(Value::Object(o));
            };
            let source = match (key, split_data_url(&v)) {
                ("image_url", Some((media_type, data))) => Media::Base64 { media_type, data },
                ("image_url", None) => Media::Url {
                    url: v,
                    media_type: None,
                },
                _ => Media::FileId { id: v },
            };
            o.remove(key);
            let detail = str_of(&o, "detail");
            if detail.is_some() {
                o.remove("detail");
            }
            Block::Image {
                source,
                detail,
                cache: take_cache(&mut o),
            }
        }
        "input_file" => {
            let Some((key, v)) = one_source(&o, &["file_data", "file_id", "file_url"]) else {
                return raw(Value::Object(o));
            };
            let source = match key {
                "file_id" => Media::FileId { id: v },
                "file_url" => Media::Url {
                    url: v,
                    media_type: None,
                },
                _ => match split_data_url(&v) {
                    Some((media_type, data)) => Media::Base64 { media_type, data },
                    None => return raw(Value::Object(o)),
                },
            };
            o.remove(key);
            let title = str_of(&o, "filename");
            if title.is_some() {
                o.remove("filename");
            }
            Block::Document {
                source,
                title,
                context: None,
                citations: false,
                cache: take_cache(&mut o),
            }
        }
        "input_audio" => {
            let a = o.get("input_audio");
            let field = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_str);
            let whole = a.and_then(Value::as_object).is_some_and(|a| a.len() == 2);
            let (Some(data), Some(format), true) = (field("data"), field("format"), whole) else {
                return raw(Value::Object(o));
            };
            let source = Media::Base64 {
                media_type: format!("audio/{format}"),
                data: data.to_string(),
            };
            o.remove("input_audio");
            Block::Audio { source }
        }
        _ => return raw(Value::Object(o)),
    };
    if !matches!(block, Block::Text { .. }) {
        o.remove("type");
    }
    Part { block, extra: o }
}

/// Whether an extra field carries nothing a client of another protocol would miss: empty
/// `logprobs`, or a text part's `type` spelled against its role's habit.
pub(super) fn empty_extra(key: &str, v: &Value) -> bool {
    key == "type" || (key == "logprobs" && v.as_array().is_some_and(Vec::is_empty))
}

fn breakpoint(
    o: &mut Map<String, Value>,
    cache: &Option<CacheControl>,
    path: &str,
    loss: &mut LossReport,
) {
    if let Some(c) = cache {
        // The breakpoint's time to live is the request's `prompt_cache_options.ttl`.
        if c.ttl.is_some() {
            loss.drop_field(format!("{path}.cache_control.ttl"));
        }
        o.insert(BREAKPOINT.into(), json!({"mode": "explicit"}));
    }
}

/// A citation of another protocol as a Responses annotation over `text`, when it names a web
/// page (Chat's `url_citation`s exactly; others cover the whole text, as their block does).
pub(crate) fn annotation(c: &Citation, text: &str) -> Option<Value> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if c.protocol == Protocol::OpenAiChat {
        let u = c.raw.get("url_citation")?;
        return Some(json!({
            "type": "url_citation",
            "start_index": u.get("start_index").and_then(Value::as_u64).unwrap_or(0),
            "end_index": u.get("end_index").and_then(Value::as_u64).unwrap_or(text.chars().count() as u64),
            "url": s(u, "url")?,
            "title": s(u, "title").unwrap_or_default(),
        }));
    }
    let web = |u: &String| u.starts_with("https://") || u.starts_with("http://");
    // The page: the citation's source, or wherever its protocol keeps the URL (Anthropic
    // `url`, Gemini `uri`, Converse `location.web.url`).
    let url = c
        .source
        .clone()
        .filter(web)
        .or_else(|| s(&c.raw, "url"))
        .or_else(|| s(&c.raw, "uri"))
        .or_else(|| {
            c.raw
                .pointer("/location/web/url")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(web)?;
    let title = s(&c.raw, "title")
        .or_else(|| s(&c.raw, "document_title"))
        .unwrap_or_else(|| url.clone());
    Some(
        json!({"type": "url_citation", "start_index": 0, "end_index": text.chars().count(),
        "url": url, "title": title}),
    )
}

fn annotations(citations: &[Citation], text: &str, path: &str, loss: &mut LossReport) -> Value {
    let mut out = Vec::new();
    for (j, c) in citations.iter().enumerate() {
        if c.protocol == Protocol::OpenAiResponses {
            out.push(c.raw.clone());
            continue;
        }
        match annotation(c, text) {
            Some(a) => {
                if c.protocol != Protocol::OpenAiChat && c.cited_text.is_some() {
                    loss.drop_field(format!("{path}.citations[{j}].cited_text"));
                }
                out.push(a);
            }
            None => loss.drop_field(format!("{path}.citations[{j}]")),
        }
    }
    Value::Array(out)
}

/// A file name for inline data that came without one (OpenAI wants a name with `file_data`).
fn file_name(media_type: &str) -> String {
    let ext = match media_type {
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/markdown" => "md",
        "application/json" => "json",
        _ => media_type.rsplit('/').next().unwrap_or("bin"),
    };
    format!("document.{ext}")
}

/// One block -> a content part, or `None` (and a loss entry) where the part cannot go.
/// `assistant`: an assistant message's part (`output_text`, `refusal` only). `extra`: the part's
/// fields from a same-protocol trip, written back as they came. `native`: the block was born a
/// Responses part (so a missing file name stays missing).
pub(super) fn write_part(
    b: &Block,
    assistant: bool,
    extra: Option<&Map<String, Value>>,
    native: bool,
    path: &str,
    loss: &mut LossReport,
) -> Option<Value> {
    let mut o = Map::new();
    let input_only = |loss: &mut LossReport| {
        if assistant {
            loss.drop_field(path.to_string());
        }
        !assistant
    };
    match b {
        Block::Text {
            text,
            citations,
            cache,
        } => {
            o.insert("text".into(), json!(text));
            let spelled = extra.and_then(|e| e.get("type")).and_then(Value::as_str);
            if spelled.map_or(assistant, |t| t == "output_text") {
                o.insert("type".into(), json!("output_text"));
                o.insert(
                    "annotations".into(),
                    annotations(citations, text, path, loss),
                );
                if cache.is_some() {
                    loss.drop_field(format!("{path}.cache_control"));
                }
            } else {
                o.insert("type".into(), json!("input_text"));
                if !citations.is_empty() {
                    loss.drop_field(format!("{path}.citations"));
                }
                breakpoint(&mut o, cache, path, loss);
            }
        }
        Block::Refusal { text } if assistant => {
            o.insert("type".into(), json!("refusal"));
            o.insert("refusal".into(), json!(text));
        }
        // A refusal in a user's turn can only be its text.
        Block::Refusal { text } => {
            o.insert("type".into(), json!("input_text"));
            o.insert("text".into(), json!(text));
        }
        Block::Image {
            source,
            detail,
            cache,
        } => {
            if !input_only(loss) {
                return None;
            }
            o.insert("type".into(), json!("input_image"));
            match source {
                Media::Base64 { media_type, data } => {
                    o.insert("image_url".into(), json!(data_url(media_type, data)));
                }
                Media::Url { url, .. } => {
                    o.insert("image_url".into(), json!(url));
                }
                Media::FileId { id } => {
                    o.insert("file_id".into(), json!(id));
                }
                Media::Text { .. } => {
                    loss.drop_field(path.to_string());
                    return None;
                }
            }
            if let Some(d) = detail {
                o.insert("detail".into(), json!(d));
            }
            breakpoint(&mut o, cache, path, loss);
        }
        Block::Document {
            source,
            title,
            context,
            citations,
            cache,
        } => {
            if !input_only(loss) {
                return None;
            }
            loss.drop_present(
                path,
                &[(context.is_some(), "context"), (*citations, "citations")],
            );
            let (key, value, name) = match source {
                Media::Text { text, .. } => {
                    // A plain-text document is carried as a text part; its title has no place.
                    loss.drop_present(path, &[(title.is_some(), "title")]);
                    o.insert("type".into(), json!("input_text"));
                    o.insert("text".into(), json!(text));
                    breakpoint(&mut o, cache, path, loss);
                    return Some(with_extra(o, extra));
                }
                // Inline data from elsewhere gets a file name from its type if it has none.
                Media::Base64 { media_type, data } => (
                    "file_data",
                    data_url(media_type, data),
                    title
                        .clone()
                        .or_else(|| (!native).then(|| file_name(media_type))),
                ),
                Media::Url { url, .. } => ("file_url", url.clone(), title.clone()),
                Media::FileId { id } => ("file_id", id.clone(), title.clone()),
            };
            o.insert("type".into(), json!("input_file"));
            o.insert(key.into(), json!(value));
            if let Some(n) = name {
                o.insert("filename".into(), json!(n));
            }
            breakpoint(&mut o, cache, path, loss);
        }
        // Message content takes no audio (the SDK's input content is text, image and file):
        // audio that came as an `input_audio` part goes back as one, other audio is reported.
        Block::Audio {
            source: Media::Base64 { media_type, data },
        } if native && !assistant => {
            let format = media_type.strip_prefix("audio/").unwrap_or(media_type);
            o.insert("type".into(), json!("input_audio"));
            o.insert(
                "input_audio".into(),
                json!({"data": data, "format": format}),
            );
        }
        Block::Audio { .. } => {
            loss.drop_field(path.to_string());
            return None;
        }
        Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value,
        } => return Some(value.clone()),
        Block::ToolUse { .. }
        | Block::ToolResult { .. }
        | Block::Thinking { .. }
        | Block::RedactedThinking { .. }
        | Block::Raw { .. } => {
            loss.drop_field(path.to_string());
            return None;
        }
    }
    Some(with_extra(o, extra))
}

/// A part with the fields it came with that the IR has no place for.
fn with_extra(mut o: Map<String, Value>, extra: Option<&Map<String, Value>>) -> Value {
    for (k, v) in extra.into_iter().flatten() {
        o.insert(k.clone(), v.clone());
    }
    Value::Object(o)
}
