//! Gemini `GenerateContentResponse` <-> IR (non-streaming).
//!
//! ```text
//!   candidates[0].content.parts    content (parts.rs)
//!   candidates[0].finishReason     stop_reason  (STOP + functionCall parts -> ToolUse)
//!   candidates[0].safetyRatings    safety (typed; extra rating fields kept in a hint)
//!   candidates[0].citationMetadata citations on the first text block
//!   candidates[0].<other>          ext.gemini["candidates[0].<other>"] (grounding, logprobs, ...)
//!   candidates[1..]                ext.gemini["candidates[1..]"]
//!   promptFeedback.blockReason     stop_reason ContentFilter (promptFeedback kept in ext)
//!   usageMetadata                  usage: input = prompt - cached, cache_read = cached,
//!                                  output = candidates + thoughts, reasoning = thoughts
//!   modelVersion / responseId      model / id
//! ```
//!
//! Gemini has no "tool use" finish reason: `STOP` with function calls is the IR's ToolUse and
//! is written back as `STOP`. The filter reasons (`SAFETY`, `RECITATION`, `BLOCKLIST`,
//! `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY`, ...) are all ContentFilter, their spelling kept
//! in a hint. Fields the body lacked (no candidates, no `parts`, no usage counts) are hinted so
//! a same-protocol trip adds nothing.

use super::MINTED_ID_PREFIX;
use super::keys::{normalize, object};
use super::parts::{Ids, PartHints, WriteCtx, parse_parts, write_parts};
use crate::Protocol;
use crate::ir::{Block, Citation, LossReport, Response, SafetyRating, StopReason, Usage};
use serde_json::{Map, Value, json};

/// Every `finishReason` the API reference lists.
const FINISH_REASONS: &[&str] = &[
    "FINISH_REASON_UNSPECIFIED",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_OTHER",
    "NO_IMAGE",
    "IMAGE_RECITATION",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MISSING_THOUGHT_SIGNATURE",
    "MALFORMED_RESPONSE",
];

