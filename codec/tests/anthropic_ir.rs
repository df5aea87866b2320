//! Anthropic Messages through the IR: documented shapes round-trip (thinking signatures,
//! redacted thinking, citations, cache marks, server tool blocks), and the OpenAI <-> Anthropic
//! cross pair carries what both can express and reports the rest.

mod common;
use common::*;

use busbar_codec::ir::{Block, LossReport, Role, StopReason, ToolChoice};
use busbar_codec::{anthropic, openai};
use serde_json::Value;

use common::json_of as json;

#[test]
fn requests_and_responses_round_trip() {
    let body = fixture("anthropic", "request_thinking_tools.json");
    let ir = anthropic::parse_request(&body).unwrap();
    let mut loss = LossReport::default();
    let out = anthropic::write_request(&ir, 4096, &mut loss);
    assert!(loss.is_empty(), "{loss:?}");
    assert_eq!(json(&out), json(&body));

    for name in [
        "response_thinking_tool_use.json",
        "response_stop_sequence.json",
    ] {
        let body = fixture("anthropic", name);
        let ir = anthropic::parse_response(&body).unwrap();
        let mut loss = LossReport::default();
        let out = anthropic::write_response(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json(&out), json(&body), "{name}");
    }
}

#[test]
fn typed_homes_for_anthropic_fields() {
    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    assert_eq!(ir.system.len(), 2);
    let Block::Thinking { signature, .. } = &ir.messages[1].content[0] else {
        panic!("thinking")
    };
    assert_eq!(
        signature.as_deref(),
        Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds")
    );
    assert!(matches!(
        ir.messages[1].content[1],
        Block::RedactedThinking { .. }
    ));
    assert!(matches!(
        &ir.messages[2].content[1],
        Block::ToolResult { is_error: true, .. }
    ));
    assert!(
        matches!(ir.messages[3].content[1], Block::Raw { .. }),
        "server_tool_use is carried raw"
    );
    assert_eq!(ir.tool_choice, Some(ToolChoice::Required));
    assert_eq!(ir.parallel_tool_calls, Some(false));
    let r = ir.reasoning.as_ref().unwrap();
    assert_eq!((r.enabled, r.budget_tokens), (Some(true), Some(10000)));
    assert_eq!(
        ir.user.as_deref(),
        Some("13803d75-b4b5-4c3e-b2a2-6f21399b021b")
    );
    assert_eq!(ir.sampling.top_k, Some(40));
    assert!(ir.tools[0].cache.is_some());

    let r =
        anthropic::parse_response(&fixture("anthropic", "response_stop_sequence.json")).unwrap();
    assert_eq!(
        r.stop_reason,
        Some(StopReason::StopSequence(Some("\n\nHuman:".into())))
    );
    let r = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    assert_eq!(
        (
            r.usage.input,
            r.usage.cache_write,
            r.usage.cache_read,
            r.usage.output
        ),
        (2095, 512, 1024, 503)
    );
}

#[test]
fn openai_request_to_anthropic() {
    let ir = openai::parse_request(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = json(&anthropic::write_request(&ir, 4096, &mut loss));
    // Developer and system turns become the system prompt.
    assert_eq!(out["system"][0]["text"], "You are a weather assistant.");
    assert_eq!(out["system"][1]["text"], "Answer briefly.");
    assert_eq!(out["max_tokens"], 1024.0);
    // The two tool results are one user turn of tool_result blocks, after the assistant's calls.
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][0]["input"]["location"], "Paris");
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], "call_def456");
    // Tools: JSON Schema moves to input_schema; the forced tool and parallel calls survive.
    assert_eq!(out["tools"][0]["input_schema"]["required"][0], "location");
    assert_eq!(
        out["tool_choice"],
        serde_json::json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": false})
    );
    assert_eq!(out["stop_sequences"][1], "END");
    assert_eq!(out["metadata"]["user_id"], "user-1234");
    // What Anthropic cannot carry is named.
    for f in [
        "messages[2].name",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "tools[0].strict",
        "openai.logit_bias",
        "openai.store",
    ] {
        assert!(
            loss.dropped.iter().any(|d| d == f),
            "{f} not reported in {:?}",
            loss.dropped
        );
    }
    // And the max_tokens default applies when the source had none.
    let mut ir2 = ir.clone();
    ir2.max_output_tokens = None;
    let out2 = json(&anthropic::write_request(
        &ir2,
        4096,
        &mut LossReport::default(),
    ));
    assert_eq!(out2["max_tokens"], 4096.0);
}

#[test]
fn anthropic_request_to_openai_and_back_keeps_tool_ids() {
    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = json(&openai::write_request(&ir, &mut loss));
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    let call = &msgs[2]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "toolu_01A09q90qw90lq917835lq9");
    // Thinking has no place in Chat Completions requests: reported, with its path.
    assert!(
        loss.dropped.contains(&"messages[1].content[0]".to_string()),
        "{:?}",
        loss.dropped
    );
    assert!(loss.dropped.contains(&"top_k".to_string()));
    // A tool result's image has no place in an OpenAI tool message; its error flag neither.
    assert!(
        loss.dropped
            .contains(&"messages[2].content[1].content[1]".to_string()),
        "{:?}",
        loss.dropped
    );
    assert!(
        loss.dropped
            .contains(&"messages[2].content[1].is_error".to_string())
    );
    assert_eq!(msgs[4]["content"], "station offline; last radar image:");
    assert!(loss.dropped.contains(&"anthropic.service_tier".to_string()));
    // Back to Anthropic from the OpenAI form: the tool call and its result still pair up.
    let back = openai::parse_request(&serde_json::to_vec(&out).unwrap()).unwrap();
    let again = json(&anthropic::write_request(
        &back,
        4096,
        &mut LossReport::default(),
    ));
    let m = again["messages"].as_array().unwrap();
    let use_id = m
        .iter()
        .flat_map(|x| x["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_use")
        .unwrap()["id"]
        .clone();
    let result_id = m
        .iter()
        .flat_map(|x| x["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result")
        .unwrap()["tool_use_id"]
        .clone();
    assert_eq!(use_id, result_id);
    assert_eq!(
        back.messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .count(),
        2
    );
}

#[test]
fn anthropic_response_to_openai_response() {
    let ir = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out = json(&openai::write_response(&ir, 1_700_000_000, &mut loss));
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["created"], 1_700_000_000.0);
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "According to the report, the grass is green."
    );
    let args: Value = serde_json::from_str(
        out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["location"], "San Francisco, CA");
    // prompt_tokens counts cache reads; the cache write and the thinking block are reported.
    assert_eq!(out["usage"]["prompt_tokens"], 3119.0);
    assert_eq!(
        out["usage"]["prompt_tokens_details"]["cached_tokens"],
        1024.0
    );
    assert!(
        loss.dropped.contains(&"content[0]".to_string()),
        "{:?}",
        loss.dropped
    );
    assert!(loss.dropped.contains(&"usage.cache_write".to_string()));
    assert!(loss.dropped.contains(&"content[1].citations".to_string()));
}
