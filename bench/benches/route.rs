//! Decision cost of the routing policies over 5 candidates: each built-in, and a 20-line Rhai
//! script (`examples/rhai/route.rhai`) in its sandbox with the deadline checked.
//!
//! `cargo bench -p busbar-bench --bench route`; criterion reports the mean and its interval;
//! `p50/p99` come from `route_percentiles` below (printed once, from 200k timed decisions).

use busbar_core::route::script::{Script, ScriptLimits, Stage};
use busbar_core::route::{Builtin, Candidate, LaneState, SmoothWeighted, Summary, order_builtin};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

fn candidates() -> Vec<Candidate<'static>> {
    let names = [
        "gpt-4o-mini",
        "claude-haiku",
        "gemini-flash",
        "command-r",
        "llama-70b",
    ];
    let providers = ["openai", "anthropic", "gemini", "cohere", "bedrock"];
    (0..5)
        .map(|i| Candidate {
            name: names[i],
            provider: providers[i],
            member: i,
            weight: 1 + i as u32,
            input_price: 0.1 + i as f64,
            output_price: 0.4 + 2.0 * i as f64,
            estimated_cost: 0.0001 * (5 - i) as f64,
            context_window: Some(128_000),
            in_flight: 3 * i as u32,
            max_concurrency: 64,
            latency_ms: Some(300.0 + 50.0 * i as f64),
            ttft_ms: Some(80.0 + 10.0 * i as f64),
            requests_left: Some(0.9 - 0.1 * i as f64),
            tokens_left: None,
            state: LaneState::Closed,
        })
        .collect()
}

fn summary() -> Summary {
    Summary {
        protocol: "openai",
        model: "smart".into(),
        messages: 3,
        estimated_tokens: 420,
        max_output_tokens: Some(256),
        tools: true,
        stream: false,
        key: Some("team-a".into()),
        environment: Some("production".into()),
        headers: vec![("x-team".into(), "a".into())],
    }
}

/// The example script, or the one `BUSBAR_ROUTE_SCRIPT` names (to compare variants).
fn script() -> Script {
    let other = std::env::var("BUSBAR_ROUTE_SCRIPT")
        .ok()
        .map(|p| std::fs::read_to_string(p).expect("BUSBAR_ROUTE_SCRIPT"));
    let src = other
        .as_deref()
        .unwrap_or(include_str!("../../examples/rhai/route.rhai"));
    Script::compile(
        "route.rhai",
        src,
        Stage::Route,
        ScriptLimits::default(),
        Rc::new(Instant::now),
    )
    .expect("the example compiles")
}

/// p50 and p99 of `n` timed runs of `f`, in microseconds.
fn percentiles(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<u128> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_nanos()
        })
        .collect();
    t.sort_unstable();
    (t[n / 2] as f64 / 1e3, t[n * 99 / 100] as f64 / 1e3)
}

fn route(c: &mut Criterion) {
    let cands = candidates();
    let req = summary();
    let mut rot = SmoothWeighted::new(&[1, 2, 3, 4, 5]);
    let mut out = Vec::with_capacity(5);
    let mut g = c.benchmark_group("route");
    for (b, name) in Builtin::ALL {
        g.bench_function(name, |bench| {
            bench.iter(|| {
                order_builtin(b, black_box(&req), black_box(&cands), &mut rot, &mut out);
                black_box(&out);
            })
        });
    }
    let s = script();
    g.bench_function("script_20_lines", |bench| {
        bench.iter(|| {
            black_box(
                s.route(black_box(&req), black_box(&cands))
                    .expect("decides"),
            )
        })
    });
    g.finish();

    // Tail latency, which criterion's mean does not show.
    for (b, name) in Builtin::ALL {
        let (p50, p99) = percentiles(200_000, || {
            order_builtin(b, &req, &cands, &mut rot, &mut out);
            black_box(&out);
        });
        println!("route/{name}: p50 {p50:.3} us, p99 {p99:.3} us");
    }
    let (p50, p99) = percentiles(200_000, || {
        black_box(s.route(&req, &cands).expect("decides"));
    });
    println!("route/script_20_lines: p50 {p50:.3} us, p99 {p99:.3} us");
    // The cost of calling a script at all (the request and candidates as Rhai values).
    let empty = Script::compile(
        "empty.rhai",
        "fn route(request, candidates) { [0] }",
        Stage::Route,
        ScriptLimits::default(),
        Rc::new(Instant::now),
    )
    .expect("compiles");
    let (p50, p99) = percentiles(200_000, || {
        black_box(empty.route(&req, &cands).expect("decides"));
    });
    println!("route/script_empty: p50 {p50:.3} us, p99 {p99:.3} us");
}

criterion_group! {
    name = routing;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = route
}
criterion_main!(routing);
