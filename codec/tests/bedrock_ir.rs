//! Bedrock Converse through the IR: documented shapes round-trip (cache points, tool results
//! with JSON parts, reasoning with signatures, redacted reasoning, citations, structured
//! output, Anthropic's fields in `additionalModelRequestFields`), every stop reason maps both
//! ways, and the Bedrock <-> OpenAI Chat and Bedrock <-> Anthropic pairs carry what both can
//! express and report the rest.

mod common;
use common::*;

use busbar_codec::Protocol;
use busbar_codec::ir::{
    Block, LossReport, Media, ReasoningEffort, ResponseFormat, Role, StopReason, ToolChoice,
};
use busbar_codec::openai::RequestError;
use busbar_codec::{anthropic, bedrock, openai};
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

use common::json_of as json;

fn has(loss: &LossReport, paths: &[&str]) {
    for p in paths {
        assert!(
            loss.dropped.iter().any(|d| d == p),
            "{p} not reported in {:?}",
            loss.dropped
        );
    }
}

const REQUESTS: [&str; 3] = [
    "request_multiturn_tools.json",
    "request_media_thinking.json",
    "request_effort_any.json",
];

const RESPONSES: [&str; 6] = [
    "response_tool_use.json",
    "response_thinking.json",
    "response_citations.json",
    "response_stop_sequence.json",
    "response_guardrail.json",
    "response_max_tokens.json",
];

fn bedrock_request(name: &str) -> busbar_codec::ir::Request {
    bedrock::parse_request(&fixture("bedrock", name), MODEL).unwrap()
}

fn bedrock_response(name: &str) -> busbar_codec::ir::Response {
    bedrock::parse_response(&fixture("bedrock", name)).unwrap()
}

#[test]
fn every_fixture_round_trips_losslessly_and_the_writer_is_a_fixed_point() {
    for name in REQUESTS {
        let body = fixture("bedrock", name);
        let ir = bedrock::parse_request(&body, MODEL).unwrap();
        let mut loss = LossReport::default();
        let out = bedrock::write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json(&out), json(&body), "{name}");
        let again = bedrock::parse_request(&out, MODEL).unwrap();
        assert_eq!(again, ir, "{name}");
        assert_eq!(bedrock::write_request(&again, &mut loss), out, "{name}");
    }
    for name in RESPONSES {
        let body = fixture("bedrock", name);
        let ir = bedrock::parse_response(&body).unwrap();
        let mut loss = LossReport::default();
        let out = bedrock::write_response(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json(&out), json(&body), "{name}");
        let again = bedrock::parse_response(&out).unwrap();
        assert_eq!(again, ir, "{name}");
        assert_eq!(bedrock::write_response(&again, &mut loss), out, "{name}");
    }
}