pub(super) fn stop_of(reason: &str, calls: bool) -> StopReason {
    match reason {
        "STOP" if calls => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

/// Typed ratings, and whether the raw list says more than they do (scores, severities, an
/// explicit `blocked: false`, a rating that is not an object).
fn ratings_of(v: &[Value]) -> (Vec<SafetyRating>, bool) {
    let mut out = Vec::new();
    let mut extra = false;
    for r in v {
        let Some(o) = r.as_object() else {
            extra = true;
            continue;
        };
        let get = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let (category, probability) = (get("category"), get("probability"));
        let blocked = o.get("blocked").and_then(Value::as_bool);
        extra |= category.is_none()
            || probability.is_none()
            || blocked == Some(false)
            || o.len() != 2 + usize::from(blocked.is_some());
        out.push(SafetyRating {
            category: category.unwrap_or_default(),
            probability: probability.unwrap_or_default(),
            blocked: blocked.unwrap_or(false),
        });
    }
    (out, extra)
}

/// Parses a `generateContent` response body into the IR.
pub fn parse_response(body: &[u8]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut o = object(normalize(v), "the response body")?;
    crate::ir::reserved_fields(
        &o,
        &["candidates[0].", "candidates[1..]"],
        "the response body",
    )?;
    if let Some(k) = o.keys().find(|k| k.starts_with("candidates[")) {
        return Err(format!("the response body: unknown field `{k}`"));
    }
    let mut r = Response::default();
    let hint = |r: &mut Response, k: &str, v: Value| {
        r.ext.gemini.insert(k.into(), v);
    };
    if let Some(Value::String(id)) = o.get("responseId") {
        r.id = id.clone();
        o.remove("responseId");
    }
    if let Some(Value::String(m)) = o.get("modelVersion") {
        r.model = m.clone();
        o.remove("modelVersion");
    }
    let mut candidates = match o.remove("candidates") {
        Some(Value::Array(c)) => c,
        None => {
            hint(&mut r, "_candidates", json!("none"));
            Vec::new()
        }
        Some(_) => return Err("candidates must be an array".into()),
    };
    if candidates.is_empty() {
        if !r.ext.gemini.contains_key("_candidates") {
            hint(&mut r, "_candidates", json!("empty"));
        }
    } else {
        let c = object(candidates.remove(0), "candidates[0]")?;
        parse_candidate(c, &mut r)?;
    }
    if !candidates.is_empty() {
        hint(&mut r, "candidates[1..]", Value::Array(candidates));
    }
    let blocked = o
        .get("promptFeedback")
        .is_some_and(|pf| pf.get("blockReason").is_some());
    if blocked && r.stop_reason.is_none() {
        r.stop_reason = Some(StopReason::ContentFilter);
        hint(&mut r, "_noFinishReason", json!(true));
    }
    match o.remove("usageMetadata") {
        Some(Value::Object(u)) => parse_usage(u, &mut r),
        None => hint(&mut r, "_noUsage", json!(true)),
        Some(_) => return Err("usageMetadata must be an object".into()),
    }
    r.ext.gemini.extend(o);
    Ok(r)
}

fn parse_candidate(mut c: Map<String, Value>, r: &mut Response) -> Result<(), String> {
    let ext = &mut r.ext.gemini;
    match c.remove("content") {
        None => {
            ext.insert("_noContent".into(), json!(true));
        }
        Some(content) => {
            let mut content = object(content, "candidates[0].content")?;
            match content.remove("role") {
                Some(role) if role == "model" => {}
                Some(role) => {
                    ext.insert("_role".into(), role);
                }
                None => {
                    ext.insert("_noRole".into(), json!(true));
                }
            }
            let parts = match content.remove("parts") {
                Some(Value::Array(p)) => p,
                None => {
                    ext.insert("_noParts".into(), json!(true));
                    Vec::new()
                }
                Some(_) => return Err("candidates[0].content.parts must be an array".into()),
            };
            let id: String = r.id.chars().filter(char::is_ascii_alphanumeric).collect();
            let mint = |k: usize| format!("{MINTED_ID_PREFIX}{id}_{k}");
            let mut ids = Ids::default();
            let (blocks, hints) = parse_parts(parts, &mut ids, &mint, "candidates[0].content")?;
            r.content = blocks;
            if let Some(h) = hints.to_json() {
                ext.insert("_partHints".into(), h);
            }
            if !content.is_empty() {
                ext.insert("candidates[0].content".into(), Value::Object(content));
            }
        }
    }
    let calls = r.content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    if let Some(Value::String(f)) = c.get("finishReason") {
        let stop = stop_of(f, calls);
        if !matches!(f.as_str(), "STOP" | "MAX_TOKENS" | "SAFETY") {
            ext.insert("_finishReason".into(), json!(f));
        }
        r.stop_reason = Some(stop);
        c.remove("finishReason");
    }
    if let Some(Value::Array(list)) = c.get("safetyRatings") {
        let (typed, extra) = ratings_of(list);
        r.safety = typed;
        if extra {
            ext.insert("_safetyRatings".into(), Value::Array(list.clone()));
        }
        c.remove("safetyRatings");
    }
    let cites: Option<Vec<Citation>> = match c.get("citationMetadata") {
        Some(Value::Object(cm)) if cm.len() == 1 => match cm.get("citations") {
            Some(Value::Array(list)) => Some(list.iter().map(citation).collect()),
            _ => None,
        },
        _ => None,
    };
    let first_text = r
        .content
        .iter_mut()
        .find(|b| matches!(b, Block::Text { .. }));
    if let (Some(cites), Some(Block::Text { citations, .. })) = (cites, first_text) {
        *citations = cites;
        c.remove("citationMetadata");
    }
    if c.get("index") == Some(&json!(0)) {
        ext.insert("_index".into(), json!(0));
        c.remove("index");
    }
    for (k, v) in c {
        ext.insert(format!("candidates[0].{k}"), v);
    }
    Ok(())
}

/// One Gemini citation source in IR form.
pub(crate) fn citation(c: &Value) -> Citation {
    Citation {
        protocol: Protocol::Gemini,
        raw: c.clone(),
        cited_text: None,
        source: c
            .get("uri")
            .or_else(|| c.get("title"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Token counts added up; counts near `u64::MAX` (never real) saturate instead of overflowing.
fn sum(counts: &[u64]) -> u64 {
    counts.iter().fold(0u64, |a, b| a.saturating_add(*b))
}

fn parse_usage(mut u: Map<String, Value>, r: &mut Response) {
    let mut present = Vec::new();
    let mut n = |u: &mut Map<String, Value>, k: &str| match u.get(k).and_then(Value::as_u64) {
        Some(x) => {
            u.remove(k);
            present.push(json!(k));
            x
        }
        None => 0,
    };
    let prompt = n(&mut u, "promptTokenCount");
    let cached = n(&mut u, "cachedContentTokenCount");
    let candidates = n(&mut u, "candidatesTokenCount");
    let thoughts = n(&mut u, "thoughtsTokenCount");
    let total = n(&mut u, "totalTokenCount");
    let tool = u
        .get("toolUsePromptTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    r.usage = Usage {
        input: prompt.saturating_sub(cached),
        output: candidates.saturating_add(thoughts),
        cache_read: cached,
        cache_write: 0,
        reasoning: thoughts,
    };
    let ext = &mut r.ext.gemini;
    if total != sum(&[prompt, candidates, thoughts, tool]) {
        ext.insert("_totalTokenCount".into(), json!(total));
    }
    ext.insert("_usageCounts".into(), Value::Array(present));
    if cached > prompt {
        ext.insert("_promptTokenCount".into(), json!(prompt));
    }
    if !u.is_empty() {
        ext.insert("usageMetadata".into(), Value::Object(u));
    }
}

/// Writes the IR as a `generateContent` response body; what Gemini cannot carry goes in `loss`.
/// `responseId` is the IR id as it is (Gemini ids have no prefix to mint) and `modelVersion`
/// the IR model.
pub fn write_response(r: &Response, loss: &mut LossReport) -> Vec<u8> {
    let ext = &r.ext.gemini;
    let mut o = Map::new();
    match ext.get("_candidates").and_then(Value::as_str) {
        Some("none") if r.content.is_empty() => {}
        Some("empty") if r.content.is_empty() => {
            o.insert("candidates".into(), json!([]));
        }
        _ => {
            let mut candidates = vec![Value::Object(write_candidate(r, loss))];
            if let Some(Value::Array(more)) = ext.get("candidates[1..]") {
                candidates.extend(more.iter().cloned());
            }
            o.insert("candidates".into(), Value::Array(candidates));
        }
    }
    if !ext.contains_key("_noUsage") || r.usage != Usage::default() {
        o.insert("usageMetadata".into(), Value::Object(write_usage(r, loss)));
    }
    if !r.model.is_empty() {
        o.insert("modelVersion".into(), json!(r.model));
    }
    if !r.id.is_empty() {
        o.insert("responseId".into(), json!(r.id));
    }
    for (k, v) in ext {
        let consumed = k.starts_with("candidates[") || k == "usageMetadata";
        if !consumed && !k.starts_with('_') {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in r.ext.foreign_fields(Protocol::Gemini) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

pub(super) fn finish_reason(
    stop: &StopReason,
    exact: Option<&str>,
    loss: &mut LossReport,
) -> String {
    if let Some(e) = exact.filter(|e| stop_of(e, *stop == StopReason::ToolUse) == *stop) {
        return e.to_string();
    }
    match stop {
        StopReason::EndTurn
        | StopReason::ToolUse
        | StopReason::StopSequence(_)
        | StopReason::PauseTurn => "STOP",
        StopReason::MaxTokens | StopReason::ContextExceeded => "MAX_TOKENS",
        StopReason::ContentFilter | StopReason::Refusal => "SAFETY",
        StopReason::Other(o) if FINISH_REASONS.contains(&o.as_str()) => o,
        StopReason::Other(_) => {
            loss.drop_field("stop_reason");
            "OTHER"
        }
    }
    .to_string()
}

fn write_candidate(r: &Response, loss: &mut LossReport) -> Map<String, Value> {
    let ext = &r.ext.gemini;
    let mut cand = Map::new();
    if !ext.contains_key("_noContent") || !r.content.is_empty() {
        let mut content = Map::new();
        match ext.get("_role") {
            _ if ext.contains_key("_noRole") => {}
            Some(role) => {
                content.insert("role".into(), role.clone());
            }
            None => {
                content.insert("role".into(), json!("model"));
            }
        }
        let cx = WriteCtx {
            path: "content",
            name_of: &|_| None,
            hints: PartHints::from_json(ext.get("_partHints")),
            response: true,
        };
        if !ext.contains_key("_noParts") || !r.content.is_empty() {
            content.insert(
                "parts".into(),
                Value::Array(write_parts(&r.content, &cx, loss)),
            );
        }
        if let Some(Value::Object(extra)) = ext.get("candidates[0].content") {
            content.extend(extra.clone());
        }
        cand.insert("content".into(), Value::Object(content));
    }
    if let Some(stop) = &r.stop_reason {
        let exact = ext.get("_finishReason").and_then(Value::as_str);
        let reason = finish_reason(stop, exact, loss);
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
    if !cites.is_empty() {
        cand.insert("citationMetadata".into(), json!({"citations": cites}));
    }
    if let Some(i) = ext.get("_index") {
        cand.insert("index".into(), i.clone());
    }
    for (k, v) in ext {
        if let Some(field) = k.strip_prefix("candidates[0].")
            && field != "content"
        {
            cand.insert(field.to_string(), v.clone());
        }
    }
    cand
}

fn write_usage(r: &Response, loss: &mut LossReport) -> Map<String, Value> {
    let ext = &r.ext.gemini;
    let u = &r.usage;
    let mut usage = ext
        .get("usageMetadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if u.cache_write > 0 {
        // Gemini counts every prompt token in promptTokenCount; the split is what is lost.
        loss.drop_field("usage.cache_write");
    }
    let prompt = match ext.get("_promptTokenCount").and_then(Value::as_u64) {
        Some(p) => p,
        None => sum(&[u.input, u.cache_read, u.cache_write]),
    };
    let candidates = u.output.saturating_sub(u.reasoning);
    let tool = usage
        .get("toolUsePromptTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let total = match ext.get("_totalTokenCount") {
        Some(t) => t.clone(),
        None => json!(sum(&[prompt, candidates, u.reasoning, tool])),
    };
    let counts: [(&str, Value, bool); 5] = [
        ("promptTokenCount", json!(prompt), true),
        (
            "cachedContentTokenCount",
            json!(u.cache_read),
            u.cache_read > 0,
        ),
        ("candidatesTokenCount", json!(candidates), true),
        ("thoughtsTokenCount", json!(u.reasoning), u.reasoning > 0),
        ("totalTokenCount", total, true),
    ];
    let present = ext.get("_usageCounts").and_then(Value::as_array);
    for (k, v, nonzero) in counts {
        let write = match present {
            Some(p) => p.iter().any(|x| x == k) || nonzero && v != json!(0),
            None => nonzero,
        };
        if write {
            usage.insert(k.into(), v);
        }
    }
    usage
}
