//! The same-protocol path against a scripted OpenAI provider on loopback: what goes upstream
//! (body byte for byte, model spliced, provider key injected, client key withheld), what comes
//! back (byte for byte, streamed as it arrives), connection reuse, and every upstream failure
//! rendered as an OpenAI error. Each test runs under both I/O drivers.

use busbar_tests::{Action, Busbar, Client, DRIVERS, Scripted, json_response};
use std::sync::Mutex;
use std::sync::mpsc::channel;

const PROVIDER_KEY: &str = "sk-provider-secret";
const CLIENT_KEY: &str = "bb-client-key";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[upstream]
response_head_timeout_ms = 1500
connect_timeout_ms = 2000
[providers.up]
protocol = "openai"
base_url = "http://{upstream}/v1"
api_key_env = "PROXY_TEST_PROVIDER_KEY"
[models.gpt-test]
provider = "up"
upstream = "mock-model"
[models.same-name]
provider = "up"
[[keys]]
name = "t"
key_env = "PROXY_TEST_CLIENT_KEY"
{extra}
"#
    )
}

fn start(upstream: &str, extra: &str, driver: &str) -> Busbar {
    Busbar::start(
        &config(upstream, extra),
        driver,
        &[
            ("PROXY_TEST_PROVIDER_KEY", PROVIDER_KEY),
            ("PROXY_TEST_CLIENT_KEY", CLIENT_KEY),
        ],
    )
}

fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {CLIENT_KEY}"))
}

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