#[test]
fn typed_homes_for_request_fields() {
    let ir = bedrock_request("request_multiturn_tools.json");
    assert_eq!(ir.model, MODEL);
    // The system cachePoint is the first text's cache mark.
    assert_eq!(ir.system.len(), 2);
    assert!(matches!(&ir.system[0], Block::Text { cache: Some(c), .. } if c.kind == "ephemeral"));
    assert!(matches!(&ir.system[1], Block::Text { cache: None, .. }));
    // Parallel tool calls keep their ids.
    let ids: Vec<&str> = ir.messages[1]
        .content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        [
            "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "tooluse_9Tc2MH3fTtqxjGdhRmA5aQ",
            "tooluse_Wq2pT5vEQn2m8y1L0Hc3bA"
        ]
    );
    // A {json} result part is a text block holding the JSON.
    let Block::ToolResult {
        tool_use_id,
        content,
        is_error: false,
        ..
    } = &ir.messages[2].content[0]
    else {
        panic!("tool result")
    };
    assert_eq!(tool_use_id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    let Block::Text { text, .. } = &content[0] else {
        panic!("json part as text")
    };
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["conditions"], "light rain");
    // status error -> is_error; the trailing cachePoint (1h) marks the last result.
    let Block::ToolResult {
        is_error, cache, ..
    } = &ir.messages[2].content[2]
    else {
        panic!("tool result")
    };
    assert!(*is_error);
    assert_eq!(cache.as_ref().unwrap().ttl.as_deref(), Some("1h"));
    assert_eq!(ir.messages[2].content.len(), 3);
    // inferenceConfig
    assert_eq!(ir.max_output_tokens, Some(1024));
    assert_eq!(ir.sampling.temperature, Some(0.5));
    assert_eq!(ir.sampling.top_p, Some(0.9));
    assert_eq!(ir.stop, ["\n\nHuman:", "END"]);
    // toolConfig
    assert_eq!(ir.tools.len(), 2);
    assert_eq!(ir.tools[0].parameters["required"][0], "city");
    assert_eq!(ir.tools[1].strict, Some(true));
    assert!(ir.tools[1].cache.is_some() && ir.tools[0].cache.is_none());
    assert_eq!(
        ir.tool_choice,
        Some(ToolChoice::Tool("search_flights".into()))
    );
    // Anthropic's top_k from additionalModelRequestFields; the emptied map is not kept.
    assert_eq!(ir.sampling.top_k, Some(200));
    assert!(!ir.ext.bedrock.contains_key("additionalModelRequestFields"));
    for k in [
        "guardrailConfig",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
    ] {
        assert!(ir.ext.bedrock.contains_key(k), "{k}");
    }

    let ir = bedrock_request("request_media_thinking.json");
    let c = &ir.messages[0].content;
    assert!(matches!(
        &c[0],
        Block::Image { source: Media::Base64 { media_type, .. }, cache: Some(_), .. } if media_type == "image/png"
    ));
    assert_eq!(
        c[1],
        Block::Image {
            source: Media::Url {
                url: "s3://claims-bucket/photos/damage-01.jpg".into(),
                media_type: Some("image/jpeg".into())
            },
            detail: None,
            cache: None
        }
    );
    assert!(
        matches!(
            &c[2],
            Block::Raw {
                protocol: Protocol::Bedrock,
                ..
            }
        ),
        "bucketOwner keeps the image raw"
    );
    let Block::Document {
        source: Media::Base64 { media_type, .. },
        title,
        context,
        citations: true,
        ..
    } = &c[3]
    else {
        panic!("pdf document")
    };
    assert_eq!(media_type, "application/pdf");
    assert_eq!(title.as_deref(), Some("Claim form 2025-118"));
    assert_eq!(context.as_deref(), Some("Submitted by the policy holder"));
    assert!(
        matches!(&c[4], Block::Document { source: Media::Text { text, .. }, .. } if text.starts_with("Water"))
    );
    assert!(matches!(
        &c[5],
        Block::Document {
            source: Media::Url { .. },
            ..
        }
    ));
    assert!(matches!(c[6], Block::Raw { .. }), "content source");
    assert!(matches!(c[7], Block::Raw { .. }), "video");
    assert!(
        matches!(&c[8], Block::Audio { source: Media::Base64 { media_type, .. } } if media_type == "audio/mp3")
    );
    assert!(matches!(c[9], Block::Raw { .. }), "guardContent");
    let Block::Thinking { signature, .. } = &ir.messages[1].content[0] else {
        panic!("thinking")
    };
    assert_eq!(
        signature.as_deref(),
        Some(
            "ErcBCkgIAhABGAIiQHZmYW5jeS1zaWduYXR1cmUtZm9yLXRoaW5raW5nLWJsb2NrEgxnRzQ2d3pWeHZqZ1oaDL3Jt0sz"
        )
    );
    assert!(
        matches!(&ir.messages[1].content[1], Block::RedactedThinking { data } if data.starts_with("RXJj"))
    );
    let r = ir.reasoning.as_ref().unwrap();
    assert_eq!((r.enabled, r.budget_tokens), (Some(true), Some(4000)));
    assert_eq!(
        ir.ext.bedrock["additionalModelRequestFields"],
        json!({"anthropic_beta": ["interleaved-thinking-2025-05-14"]})
    );
    let Some(ResponseFormat::JsonSchema { name, schema, .. }) = &ir.response_format else {
        panic!("json schema")
    };
    assert_eq!(name.as_deref(), Some("claim_decision"));
    assert_eq!(schema["required"][0], "covered");
    assert!(
        matches!(ir.system[1], Block::Raw { .. }),
        "system guardContent"
    );

    let ir = bedrock_request("request_effort_any.json");
    assert_eq!(ir.tool_choice, Some(ToolChoice::Required));
    assert_eq!(
        ir.reasoning.as_ref().unwrap().effort,
        Some(ReasoningEffort::Medium)
    );
    assert!(
        matches!(&ir.response_format, Some(ResponseFormat::JsonSchema { schema, name: None, .. }) if schema["properties"]["summary"]["type"] == "string")
    );
}

#[test]
fn typed_homes_for_response_fields() {
    let r = bedrock_response("response_tool_use.json");
    assert_eq!(r.id, "", "Converse responses have no id");
    assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
    let u = &r.usage;
    assert_eq!(
        (u.input, u.output, u.cache_read, u.cache_write, u.reasoning),
        (412, 96, 1536, 536, 0)
    );
    assert!(
        matches!(&r.content[2], Block::ToolUse { id, input, .. } if id == "tooluse_9Tc2MH3fTtqxjGdhRmA5aQ" && input["city"] == "Paris")
    );
    assert_eq!(r.ext.bedrock["metrics"]["latencyMs"], 1874);
    assert_eq!(r.ext.bedrock["usage"]["cacheDetails"][0]["ttl"], "1h");

    let r = bedrock_response("response_thinking.json");
    assert!(
        matches!(&r.content[0], Block::Thinking { signature: Some(s), .. } if s.starts_with("EqoBCkgIARAB"))
    );
    assert!(matches!(r.content[1], Block::RedactedThinking { .. }));

    let r = bedrock_response("response_citations.json");
    let Block::Text {
        text, citations, ..
    } = &r.content[1]
    else {
        panic!("citations text")
    };
    assert_eq!(
        text,
        "The damage was caused by a burst pipe in the kitchen."
    );
    assert_eq!(citations[0].protocol, Protocol::Bedrock);
    assert_eq!(citations[0].source.as_deref(), Some("Claim form 2025-118"));
    assert_eq!(
        citations[0].cited_text.as_deref(),
        Some("Cause of loss: burst pipe under the kitchen sink.")
    );
    assert!(
        matches!(&r.content[2], Block::Text { text, .. } if text == "The estimate is 4,200 USD.")
    );

    let r = bedrock_response("response_stop_sequence.json");
    assert_eq!(
        r.stop_reason,
        Some(StopReason::StopSequence(Some("\n\nHuman:".into())))
    );
    assert!(!r.ext.bedrock.contains_key("additionalModelResponseFields"));
    let r = bedrock_response("response_guardrail.json");
    assert_eq!(r.stop_reason, Some(StopReason::ContentFilter));
    assert!(r.ext.bedrock.contains_key("trace"));
}

