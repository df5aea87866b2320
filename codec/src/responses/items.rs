//! Responses items <-> IR blocks, shared by requests (`input`) and responses (`output`).
//!
//! Parsing gives each item its blocks and a hint (`ext.responses._items`, one per item, in
//! order): its kind, how many blocks it became (`n`), its id, status, spellings and the fields
//! the IR has no place for. Writing walks the hints and turns each run of `n` blocks back into
//! its item; blocks without a hint (another protocol's) are grouped by kind instead:
//!
//! ```text
//!   ToolUse -> function_call      ToolResult -> function_call_output
//!   Thinking/RedactedThinking -> reasoning (reasoning.rs)      Raw item -> as it came
//!   a run of Text, Refusal, Image, Document, Audio -> one message
//! ```

use super::parts::{empty_extra, parse_part, write_part};
use super::{FOREIGN_REASONING_PREFIX, reasoning};
use crate::Protocol;
use crate::ir::{Block, LossReport, Role};
use serde_json::{Map, Value, json};

/// What one item became.
pub(super) struct Parsed {
    /// The role of the turn it belongs to.
    pub(super) role: Role,
    /// Its blocks.
    pub(super) blocks: Vec<Block>,
    /// What writes it back the same way.
    pub(super) hint: Value,
    /// Whether it stands alone (a tool output is one Tool message, like OpenAI's `tool` ones).
    pub(super) alone: bool,
    /// Fields the IR has no place for, as extension keys (`item.<field>`, `part.<field>`), so a
    /// trip to another protocol reports them.
    pub(super) report: Vec<(String, Value)>,
}

/// The role of an item kind the IR has no type for: tool outputs and approvals are the user's
/// side; calls, and references (mostly to earlier output items), the assistant's.
fn raw_role(kind: &str) -> Role {
    if kind.ends_with("_output") || kind.ends_with("_response") {
        Role::User
    } else {
        Role::Assistant
    }
}

fn raw(o: Map<String, Value>, role: Role) -> Parsed {
    Parsed {
        role,
        blocks: vec![Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value: Value::Object(o),
        }],
        hint: json!({"kind": "raw", "n": 1}),
        alone: false,
        report: Vec::new(),
    }
}