#[test]
fn request_goes_up_byte_for_byte_with_the_model_spliced() {
    for d in DRIVERS {
        let p = Scripted::start(|_| Action::Reply(json_response(200, COMPLETION)));
        let b = start(&p.addr.to_string(), "", d);
        let (k, v) = auth();
        // Odd spacing, key order and escapes must survive: only the model value changes.
        let body = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo\"} ],\n  \"model\":\"gpt-test\" , \"temperature\": 0.50 }";
        let mut c = Client::connect(b.addr);
        let r = c.post_json(
            "/v1/chat/completions?trace=1",
            body,
            &[
                (k, &v),
                ("X-Custom", "kept"),
                ("OpenAI-Organization", "org-client"),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, COMPLETION.as_bytes(), "response body byte for byte");
        assert_eq!(
            r.header("x-provider"),
            Some("scripted"),
            "provider headers are relayed"
        );

        let got = p.next_request();
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/v1/chat/completions?trace=1");
        let expected = body.replace("\"gpt-test\"", "\"mock-model\"");
        assert_eq!(String::from_utf8(got.body.clone()).unwrap(), expected);
        assert_eq!(
            got.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
        assert!(
            got.headers.iter().all(|(_, v)| !v.contains(CLIENT_KEY)),
            "client key leaked upstream: {:?}",
            got.headers
        );
        assert_eq!(got.header("x-custom"), Some("kept"));
        assert_eq!(got.header("openai-organization"), None);
        assert_eq!(got.header("host"), Some(p.addr.to_string().as_str()));
        assert_eq!(
            got.header("content-length"),
            Some(expected.len().to_string().as_str())
        );

        // Same name upstream: the body is not touched at all.
        let body = r#"{"model":"same-name","messages":[]}"#;
        assert_eq!(
            c.post_json("/v1/chat/completions", body, &[(k, &v)]).status,
            200
        );
        assert_eq!(p.next_request().body, body.as_bytes());
        b.stop();
    }
}

#[test]
fn chunked_sse_passes_through_byte_for_byte_and_as_it_arrives() {
    for d in DRIVERS {
        let (gate_tx, gate_rx) = channel();
        let gate = Mutex::new(Some(gate_rx));
        let events = [
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\ndata: [DONE]\n\n",
        ];
        let mut parts = vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        parts[0]
            .extend_from_slice(format!("{:x}\r\n{}\r\n", events[0].len(), events[0]).as_bytes());
        parts.push(format!("{:x}\r\n{}\r\n", events[1].len(), events[1]).into_bytes());
        parts.push(format!("{:x}\r\n{}\r\n0\r\n\r\n", events[2].len(), events[2]).into_bytes());
        let parts_for_script = parts.clone();
        let p = Scripted::start(move |_| {
            Action::Gated(
                parts_for_script.clone(),
                gate.lock().unwrap().take().expect("one stream"),
            )
        });
        let b = start(&p.addr.to_string(), "", d);
        let (k, v) = auth();
        let mut c = Client::connect(b.addr);
        let body = r#"{"model":"gpt-test","stream":true,"messages":[]}"#;
        c.send(format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{k}: {v}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
        // The first content arrives while the provider has not sent the rest: nothing is held
        // back once the stream has content.
        let mut seen = c.read_at_least(1);
        while !String::from_utf8_lossy(&seen).contains("Hel") {
            seen = c.read_at_least(seen.len() + 1);
        }
        assert!(!String::from_utf8_lossy(&seen).contains("lo\""));
        gate_tx.send(()).unwrap();
        while !String::from_utf8_lossy(&seen).contains("lo\"") {
            seen = c.read_at_least(seen.len() + 1);
        }
        assert!(!String::from_utf8_lossy(&seen).contains("[DONE]"));
        gate_tx.send(()).unwrap();
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        // busbar asked for the usage the client did not ask for, and hid it: every other byte
        // is the provider's.
        let sent: serde_json::Value = serde_json::from_slice(&p.next_request().body).unwrap();
        assert_eq!(
            sent["stream_options"],
            serde_json::json!({"include_usage": true})
        );
        assert_eq!(sent["messages"], serde_json::json!([]));
        let all = events.concat();
        let usage_chunk = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n";
        assert_eq!(r.text(), all.replace(usage_chunk, ""));
        b.stop();
    }
}

#[test]
fn a_client_that_asks_for_usage_gets_the_providers_stream_untouched() {
    let events = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n: keep-alive comment\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n";
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{events}",
        events.len()
    );
    let p = Scripted::start(move |_| Action::Reply(reply.clone().into_bytes()));
    let b = start(&p.addr.to_string(), "", "epoll");
    let (k, v) = auth();
    let body = r#"{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let r = Client::connect(b.addr).post_json("/v1/chat/completions", body, &[(k, &v)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), events);
    let sent = p.next_request().body;
    assert_eq!(sent, body.replace("gpt-test", "mock-model").as_bytes());
    b.stop();
}

#[test]
fn close_delimited_stream_is_reframed_as_chunked() {
    for d in DRIVERS {
        let sse = "data: {\"x\":1}\n\ndata: [DONE]\n\n";
        let p = Scripted::start(move |_| {
            Action::Stream(
                vec![
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n".to_vec(),
                    sse.as_bytes()[..8].to_vec(),
                    sse.as_bytes()[8..].to_vec(),
                ],
                true,
            )
        });
        let b = start(&p.addr.to_string(), "", d);
        let (k, v) = auth();
        let mut c = Client::connect(b.addr);
        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model":"gpt-test","stream":true}"#,
            &[(k, &v)],
        );
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.text(), sse);
        // The client connection stays usable even though the provider's closed.
        assert_eq!(c.get("/healthz", &[]).status, 200);
        b.stop();
    }
}

#[test]
fn provider_errors_are_relayed_as_they_are() {
    for d in DRIVERS {
        let err = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let p = Scripted::start(move |_| {
            Action::Reply(format!("HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\ncontent-length: {}\r\n\r\n{err}", err.len()).into_bytes())
        });
        let b = start(&p.addr.to_string(), "", d);
        let (k, v) = auth();
        let r = Client::connect(b.addr).post_json(
            "/v1/chat/completions",
            r#"{"model":"gpt-test"}"#,
            &[(k, &v)],
        );
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("7"));
        assert_eq!(r.body, err.as_bytes());
        b.stop();
    }
}