#[test]
fn every_stop_reason_maps_both_ways() {
    let base: Value =
        serde_json::from_slice(&fixture("bedrock", "response_max_tokens.json")).unwrap();
    let cases = [
        ("end_turn", StopReason::EndTurn),
        ("tool_use", StopReason::ToolUse),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence(None)),
        ("guardrail_intervened", StopReason::ContentFilter),
        ("content_filtered", StopReason::ContentFilter),
        (
            "malformed_model_output",
            StopReason::Other("malformed_model_output".into()),
        ),
        (
            "malformed_tool_use",
            StopReason::Other("malformed_tool_use".into()),
        ),
        ("model_context_window_exceeded", StopReason::ContextExceeded),
    ];
    for (wire, ir_reason) in cases {
        let mut body = base.clone();
        body["stopReason"] = json!(wire);
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = bedrock::parse_response(&bytes).unwrap();
        assert_eq!(r.stop_reason.as_ref(), Some(&ir_reason), "{wire}");
        let mut loss = LossReport::default();
        let out = json(&bedrock::write_response(&r, &mut loss));
        assert!(loss.is_empty(), "{wire}: {loss:?}");
        assert_eq!(out["stopReason"], wire);
    }
    // From other protocols' IR: each reason gets a Converse spelling.
    let mut r = bedrock_response("response_max_tokens.json");
    for (reason, wire, lost) in [
        (StopReason::ContentFilter, "content_filtered", false),
        (StopReason::Refusal, "content_filtered", false),
        (StopReason::PauseTurn, "end_turn", true),
        (
            StopReason::ContextExceeded,
            "model_context_window_exceeded",
            false,
        ),
    ] {
        r.stop_reason = Some(reason);
        let mut loss = LossReport::default();
        let out = json(&bedrock::write_response(&r, &mut loss));
        assert_eq!(out["stopReason"], wire);
        assert_eq!(loss.dropped.contains(&"stop_reason".to_string()), lost);
    }
}