fn str_at(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Parts -> blocks; their extra fields go in `hint.parts` and are named in `report`.
fn parse_parts(
    parts: Vec<Value>,
    assistant: bool,
    hint: &mut Map<String, Value>,
    report: &mut Vec<(String, Value)>,
) -> Vec<Block> {
    let mut blocks = Vec::with_capacity(parts.len());
    let mut extras = Vec::with_capacity(parts.len());
    for p in parts {
        let part = parse_part(p, assistant);
        blocks.push(part.block);
        for (k, v) in &part.extra {
            if !empty_extra(k, v) {
                report.push((format!("part.{k}"), v.clone()));
            }
        }
        extras.push(if part.extra.is_empty() {
            Value::Null
        } else {
            Value::Object(part.extra)
        });
    }
    if extras.iter().any(|e| !e.is_null()) {
        hint.insert("parts".into(), Value::Array(extras));
    }
    blocks
}

/// One item of `input` (or of a response's `output`) -> IR blocks and the hint that writes it
/// back the same way. An error names the item and what is wrong with it.
pub(super) fn parse_item(item: Value, path: &str, output: bool) -> Result<Parsed, String> {
    let Value::Object(mut o) = item else {
        return Err(format!("{path} must be an object"));
    };
    let kind = match o.get("type") {
        Some(Value::String(t)) => t.clone(),
        None if o.contains_key("role") => "message".into(),
        _ => String::new(),
    };
    let mut hint = Map::new();
    hint.insert("kind".into(), json!(kind));
    let mut report = Vec::new();
    let mut alone = false;
    let (role, blocks) = match kind.as_str() {
        "message" => {
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
            if output && role != Role::Assistant {
                return Err(format!("{path}: an output message must be the assistant's"));
            }
            if !o.contains_key("type") {
                hint.insert("untyped".into(), json!(true));
            }
            let blocks = match o.remove("content") {
                Some(Value::String(text)) => {
                    hint.insert("string".into(), json!(true));
                    vec![Block::Text {
                        text,
                        citations: Vec::new(),
                        cache: None,
                    }]
                }
                Some(Value::Array(parts)) => {
                    parse_parts(parts, role == Role::Assistant, &mut hint, &mut report)
                }
                _ => {
                    return Err(format!(
                        "{path}.content must be a string or an array of parts"
                    ));
                }
            };
            o.remove("role");
            (role, blocks)
        }
        "function_call" => {
            let (Some(call_id), Some(name)) = (str_at(&o, "call_id"), str_at(&o, "name")) else {
                return Err(format!("{path}: a function_call needs call_id and name"));
            };
            let Some(args) = str_at(&o, "arguments") else {
                return Err(format!("{path}.arguments must be a JSON string"));
            };
            let input = match serde_json::from_str::<Value>(&args) {
                Ok(v) if !v.is_string() && serde_json::to_string(&v).ok() == Some(args.clone()) => {
                    v
                }
                Ok(v) => {
                    hint.insert("arguments".into(), json!(args));
                    v
                }
                // Not JSON: kept as the text it is (written back as that text).
                Err(_) => Value::String(args),
            };
            for k in ["call_id", "name", "arguments"] {
                o.remove(k);
            }
            (
                Role::Assistant,
                vec![Block::ToolUse {
                    id: call_id,
                    name,
                    input,
                    thought_signature: None,
                }],
            )
        }
        "function_call_output" if !output => {
            let Some(call_id) = str_at(&o, "call_id") else {
                return Err(format!("{path}: a function_call_output needs call_id"));
            };
            let content = match o.remove("output") {
                Some(Value::String(text)) => vec![Block::Text {
                    text,
                    citations: Vec::new(),
                    cache: None,
                }],
                Some(Value::Array(parts)) => {
                    hint.insert("array".into(), json!(true));
                    parse_parts(parts, false, &mut hint, &mut report)
                }
                _ => {
                    return Err(format!(
                        "{path}.output must be a string or an array of parts"
                    ));
                }
            };
            let name = str_at(&o, "name");
            if name.is_some() {
                o.remove("name");
            }
            o.remove("call_id");
            alone = true;
            (
                Role::Tool,
                vec![Block::ToolResult {
                    tool_use_id: call_id,
                    name,
                    content,
                    is_error: false,
                    cache: None,
                }],
            )
        }
        "reasoning" => match reasoning::parse(&o, &mut hint) {
            Some(blocks) => {
                for k in ["summary", "content", "encrypted_content"] {
                    o.remove(k);
                }
                (Role::Assistant, blocks)
            }
            None => return Ok(raw(o, Role::Assistant)),
        },
        _ => {
            let role = if output {
                Role::Assistant
            } else {
                raw_role(&kind)
            };
            return Ok(raw(o, role));
        }
    };
    for k in ["id", "status"] {
        if let Some(v) = o.remove(k) {
            hint.insert(k.into(), v);
        }
    }
    o.remove("type");
    if !o.is_empty() {
        for (k, v) in &o {
            report.push((format!("item.{k}"), v.clone()));
        }
        hint.insert("extra".into(), Value::Object(o));
    }
    hint.insert("n".into(), json!(blocks.len()));
    Ok(Parsed {
        role,
        blocks,
        hint: Value::Object(hint),
        alone,
        report,
    })
}

/// How items are written: a response's `output` mints the ids and statuses OpenAI always gives.
pub(super) struct Out<'a> {
    /// Writing a response's `output` rather than a request's `input`.
    pub(super) output: bool,
    /// An id for the item that starts at a block index, from an id prefix (`msg_`, `fc_`, ...).
    pub(super) mint: &'a dyn Fn(&str, usize) -> String,
    /// The status of minted output items (`completed`, `incomplete`).
    pub(super) status: &'a str,
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
        Role::System => "system",
        Role::Developer => "developer",
    }
}

/// A call's arguments as JSON text: the raw text when the provider sent invalid JSON.
fn arguments(input: &Value) -> String {
    match input {
        Value::String(s) if serde_json::from_str::<Value>(s).is_err() => s.clone(),
        v => v.to_string(),
    }
}

