//! Observability through the real binary: `GET /metrics` (admin listener, and the data
//! listener when configured) counted by the shards and merged at scrape time; OTLP spans with
//! the GenAI conventions at a real OTLP/HTTP receiver on loopback, following the caller's
//! `traceparent` and passing busbar's on to the provider; the access log with request ids.

use busbar_tests::{Busbar, Client, DRIVERS, MockProvider, OtlpReceiver, Response, eventually};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Scraped samples: (name, sorted labels) -> value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// An OpenAI-protocol and an Anthropic-protocol provider on one mock; `good`, `bad` (the
/// mock fails it with 503) and pool `p` that puts the cheaper `bad` first.
fn config(mock: &MockProvider, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 2
[breaker]
enabled = false
[providers.oai]
protocol = "openai"
base_url = "http://{m}/v1"
[providers.claude]
protocol = "anthropic"
base_url = "http://{m}/v1"
[models.good]
provider = "oai"
input_price = 2.0
output_price = 8.0
[models.bad]
provider = "oai"
upstream = "m-bad"
input_price = 0.5
output_price = 1.0
[models.sonnet]
provider = "claude"
[pools.p]
members = [{{ model = "good" }}, {{ model = "bad" }}]
policy = "cheapest"
{extra}
"#,
        m = mock.addr
    )
}

fn admin(b: &Busbar, method: &str, path: &str, body: Option<Value>) -> Response {
    let text = body.map(|v| v.to_string());
    Client::connect(b.admin.expect("admin listener")).request(method, path, text.as_deref(), &[])
}

fn chat(b: &Busbar, model: &str, text: &str, headers: &[(&str, &str)]) -> Response {
    let body =
        json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": text}]});
    Client::connect(b.addr).post_json("/v1/chat/completions", &body.to_string(), headers)
}

/// The text exposition as (name, sorted labels) -> value, checking its shape on the way:
/// every sample belongs to a family announced by `# HELP` and `# TYPE` before it.
fn scrape(text: &str) -> Samples {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type of {name}: {kind}"
            );
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            families.contains_key(family),
            "sample of an undeclared family: {line}"
        );
        assert!(name.starts_with("busbar_"), "{name}");
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"").expect("label=\"value\"");
            let end = after.find('"').expect("closing quote");
            pairs.push((k.to_string(), after[..end].to_string()));
            rest = after[end + 1..].trim_start_matches(',');
        }
        pairs.sort();
        out.insert(
            (name.to_string(), pairs),
            value.parse::<f64>().expect("a number"),
        );
    }
    out
}

/// The value of `name` with exactly these labels (0 when absent).
fn value(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    m.get(&(name.to_string(), want)).copied().unwrap_or(0.0)
}

/// The sum of `name` over the samples whose labels include these.
fn sum(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| v)
        .sum()
}