#[test]
fn every_tool_choice_form() {
    let base: Value =
        serde_json::from_slice(&fixture("bedrock", "request_effort_any.json")).unwrap();
    for (wire, ir_choice, openai_form, anthropic_form) in [
        (
            json!({"auto": {}}),
            ToolChoice::Auto,
            json!("auto"),
            json!({"type": "auto"}),
        ),
        (
            json!({"any": {}}),
            ToolChoice::Required,
            json!("required"),
            json!({"type": "any"}),
        ),
        (
            json!({"tool": {"name": "record_step"}}),
            ToolChoice::Tool("record_step".into()),
            json!({"type": "function", "function": {"name": "record_step"}}),
            json!({"type": "tool", "name": "record_step"}),
        ),
    ] {
        let mut body = base.clone();
        body["toolConfig"]["toolChoice"] = wire.clone();
        let ir = bedrock::parse_request(&serde_json::to_vec(&body).unwrap(), MODEL).unwrap();
        assert_eq!(ir.tool_choice.as_ref(), Some(&ir_choice));
        let mut loss = LossReport::default();
        let out = json(&bedrock::write_request(&ir, &mut loss));
        assert_eq!(out["toolConfig"]["toolChoice"], wire);
        let oa = json(&openai::write_request(&ir, &mut LossReport::default()));
        assert_eq!(oa["tool_choice"], openai_form);
        let an = json(&anthropic::write_request(
            &ir,
            4096,
            &mut LossReport::default(),
        ));
        assert_eq!(an["tool_choice"], anthropic_form);
    }
    // No toolChoice at all stays absent.
    let mut body = base.clone();
    body["toolConfig"]
        .as_object_mut()
        .unwrap()
        .remove("toolChoice");
    let ir = bedrock::parse_request(&serde_json::to_vec(&body).unwrap(), MODEL).unwrap();
    assert_eq!(ir.tool_choice, None);
    // OpenAI's "none" has no Converse form: the tools stay, no choice, reported.
    let mut oa: Value =
        serde_json::from_slice(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    oa["tool_choice"] = json!("none");
    let ir = openai::parse_request(&serde_json::to_vec(&oa).unwrap()).unwrap();
    let mut loss = LossReport::default();
    let out = json(&bedrock::write_request(&ir, &mut loss));
    assert!(out["toolConfig"]["tools"].is_array());
    assert!(out["toolConfig"].get("toolChoice").is_none());
    has(&loss, &["tool_choice"]);
}

#[test]
fn bedrock_request_to_openai() {
    let ir = bedrock_request("request_multiturn_tools.json");
    let mut loss = LossReport::default();
    let out = json(&openai::write_request(&ir, &mut loss));
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(
        msgs[0]["content"],
        "You are a travel assistant. Use the tools to answer questions about weather and flights.\nAnswer in one short paragraph."
    );
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(
        msgs[2]["content"],
        "I'll check the weather in both cities and look up flights."
    );
    assert_eq!(
        msgs[2]["tool_calls"][1]["id"],
        "tooluse_9Tc2MH3fTtqxjGdhRmA5aQ"
    );
    let args: Value = serde_json::from_str(
        msgs[2]["tool_calls"][2]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["to"], "CDG");
    // Three tool messages; the JSON result arrives as its JSON text.
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    let result: Value = serde_json::from_str(msgs[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        normalize(result),
        normalize(json!({"temperature": 14, "conditions": "light rain", "wind_kph": 9.5}))
    );
    assert_eq!(msgs[5]["content"], "Flight search service unavailable");
    assert_eq!(out["tools"][1]["function"]["strict"], true);
    assert_eq!(
        out["tools"][0]["function"]["parameters"]["required"][0],
        "city"
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "search_flights"}})
    );
    assert_eq!(out["max_completion_tokens"], 1024.0);
    assert_eq!(out["temperature"], 0.5);
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["stop"], json!(["\n\nHuman:", "END"]));
    has(
        &loss,
        &[
            "top_k",
            "system[0].cache_control",
            "messages[2].content[2].is_error",
            "messages[2].content[2].cache_control",
            "tools[1].cache_control",
            "bedrock.guardrailConfig",
            "bedrock.additionalModelResponseFieldPaths",
            "bedrock.requestMetadata",
            "bedrock.performanceConfig",
            "bedrock.serviceTier",
        ],
    );
    // Hints are private: never reported.
    assert!(loss.dropped.iter().all(|d| !d.contains("._")), "{loss:?}");

    let ir = bedrock_request("request_media_thinking.json");
    let mut loss = LossReport::default();
    let out = json(&openai::write_request(&ir, &mut loss));
    let parts = out["messages"][1]["content"].as_array().unwrap();
    assert_eq!(
        parts[0]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    );
    assert!(parts.iter().any(|p| {
        p["type"] == "file"
            && p["file"]["filename"] == "Claim form 2025-118"
            && p["file"]["file_data"]
                .as_str()
                .unwrap()
                .starts_with("data:application/pdf;base64,")
    }));
    assert!(parts.iter().any(|p| p["input_audio"]["format"] == "mp3"));
    assert_eq!(
        out["response_format"]["json_schema"]["name"],
        "claim_decision"
    );
    assert_eq!(
        out["response_format"]["json_schema"]["schema"]["required"][1],
        "reason"
    );
    has(
        &loss,
        &[
            "messages[0].content[2]", // raw image (bucketOwner)
            "messages[0].content[7]", // video
            "messages[0].content[9]", // guardContent
            "messages[1].content[0]", // reasoning
            "messages[1].content[1]", // redacted reasoning
            "system[1]",
            "reasoning.budget_tokens",
            "bedrock.additionalModelRequestFields",
        ],
    );
}

