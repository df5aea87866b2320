//! OpenAI Responses through the IR: documented shapes round-trip (items merged into turns and
//! split back, reasoning items with summaries and encrypted content, parallel function calls,
//! outputs as text or parts, annotations, usage with cached and reasoning tokens, every status),
//! and the cross pairs with OpenAI Chat and Anthropic carry what both sides can express and
//! report the rest.

mod common;
use common::*;

use busbar_codec::ir::{
    Block, LossReport, Reasoning, ReasoningEffort, ResponseFormat, Role, StopReason, ToolChoice,
};
use busbar_codec::{anthropic, openai, responses};
use serde_json::{Value, json};

#[test]
fn requests_and_responses_round_trip() {
    for name in ["request_multiturn_tools.json", "request_string_input.json"] {
        let body = fixture("responses", name);
        let ir = responses::parse_request(&body).unwrap();
        let mut loss = LossReport::default();
        let out = responses::write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
    }
    for name in [
        "response_reasoning_tool_calls.json",
        "response_text_citations.json",
    ] {
        let body = fixture("responses", name);
        let ir = responses::parse_response(&body).unwrap();
        let mut loss = LossReport::default();
        let out = responses::write_response(&ir, 1, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
    }
}

#[test]
fn typed_homes_for_responses_fields() {
    let ir =
        responses::parse_request(&fixture("responses", "request_multiturn_tools.json")).unwrap();
    assert!(matches!(&ir.system[0], Block::Text { text, .. } if text.starts_with("You are")));
    let user = &ir.messages[0];
    assert_eq!(user.role, Role::User);
    assert!(matches!(&user.content[1], Block::Image { detail: Some(d), .. } if d == "high"));
    assert!(
        matches!(&user.content[3], Block::Document { title: Some(t), .. } if t == "itinerary.pdf")
    );
    // Reasoning, text and two calls merge into one assistant turn.
    let a = &ir.messages[1];
    assert_eq!(a.role, Role::Assistant);
    assert!(
        matches!(&a.content[0], Block::Thinking { signature: Some(s), .. } if s == "rs_6890a1b2c3d4e5f60718293a4b5c6d7e")
    );
    assert!(
        matches!(&a.content[1], Block::RedactedThinking { data } if data == "gAAAAABoIvd1Zx0rEiBNwTu2Kd0")
    );
    assert!(
        matches!(&a.content[3], Block::ToolUse { id, input, .. } if id == "call_12345xyz" && input["location"] == "Paris, France")
    );
    assert!(matches!(&a.content[4], Block::ToolUse { id, .. } if id == "call_67890abc"));
    assert_eq!(ir.messages[2].role, Role::Tool);
    assert_eq!(ir.messages[3].role, Role::Tool);
    assert_eq!(ir.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(ir.tools[0].strict, Some(true));
    assert!(
        matches!(&ir.response_format, Some(ResponseFormat::JsonSchema { name: Some(n), strict: Some(true), .. }) if n == "forecast")
    );
    assert_eq!(
        ir.reasoning,
        Some(Reasoning {
            effort: Some(ReasoningEffort::Medium),
            include_thoughts: Some(true),
            ..Reasoning::default()
        })
    );
    assert_eq!(ir.user.as_deref(), Some("user-1234"));

    let r = responses::parse_response(&fixture("responses", "response_reasoning_tool_calls.json"))
        .unwrap();
    assert_eq!(
        r.stop_reason,
        Some(StopReason::ToolUse),
        "completed with calls is a tool use"
    );
    assert_eq!(
        (
            r.usage.input,
            r.usage.cache_read,
            r.usage.output,
            r.usage.reasoning
        ),
        (196, 128, 410, 320)
    );
    assert_eq!(
        r.content
            .iter()
            .filter(|b| matches!(b, Block::Thinking { .. }))
            .count(),
        2
    );
    let r =
        responses::parse_response(&fixture("responses", "response_text_citations.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
    assert!(
        matches!(&r.content[0], Block::Raw { .. }),
        "web_search_call has no IR type"
    );
    let Block::Text { citations, .. } = &r.content[1] else {
        panic!("text")
    };
    assert_eq!(
        citations[0].source.as_deref(),
        Some("https://www.ecb.europa.eu/press/")
    );
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
fn responses_to_openai_and_anthropic() {
    let ir =
        responses::parse_request(&fixture("responses", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_request(&ir, &mut loss)).unwrap();
    assert_eq!(out["messages"][0]["role"], "system");
    let calls = &out["messages"][2]["tool_calls"];
    assert_eq!(calls[1]["id"], "call_67890abc");
    assert_eq!(out["messages"][3]["tool_call_id"], "call_12345xyz");
    assert_eq!(out["response_format"]["json_schema"]["name"], "forecast");
    assert_eq!(out["reasoning_effort"], "medium");
    for f in [
        "responses.store",
        "responses.truncation",
        "responses.tools",
        "responses.prompt_cache_key",
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
    let a = &out["messages"][1]["content"];
    assert_eq!(a[0]["type"], "thinking");
    assert_eq!(a[1]["type"], "redacted_thinking");
    assert_eq!(a[3]["type"], "tool_use");
    let results = out["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2, "both outputs in one user turn");
    assert!(
        loss.dropped.iter().any(|d| d == "response_format"),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn openai_and_anthropic_to_responses() {
    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&responses::write_request(&ir, &mut loss)).unwrap();
    assert!(out["instructions"].is_string());
    let items = out["input"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["type"] == "function_call" && i["arguments"].is_string())
    );
    assert!(items.iter().any(|i| i["type"] == "function_call_output"));
    // Anthropic's thinking cannot be handed to OpenAI as input: reported, not sent.
    assert!(!items.iter().any(|i| i["type"] == "reasoning"));
    assert!(
        loss.dropped.iter().any(|d| d.starts_with("messages[")),
        "{:?}",
        loss.dropped
    );
    // Thinking was asked for: summaries and encrypted reasoning are requested.
    assert_eq!(out["reasoning"]["summary"], "auto");
    assert_eq!(out["include"], json!(["reasoning.encrypted_content"]));

    let a = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&responses::write_response(&a, 1_700_000_000, &mut loss)).unwrap();
    assert!(out["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(out["status"], "completed");
    let kinds: Vec<&str> = out["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(out["output"][2]["call_id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(out["usage"]["input_tokens"], 2095 + 1024);
    assert_eq!(out["usage"]["input_tokens_details"]["cached_tokens"], 1024);
    assert!(
        loss.dropped.iter().any(|d| d.ends_with(".signature")),
        "{:?}",
        loss.dropped
    );

    let r = responses::parse_response(&fixture("responses", "response_reasoning_tool_calls.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&anthropic::write_response(&r, &mut loss)).unwrap();
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"][0]["type"], "thinking");
    assert_eq!(
        out["content"][0]["signature"], "rs_68af40316b6081969f0b7b6b23c4a1f70a8b3e8d1f2e4c6b",
        "the item id travels as the signature"
    );
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_response(&r, 1, &mut loss)).unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["usage"]["prompt_tokens"], 324);
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        &b"[]"[..],
        b"{\"model\": \"m\", \"input\": 3}",
        b"{\"model\": \"m\", \"input\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
        b"{\"model\": \"m\", \"input\": [{\"type\": \"function_call\"}]}",
        b"{\"input\": \"x\"}",
    ] {
        assert!(
            responses::parse_request(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(responses::parse_response(b"{\"output\": 3}").is_err());
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
    ] {
        let body = json!({"model": "gpt-5", "input": "hi", "tool_choice": choice,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]});
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
        if want.is_none() {
            let mut loss = LossReport::default();
            anthropic::write_request(&ir, 1024, &mut loss);
            assert!(
                loss.dropped.contains(&"responses.tool_choice".to_string()),
                "{:?}",
                loss.dropped
            );
        }
    }
}
