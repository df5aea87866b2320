//! Gemini generateContent through the IR: documented shapes round-trip with an empty loss report
//! (thought signatures on function calls, on the part after the thoughts and on parts of their
//! own; upper-case schemas; tool layouts; safety settings and ratings; citations; grounding;
//! usage with cached, thought and tool-use tokens); snake_case bodies mean the same as camelCase
//! ones; minted function-call ids pair calls with responses and never go back to Gemini; and
//! the cross pairs with OpenAI Chat and Anthropic carry what both sides can express, in the
//! target's own shape, and name the rest.

mod common;
use common::*;

use busbar_codec::ir::{
    Block, LossReport, Media, ReasoningEffort, Request, ResponseFormat, Role, StopReason, Tool,
    ToolChoice,
};
use busbar_codec::{anthropic, gemini, openai};
use serde_json::{Value, json};

const REQUESTS: &[&str] = &[
    "request_multiturn_tools.json",
    "request_media_json_schema.json",
    "request_tool_layout.json",
];
const RESPONSES: &[&str] = &[
    "response_function_call.json",
    "response_text_citations.json",
    "response_grounding.json",
    "response_prompt_blocked.json",
    "response_max_tokens_no_parts.json",
];

fn request(name: &str) -> Request {
    gemini::parse_request(&fixture("gemini", name), "models/gemini-2.5-flash").unwrap()
}

fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn has(loss: &LossReport, path: &str) -> bool {
    loss.dropped.iter().any(|d| d == path)
}