#[test]
fn bedrock_request_to_anthropic() {
    let ir = bedrock_request("request_multiturn_tools.json");
    let mut loss = LossReport::default();
    let out = json(&anthropic::write_request(&ir, 4096, &mut loss));
    assert_eq!(
        out["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(out["max_tokens"], 1024.0);
    assert_eq!(out["top_k"], 200.0);
    assert_eq!(out["stop_sequences"][1], "END");
    let results = out["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    let v: Value = serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(v["wind_kph"], 9.5);
    assert_eq!(results[2]["is_error"], true);
    assert_eq!(
        results[2]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
    assert_eq!(
        out["messages"][1]["content"][3]["id"],
        "tooluse_Wq2pT5vEQn2m8y1L0Hc3bA"
    );
    assert_eq!(
        out["tools"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        out["tools"][1]["input_schema"]["additionalProperties"],
        false
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "search_flights"})
    );
    has(
        &loss,
        &[
            "tools[1].strict",
            "bedrock.guardrailConfig",
            "bedrock.serviceTier",
        ],
    );

    let ir = bedrock_request("request_media_thinking.json");
    let mut loss = LossReport::default();
    let out = json(&anthropic::write_request(&ir, 4096, &mut loss));
    let c = out["messages"][0]["content"].as_array().unwrap();
    assert_eq!(c[0]["source"]["media_type"], "image/png");
    assert_eq!(c[0]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(c[2]["type"], "document");
    assert_eq!(c[2]["title"], "Claim form 2025-118");
    assert_eq!(c[2]["citations"], json!({"enabled": true}));
    assert_eq!(
        c[3]["source"],
        json!({"type": "text", "media_type": "text/plain", "data": "Water damage in the kitchen; estimate 4,200 USD."})
    );
    let a = out["messages"][1]["content"].as_array().unwrap();
    assert_eq!(a[0]["type"], "thinking");
    assert!(a[0]["signature"].as_str().unwrap().starts_with("ErcBCkgI"));
    assert_eq!(
        a[1],
        json!({"type": "redacted_thinking", "data": "RXJjQkNrZ0lBaEFCR0FJaVFIWm1ZVzVqZVMxemFXZHVZWFIxY21VPQ=="})
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 4000.0})
    );
    has(
        &loss,
        &[
            "messages[0].content[2]",
            "messages[0].content[6]",
            "messages[0].content[8]", // audio
            "system[1]",
            "response_format",
            "bedrock.additionalModelRequestFields",
        ],
    );
}

#[test]
fn openai_request_to_bedrock() {
    let ir = openai::parse_request(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = json(&bedrock::write_request(&ir, &mut loss));
    assert!(out.get("model").is_none(), "the model goes in the URL");
    assert_eq!(
        out["system"],
        json!([{"text": "You are a weather assistant."}, {"text": "Answer briefly."}])
    );
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "user");
    let user = msgs[0]["content"].as_array().unwrap();
    assert_eq!(user.len(), 2, "the http image has no Converse form");
    assert_eq!(
        user[1]["image"],
        json!({"format": "png", "source": {"bytes": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}})
    );
    assert_eq!(
        msgs[1]["content"][0]["toolUse"],
        normalize(
            json!({"toolUseId": "call_abc123", "name": "get_weather", "input": {"location": "Paris", "unit": "celsius"}})
        )
    );
    // Two tool messages are one user turn of toolResult blocks, ids unchanged.
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"][1]["toolResult"]["toolUseId"],
        "call_def456"
    );
    assert_eq!(
        msgs[2]["content"][0]["toolResult"]["content"],
        json!([{"text": "{\"temperature\": 18}"}])
    );
    assert_eq!(msgs[3]["role"], "assistant");
    assert_eq!(
        msgs[4],
        json!({"role": "user", "content": [{"text": "Thanks!"}]})
    );
    assert_eq!(
        out["inferenceConfig"],
        json!({"maxTokens": 1024.0, "temperature": 0.2, "topP": 0.9, "stopSequences": ["\n\n", "END"]})
    );
    let spec = &out["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(spec["inputSchema"]["json"]["required"][0], "location");
    assert_eq!(spec["strict"], true);
    assert_eq!(
        out["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_weather"}})
    );
    has(
        &loss,
        &[
            "messages[2].name",
            "messages[2].content[1]",
            "messages[2].content[1].detail",
            "frequency_penalty",
            "presence_penalty",
            "seed",
            "user",
            "openai.logit_bias",
            "openai.store",
            "openai.metadata",
        ],
    );
    assert!(
        !loss.dropped.contains(&"n".to_string()),
        "n = 1 is what Converse does"
    );
    assert!(!loss.dropped.contains(&"parallel_tool_calls".to_string()));
}

#[test]
fn anthropic_request_to_bedrock() {
    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = json(&bedrock::write_request(&ir, &mut loss));
    // cache_control <-> cachePoint, with its ttl.
    assert_eq!(
        out["system"],
        json!([
            {"text": "You are a careful research assistant."},
            {"text": "Here is the style guide: ..."},
            {"cachePoint": {"type": "default", "ttl": "1h"}}
        ])
    );
    let c = out["messages"][0]["content"].as_array().unwrap();
    assert_eq!(
        c[0],
        json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQSkZJRgABAQAAAQABAAD"}}})
    );
    assert_eq!(
        c[1]["document"],
        json!({"format": "pdf", "name": "Q3 report", "source": {"bytes": "JVBERi0xLjcKCjEgMCBvYmo"}, "context": "Internal", "citations": {"enabled": true}})
    );
    assert_eq!(c[2], json!({"cachePoint": {"type": "default"}}));
    assert_eq!(
        c[3]["document"],
        json!({"format": "txt", "name": "document 3", "source": {"text": "The grass is green."}})
    );
    let a = out["messages"][1]["content"].as_array().unwrap();
    assert_eq!(
        a[0]["reasoningContent"]["reasoningText"]["signature"],
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
    );
    assert_eq!(
        a[1]["reasoningContent"]["redactedContent"],
        "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
    );
    assert_eq!(
        a[3]["toolUse"]["toolUseId"],
        "toolu_01A09q90qw90lq917835lq9"
    );
    let r = out["messages"][2]["content"].as_array().unwrap();
    assert_eq!(
        r[0]["toolResult"],
        json!({"toolUseId": "toolu_01A09q90qw90lq917835lq9", "content": [{"text": "15 degrees"}]})
    );
    assert_eq!(r[1]["toolResult"]["status"], "error");
    assert_eq!(
        r[1]["toolResult"]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    assert_eq!(
        out["messages"][3]["content"][0],
        json!({"text": "It's 15°C."})
    );
    assert_eq!(
        out["toolConfig"]["tools"][1],
        json!({"cachePoint": {"type": "default"}})
    );
    assert_eq!(out["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        out["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 10000.0}, "top_k": 40.0})
    );
    assert_eq!(out["inferenceConfig"]["maxTokens"], 16000.0);
    assert_eq!(
        out["inferenceConfig"]["stopSequences"],
        json!(["\n\nHuman:"])
    );
    has(
        &loss,
        &[
            "messages[0].content[1]", // url image
            "messages[3].content[0].citations",
            "messages[3].content[1]", // server_tool_use
            "parallel_tool_calls",
            "user",
            "anthropic.service_tier",
        ],
    );
}

