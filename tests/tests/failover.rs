//! Failover and circuit breaking, black-box: the real busbar in front of the real
//! `busbar-bench mock`, with faults scripted in the mock at run time (`/_mock/faults`), and
//! lane health read from busbar's admin API (`/stats`, `/healthz`).
//!
//! No test asserts a duration: waits are polls with a bound, and what is checked is who was
//! asked, what the client got, and what the lanes say.

use busbar_tests::{Busbar, Client, MockProvider, eventually};
use serde_json::{Value, json};

/// A pool of three OpenAI-protocol members on one mock, plus an Anthropic-protocol member
/// and single models; `extra` is appended (breaker, upstream, lanes settings).
fn config(mock: &MockProvider, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 2
{extra}
[providers.oai]
protocol = "openai"
base_url = "http://{m}/v1"
[providers.claude]
protocol = "anthropic"
base_url = "http://{m}/v1"
[models.m-a]
provider = "oai"
context_window = 8000
[models.m-b]
provider = "oai"
context_window = 8000
[models.m-c]
provider = "oai"
context_window = 200000
[models.c-a]
provider = "claude"
max_output_tokens = 64
[pools.three]
members = [{{ model = "m-a" }}, {{ model = "m-b" }}, {{ model = "m-c" }}]
[pools.overflow]
members = [{{ model = "m-a", weight = 10 }}, {{ model = "m-b", weight = 5 }}, {{ model = "m-c" }}]
[pools.two]
members = [{{ model = "m-a", weight = 10 }}, {{ model = "m-c" }}]
[pools.cross]
members = [{{ model = "c-a", weight = 10 }}, {{ model = "m-c" }}]
"#,
        m = mock.addr
    )
}

const BREAKER: &str = "[breaker]\nconsecutive_failures = 2\ncooldown_ms = 300\nmax_cooldown_ms = 1000\njitter = 0.0\n";

fn chat(b: &Busbar, model: &str, text: &str) -> busbar_tests::Response {
    let body =
        json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": text}]});
    Client::connect(b.addr).post_json("/v1/chat/completions", &body.to_string(), &[])
}