#[test]
fn upstream_connections_are_kept_alive_and_stale_ones_replaced() {
    for d in DRIVERS {
        let p = Scripted::start(|_| Action::Reply(json_response(200, COMPLETION)));
        let b = start(&p.addr.to_string(), "", d);
        let (k, v) = auth();
        for _ in 0..5 {
            // A new client connection each time: the upstream connection is still reused.
            let r = Client::connect(b.addr).post_json(
                "/v1/chat/completions",
                r#"{"model":"gpt-test"}"#,
                &[(k, &v)],
            );
            assert_eq!(r.status, 200);
        }
        assert_eq!(
            p.connections(),
            1,
            "one shard, sequential requests: one upstream connection"
        );
        b.stop();

        // A provider that closes every connection after answering (without saying so): the
        // pooled connection is stale on the next request, which is retried on a fresh one.
        let p = Scripted::start(|_| Action::Stream(vec![json_response(200, COMPLETION)], true));
        let b = start(&p.addr.to_string(), "", d);
        let mut c = Client::connect(b.addr);
        for _ in 0..3 {
            let r = c.post_json(
                "/v1/chat/completions",
                r#"{"model":"gpt-test"}"#,
                &[(k, &v)],
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.body, COMPLETION.as_bytes());
        }
        assert_eq!(p.connections(), 3);
        b.stop();
    }
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

#[test]
fn unreachable_and_hung_providers_are_502_and_504() {
    for d in DRIVERS {
        let b = start(&closed_port(), "", d);
        let (k, v) = auth();
        let mut c = Client::connect(b.addr);
        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model":"gpt-test"}"#,
            &[(k, &v)],
        );
        assert_eq!(r.status, 502, "{}", r.text());
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("cannot connect") && msg.contains("up (http://127.0.0.1:"),
            "{msg}"
        );
        b.stop();

        let p = Scripted::start(|_| Action::Hang);
        let b = start(&p.addr.to_string(), "", d);
        let r = Client::connect(b.addr).post_json(
            "/v1/chat/completions",
            r#"{"model":"gpt-test"}"#,
            &[(k, &v)],
        );
        assert_eq!(r.status, 504, "{}", r.text());
        assert!(
            r.text().contains("did not answer within 1500 ms"),
            "{}",
            r.text()
        );
        b.stop();
    }
}

#[test]
fn pool_fails_over_when_a_member_cannot_be_reached_and_spreads_by_weight() {
    for d in DRIVERS {
        let live = Scripted::start(|_| Action::Reply(json_response(200, COMPLETION)));
        let other = Scripted::start(|_| Action::Reply(json_response(200, COMPLETION)));
        let extra = format!(
            r#"
[providers.dead]
protocol = "openai"
base_url = "http://{}/v1"
[providers.other]
protocol = "openai"
base_url = "http://{}/v1"
[models.dead-model]
provider = "dead"
[models.other-model]
provider = "other"
upstream = "other-upstream"
[pools.failover]
members = [{{ model = "dead-model", weight = 5 }}, {{ model = "gpt-test", weight = 1 }}]
[pools.spread]
members = [{{ model = "gpt-test", weight = 3 }}, {{ model = "other-model", weight = 1 }}]
"#,
            closed_port(),
            other.addr
        );
        let b = start(&live.addr.to_string(), &extra, d);
        let (k, v) = auth();
        let mut c = Client::connect(b.addr);
        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model":"failover"}"#,
            &[(k, &v)],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            String::from_utf8(live.next_request().body)
                .unwrap()
                .contains("\"mock-model\"")
        );

        for _ in 0..8 {
            assert_eq!(
                c.post_json("/v1/chat/completions", r#"{"model":"spread"}"#, &[(k, &v)])
                    .status,
                200
            );
        }
        let mut to_live = 0;
        while live.try_next().is_some() {
            to_live += 1;
        }
        let mut to_other = 0;
        while let Some(r) = other.try_next() {
            assert_eq!(r.body, br#"{"model":"other-upstream"}"#);
            to_other += 1;
        }
        assert_eq!((to_live, to_other), (6, 2), "3:1 weights over 8 requests");
        b.stop();
    }
}

#[test]
fn provider_without_its_key_is_503_naming_the_variable() {
    let p = Scripted::start(|_| Action::Reply(json_response(200, COMPLETION)));
    let cfg = config(&p.addr.to_string(), "");
    let b = Busbar::start(&cfg, "epoll", &[("PROXY_TEST_CLIENT_KEY", CLIENT_KEY)]);
    let (k, v) = auth();
    let r = Client::connect(b.addr).post_json(
        "/v1/chat/completions",
        r#"{"model":"gpt-test"}"#,
        &[(k, &v)],
    );
    assert_eq!(r.status, 503);
    assert!(r.text().contains("PROXY_TEST_PROVIDER_KEY"), "{}", r.text());
    assert_eq!(p.connections(), 0);
    b.stop();
}

fn sse_reply(events: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{events}\r\n0\r\n\r\n",
        events.len()
    )
    .into_bytes()
}