#[test]
fn tool_ids_and_cache_marks_survive_a_trip_through_other_protocols() {
    // Bedrock -> OpenAI -> Bedrock: calls and results still pair up.
    let ir = bedrock_request("request_multiturn_tools.json");
    let oa = openai::write_request(&ir, &mut LossReport::default());
    let back = openai::parse_request(&oa).unwrap();
    let out = json(&bedrock::write_request(&back, &mut LossReport::default()));
    let msgs = out["messages"].as_array().unwrap();
    let uses: Vec<&Value> = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.get("toolUse").map(|u| &u["toolUseId"]))
        .collect();
    let results: Vec<&Value> = msgs[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["toolResult"]["toolUseId"])
        .collect();
    assert_eq!(uses, results);
    assert_eq!(uses.len(), 3);
    // Bedrock -> Anthropic -> Bedrock: cache points come back where they were.
    let an = anthropic::write_request(&ir, 4096, &mut LossReport::default());
    let back = anthropic::parse_request(&an).unwrap();
    let out = json(&bedrock::write_request(&back, &mut LossReport::default()));
    let original = json(&fixture("bedrock", "request_multiturn_tools.json"));
    assert_eq!(out["system"], original["system"]);
    // (Anthropic has no `strict`: that one was reported on the way.)
    assert_eq!(
        out["toolConfig"]["tools"][2],
        original["toolConfig"]["tools"][2]
    );
    assert!(
        out["toolConfig"]["tools"][1]["toolSpec"]
            .get("strict")
            .is_none()
    );
    assert_eq!(
        out["messages"][2]["content"][3],
        json!({"cachePoint": {"type": "default", "ttl": "1h"}})
    );
}

#[test]
fn bedrock_responses_to_openai_and_anthropic() {
    let r = bedrock_response("response_tool_use.json");
    let mut loss = LossReport::default();
    let out = json(&openai::write_response(&r, 1_700_000_000, &mut loss));
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["content"],
        "I'll look up the weather in both cities."
    );
    assert_eq!(
        choice["message"]["tool_calls"][0]["id"],
        "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    );
    // OpenAI counts cache reads in prompt_tokens; cache writes have no home there.
    assert_eq!(out["usage"]["prompt_tokens"], 1948.0);
    assert_eq!(
        out["usage"]["prompt_tokens_details"]["cached_tokens"],
        1536.0
    );
    assert_eq!(out["usage"]["completion_tokens"], 96.0);
    has(
        &loss,
        &[
            "usage.cache_write",
            "bedrock.metrics",
            "bedrock.usage",
            "bedrock.performanceConfig",
            "bedrock.serviceTier",
        ],
    );

    let mut loss = LossReport::default();
    let out = json(&anthropic::write_response(&r, &mut loss));
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 412.0, "output_tokens": 96.0, "cache_read_input_tokens": 1536.0, "cache_creation_input_tokens": 536.0})
    );
    assert_eq!(out["content"][2]["type"], "tool_use");
    assert_eq!(out["content"][2]["input"]["city"], "Paris");
    has(&loss, &["bedrock.metrics"]);

    let r = bedrock_response("response_stop_sequence.json");
    let out = json(&anthropic::write_response(&r, &mut LossReport::default()));
    assert_eq!(out["stop_reason"], "stop_sequence");
    assert_eq!(out["stop_sequence"], "\n\nHuman:");
    let out = json(&openai::write_response(&r, 0, &mut LossReport::default()));
    assert_eq!(out["choices"][0]["finish_reason"], "stop");

    let r = bedrock_response("response_thinking.json");
    let mut loss = LossReport::default();
    let out = json(&anthropic::write_response(&r, &mut loss));
    assert_eq!(out["content"][0]["type"], "thinking");
    assert!(
        out["content"][0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("EqoBCkgIARAB")
    );
    assert_eq!(out["content"][1]["type"], "redacted_thinking");
    let mut loss = LossReport::default();
    openai::write_response(&r, 0, &mut loss);
    has(&loss, &["content[0]", "content[1]"]);

    let r = bedrock_response("response_citations.json");
    let mut loss = LossReport::default();
    let out = json(&anthropic::write_response(&r, &mut loss));
    assert_eq!(
        out["content"][1],
        json!({"type": "text", "text": "The damage was caused by a burst pipe in the kitchen."})
    );
    has(&loss, &["content[1].citations", "content[2].citations"]);

    let r = bedrock_response("response_guardrail.json");
    let out = json(&openai::write_response(&r, 0, &mut LossReport::default()));
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    let mut loss = LossReport::default();
    let out = json(&anthropic::write_response(&r, &mut loss));
    assert_eq!(out["stop_reason"], "refusal");
    has(&loss, &["bedrock.trace"]);
}