#[test]
fn every_fixture_round_trips_losslessly() {
    for name in REQUESTS {
        let body = fixture("gemini", name);
        let ir = gemini::parse_request(&body, "models/gemini-2.5-flash").unwrap();
        assert_eq!(ir.model, "gemini-2.5-flash", "models/ is stripped");
        let mut loss = LossReport::default();
        let out = gemini::write_request(&ir, &mut loss);
        assert!(loss.is_empty(), "{name}: {loss:?}");
        assert_eq!(json_of(&out), json_of(&body), "{name}");
    }
    for name in RESPONSES {
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
    let camel = request("request_multiturn_tools.json");
    let snake = request("request_snake_case.json");
    assert_eq!(snake, camel);
    let r = snake.reasoning.as_ref().unwrap();
    assert_eq!(
        (r.include_thoughts, r.budget_tokens),
        (Some(true), Some(1024))
    );
    // The writer speaks camelCase: the snake body comes back as its camelCase twin.
    let mut loss = LossReport::default();
    let out = gemini::write_request(&snake, &mut loss);
    assert_eq!(
        json_of(&out),
        json_of(&fixture("gemini", "request_multiturn_tools.json"))
    );

    let camel = gemini::parse_response(&fixture("gemini", "response_function_call.json")).unwrap();
    let snake = gemini::parse_response(&fixture("gemini", "response_snake_case.json")).unwrap();
    assert_eq!(snake, camel);
    // User data keeps its spelling: function arguments are never rewritten.
    let body = br#"{"contents": [{"role": "model", "parts": [{"function_call": {"name": "f", "args": {"user_id": 7}}}]}]}"#;
    let ir = gemini::parse_request(body, "m").unwrap();
    assert!(
        matches!(&ir.messages[0].content[0], Block::ToolUse { input, .. } if input == &json!({"user_id": 7}))
    );
}

#[test]
fn typed_homes_for_gemini_fields() {
    let ir = request("request_multiturn_tools.json");
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
    assert_eq!(
        (id0.as_str(), id1.as_str()),
        ("gcall_1_1", "gcall_1_2"),
        "minted from the position"
    );
    // The responses pair with the calls, by name and in order.
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
    let Block::ToolResult {
        tool_use_id,
        content,
        ..
    } = &ir.messages[2].content[1]
    else {
        panic!("result")
    };
    assert_eq!(tool_use_id, id1);
    assert!(
        matches!(&content[0], Block::Text { text, .. } if json_of(text.as_bytes()) == json_of(br#"{"temperature_c": 11, "conditions": "cloudy"}"#))
    );
    // A signature on a text part: a signature-only thinking block right before it.
    assert!(
        matches!(&ir.messages[3].content[0], Block::Thinking { text, signature: Some(s) } if text.is_empty() && s == "EpwBCpkBAdHtim9sig==")
    );
    assert!(matches!(&ir.messages[3].content[1], Block::Text { .. }));
    // Upper-case schema became JSON Schema; parametersJsonSchema is taken as it is.
    let p = &ir.tools[0].parameters;
    assert_eq!(p["type"], "object");
    assert_eq!(p["properties"]["unit"]["type"], json!(["string", "null"]));
    assert_eq!(p["properties"]["days"]["items"]["type"], "integer");
    assert_eq!(ir.tools[1].parameters["additionalProperties"], false);
    assert_eq!(
        ir.tool_choice,
        Some(ToolChoice::Tool("get_current_weather".into()))
    );
    assert_eq!(ir.safety.len(), 2);
    assert_eq!(ir.safety[1].category, "HARM_CATEGORY_DANGEROUS_CONTENT");
    assert_eq!(ir.safety[1].method.as_deref(), Some("SEVERITY"));
    let s = &ir.sampling;
    assert_eq!(
        (s.top_k, s.seed, s.candidates),
        (Some(10), Some(42), Some(1))
    );
    assert_eq!((s.temperature, s.top_p), (Some(1.0), Some(0.8)));
    assert_eq!(
        (s.presence_penalty, s.frequency_penalty),
        (Some(0.5), Some(0.25))
    );
    assert_eq!(ir.max_output_tokens, Some(800));
    assert_eq!(ir.stop, ["Title"]);
    assert_eq!(ir.ext.gemini["cachedContent"], "cachedContents/abc123");
    assert_eq!(
        ir.ext.gemini["labels"],
        json!({"team": "travel", "cost_center": "cc_42"})
    );
    assert_eq!(ir.ext.gemini["tools"], json!([{"googleSearch": {}}]));
    assert_eq!(
        ir.ext.gemini["generationConfig"],
        json!({"responseLogprobs": false})
    );

    let ir = request("request_media_json_schema.json");
    let c = &ir.messages[0].content;
    assert!(
        matches!(&c[1], Block::Image { source: Media::Base64 { media_type, .. }, .. } if media_type == "image/jpeg")
    );
    assert!(
        matches!(&c[2], Block::Document { source: Media::Url { url, .. }, .. } if url.ends_with("report-2024"))
    );
    assert!(
        matches!(&c[3], Block::Image { source: Media::Url { url, .. }, .. } if url.starts_with("gs://"))
    );
    assert!(matches!(
        &c[4],
        Block::Audio {
            source: Media::Base64 { .. }
        }
    ));
    assert!(
        matches!(&c[5], Block::Raw { value, .. } if value["executableCode"]["language"] == "PYTHON")
    );
    assert!(
        matches!(&ir.response_format, Some(ResponseFormat::JsonSchema { schema, .. }) if schema["required"] == json!(["caption"]))
    );
    assert_eq!(
        ir.reasoning.as_ref().unwrap().enabled,
        Some(false),
        "thinkingBudget 0 is thinking off"
    );

    let ir = request("request_tool_layout.json");
    assert_eq!(
        ir.messages[0].role,
        Role::User,
        "a content without a role is the user's"
    );
    let Block::ToolUse { id, input, .. } = &ir.messages[1].content[0] else {
        panic!()
    };
    assert_eq!(id, "fc_7f3a", "a real Gemini id is kept");
    assert_eq!(input["limit"], 3);
    assert!(
        matches!(&ir.messages[1].content[1], Block::ToolUse { input, .. } if input == &json!({}))
    );
    let Block::ToolResult {
        tool_use_id,
        content,
        ..
    } = &ir.messages[2].content[0]
    else {
        panic!()
    };
    assert_eq!(tool_use_id, "fc_7f3a");
    assert!(
        matches!(&content[1], Block::Image { .. }),
        "functionResponse.parts media"
    );
    let Block::ToolResult {
        tool_use_id,
        is_error,
        content,
        ..
    } = &ir.messages[2].content[1]
    else {
        panic!()
    };
    assert_eq!(
        tool_use_id, "gcall_1_1",
        "paired by name with the call that had no id"
    );
    assert!(*is_error);
    assert!(matches!(&content[0], Block::Text { text, .. } if text == "clock service unavailable"));
    assert!(
        matches!(&ir.messages[2].content[2], Block::Raw { .. }),
        "willContinue has no IR home"
    );
    let last = &ir.messages[3].content;
    assert!(
        matches!(&last[2], Block::Thinking { text, signature: Some(s) } if text.is_empty() && s == "CiUBVKhc7iXkW0Q=")
    );
    assert!(
        matches!(&last[5], Block::Thinking { text, signature: Some(s) } if text.is_empty() && s == "Eq0CCqoCAdHtim9k")
    );
    assert!(
        matches!(&ir.messages[4].content[1], Block::Raw { .. }),
        "videoMetadata keeps the part raw"
    );
    assert_eq!(ir.tools.len(), 3);
    assert_eq!(
        ir.tools[1].parameters,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        ir.tools[0].parameters["properties"]["limit"]["type"],
        "integer"
    );
    assert_eq!(ir.tool_choice, None, "VALIDATED has no IR home");
    assert_eq!(
        ir.ext.gemini["toolConfig"]["functionCallingConfig"]["mode"],
        "VALIDATED"
    );
    let Some(ResponseFormat::JsonSchema { schema, .. }) = &ir.response_format else {
        panic!()
    };
    assert_eq!(
        schema["items"]["properties"]["date"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        ir.reasoning.as_ref().unwrap().effort,
        Some(ReasoningEffort::High)
    );

    let r = gemini::parse_response(&fixture("gemini", "response_function_call.json")).unwrap();
    assert_eq!(
        r.stop_reason,
        Some(StopReason::ToolUse),
        "STOP with calls is a tool use"
    );
    assert_eq!(
        (r.id.as_str(), r.model.as_str()),
        ("mWJSaNzRB9qTz7IP4fKO0Q8", "gemini-2.5-flash")
    );
    let u = &r.usage;
    assert_eq!(
        (u.input, u.cache_read, u.output, u.reasoning),
        (56, 64, 95, 65)
    );
    assert!(
        matches!(&r.content[1], Block::ToolUse { id, thought_signature: Some(_), .. } if id == "gcall_mWJSaNzRB9qTz7IP4fKO0Q8_1")
    );
    assert_eq!(r.safety[1].probability, "LOW");

    let r = gemini::parse_response(&fixture("gemini", "response_text_citations.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
    assert!(r.safety[1].blocked);
    assert!(
        matches!(&r.content[0], Block::Thinking { text, signature: Some(s) } if text.is_empty() && s == "Eq0CCqoCAdHtim8=")
    );
    let Block::Text { citations, .. } = &r.content[1] else {
        panic!("text")
    };
    assert_eq!(
        citations[0].source.as_deref(),
        Some("https://en.wikipedia.org/wiki/Chlorophyll")
    );
    assert_eq!(citations[0].raw["license"], "CC-BY-SA");

    let r = gemini::parse_response(&fixture("gemini", "response_grounding.json")).unwrap();
    let u = &r.usage;
    assert_eq!(
        (u.input, u.cache_read, u.output, u.reasoning),
        (72, 2048, 191, 150)
    );
    assert!(r.ext.gemini.contains_key("candidates[0].groundingMetadata"));
    assert!(r.ext.gemini.contains_key("candidates[1..]"));
    assert_eq!(r.stop_reason, Some(StopReason::EndTurn));

    let r = gemini::parse_response(&fixture("gemini", "response_prompt_blocked.json")).unwrap();
    assert_eq!(
        r.stop_reason,
        Some(StopReason::ContentFilter),
        "blockReason"
    );
    assert!(r.content.is_empty());
    assert_eq!(r.usage.input, 7);

    let r =
        gemini::parse_response(&fixture("gemini", "response_max_tokens_no_parts.json")).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
    assert_eq!((r.usage.output, r.usage.reasoning), (99, 99));
}

#[test]
fn every_finish_reason_maps_and_round_trips() {
    let filtered = [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    ];
    let other = [
        "LANGUAGE",
        "OTHER",
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "FINISH_REASON_UNSPECIFIED",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    ];
    let mut cases = vec![
        ("STOP", StopReason::EndTurn),
        ("MAX_TOKENS", StopReason::MaxTokens),
    ];
    cases.extend(filtered.iter().map(|f| (*f, StopReason::ContentFilter)));
    cases.extend(other.iter().map(|f| (*f, StopReason::Other(f.to_string()))));
    for (reason, ir) in cases {
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
        // Both other clients get their own vocabulary.
        let mut loss = LossReport::default();
        let a = value(&anthropic::write_response(&r, &mut loss));
        let o = value(&openai::write_response(&r, 1, &mut loss));
        if ir == StopReason::ContentFilter {
            assert_eq!(
                (
                    a["stop_reason"].as_str(),
                    o["choices"][0]["finish_reason"].as_str()
                ),
                (Some("refusal"), Some("content_filter")),
                "{reason}"
            );
        }
    }
    // From other protocols' stop reasons.
    for (stop, want) in [
        (StopReason::StopSequence(Some("END".into())), "STOP"),
        (StopReason::ToolUse, "STOP"),
        (StopReason::Refusal, "SAFETY"),
        (StopReason::ContextExceeded, "MAX_TOKENS"),
        (StopReason::Other("function_call".into()), "OTHER"),
    ] {
        let r = busbar_codec::ir::Response {
            stop_reason: Some(stop.clone()),
            ..Default::default()
        };
        let mut loss = LossReport::default();
        let out = value(&gemini::write_response(&r, &mut loss));
        assert_eq!(out["candidates"][0]["finishReason"], want, "{stop:?}");
        assert_eq!(
            has(&loss, "stop_reason"),
            want == "OTHER",
            "{stop:?}: {loss:?}"
        );
    }
}

#[test]
fn every_tool_choice_form() {
    let forms = [
        (
            json!({"mode": "AUTO"}),
            Some(ToolChoice::Auto),
            json!("auto"),
            json!({"type": "auto"}),
        ),
        (
            json!({"mode": "NONE"}),
            Some(ToolChoice::None),
            json!("none"),
            json!({"type": "none"}),
        ),
        (
            json!({"mode": "ANY"}),
            Some(ToolChoice::Required),
            json!("required"),
            json!({"type": "any"}),
        ),
        (
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
            Some(ToolChoice::Tool("f".into())),
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
        (
            json!({"mode": "ANY", "allowedFunctionNames": ["f", "g"]}),
            None,
            Value::Null,
            Value::Null,
        ),
        (json!({"mode": "VALIDATED"}), None, Value::Null, Value::Null),
    ];
    for (config, ir, oa, an) in forms {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {}}},
                                                {"name": "g", "parameters": {"type": "OBJECT", "properties": {}}}]}],
            "toolConfig": {"functionCallingConfig": config}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let req = gemini::parse_request(&bytes, "m").unwrap();
        assert_eq!(req.tool_choice, ir, "{config}");
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&gemini::write_request(&req, &mut loss)),
            json_of(&bytes)
        );
        assert!(loss.is_empty());
        let mut loss = LossReport::default();
        let o = value(&openai::write_request(&req, &mut loss));
        let a = value(&anthropic::write_request(&req, 1024, &mut loss));
        if ir.is_some() {
            assert_eq!(
                (&o["tool_choice"], &a["tool_choice"]),
                (&oa, &an),
                "{config}"
            );
        } else {
            assert!(has(&loss, "gemini.toolConfig"), "{config}: {loss:?}");
        }
        // And back from OpenAI.
        if !oa.is_null() {
            let mut o = o.clone();
            o["tool_choice"] = oa.clone();
            let from = openai::parse_request(&serde_json::to_vec(&o).unwrap()).unwrap();
            let mut loss = LossReport::default();
            let g = value(&gemini::write_request(&from, &mut loss));
            assert_eq!(g["toolConfig"]["functionCallingConfig"], config);
        }
    }
}

