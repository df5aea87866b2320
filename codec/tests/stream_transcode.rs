//! Streaming translation, OpenAI Chat <-> Anthropic (the first pairs; the others follow in
//! issue 4): documented provider streams become the other protocol's stream with text, thinking
//! and its signature, parallel tool calls with their argument fragments, the stop reason and the
//! final usage; and cutting the upstream bytes at any point gives the same client bytes.

mod common;
use common::fixture;

use busbar_codec::Protocol;
use busbar_codec::frame::sse;
use busbar_codec::stream::Transcoder;
use serde_json::{Value, json};

fn transcode(from: Protocol, to: Protocol, parts: &[&[u8]], include_usage: bool) -> Vec<u8> {
    let mut t = Transcoder::new(from, to, 1_700_000_000, include_usage);
    let mut out = Vec::new();
    for p in parts {
        t.feed(p, &mut out).unwrap();
    }
    t.finish(&mut out);
    out
}

fn events(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut d = sse::Decoder::new(1 << 20);
    let mut out = Vec::new();
    d.feed(bytes, |e| {
        let v = if e.data == "[DONE]" {
            json!("[DONE]")
        } else {
            serde_json::from_str(&e.data).unwrap()
        };
        out.push((e.event, v));
    })
    .unwrap();
    out
}

