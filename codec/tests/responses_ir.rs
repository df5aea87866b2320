//! OpenAI Responses through the IR: every documented fixture round-trips with an empty loss
//! report (items merged into turns and split back, reasoning items with summaries, reasoning
//! text and encrypted content, parallel function calls, outputs as text or parts, annotations,
//! cache breakpoints, hosted tools, usage with cached, cache-write and reasoning tokens, every
//! status); fields land in their typed IR homes; the cross pairs with OpenAI Chat and Anthropic
//! carry what both sides can express in the target's own shape and report the rest by path;
//! reasoning survives a multi-turn trip through a client of the other protocol both ways; and
//! malformed bodies are errors, not panics.

mod common;
use common::*;

use busbar_codec::ir::{
    Block, LossReport, Media, Message, Reasoning, ReasoningEffort, Response, ResponseFormat, Role,
    StopReason, ToolChoice, Usage,
};
use busbar_codec::{anthropic, fuzzing, openai, responses};
use serde_json::{Value, json};

fn names(prefix: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/responses");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

fn dropped(loss: &LossReport, want: &[&str]) {
    for w in want {
        assert!(
            loss.dropped.iter().any(|d| d == w),
            "{w} not reported: {:?}",
            loss.dropped
        );
    }
}

fn req_json(ir: &busbar_codec::ir::Request) -> (Value, LossReport) {
    let mut loss = LossReport::default();
    let out = responses::write_request(ir, &mut loss);
    (serde_json::from_slice(&out).unwrap(), loss)
}

fn resp_json(r: &Response) -> (Value, LossReport) {
    let mut loss = LossReport::default();
    let out = responses::write_response(r, 1_700_000_000, &mut loss);
    (serde_json::from_slice(&out).unwrap(), loss)
}

#[test]
fn every_fixture_round_trips_without_loss() {
    let requests = names("request");
    let responses_ = names("response");
    assert!(requests.len() >= 4 && responses_.len() >= 7);
    for name in &requests {
        let body = fixture("responses", name);
        let ir = responses::parse_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut loss = LossReport::default();
        let out = responses::write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
        // The fuzzers' property: the written body is a fixed point.
        fuzzing::responses_request_ir(&body);
    }
    for name in &responses_ {
        let body = fixture("responses", name);
        let ir = responses::parse_response(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut loss = LossReport::default();
        let out = responses::write_response(&ir, 1, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
        fuzzing::responses_response_ir(&body);
    }
}

#[test]
fn typed_homes_in_a_multiturn_request() {
    let ir =
        responses::parse_request(&fixture("responses", "request_multiturn_tools.json")).unwrap();
    assert!(matches!(&ir.system[..], [Block::Text { text, .. }] if text.starts_with("You are")));
    let user = &ir.messages[0];
    assert_eq!(user.role, Role::User);
    assert!(
        matches!(&user.content[1], Block::Image { detail: Some(d), source: Media::Url { .. }, .. } if d == "high")
    );
    assert!(
        matches!(&user.content[2], Block::Image { source: Media::Base64 { media_type, .. }, .. } if media_type == "image/png")
    );
    assert!(
        matches!(&user.content[3], Block::Document { title: Some(t), source: Media::Base64 { media_type, .. }, .. }
        if t == "itinerary.pdf" && media_type == "application/pdf")
    );
    assert!(
        matches!(&user.content[4], Block::Document { source: Media::FileId { id }, .. } if id == "file-6F2ksmvXxt4VdoqmHRw6kL")
    );
    // Reasoning, text and two calls merge into one assistant turn.
    let a = &ir.messages[1];
    assert_eq!(a.role, Role::Assistant);
    assert!(
        matches!(&a.content[0], Block::Thinking { text, signature: Some(s) } if s == "rs_6890a1b2c3d4e5f60718293a4b5c6d7e" && text.starts_with("**Checking"))
    );
    assert!(
        matches!(&a.content[1], Block::RedactedThinking { data } if data == "gAAAAABoIvd1Zx0rEiBNwTu2Kd0")
    );
    assert!(
        matches!(&a.content[2], Block::Text { text, .. } if text == "Let me check both cities.")
    );
    assert!(
        matches!(&a.content[3], Block::ToolUse { id, name, input, .. } if id == "call_12345xyz" && name == "get_weather" && input["location"] == "Paris, France")
    );
    assert!(matches!(&a.content[4], Block::ToolUse { id, .. } if id == "call_67890abc"));
    assert_eq!(a.content.len(), 5);
    // One Tool message per output, like OpenAI's tool messages.
    for (i, id, text) in [
        (
            2,
            "call_12345xyz",
            "{\"temperature\": 14, \"conditions\": \"rain\"}",
        ),
        (3, "call_67890abc", "19 C, sunny"),
    ] {
        let m = &ir.messages[i];
        assert_eq!(m.role, Role::Tool);
        let [
            Block::ToolResult {
                tool_use_id,
                content,
                ..
            },
        ] = &m.content[..]
        else {
            panic!("{i}: {:?}", m.content)
        };
        assert_eq!(tool_use_id, id);
        assert!(matches!(&content[..], [Block::Text { text: t, .. }] if t == text));
    }
    assert_eq!(ir.messages[4].role, Role::User);
    assert_eq!(ir.messages.len(), 5);
    assert_eq!(ir.tools.len(), 1, "the hosted web_search tool stays in ext");
    assert_eq!(ir.tools[0].strict, Some(true));
    assert_eq!(ir.tools[0].parameters["required"], json!(["location"]));
    assert_eq!(ir.ext.responses["tools"], json!([{"type": "web_search"}]));
    assert_eq!(ir.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(ir.parallel_tool_calls, Some(true));
    let Some(ResponseFormat::JsonSchema {
        name,
        description,
        schema,
        strict,
    }) = &ir.response_format
    else {
        panic!("{:?}", ir.response_format)
    };
    assert_eq!(
        (name.as_deref(), description.as_deref(), *strict),
        (Some("forecast"), Some("A short forecast"), Some(true))
    );
    assert_eq!(schema["required"], json!(["summary"]));
    assert_eq!(ir.ext.responses["text"], json!({"verbosity": "low"}));
    assert_eq!(
        ir.reasoning,
        Some(Reasoning {
            effort: Some(ReasoningEffort::Medium),
            include_thoughts: Some(true),
            ..Reasoning::default()
        })
    );
    assert_eq!(
        ir.ext.responses["include"],
        json!(["reasoning.encrypted_content"])
    );
    assert_eq!(
        (
            ir.max_output_tokens,
            ir.sampling.temperature,
            ir.sampling.top_p
        ),
        (Some(2048), Some(0.7), Some(0.9))
    );
    assert_eq!(ir.user.as_deref(), Some("user-1234"));
    for k in [
        "store",
        "metadata",
        "truncation",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    ] {
        assert!(ir.ext.responses.contains_key(k), "{k}");
    }
}

#[test]
fn typed_homes_for_roles_media_and_hosted_tools() {
    let ir =
        responses::parse_request(&fixture("responses", "request_roles_media_hosted.json")).unwrap();
    let roles: Vec<Role> = ir.messages.iter().map(|m| m.role).collect();
    use Role::*;
    assert_eq!(roles, [Developer, System, User, Assistant, User]);
    let user = &ir.messages[2].content;
    assert!(
        matches!(&user[0], Block::Text { cache: Some(c), .. } if c.kind == "ephemeral" && c.ttl.is_none())
    );
    assert!(
        matches!(&user[1], Block::Document { source: Media::Url { url, .. }, .. } if url.ends_with("2024ltr.pdf"))
    );
    assert!(
        matches!(&user[2], Block::Document { source: Media::FileId { .. }, title: Some(t), .. } if t == "handbook.pdf")
    );
    assert!(
        matches!(&user[3], Block::Image { source: Media::FileId { id }, detail: Some(d), .. } if id.starts_with("file-Kp") && d == "low")
    );
    // A file's `detail` has no IR home: kept for the trip back, named for the loss report.
    assert_eq!(ir.messages[2].ext.responses["part.detail"], "high");
    let a = &ir.messages[3];
    let Block::Text { citations, .. } = &a.content[0] else {
        panic!()
    };
    assert_eq!(
        citations[0].cited_text.as_deref(),
        Some("Le float a atteint 171 milliards de dollars."),
        "the annotation's character range"
    );
    assert_eq!(
        citations[0].source.as_deref(),
        Some("https://www.berkshirehathaway.com/letters/2024ltr.pdf")
    );
    assert_eq!(a.ext.responses["item.phase"], "final_answer");
    assert!(
        matches!(&a.content[1], Block::Raw { value, .. } if value["type"] == "item_reference"),
        "a reference joins the assistant's turn"
    );
    assert_eq!(ir.tools.len(), 1);
    assert_eq!(ir.tools[0].name, "lookup_policy");
    assert_eq!(ir.tools[0].strict, None, "Responses' default");
    assert_eq!(ir.ext.responses["tools"].as_array().unwrap().len(), 3);
    assert_eq!(ir.tool_choice, Some(ToolChoice::Required));
    assert_eq!(ir.parallel_tool_calls, Some(false));
    assert_eq!(ir.response_format, Some(ResponseFormat::JsonObject));
    assert_eq!(
        ir.reasoning,
        Some(Reasoning {
            effort: Some(ReasoningEffort::High),
            include_thoughts: Some(true),
            ..Reasoning::default()
        })
    );
    assert!(!ir.stream);
    for k in [
        "previous_response_id",
        "store",
        "background",
        "max_tool_calls",
        "top_logprobs",
        "include",
        "prompt_cache_retention",
    ] {
        assert!(ir.ext.responses.contains_key(k), "{k}");
    }
    assert!(
        !ir.ext.responses.contains_key("instructions"),
        "null is a private hint"
    );

    let ir = responses::parse_request(&fixture(
        "responses",
        "request_reasoning_text_allowed_tools.json",
    ))
    .unwrap();
    assert_eq!(
        ir.reasoning,
        Some(Reasoning {
            enabled: Some(false),
            ..Reasoning::default()
        }),
        "effort none turns reasoning off"
    );
    let a = &ir.messages[1];
    assert!(
        matches!(&a.content[0], Block::Thinking { text, signature: Some(s) } if text.starts_with("The user wants") && s == "rs_68b7c3e2d4a88193a7f1c5e20b9d4a6c"),
        "reasoning text is thinking too"
    );
    assert!(matches!(&a.content[1], Block::ToolUse { input, .. } if *input == json!({})));
    let [Block::ToolResult { content, .. }] = &ir.messages[2].content[..] else {
        panic!()
    };
    assert!(matches!(
        &content[..],
        [
            Block::Text { .. },
            Block::Image {
                source: Media::Base64 { .. },
                detail: Some(_),
                ..
            }
        ]
    ));
    assert_eq!(ir.tools[0].name, "get_time");
    assert_eq!(ir.tools[0].strict, Some(false));
    assert_eq!(ir.tool_choice, None);
    assert_eq!(ir.ext.responses["tool_choice"]["type"], "allowed_tools");
    assert!(ir.stream);
    assert_eq!(ir.max_output_tokens, Some(512));
}

#[test]
fn typed_homes_in_responses() {
    let r = responses::parse_response(&fixture("responses", "response_reasoning_tool_calls.json"))
        .unwrap();
    assert_eq!(
        r.stop_reason,
        Some(StopReason::ToolUse),
        "completed with calls"
    );
    assert_eq!(
        r.usage,
        Usage {
            input: 196,
            output: 410,
            cache_read: 128,
            cache_write: 0,
            reasoning: 320
        }
    );
    let id = "rs_68af40316b6081969f0b7b6b23c4a1f70a8b3e8d1f2e4c6b";
    assert!(
        matches!(&r.content[0], Block::Thinking { text, signature: Some(s) } if s == id && text.starts_with("**Planning"))
    );
    assert!(
        matches!(&r.content[1], Block::Thinking { text, signature: Some(s) } if s == id && text == "**Units** Celsius.")
    );
    assert!(
        matches!(&r.content[2], Block::RedactedThinking { data } if data == "gAAAAABor0AxQ2VuY3J5cHRlZA==")
    );
    assert!(
        matches!(&r.content[3], Block::ToolUse { id, .. } if id == "call_X4GmR9XHo8VEqyVdQ9oW3h1c")
    );
    assert!(
        matches!(&r.content[4], Block::ToolUse { id, input, .. } if id == "call_9yTRxQeC2ml1vA6YqLs0bN5e" && input["location"] == "Bogota, Colombia")
    );

    let r =
        responses::parse_response(&fixture("responses", "response_text_citations.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
    assert!(
        matches!(&r.content[0], Block::Raw { value, .. } if value["type"] == "web_search_call")
    );
    let Block::Text { citations, .. } = &r.content[1] else {
        panic!()
    };
    assert_eq!(
        citations[0].source.as_deref(),
        Some("https://www.ecb.europa.eu/press/")
    );

    let r = responses::parse_response(&fixture("responses", "response_file_search_logprobs.json"))
        .unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(
        r.usage,
        Usage {
            input: 18307 - 16384 - 1536,
            output: 348,
            cache_read: 16384,
            cache_write: 1536,
            reasoning: 128
        }
    );
    let Block::Text { citations, .. } = &r.content[1] else {
        panic!()
    };
    assert_eq!(citations[0].source.as_deref(), Some("dragons.pdf"));
    assert_eq!(
        citations[1].cited_text.as_deref(),
        Some("ancient brown dragon")
    );
    assert_eq!(r.ext.responses["item.phase"], "final_answer");
    assert!(
        !r.ext.responses.contains_key("part.logprobs"),
        "empty logprobs say nothing"
    );

    let r =
        responses::parse_response(&fixture("responses", "response_content_filter.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::ContentFilter));
    let r = responses::parse_response(&fixture("responses", "response_refusal_json_schema.json"))
        .unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::EndTurn));
    assert!(matches!(&r.content[..], [Block::Refusal { text }] if text.starts_with("I'm sorry")));
    let r = responses::parse_response(&fixture("responses", "response_failed.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::Other("failed".into())));
    assert_eq!(r.ext.responses["error"]["code"], "server_error");
    assert!(r.content.is_empty());
}

#[test]
fn every_status_maps_and_round_trips() {
    for (status, reason, ir) in [
        ("completed", None, StopReason::EndTurn),
        (
            "incomplete",
            Some("max_output_tokens"),
            StopReason::MaxTokens,
        ),
        (
            "incomplete",
            Some("content_filter"),
            StopReason::ContentFilter,
        ),
        ("failed", None, StopReason::Other("failed".into())),
        ("cancelled", None, StopReason::Other("cancelled".into())),
        ("in_progress", None, StopReason::Other("in_progress".into())),
        ("queued", None, StopReason::Other("queued".into())),
    ] {
        let body = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": status,
            "incomplete_details": reason.map(|r| json!({"reason": r})), "model": "gpt-4.1",
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
            "usage": {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 4},
            "error": null, "instructions": null, "max_output_tokens": null, "metadata": {}, "parallel_tool_calls": true,
            "previous_response_id": null, "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled", "user": null});
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = responses::parse_response(&bytes).unwrap();
        assert_eq!(r.stop_reason.as_ref(), Some(&ir), "{status}");
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&responses::write_response(&r, 1, &mut loss)),
            json_of(&bytes),
            "{status}"
        );
        assert!(loss.is_empty());
    }
}

#[test]
fn every_ir_stop_reason_is_written_or_reported() {
    for (stop, status, reason, lost) in [
        (StopReason::EndTurn, "completed", None, None),
        (StopReason::ToolUse, "completed", None, None),
        (StopReason::StopSequence(None), "completed", None, None),
        (
            StopReason::StopSequence(Some("END".into())),
            "completed",
            None,
            Some("stop_sequence"),
        ),
        (
            StopReason::MaxTokens,
            "incomplete",
            Some("max_output_tokens"),
            None,
        ),
        (
            StopReason::ContentFilter,
            "incomplete",
            Some("content_filter"),
            None,
        ),
        (
            StopReason::ContextExceeded,
            "incomplete",
            Some("max_output_tokens"),
            Some("stop_reason"),
        ),
        (StopReason::Refusal, "completed", None, Some("stop_reason")),
        (
            StopReason::PauseTurn,
            "completed",
            None,
            Some("stop_reason"),
        ),
        (
            StopReason::Other("RECITATION".into()),
            "completed",
            None,
            Some("stop_reason"),
        ),
        (StopReason::Other("failed".into()), "failed", None, None),
    ] {
        let r = Response {
            id: "msg_01".into(),
            model: "m".into(),
            content: vec![Block::Text {
                text: "x".into(),
                citations: Vec::new(),
                cache: None,
            }],
            stop_reason: Some(stop.clone()),
            ..Response::default()
        };
        let (out, loss) = resp_json(&r);
        assert_eq!(out["status"], status, "{stop:?}");
        assert_eq!(
            out["incomplete_details"],
            reason.map_or(Value::Null, |r| json!({"reason": r})),
            "{stop:?}"
        );
        assert_eq!(
            out["output"][0]["status"],
            if status == "incomplete" {
                "incomplete"
            } else {
                "completed"
            }
        );
        assert_eq!(
            loss.dropped,
            lost.map(|l| vec![l.to_string()]).unwrap_or_default(),
            "{stop:?}"
        );
        // And read back: the classes that survive.
        let back = responses::parse_response(&serde_json::to_vec(&out).unwrap()).unwrap();
        let want = match stop {
            StopReason::ToolUse
            | StopReason::StopSequence(_)
            | StopReason::Refusal
            | StopReason::PauseTurn => StopReason::EndTurn,
            StopReason::ContextExceeded => StopReason::MaxTokens,
            StopReason::Other(ref s) if s == "RECITATION" => StopReason::EndTurn,
            s => s,
        };
        assert_eq!(back.stop_reason, Some(want));
    }
}

/// A foreign response has every field the official SDK's `Response` model requires.
#[test]
fn responses_from_elsewhere_have_what_the_sdk_requires() {
    let a = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let (out, loss) = resp_json(&a);
    for k in [
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "usage",
        "error",
        "incomplete_details",
        "instructions",
        "metadata",
        "temperature",
        "top_p",
    ] {
        assert!(out.get(k).is_some(), "{k}");
    }
    assert_eq!(out["object"], "response");
    assert_eq!(out["created_at"], 1_700_000_000);
    assert_eq!(out["id"], "resp_msg01Aq9w938a90dw8q");
    assert_eq!(out["status"], "completed");
    let items = out["output"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(items[0]["id"], "rs_busbar_msg01Aq9w938a90dw8q_0");
    assert_eq!(items[1]["id"], "msg_msg01Aq9w938a90dw8q_1");
    assert_eq!(items[1]["status"], "completed");
    assert_eq!(items[1]["role"], "assistant");
    assert_eq!(items[1]["content"][0]["annotations"], json!([]));
    assert_eq!(items[2]["id"], "fc_msg01Aq9w938a90dw8q_2");
    assert_eq!(items[2]["call_id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        items[2]["arguments"],
        "{\"location\":\"San Francisco, CA\"}"
    );
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 2095 + 1024 + 512, "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 512},
            "output_tokens": 503, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2095 + 1024 + 512 + 503})
    );
    // The document citation has no Responses form; Anthropic's cache breakdown stays behind.
    assert_eq!(loss.dropped, ["content[1].citations[0]", "anthropic.usage"]);
    // The ids are stable: the same response gives the same ids.
    assert_eq!(resp_json(&a).0, out);
}

/// Thinking from Anthropic reaches a Responses client as a reasoning item; handed back on the
/// next turn, it reaches Anthropic as the same signed thinking (and redacted thinking stays
/// redacted).
#[test]
fn anthropic_thinking_survives_a_responses_client() {
    let mut a = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    a.content.insert(
        1,
        Block::RedactedThinking {
            data: "EmwKAhgBEgy3va3pzix".into(),
        },
    );
    let (out, _) = resp_json(&a);
    let items = out["output"].as_array().unwrap();
    let sig = "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL";
    assert_eq!(items[0]["encrypted_content"], sig);
    assert_eq!(
        items[0]["summary"][0]["text"],
        "I need the current weather, so I'll call get_weather."
    );
    assert_eq!(items[1]["summary"], json!([]));
    assert_eq!(items[1]["encrypted_content"], "EmwKAhgBEgy3va3pzix");
    // The client's next request: its input, the output items, and the tool's output.
    let mut input = vec![json!({"role": "user", "content": "Weather in SF?"})];
    input.extend(items.iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "toolu_01A09q90qw90lq917835lq9", "output": "18 C"}));
    let body = json!({"model": "claude-sonnet-4-5", "input": input, "reasoning": {"effort": "medium", "summary": "auto"}});
    let ir = responses::parse_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&anthropic::write_request(&ir, 4096, &mut loss)).unwrap();
    let turn = &out["messages"][1]["content"];
    assert_eq!(
        turn[0],
        json!({"type": "thinking", "thinking": "I need the current weather, so I'll call get_weather.", "signature": sig})
    );
    assert_eq!(
        turn[1],
        json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"})
    );
    assert_eq!(turn[3]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        out["messages"][2]["content"][0]["tool_use_id"],
        "toolu_01A09q90qw90lq917835lq9"
    );
    assert!(
        !loss.dropped.iter().any(|d| d.starts_with("messages")),
        "{:?}",
        loss.dropped
    );
    // Such items are never handed to OpenAI from another protocol's turn.
    let mut from_anthropic = ir.clone();
    for m in &mut from_anthropic.messages {
        m.ext.responses.clear();
    }
    let (out, loss) = req_json(&from_anthropic);
    assert!(
        !out["input"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["type"] == "reasoning")
    );
    dropped(&loss, &["messages[1].content[0]", "messages[1].content[1]"]);
}

