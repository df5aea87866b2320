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
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n",
        ];
        let mut parts = vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        parts[0]
            .extend_from_slice(format!("{:x}\r\n{}\r\n", events[0].len(), events[0]).as_bytes());
        parts.push(format!("{:x}\r\n{}\r\n", events[1].len(), events[1]).into_bytes());
        parts.push(format!("{:x}\r\n{}\r\n0\r\n\r\n", events[2].len(), events[2]).into_bytes());
        let upstream_raw: Vec<u8> = parts.concat();
        let head_len = upstream_raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4;
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
        // The first event arrives while the provider has not sent the second: nothing is held back.
        let first = c.read_at_least(1);
        let mut seen = first;
        while !String::from_utf8_lossy(&seen).contains("\"role\"") {
            seen = c.read_at_least(seen.len() + 1);
        }
        assert!(!String::from_utf8_lossy(&seen).contains("Hel"));
        gate_tx.send(()).unwrap();
        while !String::from_utf8_lossy(&seen).contains("Hel") {
            seen = c.read_at_least(seen.len() + 1);
        }
        assert!(!String::from_utf8_lossy(&seen).contains("[DONE]"));
        gate_tx.send(()).unwrap();
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(
            r.raw_body,
            &upstream_raw[head_len..],
            "chunked body relayed byte for byte"
        );
        assert_eq!(r.text(), events.concat());
        b.stop();
    }
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