/// What boto3's `bedrock-runtime` `converse` requires of a response (botocore's service model:
/// `output`, `stopReason`, `usage{inputTokens, outputTokens, totalTokens}`, `metrics{latencyMs}`).
fn boto3_parses(out: &Value) {
    assert_eq!(out["output"]["message"]["role"], "assistant");
    assert!(out["output"]["message"]["content"].is_array());
    assert!(out["stopReason"].is_string());
    for k in ["inputTokens", "outputTokens", "totalTokens"] {
        assert!(out["usage"][k].is_number(), "usage.{k}");
    }
    assert!(out["metrics"]["latencyMs"].is_number());
}

#[test]
fn openai_and_anthropic_responses_to_bedrock() {
    let r = openai::parse_response(&fixture("openai", "response_tool_calls.json")).unwrap();
    let mut loss = LossReport::default();
    let out = json(&bedrock::write_response(&r, &mut loss));
    boto3_parses(&out);
    assert!(out.get("id").is_none() && out.get("model").is_none());
    assert_eq!(out["stopReason"], "tool_use");
    assert_eq!(
        out["output"]["message"]["content"][1]["toolUse"],
        json!({"toolUseId": "call_def456", "name": "get_weather", "input": {"location": "Lyon"}})
    );
    // prompt_tokens 1117 counts 1024 cached tokens: Converse counts them apart.
    assert_eq!(
        out["usage"],
        json!({"inputTokens": 93.0, "outputTokens": 46.0, "totalTokens": 1163.0, "cacheReadInputTokens": 1024.0})
    );
    assert_eq!(out["metrics"], json!({"latencyMs": 0.0}));
    has(
        &loss,
        &[
            "openai.system_fingerprint",
            "openai.service_tier",
            "openai.created",
        ],
    );

    let r = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out = json(&bedrock::write_response(&r, &mut loss));
    boto3_parses(&out);
    let c = out["output"]["message"]["content"].as_array().unwrap();
    assert_eq!(
        c[0]["reasoningContent"]["reasoningText"]["signature"],
        "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL"
    );
    assert_eq!(
        c[1],
        json!({"text": "According to the report, the grass is green."})
    );
    assert_eq!(
        c[2]["toolUse"]["toolUseId"],
        "toolu_01A09q90qw90lq917835lq9"
    );
    assert_eq!(
        out["usage"],
        json!({"inputTokens": 2095.0, "outputTokens": 503.0, "totalTokens": 4134.0, "cacheReadInputTokens": 1024.0, "cacheWriteInputTokens": 512.0})
    );
    has(&loss, &["content[1].citations", "anthropic.usage"]);

    let r =
        anthropic::parse_response(&fixture("anthropic", "response_stop_sequence.json")).unwrap();
    let bytes = bedrock::write_response(&r, &mut LossReport::default());
    let out = json(&bytes);
    boto3_parses(&out);
    assert_eq!(out["stopReason"], "stop_sequence");
    assert_eq!(
        out["additionalModelResponseFields"],
        json!({"stop_sequence": "\n\nHuman:"})
    );
    let back = bedrock::parse_response(&bytes).unwrap();
    assert_eq!(back.stop_reason, r.stop_reason);
}