/// A reasoning item from OpenAI reaches an Anthropic client as thinking signed with the item id
/// plus the encrypted content as redacted thinking; handed back, it is the same item again.
#[test]
fn openai_reasoning_survives_an_anthropic_client() {
    let r = responses::parse_response(&fixture("responses", "response_reasoning_tool_calls.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let msg: Value = serde_json::from_slice(&anthropic::write_response(&r, &mut loss)).unwrap();
    let id = "rs_68af40316b6081969f0b7b6b23c4a1f70a8b3e8d1f2e4c6b";
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["content"][0]["signature"], id);
    assert_eq!(msg["content"][1]["signature"], id);
    assert_eq!(
        msg["content"][2],
        json!({"type": "redacted_thinking", "data": "gAAAAABor0AxQ2VuY3J5cHRlZA=="})
    );
    assert!(
        !loss.dropped.iter().any(|d| d.starts_with("content")),
        "{:?}",
        loss.dropped
    );
    // The Anthropic client's next turn.
    let body = json!({"model": "gpt-5", "max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [
            {"role": "user", "content": "Weather in Paris and Bogota?"},
            {"role": "assistant", "content": msg["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_X4GmR9XHo8VEqyVdQ9oW3h1c", "content": "14 C"},
                {"type": "tool_result", "tool_use_id": "call_9yTRxQeC2ml1vA6YqLs0bN5e", "content": "19 C"}]}]});
    let ir = anthropic::parse_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    let (out, loss) = req_json(&ir);
    assert!(
        !loss.dropped.iter().any(|d| d.starts_with("messages")),
        "{:?}",
        loss.dropped
    );
    let input = out["input"].as_array().unwrap();
    assert_eq!(
        input[1],
        json!({"type": "reasoning", "id": id, "summary": [
            {"type": "summary_text", "text": "**Planning the lookup** Two calls, one per city."},
            {"type": "summary_text", "text": "**Units** Celsius."}],
            "encrypted_content": "gAAAAABor0AxQ2VuY3J5cHRlZA=="})
    );
    assert_eq!(input[2]["type"], "function_call");
    assert_eq!(input[3]["call_id"], "call_9yTRxQeC2ml1vA6YqLs0bN5e");
    assert_eq!(
        input[4],
        json!({"type": "function_call_output", "call_id": "call_X4GmR9XHo8VEqyVdQ9oW3h1c", "output": "14 C"})
    );
    assert_eq!(input[5]["call_id"], "call_9yTRxQeC2ml1vA6YqLs0bN5e");
    // The client wants thinking: summaries and the encrypted reasoning are asked for.
    assert_eq!(
        out["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    assert_eq!(out["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(out["store"], false);
}

#[test]
fn responses_requests_to_chat_and_anthropic() {
    let ir =
        responses::parse_request(&fixture("responses", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_request(&ir, &mut loss)).unwrap();
    let m = &out["messages"];
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "You are a helpful travel agent. Use tools for live data."})
    );
    assert_eq!(
        m[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/4/4a/Eiffel.jpg", "detail": "high"}})
    );
    assert_eq!(m[1]["content"][3]["file"]["filename"], "itinerary.pdf");
    assert_eq!(m[2]["content"], "Let me check both cities.");
    assert_eq!(m[2]["tool_calls"][1]["id"], "call_67890abc");
    assert_eq!(
        m[2]["tool_calls"][1]["function"]["arguments"],
        "{\"location\":\"Bogota, Colombia\"}"
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "call_12345xyz", "content": "{\"temperature\": 14, \"conditions\": \"rain\"}"})
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(out["response_format"]["json_schema"]["name"], "forecast");
    assert_eq!(out["reasoning_effort"], "medium");
    assert_eq!(
        (out["max_completion_tokens"].clone(), out["user"].clone()),
        (json!(2048), json!("user-1234"))
    );
    dropped(
        &loss,
        &[
            "messages[1].content[0]",
            "messages[1].content[1]",
            "reasoning.include_thoughts",
            "responses.store",
            "responses.include",
            "responses.text",
            "responses.tools",
            "responses.truncation",
            "responses.prompt_cache_key",
            "responses.safety_identifier",
        ],
    );

    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&anthropic::write_request(&ir, 4096, &mut loss)).unwrap();
    assert_eq!(
        out["system"],
        "You are a helpful travel agent. Use tools for live data."
    );
    let a = &out["messages"][1]["content"];
    assert_eq!(a[0]["signature"], "rs_6890a1b2c3d4e5f60718293a4b5c6d7e");
    assert_eq!(
        a[1],
        json!({"type": "redacted_thinking", "data": "gAAAAABoIvd1Zx0rEiBNwTu2Kd0"})
    );
    assert_eq!(
        a[3],
        json!({"type": "tool_use", "id": "call_12345xyz", "name": "get_weather", "input": {"location": "Paris, France"}})
    );
    let results = out["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2, "both outputs in one user turn");
    assert_eq!(results[1]["tool_use_id"], "call_67890abc");
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": false})
    );
    // max_output_tokens 2048 under the medium effort's 8192 budget: the answer keeps its 2048
    // on top (Anthropic wants the budget below max_tokens).
    assert_eq!(out["thinking"]["budget_tokens"], 8192);
    assert_eq!(out["max_tokens"], 8192 + 2048);
    dropped(
        &loss,
        &[
            "response_format",
            "tools[0].strict",
            "messages[0].content[1].detail",
            "responses.include",
        ],
    );
}