#[test]
fn gemini_request_to_openai_and_anthropic() {
    let ir = request("request_multiturn_tools.json");
    let mut loss = LossReport::default();
    let out = value(&openai::write_request(&ir, &mut loss));
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "You are a concise travel assistant."})
    );
    assert_eq!(
        out["tools"][0]["function"]["parameters"]["properties"]["location"]["type"], "string",
        "schema lower-cased"
    );
    assert_eq!(
        out["tools"][0]["function"]["parameters"]["properties"]["unit"]["type"],
        json!(["string", "null"])
    );
    let calls = &out["messages"][2]["tool_calls"];
    assert_eq!(
        calls.as_array().unwrap().len(),
        2,
        "parallel calls stay parallel"
    );
    assert_eq!(calls[0]["id"], "gcall_1_1");
    assert_eq!(
        out["messages"][3]["tool_call_id"], calls[0]["id"],
        "minted ids pair up"
    );
    assert_eq!(out["messages"][4]["tool_call_id"], calls[1]["id"]);
    assert_eq!(out["messages"][3]["content"], "4 C, light rain");
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "get_current_weather"}})
    );
    assert_eq!(
        (&out["temperature"], &out["seed"], &out["n"]),
        (&json!(1.0), &json!(42), &json!(1))
    );
    assert_eq!(out["stop"], json!(["Title"]));
    for f in [
        "safety_settings",
        "gemini.cachedContent",
        "gemini.labels",
        "gemini.tools",
        "gemini.generationConfig",
        "top_k",
    ] {
        assert!(has(&loss, f), "{f} not reported: {:?}", loss.dropped);
    }

    let mut loss = LossReport::default();
    let out = value(&anthropic::write_request(&ir, 4096, &mut loss));
    assert_eq!(out["system"], "You are a concise travel assistant.");
    // maxOutputTokens 800 under a 1024 thinking budget: Anthropic wants the budget below
    // max_tokens, so the answer keeps its 800 on top of it.
    assert_eq!(
        (&out["top_k"], &out["max_tokens"]),
        (&json!(10), &json!(1024 + 800))
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(
        out["tools"][0]["input_schema"]["properties"]["days"]["items"]["type"],
        "integer"
    );
    let blocks = &out["messages"][1]["content"];
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[1]["type"], "tool_use");
    assert_eq!(blocks[1]["id"], "gcall_1_1");
    let results = &out["messages"][2]["content"];
    assert_eq!(
        (&results[0]["tool_use_id"], &results[1]["tool_use_id"]),
        (&blocks[1]["id"], &blocks[2]["id"])
    );
    // The text-part signature reaches the Anthropic client as a signed, empty thinking block.
    assert_eq!(
        out["messages"][3]["content"][0],
        json!({"type": "thinking", "thinking": "", "signature": "EpwBCpkBAdHtim9sig=="})
    );
    assert!(has(&loss, "safety_settings"), "{:?}", loss.dropped);
    assert!(
        loss.dropped.iter().any(|d| d.contains("thought_signature")),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn openai_and_anthropic_requests_to_gemini() {
    let ir = openai::parse_request(&fixture("openai", "request_multiturn_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = value(&gemini::write_request(&ir, &mut loss));
    assert!(out.get("model").is_none(), "the model goes in the URL");
    assert_eq!(
        out["systemInstruction"]["parts"],
        json!([{"text": "You are a weather assistant."}, {"text": "Answer briefly."}])
    );
    // `additionalProperties` is not in the Gemini subset: the schema goes as JSON Schema.
    let decl = &out["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["parametersJsonSchema"]["additionalProperties"], false);
    assert!(decl.get("parameters").is_none());
    assert_eq!(
        out["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
    );
    let contents = out["contents"].as_array().unwrap();
    let model = &contents[1];
    assert_eq!(model["role"], "model");
    assert_eq!(
        model["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}, "id": "call_abc123"}),
        "a foreign id is kept"
    );
    // Both tool messages answer in one user turn, the name found from the call's id.
    assert_eq!(
        contents[2]["parts"],
        json!([
        {"functionResponse": {"name": "get_weather", "response": {"temperature": 18}, "id": "call_abc123"}},
        {"functionResponse": {"name": "get_weather", "response": {"temperature": 21}, "id": "call_def456"}}])
    );
    let g = &out["generationConfig"];
    assert_eq!(
        (
            &g["temperature"],
            &g["topP"],
            &g["seed"],
            &g["candidateCount"]
        ),
        (&json!(0.2), &json!(0.9), &json!(42), &json!(1))
    );
    assert_eq!(
        (&g["maxOutputTokens"], &g["stopSequences"]),
        (&json!(1024), &json!(["\n\n", "END"]))
    );
    for f in [
        "user",
        "tools[0].strict",
        "messages[2].name",
        "messages[2].content[1].detail",
        "openai.logit_bias",
    ] {
        assert!(has(&loss, f), "{f} not reported: {:?}", loss.dropped);
    }

    let ir =
        anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = value(&gemini::write_request(&ir, &mut loss));
    assert!(out["systemInstruction"]["parts"][0]["text"].is_string());
    let t = &out["generationConfig"]["thinkingConfig"];
    assert_eq!(
        t["includeThoughts"], true,
        "thinking switched on is thinking shown"
    );
    assert!(t["thinkingBudget"].as_i64().unwrap() > 0);
    let parts: Vec<&Value> = out["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .collect();
    // The fixture's signature is a shortened doc example (53 characters: not base64), which
    // Gemini's `bytes` field would refuse: the thought goes, its signature is reported.
    assert!(
        parts.iter().any(|p| p["thought"] == true
            && p["text"] == "The user wants the weather; I should call the tool."
            && p.get("thoughtSignature").is_none()),
        "{parts:?}"
    );
    assert!(
        has(&loss, "messages[1].content[0].signature"),
        "{:?}",
        loss.dropped
    );
    // A tool result without a name anywhere: its id stands in, and that is reported.
    assert!(
        has(&loss, "messages[2].content[1].name"),
        "{:?}",
        loss.dropped
    );
    assert!(
        parts
            .iter()
            .all(|p| p.get("functionCall").is_none_or(|c| c.get("id").is_some())),
        "Anthropic ids are kept"
    );
    assert!(
        loss.dropped.iter().any(|d| d.ends_with("cache_control")),
        "{:?}",
        loss.dropped
    );
}

#[test]
fn schemas_go_out_in_the_spelling_that_can_say_them() {
    let tool = |name: &str, parameters: Value| Tool {
        name: name.into(),
        description: None,
        parameters,
        strict: None,
        cache: None,
    };
    let mut ir = Request {
        model: "m".into(),
        tools: vec![
            tool(
                "plain",
                json!({"type": "object", "properties": {"q": {"type": ["string", "null"], "maxLength": 9}}, "required": ["q"]}),
            ),
            tool(
                "refs",
                json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "string"}}}),
            ),
        ],
        response_format: Some(ResponseFormat::JsonSchema {
            name: Some("answer".into()),
            description: None,
            schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            strict: Some(true),
        }),
        ..Request::default()
    };
    let mut loss = LossReport::default();
    let out = value(&gemini::write_request(&ir, &mut loss));
    let decls = &out["tools"][0]["functionDeclarations"];
    assert_eq!(
        decls[0]["parameters"],
        json!({"type": "OBJECT", "properties": {"q": {"type": "STRING", "nullable": true, "maxLength": 9}}, "required": ["q"]})
    );
    assert_eq!(decls[1]["parametersJsonSchema"], ir.tools[1].parameters);
    assert_eq!(
        out["generationConfig"]["responseSchema"],
        json!({"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}})
    );
    assert_eq!(
        out["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        loss.dropped,
        ["response_format.name", "response_format.strict"]
    );
    // And back: the upper-case schema is the same JSON Schema again.
    let back = gemini::parse_request(&serde_json::to_vec(&out).unwrap(), "m").unwrap();
    assert_eq!(back.tools[0].parameters, ir.tools[0].parameters);
    assert_eq!(back.tools[1].parameters, ir.tools[1].parameters);
    ir.response_format = Some(ResponseFormat::JsonSchema {
        name: None,
        description: None,
        schema: json!({"oneOf": [{"type": "string"}]}),
        strict: None,
    });
    let out = value(&gemini::write_request(&ir, &mut LossReport::default()));
    assert_eq!(
        out["generationConfig"]["responseJsonSchema"],
        json!({"oneOf": [{"type": "string"}]})
    );
    // The public converters.
    let g = json!({"type": "ARRAY", "items": {"type": "NUMBER", "nullable": true}});
    let j = gemini::to_json_schema(&g);
    assert_eq!(
        j,
        json!({"type": "array", "items": {"type": ["number", "null"]}})
    );
    assert!(gemini::fits_gemini(&j));
    assert_eq!(
        gemini::to_gemini_schema(&j, "s", &mut LossReport::default()),
        g
    );
}

#[test]
fn minted_ids_and_signatures_survive_a_trip_through_other_clients() {
    // A Gemini response reaches an Anthropic client, which sends the history back.
    let r = gemini::parse_response(&fixture("gemini", "response_function_call.json")).unwrap();
    let mut loss = LossReport::default();
    let a = value(&anthropic::write_response(&r, &mut loss));
    let call = &a["content"][1];
    assert_eq!(call["id"], "gcall_mWJSaNzRB9qTz7IP4fKO0Q8_1");
    let next = json!({"model": "claude", "max_tokens": 100, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": a["content"]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": "4 C"},
            {"type": "tool_result", "tool_use_id": a["content"][2]["id"], "content": "11 C", "is_error": true}]}]});
    let ir = anthropic::parse_request(&serde_json::to_vec(&next).unwrap()).unwrap();
    let out = value(&gemini::write_request(&ir, &mut LossReport::default()));
    let model = &out["contents"][1]["parts"];
    assert_eq!(
        model[1]["functionCall"],
        json!({"name": "get_current_weather", "args": {"location": "Boston, MA"}}),
        "minted ids never go to Gemini"
    );
    let user = &out["contents"][2]["parts"];
    assert_eq!(
        user[0],
        json!({"functionResponse": {"name": "get_current_weather", "response": {"output": "4 C"}}}),
        "name looked up by id"
    );
    assert_eq!(
        user[1]["functionResponse"]["response"],
        json!({"error": "11 C"})
    );

    // A signature on a text part: Anthropic client -> signed empty thinking -> back on the text.
    let r = gemini::parse_response(&fixture("gemini", "response_text_citations.json")).unwrap();
    let a = value(&anthropic::write_response(&r, &mut LossReport::default()));
    assert_eq!(
        a["content"][0],
        json!({"type": "thinking", "thinking": "", "signature": "Eq0CCqoCAdHtim8="})
    );
    let next = json!({"model": "claude", "max_tokens": 100, "messages": [
        {"role": "user", "content": "why is grass green?"},
        {"role": "assistant", "content": [a["content"][0].clone(), {"type": "text", "text": "Chlorophyll."}]},
        {"role": "user", "content": "thanks"}]});
    let ir = anthropic::parse_request(&serde_json::to_vec(&next).unwrap()).unwrap();
    let out = value(&gemini::write_request(&ir, &mut LossReport::default()));
    assert_eq!(
        out["contents"][1]["parts"],
        json!([{"text": "Chlorophyll.", "thoughtSignature": "Eq0CCqoCAdHtim8="}])
    );
}

#[test]
fn responses_cross_both_ways() {
    let r = gemini::parse_response(&fixture("gemini", "response_function_call.json")).unwrap();
    let mut loss = LossReport::default();
    let out = value(&anthropic::write_response(&r, &mut loss));
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"][0]["type"], "thinking");
    assert_eq!(
        out["content"][0]["thinking"],
        "I should look up both cities."
    );
    assert_eq!(out["content"][1]["type"], "tool_use");
    assert_eq!(
        out["content"][1]["input"],
        json!({"location": "Boston, MA"})
    );
    assert_eq!(
        (
            &out["usage"]["input_tokens"],
            &out["usage"]["cache_read_input_tokens"],
            &out["usage"]["output_tokens"]
        ),
        (&json!(56), &json!(64), &json!(95))
    );
    assert_eq!(out["model"], "gemini-2.5-flash");
    for f in [
        "safety_ratings",
        "gemini.candidates[0].avgLogprobs",
        "gemini.usageMetadata",
    ] {
        assert!(has(&loss, f), "{f}: {:?}", loss.dropped);
    }
    let mut loss = LossReport::default();
    let out = value(&openai::write_response(&r, 1, &mut loss));
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][1]["function"]["name"],
        "get_current_weather"
    );
    assert_eq!(
        out["usage"]["completion_tokens_details"]["reasoning_tokens"],
        65
    );
    assert_eq!(out["usage"]["prompt_tokens"], 120);

    let r = gemini::parse_response(&fixture("gemini", "response_grounding.json")).unwrap();
    let mut loss = LossReport::default();
    value(&openai::write_response(&r, 1, &mut loss));
    for f in [
        "gemini.candidates[0].groundingMetadata",
        "gemini.candidates[0].logprobsResult",
        "gemini.candidates[1..]",
    ] {
        assert!(has(&loss, f), "{f}: {:?}", loss.dropped);
    }

    let a = anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json"))
        .unwrap();
    let mut loss = LossReport::default();
    let out = value(&gemini::write_response(&a, &mut loss));
    let cand = &out["candidates"][0];
    let parts = &cand["content"]["parts"];
    assert_eq!(cand["content"]["role"], "model");
    assert_eq!(parts[0]["thought"], true);
    assert_eq!(
        parts[0]["thoughtSignature"],
        "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL"
    );
    assert_eq!(
        parts[1],
        json!({"text": "According to the report, the grass is green."})
    );
    assert_eq!(
        parts[2]["functionCall"],
        json!({"name": "get_weather", "args": {"location": "San Francisco, CA"}, "id": "toolu_01A09q90qw90lq917835lq9"}),
        "a real id is kept"
    );
    assert_eq!(cand["finishReason"], "STOP");
    assert!(cand.get("citationMetadata").is_none());
    let u = &out["usageMetadata"];
    assert_eq!(
        u["promptTokenCount"],
        2095 + 1024 + 512,
        "every prompt token, cache writes too"
    );
    assert_eq!(
        (
            &u["cachedContentTokenCount"],
            &u["candidatesTokenCount"],
            &u["totalTokenCount"]
        ),
        (&json!(1024), &json!(503), &json!(2095 + 1024 + 512 + 503))
    );
    assert_eq!(
        (&out["modelVersion"], &out["responseId"]),
        (
            &json!("claude-sonnet-4-5-20250929"),
            &json!("msg_01Aq9w938a90dw8q")
        )
    );
    for f in ["usage.cache_write", "content[1].citations"] {
        assert!(has(&loss, f), "{f}: {:?}", loss.dropped);
    }

    let o = openai::parse_response(&fixture("openai", "response_tool_calls.json")).unwrap();
    let mut loss = LossReport::default();
    let out = value(&gemini::write_response(&o, &mut loss));
    let parts = out["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert!(
        parts.iter().all(|p| p["functionCall"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_"))),
        "{parts:?}"
    );
    assert_eq!(out["candidates"][0]["finishReason"], "STOP");
    assert!(out["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    for (body, says) in [
        (&b"[]"[..], "object"),
        (b"nope", ""),
        (b"{\"contents\": 3}", "contents"),
        (
            b"{\"contents\": [{\"role\": \"robot\"}]}",
            "contents[0].role",
        ),
        (
            b"{\"contents\": [{\"role\": \"user\", \"parts\": {}}]}",
            "contents[0].parts",
        ),
        (
            b"{\"contents\": [{\"role\": \"user\", \"parts\": [7]}]}",
            "contents[0].parts[0]",
        ),
        (
            b"{\"tools\": [{\"functionDeclarations\": [{}]}]}",
            "tools[0].functionDeclarations[0]",
        ),
        (
            b"{\"generationConfig\": {\"temperature\": \"hot\"}}",
            "generationConfig.temperature",
        ),
        (
            b"{\"generationConfig\": {\"stopSequences\": [1]}}",
            "generationConfig.stopSequences",
        ),
        (
            b"{\"safetySettings\": [{\"category\": \"X\"}]}",
            "safetySettings[0]",
        ),
        (
            b"{\"systemInstruction\": {\"parts\": 1}}",
            "systemInstruction.parts",
        ),
        (b"{\"_tools\": []}", "_tools"),
    ] {
        let err = gemini::parse_request(body, "m").unwrap_err();
        let msg = format!("{err:?}");
        assert!(
            msg.contains(says),
            "{}: {msg}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(gemini::parse_request(b"{}", "").is_err(), "no model");
    assert!(gemini::parse_request(b"{}", "models/").is_err(), "no model");
    for body in [
        &b"{\"candidates\": 1}"[..],
        b"{\"candidates\": [3]}",
        b"{\"candidates\": [{\"content\": {\"parts\": 1}}]}",
        b"{\"usageMetadata\": []}",
        b"{\"candidates[1..]\": []}",
        b"[",
    ] {
        assert!(
            gemini::parse_response(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn every_tool_choice_form_round_trips() {
    for (config, want) in [
        (json!({"mode": "AUTO"}), ToolChoice::Auto),
        (json!({"mode": "NONE"}), ToolChoice::None),
        (json!({"mode": "ANY"}), ToolChoice::Required),
        (
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
            ToolChoice::Tool("f".into()),
        ),
    ] {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {}}}]}],
            "toolConfig": {"functionCallingConfig": config}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let ir = gemini::parse_request(&bytes, "m").unwrap();
        assert_eq!(ir.tool_choice.as_ref(), Some(&want));
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&gemini::write_request(&ir, &mut loss)),
            json_of(&bytes)
        );
        assert!(loss.is_empty());
    }
    // Several allowed names have no IR form: kept for Gemini, reported elsewhere.
    let body = br#"{"contents":[],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["a","b"]}}}"#;
    let ir = gemini::parse_request(body, "m").unwrap();
    assert_eq!(ir.tool_choice, None);
    let mut loss = LossReport::default();
    openai::write_request(&ir, &mut loss);
    assert_eq!(loss.dropped, ["gemini.toolConfig"]);
}

/// What google-genai reads from a response (`candidates[].content.parts`, `finishReason`,
/// `usageMetadata`, `modelVersion`, `responseId`) is there, in its types, when the response
/// came from another protocol. The bodies are also left in `CARGO_TARGET_TMPDIR/gemini_sdk/`
/// so the SDK itself can be pointed at them (`GenerateContentResponse.model_validate_json`).
#[test]
fn cross_responses_have_what_the_sdk_reads() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gemini_sdk");
    std::fs::create_dir_all(&dir).unwrap();
    let sources = [
        (
            "from_anthropic",
            anthropic::parse_response(&fixture("anthropic", "response_thinking_tool_use.json")),
        ),
        (
            "from_anthropic_stop_sequence",
            anthropic::parse_response(&fixture("anthropic", "response_stop_sequence.json")),
        ),
        (
            "from_openai_tools",
            openai::parse_response(&fixture("openai", "response_tool_calls.json")),
        ),
        (
            "from_openai_citations",
            openai::parse_response(&fixture("openai", "response_text_citations.json")),
        ),
    ];
    for (name, ir) in sources {
        let ir = ir.unwrap();
        let out = gemini::write_response(&ir, &mut LossReport::default());
        std::fs::write(dir.join(format!("{name}.json")), &out).unwrap();
        let v = value(&out);
        let cand = &v["candidates"][0];
        assert_eq!(cand["content"]["role"], "model", "{name}");
        let parts = cand["content"]["parts"].as_array().unwrap();
        assert!(!parts.is_empty(), "{name}");
        for p in parts {
            let p = p.as_object().unwrap();
            assert!(
                ["text", "functionCall", "inlineData", "fileData"]
                    .iter()
                    .any(|k| p.contains_key(*k)),
                "{name}: {p:?}"
            );
            if let Some(c) = p.get("functionCall") {
                assert!(c["name"].is_string() && c["args"].is_object(), "{name}");
            }
        }
        assert!(cand["finishReason"].is_string(), "{name}");
        let u = &v["usageMetadata"];
        for k in [
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
        ] {
            assert!(u[k].is_u64(), "{name}: {k}");
        }
        assert!(
            v["modelVersion"].is_string() && v["responseId"].is_string(),
            "{name}"
        );
    }
}

#[test]
fn media_cross_both_ways() {
    let ir = request("request_media_json_schema.json");
    let mut loss = LossReport::default();
    let out = value(&openai::write_request(&ir, &mut loss));
    let c = &out["messages"][0]["content"];
    assert_eq!(
        c[1]["image_url"]["url"]
            .as_str()
            .map(|u| u.starts_with("data:image/jpeg;base64,/9j/")),
        Some(true)
    );
    assert_eq!(c[3]["input_audio"]["format"], "mp3");
    // A document by URL and executableCode have no OpenAI form.
    assert_eq!(
        loss.dropped,
        ["messages[0].content[2]", "messages[0].content[5]"]
    );
    let mut loss = LossReport::default();
    let out = value(&anthropic::write_request(&ir, 1024, &mut loss));
    let c = &out["messages"][0]["content"];
    assert_eq!(
        c[0]["text"],
        "Describe this image and summarise the attached report."
    );
    assert_eq!(c[1]["source"]["media_type"], "image/jpeg");
    assert_eq!(
        c[2],
        json!({"type": "document", "source": {"type": "url", "url": "https://generativelanguage.googleapis.com/v1beta/files/report-2024"}})
    );
    assert_eq!(
        loss.dropped,
        [
            "messages[0].content[4]",
            "messages[0].content[5]",
            "response_format"
        ]
    );

    // Anthropic media back to Gemini: base64 and URL sources, MIME types kept or defaulted.
    let a = anthropic::parse_request(&fixture("anthropic", "request_thinking_tools.json")).unwrap();
    let mut loss = LossReport::default();
    let out = value(&gemini::write_request(&a, &mut loss));
    let parts = &out["contents"][0]["parts"];
    assert_eq!(parts[0]["inlineData"]["mimeType"], "image/jpeg");
    assert_eq!(
        parts[1]["fileData"],
        json!({"mimeType": "image/jpeg", "fileUri": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"})
    );
    assert_eq!(parts[2]["inlineData"]["mimeType"], "application/pdf");
}

#[test]
fn reasoning_forms_both_ways() {
    for (config, enabled, budget, effort, anthropic_thinking, openai_effort) in [
        (
            json!({"thinkingBudget": 0}),
            Some(false),
            None,
            None,
            json!({"type": "disabled"}),
            Value::Null,
        ),
        (
            json!({"thinkingBudget": -1, "includeThoughts": true}),
            Some(true),
            None,
            None,
            json!({"type": "enabled", "budget_tokens": 1024}),
            Value::Null,
        ),
        (
            json!({"thinkingBudget": 2048}),
            None,
            Some(2048),
            None,
            json!({"type": "enabled", "budget_tokens": 2048}),
            Value::Null,
        ),
        (
            json!({"thinkingLevel": "low"}),
            None,
            None,
            Some(ReasoningEffort::Low),
            json!({"type": "enabled", "budget_tokens": 2048}),
            json!("low"),
        ),
        (
            json!({"thinkingLevel": "HIGH"}),
            None,
            None,
            Some(ReasoningEffort::High),
            json!({"type": "enabled", "budget_tokens": 24576}),
            json!("high"),
        ),
    ] {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": config}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let ir = gemini::parse_request(&bytes, "m").unwrap();
        let r = ir.reasoning.clone().unwrap();
        assert_eq!(
            (r.enabled, r.budget_tokens, r.effort),
            (enabled, budget, effort),
            "{config}"
        );
        let mut loss = LossReport::default();
        assert_eq!(
            json_of(&gemini::write_request(&ir, &mut loss)),
            json_of(&bytes),
            "{config}"
        );
        assert!(loss.is_empty());
        let a = value(&anthropic::write_request(
            &ir,
            4096,
            &mut LossReport::default(),
        ));
        assert_eq!(
            a.get("thinking").cloned().unwrap_or_default(),
            anthropic_thinking,
            "{config}"
        );
        let o = value(&openai::write_request(&ir, &mut LossReport::default()));
        assert_eq!(
            o.get("reasoning_effort").cloned().unwrap_or_default(),
            openai_effort,
            "{config}"
        );
    }
    // From the others: Anthropic's switch asks for thoughts to be shown; OpenAI's effort is a level.
    let a = br#"{"model": "claude", "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": [{"role": "user", "content": "hi"}]}"#;
    let ir = anthropic::parse_request(a).unwrap();
    let g = value(&gemini::write_request(&ir, &mut LossReport::default()));
    assert_eq!(
        g["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2000, "includeThoughts": true})
    );
    assert_eq!(g["generationConfig"]["maxOutputTokens"], 4096);
    let o = br#"{"model": "o4-mini", "reasoning_effort": "medium", "messages": [{"role": "user", "content": "hi"}]}"#;
    let ir = openai::parse_request(o).unwrap();
    let g = value(&gemini::write_request(&ir, &mut LossReport::default()));
    assert_eq!(
        g["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "medium"})
    );
    // Encrypted reasoning has no Gemini form.
    let mut ir = ir;
    ir.messages.push(busbar_codec::ir::Message {
        role: Role::Assistant,
        content: vec![
            Block::RedactedThinking {
                data: "EmwKAhgBEgy3va3p".into(),
            },
            Block::Text {
                text: "ok".into(),
                citations: vec![],
                cache: None,
            },
        ],
        name: None,
        ext: Default::default(),
    });
    let mut loss = LossReport::default();
    let g = value(&gemini::write_request(&ir, &mut loss));
    assert_eq!(
        g["contents"][1],
        json!({"role": "model", "parts": [{"text": "ok"}]})
    );
    assert_eq!(loss.dropped, ["messages[1].content[0]"]);
}
