//! Provider streams as Cohere and OpenAI document them, through the transcoder to every client
//! protocol and through the passthrough:
//!
//! ```text
//!   cohere/stream_tool_plan_calls.sse          tool plan, two parallel calls, TOOL_CALL
//!   cohere/stream_text_citations.sse           a grounded answer with two tool citations
//!   responses/stream_reasoning_text_call.sse   reasoning summary, text, a function call
//! ```
//!
//! Each stream must end complete (no error event), give the same client bytes however the
//! upstream is cut, and carry its text, tool calls, stop reason and usage in the terms of each
//! client's protocol.

use busbar_codec::Protocol;
use busbar_codec::frame::{eventstream, sse};
use busbar_codec::ir::Usage;
use busbar_codec::stream::Transcoder;
use serde_json::{Value, json};
use std::path::Path;

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn cohere_calls() -> Vec<u8> {
    fixture("cohere", "stream_tool_plan_calls.sse")
}

fn cohere_citations() -> Vec<u8> {
    fixture("cohere", "stream_text_citations.sse")
}

fn responses_stream() -> Vec<u8> {
    fixture("responses", "stream_reasoning_text_call.sse")
}

/// Feeds `parts` in order, then ends the upstream.
fn drive(mut t: Transcoder, parts: &[&[u8]]) -> (Vec<u8>, Transcoder) {
    let mut out = Vec::new();
    for p in parts {
        t.feed(p, &mut out).unwrap();
    }
    t.finish(&mut out);
    (out, t)
}

/// `from`'s stream written for a `to` client that asked for usage.
fn transcode(from: Protocol, to: Protocol, parts: &[&[u8]]) -> (Vec<u8>, Transcoder) {
    drive(Transcoder::new(from, to, 1_700_000_000, true), parts)
}

fn passthrough(p: Protocol, parts: &[&[u8]]) -> (Vec<u8>, Transcoder) {
    drive(Transcoder::passthrough(p, false, false), parts)
}

/// The client's events: (name, JSON). The SSE `event:` field (empty when absent; `[DONE]` as a
/// JSON string), or a Bedrock message's event or exception type.
fn client_events(to: Protocol, bytes: &[u8]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if to == Protocol::Bedrock {
        let mut d = eventstream::Decoder::new(1 << 20);
        d.feed(bytes, |m| {
            let name = m
                .header(":event-type")
                .or(m.header(":exception-type"))
                .unwrap_or_default()
                .to_string();
            out.push((name, serde_json::from_slice(&m.payload).unwrap()));
        })
        .unwrap();
        assert!(!d.is_partial(), "a partial event-stream message");
        return out;
    }
    let mut d = sse::Decoder::new(1 << 20);
    d.feed(bytes, |e| {
        let v = match e.data.as_str() {
            "[DONE]" => json!("[DONE]"),
            data => serde_json::from_str(data).unwrap_or_else(|err| panic!("{err}: {data}")),
        };
        out.push((e.event.unwrap_or_default(), v));
    })
    .unwrap();
    assert!(!d.finish(), "a partial SSE event");
    out
}

/// The stream said it was complete, no error reached the client, and (where the protocol names
/// its events) every event's name is its data's type (a closing `[DONE]` has neither).
fn assert_complete(to: Protocol, t: &Transcoder, out: &[u8]) {
    assert!(t.is_complete(), "{to:?}: not complete");
    assert_eq!(t.error(), None, "{to:?}");
    for (name, v) in client_events(to, out) {
        let failed = match to {
            Protocol::Bedrock => name.ends_with("Exception"),
            Protocol::Cohere => v["delta"]["finish_reason"] == "ERROR",
            Protocol::OpenAiResponses => name == "error" || name == "response.failed",
            _ => name == "error" || v.get("error").is_some_and(|e| !e.is_null()),
        };
        assert!(!failed, "{to:?}: error event {name} {v}");
        let named = matches!(
            to,
            Protocol::Anthropic | Protocol::Cohere | Protocol::OpenAiResponses
        );
        if named && v != "[DONE]" {
            assert_eq!(v["type"], name.as_str(), "{to:?}: {v}");
        }
    }
}

/// The read size of the cut runs (see `reads`).
const STRIDE: usize = 61;

