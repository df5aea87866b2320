//! Criterion microbenches of the codec hot paths: the same-protocol model splice, and parse ->
//! IR -> write for each of the 30 cross pairs, on a realistic ~4 KB request (system prompt,
//! several turns, two tools with JSON Schemas, a tool call and its result, sampling and stop
//! settings) and its response (text, a tool call, usage).
//!
//! The input bodies are the same conversation written by each protocol's own writer, so every
//! pair translates the same content.
//!
//! Run: `cargo bench -p busbar-bench --bench codec` (add a filter such as `request/` to narrow).

use busbar_codec::ir::{
    Block, LossReport, Message, Request, Response, Role, Sampling, StopReason, Tool, Usage,
};
use busbar_codec::{Protocol, openai, translate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;

fn text(t: &str) -> Block {
    Block::Text {
        text: t.to_string(),
        citations: Vec::new(),
        cache: None,
    }
}

fn message(role: Role, content: Vec<Block>) -> Message {
    Message {
        role,
        content,
        name: None,
        ext: Default::default(),
    }
}

const PARAGRAPH: &str = "The quarterly report covers revenue, churn and support load across three \
    regions. Revenue grew in two of them; churn rose slightly where the new pricing landed first, \
    and support tickets about invoices doubled during the migration week before settling again.";

fn realistic_request() -> Request {
    let schema = json!({
        "type": "object",
        "properties": {
            "region": {"type": "string", "description": "Sales region", "enum": ["emea", "amer", "apac"]},
            "quarter": {"type": "string", "description": "Quarter such as 2026-Q3"},
            "metrics": {"type": "array", "items": {"type": "string"}, "description": "Metric names"}
        },
        "required": ["region", "quarter"]
    });
    let tools = vec![
        Tool {
            name: "get_metrics".into(),
            description: Some("Fetch business metrics for a region and quarter".into()),
            parameters: schema.clone(),
            strict: None,
            cache: None,
        },
        Tool {
            name: "open_ticket".into(),
            description: Some("Open a support ticket summarising a problem".into()),
            parameters: json!({"type": "object", "properties": {"title": {"type": "string"}, "body": {"type": "string"}, "priority": {"type": "integer"}}, "required": ["title", "body"]}),
            strict: None,
            cache: None,
        },
    ];
    let messages = vec![
        message(
            Role::User,
            vec![text(&format!(
                "{PARAGRAPH} {PARAGRAPH} {PARAGRAPH} Summarise the EMEA numbers."
            ))],
        ),
        message(
            Role::Assistant,
            vec![
                text("I will fetch the EMEA metrics first."),
                Block::ToolUse {
                    id: "call_a1".into(),
                    name: "get_metrics".into(),
                    input: json!({"region": "emea", "quarter": "2026-Q3", "metrics": ["revenue", "churn", "tickets"]}),
                    thought_signature: None,
                },
            ],
        ),
        message(
            Role::Tool,
            vec![Block::ToolResult {
                tool_use_id: "call_a1".into(),
                name: Some("get_metrics".into()),
                content: vec![text(
                    r#"{"revenue": 1250000, "churn": 0.031, "tickets": 412, "notes": "invoice migration week drove a spike"}"#,
                )],
                is_error: false,
                cache: None,
            }],
        ),
        message(
            Role::Assistant,
            vec![text(&format!(
                "EMEA revenue was 1.25M with churn at 3.1%. {PARAGRAPH} {PARAGRAPH}"
            ))],
        ),
        message(
            Role::User,
            vec![text(&format!(
                "{PARAGRAPH} {PARAGRAPH} Now compare with APAC and open a ticket if churn is above 3%."
            ))],
        ),
    ];
    Request {
        model: "bench-model".into(),
        system: vec![text(&format!(
            "You are a careful analyst. {PARAGRAPH} {PARAGRAPH} Answer in short paragraphs."
        ))],
        messages,
        tools,
        sampling: Sampling {
            temperature: Some(0.3),
            top_p: Some(0.9),
            ..Sampling::default()
        },
        max_output_tokens: Some(1024),
        stop: vec!["</answer>".into()],
        ..Request::default()
    }
}

fn realistic_response() -> Response {
    Response {
        id: "bench-1".into(),
        model: "bench-model".into(),
        content: vec![
            text(&format!("APAC is behind EMEA this quarter. {PARAGRAPH}")),
            Block::ToolUse {
                id: "call_b2".into(),
                name: "open_ticket".into(),
                input: json!({"title": "APAC churn above 3%", "body": "Churn reached 3.4% after the pricing change.", "priority": 2}),
                thought_signature: None,
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        usage: Usage {
            input: 1180,
            output: 96,
            cache_read: 512,
            ..Usage::default()
        },
        ..Response::default()
    }
}

fn benches(c: &mut Criterion) {
    let req = realistic_request();
    let resp = realistic_response();
    let requests: Vec<(Protocol, Vec<u8>)> = Protocol::ALL
        .iter()
        .map(|&p| {
            (
                p,
                translate::write_request(p, &req, 1024, &mut LossReport::default()),
            )
        })
        .collect();
    let responses: Vec<(Protocol, Vec<u8>)> = Protocol::ALL
        .iter()
        .map(|&p| {
            (
                p,
                translate::write_response(p, &resp, 1_700_000_000, &mut LossReport::default()),
            )
        })
        .collect();

    let openai_body = &requests[0].1;
    c.bench_function("splice/openai same-protocol: scan + splice model", |b| {
        b.iter(|| {
            let head = openai::scan_request(black_box(openai_body)).unwrap();
            openai::splice_model(openai_body, head.model_span, "gpt-4.1-2025-04-14")
        })
    });
    // Streaming: one long answer (signed thinking, ~64 KB of text in word-sized deltas, a tool
    // call, usage), as each provider streams it, fed in 16 KB reads (MB/s of upstream bytes,
    // one core). Transcoded to another protocol, or passed through and read on the side.
    let long_answer = {
        use busbar_codec::ir::{Block, Response, StopReason, Usage};
        let words = "the quick brown fox jumps over the lazy dog ";
        Response {
            id: "resp-bench".into(),
            model: "m".into(),
            content: vec![
                Block::Thinking {
                    text: words.repeat(40),
                    signature: Some("c2lnbmF0dXJl".repeat(20)),
                },
                Block::Text {
                    text: words.repeat(64 * 1024 / words.len()),
                    citations: vec![],
                    cache: None,
                },
                Block::ToolUse {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    input: serde_json::json!({"city": "Paris", "unit": "celsius"}),
                    thought_signature: None,
                },
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input: 1200,
                output: 15000,
                cache_read: 100,
                cache_write: 0,
                reasoning: 400,
            },
            ..Response::default()
        }
    };
    let stream_of = |p: Protocol| {
        let mut w = busbar_codec::stream::StreamWriter::new(p, 1, true);
        let mut out = Vec::new();
        for e in busbar_codec::stream::events_of(&long_answer) {
            w.event(&e, &mut out);
        }
        out
    };
    let mut group = c.benchmark_group("stream");
    for (from, to) in [
        (Protocol::Anthropic, Protocol::OpenAiChat),
        (Protocol::OpenAiChat, Protocol::Anthropic),
        (Protocol::Gemini, Protocol::Anthropic),
        (Protocol::Bedrock, Protocol::OpenAiChat),
        (Protocol::Anthropic, Protocol::Anthropic),
        (Protocol::OpenAiChat, Protocol::OpenAiChat),
    ] {
        let body = stream_of(from);
        let same = from == to;
        group.throughput(Throughput::Bytes(body.len() as u64));
        let name = if same {
            format!("{} passthrough (read on the side)", from.as_str())
        } else {
            format!("{}->{}", from.as_str(), to.as_str())
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut t = if same {
                    busbar_codec::stream::Transcoder::passthrough(from, false, false)
                } else {
                    busbar_codec::stream::Transcoder::new(from, to, 1_700_000_000, true)
                };
                let mut out = Vec::with_capacity(body.len() * 2);
                for read in black_box(&body).chunks(16 * 1024) {
                    t.feed(read, &mut out).unwrap();
                }
                t.finish(&mut out);
                assert!(t.is_complete());
                out
            })
        });
    }
    group.finish();

    for (src, body) in &requests {
        for dst in Protocol::ALL.into_iter().filter(|d| d != src) {
            let name = format!(
                "request/{}->{} ({} B)",
                src.as_str(),
                dst.as_str(),
                body.len()
            );
            c.bench_function(&name, |b| {
                b.iter(|| {
                    let ir =
                        translate::parse_request(*src, black_box(body), "bench-model").unwrap();
                    translate::write_request(dst, &ir, 1024, &mut LossReport::default())
                })
            });
        }
    }
    for (src, body) in &responses {
        for dst in Protocol::ALL.into_iter().filter(|d| d != src) {
            let name = format!(
                "response/{}->{} ({} B)",
                src.as_str(),
                dst.as_str(),
                body.len()
            );
            c.bench_function(&name, |b| {
                b.iter(|| {
                    let ir = translate::parse_response(*src, black_box(body)).unwrap();
                    translate::write_response(dst, &ir, 1_700_000_000, &mut LossReport::default())
                })
            });
        }
    }
}

criterion_group! {
    name = codec;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(codec);
