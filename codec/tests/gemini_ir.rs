//! Gemini generateContent through the IR: documented shapes round-trip (thought signatures on
//! function calls and on the part after the thoughts, upper-case schemas, safety settings and
//! ratings, citations, usage with cached and thought tokens); snake_case bodies mean the same as
//! camelCase ones; minted function-call ids pair calls with responses; and the cross pairs with
//! OpenAI Chat and Anthropic carry what both sides can express and report the rest.

mod common;
use common::*;

use busbar_codec::ir::{
    Block, LossReport, ReasoningEffort, ResponseFormat, Role, StopReason, ToolChoice,
};
use busbar_codec::{anthropic, gemini, openai};
use serde_json::{Value, json};

#[test]
fn requests_and_responses_round_trip() {
    for name in [
        "request_multiturn_tools.json",
        "request_media_json_schema.json",
    ] {
        let body = fixture("gemini", name);
        let ir = gemini::parse_request(&body, "models/gemini-2.5-flash").unwrap();
        assert_eq!(ir.model, "gemini-2.5-flash");
        let mut loss = LossReport::default();
        let out = gemini::write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
    }
    for name in [
        "response_function_call.json",
        "response_text_citations.json",
    ] {
        let body = fixture("gemini", name);
        let ir = gemini::parse_response(&body).unwrap();
        let mut loss = LossReport::default();
        let out = gemini::write_response(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
    }
}

#[test]
fn snake_case_means_the_same_as_camel_case() {
    let camel =
        gemini::parse_request(&fixture("gemini", "request_multiturn_tools.json"), "m").unwrap();
    let snake = gemini::parse_request(&fixture("gemini", "request_snake_case.json"), "m").unwrap();
    assert_eq!(snake, camel);
    let r = snake.reasoning.as_ref().unwrap();
    assert_eq!(
        (r.include_thoughts, r.budget_tokens),
        (Some(true), Some(1024))
    );
}

#[test]
fn typed_homes_for_gemini_fields() {
    let ir =
        gemini::parse_request(&fixture("gemini", "request_multiturn_tools.json"), "m").unwrap();
    assert!(matches!(&ir.system[0], Block::Text { text, .. } if text.starts_with("You are")));
    // Model turn: a thought, then two calls; the first carries the signature.
    let m = &ir.messages[1];
    assert_eq!(m.role, Role::Assistant);
    assert!(matches!(
        &m.content[0],
        Block::Thinking {
            signature: None,
            ..
        }
    ));
    let Block::ToolUse {
        id: id0,
        thought_signature,
        input,
        ..
    } = &m.content[1]
    else {
        panic!("call")
    };
    assert_eq!(
        thought_signature.as_deref(),
        Some("CiQB0e2Kb7m9Xh1c0mGJ4Q==")
    );
    assert_eq!(input["location"], "Boston, MA");
    let Block::ToolUse { id: id1, .. } = &m.content[2] else {
        panic!("call")
    };
    assert!(
        id0.starts_with(gemini::MINTED_ID_PREFIX) && id0 != id1,
        "minted, distinct ids"
    );
    // The responses pair with the calls, in order.
    let Block::ToolResult {
        tool_use_id,
        name,
        content,
        ..
    } = &ir.messages[2].content[0]
    else {
        panic!("result")
    };
    assert_eq!(
        (tool_use_id, name.as_deref()),
        (id0, Some("get_current_weather"))
    );
    assert!(matches!(&content[0], Block::Text { text, .. } if text == "4 C, light rain"));
    let Block::ToolResult { tool_use_id, .. } = &ir.messages[2].content[1] else {
        panic!("result")
    };
    assert_eq!(tool_use_id, id1);
    // A signature on a text part: a signature-only thinking block right before it.
    assert!(
        matches!(&ir.messages[3].content[0], Block::Thinking { text, signature: Some(s) } if text.is_empty() && s == "EpwBCpkBAdHtim9sig==")
    );
    // Upper-case schema became JSON Schema.
    assert_eq!(ir.tools[0].parameters["type"], "object");
    assert_eq!(
        ir.tools[0].parameters["properties"]["unit"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(ir.tools[1].parameters["additionalProperties"], false);
    assert_eq!(
        ir.tool_choice,
        Some(ToolChoice::Tool("get_current_weather".into()))
    );
    assert_eq!(ir.safety.len(), 2);
    assert_eq!(ir.safety[1].method.as_deref(), Some("SEVERITY"));
    assert_eq!(ir.sampling.top_k, Some(10));
    assert_eq!(ir.sampling.seed, Some(42));
    assert_eq!(ir.stop, ["Title"]);

    let ir =
        gemini::parse_request(&fixture("gemini", "request_media_json_schema.json"), "m").unwrap();
    let c = &ir.messages[0].content;
    assert!(matches!(&c[1], Block::Image { .. }));
    assert!(matches!(&c[2], Block::Document { .. }));
    assert!(matches!(&c[4], Block::Audio { .. }));
    assert!(
        matches!(&c[5], Block::Raw { .. }),
        "executableCode has no IR type"
    );
    assert!(
        matches!(&ir.response_format, Some(ResponseFormat::JsonSchema { schema, .. }) if schema["required"] == json!(["caption"]))
    );
    assert_eq!(
        ir.reasoning.as_ref().unwrap().enabled,
        Some(false),
        "thinkingBudget 0 is thinking off"
    );

    let r = gemini::parse_response(&fixture("gemini", "response_function_call.json")).unwrap();
    assert_eq!(
        r.stop_reason,
        Some(StopReason::ToolUse),
        "STOP with calls is a tool use"
    );
    assert_eq!(
        (
            r.usage.input,
            r.usage.cache_read,
            r.usage.output,
            r.usage.reasoning
        ),
        (56, 64, 95, 65)
    );
    assert_eq!(r.safety[1].probability, "LOW");
    let r = gemini::parse_response(&fixture("gemini", "response_text_citations.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
    assert!(r.safety[1].blocked);
    let Block::Text { citations, .. } = &r.content[1] else {
        panic!("text")
    };
    assert_eq!(
        citations[0].source.as_deref(),
        Some("https://en.wikipedia.org/wiki/Chlorophyll")
    );
}

#[test]
fn every_finish_reason_maps_and_round_trips() {
    for (reason, ir) in [
        ("STOP", StopReason::EndTurn),
        ("MAX_TOKENS", StopReason::MaxTokens),
        ("SAFETY", StopReason::ContentFilter),
        ("RECITATION", StopReason::ContentFilter),
        ("BLOCKLIST", StopReason::ContentFilter),
        ("PROHIBITED_CONTENT", StopReason::ContentFilter),
        ("SPII", StopReason::ContentFilter),
        ("IMAGE_SAFETY", StopReason::ContentFilter),
        ("LANGUAGE", StopReason::Other("LANGUAGE".into())),
        ("OTHER", StopReason::Other("OTHER".into())),
        (
            "MALFORMED_FUNCTION_CALL",
            StopReason::Other("MALFORMED_FUNCTION_CALL".into()),
        ),
        (
            "UNEXPECTED_TOOL_CALL",
            StopReason::Other("UNEXPECTED_TOOL_CALL".into()),
        ),
        (
            "TOO_MANY_TOOL_CALLS",
            StopReason::Other("TOO_MANY_TOOL_CALLS".into()),
        ),
        (
            "FINISH_REASON_UNSPECIFIED",
            StopReason::Other("FINISH_REASON_UNSPECIFIED".into()),
        ),
    ] {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason}],
                          "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
                          "modelVersion": "gemini-2.5-flash", "responseId": "r1"});
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = gemini::parse_response(&bytes).unwrap();
        assert_eq!(r.stop_reason.as_ref(), Some(&ir), "{reason}");
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&gemini::write_response(&r, &mut loss)),
            json_of(&bytes),
            "{reason}"
        );
        assert!(loss.is_empty());
    }
}