/// Run `offset` of a cut test: `offset` bytes, then `STRIDE` bytes at a time. The runs for
/// offsets `0..STRIDE` together cut the upstream at every byte position (each run at many, so a
/// few dozen runs do the work of one run per position).
fn reads(src: &[u8], offset: usize) -> Vec<&[u8]> {
    let (head, rest) = src.split_at(offset.min(src.len()));
    std::iter::once(head).chain(rest.chunks(STRIDE)).collect()
}

/// Offsets of the runs that cut `src` at every byte position (see `reads`).
fn offsets(src: &[u8]) -> std::ops::Range<usize> {
    0..STRIDE.min(src.len() + 1)
}

/// Feeding `src` cut at every byte position, and one byte at a time, gives the client the same
/// bytes as feeding it whole.
fn assert_every_cut_agrees(from: Protocol, to: Protocol, src: &[u8]) {
    let (whole, _) = transcode(from, to, &[src]);
    for offset in offsets(src) {
        let (cut, _) = transcode(from, to, &reads(src, offset));
        assert!(
            cut == whole,
            "{from:?} -> {to:?}: cut at {offset} + {STRIDE}k differs"
        );
    }
    let bytes: Vec<&[u8]> = src.chunks(1).collect();
    assert!(
        transcode(from, to, &bytes).0 == whole,
        "{from:?} -> {to:?}: one byte at a time differs"
    );
}

/// What a client was told, read from its protocol's events.
#[derive(Debug, Default)]
struct Seen {
    text: String,
    thinking: String,
    /// Reasoning signatures (Anthropic `signature_delta`, Converse `reasoningContent.signature`).
    signatures: Vec<String>,
    /// (id, name, arguments as streamed).
    calls: Vec<(String, String, String)>,
    /// The finish or stop reason (Responses: the final status).
    stop: String,
    /// The protocol's own usage object.
    usage: Value,
}