const GOOD_STREAM: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fine\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

#[test]
fn a_stream_that_fails_before_its_first_event_is_replaced_by_the_next_member() {
    // Four ways to fail before any content: an error event first, a 200 whose body ends at
    // once, a 503, and (across protocols) an Anthropic stream that is overloaded after
    // message_start.
    let failing: Vec<(&str, Action)> = vec![
        (
            "openai",
            Action::Reply(sse_reply(
                "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n",
            )),
        ),
        (
            "openai",
            Action::Stream(
                vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n".to_vec()],
                true,
            ),
        ),
        (
            "openai",
            Action::Reply(json_response(
                503,
                r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            )),
        ),
        (
            "anthropic",
            Action::Reply(sse_reply(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            )),
        ),
    ];
    for (protocol, action) in failing {
        let action = std::sync::Mutex::new(Some(action));
        let bad = Scripted::start(move |_| {
            action
                .lock()
                .unwrap()
                .take()
                .unwrap_or(Action::Reply(sse_reply(GOOD_STREAM)))
        });
        let good = Scripted::start(|_| Action::Reply(sse_reply(GOOD_STREAM)));
        let extra = format!(
            r#"
[providers.bad]
protocol = "{protocol}"
base_url = "http://{}/v1"
api_key_env = "PROXY_TEST_PROVIDER_KEY"
[models.bad-model]
provider = "bad"
[pools.steady]
members = [{{ model = "bad-model", weight = 1000 }}, {{ model = "gpt-test", weight = 1 }}]
"#,
            bad.addr
        );
        let b = start(&good.addr.to_string(), &extra, "epoll");
        let (k, v) = auth();
        let r = Client::connect(b.addr).post_json(
            "/v1/chat/completions",
            r#"{"model":"steady","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            &[(k, &v)],
        );
        assert_eq!(r.status, 200, "{protocol}: {}", r.text());
        assert_eq!(
            r.text(),
            GOOD_STREAM,
            "{protocol}: only the good member's stream"
        );
        assert!(
            bad.try_next().is_some(),
            "{protocol}: the first member was tried"
        );
        assert!(good.try_next().is_some(), "{protocol}: then the next");
        b.stop();
    }
}

#[test]
fn a_lone_provider_that_fails_before_its_stream_begins_is_an_error_response() {
    let p = Scripted::start(|_| {
        Action::Reply(sse_reply(
            "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n",
        ))
    });
    let b = start(&p.addr.to_string(), "", "epoll");
    let (k, v) = auth();
    let r = Client::connect(b.addr).post_json(
        "/v1/chat/completions",
        r#"{"model":"gpt-test","stream":true,"messages":[]}"#,
        &[(k, &v)],
    );
    // Nothing was streamed yet, so the client gets a plain error it can retry on.
    assert_eq!(r.status, 502, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("The server had an error"), "{msg}");
    assert_eq!(r.header("x-busbar-upstream-error"), Some("server_error"));
    b.stop();
}

#[test]
fn a_stream_that_stalls_after_its_first_content_ends_with_an_error_event() {
    let (gate_tx, gate_rx) = channel::<()>();
    let gate = Mutex::new(Some(gate_rx));
    let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    let parts = vec![
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
            first.len()
        )
        .into_bytes(),
        b"0\r\n\r\n".to_vec(),
    ];
    let p = Scripted::start(move |_| {
        Action::Gated(
            parts.clone(),
            gate.lock().unwrap().take().expect("one stream"),
        )
    });
    let config = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[upstream]
event_gap_timeout_ms = 300
[providers.up]
protocol = "openai"
base_url = "http://{}/v1"
[models.gpt-test]
provider = "up"
"#,
        p.addr
    );
    let b = Busbar::start(&config, "epoll", &[]);
    let r = Client::connect(b.addr).post_json(
        "/v1/chat/completions",
        r#"{"model":"gpt-test","stream":true,"messages":[]}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with(first), "{text}");
    assert!(
        text.contains("\"error\"") && text.contains("next event did not arrive within 300 ms"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    drop(gate_tx);
    b.stop();
}
