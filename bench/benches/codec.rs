//! Criterion microbenches of the codec hot paths: the same-protocol model splice, and parse ->
//! IR -> write for each cross pair that has codecs (OpenAI Chat <-> Anthropic today), on a
//! realistic ~4 KB request and its response.
//!
//! Run: `cargo bench -p busbar-bench --bench codec`

use busbar_codec::ir::LossReport;
use busbar_codec::{anthropic, openai};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const OPENAI_REQUEST: &[u8] =
    include_bytes!("../../codec/tests/fixtures/openai/request_multiturn_tools.json");
const OPENAI_RESPONSE: &[u8] =
    include_bytes!("../../codec/tests/fixtures/openai/response_tool_calls.json");
const ANTHROPIC_REQUEST: &[u8] =
    include_bytes!("../../codec/tests/fixtures/anthropic/request_thinking_tools.json");
const ANTHROPIC_RESPONSE: &[u8] =
    include_bytes!("../../codec/tests/fixtures/anthropic/response_thinking_tool_use.json");

fn benches(c: &mut Criterion) {
    c.bench_function("openai same-protocol: scan + splice model", |b| {
        b.iter(|| {
            let head = openai::scan_request(black_box(OPENAI_REQUEST)).unwrap();
            openai::splice_model(OPENAI_REQUEST, head.model_span, "gpt-4.1-2025-04-14")
        })
    });
    c.bench_function("request openai -> anthropic", |b| {
        b.iter(|| {
            let ir = openai::parse_request(black_box(OPENAI_REQUEST)).unwrap();
            anthropic::write_request(&ir, 4096, &mut LossReport::default())
        })
    });
    c.bench_function("request anthropic -> openai", |b| {
        b.iter(|| {
            let ir = anthropic::parse_request(black_box(ANTHROPIC_REQUEST)).unwrap();
            openai::write_request(&ir, &mut LossReport::default())
        })
    });
    c.bench_function("response anthropic -> openai", |b| {
        b.iter(|| {
            let ir = anthropic::parse_response(black_box(ANTHROPIC_RESPONSE)).unwrap();
            openai::write_response(&ir, 1_700_000_000, &mut LossReport::default())
        })
    });
    c.bench_function("response openai -> anthropic", |b| {
        b.iter(|| {
            let ir = openai::parse_response(black_box(OPENAI_RESPONSE)).unwrap();
            anthropic::write_response(&ir, &mut LossReport::default())
        })
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