impl Seen {
    /// The call whose blocks the protocol numbers `key`, opened if new.
    fn call(keys: &mut Vec<u64>, calls: &mut Vec<(String, String, String)>, key: u64) -> usize {
        match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                calls.push(Default::default());
                calls.len() - 1
            }
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn seen(to: Protocol, out: &[u8]) -> Seen {
    let mut r = Seen::default();
    // The protocol's number for each call (OpenAI index, block index, output index).
    let mut keys = Vec::new();
    // Cohere numbers content blocks apart from calls: (index, is thinking).
    let mut contents: Vec<(u64, bool)> = Vec::new();
    for (name, v) in client_events(to, out) {
        let index = v["index"].as_u64().unwrap_or(0);
        match to {
            Protocol::OpenAiChat => {
                if v == "[DONE]" {
                    continue;
                }
                let c = &v["choices"][0];
                r.text
                    .push_str(c["delta"]["content"].as_str().unwrap_or_default());
                for tc in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                    let at = Seen::call(&mut keys, &mut r.calls, tc["index"].as_u64().unwrap());
                    if tc["id"].is_string() {
                        r.calls[at].0 = s(&tc["id"]);
                        r.calls[at].1 = s(&tc["function"]["name"]);
                    }
                    r.calls[at].2.push_str(&s(&tc["function"]["arguments"]));
                }
                if c["finish_reason"].is_string() {
                    r.stop = s(&c["finish_reason"]);
                }
                if v["usage"].is_object() {
                    r.usage = v["usage"].clone();
                }
            }
            Protocol::Anthropic => match name.as_str() {
                "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                    let at = Seen::call(&mut keys, &mut r.calls, index);
                    r.calls[at].0 = s(&v["content_block"]["id"]);
                    r.calls[at].1 = s(&v["content_block"]["name"]);
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    match d["type"].as_str().unwrap_or_default() {
                        "text_delta" => r.text.push_str(&s(&d["text"])),
                        "thinking_delta" => r.thinking.push_str(&s(&d["thinking"])),
                        "signature_delta" => r.signatures.push(s(&d["signature"])),
                        "input_json_delta" => {
                            let at = Seen::call(&mut keys, &mut r.calls, index);
                            r.calls[at].2.push_str(&s(&d["partial_json"]));
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    r.stop = s(&v["delta"]["stop_reason"]);
                    r.usage = v["usage"].clone();
                }
                _ => {}
            },
            Protocol::OpenAiResponses => {
                let output = v["output_index"].as_u64().unwrap_or(0);
                match name.as_str() {
                    "response.output_text.delta" => r.text.push_str(&s(&v["delta"])),
                    "response.reasoning_summary_text.delta" => r.thinking.push_str(&s(&v["delta"])),
                    "response.output_item.added" if v["item"]["type"] == "function_call" => {
                        let at = Seen::call(&mut keys, &mut r.calls, output);
                        r.calls[at].0 = s(&v["item"]["call_id"]);
                        r.calls[at].1 = s(&v["item"]["name"]);
                    }
                    "response.function_call_arguments.delta" => {
                        let at = Seen::call(&mut keys, &mut r.calls, output);
                        r.calls[at].2.push_str(&s(&v["delta"]));
                    }
                    "response.completed" | "response.incomplete" => {
                        r.stop = s(&v["response"]["status"]);
                        r.usage = v["response"]["usage"].clone();
                    }
                    _ => {}
                }
            }
            Protocol::Gemini => {
                let c = &v["candidates"][0];
                for p in c["content"]["parts"].as_array().into_iter().flatten() {
                    if let Some(f) = p.get("functionCall") {
                        r.calls
                            .push((s(&f["id"]), s(&f["name"]), f["args"].to_string()));
                    } else if p["thought"] == true {
                        r.thinking.push_str(&s(&p["text"]));
                    } else {
                        r.text.push_str(&s(&p["text"]));
                    }
                }
                if c["finishReason"].is_string() {
                    r.stop = s(&c["finishReason"]);
                }
                r.usage = v["usageMetadata"].clone();
            }
            Protocol::Cohere => {
                let m = &v["delta"]["message"];
                match name.as_str() {
                    "content-start" => {
                        contents.push((index, m["content"]["type"] == "thinking"));
                    }
                    "content-delta" => {
                        let thinking = contents.contains(&(index, true));
                        let (key, into) = if thinking {
                            ("thinking", &mut r.thinking)
                        } else {
                            ("text", &mut r.text)
                        };
                        into.push_str(&s(&m["content"][key]));
                    }
                    "tool-call-start" => {
                        let at = Seen::call(&mut keys, &mut r.calls, index);
                        r.calls[at].0 = s(&m["tool_calls"]["id"]);
                        r.calls[at].1 = s(&m["tool_calls"]["function"]["name"]);
                    }
                    "tool-call-delta" => {
                        let at = Seen::call(&mut keys, &mut r.calls, index);
                        r.calls[at]
                            .2
                            .push_str(&s(&m["tool_calls"]["function"]["arguments"]));
                    }
                    "message-end" => {
                        r.stop = s(&v["delta"]["finish_reason"]);
                        r.usage = v["delta"]["usage"].clone();
                    }
                    _ => {}
                }
            }
            Protocol::Bedrock => {
                let index = v["contentBlockIndex"].as_u64().unwrap_or(0);
                match name.as_str() {
                    "contentBlockStart" => {
                        let at = Seen::call(&mut keys, &mut r.calls, index);
                        r.calls[at].0 = s(&v["start"]["toolUse"]["toolUseId"]);
                        r.calls[at].1 = s(&v["start"]["toolUse"]["name"]);
                    }
                    "contentBlockDelta" => {
                        let d = &v["delta"];
                        r.text.push_str(&s(&d["text"]));
                        r.thinking.push_str(&s(&d["reasoningContent"]["text"]));
                        if d["reasoningContent"]["signature"].is_string() {
                            r.signatures.push(s(&d["reasoningContent"]["signature"]));
                        }
                        if d["toolUse"]["input"].is_string() {
                            let at = Seen::call(&mut keys, &mut r.calls, index);
                            r.calls[at].2.push_str(&s(&d["toolUse"]["input"]));
                        }
                    }
                    "messageStop" => r.stop = s(&v["stopReason"]),
                    "metadata" => r.usage = v["usage"].clone(),
                    _ => {}
                }
            }
        }
    }
    r
}

/// The calls match `want` (id, name, arguments): the arguments exactly as the provider streamed
/// them where the client's protocol streams fragments, as the same JSON where it sends a call
/// whole (Gemini).
fn assert_calls(to: Protocol, got: &[(String, String, String)], want: &[(&str, &str, &str)]) {
    assert_eq!(got.len(), want.len(), "{to:?}: {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str()), (w.0, w.1), "{to:?}");
        let parsed = |a: &str| serde_json::from_str::<Value>(a).unwrap();
        assert_eq!(parsed(&g.2), parsed(w.2), "{to:?}: arguments");
        if to != Protocol::Gemini {
            assert_eq!(g.2, w.2, "{to:?}: arguments as streamed");
        }
    }
}

/// The usage each client's protocol reports for IR usage `u` (input without cache reads).
fn expected_usage(to: Protocol, u: &Usage) -> Value {
    let prompt = u.input + u.cache_read;
    let total = prompt + u.output;
    match to {
        Protocol::OpenAiChat => json!({"prompt_tokens": prompt, "completion_tokens": u.output,
            "total_tokens": total, "prompt_tokens_details": {"cached_tokens": u.cache_read},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning}}),
        Protocol::OpenAiResponses => json!({"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": 0}, "output_tokens": u.output,
            "output_tokens_details": {"reasoning_tokens": u.reasoning}, "total_tokens": total}),
        Protocol::Anthropic => json!({"input_tokens": u.input, "output_tokens": u.output,
            "cache_read_input_tokens": u.cache_read, "cache_creation_input_tokens": 0}),
        Protocol::Gemini => {
            let mut v = json!({"promptTokenCount": prompt,
                "candidatesTokenCount": u.output - u.reasoning, "totalTokenCount": total});
            if u.reasoning > 0 {
                v["thoughtsTokenCount"] = json!(u.reasoning);
            }
            if u.cache_read > 0 {
                v["cachedContentTokenCount"] = json!(u.cache_read);
            }
            v
        }
        Protocol::Cohere => json!({
            "billed_units": {"input_tokens": u.input, "output_tokens": u.output},
            "tokens": {"input_tokens": prompt, "output_tokens": u.output}}),
        Protocol::Bedrock => {
            let mut v =
                json!({"inputTokens": u.input, "outputTokens": u.output, "totalTokens": total});
            if u.cache_read > 0 {
                v["cacheReadInputTokens"] = json!(u.cache_read);
            }
            v
        }
    }
}