fn stats(b: &Busbar) -> Value {
    let r = Client::connect(b.admin.expect("admin listener")).get("/stats", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn lane(b: &Busbar, name: &str) -> Value {
    stats(b)["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .find(|l| l["lane"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no lane {name}"))
}

#[test]
fn a_pool_with_a_member_down_serves_every_request_and_probes_it_back() {
    let mock = MockProvider::start(&["--tokens", "3"]);
    mock.set_faults(json!([{ "model": "m-b", "status": 503 }]));
    let b = Busbar::start(&config(&mock, BREAKER), "epoll", &[]);
    for i in 0..60 {
        let r = chat(&b, "three", &format!("hello {i}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert!(r.json()["choices"][0]["message"]["content"].is_string());
    }
    let l = lane(&b, "m-b");
    assert_ne!(l["state"], "closed", "{l}");
    assert!(
        l["errors_by_class"]["overloaded"].as_u64() >= Some(2),
        "{l}"
    );
    assert_eq!(l["last_tripped_by"], "overloaded");
    // Tripped after 2 failures on a shard; the other shard heard of it: only a few requests
    // (2 per shard at most, plus probes that failed) ever reached the downed member.
    let reached = mock.count_for("m-b");
    assert!((2..=12).contains(&reached), "m-b was asked {reached} times");
    for name in ["m-a", "m-c"] {
        assert_eq!(lane(&b, name)["state"], "closed");
    }

    // The member recovers: a probe finds it, the lane closes on every shard, traffic returns.
    mock.clear_faults();
    let before = mock.count_for("m-b");
    eventually(15, "m-b closed again on every shard", || {
        assert_eq!(chat(&b, "three", "again").status, 200);
        let l = lane(&b, "m-b");
        l["shards"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["state"] == "closed"))
    });
    for _ in 0..9 {
        assert_eq!(chat(&b, "three", "after").status, 200);
    }
    assert!(
        mock.count_for("m-b") >= before + 3,
        "traffic came back to m-b"
    );
    b.stop();
}

#[test]
fn a_clients_bad_request_is_relayed_once_and_trips_nothing() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "status": 400 }]));
    let b = Busbar::start(&config(&mock, BREAKER), "epoll", &[]);
    for _ in 0..5 {
        let r = chat(&b, "three", "bad");
        assert_eq!(r.status, 400, "{}", r.text());
        // The provider's own body, as it sent it.
        assert_eq!(
            r.json()["error"]["type"],
            "invalid_request_error",
            "{}",
            r.text()
        );
    }
    assert_eq!(
        mock.requests().len(),
        5,
        "each bad request asked one member once"
    );
    for name in ["m-a", "m-b", "m-c"] {
        let l = lane(&b, name);
        assert_eq!(l["state"], "closed", "{l}");
        assert_eq!(l["failures"], 0, "{l}");
    }
    let total: u64 = ["m-a", "m-b", "m-c"]
        .iter()
        .map(|n| {
            lane(&b, n)["errors_by_class"]["client_error"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(total, 5);
    b.stop();
}

#[test]
fn a_context_overflow_goes_only_to_a_member_with_a_larger_window() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(
        json!([{ "model": "m-a", "fault": "context" }, { "model": "m-b", "fault": "context" }]),
    );
    let b = Busbar::start(&config(&mock, BREAKER), "epoll", &[]);
    let r = chat(&b, "overflow", "a very long prompt");
    assert_eq!(r.status, 200, "{}", r.text());
    // m-a (8k) overflowed; m-b has the same window and is skipped; m-c (200k) answered.
    assert_eq!(
        (
            mock.count_for("m-a"),
            mock.count_for("m-b"),
            mock.count_for("m-c")
        ),
        (1, 0, 1)
    );
    let l = lane(&b, "m-a");
    assert_eq!(l["errors_by_class"]["context_overflow"], 1, "{l}");
    assert_eq!(
        (l["state"].as_str(), l["failures"].as_u64()),
        (Some("closed"), Some(0))
    );

    // No larger member: the provider's overflow error, once, in its own words.
    let r = chat(&b, "m-a", "a very long prompt");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["error"]["code"],
        "context_length_exceeded",
        "{}",
        r.text()
    );
    b.stop();
}

#[test]
fn a_hung_provider_is_a_timeout_and_a_failover() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "model": "m-a", "hang": true }]));
    let extra = format!("{BREAKER}[upstream]\nresponse_head_timeout_ms = 300\n");
    let b = Busbar::start(&config(&mock, &extra), "epoll", &[]);
    let r = chat(&b, "two", "hi");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lane(&b, "m-a")["errors_by_class"]["timeout"], 1);
    // Alone, the hung model is a 504 in the caller's shape, not a stuck request.
    let r = chat(&b, "m-a", "hi");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        r.text().contains("did not answer within 300 ms"),
        "{}",
        r.text()
    );
    b.stop();
}