fn with_hint(mut o: Map<String, Value>, hint: &Value) -> Value {
    for k in ["id", "status"] {
        if let Some(v) = hint.get(k) {
            o.insert(k.into(), v.clone());
        }
    }
    if let Some(Value::Object(extra)) = hint.get("extra") {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    Value::Object(o)
}

/// Parts of a message or tool output; `hint.parts` holds their extra fields, if any.
fn parts_json(
    blocks: &[Block],
    first: usize,
    assistant: bool,
    hint: Option<&Value>,
    path: &str,
    loss: &mut LossReport,
) -> Vec<Value> {
    let extras = hint.and_then(|h| h.get("parts")).and_then(Value::as_array);
    blocks
        .iter()
        .enumerate()
        .filter_map(|(j, b)| {
            let extra = extras.and_then(|e| e.get(j)).and_then(Value::as_object);
            let p = format!("{path}[{}]", first + j);
            write_part(b, assistant, extra, hint.is_some(), &p, loss)
        })
        .collect()
}

fn plain_text(blocks: &[Block]) -> Option<&str> {
    match blocks {
        [
            Block::Text {
                text,
                citations,
                cache: None,
            },
        ] if citations.is_empty() => Some(text),
        _ => None,
    }
}

fn function_call(b: &Block, p: &str, loss: &mut LossReport) -> Option<Map<String, Value>> {
    let Block::ToolUse {
        id,
        name,
        input,
        thought_signature,
    } = b
    else {
        return None;
    };
    loss.drop_present(p, &[(thought_signature.is_some(), "thought_signature")]);
    let mut o = Map::new();
    o.insert("type".into(), json!("function_call"));
    o.insert("call_id".into(), json!(id));
    o.insert("name".into(), json!(name));
    o.insert("arguments".into(), json!(arguments(input)));
    Some(o)
}

fn function_call_output(
    b: &Block,
    hint: Option<&Value>,
    p: &str,
    loss: &mut LossReport,
) -> Option<Map<String, Value>> {
    let Block::ToolResult {
        tool_use_id,
        name,
        content,
        is_error,
        cache,
    } = b
    else {
        return None;
    };
    loss.drop_present(
        p,
        &[(*is_error, "is_error"), (cache.is_some(), "cache_control")],
    );
    let array = hint.is_some_and(|h| h.get("array").is_some());
    let output = match plain_text(content) {
        Some(t) if !array => json!(t),
        _ if content.is_empty() && !array => json!(""),
        _ => Value::Array(parts_json(
            content,
            0,
            false,
            hint,
            &format!("{p}.content"),
            loss,
        )),
    };
    let mut o = Map::new();
    o.insert("type".into(), json!("function_call_output"));
    o.insert("call_id".into(), json!(tool_use_id));
    o.insert("output".into(), output);
    // The tool's name is written back where it came from; elsewhere the call id says it all.
    if let (Some(n), Some(_)) = (name, hint) {
        o.insert("name".into(), json!(n));
    }
    Some(o)
}

/// The item a hint describes, from its blocks; `None` when the blocks are not what it says.
fn write_hinted(
    role: Role,
    blocks: &[Block],
    first: usize,
    hint: &Value,
    path: &str,
    loss: &mut LossReport,
) -> Option<Value> {
    let p = format!("{path}[{first}]");
    let o = match hint.get("kind")?.as_str()? {
        "message" => {
            let content = match plain_text(blocks) {
                Some(t) if hint.get("string").is_some() => json!(t),
                _ => Value::Array(parts_json(
                    blocks,
                    first,
                    role == Role::Assistant,
                    Some(hint),
                    path,
                    loss,
                )),
            };
            let mut o = Map::new();
            if hint.get("untyped").is_none() {
                o.insert("type".into(), json!("message"));
            }
            o.insert("role".into(), json!(role_str(role)));
            o.insert("content".into(), content);
            o
        }
        "function_call" => {
            let [b] = blocks else { return None };
            let mut o = function_call(b, &p, loss)?;
            if let Some(a) = hint.get("arguments") {
                o.insert("arguments".into(), a.clone());
            }
            o
        }
        "function_call_output" => {
            let [b] = blocks else { return None };
            function_call_output(b, Some(hint), &p, loss)?
        }
        "reasoning" => return reasoning::write_hinted(blocks, hint),
        "raw" => match blocks {
            [
                Block::Raw {
                    protocol: Protocol::OpenAiResponses,
                    value,
                },
            ] => return Some(value.clone()),
            _ => return None,
        },
        _ => return None,
    };
    Some(with_hint(o, hint))
}

/// Whether a Responses value kept raw is a content part (it belongs in a message) rather than
/// an item.
fn is_part(v: &Value) -> bool {
    v.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("input_") || t.starts_with("output_") || t == "refusal")
}