const PLAN_CALLS: [(&str, &str, &str); 2] = [
    (
        "get_weather_p1t92w7gfgq7",
        "get_weather",
        "{\n    \"location\": \"Madrid\"\n}",
    ),
    (
        "get_weather_ay6nmvjgp9vn",
        "get_weather",
        "{\n    \"location\": \"Brasilia\"\n}",
    ),
];

const GROUNDED_TEXT: &str = "It is currently 24°C in Madrid and 28°C in Brasilia.";

const SUMMARY: &str = "**Checking Paris weather**\n\nThe user wants the current weather in Paris. \
                       I'll say what I'm doing and call get_weather.";
const REASONING_ID: &str = "rs_08b6e5c7d3f1a29400699569e1b3f48197a82c5d0e4f716b39";
const PREAMBLE: &str = "Let me check the current weather in Paris for you.";
const CALL: (&str, &str, &str) = (
    "call_Xk3f9TqL0bW2nR8vJ5yH1mZc",
    "get_weather",
    "{\"location\":\"Paris, France\"}",
);

#[test]
fn every_cut_of_each_fixture_gives_every_client_the_same_complete_stream() {
    for (from, src) in [
        (Protocol::Cohere, cohere_calls()),
        (Protocol::Cohere, cohere_citations()),
        (Protocol::OpenAiResponses, responses_stream()),
    ] {
        for to in Protocol::ALL {
            let (out, t) = transcode(from, to, &[&src]);
            assert_complete(to, &t, &out);
            assert_every_cut_agrees(from, to, &src);
        }
    }
}

/// The client saw the stream end as its protocol ends a turn (with tool calls, or not), and
/// the usage in its protocol's fields.
fn assert_end(to: Protocol, r: &Seen, tools: bool, usage: &Usage) {
    let stop = match (to, tools) {
        (Protocol::OpenAiChat, true) => "tool_calls",
        (Protocol::OpenAiChat, false) => "stop",
        (Protocol::OpenAiResponses, _) => "completed",
        (Protocol::Anthropic | Protocol::Bedrock, true) => "tool_use",
        (Protocol::Anthropic | Protocol::Bedrock, false) => "end_turn",
        (Protocol::Gemini, _) => "STOP",
        (Protocol::Cohere, true) => "TOOL_CALL",
        (Protocol::Cohere, false) => "COMPLETE",
    };
    assert_eq!(r.stop, stop, "{to:?}");
    assert_eq!(r.usage, expected_usage(to, usage), "{to:?}");
}