#[test]
fn anthropic_stream_to_openai_chunks() {
    let src = fixture("anthropic", "stream_thinking_tool_use.sse");
    let out = transcode(Protocol::Anthropic, Protocol::OpenAiChat, &[&src], true);
    let ev = events(&out);
    let chunks: Vec<&Value> = ev.iter().map(|(_, v)| v).collect();
    assert_eq!(chunks.last(), Some(&&json!("[DONE]")));
    assert!(chunks[0]["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Let me check the weather.");
    let call = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].is_string())
        .unwrap();
    assert_eq!(
        call["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "San Francisco, CA"})
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    let usage = chunks.iter().find(|c| c["usage"].is_object()).unwrap();
    assert_eq!(
        usage["choices"],
        json!([]),
        "usage comes in its own chunk with empty choices"
    );
    assert_eq!(
        (
            usage["usage"]["prompt_tokens"].as_u64(),
            usage["usage"]["completion_tokens"].as_u64()
        ),
        (Some(472), Some(89))
    );
    // A client that did not ask for usage does not get the extra chunk.
    let plain = events(&transcode(
        Protocol::Anthropic,
        Protocol::OpenAiChat,
        &[&src],
        false,
    ));
    assert!(plain.iter().all(|(_, v)| !v["usage"].is_object()));
}

#[test]
fn openai_stream_to_anthropic_events() {
    let src = fixture("openai", "stream_tool_calls.sse");
    let out = transcode(Protocol::OpenAiChat, Protocol::Anthropic, &[&src], false);
    let ev = events(&out);
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_deref().unwrap()).collect();
    assert_eq!(kinds[0], "message_start");
    assert_eq!(kinds.last(), Some(&"message_stop"));
    // Every event's name matches its data's type, as Anthropic sends them.
    assert!(ev.iter().all(|(k, v)| v["type"] == k.as_deref().unwrap()));
    let starts: Vec<&Value> = ev
        .iter()
        .filter(|(k, _)| k.as_deref() == Some("content_block_start"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(starts.len(), 3, "text and two parallel tool calls");
    assert_eq!(
        starts[1]["content_block"],
        json!({"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {}})
    );
    assert_eq!(starts[2]["content_block"]["id"], "call_def456");
    let args = |index: u64| -> Value {
        let s: String = ev
            .iter()
            .filter(|(_, v)| v["index"] == index && v["delta"]["type"] == "input_json_delta")
            .map(|(_, v)| v["delta"]["partial_json"].as_str().unwrap())
            .collect();
        serde_json::from_str(&s).unwrap()
    };
    assert_eq!(
        args(1),
        json!({"location": "Paris"}),
        "interleaved fragments stay with their call"
    );
    assert_eq!(args(2), json!({"location": "Lyon"}));
    let delta = &ev
        .iter()
        .find(|(k, _)| k.as_deref() == Some("message_delta"))
        .unwrap()
        .1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["input_tokens"], 18, "prompt minus cached");
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 64);
    assert_eq!(delta["usage"]["output_tokens"], 46);
    // Every started block is stopped exactly once, before message_delta.
    let stops = ev
        .iter()
        .filter(|(k, _)| k.as_deref() == Some("content_block_stop"))
        .count();
    assert_eq!(stops, 3);
}

#[test]
fn thinking_and_its_signature_reach_an_anthropic_client_from_anthropic() {
    // Same protocol through the transcoder (re-encoding, as a check of parser and writer): the
    // signature comes as a signature_delta right before its block stops.
    let src = fixture("anthropic", "stream_thinking_tool_use.sse");
    let ev = events(&transcode(
        Protocol::Anthropic,
        Protocol::Anthropic,
        &[&src],
        false,
    ));
    let sig_at = ev
        .iter()
        .position(|(_, v)| v["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(
        ev[sig_at].1["delta"]["signature"],
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
    );
    assert_eq!(
        ev[sig_at + 1].1,
        json!({"type": "content_block_stop", "index": 0})
    );
    let thinking: String = ev
        .iter()
        .filter_map(|(_, v)| v["delta"]["thinking"].as_str())
        .collect();
    assert_eq!(
        thinking,
        "The user wants the weather, so I will call the tool."
    );
}

#[test]
fn every_cut_of_the_upstream_gives_the_same_client_bytes() {
    for (from, to, name) in [
        (
            Protocol::Anthropic,
            Protocol::OpenAiChat,
            ("anthropic", "stream_thinking_tool_use.sse"),
        ),
        (
            Protocol::OpenAiChat,
            Protocol::Anthropic,
            ("openai", "stream_tool_calls.sse"),
        ),
    ] {
        let src = fixture(name.0, name.1);
        let whole = transcode(from, to, &[&src], true);
        for i in 0..=src.len() {
            assert_eq!(
                transcode(from, to, &[&src[..i], &src[i..]], true),
                whole,
                "{name:?} cut at {i}"
            );
        }
        let bytes: Vec<&[u8]> = src.chunks(7).collect();
        assert_eq!(
            transcode(from, to, &bytes, true),
            whole,
            "{name:?} in 7-byte reads"
        );
    }
}

#[test]
fn a_stream_cut_short_ends_with_an_error_in_the_clients_protocol() {
    let src = fixture("openai", "stream_tool_calls.sse");
    let half = &src[..src.len() / 2];
    let ev = events(&transcode(
        Protocol::OpenAiChat,
        Protocol::Anthropic,
        &[half],
        false,
    ));
    let (kind, last) = ev.last().unwrap();
    assert_eq!(kind.as_deref(), Some("error"));
    assert_eq!(last["error"]["type"], "stream_interrupted");
    let src = fixture("anthropic", "stream_thinking_tool_use.sse");
    let ev = events(&transcode(
        Protocol::Anthropic,
        Protocol::OpenAiChat,
        &[&src[..src.len() / 2]],
        false,
    ));
    assert!(
        ev.last().unwrap().1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );
    assert!(
        ev.iter().all(|(_, v)| v != "[DONE]"),
        "an interrupted stream is never finished as if whole"
    );
}

#[test]
fn gemini_stream_with_crlf_and_cumulative_usage() {
    let src = fixture("gemini", "stream_thoughts_call.sse");
    assert!(
        src.windows(4).any(|w| w == b"\r\n\r\n"),
        "Gemini's SSE uses CRLF"
    );
    // To Anthropic: thinking with the signature Gemini put on the part after the thoughts, the
    // text, the call (id minted), tool_use stop, and usage taken from the last chunk, not summed.
    let ev = events(&transcode(
        Protocol::Gemini,
        Protocol::Anthropic,
        &[&src],
        false,
    ));
    let thinking: String = ev
        .iter()
        .filter_map(|(_, v)| v["delta"]["thinking"].as_str())
        .collect();
    assert_eq!(thinking, "**Planning** I need the weather.");
    let sig = ev
        .iter()
        .find(|(_, v)| v["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(sig.1["delta"]["signature"], "CiQB0e2Kb7m9Xh1c0mGJ4Q==");
    let text: String = ev
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Checking Paris now.");
    let call = ev
        .iter()
        .find(|(_, v)| v["content_block"]["type"] == "tool_use")
        .unwrap();
    assert!(
        call.1["content_block"]["id"]
            .as_str()
            .unwrap()
            .starts_with("gcall_")
    );
    let delta = &ev
        .iter()
        .find(|(k, _)| k.as_deref() == Some("message_delta"))
        .unwrap()
        .1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["input_tokens"], 40);
    assert_eq!(
        delta["usage"]["output_tokens"], 32,
        "candidates 20 + thoughts 12, from the last chunk"
    );
    for i in 0..=src.len() {
        assert_eq!(
            transcode(
                Protocol::Gemini,
                Protocol::OpenAiChat,
                &[&src[..i], &src[i..]],
                true
            ),
            transcode(Protocol::Gemini, Protocol::OpenAiChat, &[&src], true),
            "cut at {i}"
        );
    }
}

#[test]
fn openai_stream_to_a_gemini_client_as_sse_and_as_a_json_array() {
    let src = fixture("openai", "stream_tool_calls.sse");
    let sse = transcode(Protocol::OpenAiChat, Protocol::Gemini, &[&src], false);
    assert!(
        sse.ends_with(b"\r\n\r\n") && !sse.windows(3).any(|w| w == b"}\n\n"),
        "CRLF line ends"
    );
    let chunks: Vec<Value> = events(&sse).into_iter().map(|(_, v)| v).collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0].get("functionCall"))
        .collect();
    assert_eq!(calls.len(), 2, "each call whole, once its fragments are in");
    assert_eq!(calls[0]["args"], json!({"location": "Paris"}));
    assert_eq!(calls[1]["args"], json!({"location": "Lyon"}));
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 82);

    let mut t =
        Transcoder::new(Protocol::OpenAiChat, Protocol::Gemini, 1, false).gemini_json_array();
    let mut out = Vec::new();
    t.feed(&src, &mut out).unwrap();
    t.finish(&mut out);
    let array: Vec<Value> = serde_json::from_slice(&out).expect("one JSON array");
    assert_eq!(array.len(), chunks.len());
}

#[test]
fn bedrock_event_stream_both_ways() {
    use busbar_codec::frame::eventstream;
    let src = fixture("openai", "stream_tool_calls.sse");
    let es = transcode(Protocol::OpenAiChat, Protocol::Bedrock, &[&src], false);
    let mut d = eventstream::Decoder::new(1 << 20);
    let mut msgs = Vec::new();
    d.feed(&es, |m| msgs.push(m)).unwrap();
    assert!(!d.is_partial());
    let kinds: Vec<&str> = msgs
        .iter()
        .map(|m| m.header(":event-type").unwrap())
        .collect();
    assert_eq!(kinds[0], "messageStart");
    assert_eq!(kinds[kinds.len() - 2..], ["messageStop", "metadata"]);
    let starts: Vec<Value> = msgs
        .iter()
        .filter(|m| m.header(":event-type") == Some("contentBlockStart"))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(
        starts.len(),
        2,
        "tool blocks start; the text block has no start event"
    );
    assert_eq!(starts[0]["start"]["toolUse"]["toolUseId"], "call_abc123");
    assert!(
        msgs.iter()
            .all(|m| m.header(":content-type") == Some("application/json"))
    );
    let meta: Value = serde_json::from_slice(&msgs.last().unwrap().payload).unwrap();
    assert_eq!(meta["usage"]["inputTokens"], 18);
    assert_eq!(meta["usage"]["cacheReadInputTokens"], 64);

    // And back: the Bedrock stream, cut anywhere, becomes the same OpenAI chunks.
    let whole = transcode(Protocol::Bedrock, Protocol::OpenAiChat, &[&es], true);
    let chunks: Vec<Value> = events(&whole).into_iter().map(|(_, v)| v).collect();
    let args: String = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["tool_calls"][0]["index"] == 1)
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Lyon"})
    );
    for i in 0..=es.len() {
        assert_eq!(
            transcode(
                Protocol::Bedrock,
                Protocol::OpenAiChat,
                &[&es[..i], &es[i..]],
                true
            ),
            whole,
            "cut at {i}"
        );
    }
    // A corrupted message is refused by its checksum, not relayed.
    let mut bad = es.clone();
    bad[30] ^= 1;
    let mut t = Transcoder::new(Protocol::Bedrock, Protocol::OpenAiChat, 1, false);
    assert!(t.feed(&bad, &mut Vec::new()).is_err());
}

