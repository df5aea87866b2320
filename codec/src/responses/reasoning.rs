//! Reasoning items <-> thinking blocks.
//!
//! ```text
//!   {id: rs_X, summary: [a, b], content: [c], encrypted_content: E}
//!       <->  Thinking{a, sig rs_X} Thinking{b, sig rs_X} Thinking{c, sig rs_X} RedactedThinking{E}
//!   {id: rs_X, summary: []}                 <->  Thinking{"", sig rs_X}  (the id must travel)
//!   {id: rs_busbar_.., summary: [t], encrypted_content: S}  <->  Thinking{t, sig S}
//!   {id: rs_busbar_.., summary: [t]}                        <->  Thinking{t, no sig}
//!   {id: rs_busbar_.., summary: [], encrypted_content: D}   <->  RedactedThinking{D}
//! ```
//! The first three lines are OpenAI's items: the id is the signature of every block, so a client
//! of another protocol that keeps the blocks keeps the id, and the encrypted content rides as
//! redacted thinking. The last three are another provider's thinking (Anthropic's signature or
//! redacted data) handed to a Responses client: its opaque part goes in `encrypted_content`,
//! which the client sends back untouched.

use super::{FOREIGN_REASONING_PREFIX, REASONING_ID_PREFIX, native_reasoning_id};
use crate::ir::Block;
use serde_json::{Map, Value, json};

fn texts(v: Option<&Value>, kind: &str) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|p| {
            let o = p.as_object()?;
            (o.len() == 2 && o.get("type")? == kind)
                .then(|| o.get("text")?.as_str().map(str::to_string))?
        })
        .collect()
}

/// A reasoning item -> its blocks, filling `hint`; `None` when its shape is not one the blocks
/// can give back (it is then kept raw).
pub(super) fn parse(o: &Map<String, Value>, hint: &mut Map<String, Value>) -> Option<Vec<Block>> {
    let known = [
        "type",
        "id",
        "status",
        "summary",
        "content",
        "encrypted_content",
    ];
    if !o.keys().all(|k| known.contains(&k.as_str())) {
        return None;
    }
    let id = o.get("id")?.as_str()?.to_string();
    if !id.starts_with(REASONING_ID_PREFIX) {
        return None;
    }
    let summary = texts(o.get("summary"), "summary_text")?;
    let content = match o.get("content") {
        None => None,
        c => Some(texts(c, "reasoning_text")?),
    };
    let enc = match o.get("encrypted_content") {
        None => None,
        Some(Value::Null) => {
            hint.insert("encrypted".into(), Value::Null);
            None
        }
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => return None,
    };
    if id.starts_with(FOREIGN_REASONING_PREFIX)
        && content.is_none()
        && !hint.contains_key("encrypted")
        && summary.len() <= 1
        && !(summary.is_empty() && enc.is_none())
    {
        hint.insert("foreign".into(), json!(true));
        return Some(vec![match (summary.into_iter().next(), enc) {
            (Some(text), signature) => Block::Thinking { text, signature },
            (None, Some(data)) => Block::RedactedThinking { data },
            (None, None) => return None,
        }]);
    }
    hint.insert("summary".into(), json!(summary.len()));
    if let Some(c) = &content {
        hint.insert("content".into(), json!(c.len()));
    }
    let mut all: Vec<String> = summary;
    all.extend(content.unwrap_or_default());
    if all.is_empty() {
        all.push(String::new());
    }
    let mut blocks: Vec<Block> = all
        .into_iter()
        .map(|text| Block::Thinking {
            text,
            signature: Some(id.clone()),
        })
        .collect();
    if let Some(data) = enc {
        blocks.push(Block::RedactedThinking { data });
    }
    Some(blocks)
}

fn item(id: &str, summary: &[&str]) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("type".into(), json!("reasoning"));
    o.insert("id".into(), json!(id));
    let parts: Vec<Value> = summary
        .iter()
        .map(|t| json!({"type": "summary_text", "text": t}))
        .collect();
    o.insert("summary".into(), Value::Array(parts));
    o
}

/// OpenAI's reasoning item from its blocks, as its hint says (`None` when they do not match it).
pub(super) fn write_hinted(blocks: &[Block], hint: &Value) -> Option<Value> {
    let id = hint.get("id")?.as_str()?;
    if hint.get("foreign").is_some() {
        let [b] = blocks else { return None };
        let mut o = write_foreign(b, id)?;
        if let Some(s) = hint.get("status") {
            o["status"] = s.clone();
        }
        return Some(o);
    }
    let (thinking, enc) = match blocks {
        [rest @ .., Block::RedactedThinking { data }] => (rest, Some(data)),
        all => (all, None),
    };
    let mut all = Vec::new();
    for b in thinking {
        match b {
            Block::Thinking {
                text,
                signature: Some(s),
            } if s == id => all.push(text.as_str()),
            _ => return None,
        }
    }
    let n_summary = usize::try_from(hint.get("summary")?.as_u64()?).ok()?;
    let n_content = hint
        .get("content")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok());
    let total = n_summary.checked_add(n_content.unwrap_or(0))?;
    if all.len() != total.max(1) {
        return None;
    }
    let mut o = item(id, all.get(..n_summary)?);
    if let Some(n) = n_content {
        let parts: Vec<Value> = all
            .get(n_summary..n_summary + n)?
            .iter()
            .map(|t| json!({"type": "reasoning_text", "text": t}))
            .collect();
        o.insert("content".into(), Value::Array(parts));
    }
    match (enc, hint.get("encrypted")) {
        (Some(e), _) => {
            o.insert("encrypted_content".into(), json!(e));
        }
        (None, Some(v)) => {
            o.insert("encrypted_content".into(), v.clone());
        }
        (None, None) => {}
    }
    if let Some(s) = hint.get("status") {
        o.insert("status".into(), s.clone());
    }
    Some(Value::Object(o))
}

/// Without a hint: OpenAI's reasoning item from the thinking blocks signed with its id at the
/// start of `blocks` (and the redacted block after them). Returns the item and how many blocks
/// it took, or `None` when `blocks` does not start with such a block.
pub(super) fn write_native(blocks: &[Block]) -> Option<(Value, usize)> {
    let Some(Block::Thinking {
        signature: Some(id),
        ..
    }) = blocks.first()
    else {
        return None;
    };
    if !native_reasoning_id(id) {
        return None;
    }
    let mut summary = Vec::new();
    let mut n = 0;
    while let Some(Block::Thinking {
        text,
        signature: Some(s),
    }) = blocks.get(n)
    {
        if s != id {
            break;
        }
        summary.push(text.as_str());
        n += 1;
    }
    // One empty block is the id alone.
    if let [""] = summary.as_slice() {
        summary.clear();
    }
    let mut o = item(id, &summary);
    if let Some(Block::RedactedThinking { data }) = blocks.get(n) {
        o.insert("encrypted_content".into(), json!(data));
        n += 1;
    }
    Some((Value::Object(o), n))
}

/// Another provider's thinking (or redacted thinking) as a reasoning item for a Responses
/// client, under a minted `id`; `None` for other blocks.
pub(super) fn write_foreign(b: &Block, id: &str) -> Option<Value> {
    let o = match b {
        Block::Thinking { text, signature } => {
            let mut o = item(id, &[text]);
            if let Some(s) = signature {
                o.insert("encrypted_content".into(), json!(s));
            }
            o
        }
        Block::RedactedThinking { data } => {
            let mut o = item(id, &[]);
            o.insert("encrypted_content".into(), json!(data));
            o
        }
        _ => return None,
    };
    Some(Value::Object(o))
}
