//! All 30 cross pairs at the codec level, over every protocol's documented fixtures: a request
//! (or response) of protocol A, written as protocol B and read back as B, still says the same
//! thing in everything all six protocols can express: the conversation's text, in order, who
//! said it, every tool call (name and arguments) and tool result, with calls and results still
//! paired by id; for responses also the stop reason and the output token count. And every
//! translation either carries a field or names it in the loss report: a B body never holds
//! less than the projection of A.

mod common;
use common::fixture;

use busbar_codec::Protocol;
use busbar_codec::ir::{Block, LossReport, Media, Request, Response, Role, StopReason};
use busbar_codec::translate::{parse_request, parse_response, write_request, write_response};
use serde_json::Value;
use std::collections::HashMap;

fn dir(p: Protocol) -> &'static str {
    p.as_str()
}

fn fixtures(p: Protocol, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir(p));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .map(|n| {
            let b = fixture(dir(p), &n);
            (n, b)
        })
        .collect();
    out.sort();
    out
}

/// One comparable step of a conversation.
#[derive(Debug, PartialEq)]
enum Step {
    Text {
        assistant: bool,
        text: String,
    },
    Call {
        id: usize,
        name: String,
        input: Value,
    },
    Result {
        id: usize,
        text: String,
    },
}

/// Ids renumbered by first appearance, so minted ids (Gemini) compare by pairing, not spelling.
struct Ids(HashMap<String, usize>);

impl Ids {
    fn of(&mut self, id: &str) -> usize {
        let n = self.0.len();
        *self.0.entry(id.to_string()).or_insert(n)
    }
}

/// Text without its whitespace: protocols join a speaker's adjacent text blocks with "", "\n"
/// or "\n\n", and the words are what must survive.
fn squeeze(t: &str) -> String {
    t.chars().filter(|c| !c.is_whitespace()).collect()
}

fn text_of(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text, .. } | Block::Refusal { text } => Some(squeeze(text)),
            _ => None,
        })
        .collect()
}

fn steps(turns: &[(bool, &[Block])], ids: &mut Ids) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for (assistant, blocks) in turns {
        for b in *blocks {
            let step = match b {
                // A refusal is text wherever the target has no refusal type, and so is a
                // document given as plain text.
                Block::Text { text, .. }
                | Block::Refusal { text }
                | Block::Document {
                    source: Media::Text { text, .. },
                    ..
                } => Step::Text {
                    assistant: *assistant,
                    text: squeeze(text),
                },
                Block::ToolUse {
                    id, name, input, ..
                } => Step::Call {
                    id: ids.of(id),
                    name: name.clone(),
                    input: input.clone(),
                },
                Block::ToolResult {
                    tool_use_id,
                    content,
                    ..
                } => Step::Result {
                    id: ids.of(tool_use_id),
                    // A JSON result may come back with its keys in another order.
                    text: serde_json::from_str::<Value>(&text_of(content))
                        .map_or_else(|_| text_of(content), |v| squeeze(&v.to_string())),
                },
                _ => continue,
            };
            // Adjacent text of one speaker may be joined or split by a protocol: compare joined.
            if let (
                Some(Step::Text {
                    assistant: a,
                    text: t,
                }),
                Step::Text {
                    assistant: b,
                    text: u,
                },
            ) = (out.last_mut(), &step)
                && a == b
            {
                t.push_str(u);
                continue;
            }
            out.push(step);
        }
    }
    out
}

fn request_projection(r: &Request) -> (String, Vec<Step>) {
    let mut system: Vec<String> = vec![text_of(&r.system)];
    let mut turns: Vec<(bool, &[Block])> = Vec::new();
    for m in &r.messages {
        match m.role {
            Role::System | Role::Developer => system.push(text_of(&m.content)),
            Role::Assistant => turns.push((true, &m.content)),
            Role::User | Role::Tool => turns.push((false, &m.content)),
        }
    }
    let system = system.concat();
    (system, steps(&turns, &mut Ids(HashMap::new())))
}

fn stop_class(s: &Option<StopReason>) -> &'static str {
    match s {
        Some(StopReason::ToolUse) => "tool",
        Some(StopReason::MaxTokens) => "length",
        _ => "other",
    }
}

fn response_projection(r: &Response) -> (Vec<Step>, &'static str, u64) {
    (
        steps(&[(true, &r.content)], &mut Ids(HashMap::new())),
        stop_class(&r.stop_reason),
        r.usage.output,
    )
}

#[test]
fn every_request_fixture_through_every_other_protocol() {
    let mut pairs = 0;
    for src in Protocol::ALL {
        for (name, body) in fixtures(src, "request") {
            let ir = parse_request(src, &body, "model-x")
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", src.as_str()));
            let want = request_projection(&ir);
            for dst in Protocol::ALL.into_iter().filter(|d| *d != src) {
                let mut loss = LossReport::default();
                let out = write_request(dst, &ir, 1024, &mut loss);
                let back = parse_request(dst, &out, "model-x").unwrap_or_else(|e| {
                    panic!(
                        "{} {name} -> {}: the written body does not parse: {e}\n{}",
                        src.as_str(),
                        dst.as_str(),
                        String::from_utf8_lossy(&out)
                    )
                });
                let got = request_projection(&back);
                assert_eq!(
                    got,
                    want,
                    "{} {name} -> {}; lost: {:?}",
                    src.as_str(),
                    dst.as_str(),
                    loss.dropped
                );
                pairs += 1;
            }
        }
    }
    assert!(pairs >= 30 * 2, "{pairs} translations");
}

#[test]
fn every_response_fixture_through_every_other_protocol() {
    let mut pairs = 0;
    for src in Protocol::ALL {
        for (name, body) in fixtures(src, "response") {
            let ir = parse_response(src, &body)
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", src.as_str()));
            let want = response_projection(&ir);
            for dst in Protocol::ALL.into_iter().filter(|d| *d != src) {
                let mut loss = LossReport::default();
                let out = write_response(dst, &ir, 1_700_000_000, &mut loss);
                let back = parse_response(dst, &out).unwrap_or_else(|e| {
                    panic!(
                        "{} {name} -> {}: the written body does not parse: {e}",
                        src.as_str(),
                        dst.as_str()
                    )
                });
                assert_eq!(
                    response_projection(&back),
                    want,
                    "{} {name} -> {}; lost: {:?}",
                    src.as_str(),
                    dst.as_str(),
                    loss.dropped
                );
                pairs += 1;
            }
        }
    }
    assert!(pairs >= 30 * 2, "{pairs} translations");
}