#[test]
fn a_stream_that_drips_without_an_event_fails_over_before_the_first_byte() {
    let mock = MockProvider::start(&["--tokens", "4"]);
    // m-a writes one byte every 50 ms: no whole event inside the 300 ms first-event deadline.
    mock.set_faults(json!([{ "model": "m-a", "drip_ms": 50 }]));
    let extra = format!("{BREAKER}[upstream]\nfirst_event_timeout_ms = 300\n");
    let b = Busbar::start(&config(&mock, &extra), "epoll", &[]);
    let body =
        json!({"model": "two", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = Client::connect(b.addr).post_json("/v1/chat/completions", &body.to_string(), &[]);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    assert_eq!(lane(&b, "m-a")["errors_by_class"]["timeout"], 1);
    b.stop();
}

#[test]
fn a_rate_limited_lane_is_left_alone_for_its_retry_after() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "model": "m-a", "status": 429, "retry_after": 30 }]));
    let b = Busbar::start(&config(&mock, BREAKER), "epoll", &[]);
    for _ in 0..20 {
        assert_eq!(chat(&b, "two", "hi").status, 200);
    }
    // One 429 with Retry-After: 30 opened the lane on every shard; nothing more was sent.
    assert_eq!(mock.count_for("m-a"), 1);
    let l = lane(&b, "m-a");
    assert_eq!(l["state"], "open", "{l}");
    assert!(l["cooldown_remaining_ms"].as_u64() > Some(25_000), "{l}");
    assert_eq!(l["last_tripped_by"], "rate_limited");
    // Asked for alone, the open lane answers at once with its own Retry-After.
    let r = chat(&b, "m-a", "hi");
    assert_eq!(r.status, 503, "{}", r.text());
    let wait: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .unwrap();
    assert!((25..=30).contains(&wait), "{wait}");
    assert!(r.text().contains("rate_limited"), "{}", r.text());
    b.stop();
}

#[test]
fn a_trip_on_one_shard_reaches_every_shard() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "model": "m-a", "status": 500 }]));
    let extra = "[breaker]\nconsecutive_failures = 2\ncooldown_ms = 60000\njitter = 0.0\n";
    let b = Busbar::start(&config(&mock, extra), "epoll", &[]);
    // One connection: its requests are served by one shard.
    let mut c = Client::connect(b.addr);
    for _ in 0..2 {
        let body = json!({"model": "m-a", "messages": [{"role": "user", "content": "x"}]});
        let r = c.post_json("/v1/chat/completions", &body.to_string(), &[]);
        assert_eq!(r.status, 500, "{}", r.text());
    }
    let l = lane(&b, "m-a");
    let shards = l["shards"].as_array().expect("shards").clone();
    assert_eq!(shards.len(), 2);
    assert!(shards.iter().all(|s| s["state"] == "open"), "{l}");
    // The shard that did not trip learned of it from the other, and says how long it took.
    assert!(l["last_change_spread_us"].is_u64(), "{l}");
    // Every further request, on any connection and shard, is refused without asking.
    for _ in 0..6 {
        assert_eq!(chat(&b, "m-a", "x").status, 503);
    }
    assert_eq!(mock.count_for("m-a"), 2);
    b.stop();
}

#[test]
fn a_hard_auth_failure_opens_the_lane_for_the_long_cooldown_loudly() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "model": "c-a", "fault": "auth" }]));
    let b = Busbar::start(&config(&mock, BREAKER), "epoll", &[]);
    // Cross protocol: an OpenAI client, an Anthropic member that refuses busbar's key.
    let r = chat(&b, "cross", "hi");
    assert_eq!(r.status, 200, "{}", r.text());
    let l = lane(&b, "c-a");
    assert_eq!(
        (l["state"].as_str(), l["last_tripped_by"].as_str()),
        (Some("open"), Some("auth_failure"))
    );
    assert!(l["cooldown_remaining_ms"].as_u64() > Some(250_000), "{l}");
    assert_eq!(l["hard_failures"], 1);
    eventually(5, "an error line names the lane", || {
        let e = b.stderr();
        e.contains("ERROR") && e.contains("c-a") && e.contains("auth_failure")
    });
    b.stop();
}