#[test]
fn cohere_stream_both_ways() {
    let src = fixture("anthropic", "stream_thinking_tool_use.sse");
    let co = transcode(Protocol::Anthropic, Protocol::Cohere, &[&src], false);
    let mut ev = events(&co);
    // Cohere's stream ends with `data: [DONE]` after message-end.
    assert_eq!(ev.pop(), Some((None, json!("[DONE]"))));
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_deref().unwrap()).collect();
    assert_eq!(kinds[0], "message-start");
    assert_eq!(kinds.last(), Some(&"message-end"));
    assert!(ev.iter().all(|(k, v)| v["type"] == k.as_deref().unwrap()));
    // Thinking and text are content 0 and 1; the call is tool 0 (numbered apart, as Cohere does).
    let thinking = ev
        .iter()
        .find(|(k, v)| k.as_deref() == Some("content-start") && v["index"] == 0)
        .unwrap();
    assert_eq!(
        thinking.1["delta"]["message"]["content"]["type"],
        "thinking"
    );
    let call = ev
        .iter()
        .find(|(k, _)| k.as_deref() == Some("tool-call-start"))
        .unwrap();
    assert_eq!(call.1["index"], 0);
    assert_eq!(
        call.1["delta"]["message"]["tool_calls"]["id"],
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    );
    let end = &ev.last().unwrap().1;
    assert_eq!(end["delta"]["finish_reason"], "TOOL_CALL");
    assert_eq!(end["delta"]["usage"]["billed_units"]["output_tokens"], 89);
    // Back to Anthropic, cut anywhere: the same events.
    let whole = transcode(Protocol::Cohere, Protocol::Anthropic, &[&co], false);
    let back = events(&whole);
    let args: String = back
        .iter()
        .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "San Francisco, CA"})
    );
    for i in 0..=co.len() {
        assert_eq!(
            transcode(
                Protocol::Cohere,
                Protocol::Anthropic,
                &[&co[..i], &co[i..]],
                false
            ),
            whole,
            "cut at {i}"
        );
    }
}