#[test]
fn gemini_to_openai_and_anthropic() {
    let ir =
        gemini::parse_request(&fixture("gemini", "request_multiturn_tools.json"), "m").unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_request(&ir, &mut loss)).unwrap();
    assert_eq!(out["messages"][0]["role"], "system");
    assert_eq!(
        out["tools"][0]["function"]["parameters"]["properties"]["location"]["type"], "string",
        "schema lower-cased"
    );
    let calls = &out["messages"][2]["tool_calls"];
    assert_eq!(
        calls.as_array().unwrap().len(),
        2,
        "parallel calls stay parallel"
    );
    assert_eq!(
        out["messages"][3]["tool_call_id"], calls[0]["id"],
        "minted ids pair up"
    );
    assert_eq!(out["messages"][3]["content"], "4 C, light rain");
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "get_current_weather"}})
    );
    for f in [
        "safety_settings",
        "gemini.cachedContent",
        "gemini.labels",
        "gemini.tools",
        "top_k",
    ] {
        assert!(
            loss.dropped.iter().any(|d| d == f),
            "{f} not reported: {:?}",
            loss.dropped
        );
    }

    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&anthropic::write_request(&ir, 4096, &mut loss)).unwrap();
    assert_eq!(out["system"], "You are a concise travel assistant.");
    assert_eq!(out["top_k"], 10);
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    let blocks = &out["messages"][1]["content"];
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[1]["type"], "tool_use");
    assert_eq!(
        out["messages"][2]["content"][0]["tool_use_id"],
        blocks[1]["id"]
    );
    assert!(
        loss.dropped.iter().any(|d| d == "safety_settings"),
        "{:?}",
        loss.dropped
    );
    assert!(
        loss.dropped.iter().any(|d| d.contains("thought_signature")),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn openai_and_anthropic_to_gemini() {
    let ir = openai::parse_request(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&gemini::write_request(&ir, &mut loss)).unwrap();
    assert!(out.get("model").is_none(), "the model goes in the URL");
    let decl = &out["tools"][0]["functionDeclarations"][0];
    assert!(decl.get("parameters").is_some() || decl.get("parametersJsonSchema").is_some());
    if let Some(p) = decl.get("parameters") {
        assert_eq!(p["type"], "OBJECT", "upper-case schema types for Gemini");
    }
    // Tool results name their function, found from the call with the same id.
    let results: Vec<&Value> = out["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .filter_map(|p| p.get("functionResponse"))
        .collect();
    assert!(!results.is_empty());
    assert!(
        results
            .iter()
            .all(|r| r["name"].is_string() && r["name"] != ""),
        "{results:?}"
    );

    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&gemini::write_request(&ir, &mut loss)).unwrap();
    assert!(out["systemInstruction"]["parts"][0]["text"].is_string());
    let parts: Vec<&Value> = out["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .collect();
    assert!(
        parts
            .iter()
            .any(|p| p["thought"] == true && p["thoughtSignature"].is_string()),
        "thinking keeps its signature: {parts:?}"
    );
    assert!(
        loss.dropped.iter().any(|d| d.contains("cache_control")),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn responses_cross_both_ways() {
    let r = gemini::parse_response(&fixture("gemini", "response_function_call.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&anthropic::write_response(&r, &mut loss)).unwrap();
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"][1]["type"], "tool_use");
    assert_eq!(out["content"][0]["type"], "thinking");
    assert_eq!(out["usage"]["input_tokens"], 56);
    assert_eq!(out["usage"]["cache_read_input_tokens"], 64);
    assert!(
        loss.dropped.iter().any(|d| d == "safety_ratings"),
        "{:?}",
        loss.dropped
    );
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_response(&r, 1, &mut loss)).unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        out["usage"]["completion_tokens_details"]["reasoning_tokens"],
        65
    );

    let a = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&gemini::write_response(&a, &mut loss)).unwrap();
    let parts = &out["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0]["thought"], true);
    assert!(
        parts[0]["thoughtSignature"].is_string(),
        "Anthropic's signature rides on the thought part"
    );
    assert_eq!(
        parts[2]["functionCall"]["id"], "toolu_01A09q90qw90lq917835lq9",
        "a real id is kept"
    );
    assert_eq!(out["candidates"][0]["finishReason"], "STOP");
    assert_eq!(out["usageMetadata"]["promptTokenCount"], 2095 + 1024);
    assert!(
        loss.dropped.iter().any(|d| d.contains("cache_write")),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        &b"[]"[..],
        b"{\"contents\": 3}",
        b"{\"contents\": [{\"role\": \"robot\"}]}",
        b"{\"tools\": [{\"functionDeclarations\": [{}]}]}",
        b"nope",
    ] {
        assert!(
            gemini::parse_request(body, "m").is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(gemini::parse_request(b"{}", "").is_err(), "no model");
    assert!(gemini::parse_response(b"{\"candidates\": 1}").is_err());
    let effort = gemini::parse_request(
        br#"{"generationConfig":{"thinkingConfig":{"thinkingLevel":"high"}}}"#,
        "m",
    )
    .unwrap();
    assert_eq!(
        effort.reasoning.unwrap().effort,
        Some(ReasoningEffort::High)
    );
}