#[test]
fn structured_output_and_effort_from_other_protocols() {
    let ir = openai::parse_request(&fixture("openai", "request_reasoning_files.json")).unwrap();
    let mut loss = LossReport::default();
    let out = json(&bedrock::write_request(&ir, &mut loss));
    if let Some(ResponseFormat::JsonSchema { schema, name, .. }) = &ir.response_format {
        let js = &out["outputConfig"]["textFormat"]["structure"]["jsonSchema"];
        let text: Value = serde_json::from_str(js["schema"].as_str().unwrap()).unwrap();
        assert_eq!(normalize(text), normalize(schema.clone()));
        assert_eq!(js["name"].as_str(), name.as_deref());
    }
    match ir.reasoning.as_ref().and_then(|r| r.effort) {
        Some(ReasoningEffort::Minimal) => has(&loss, &["reasoning.effort"]),
        Some(e) => assert_eq!(
            out["outputConfig"]["effort"],
            format!("{e:?}").to_lowercase()
        ),
        None => {}
    }
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let req = |body: &str| bedrock::parse_request(body.as_bytes(), MODEL);
    for (body, needle) in [
        ("not json", ""),
        ("[1, 2]", "JSON object"),
        (r#"{"messages": {}}"#, "messages must be an array"),
        (r#"{"messages": [3]}"#, "messages[0] must be an object"),
        (
            r#"{"messages": [{"role": "tool", "content": []}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "messages[0].content must be an array",
        ),
        (
            r#"{"messages": [{"role": "user", "content": ["hi"]}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"text": 5}]}]}"#,
            "messages[0].content[0].text must be a string",
        ),
        (
            r#"{"messages": [{"role": "assistant", "content": [{"toolUse": {"name": "f", "input": {}}}]}]}"#,
            "messages[0].content[0].toolUse.toolUseId",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": "x"}}]}]}"#,
            "toolResult.content must be an array",
        ),
        (
            r#"{"inferenceConfig": {"maxTokens": "many"}}"#,
            "inferenceConfig.maxTokens",
        ),
        (
            r#"{"inferenceConfig": {"stopSequences": [1]}}"#,
            "stopSequences",
        ),
        (r#"{"system": "be nice"}"#, "system must be an array"),
        (r#"{"toolConfig": {"tools": 1}}"#, "toolConfig"),
        (r#"{"_blocks": {}}"#, "`_blocks`"),
    ] {
        match req(body) {
            Err(RequestError::Json(m)) => assert!(m.contains(needle), "{body}: {m}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert_eq!(
        bedrock::parse_request(b"{}", ""),
        Err(RequestError::MissingModel)
    );
    for (body, needle) in [
        ("", ""),
        ("7", "JSON object"),
        (r#"{"stopReason": "end_turn"}"#, "output"),
        (
            r#"{"output": {"message": {"role": "user", "content": []}}}"#,
            "role",
        ),
        (
            r#"{"output": {"message": {"role": "assistant", "content": [{"text": 1}]}}}"#,
            "output.message.content[0].text",
        ),
        (
            r#"{"output": {"message": {"role": "assistant", "content": []}}, "stopReason": 3}"#,
            "stopReason",
        ),
        (
            r#"{"output": {"message": {"role": "assistant", "content": []}}, "usage": {"inputTokens": "9"}}"#,
            "usage.inputTokens",
        ),
    ] {
        match bedrock::parse_response(body.as_bytes()) {
            Err(m) => assert!(m.contains(needle), "{body}: {m}"),
            Ok(r) => panic!("{body}: {r:?}"),
        }
    }
}

#[test]
fn odd_but_valid_shapes_stay_lossless_and_stable() {
    // Shapes the IR folds or cannot type: a leading cachePoint, two in a row, a system turn,
    // a tool result part of another kind, a toolConfig with a systemTool, non-compact totals.
    let bodies = [
        r#"{"messages": [{"role": "user", "content": [{"cachePoint": {"type": "default"}}, {"text": "a"}, {"cachePoint": {"type": "default"}}, {"cachePoint": {"type": "default"}}]}]}"#,
        r#"{"messages": [{"role": "system", "content": [{"text": "s"}]}, {"role": "user", "content": [{"text": "u"}]}]}"#,
        r#"{"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"json": [1, "x", null]}, {"video": {"format": "mp4", "source": {"bytes": "AA=="}}}], "status": "success"}}]}]}"#,
        r#"{"toolConfig": {"tools": [{"systemTool": {"name": "nova_grounding"}}]}, "additionalModelRequestFields": {}}"#,
        r#"{"messages": [{"role": "user", "content": [{"document": {"name": "n", "format": "pdf", "source": {"bytes": "AA=="}, "citations": {"enabled": false}}}]}], "outputConfig": {"effort": "max"}}"#,
    ];
    for body in bodies {
        let ir = bedrock::parse_request(body.as_bytes(), MODEL).unwrap();
        let mut loss = LossReport::default();
        let out = bedrock::write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{loss:?} {body}");
        assert_eq!(json(&out), json(body.as_bytes()), "{body}");
        let again = bedrock::parse_request(&out, MODEL).unwrap();
        assert_eq!(bedrock::write_request(&again, &mut loss), out);
    }
    let ir = bedrock::parse_request(bodies[1].as_bytes(), MODEL).unwrap();
    assert_eq!(ir.messages[0].role, Role::System);
    let responses = [
        r#"{"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 5}, "metrics": {"latencyMs": 1}}"#,
        r#"{"output": {"message": {"role": "assistant", "content": [{"citationsContent": {"content": [{"text": "x"}], "citations": []}}]}}, "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}, "additionalModelResponseFields": {"stop_sequence": null}}"#,
    ];
    for body in responses {
        let r = bedrock::parse_response(body.as_bytes()).unwrap();
        let mut loss = LossReport::default();
        let out = bedrock::write_response(&r, &mut loss);
        assert!(loss.is_empty(), "{loss:?} {body}");
        assert_eq!(json(&out), json(body.as_bytes()), "{body}");
    }
}