/// A response with thinking (signed), text and a tool call, as every protocol streams it.
fn upstream_streams() -> Vec<(Protocol, Vec<u8>)> {
    use busbar_codec::ir::{Block, Response, StopReason, Usage};
    use busbar_codec::stream::{StreamWriter, events_of};
    let r = Response {
        id: "resp-1".into(),
        model: "m".into(),
        content: vec![
            Block::Thinking {
                text: "Two cities, one call each.".into(),
                signature: Some("c2lnbmF0dXJl".into()),
            },
            Block::Text {
                text: "Checking the weather now.".into(),
                citations: vec![],
                cache: None,
            },
            Block::ToolUse {
                id: "call_1".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"}),
                thought_signature: None,
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        usage: Usage {
            input: 30,
            output: 20,
            cache_read: 4,
            cache_write: 0,
            reasoning: 6,
        },
        ..Response::default()
    };
    Protocol::ALL
        .into_iter()
        .map(|p| {
            let mut w = StreamWriter::new(p, 1_700_000_000, true);
            let mut out = Vec::new();
            for e in events_of(&r) {
                w.event(&e, &mut out);
            }
            (p, out)
        })
        .collect()
}

#[test]
fn all_thirty_pairs_stream_and_every_cut_gives_the_same_client_bytes() {
    for (from, bytes) in upstream_streams() {
        for to in Protocol::ALL.into_iter().filter(|p| *p != from) {
            let whole = transcode(from, to, &[&bytes], true);
            assert!(!whole.is_empty(), "{from:?} -> {to:?}");
            let text = String::from_utf8_lossy(&whole);
            if to != Protocol::Bedrock {
                assert!(
                    text.contains("Checking") && text.contains("get_weather"),
                    "{from:?} -> {to:?}: {text}"
                );
                assert!(
                    !text.contains("stream_interrupted") && !text.contains("ended before"),
                    "{from:?} -> {to:?}: {text}"
                );
            }
            for i in 0..=bytes.len() {
                assert_eq!(
                    transcode(from, to, &[&bytes[..i], &bytes[i..]], true),
                    whole,
                    "{from:?} -> {to:?} cut at {i}"
                );
            }
        }
    }
}

use busbar_codec::stream::{Event, StreamWriter};

fn pass(p: Protocol, json_array: bool, hide_usage: bool, parts: &[&[u8]]) -> (Vec<u8>, Transcoder) {
    let mut t = Transcoder::passthrough(p, json_array, hide_usage);
    let mut out = Vec::new();
    for part in parts {
        t.feed(part, &mut out).unwrap();
    }
    t.finish(&mut out);
    (out, t)
}

#[test]
fn same_protocol_streams_pass_through_byte_for_byte_with_usage_read_on_the_side() {
    let mut streams = upstream_streams();
    // Gemini without `alt=sse`: the streamed JSON array.
    let mut t =
        Transcoder::new(Protocol::OpenAiChat, Protocol::Gemini, 1, true).gemini_json_array();
    let mut json_array = Vec::new();
    let (_, openai) = streams
        .iter()
        .find(|(p, _)| *p == Protocol::OpenAiChat)
        .unwrap();
    t.feed(openai, &mut json_array).unwrap();
    t.finish(&mut json_array);
    assert!(json_array.starts_with(b"[") && json_array.ends_with(b"]"));
    streams.push((Protocol::Gemini, json_array));
    for (p, bytes) in streams {
        let is_array = bytes.starts_with(b"[");
        let (whole, t) = pass(p, is_array, false, &[&bytes]);
        assert_eq!(whole, bytes, "{p:?}: passthrough changed the bytes");
        assert!(t.is_complete() && t.error().is_none(), "{p:?}");
        let u = t.usage().unwrap_or_else(|| panic!("{p:?}: no usage read"));
        assert_eq!((u.input, u.output), (30, 20), "{p:?}: {u:?}");
        for i in 0..=bytes.len() {
            let (cut, t) = pass(p, is_array, false, &[&bytes[..i], &bytes[i..]]);
            assert_eq!(cut, bytes, "{p:?} cut at {i}");
            assert_eq!(t.usage(), Some(u), "{p:?} cut at {i}");
        }
        // Cut short: the whole events that came (never a partial one), then an error event of
        // the protocol's own.
        let half = &bytes[..bytes.len() / 2];
        let (out, t) = pass(p, is_array, false, &[half]);
        assert!(!t.is_complete() && t.error().is_some(), "{p:?}");
        let mut w = StreamWriter::new(p, 0, false);
        if is_array {
            w = w.gemini_json_array().resumed();
        }
        let mut error = Vec::new();
        w.event(
            &Event::Error {
                code: Some("stream_interrupted".into()),
                message: "the provider's stream ended before it was complete".into(),
            },
            &mut error,
        );
        assert!(
            out.ends_with(&error),
            "{p:?}: {}",
            String::from_utf8_lossy(&out)
        );
        let released = &out[..out.len() - error.len()];
        assert!(!released.is_empty() && half.starts_with(released), "{p:?}");
        // The same cut, fed a byte at a time, releases exactly the same.
        let bytes_one: Vec<&[u8]> = half.chunks(1).collect();
        assert_eq!(pass(p, is_array, false, &bytes_one).0, out, "{p:?}");
    }
}

#[test]
fn an_openai_usage_chunk_the_client_did_not_ask_for_is_hidden() {
    let (_, bytes) = upstream_streams()
        .into_iter()
        .find(|(p, _)| *p == Protocol::OpenAiChat)
        .unwrap();
    let (out, t) = pass(Protocol::OpenAiChat, false, true, &[&bytes]);
    let src = events(&bytes);
    let got = events(&out);
    let usage_only = |v: &Value| v["choices"] == json!([]) && v["usage"].is_object();
    assert_eq!(src.iter().filter(|(_, v)| usage_only(v)).count(), 1);
    let kept: Vec<_> = src.into_iter().filter(|(_, v)| !usage_only(v)).collect();
    assert_eq!(got, kept);
    assert!(out.ends_with(b"data: [DONE]\n\n"));
    // Every event the client sees is the provider's, byte for byte.
    let text = String::from_utf8(out.clone()).unwrap();
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        assert!(
            String::from_utf8_lossy(&bytes).contains(block),
            "not the provider's bytes: {block}"
        );
    }
    assert_eq!(t.usage().map(|u| (u.input, u.output)), Some((30, 20)));
    assert!(t.is_complete());
    for i in 0..=bytes.len() {
        assert_eq!(
            pass(
                Protocol::OpenAiChat,
                false,
                true,
                &[&bytes[..i], &bytes[i..]]
            )
            .0,
            out,
            "cut at {i}"
        );
    }
}

#[test]
fn a_provider_error_mid_stream_becomes_the_clients_error_and_ends_the_stream() {
    let src = fixture("anthropic", "stream_thinking_tool_use.sse");
    let text = String::from_utf8(src).unwrap();
    let at = text.find("event: content_block_stop").unwrap();
    let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let broken = format!("{}{error}{}", &text[..at], &text[at..]);
    let mut t = Transcoder::new(Protocol::Anthropic, Protocol::OpenAiChat, 1, true);
    let mut out = Vec::new();
    t.feed(broken.as_bytes(), &mut out).unwrap();
    t.finish(&mut out);
    let ev = events(&out);
    let (_, last) = ev.last().unwrap();
    assert_eq!(last["error"]["message"], "Overloaded");
    assert_eq!(last["error"]["code"], "overloaded_error");
    assert_eq!(
        ev.iter().filter(|(_, v)| v.get("error").is_some()).count(),
        1,
        "one error, and nothing after it"
    );
    assert!(t.is_committed() && !t.is_complete());
    assert_eq!(t.error(), Some((Some("overloaded_error"), "Overloaded")));

    // Failing before any content: the stream has not committed, so the gateway may still send
    // the request elsewhere.
    let start = &text[..text.find("event: content_block_start").unwrap()];
    let mut t = Transcoder::new(Protocol::Anthropic, Protocol::Gemini, 1, true);
    let mut out = Vec::new();
    t.feed(format!("{start}{error}").as_bytes(), &mut out)
        .unwrap();
    assert!(!t.is_committed());
    assert_eq!(t.error().map(|e| e.1), Some("Overloaded"));
}

#[test]
fn citations_stream_in_their_own_protocol_and_as_web_annotations_to_responses() {
    use busbar_codec::ir::{Block, Citation, Response};
    use busbar_codec::stream::{StreamWriter, events_of};
    let url = "https://example.com/paris";
    let cases = [
        (
            Protocol::Anthropic,
            json!({"type": "web_search_result_location", "url": url, "title": "Paris", "encrypted_index": "EqQB", "cited_text": "Paris is sunny."}),
        ),
        (
            Protocol::Gemini,
            json!({"startIndex": 0, "endIndex": 14, "uri": url, "title": "Paris"}),
        ),
        (
            Protocol::Bedrock,
            json!({"title": "Paris", "sourceContent": [{"text": "Paris is sunny."}], "location": {"web": {"url": url, "domain": "example.com"}}}),
        ),
        (
            Protocol::Cohere,
            json!({"start": 0, "end": 14, "text": "Paris is sunny", "sources": [{"type": "document", "id": "doc_0", "document": {"title": "Paris"}}], "type": "TEXT_CONTENT"}),
        ),
    ];
    for (p, raw) in cases {
        let r = Response {
            id: "r1".into(),
            model: "m".into(),
            content: vec![Block::Text {
                text: "Paris is sunny.".into(),
                citations: vec![Citation {
                    protocol: p,
                    raw: raw.clone(),
                    cited_text: None,
                    source: None,
                }],
                cache: None,
            }],
            ..Response::default()
        };
        let mut w = StreamWriter::new(p, 1, true);
        let mut upstream = Vec::new();
        for e in events_of(&r) {
            w.event(&e, &mut upstream);
        }
        // The provider's own citation, read and written back in its own protocol.
        let own = transcode(p, p, &[&upstream], true);
        let needle = raw.to_string();
        let key = &needle[1..needle.len() / 2];
        assert!(
            String::from_utf8_lossy(&own).contains(key),
            "{p:?}: citation lost: {}",
            String::from_utf8_lossy(&own)
        );
        // To a Responses client: a url_citation over the text, where the citation names a page.
        let ev = events(&transcode(p, Protocol::OpenAiResponses, &[&upstream], true));
        let added: Vec<&Value> = ev
            .iter()
            .filter(|(k, _)| k.as_deref() == Some("response.output_text.annotation.added"))
            .map(|(_, v)| &v["annotation"])
            .collect();
        let done = ev
            .iter()
            .find(|(k, _)| k.as_deref() == Some("response.completed"))
            .map(|(_, v)| v["response"]["output"][0]["content"][0]["annotations"].clone())
            .unwrap();
        if p == Protocol::Cohere {
            // A document citation names no page: nothing a Responses client could follow.
            assert!(added.is_empty() && done == json!([]), "{p:?}: {added:?}");
        } else {
            assert_eq!(added.len(), 1, "{p:?}");
            assert_eq!(added[0]["type"], "url_citation");
            assert_eq!(added[0]["url"], url, "{p:?}");
            assert_eq!(added[0]["end_index"], 15, "{p:?}");
            assert_eq!(done, json!([added[0]]), "{p:?}");
        }
    }
}

#[test]
fn anthropic_thinking_reaches_a_responses_client_as_an_item_it_can_send_back() {
    use busbar_codec::ir::Block;
    let src = fixture("anthropic", "stream_thinking_tool_use.sse");
    let ev = events(&transcode(
        Protocol::Anthropic,
        Protocol::OpenAiResponses,
        &[&src],
        true,
    ));
    let (_, done) = ev
        .iter()
        .find(|(k, _)| k.as_deref() == Some("response.completed"))
        .unwrap();
    let item = &done["response"]["output"][0];
    assert_eq!(item["type"], "reasoning");
    assert!(
        item["id"].as_str().unwrap().starts_with("rs_busbar_"),
        "{item}"
    );
    assert_eq!(
        item["encrypted_content"],
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
    );
    // Read back as a Responses client would send it: the same signed thinking block.
    let r =
        busbar_codec::responses::parse_response(done["response"].to_string().as_bytes()).unwrap();
    match &r.content[0] {
        Block::Thinking { text, signature } => {
            assert!(!text.is_empty());
            assert_eq!(
                signature.as_deref(),
                Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds")
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A gap deadline watches whole upstream events: bytes that trickle in without completing one
/// do not move the count, in passthrough and transcoded alike, and pings count.
#[test]
fn upstream_events_count_whole_events_only() {
    let stream = b"event: ping\ndata: {\"type\": \"ping\"}\n\nevent: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n";
    let first_end = stream.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    for mut t in [
        Transcoder::new(Protocol::Anthropic, Protocol::OpenAiChat, 0, false),
        Transcoder::passthrough(Protocol::Anthropic, false, false),
    ] {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for b in stream.iter() {
            t.feed(std::slice::from_ref(b), &mut out).unwrap();
            seen.push(t.upstream_events());
        }
        assert_eq!(seen[first_end - 2], 0, "no event before its blank line");
        assert_eq!(seen[first_end - 1], 1, "the ping is whole");
        assert_eq!(seen[stream.len() - 2], 1, "message_start still arriving");
        assert_eq!(seen[stream.len() - 1], 2);
    }
}
