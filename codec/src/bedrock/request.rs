//! Converse request (`POST /model/{modelId}/converse` body) <-> IR.
//!
//! The model comes from the URL path (the caller decodes it) and is never written: the caller
//! builds the URL. Typed homes: `inferenceConfig` -> `max_output_tokens`, `sampling`, `stop`;
//! `toolConfig` -> `tools` / `tool_choice` (kept whole in `ext.bedrock` when it holds a
//! `systemTool` or another shape the IR has no type for); `additionalModelRequestFields`
//! `thinking` and `top_k` -> `reasoning` / `sampling.top_k` (the rest stays there);
//! `outputConfig.textFormat` -> `response_format`, `outputConfig.effort` -> `reasoning.effort`.
//! Everything else (`guardrailConfig`, `promptVariables`, `requestMetadata`,
//! `performanceConfig`, `serviceTier`, `additionalModelResponseFieldPaths`) stays in
//! `ext.bedrock`.
//!
//! Normal forms on the way out: empty `inferenceConfig`, `stopSequences`, `messages` and
//! `system` lists are omitted; consecutive turns of one role are merged into one (Converse
//! requires the roles to alternate; OpenAI `tool` turns become one `user` turn); system and
//! developer turns from other protocols join `system`.

use super::blocks::{Hints, cache_point_json, cache_point_of, parse_blocks};
use super::config::{
    parse_inference, parse_model_fields, parse_output_config, parse_tool_config, write_settings,
};
use super::emit::write_blocks;
use super::no_hint_keys;
use crate::Protocol;
use crate::ir::{Block, Extensions, LossReport, Message, Request, Role};
use crate::openai::RequestError;
use serde_json::{Map, Value, json};

fn bad(msg: impl Into<String>) -> RequestError {
    RequestError::Json(msg.into())
}

/// Parses a Converse request body into the IR; `model_id` is the model from the URL path.
pub fn parse_request(body: &[u8], model_id: &str) -> Result<Request, RequestError> {
    let obj = RequestError::object(body)?;
    if model_id.is_empty() {
        return Err(RequestError::MissingModel);
    }
    no_hint_keys(&obj, "request").map_err(bad)?;
    let mut req = Request {
        model: model_id.to_string(),
        ..Request::default()
    };
    for (key, val) in obj {
        match key.as_str() {
            "messages" => parse_messages(val, &mut req)?,
            "system" => req.system = parse_system(val)?,
            "inferenceConfig" => parse_inference(val, &mut req).map_err(bad)?,
            "toolConfig" => parse_tool_config(val, &mut req)?,
            "additionalModelRequestFields" => parse_model_fields(val, &mut req),
            "outputConfig" => parse_output_config(val, &mut req)?,
            _ => {
                req.ext.bedrock.insert(key, val);
            }
        }
    }
    Ok(req)
}

fn parse_messages(val: Value, req: &mut Request) -> Result<(), RequestError> {
    let Value::Array(list) = val else {
        return Err(bad("messages must be an array"));
    };
    for (i, m) in list.into_iter().enumerate() {
        let path = format!("messages[{i}]");
        let Value::Object(mut o) = m else {
            return Err(bad(format!("{path} must be an object")));
        };
        no_hint_keys(&o, &path).map_err(bad)?;
        let role = match o.remove("role").as_ref().and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("system") => Role::System,
            other => {
                return Err(bad(format!(
                    "{path}.role must be user, assistant or system, not {other:?}"
                )));
            }
        };
        let Some(Value::Array(list)) = o.remove("content") else {
            return Err(bad(format!("{path}.content must be an array")));
        };
        let mut hints = Hints::default();
        let content = parse_blocks(list, &format!("{path}.content"), &mut hints).map_err(bad)?;
        let mut ext = Extensions {
            bedrock: o,
            ..Extensions::default()
        };
        hints.store(&mut ext.bedrock);
        if role == Role::System {
            // A system turn inside the conversation stays there on a Bedrock trip.
            ext.bedrock.insert("_inline".into(), json!(true));
        }
        req.messages.push(Message {
            role,
            content,
            name: None,
            ext,
        });
    }
    Ok(())
}