fn content_block(b: &Block) -> bool {
    match b {
        Block::ToolUse { .. }
        | Block::ToolResult { .. }
        | Block::Thinking { .. }
        | Block::RedactedThinking { .. } => false,
        Block::Raw {
            protocol: Protocol::OpenAiResponses,
            value,
        } => is_part(value),
        _ => true,
    }
}

/// Blocks without hints (another protocol's) -> items, grouped by kind.
fn write_inferred(
    role: Role,
    blocks: &[Block],
    mut k: usize,
    path: &str,
    out: &Out,
    loss: &mut LossReport,
    items: &mut Vec<Value>,
) {
    let minted = |mut o: Map<String, Value>, prefix: &str, k: usize| {
        if out.output {
            o.insert("id".into(), json!((out.mint)(prefix, k)));
            o.insert("status".into(), json!(out.status));
        }
        Value::Object(o)
    };
    while let Some(b) = blocks.get(k) {
        let p = format!("{path}[{k}]");
        match b {
            Block::ToolUse { .. } => {
                if let Some(o) = function_call(b, &p, loss) {
                    items.push(minted(o, "fc_", k));
                }
                k += 1;
            }
            Block::ToolResult { .. } if !out.output => {
                if let Some(o) = function_call_output(b, None, &p, loss) {
                    items.push(Value::Object(o));
                }
                k += 1;
            }
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {
                if let Some((item, n)) = reasoning::write_native(&blocks[k..]) {
                    items.push(item);
                    k += n;
                    continue;
                }
                // Another provider's reasoning: a Responses client keeps it as an item of its
                // own; OpenAI cannot be given it.
                let id = (out.mint)(FOREIGN_REASONING_PREFIX, k);
                match reasoning::write_foreign(b, &id).filter(|_| out.output) {
                    Some(item) => items.push(item),
                    None => loss.drop_field(p),
                }
                k += 1;
            }
            Block::Raw {
                protocol: Protocol::OpenAiResponses,
                value,
            } if !is_part(value) => {
                items.push(value.clone());
                k += 1;
            }
            b if !content_block(b) => {
                // A tool result in a response: no output item says that.
                loss.drop_field(p);
                k += 1;
            }
            _ => {
                let n = blocks[k..].iter().take_while(|b| content_block(b)).count();
                let parts = parts_json(
                    &blocks[k..k + n],
                    k,
                    role == Role::Assistant,
                    None,
                    path,
                    loss,
                );
                if !parts.is_empty() {
                    let mut o = Map::new();
                    o.insert("type".into(), json!("message"));
                    o.insert("role".into(), json!(role_str(role)));
                    o.insert("content".into(), Value::Array(parts));
                    items.push(minted(o, "msg_", k));
                }
                k += n;
            }
        }
    }
}

/// The blocks of one turn (or a response's content) -> items. `hints` are the turn's `_items`
/// when it was born of Responses items; blocks past them are grouped by kind.
pub(super) fn write_items(
    role: Role,
    blocks: &[Block],
    hints: Option<&Vec<Value>>,
    path: &str,
    out: &Out,
    loss: &mut LossReport,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut k: usize = 0;
    for h in hints.into_iter().flatten() {
        let n = h
            .get("n")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        let Some(end) = n.and_then(|n| k.checked_add(n)) else {
            break;
        };
        let Some(item) = blocks
            .get(k..end)
            .and_then(|run| write_hinted(role, run, k, h, path, loss))
        else {
            break;
        };
        items.push(item);
        k = end;
    }
    write_inferred(role, blocks, k, path, out, loss, &mut items);
    items
}
