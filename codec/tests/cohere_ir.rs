//! Cohere v2 chat through the IR: documented shapes round-trip (tool plans, parallel tool
//! calls, document tool results, citations by content index, billed and raw usage, every finish
//! reason), and the cross pairs with OpenAI Chat and Anthropic carry what both sides can express
//! and report the rest.

mod common;
use common::*;

use busbar_codec::ir::{Block, LossReport, ResponseFormat, Role, StopReason, ToolChoice};
use busbar_codec::{anthropic, cohere, openai};
use serde_json::{Value, json};

#[test]
fn requests_and_responses_round_trip() {
    let body = fixture("cohere", "request_tools_documents.json");
    let ir = cohere::parse_request(&body).unwrap();
    let mut loss = LossReport::default();
    let out = cohere::write_request(&ir, &mut loss);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(json_of(&out), json_of(&body));
    for name in ["response_tool_calls.json", "response_text_citations.json"] {
        let body = fixture("cohere", name);
        let ir = cohere::parse_response(&body).unwrap();
        let mut loss = LossReport::default();
        let out = cohere::write_response(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
    }
}

#[test]
fn typed_homes_for_cohere_fields() {
    let ir = cohere::parse_request(&fixture("cohere", "request_tools_documents.json")).unwrap();
    assert_eq!(ir.messages[0].role, Role::System);
    assert!(
        matches!(&ir.messages[1].content[1], Block::Image { detail: Some(d), .. } if d == "high")
    );
    let calls: Vec<&str> = ir.messages[2]
        .content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            "query_daily_sales_report_fjr7x2bp5p3p",
            "query_product_catalog_5k3gwj5abm3f"
        ]
    );
    assert!(ir.messages[2].ext.cohere.contains_key("tool_plan"));
    let Block::ToolResult {
        tool_use_id,
        content,
        ..
    } = &ir.messages[3].content[0]
    else {
        panic!("result")
    };
    assert_eq!(tool_use_id, "query_daily_sales_report_fjr7x2bp5p3p");
    assert!(matches!(&content[0], Block::Text { text, .. } if text.contains("Total Sales Amount")));
    assert!(
        ir.tools.iter().all(|t| t.strict == Some(true)),
        "strict_tools applies to every tool"
    );
    assert_eq!(ir.tool_choice, Some(ToolChoice::Required));
    assert!(
        matches!(&ir.response_format, Some(ResponseFormat::JsonSchema { schema, .. }) if schema["required"] == json!(["answer"]))
    );
    assert_eq!(
        (ir.sampling.top_k, ir.sampling.top_p),
        (Some(40), Some(0.75))
    );
    let r = ir.reasoning.as_ref().unwrap();
    assert_eq!((r.enabled, r.budget_tokens), (Some(true), Some(2048)));

    let r = cohere::parse_response(&fixture("cohere", "response_text_citations.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::EndTurn));
    assert!(matches!(
        &r.content[0],
        Block::Thinking {
            signature: None,
            ..
        }
    ));
    let Block::Text { citations, .. } = &r.content[1] else {
        panic!("text")
    };
    assert_eq!(citations[0].cited_text.as_deref(), Some("chlorophyll"));
    assert_eq!(citations[0].source.as_deref(), Some("doc:0"));
    // Billed units are the IR's usage; cached tokens are cache reads.
    assert_eq!(
        (r.usage.input, r.usage.output, r.usage.cache_read),
        (31, 9, 448)
    );
    let r = cohere::parse_response(&fixture("cohere", "response_tool_calls.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
    assert!(
        matches!(&r.content[1], Block::ToolUse { input, .. } if input["category"] == "Electronics")
    );
}

#[test]
fn every_finish_reason_maps_and_round_trips() {
    for (reason, ir) in [
        ("COMPLETE", StopReason::EndTurn),
        ("STOP_SEQUENCE", StopReason::StopSequence(None)),
        ("MAX_TOKENS", StopReason::MaxTokens),
        ("TOOL_CALL", StopReason::ToolUse),
        ("ERROR", StopReason::Other("ERROR".into())),
        ("TIMEOUT", StopReason::Other("TIMEOUT".into())),
    ] {
        let body = json!({"id": "x", "finish_reason": reason, "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
                          "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 1}, "tokens": {"input_tokens": 5, "output_tokens": 1}}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = cohere::parse_response(&bytes).unwrap();
        assert_eq!(r.stop_reason.as_ref(), Some(&ir), "{reason}");
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&cohere::write_response(&r, &mut loss)),
            json_of(&bytes),
            "{reason}"
        );
        assert!(loss.is_empty());
    }
}

#[test]
fn cohere_to_openai_and_anthropic() {
    let ir = cohere::parse_request(&fixture("cohere", "request_tools_documents.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&openai::write_request(&ir, &mut loss)).unwrap();
    assert_eq!(out["messages"][0]["role"], "system");
    assert_eq!(
        out["messages"][2]["tool_calls"][1]["id"],
        "query_product_catalog_5k3gwj5abm3f"
    );
    assert_eq!(out["messages"][3]["role"], "tool");
    assert_eq!(out["tool_choice"], "required");
    assert_eq!(out["response_format"]["type"], "json_schema");
    for f in [
        "cohere.documents",
        "cohere.safety_mode",
        "cohere.citation_options",
        "top_k",
    ] {
        assert!(
            loss.dropped.iter().any(|d| d == f),
            "{f} not reported: {:?}",
            loss.dropped
        );
    }
    assert!(
        loss.dropped.iter().any(|d| d.ends_with("cohere.tool_plan")),
        "{:?}",
        loss.dropped
    );

    let mut loss = LossReport::default();
    let out: Value =
        serde_json::from_slice(&anthropic::write_request(&ir, 4096, &mut loss)).unwrap();
    assert_eq!(
        out["system"],
        "You are a helpful sales assistant. Answer with figures."
    );
    assert_eq!(out["top_k"], 40);
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    // Both tool results go back in one user turn, paired by id.
    let results = out["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[1]["tool_use_id"],
        "query_product_catalog_5k3gwj5abm3f"
    );
    // Anthropic wants the thinking budget under max_tokens: the answer keeps its 512 on top.
    assert_eq!(out["max_tokens"], 2048 + 512);
}

#[test]
fn openai_and_anthropic_to_cohere() {
    let ir = openai::parse_request(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&cohere::write_request(&ir, &mut loss)).unwrap();
    let msgs = out["messages"].as_array().unwrap();
    assert!(
        msgs.iter()
            .any(|m| m["role"] == "tool" && m["tool_call_id"].is_string())
    );
    assert!(
        msgs.iter()
            .any(|m| m["tool_calls"][0]["function"]["arguments"].is_string())
    );

    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&cohere::write_request(&ir, &mut loss)).unwrap();
    assert_eq!(
        out["messages"][0]["role"], "system",
        "Anthropic's system prompt leads"
    );
    // A user turn with tool results becomes tool messages.
    let msgs = out["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["role"] == "tool"), "{msgs:?}");
    assert!(
        loss.dropped.iter().any(|d| d.contains("signature")),
        "thinking signatures have no Cohere home: {:?}",
        loss.dropped
    );

    let a = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&cohere::write_response(&a, &mut loss)).unwrap();
    assert_eq!(out["finish_reason"], "TOOL_CALL");
    assert_eq!(
        out["message"]["tool_calls"][0]["id"],
        "toolu_01A09q90qw90lq917835lq9"
    );
    assert_eq!(
        out["usage"]["billed_units"],
        json!({"input_tokens": 2095, "output_tokens": 503})
    );
    assert_eq!(out["usage"]["tokens"]["input_tokens"], 2095 + 1024);
    assert!(
        loss.dropped.iter().any(|d| d == "usage.cache_write"),
        "{:?}",
        loss.dropped
    );

    let c = cohere::parse_response(&fixture("cohere", "response_tool_calls.json")).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&anthropic::write_response(&c, &mut loss)).unwrap();
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"][0]["type"], "tool_use");
    assert_eq!(out["usage"]["input_tokens"], 127);
    assert!(
        loss.dropped.iter().any(|d| d == "cohere.message.tool_plan"),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        &b"[]"[..],
        b"{\"model\": \"m\", \"messages\": {}}",
        b"{\"model\": \"m\", \"messages\": [{\"role\": \"robot\"}]}",
        b"{\"model\": \"m\", \"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}",
        b"{\"model\": \"m\", \"tool_choice\": \"AUTO\"}",
        b"{\"messages\": []}",
    ] {
        assert!(
            cohere::parse_request(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(cohere::parse_response(b"{\"message\": 3}").is_err());
}

#[test]
fn every_tool_choice_form_round_trips() {
    for (choice, want) in [
        (Some("REQUIRED"), Some(ToolChoice::Required)),
        (Some("NONE"), Some(ToolChoice::None)),
        (None, None),
    ] {
        let mut body = json!({"model": "command-a-03-2025", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
        if let Some(c) = choice {
            body["tool_choice"] = json!(c);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let ir = cohere::parse_request(&bytes).unwrap();
        assert_eq!(ir.tool_choice, want);
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&cohere::write_request(&ir, &mut loss)),
            json_of(&bytes)
        );
        assert!(loss.is_empty());
    }
    // A named tool has no Cohere form: any tool is required, and the choice is reported.
    let ir = openai::parse_request(br#"{"model":"m","messages":[],"tool_choice":{"type":"function","function":{"name":"f"}},"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}"#).unwrap();
    let mut loss = LossReport::default();
    let out: Value = serde_json::from_slice(&cohere::write_request(&ir, &mut loss)).unwrap();
    assert_eq!(out["tool_choice"], "REQUIRED");
    assert_eq!(loss.dropped, ["tool_choice"]);
}

#[test]
fn a_reasoning_effort_turns_cohere_thinking_on_and_reports_the_level() {
    let body =
        br#"{"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"hi"}]}"#;
    let ir = openai::parse_request(body).unwrap();
    let mut loss = LossReport::default();
    let out = json_of(&cohere::write_request(&ir, &mut loss));
    assert_eq!(out["thinking"], json!({"type": "enabled"}));
    assert_eq!(loss.dropped, vec!["reasoning.effort".to_string()]);
}
