//! Gemini `GenerateContentResponse` <-> IR (non-streaming).
//!
//! The first candidate becomes the IR response; further candidates, `promptFeedback`, grounding
//! and logprobs stay in `ext.gemini`. Usage: `promptTokenCount` counts cached tokens and
//! `candidatesTokenCount` leaves thoughts out, so the IR's input is prompt minus cached and its
//! output is candidates plus thoughts; the writer inverts both. Gemini has no "tool use" finish
//! reason: `STOP` with function calls is the IR's ToolUse, written back as `STOP`.

use super::MINTED_ID_PREFIX;
use super::keys::{camel_map, object};
use super::parts::{Ids, parse_part, write_parts};
use crate::Protocol;
use crate::ir::{Block, Citation, LossReport, Response, SafetyRating, StopReason, Usage};
use serde_json::{Map, Value, json};

fn sanitize(id: &str) -> String {
    id.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn ratings_of(v: &Value) -> (Vec<SafetyRating>, bool) {
    let mut out = Vec::new();
    let mut extra = false;
    for r in v.as_array().into_iter().flatten() {
        let Some(o) = r.as_object() else {
            extra = true;
            continue;
        };
        let get = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        extra |= o
            .keys()
            .any(|k| !matches!(k.as_str(), "category" | "probability" | "blocked"));
        out.push(SafetyRating {
            category: get("category").unwrap_or_default(),
            probability: get("probability").unwrap_or_default(),
            blocked: o.get("blocked").and_then(Value::as_bool).unwrap_or(false),
        });
        extra |= o.get("blocked") == Some(&json!(false));
    }
    (out, extra)
}

/// Parses a `generateContent` response body into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut o = object(v, "the response body")?;
    crate::ir::reserved_fields(
        &o,
        &[
            "candidates[0]",
            "candidates[0].content",
            "candidates[0].citationMetadata",
            "candidates[1..]",
        ],
        "the response body",
    )?;
    let mut r = Response::default();
    if let Some(Value::String(id)) = o.remove("responseId") {
        r.id = id;
    }
    if let Some(Value::String(m)) = o.remove("modelVersion") {
        r.model = m;
    }
    let mut candidates = match o.remove("candidates") {
        Some(Value::Array(c)) => c,
        None => Vec::new(),
        Some(_) => return Err("candidates must be an array".into()),
    };
    if !candidates.is_empty() {
        let mut c = object(candidates.remove(0), "candidates[0]")?;
        let mut ids = Ids::default();
        let prefix = format!("{MINTED_ID_PREFIX}{}_", sanitize(&r.id));
        if let Some(content) = c.remove("content") {
            let mut content = object(content, "candidates[0].content")?;
            if let Some(role) = content.remove("role") {
                if role != "model" {
                    r.ext.gemini.insert("_role".into(), role);
                }
            }
            if let Some(Value::Array(parts)) = content.remove("parts") {
                for (k, p) in parts.into_iter().enumerate() {
                    let mint = || format!("{prefix}{k}");
                    r.content.extend(
                        parse_part(p, &mut ids, mint)
                            .map_err(|e| format!("candidates[0].content.parts[{k}]: {e}"))?,
                    );
                }
            }
            if !content.is_empty() {
                r.ext
                    .gemini
                    .insert("candidates[0].content".into(), Value::Object(content));
            }
        }
        let calls = r.content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
        if let Some(Value::String(f)) = c.remove("finishReason") {
            r.stop_reason = Some(match f.as_str() {
                "STOP" if calls => StopReason::ToolUse,
                "STOP" => StopReason::EndTurn,
                "MAX_TOKENS" => StopReason::MaxTokens,
                "SAFETY" => StopReason::ContentFilter,
                _ => {
                    let filtered = matches!(
                        f.as_str(),
                        "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
                    );
                    r.ext.gemini.insert("_finishReason".into(), json!(f));
                    if filtered {
                        StopReason::ContentFilter
                    } else {
                        StopReason::Other(f)
                    }
                }
            });
        }
        if let Some(ratings) = c.remove("safetyRatings") {
            let (typed, extra) = ratings_of(&ratings);
            r.safety = typed;
            if extra {
                r.ext.gemini.insert("_safetyRatings".into(), ratings);
            }
        }
        if let Some(cm) = c.remove("citationMetadata") {
            let cm = camel_map(cm.as_object().cloned().unwrap_or_default());
            let cites: Vec<Citation> = cm
                .get("citations")
                .or_else(|| cm.get("citationSources"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Citation {
                    protocol: Protocol::Gemini,
                    raw: c.clone(),
                    cited_text: None,
                    source: c
                        .get("uri")
                        .or_else(|| c.get("title"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
                .collect();
            match r
                .content
                .iter_mut()
                .find(|b| matches!(b, Block::Text { .. }))
            {
                Some(Block::Text { citations, .. })
                    if cm.len() == 1 && cm.contains_key("citations") =>
                {
                    citations.extend(cites)
                }
                _ => {
                    r.ext
                        .gemini
                        .insert("candidates[0].citationMetadata".into(), Value::Object(cm));
                }
            }
        }
        if !c.is_empty() {
            r.ext
                .gemini
                .insert("candidates[0]".into(), Value::Object(c));
        }
    }
    if !candidates.is_empty() {
        r.ext
            .gemini
            .insert("candidates[1..]".into(), Value::Array(candidates));
    }
    if let Some(pf) = o.get("promptFeedback") {
        if pf.get("blockReason").is_some() && r.stop_reason.is_none() {
            r.stop_reason = Some(StopReason::ContentFilter);
            r.ext.gemini.insert("_noFinishReason".into(), json!(true));
        }
    }
    if let Some(u) = o.remove("usageMetadata") {
        let mut u = object(u, "usageMetadata")?;
        let mut n = |k: &str| u.remove(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let prompt = n("promptTokenCount");
        let cached = n("cachedContentTokenCount");
        let candidates_n = n("candidatesTokenCount");
        let thoughts = n("thoughtsTokenCount");
        let total = n("totalTokenCount");
        let tool = u
            .get("toolUsePromptTokenCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        r.usage = Usage {
            input: prompt.saturating_sub(cached),
            output: candidates_n + thoughts,
            cache_read: cached,
            cache_write: 0,
            reasoning: thoughts,
        };
        if total != prompt + candidates_n + thoughts + tool {
            r.ext.gemini.insert("_totalTokenCount".into(), json!(total));
        }
        if !u.is_empty() {
            r.ext
                .gemini
                .insert("usageMetadata".into(), Value::Object(u));
        }
    }
    r.ext.gemini.extend(o);
    Ok(r)
}

/// Writes the IR as a `generateContent` response body; what Gemini cannot carry goes in `loss`.
pub fn write_response(r: &Response, loss: &mut LossReport) -> Vec<u8> {
    let ext = &r.ext.gemini;
    let parts = write_parts(&r.content, "content", loss, &|_| None);
    let mut content = ext
        .get("candidates[0].content")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    content.insert(
        "role".into(),
        ext.get("_role").cloned().unwrap_or_else(|| json!("model")),
    );
    content.insert("parts".into(), Value::Array(parts));
    let mut cand = Map::new();
    cand.insert("content".into(), Value::Object(content));
    if let Some(stop) = &r.stop_reason {
        let exact = ext.get("_finishReason").and_then(Value::as_str);
        let reason = match (stop, exact) {
            (_, Some(e)) => e.to_string(),
            (StopReason::EndTurn | StopReason::ToolUse | StopReason::StopSequence(_), _) => {
                "STOP".into()
            }
            (StopReason::MaxTokens, _) => "MAX_TOKENS".into(),
            (StopReason::ContentFilter, _) => "SAFETY".into(),
            (StopReason::ContextExceeded, _) => "MAX_TOKENS".into(),
            (StopReason::Refusal | StopReason::PauseTurn, _) => {
                loss.drop_field("stop_reason");
                "STOP".into()
            }
            (StopReason::Other(o), _) => {
                loss.drop_field("stop_reason");
                if o.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    o.clone()
                } else {
                    "OTHER".into()
                }
            }
        };
        if !ext.contains_key("_noFinishReason") {
            cand.insert("finishReason".into(), json!(reason));
        }
    }
    if let Some(raw) = ext.get("_safetyRatings") {
        cand.insert("safetyRatings".into(), raw.clone());
    } else if !r.safety.is_empty() {
        let list: Vec<Value> = r
            .safety
            .iter()
            .map(|s| {
                let mut v = json!({"category": s.category, "probability": s.probability});
                if s.blocked {
                    v["blocked"] = json!(true);
                }
                v
            })
            .collect();
        cand.insert("safetyRatings".into(), Value::Array(list));
    }
    let cites: Vec<Value> = r
        .content
        .iter()
        .flat_map(|b| match b {
            Block::Text { citations, .. } => citations.as_slice(),
            _ => &[],
        })
        .filter(|c| c.protocol == Protocol::Gemini)
        .map(|c| c.raw.clone())
        .collect();
    if let Some(cm) = ext.get("candidates[0].citationMetadata") {
        cand.insert("citationMetadata".into(), cm.clone());
    } else if !cites.is_empty() {
        cand.insert("citationMetadata".into(), json!({"citations": cites}));
    }
    if let Some(Value::Object(extra)) = ext.get("candidates[0]") {
        cand.extend(extra.clone());
    }
    let mut candidates = vec![Value::Object(cand)];
    if let Some(Value::Array(more)) = ext.get("candidates[1..]") {
        candidates.extend(more.iter().cloned());
    }
    let u = &r.usage;
    let mut usage = ext
        .get("usageMetadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let prompt = u.input + u.cache_read;
    let candidates_n = u.output.saturating_sub(u.reasoning);
    let tool = usage
        .get("toolUsePromptTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    usage.insert("promptTokenCount".into(), json!(prompt));
    usage.insert("candidatesTokenCount".into(), json!(candidates_n));
    if u.cache_read > 0 {
        usage.insert("cachedContentTokenCount".into(), json!(u.cache_read));
    }
    if u.reasoning > 0 {
        usage.insert("thoughtsTokenCount".into(), json!(u.reasoning));
    }
    if u.cache_write > 0 {
        loss.drop_field("usage.cache_write");
    }
    let total = ext
        .get("_totalTokenCount")
        .cloned()
        .unwrap_or_else(|| json!(prompt + candidates_n + u.reasoning + tool));
    usage.insert("totalTokenCount".into(), total);
    let mut o = Map::new();
    o.insert("candidates".into(), Value::Array(candidates));
    o.insert("usageMetadata".into(), Value::Object(usage));
    if !r.model.is_empty() {
        o.insert("modelVersion".into(), json!(r.model));
    }
    if !r.id.is_empty() {
        o.insert("responseId".into(), json!(r.id));
    }
    for (k, v) in ext {
        let consumed = matches!(
            k.as_str(),
            "candidates[0].content"
                | "candidates[0]"
                | "candidates[1..]"
                | "candidates[0].citationMetadata"
                | "usageMetadata"
        );
        if !consumed && !k.starts_with('_') {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in r.ext.foreign_fields(Protocol::Gemini) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}