#[test]
fn cohere_tool_plan_and_parallel_calls_reach_every_client() {
    let src = cohere_calls();
    // Cohere's billed units are the IR's usage (the raw `tokens`, 913 in and 83 out, are not
    // what is paid for); there are no cache reads.
    let usage = Usage {
        input: 37,
        output: 28,
        ..Usage::default()
    };
    for to in Protocol::ALL {
        let (out, t) = transcode(Protocol::Cohere, to, &[&src]);
        assert_eq!(t.usage(), Some(&usage), "{to:?}");
        let r = seen(to, &out);
        assert_calls(to, &r.calls, &PLAN_CALLS);
        // The tool plan has no IR stream form: it reaches no client as text.
        assert_eq!((r.text.as_str(), r.thinking.as_str()), ("", ""), "{to:?}");
        assert_end(to, &r, true, &usage);
    }

    // An Anthropic client: the two calls as tool_use blocks 0 and 1, each stopped once.
    let ev = client_events(
        Protocol::Anthropic,
        &transcode(Protocol::Cohere, Protocol::Anthropic, &[&src]).0,
    );
    let blocks: Vec<&Value> = ev
        .iter()
        .filter(|(k, _)| k == "content_block_start")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        blocks,
        [
            &json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": PLAN_CALLS[0].0, "name": "get_weather", "input": {}}}),
            &json!({"type": "content_block_start", "index": 1, "content_block":
                {"type": "tool_use", "id": PLAN_CALLS[1].0, "name": "get_weather", "input": {}}}),
        ]
    );
    let stops: Vec<&Value> = ev
        .iter()
        .filter(|(k, _)| k == "content_block_stop")
        .map(|(_, v)| &v["index"])
        .collect();
    assert_eq!(stops, [&json!(0), &json!(1)]);

    // An OpenAI client: tool_calls 0 and 1, opened with their ids, then finish_reason
    // tool_calls and the usage chunk.
    let ev = client_events(
        Protocol::OpenAiChat,
        &transcode(Protocol::Cohere, Protocol::OpenAiChat, &[&src]).0,
    );
    let opened: Vec<(u64, &str)> = ev
        .iter()
        .filter_map(|(_, v)| {
            let tc = &v["choices"][0]["delta"]["tool_calls"][0];
            Some((tc["index"].as_u64()?, tc["id"].as_str()?))
        })
        .collect();
    assert_eq!(opened, [(0, PLAN_CALLS[0].0), (1, PLAN_CALLS[1].0)]);
    let n = ev.len();
    assert_eq!(ev[n - 3].1["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(ev[n - 2].1["choices"], json!([]));
    assert_eq!(ev[n - 1].1, "[DONE]");
}

#[test]
fn cohere_grounded_answer_reaches_every_client_and_its_citations_a_cohere_client() {
    let src = cohere_citations();
    let usage = Usage {
        input: 87,
        output: 19,
        ..Usage::default()
    };
    for to in Protocol::ALL {
        let (out, t) = transcode(Protocol::Cohere, to, &[&src]);
        assert_eq!(t.usage(), Some(&usage), "{to:?}");
        let r = seen(to, &out);
        assert_eq!(r.text, GROUNDED_TEXT, "{to:?}");
        assert!(r.calls.is_empty() && r.thinking.is_empty(), "{to:?}: {r:?}");
        assert_end(to, &r, false, &usage);
    }
    // Re-encoded for a Cohere client, both citations come as the provider wrote them: their
    // character offsets (`°` is one character, two bytes) still point at the cited text.
    let cited = |bytes: &[u8]| -> Vec<Value> {
        client_events(Protocol::Cohere, bytes)
            .into_iter()
            .filter(|(k, _)| k == "citation-start")
            .map(|(_, v)| v["delta"]["message"]["citations"].clone())
            .collect()
    };
    let want = cited(&src);
    assert_eq!(want.len(), 2);
    let out = transcode(Protocol::Cohere, Protocol::Cohere, &[&src]).0;
    assert_eq!(cited(&out), want);
    let chars: Vec<char> = GROUNDED_TEXT.chars().collect();
    for c in &want {
        let (start, end) = (c["start"].as_u64().unwrap(), c["end"].as_u64().unwrap());
        let text: String = chars[start as usize..end as usize].iter().collect();
        assert_eq!(c["text"], text.as_str());
    }
}

#[test]
fn responses_reasoning_text_and_call_reach_every_client() {
    let src = responses_stream();
    // Responses counts cached tokens inside input_tokens; the IR's input leaves them out.
    let usage = Usage {
        input: 2346 - 1920,
        output: 219,
        cache_read: 1920,
        cache_write: 0,
        reasoning: 128,
    };
    for to in Protocol::ALL {
        let (out, t) = transcode(Protocol::OpenAiResponses, to, &[&src]);
        assert_eq!(t.usage(), Some(&usage), "{to:?}");
        let r = seen(to, &out);
        assert_eq!(r.text, PREAMBLE, "{to:?}");
        // Chat Completions has no form for reasoning; every other protocol gets the summary.
        let thinking = if to == Protocol::OpenAiChat {
            ""
        } else {
            SUMMARY
        };
        assert_eq!(r.thinking, thinking, "{to:?}");
        assert_calls(to, &r.calls, &[CALL]);
        assert_end(to, &r, true, &usage);
        // The reasoning item's id is its signature where the protocol carries one.
        if matches!(to, Protocol::Anthropic | Protocol::Bedrock) {
            assert_eq!(r.signatures, [REASONING_ID], "{to:?}");
        }
    }

    // An Anthropic client: a thinking block (signed with the item id just before it stops),
    // then the text, then the call, as blocks 0, 1 and 2.
    let ev = client_events(
        Protocol::Anthropic,
        &transcode(Protocol::OpenAiResponses, Protocol::Anthropic, &[&src]).0,
    );
    let kinds: Vec<(u64, &str)> = ev
        .iter()
        .filter(|(k, _)| k == "content_block_start")
        .map(|(_, v)| {
            let b = &v["content_block"];
            (v["index"].as_u64().unwrap(), b["type"].as_str().unwrap())
        })
        .collect();
    assert_eq!(kinds, [(0, "thinking"), (1, "text"), (2, "tool_use")]);
    let sig = ev
        .iter()
        .position(|(_, v)| v["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(ev[sig].1["index"], 0);
    assert_eq!(
        ev[sig + 1].1,
        json!({"type": "content_block_stop", "index": 0})
    );

    // A Cohere client: thinking and text are content 0 and 1, the call is tool call 0.
    let ev = client_events(
        Protocol::Cohere,
        &transcode(Protocol::OpenAiResponses, Protocol::Cohere, &[&src]).0,
    );
    let starts: Vec<(&str, u64)> = ev
        .iter()
        .filter(|(k, _)| k.ends_with("-start") && k != "message-start")
        .map(|(k, v)| (k.as_str(), v["index"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        starts,
        [
            ("content-start", 0),
            ("content-start", 1),
            ("tool-call-start", 0)
        ]
    );

    // A Responses client (re-encoded): numbered events, and the finished items in
    // response.completed.
    let ev = client_events(
        Protocol::OpenAiResponses,
        &transcode(
            Protocol::OpenAiResponses,
            Protocol::OpenAiResponses,
            &[&src],
        )
        .0,
    );
    for (n, (_, v)) in ev.iter().enumerate() {
        assert_eq!(v["sequence_number"], n, "{v}");
    }
    let output = &ev.last().unwrap().1["response"]["output"];
    let types: Vec<&str> = output
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["reasoning", "message", "function_call"]);
    assert_eq!(output[2]["arguments"], CALL.2);
}

/// The provider's bytes back, whole and cut anywhere, with the stream read on the side.
fn assert_passes_through(p: Protocol, src: &[u8], usage: &Usage) {
    let (out, t) = passthrough(p, &[src]);
    assert!(
        out == src,
        "{p:?}: passthrough changed the bytes:\n{}",
        String::from_utf8_lossy(&out)
    );
    assert!(t.is_complete() && t.error().is_none(), "{p:?}");
    assert_eq!(t.usage(), Some(usage), "{p:?}");
    let bytes: Vec<&[u8]> = src.chunks(1).collect();
    for (name, parts) in offsets(src)
        .map(|o| (format!("cut at {o} + {STRIDE}k"), reads(src, o)))
        .chain([("one byte at a time".to_string(), bytes)])
    {
        let (cut, t) = passthrough(p, &parts);
        assert!(cut == src, "{p:?}: {name} changed the bytes");
        assert_eq!(t.usage(), Some(usage), "{p:?}: {name}");
    }
}

#[test]
fn responses_stream_passes_through_byte_for_byte_with_usage_read() {
    let usage = Usage {
        input: 426,
        output: 219,
        cache_read: 1920,
        cache_write: 0,
        reasoning: 128,
    };
    assert_passes_through(Protocol::OpenAiResponses, &responses_stream(), &usage);
}

#[test]
fn cohere_streams_pass_through_byte_for_byte_with_usage_read() {
    let usage = |input, output| Usage {
        input,
        output,
        ..Usage::default()
    };
    assert_passes_through(Protocol::Cohere, &cohere_calls(), &usage(37, 28));
    assert_passes_through(Protocol::Cohere, &cohere_citations(), &usage(87, 19));
}

#[test]
fn a_cohere_client_stream_ends_as_cohere_ends_it() {
    let done = b"event: message-end\n";
    for (from, src) in [
        (Protocol::Cohere, cohere_calls()),
        (Protocol::OpenAiResponses, responses_stream()),
    ] {
        let (out, _) = transcode(from, Protocol::Cohere, &[&src]);
        let tail = &out[out.windows(done.len()).rposition(|w| w == done).unwrap()..];
        let end = client_events(Protocol::Cohere, tail);
        assert_eq!(end.len(), 2, "{from:?}: {}", String::from_utf8_lossy(tail));
        assert_eq!(end[1].1, "[DONE]", "{from:?}");
        assert!(out.ends_with(b"data: [DONE]\n\n"), "{from:?}");
    }
}

/// Fields the Responses reference (openai-openapi `openapi.yaml`) requires of each stream event.
const REQUIRED_EVENT_FIELDS: &[(&str, &[&str])] = &[
    ("response.created", &["response", "sequence_number"]),
    ("response.in_progress", &["response", "sequence_number"]),
    ("response.completed", &["response", "sequence_number"]),
    (
        "response.output_item.added",
        &["output_index", "item", "sequence_number"],
    ),
    (
        "response.output_item.done",
        &["output_index", "item", "sequence_number"],
    ),
    (
        "response.content_part.added",
        &[
            "item_id",
            "output_index",
            "content_index",
            "part",
            "sequence_number",
        ],
    ),
    (
        "response.content_part.done",
        &[
            "item_id",
            "output_index",
            "content_index",
            "part",
            "sequence_number",
        ],
    ),
    (
        "response.output_text.delta",
        &[
            "item_id",
            "output_index",
            "content_index",
            "delta",
            "sequence_number",
            "logprobs",
        ],
    ),
    (
        "response.output_text.done",
        &[
            "item_id",
            "output_index",
            "content_index",
            "text",
            "sequence_number",
            "logprobs",
        ],
    ),
    (
        "response.function_call_arguments.delta",
        &["item_id", "output_index", "delta", "sequence_number"],
    ),
    (
        "response.function_call_arguments.done",
        &[
            "item_id",
            "name",
            "output_index",
            "arguments",
            "sequence_number",
        ],
    ),
    (
        "response.reasoning_summary_part.added",
        &[
            "item_id",
            "output_index",
            "summary_index",
            "part",
            "sequence_number",
        ],
    ),
    (
        "response.reasoning_summary_part.done",
        &[
            "item_id",
            "output_index",
            "summary_index",
            "part",
            "sequence_number",
        ],
    ),
    (
        "response.reasoning_summary_text.delta",
        &[
            "item_id",
            "output_index",
            "summary_index",
            "delta",
            "sequence_number",
        ],
    ),
    (
        "response.reasoning_summary_text.done",
        &[
            "item_id",
            "output_index",
            "summary_index",
            "text",
            "sequence_number",
        ],
    ),
];

/// The same reference's required fields of what events carry: (kind, fields), where the kind
/// is a `type` (output items, content parts) or a name of ours for the objects without one.
const REQUIRED_FIELDS: &[(&str, &[&str])] = &[
    (
        "response",
        &[
            "id",
            "object",
            "created_at",
            "error",
            "incomplete_details",
            "instructions",
            "metadata",
            "model",
            "output",
            "parallel_tool_calls",
            "temperature",
            "tool_choice",
            "tools",
            "top_p",
        ],
    ),
    (
        "usage",
        &[
            "input_tokens",
            "input_tokens_details",
            "output_tokens",
            "output_tokens_details",
            "total_tokens",
        ],
    ),
    (
        "input_tokens_details",
        &["cached_tokens", "cache_write_tokens"],
    ),
    ("output_tokens_details", &["reasoning_tokens"]),
    ("message", &["id", "type", "role", "status", "content"]),
    ("function_call", &["type", "call_id", "name", "arguments"]),
    ("reasoning", &["id", "type", "summary"]),
    ("output_text", &["type", "text", "annotations", "logprobs"]),
    ("summary_text", &["type", "text"]),
];

/// The required fields `v` (of `kind`) lacks, as `at.field`, and those of what it holds.
fn lacks(kind: &str, v: &Value, at: &str, missing: &mut Vec<String>) {
    let Some((_, fields)) = REQUIRED_FIELDS.iter().find(|(k, _)| *k == kind) else {
        missing.push(format!("{at}: no reference entry for {kind}"));
        return;
    };
    for f in *fields {
        if v.get(*f).is_none() {
            missing.push(format!("{at}.{f}"));
        }
    }
    let typed = |x: &Value| x["type"].as_str().unwrap_or_default().to_string();
    match kind {
        "response" => {
            for (i, item) in v["output"].as_array().into_iter().flatten().enumerate() {
                lacks(&typed(item), item, &format!("{at}.output[{i}]"), missing);
            }
            if !v["usage"].is_null() {
                lacks("usage", &v["usage"], &format!("{at}.usage"), missing);
            }
        }
        "usage" => {
            for k in ["input_tokens_details", "output_tokens_details"] {
                lacks(k, &v[k], &format!("{at}.{k}"), missing);
            }
        }
        "message" => {
            for (i, part) in v["content"].as_array().into_iter().flatten().enumerate() {
                lacks(&typed(part), part, &format!("{at}.content[{i}]"), missing);
            }
        }
        "reasoning" => {
            for (i, part) in v["summary"].as_array().into_iter().flatten().enumerate() {
                lacks(&typed(part), part, &format!("{at}.summary[{i}]"), missing);
            }
        }
        _ => {}
    }
}

/// Every required field a Responses stream lacks, deduplicated.
fn responses_lacks(stream: &[u8]) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, v) in client_events(Protocol::OpenAiResponses, stream) {
        let Some((_, fields)) = REQUIRED_EVENT_FIELDS.iter().find(|(k, _)| *k == name) else {
            missing.push(format!("no reference entry for {name}"));
            continue;
        };
        for f in *fields {
            if v.get(*f).is_none() {
                missing.push(format!("{name}.{f}"));
            }
        }
        if v["response"].is_object() {
            lacks(
                "response",
                &v["response"],
                &format!("{name}.response"),
                &mut missing,
            );
        }
        if v["item"].is_object() {
            let kind = v["item"]["type"].as_str().unwrap_or_default().to_string();
            lacks(&kind, &v["item"], &format!("{name}.item"), &mut missing);
        }
        if v["part"].is_object() {
            let kind = v["part"]["type"].as_str().unwrap_or_default().to_string();
            lacks(&kind, &v["part"], &format!("{name}.part"), &mut missing);
        }
    }
    missing.sort();
    missing.dedup();
    missing
}

#[test]
fn the_responses_fixture_has_every_field_the_reference_requires() {
    assert_eq!(responses_lacks(&responses_stream()), Vec::<String>::new());
}

#[test]
fn a_responses_client_gets_every_field_the_reference_requires() {
    let mut missing = Vec::new();
    for (from, src) in [
        (Protocol::Cohere, cohere_calls()),
        (Protocol::Cohere, cohere_citations()),
        (Protocol::OpenAiResponses, responses_stream()),
    ] {
        let (out, _) = transcode(from, Protocol::OpenAiResponses, &[&src]);
        missing.extend(responses_lacks(&out));
    }
    missing.sort();
    missing.dedup();
    assert_eq!(missing, Vec::<String>::new());
}