fn parse_system(val: Value) -> Result<Vec<Block>, RequestError> {
    let Value::Array(list) = val else {
        return Err(bad("system must be an array"));
    };
    let mut out: Vec<Block> = Vec::with_capacity(list.len());
    for (j, v) in list.into_iter().enumerate() {
        if !v.is_object() {
            return Err(bad(format!("system[{j}] must be an object")));
        }
        if let Some(c) = cache_point_of(&v)
            && let Some(Block::Text {
                cache: slot @ None, ..
            }) = out.last_mut()
        {
            *slot = Some(c);
            continue;
        }
        let text = match v
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("text"))
        {
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(bad(format!("system[{j}].text must be a string"))),
            None => None,
        };
        out.push(match text {
            Some(text) => Block::Text {
                text,
                citations: Vec::new(),
                cache: None,
            },
            // guardContent, and a cachePoint with nothing to mark
            None => Block::Raw {
                protocol: Protocol::Bedrock,
                value: v,
            },
        });
    }
    Ok(out)
}

/// Writes the IR as a Converse request body (the model goes in the URL, which the caller
/// builds). Everything the IR holds that Converse cannot carry is named in `loss`.
pub fn write_request(req: &Request, loss: &mut LossReport) -> Vec<u8> {
    let ext = &req.ext.bedrock;
    let mut o = Map::new();
    let mut system = write_system(&req.system, "system", loss);
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        if m.name.is_some() {
            loss.drop_field(format!("{path}.name"));
        }
        for f in m.ext.foreign_fields(Protocol::Bedrock) {
            loss.drop_field(format!("{path}.{f}"));
        }
        let inline = m.ext.bedrock.get("_inline") == Some(&json!(true));
        let role = match m.role {
            Role::System if inline => "system",
            Role::System | Role::Developer => {
                system.extend(write_system(&m.content, &format!("{path}.content"), loss));
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let hints = Hints::of(&m.ext.bedrock);
        let content = write_blocks(&m.content, &format!("{path}.content"), &hints, loss);
        let mut msg = Map::new();
        msg.insert("role".into(), json!(role));
        msg.insert("content".into(), Value::Array(content));
        for (k, v) in &m.ext.bedrock {
            if !k.starts_with('_') {
                msg.insert(k.clone(), v.clone());
            }
        }
        push_turn(&mut messages, msg);
    }
    if !system.is_empty() {
        o.insert("system".into(), Value::Array(system));
    }
    if !messages.is_empty() {
        o.insert("messages".into(), Value::Array(messages));
    }
    write_settings(req, &mut o, loss);
    let s = &req.sampling;
    loss.drop_present(
        "",
        &[
            (s.frequency_penalty.is_some(), "frequency_penalty"),
            (s.presence_penalty.is_some(), "presence_penalty"),
            (s.seed.is_some(), "seed"),
            (s.candidates.is_some_and(|n| n != 1), "n"),
            (
                req.parallel_tool_calls == Some(false),
                "parallel_tool_calls",
            ),
            (!req.safety.is_empty(), "safety_settings"),
            (req.user.is_some(), "user"),
        ],
    );
    for (k, v) in ext {
        let handled = [
            "inferenceConfig",
            "toolConfig",
            "additionalModelRequestFields",
            "outputConfig",
        ];
        if !k.starts_with('_') && !handled.contains(&k.as_str()) {
            o.insert(k.clone(), v.clone());
        }
    }
    for f in req.ext.foreign_fields(Protocol::Bedrock) {
        loss.drop_field(f);
    }
    serde_json::to_vec(&Value::Object(o)).expect("a JSON value always serializes")
}

/// Appends a turn, merging it into the previous one when both have the same role and nothing
/// but `role` and `content` (Converse requires user and assistant turns to alternate).
fn push_turn(messages: &mut Vec<Value>, msg: Map<String, Value>) {
    let plain = |m: &Map<String, Value>| m.len() == 2;
    if let Some(Value::Object(prev)) = messages.last_mut()
        && plain(prev)
        && plain(&msg)
        && prev.get("role") == msg.get("role")
        && let (Some(Value::Array(a)), Some(Value::Array(b))) =
            (prev.get_mut("content"), msg.get("content"))
    {
        a.extend(b.iter().cloned());
        return;
    }
    messages.push(Value::Object(msg));
}

/// System blocks: text (with its cache mark as a following `cachePoint`) and raw Converse
/// system blocks (`guardContent`, `cachePoint`); anything else is reported.
fn write_system(blocks: &[Block], path: &str, loss: &mut LossReport) -> Vec<Value> {
    let mut out = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b {
            Block::Text {
                text,
                citations,
                cache,
            } => {
                if !citations.is_empty() {
                    loss.drop_field(format!("{path}[{j}].citations"));
                }
                if !text.is_empty() {
                    out.push(json!({ "text": text }));
                }
                if let Some(c) = cache {
                    out.push(cache_point_json(c));
                }
            }
            Block::Raw {
                protocol: Protocol::Bedrock,
                value,
            } => out.push(value.clone()),
            _ => loss.drop_field(format!("{path}[{j}]")),
        }
    }
    out
}