#[test]
fn healthz_is_503_only_when_nothing_can_serve() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "fault": "auth" }]));
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\n[providers.oai]\nprotocol = \"openai\"\nbase_url = \"http://{}/v1\"\n[models.only]\nprovider = \"oai\"\n",
        mock.addr
    );
    let b = Busbar::start(&cfg, "epoll", &[]);
    assert_eq!(Client::connect(b.addr).get("/healthz", &[]).status, 200);
    let admin = b.admin.expect("admin");
    assert_eq!(Client::connect(admin).get("/healthz", &[]).status, 200);
    assert_eq!(chat(&b, "only", "hi").status, 401);
    eventually(5, "both shards know the only lane is open", || {
        let s = stats(&b);
        s["lanes"][0]["shards"]
            .as_array()
            .is_some_and(|v| v.iter().all(|s| s["state"] == "open"))
    });
    let r = Client::connect(admin).get("/healthz", &[]);
    assert_eq!(
        (r.status, r.json()["lanes_serving"].as_u64()),
        (503, Some(0))
    );
    for _ in 0..4 {
        // Whichever shard answers, it knows.
        assert_eq!(Client::connect(b.addr).get("/healthz", &[]).status, 503);
    }
    b.stop();
}

#[test]
fn a_full_lane_fails_over_and_a_lone_full_lane_says_busy() {
    let mock = MockProvider::start(&[]);
    mock.set_faults(json!([{ "model": "m-a", "ttft_ms": 1500 }]));
    // One slot on m-a, no queue.
    let cfg = config(&mock, "")
        .replace("shards = 2", "shards = 1")
        .replace(
            "[models.m-a]\nprovider = \"oai\"\ncontext_window = 8000\n",
            "[models.m-a]\nprovider = \"oai\"\ncontext_window = 8000\nmax_concurrency = 1\nmax_queue = 0\n",
        );
    let b = Busbar::start(&cfg, "epoll", &[]);
    let addr = b.addr;
    let slow = std::thread::spawn(move || {
        let body = json!({"model": "m-a", "messages": [{"role": "user", "content": "slow"}]});
        Client::connect(addr).post_json("/v1/chat/completions", &body.to_string(), &[])
    });
    eventually(5, "m-a has its one request in flight", || {
        lane(&b, "m-a")["in_flight"] == 1
    });
    // The pool goes to its other member; m-a alone is busy, at once.
    let r = chat(&b, "two", "hi");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = chat(&b, "m-a", "hi");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("concurrency limit"), "{}", r.text());
    assert_eq!(slow.join().unwrap().status, 200);
    // Busy is not the provider's fault.
    assert_eq!(lane(&b, "m-a")["failures"], 0);
    b.stop();
}

