//! OpenAI Chat Completions through the IR: documented request and response shapes survive
//! parse -> IR -> write (semantically equal JSON), and what the IR holds that OpenAI cannot carry
//! is reported, not dropped in silence.

use busbar_codec::ir::{Block, LossReport, Media, Role, StopReason, ToolChoice};
use busbar_codec::openai::{parse_request, parse_response, write_request, write_response};
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openai")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Semantic form: tool-call `arguments` strings compared as the JSON they hold.
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("arguments", Value::String(s)) => {
                        let parsed = serde_json::from_str(&s).unwrap_or(Value::String(s));
                        (k, parsed)
                    }
                    (_, v) => (k, normalize(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        v => v,
    }
}

fn json(bytes: &[u8]) -> Value {
    normalize(serde_json::from_slice(bytes).unwrap())
}

#[test]
fn requests_round_trip() {
    for name in [
        "request_multiturn_tools.json",
        "request_reasoning_files.json",
    ] {
        let body = fixture(name);
        let ir = parse_request(&body).unwrap();
        let mut loss = LossReport::default();
        let out = write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json(&out), json(&body), "{name}");
    }
}

#[test]
fn request_fields_land_in_typed_homes() {
    let ir = parse_request(&fixture("request_multiturn_tools.json")).unwrap();
    assert_eq!(ir.model, "gpt-4.1");
    assert_eq!(ir.messages[0].role, Role::Developer);
    assert_eq!(ir.messages[2].name.as_deref(), Some("alice"));
    assert!(
        matches!(&ir.messages[2].content[2], Block::Image { source: Media::Base64 { media_type, .. }, .. } if media_type == "image/png")
    );
    let Block::ToolUse { id, input, .. } = &ir.messages[3].content[0] else {
        panic!("tool call")
    };
    assert_eq!(
        (id.as_str(), &input["location"]),
        ("call_abc123", &Value::from("Paris"))
    );
    let Block::ToolResult { tool_use_id, .. } = &ir.messages[4].content[0] else {
        panic!("tool result")
    };
    assert_eq!(tool_use_id, "call_abc123");
    assert_eq!(ir.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(ir.tools[0].strict, Some(true));
    assert_eq!(
        (ir.sampling.seed, ir.max_output_tokens),
        (Some(42), Some(1024))
    );
    assert_eq!(ir.stop, ["\n\n", "END"]);
    assert!(ir.stream && ir.stream_usage);
    // OpenAI-only fields are kept in the OpenAI extension, by name.
    for k in [
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "metadata",
        "service_tier",
        "store",
    ] {
        assert!(ir.ext.openai.contains_key(k), "{k}");
    }
}

#[test]
fn legacy_and_short_forms_are_read() {
    let ir = parse_request(
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stop":"x"}"#,
    )
    .unwrap();
    assert_eq!(ir.max_output_tokens, Some(5));
    assert_eq!(ir.stop, ["x"]);
    let err = parse_request(br#"{"model":"m","messages":[{"role":"wizard","content":"hi"}]}"#)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("messages[0]: unsupported role `wizard`"),
        "{err}"
    );
    assert!(parse_request(br#"{"messages":[]}"#).is_err());
    let err = parse_request(
        br#"{"model":"m","messages":[{"role":"tool","tool_call_id":"c","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("tool message's content parts must be text"),
        "{err}"
    );
}

#[test]
fn what_openai_cannot_carry_is_reported() {
    let mut ir = parse_request(&fixture("request_multiturn_tools.json")).unwrap();
    ir.messages[6].content.insert(
        0,
        Block::Thinking {
            text: "hmm".into(),
            signature: Some("sig".into()),
        },
    );
    ir.sampling.top_k = Some(40);
    ir.ext
        .anthropic
        .insert("container".into(), Value::from("c1"));
    let mut loss = LossReport::default();
    write_request(&ir, &mut loss);
    assert_eq!(
        loss.dropped,
        ["messages[6].content[0]", "top_k", "anthropic.container"]
    );
}

#[test]
fn responses_round_trip() {
    for name in ["response_tool_calls.json", "response_text_citations.json"] {
        let body = fixture(name);
        let ir = parse_response(&body).unwrap();
        let mut loss = LossReport::default();
        let out = write_response(&ir, 0, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json(&out), json(&body), "{name}");
    }
}

#[test]
fn response_usage_and_stop_reasons() {
    let ir = parse_response(&fixture("response_tool_calls.json")).unwrap();
    assert_eq!(ir.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(
        (ir.usage.input, ir.usage.cache_read, ir.usage.output),
        (93, 1024, 46)
    );
    assert_eq!(ir.content.len(), 2);
    let ir = parse_response(&fixture("response_text_citations.json")).unwrap();
    assert_eq!(ir.stop_reason, Some(StopReason::MaxTokens));
    assert_eq!(ir.usage.reasoning, 640);
    let Block::Text { citations, .. } = &ir.content[0] else {
        panic!("text")
    };
    assert_eq!(
        citations[0].source.as_deref(),
        Some("https://example.com/busbar")
    );
}