#[test]
fn chat_and_anthropic_requests_to_responses() {
    let ir = openai::parse_request(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    let (out, loss) = req_json(&ir);
    let input = out["input"].as_array().unwrap();
    assert_eq!(
        input[0],
        json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are a weather assistant."}]})
    );
    assert_eq!(input[2]["content"][1]["detail"], "high");
    assert_eq!(
        input[3],
        json!({"type": "function_call", "call_id": "call_abc123", "name": "get_weather", "arguments": "{\"location\":\"Paris\",\"unit\":\"celsius\"}"})
    );
    assert_eq!(
        input[5],
        json!({"type": "function_call_output", "call_id": "call_abc123", "output": "{\"temperature\": 18}"})
    );
    assert_eq!(
        input[7],
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A boardwalk through a meadow. Paris: 18°C, Lyon: 21°C.", "annotations": []}]})
    );
    assert_eq!(out["tools"][0]["strict"], true);
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
    assert_eq!(out["max_output_tokens"], 1024);
    assert!(out.get("reasoning").is_none() && out.get("include").is_none());
    dropped(
        &loss,
        &[
            "messages[2].name",
            "frequency_penalty",
            "presence_penalty",
            "seed",
            "stop",
            "openai.logit_bias",
            "openai.store",
        ],
    );

    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let (out, loss) = req_json(&ir);
    assert_eq!(
        out["instructions"],
        "You are a careful research assistant.\n\nHere is the style guide: ..."
    );
    let input = out["input"].as_array().unwrap();
    assert_eq!(
        input[0]["content"][0],
        json!({"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD"})
    );
    // A document's cache mark is a prompt cache breakpoint.
    assert_eq!(
        input[0]["content"][2],
        json!({"type": "input_file", "filename": "Q3 report",
        "file_data": "data:application/pdf;base64,JVBERi0xLjcKCjEgMCBvYmo", "prompt_cache_breakpoint": {"mode": "explicit"}})
    );
    assert_eq!(
        input[0]["content"][3],
        json!({"type": "input_text", "text": "The grass is green."})
    );
    assert!(
        !input.iter().any(|i| i["type"] == "reasoning"),
        "Anthropic's thinking is not OpenAI's"
    );
    assert_eq!(input[2]["call_id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(input[4]["output"][1]["type"], "input_image");
    // Anthropic tools are not strict, and Responses would make them so.
    assert_eq!(out["tools"][0]["strict"], false);
    assert_eq!(
        (
            out["tool_choice"].clone(),
            out["parallel_tool_calls"].clone()
        ),
        (json!("required"), json!(false))
    );
    assert_eq!(
        out["reasoning"],
        json!({"effort": "high", "summary": "auto"})
    );
    assert_eq!(out["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(out["user"], "13803d75-b4b5-4c3e-b2a2-6f21399b021b");
    assert_eq!(
        loss.dropped,
        [
            "system[1].cache_control",
            "messages[0].content[2].context",
            "messages[0].content[2].citations",
            "messages[1].content[0]",
            "messages[1].content[1]",
            "messages[2].content[1].is_error",
            "messages[3].content[0].citations[0]",
            "messages[3].content[1]",
            "tools[0].cache_control",
            "top_k",
            "stop",
            "anthropic.service_tier"
        ]
    );
    // A cache mark with a time to live: the breakpoint goes, the TTL is reported.
    let mut ir = ir;
    ir.messages[4].content = vec![Block::Text {
        text: "Thanks.".into(),
        citations: Vec::new(),
        cache: Some(busbar_codec::ir::CacheControl {
            kind: "ephemeral".into(),
            ttl: Some("1h".into()),
        }),
    }];
    let (out, loss) = req_json(&ir);
    let last = out["input"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["content"][0]["prompt_cache_breakpoint"],
        json!({"mode": "explicit"})
    );
    dropped(&loss, &["messages[4].content[0].cache_control.ttl"]);
}

#[test]
fn responses_responses_to_chat_and_anthropic() {
    let r = responses::parse_response(&fixture("responses", "response_reasoning_tool_calls.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_response(&r, 1, &mut loss)).unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][0]["id"],
        "call_X4GmR9XHo8VEqyVdQ9oW3h1c"
    );
    assert_eq!(out["usage"]["prompt_tokens"], 324);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 128);
    assert_eq!(
        out["usage"]["completion_tokens_details"]["reasoning_tokens"],
        320
    );
    dropped(
        &loss,
        &[
            "content[0]",
            "content[1]",
            "content[2]",
            "responses.created_at",
        ],
    );

    let r = responses::parse_response(&fixture("responses", "response_file_search_logprobs.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&anthropic::write_response(&r, &mut loss)).unwrap();
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "The ancient brown dragon has an armor class of 22 and 410 hit points."}])
    );
    assert_eq!(out["stop_reason"], "end_turn");
    assert_eq!(
        (
            out["usage"]["input_tokens"].clone(),
            out["usage"]["cache_read_input_tokens"].clone(),
            out["usage"]["cache_creation_input_tokens"].clone()
        ),
        (json!(387), json!(16384), json!(1536))
    );
    dropped(
        &loss,
        &[
            "content[0]",
            "content[1].citations",
            "responses.item.phase",
            "responses.tools",
            "responses.text",
        ],
    );
    assert!(
        !loss.dropped.iter().any(|d| d == "responses.part.logprobs"
            || d == "responses.metadata"
            || d == "responses.error"),
        "fields that say nothing are not reported: {:?}",
        loss.dropped
    );

    let r =
        responses::parse_response(&fixture("responses", "response_content_filter.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_response(&r, 1, &mut loss)).unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn chat_and_anthropic_responses_to_responses() {
    let r = openai::parse_response(&fixture("openai", "response_text_citations.json")).unwrap();
    let (out, loss) = resp_json(&r);
    assert_eq!(out["status"], "incomplete");
    assert_eq!(
        out["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(out["id"], "resp_chatcmplBJyUSSe6wD2uqrp7pSCFzYEV1Ftix");
    // Chat's url_citation in Responses' own shape.
    assert_eq!(
        out["output"][0]["content"][0]["annotations"],
        json!([{"type": "url_citation", "start_index": 25, "end_index": 64, "url": "https://example.com/busbar", "title": "busbar"}])
    );
    assert_eq!(
        out["usage"]["output_tokens_details"]["reasoning_tokens"],
        640
    );
    dropped(&loss, &["openai.created", "openai.system_fingerprint"]);

    let r =
        anthropic::parse_response(&fixture("anthropic", "response_stop_sequence.json")).unwrap();
    let (out, loss) = resp_json(&r);
    assert_eq!(out["status"], "completed");
    assert_eq!(
        out["output"][0]["content"][0]["text"],
        "Hi! My name is Claude."
    );
    assert_eq!(loss.dropped, ["stop_sequence"]);
}

#[test]
fn fields_without_an_ir_home_are_reported_not_dropped() {
    let body = json!({"model": "gpt-5.3-codex", "input": [
        {"role": "user", "content": "hi"},
        {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "phase": "commentary",
         "content": [{"type": "output_text", "text": "Looking.", "annotations": [], "logprobs": [{"token": "Looking", "logprob": -0.1, "bytes": [76], "top_logprobs": []}]}]},
        {"type": "function_call", "call_id": "call_1", "name": "search", "namespace": "docs", "arguments": "{\"q\":\"x\"}"},
        {"type": "function_call_output", "call_id": "call_1", "name": "search", "output": "ok"}
    ]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let ir = responses::parse_request(&bytes).unwrap();
    // Same protocol: everything comes back.
    let (out, loss) = req_json(&ir);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(normalize(out), normalize(body));
    assert!(matches!(&ir.messages[1].content[1], Block::ToolUse { name, .. } if name == "search"));
    assert!(
        matches!(&ir.messages[2].content[0], Block::ToolResult { name: Some(n), .. } if n == "search")
    );
    // Elsewhere: the text and the call arrive, the rest is named.
    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&anthropic::write_request(&ir, 1024, &mut loss)).unwrap();
    assert_eq!(out["messages"][1]["content"][0]["text"], "Looking.");
    assert_eq!(out["messages"][1]["content"][1]["name"], "search");
    dropped(
        &loss,
        &[
            "messages[1].responses.item.phase",
            "messages[1].responses.part.logprobs",
            "messages[1].responses.item.namespace",
        ],
    );
}

#[test]
fn other_item_kinds_are_raw_and_reported_elsewhere() {
    let body = json!({"model": "gpt-5", "input": [
        {"role": "user", "content": "Use the code_exec tool to print hello world to the console."},
        {"type": "custom_tool_call", "id": "ctc_68b7c3e3a1b48193", "call_id": "call_aGiFQkRWSWAIsMQ19fKqxUgb", "name": "code_exec", "input": "print(\"hello world\")", "status": "completed"},
        {"type": "item_reference", "id": "ws_68b7c3"},
        {"type": "custom_tool_call_output", "call_id": "call_aGiFQkRWSWAIsMQ19fKqxUgb", "output": "hello world"},
        {"role": "user", "content": "Thanks"}
    ]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let ir = responses::parse_request(&bytes).unwrap();
    assert!(
        matches!(&ir.messages[1].content[..], [Block::Raw { value: a, .. }, Block::Raw { value: b, .. }]
            if a["type"] == "custom_tool_call" && b["type"] == "item_reference")
    );
    assert_eq!(ir.messages[1].role, Role::Assistant);
    // Outputs are the user's side, and a user's items merge into one turn.
    assert_eq!(ir.messages[2].role, Role::User);
    assert_eq!(ir.messages[2].content.len(), 2);
    let (out, loss) = req_json(&ir);
    assert!(loss.is_empty());
    assert_eq!(normalize(out), normalize(body));
    let mut loss = LossReport::default();
    anthropic::write_request(&ir, 1024, &mut loss);
    dropped(
        &loss,
        &[
            "messages[1].content[0]",
            "messages[1].content[1]",
            "messages[2].content[0]",
        ],
    );
}

#[test]
fn tool_strictness_and_shapes() {
    // Chat's tools are not strict unless they say so; Responses' are unless they say not.
    let chat = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]});
    let ir = openai::parse_request(&serde_json::to_vec(&chat).unwrap()).unwrap();
    let (out, loss) = req_json(&ir);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": false}])
    );
    // A Responses tool with neither strict nor parameters comes back as it was, and another
    // protocol gets an empty object schema for it.
    let body = json!({"model": "gpt-5", "input": "hi", "tools": [{"type": "web_search"}, {"type": "function", "name": "now"}, {"type": "function", "name": "g", "parameters": null, "strict": true}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let ir = responses::parse_request(&bytes).unwrap();
    assert_eq!(
        ir.tools[0].parameters,
        json!({"type": "object", "properties": {}})
    );
    let (out, loss) = req_json(&ir);
    assert!(loss.is_empty());
    assert_eq!(normalize(out), normalize(body), "order and spellings kept");
    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&anthropic::write_request(&ir, 1024, &mut loss)).unwrap();
    assert_eq!(
        out["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
}

#[test]
fn every_tool_choice_form_round_trips() {
    for (choice, want) in [
        (json!("auto"), Some(ToolChoice::Auto)),
        (json!("none"), Some(ToolChoice::None)),
        (json!("required"), Some(ToolChoice::Required)),
        (
            json!({"type": "function", "name": "f"}),
            Some(ToolChoice::Tool("f".into())),
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]}),
            None,
        ),
        (json!({"type": "web_search"}), None),
        (
            json!({"type": "mcp", "server_label": "deepwiki", "name": "ask_question"}),
            None,
        ),
        (json!({"type": "custom", "name": "code_exec"}), None),
    ] {
        let body = json!({"model": "gpt-5", "input": "hi", "tool_choice": choice,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        let ir = responses::parse_request(&bytes).unwrap();
        assert_eq!(ir.tool_choice, want, "{choice}");
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&responses::write_request(&ir, &mut loss)),
            json_of(&bytes),
            "{choice}"
        );
        assert!(loss.is_empty());
        let mut loss = LossReport::default();
        let out: Value = serde_json::from_slice(&openai::write_request(&ir, &mut loss)).unwrap();
        match &want {
            Some(ToolChoice::Tool(_)) => assert_eq!(
                out["tool_choice"],
                json!({"type": "function", "function": {"name": "f"}})
            ),
            Some(_) => assert_eq!(out["tool_choice"], choice),
            None => dropped(&loss, &["responses.tool_choice"]),
        }
    }
}

#[test]
fn reasoning_efforts_and_summaries() {
    for (reasoning, effort, enabled, thoughts) in [
        (
            json!({"effort": "minimal"}),
            Some(ReasoningEffort::Minimal),
            None,
            None,
        ),
        (
            json!({"effort": "low", "summary": "concise"}),
            Some(ReasoningEffort::Low),
            None,
            Some(true),
        ),
        (
            json!({"effort": "xhigh"}),
            Some(ReasoningEffort::High),
            None,
            None,
        ),
        (json!({"effort": "none"}), None, Some(false), None),
        (json!({"summary": "auto"}), None, None, Some(true)),
        (json!({"effort": null, "summary": null}), None, None, None),
    ] {
        let body = json!({"model": "gpt-5.2", "input": "hi", "reasoning": reasoning});
        let bytes = serde_json::to_vec(&body).unwrap();
        let ir = responses::parse_request(&bytes).unwrap();
        let r = ir.reasoning.clone().unwrap();
        assert_eq!(
            (r.effort, r.enabled, r.include_thoughts),
            (effort, enabled, thoughts),
            "{reasoning}"
        );
        let (out, loss) = req_json(&ir);
        assert!(loss.is_empty(), "{reasoning}: {loss:?}");
        assert_eq!(normalize(out), normalize(body), "{reasoning}");
    }
    // From Anthropic: a budget is the nearest effort; thinking off has no Responses form.
    for (thinking, effort) in [
        (json!({"type": "enabled", "budget_tokens": 1024}), "low"),
        (json!({"type": "enabled", "budget_tokens": 8000}), "medium"),
    ] {
        let body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "thinking": thinking});
        let ir = anthropic::parse_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        let (out, _) = req_json(&ir);
        assert_eq!(
            out["reasoning"],
            json!({"effort": effort, "summary": "auto"})
        );
    }
    let body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "disabled"}});
    let ir = anthropic::parse_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    let (out, loss) = req_json(&ir);
    assert!(out.get("reasoning").is_none());
    dropped(&loss, &["reasoning.enabled"]);
}

#[test]
fn foreign_blocks_go_where_responses_can_take_them() {
    let text = |t: &str| Block::Text {
        text: t.into(),
        citations: Vec::new(),
        cache: None,
    };
    let ir = busbar_codec::ir::Request {
        model: "gpt-5".into(),
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Block::Document {
                        source: Media::Base64 {
                            media_type: "application/pdf".into(),
                            data: "JVBE".into(),
                        },
                        title: None,
                        context: None,
                        citations: false,
                        cache: None,
                    },
                    Block::Audio {
                        source: Media::Base64 {
                            media_type: "audio/wav".into(),
                            data: "UklG".into(),
                        },
                    },
                    text("what is this?"),
                ],
                name: None,
                ext: Default::default(),
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    text("A report."),
                    Block::Image {
                        source: Media::Url {
                            url: "https://x/y.png".into(),
                            media_type: None,
                        },
                        detail: None,
                        cache: None,
                    },
                    Block::Thinking {
                        text: "hm".into(),
                        signature: None,
                    },
                ],
                name: None,
                ext: Default::default(),
            },
        ],
        ..Default::default()
    };
    let (out, loss) = req_json(&ir);
    // Inline data needs a file name: one is given from its type.
    assert_eq!(
        out["input"][0]["content"][0],
        json!({"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"})
    );
    assert_eq!(
        out["input"][0]["content"][1],
        json!({"type": "input_text", "text": "what is this?"})
    );
    assert_eq!(
        out["input"][1]["content"],
        json!([{"type": "output_text", "text": "A report.", "annotations": []}])
    );
    assert_eq!(
        loss.dropped,
        [
            "messages[0].content[1]",
            "messages[1].content[1]",
            "messages[1].content[2]"
        ]
    );
    // An input_audio part that came as one goes back as one.
    let body = json!({"model": "gpt-4o-audio", "input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}]}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let ir = responses::parse_request(&bytes).unwrap();
    assert!(
        matches!(&ir.messages[0].content[0], Block::Audio { source: Media::Base64 { media_type, .. } } if media_type == "audio/wav")
    );
    let (out, loss) = req_json(&ir);
    assert!(loss.is_empty());
    assert_eq!(normalize(out), normalize(body));
}

#[test]
fn malformed_bodies_are_errors() {
    for (body, place) in [
        (&b"[]"[..], "JSON object"),
        (b"{\"model\": \"m\", \"input\": 3}", "input"),
        (b"{\"model\": \"m\", \"input\": [3]}", "input[0]"),
        (b"{\"model\": \"m\", \"input\": [{\"role\": \"robot\", \"content\": \"x\"}]}", "input[0].role"),
        (b"{\"model\": \"m\", \"input\": [{\"role\": \"user\", \"content\": 7}]}", "input[0].content"),
        (b"{\"model\": \"m\", \"input\": [{\"type\": \"function_call\"}]}", "input[0]"),
        (b"{\"model\": \"m\", \"input\": [{\"type\": \"function_call\", \"call_id\": \"c\", \"name\": \"f\", \"arguments\": {}}]}", "input[0].arguments"),
        (b"{\"model\": \"m\", \"input\": [{\"type\": \"function_call_output\", \"call_id\": \"c\"}]}", "input[0].output"),
        (b"{\"model\": \"m\", \"temperature\": \"hot\"}", "temperature"),
        (b"{\"model\": \"m\", \"tools\": {}}", "tools"),
        (b"{\"model\": \"m\", \"reasoning\": \"high\"}", "reasoning"),
        (b"{\"model\": \"m\", \"_items\": []}", "_items"),
    ] {
        let e = responses::parse_request(body).expect_err(&String::from_utf8_lossy(body));
        assert!(e.to_string().contains(place), "{e} does not name {place}");
    }
    assert!(matches!(
        responses::parse_request(b"{\"input\": \"x\"}"),
        Err(busbar_codec::openai::RequestError::MissingModel)
    ));
    assert!(matches!(
        responses::parse_request(b"{\"model\": 4}"),
        Err(busbar_codec::openai::RequestError::ModelNotString)
    ));
    for (body, place) in [
        (&b"\"resp\""[..], "JSON object"),
        (b"{\"output\": 3}", "output"),
        (
            b"{\"output\": [{\"type\": \"message\", \"role\": \"user\", \"content\": []}]}",
            "output[0]",
        ),
        (b"{\"status\": 1}", "status"),
        (b"{\"usage\": []}", "usage"),
        (b"{\"item.phase\": 1}", "item.phase"),
    ] {
        let e = responses::parse_response(body).expect_err(&String::from_utf8_lossy(body));
        assert!(e.contains(place), "{e} does not name {place}");
    }
}

/// Every variant of a value: each field removed, an unknown field added to each object, and
/// each value replaced by one of another kind.
fn variants(v: &Value, out: &mut Vec<Value>, rebuild: &dyn Fn(Value) -> Value) {
    for other in [
        Value::Null,
        json!(0),
        json!("x"),
        json!([]),
        json!({}),
        json!({"type": "x"}),
    ] {
        if &other != v {
            out.push(rebuild(other));
        }
    }
    match v {
        Value::Object(o) => {
            let mut more = o.clone();
            more.insert("zz_unknown".into(), json!(1));
            out.push(rebuild(Value::Object(more)));
            for k in o.keys() {
                let mut without = o.clone();
                without.remove(k);
                out.push(rebuild(Value::Object(without)));
                let child = |x: Value| {
                    let mut o = o.clone();
                    o.insert(k.clone(), x);
                    rebuild(Value::Object(o))
                };
                variants(&o[k], out, &child);
            }
        }
        Value::Array(a) => {
            for i in 0..a.len() {
                let child = |x: Value| {
                    let mut a = a.clone();
                    a[i] = x;
                    rebuild(Value::Array(a))
                };
                variants(&a[i], out, &child);
            }
        }
        _ => {}
    }
}

/// The fuzzers' property over every one-field change of every fixture: whatever parses goes
/// back to Responses without loss, and the written body is a fixed point (no panic anywhere).
#[test]
fn every_one_field_change_of_a_fixture_is_an_error_or_a_fixed_point() {
    let mut n = 0;
    for (prefix, target) in [
        ("request", fuzzing::responses_request_ir as fn(&[u8])),
        ("response", fuzzing::responses_response_ir),
    ] {
        for name in names(prefix) {
            let v: Value = serde_json::from_slice(&fixture("responses", &name)).unwrap();
            let mut all = Vec::new();
            variants(&v, &mut all, &|x| x);
            for body in all {
                target(&serde_json::to_vec(&body).unwrap());
                n += 1;
            }
        }
    }
    assert!(n > 5_000, "{n} variants");
}