#[test]
fn billing_and_network_failures_and_a_stream_broken_after_it_began_are_charged_to_their_lanes() {
    let mock = MockProvider::start(&["--tokens", "6"]);
    mock.set_faults(json!([
        { "model": "c-a", "fault": "billing" },
        { "model": "m-b", "break": "reset", "break_after": 2 }
    ]));
    // A member on a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let cfg = config(&mock, BREAKER).replace(
        "[pools.three]",
        &format!(
            "[providers.gone]\nprotocol = \"openai\"\nbase_url = \"http://{dead}/v1\"\n[models.g-a]\nprovider = \"gone\"\n[pools.gone]\nmembers = [{{ model = \"g-a\", weight = 10 }}, {{ model = \"m-c\" }}]\n[pools.three]"
        ),
    );
    let b = Busbar::start(&cfg, "epoll", &[]);

    // Billing: Anthropic's out-of-credit answer to an OpenAI client; the next member answers,
    // and the lane is out for the long cooldown.
    assert_eq!(chat(&b, "cross", "hi").status, 200);
    let l = lane(&b, "c-a");
    assert_eq!(l["last_tripped_by"], "billing_failure", "{l}");
    assert!(l["cooldown_remaining_ms"].as_u64() > Some(250_000), "{l}");

    // Network: nothing listens; the next member answers.
    assert_eq!(chat(&b, "gone", "hi").status, 200);
    assert_eq!(lane(&b, "g-a")["errors_by_class"]["network"], 1);

    // A stream reset after two deltas: the client sees the content and then the error event
    // (too late to fail over), and the lane is charged with a network failure.
    let body =
        json!({"model": "m-b", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = Client::connect(b.addr).post_json("/v1/chat/completions", &body.to_string(), &[]);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("\"content\""), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    let l = lane(&b, "m-b");
    assert_eq!(l["errors_by_class"]["network"], 1, "{l}");
    assert_eq!(l["failures"], 1, "{l}");
    b.stop();
}

#[test]
fn a_providers_own_rule_reclassifies_its_errors() {
    let mock = MockProvider::start(&[]);
    // This provider answers 400 with a message that, for it, means a passing fault.
    mock.set_faults(json!([{ "model": "m-a", "status": 400 }]));
    let cfg = config(&mock, BREAKER).replace(
        "[providers.claude]",
        "[[providers.oai.faults]]\nstatus = 400\nmessage = \"unrecognized request argument\"\nclass = \"server_error\"\n[providers.claude]",
    );
    let b = Busbar::start(&cfg, "epoll", &[]);
    // A 400 would be relayed; under the rule it is a server error, and the next member answers.
    let r = chat(&b, "two", "hi");
    assert_eq!(r.status, 200, "{}", r.text());
    let l = lane(&b, "m-a");
    assert_eq!(l["errors_by_class"]["server_error"], 1, "{l}");
    assert_eq!(l["failures"], 1, "{l}");
    b.stop();
}

#[test]
fn a_probe_that_answers_closes_the_lane_at_its_head_not_at_its_end() {
    let mock = MockProvider::start(&["--tokens", "10"]);
    mock.set_faults(json!([{ "model": "m-a", "status": 503 }]));
    let cfg = config(&mock, BREAKER).replace("shards = 2", "shards = 1");
    let b = Busbar::start(&cfg, "epoll", &[]);
    for _ in 0..2 {
        assert_eq!(chat(&b, "m-a", "x").status, 503);
    }
    assert_eq!(lane(&b, "m-a")["state"], "open");
    // The provider is back, but slow: its stream takes ~2 s (10 tokens, 200 ms apart).
    mock.set_faults(json!([{ "model": "m-a", "gap_ms": 200 }]));
    eventually(10, "the cooldown ends", || {
        lane(&b, "m-a")["state"] == "half_open"
    });
    let addr = b.addr;
    let probe = std::thread::spawn(move || {
        let body = json!({"model": "m-a", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        Client::connect(addr).post_json("/v1/chat/completions", &body.to_string(), &[])
    });
    // The lane closes as soon as the probe's answer begins, while its stream is still going:
    // other requests need not wait for the whole answer.
    let mut seen = Value::Null;
    eventually(10, "the lane closed", || {
        seen = lane(&b, "m-a");
        seen["state"] == "closed"
    });
    assert_eq!(
        seen["in_flight"], 1,
        "closed while the probe still streams: {seen}"
    );
    assert_eq!(chat(&b, "m-a", "meanwhile").status, 200);
    let r = probe.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("[DONE]"));
    b.stop();
}

#[test]
fn a_client_that_stops_reading_does_not_hold_its_lane() {
    let mock = MockProvider::start(&["--tokens", "400000"]);
    let cfg =
        config(&mock, "[limits]\nwrite_timeout_ms = 300\n").replace("shards = 2", "shards = 1");
    let b = Busbar::start(&cfg, "epoll", &[]);
    // A long stream to a client that sends its request and then reads nothing.
    let body = json!({"model": "m-a", "stream": true, "max_tokens": 400000, "messages": [{"role": "user", "content": "go"}]})
        .to_string();
    let mut c = Client::connect(b.addr);
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    eventually(10, "the stream is in flight", || {
        lane(&b, "m-a")["in_flight"] == 1
    });
    // Once the socket buffers are full, busbar gives the client write_timeout_ms, then drops
    // it: the lane's slot comes back although the client is still connected.
    eventually(20, "the slot is free again", || {
        lane(&b, "m-a")["in_flight"] == 0
    });
    assert_eq!(
        lane(&b, "m-a")["failures"],
        0,
        "a slow client is not the provider's fault"
    );
    drop(c);
    b.stop();
}