fn metrics(b: &Busbar) -> Samples {
    let r = Client::connect(b.admin.expect("admin")).get("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    scrape(&r.text())
}

#[test]
fn metrics_count_requests_tokens_failovers_and_connections_across_shards() {
    for driver in DRIVERS {
        let mock = MockProvider::start(&[]);
        mock.set_faults(json!([{ "model": "m-bad", "status": 503 }]));
        let b = Busbar::start(&config(&mock, ""), driver, &[]);
        let r = admin(
            &b,
            "POST",
            "/admin/keys",
            Some(json!({"name": "team-a", "environment": "prod"})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let secret = r.json()["secret"].as_str().unwrap().to_string();
        let auth = format!("Bearer {secret}");
        let mut input = 0;
        let mut output = 0;
        for _ in 0..3 {
            let r = chat(&b, "good", "hello", &[("authorization", &auth)]);
            assert_eq!(r.status, 200, "{}", r.text());
            input += r.json()["usage"]["prompt_tokens"].as_u64().unwrap();
            output += r.json()["usage"]["completion_tokens"].as_u64().unwrap();
        }
        // Anthropic in, OpenAI out: translated, with a field OpenAI cannot carry.
        let mut dropped = String::new();
        for _ in 0..2 {
            let body = json!({"model": "good", "max_tokens": 16, "top_k": 5,
                              "messages": [{"role": "user", "content": "hello"}]});
            let r = Client::connect(b.addr).post_json(
                "/v1/messages",
                &body.to_string(),
                &[("x-api-key", &secret), ("anthropic-version", "2023-06-01")],
            );
            assert_eq!(r.status, 200, "{}", r.text());
            input += r.json()["usage"]["input_tokens"].as_u64().unwrap();
            output += r.json()["usage"]["output_tokens"].as_u64().unwrap();
            dropped = r
                .header("x-busbar-dropped")
                .expect("a loss report")
                .to_string();
        }
        // The pool: `bad` first (cheapest), 503, then `good`.
        for _ in 0..2 {
            let r = chat(&b, "p", "hello", &[("authorization", &auth)]);
            assert_eq!(r.status, 200, "{}", r.text());
            input += r.json()["usage"]["prompt_tokens"].as_u64().unwrap();
            output += r.json()["usage"]["completion_tokens"].as_u64().unwrap();
        }
        assert_eq!(
            chat(&b, "nope", "hello", &[("authorization", &auth)]).status,
            404
        );
        // A kept-alive connection stays open while the scrape happens.
        let mut held = Client::connect(b.addr);
        assert_eq!(held.get("/healthz", &[]).status, 200);

        let m = metrics(&b);
        let req = |ingress: &str, egress: &str, pool: &str, model: &str, code: &str| {
            value(
                &m,
                "busbar_requests_total",
                &[
                    ("ingress", ingress),
                    ("egress", egress),
                    ("pool", pool),
                    ("model", model),
                    ("code", code),
                ],
            )
        };
        assert_eq!(req("openai", "openai", "", "good", "200"), 3.0, "{driver}");
        assert_eq!(req("anthropic", "openai", "", "good", "200"), 2.0);
        assert_eq!(req("openai", "openai", "p", "good", "200"), 2.0);
        assert_eq!(req("openai", "none", "", "nope", "404"), 1.0);
        assert_eq!(
            value(
                &m,
                "busbar_failovers_total",
                &[("pool", "p"), ("model", "bad"), ("reason", "overloaded")]
            ) + value(
                &m,
                "busbar_failovers_total",
                &[("pool", "p"), ("model", "bad"), ("reason", "server_error")]
            ),
            2.0
        );
        assert_eq!(sum(&m, "busbar_failovers_total", &[("model", "good")]), 0.0);
        assert_eq!(
            value(
                &m,
                "busbar_policy_decisions_total",
                &[("pool", "p"), ("policy", "cheapest"), ("model", "bad")]
            ),
            2.0
        );
        let key = [
            ("key", "team-a"),
            ("environment", "prod"),
            ("model", "good"),
        ];
        let kind = |k: &str| {
            let mut l = key.to_vec();
            l.push(("kind", k));
            value(&m, "busbar_tokens_total", &l)
        };
        assert_eq!(kind("input"), input as f64);
        assert_eq!(kind("output"), output as f64);
        let spend = value(&m, "busbar_spend_dollars_total", &key);
        let want = (input as f64 * 2.0 + output as f64 * 8.0) / 1e6;
        assert!((spend - want).abs() < 1e-9, "spend {spend} want {want}");
        for field in dropped.split(',').map(str::trim) {
            assert_eq!(
                value(
                    &m,
                    "busbar_translation_dropped_fields_total",
                    &[
                        ("ingress", "anthropic"),
                        ("egress", "openai"),
                        ("field", field)
                    ]
                ),
                2.0,
                "{field}"
            );
        }
        assert_eq!(
            value(
                &m,
                "busbar_request_duration_seconds_count",
                &[("ingress", "openai"), ("pool", ""), ("model", "good")]
            ),
            3.0
        );
        // Every attempt that reached the provider: 3 + 2 + 2 on `good`, 2 on `bad`.
        assert_eq!(
            value(
                &m,
                "busbar_upstream_time_to_first_byte_seconds_count",
                &[("model", "good"), ("provider", "oai")]
            ),
            7.0
        );
        assert_eq!(
            value(
                &m,
                "busbar_upstream_time_to_first_byte_seconds_count",
                &[("model", "bad"), ("provider", "oai")]
            ),
            2.0
        );
        assert!(sum(&m, "busbar_overhead_seconds_count", &[]) >= 8.0);
        // Histograms are cumulative and end at +Inf = count.
        assert_eq!(
            value(
                &m,
                "busbar_request_duration_seconds_bucket",
                &[
                    ("ingress", "openai"),
                    ("pool", ""),
                    ("model", "good"),
                    ("le", "+Inf")
                ]
            ),
            3.0
        );
        for shard in ["0", "1"] {
            assert_eq!(
                value(
                    &m,
                    "busbar_lane_breaker_state",
                    &[("lane", "good"), ("shard", shard), ("state", "closed")]
                ),
                1.0
            );
            assert_eq!(
                value(
                    &m,
                    "busbar_lane_breaker_state",
                    &[("lane", "good"), ("shard", shard), ("state", "open")]
                ),
                0.0
            );
        }
        assert!(sum(&m, "busbar_open_connections", &[]) >= 1.0);
        assert_eq!(
            value(&m, "busbar_channel_full_total", &[("channel", "control")]),
            0.0
        );
        drop(held);

        // Not on the data listener unless configured.
        let r = Client::connect(b.addr).get("/metrics", &[("authorization", &auth)]);
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(
            r.text().contains("metrics_on_data_listener"),
            "{}",
            r.text()
        );
    }
}

#[test]
fn metrics_on_the_data_listener_when_configured_and_off_when_disabled() {
    let mock = MockProvider::start(&[]);
    let extra = "[[keys]]\nname = \"scraper\"\nkey_env = \"TEST_CLIENT_KEY\"\n[telemetry]\nmetrics_on_data_listener = true\n";
    let b = Busbar::start(
        &config(&mock, extra),
        DRIVERS[0],
        &[("TEST_CLIENT_KEY", "sk-scrape")],
    );
    for _ in 0..4 {
        assert_eq!(
            chat(&b, "good", "hi", &[("authorization", "Bearer sk-scrape")]).status,
            200
        );
    }
    // A client key is needed, as for any data-plane route.
    assert_eq!(Client::connect(b.addr).get("/metrics", &[]).status, 401);
    let r = Client::connect(b.addr).get("/metrics", &[("authorization", "Bearer sk-scrape")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let m = scrape(&r.text());
    // Both shards' counts, merged by the shard that took the scrape.
    assert_eq!(
        value(
            &m,
            "busbar_requests_total",
            &[
                ("ingress", "openai"),
                ("egress", "openai"),
                ("pool", ""),
                ("model", "good"),
                ("code", "200")
            ]
        ),
        4.0
    );
    assert_eq!(
        m.keys()
            .filter(|(n, _)| n == "busbar_open_connections")
            .count(),
        2
    );
    assert!(
        value(
            &m,
            "busbar_tokens_total",
            &[
                ("key", "scraper"),
                ("environment", ""),
                ("model", "good"),
                ("kind", "output")
            ]
        ) > 0.0
    );

    // metrics = false: nothing is counted on the request path.
    let off = Busbar::start(
        &config(&mock, "[telemetry]\nmetrics = false\n"),
        DRIVERS[0],
        &[],
    );
    assert_eq!(chat(&off, "good", "hi", &[]).status, 200);
    let m = metrics(&off);
    assert_eq!(sum(&m, "busbar_requests_total", &[]), 0.0);
}

#[test]
fn an_access_log_line_per_request_with_its_request_id_and_never_the_prompt_or_key() {
    for driver in DRIVERS {
        let mock = MockProvider::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let extra = format!(
            "[[keys]]\nname = \"app\"\nkey_env = \"TEST_CLIENT_KEY\"\n[telemetry]\naccess_log = \"{}\"\n",
            log.display()
        );
        let b = Busbar::start(
            &config(&mock, &extra),
            driver,
            &[("TEST_CLIENT_KEY", "sk-never-logged")],
        );
        let auth = ("authorization", "Bearer sk-never-logged");
        let prompt = "THE-PROMPT-TEXT-MUST-NOT-BE-LOGGED";
        // The caller's id is kept and returned.
        let r = chat(&b, "good", prompt, &[auth, ("x-request-id", "req-abc-123")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
        // Without one (or with one unfit for a header or a log), busbar mints one.
        let minted = chat(&b, "good", prompt, &[auth]);
        let minted_id = minted
            .header("x-request-id")
            .expect("minted id")
            .to_string();
        assert_eq!(minted_id.len(), 32);
        assert!(minted_id.bytes().all(|c| c.is_ascii_hexdigit()));
        let long = "x".repeat(200);
        let replaced = chat(&b, "good", prompt, &[auth, ("x-request-id", &long)]);
        assert_ne!(replaced.header("x-request-id"), Some(long.as_str()));
        // Errors and failovers carry it too.
        let failed = chat(&b, "nope", prompt, &[auth, ("x-request-id", "req-404")]);
        assert_eq!(failed.status, 404);
        assert_eq!(failed.header("x-request-id"), Some("req-404"));
        let streamed = Client::connect(b.addr).post_json(
            "/v1/chat/completions",
            &json!({"model": "good", "stream": true, "messages": [{"role": "user", "content": prompt}]}).to_string(),
            &[auth, ("x-request-id", "req-stream")],
        );
        assert_eq!(streamed.header("x-request-id"), Some("req-stream"));

        let mut lines: Vec<Value> = Vec::new();
        eventually(10, "five access-log lines", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            lines = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            lines.len() >= 5
        });
        assert_eq!(lines.len(), 5, "{lines:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains(prompt), "the prompt reached the access log");
        assert!(
            !text.contains("sk-never-logged"),
            "the key reached the access log"
        );
        let by_id = |id: &str| {
            lines
                .iter()
                .find(|l| l["request_id"] == id)
                .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
        };
        let first = by_id("req-abc-123");
        assert_eq!(first["status"], 200);
        assert_eq!(first["model"], "good");
        assert_eq!(first["lane"], "good");
        assert_eq!(first["provider"], "oai");
        assert_eq!(first["ingress"], "openai");
        assert_eq!(first["egress"], "openai");
        assert_eq!(first["key"], "app");
        assert_eq!(first["method"], "POST");
        assert_eq!(first["path"], "/v1/chat/completions");
        assert_eq!(
            first["output_tokens"],
            r.json()["usage"]["completion_tokens"]
        );
        assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
        assert!(first["upstream_ttfb_ms"].as_f64().unwrap() > 0.0);
        assert!(first["ts"].as_str().unwrap().ends_with('Z'));
        by_id(&minted_id);
        let nf = by_id("req-404");
        assert_eq!(nf["status"], 404);
        assert_eq!(nf["error"], "not_found");
        assert_eq!(by_id("req-stream")["stream"], true);
    }
}

#[test]
fn otlp_spans_follow_the_genai_conventions_and_the_callers_traceparent() {
    for driver in DRIVERS {
        let mock = MockProvider::start(&[]);
        mock.set_faults(json!([{ "model": "m-bad", "status": 503 }]));
        let mut otlp = OtlpReceiver::start();
        let extra = format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"busbar-under-test\"\n",
            otlp.endpoint()
        );
        let b = Busbar::start(&config(&mock, &extra), driver, &[]);
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent = "00f067aa0ba902b7";
        let r = chat(
            &b,
            "p",
            "hello",
            &[("traceparent", &format!("00-{trace}-{parent}-01"))],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let usage = r.json()["usage"].clone();
        let r2 = chat(&b, "good", "hello", &[]);
        assert_eq!(r2.status, 200);

        eventually(15, "the spans of two requests (5 spans)", || {
            otlp.spans().len() >= 5
        });
        let spans = otlp.spans().to_vec();
        assert_eq!(spans.len(), 5, "{spans:#?}");
        assert!(
            spans
                .iter()
                .all(|s| s.service.as_deref() == Some("busbar-under-test"))
        );
        let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id() == trace).collect();
        assert_eq!(
            in_trace.len(),
            3,
            "the caller's trace: the request and two attempts"
        );
        let root = in_trace
            .iter()
            .find(|s| s.parent_id() == parent)
            .expect("the request's span, child of the caller's");
        // SERVER = 2, CLIENT = 3 (OTLP span kinds).
        assert_eq!(root.span.kind, 2);
        assert_eq!(root.span.name, "chat p");
        assert_eq!(root.str("gen_ai.operation.name"), Some("chat"));
        assert_eq!(root.str("gen_ai.request.model"), Some("p"));
        assert_eq!(root.str("gen_ai.provider.name"), Some("openai"));
        assert!(root.str("gen_ai.response.model").is_some());
        assert_eq!(
            root.int("gen_ai.usage.input_tokens"),
            usage["prompt_tokens"].as_i64()
        );
        assert_eq!(
            root.int("gen_ai.usage.output_tokens"),
            usage["completion_tokens"].as_i64()
        );
        assert_eq!(root.int("gen_ai.request.max_tokens"), Some(16));
        assert_eq!(root.int("http.response.status_code"), Some(200));
        assert_eq!(root.str("busbar.pool"), Some("p"));
        assert_eq!(root.str("busbar.request_id"), r.header("x-request-id"));
        let attempts: Vec<_> = in_trace
            .iter()
            .filter(|s| s.parent_id() == root.span_id())
            .collect();
        assert_eq!(attempts.len(), 2);
        let failed = attempts
            .iter()
            .find(|s| s.str("busbar.lane") == Some("bad"))
            .expect("the failed attempt");
        let answered = attempts
            .iter()
            .find(|s| s.str("busbar.lane") == Some("good"))
            .expect("the answering attempt");
        assert_eq!(failed.span.kind, 3);
        assert_eq!(failed.int("http.response.status_code"), Some(503));
        assert!(failed.str("error.type").is_some());
        assert_eq!(answered.str("error.type"), None);
        assert_eq!(answered.str("server.address"), Some("127.0.0.1"));
        assert_eq!(
            answered.int("server.port"),
            Some(i64::from(mock.addr.port()))
        );
        assert_eq!(answered.str("gen_ai.request.model"), Some("good"));
        assert!(failed.span.start_time_unix_nano <= answered.span.start_time_unix_nano);
        assert!(root.span.start_time_unix_nano <= failed.span.start_time_unix_nano);
        assert!(answered.span.end_time_unix_nano <= root.span.end_time_unix_nano);
        // The provider was told the attempt's span, in the caller's trace.
        let sent: Vec<String> = mock
            .requests()
            .iter()
            .filter_map(|q| q["headers"]["traceparent"].as_str().map(str::to_string))
            .collect();
        assert!(
            sent.contains(&format!("00-{trace}-{}-01", failed.span_id())),
            "{sent:?}"
        );
        assert!(
            sent.contains(&format!("00-{trace}-{}-01", answered.span_id())),
            "{sent:?}"
        );
        // The second request began a trace of its own.
        let own = spans
            .iter()
            .find(|s| s.trace_id() != trace && s.span.parent_span_id.is_empty())
            .expect("a root span");
        assert_eq!(own.str("gen_ai.request.model"), Some("good"));
    }
}

#[test]
fn sampling_follows_the_ratio_for_new_traces_and_the_callers_flag_for_its_own() {
    let mock = MockProvider::start(&[]);
    let mut otlp = OtlpReceiver::start();
    let extra = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nsample_ratio = 0.0\n",
        otlp.endpoint()
    );
    let b = Busbar::start(&config(&mock, &extra), DRIVERS[0], &[]);
    for _ in 0..20 {
        assert_eq!(chat(&b, "good", "hi", &[]).status, 200);
    }
    // Not sampled by the caller: not recorded, but the context still goes on upstream.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    assert_eq!(
        chat(
            &b,
            "good",
            "hi",
            &[("traceparent", &format!("00-{trace}-b7ad6b7169203331-00"))]
        )
        .status,
        200
    );
    let sampled = "1bf7651916cd43dd8448eb211c80319d";
    assert_eq!(
        chat(
            &b,
            "good",
            "hi",
            &[("traceparent", &format!("00-{sampled}-b7ad6b7169203331-01"))]
        )
        .status,
        200
    );
    eventually(15, "the sampled request's spans", || {
        otlp.spans().len() >= 2
    });
    // Give any stray export its batch window before counting.
    std::thread::sleep(std::time::Duration::from_millis(800));
    let spans = otlp.spans();
    assert_eq!(
        spans.len(),
        2,
        "only the caller-sampled request: {spans:#?}"
    );
    assert!(spans.iter().all(|s| s.trace_id() == sampled));
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|q| q["headers"]["traceparent"].as_str().map(str::to_string))
        .collect();
    assert!(
        sent.iter()
            .any(|t| t.starts_with(&format!("00-{trace}-")) && t.ends_with("-00")),
        "{sent:?}"
    );
}
