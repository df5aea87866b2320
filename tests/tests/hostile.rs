//! Clients that are slow, greedy or malformed on purpose: the connection limit per shard (503
//! with Retry-After, not a hang), bodies that trickle or stall, request-smuggling shapes, and a
//! client that goes away mid-stream (the provider connection and the lane slot come back at
//! once, not at the stream's next event). Both I/O drivers; HTTP/1.1 here, h2 abuse in
//! tests/sdk/test_h2_abuse.py (raw frames from the `h2` package).

use busbar_tests::{Busbar, Client, DRIVERS, MockProvider, eventually};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;

const CHAT: &str = r#"{"model":"mock","messages":[{"role":"user","content":"hi"}]}"#;

fn builtin(limits: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[limits]
{limits}
[providers.builtin]
protocol = "openai"
mock = {{ tokens = 3 }}
[models.mock]
provider = "builtin"
"#
    )
}

fn stats(b: &Busbar) -> Value {
    Client::connect(b.admin.expect("admin"))
        .get("/stats", &[])
        .json()
}

#[test]
fn over_the_connection_limit_is_503_with_retry_after() {
    for d in DRIVERS {
        let b = Busbar::start(
            &builtin("max_connections = 4\nidle_timeout_ms = 30000\nheader_timeout_ms = 30000"),
            d,
            &[],
        );
        // Four connections held open (each served once, then idle).
        let mut held: Vec<Client> = (0..4)
            .map(|_| {
                let mut c = Client::connect(b.addr);
                assert_eq!(c.post_json("/v1/chat/completions", CHAT, &[]).status, 200);
                c
            })
            .collect();
        eventually(10, "four connections open", || {
            stats(&b)["connections"]["open"] == 4
        });
        // A fifth is answered, at once, in the caller's protocol, and closed.
        let mut c = Client::connect(b.addr);
        let r = c.post_json(
            "/v1/messages",
            r#"{"model":"mock","max_tokens":5,"messages":[]}"#,
            &[],
        );
        assert_eq!(r.status, 503, "{d}: {}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"), "{d}");
        assert_eq!(
            r.json()["type"],
            "error",
            "{d}: Anthropic shape: {}",
            r.text()
        );
        assert!(r.text().contains("limit of 4 connections"), "{}", r.text());
        assert!(c.read_to_close().is_empty());
        assert!(
            stats(&b)["connections"]["refused_over_limit"]
                .as_u64()
                .unwrap()
                >= 1
        );
        // The held ones still work; one closed makes room for a new one.
        assert_eq!(
            held[0].post_json("/v1/chat/completions", CHAT, &[]).status,
            200
        );
        held.pop();
        eventually(10, "a slot is free", || {
            stats(&b)["connections"]["open"] == 3
        });
        assert_eq!(
            Client::connect(b.addr)
                .post_json("/v1/chat/completions", CHAT, &[])
                .status,
            200
        );
    }
}

#[test]
fn a_trickling_body_is_cut_at_its_deadline_and_a_stalled_one_at_the_gap() {
    let b = Busbar::start(
        &builtin("body_timeout_ms = 600\nbody_gap_timeout_ms = 300"),
        "epoll",
        &[],
    );
    // One byte every 50 ms never leaves a gap, but the whole body is not in by 600 ms.
    let mut c = Client::connect(b.addr);
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    let mut s = std::net::TcpStream::connect(b.addr).unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut got = Vec::new();
    for _ in 0..400 {
        if s.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("not received within 600 ms"), "{text}");
    // The first connection sent its head and nothing more: cut at the gap.
    let r = c.read_response();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.text().contains("no request body bytes for 300 ms"),
        "{}",
        r.text()
    );
}

#[test]
fn smuggling_shapes_are_refused() {
    let b = Busbar::start(&builtin(""), "io_uring", &[]);
    for (req, status) in [
        // CL + TE, duplicate CL, CL lists and signs: refused, never guessed at.
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            400,
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n",
            400,
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n",
            400,
        ),
        // TE other than chunked alone, and TE: chunked twice.
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        // obs-fold (a field continued on the next line).
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            400,
        ),
        // A space before the colon.
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\n",
            400,
        ),
        // Bare LF inside the chunked body's framing.
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n",
            400,
        ),
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\n0\r\n\r\n",
            400,
        ),
        // Two Host fields.
        ("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ] {
        let mut c = Client::connect(b.addr);
        c.send(req.as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, status, "{req:?}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{req:?}");
        // Nothing after the refusal is read as another request.
        assert!(c.read_to_close().is_empty(), "{req:?}");
    }
}

#[test]
fn a_client_gone_mid_stream_frees_the_provider_connection_at_once() {
    let mock = MockProvider::start(&[]);
    // The provider sends a first token, then waits a minute before the next: only noticing the
    // client's departure would end this request before then.
    mock.set_faults(json!([{"model": "slow", "ttft_ms": 0, "gap_ms": 60000, "tokens": 3}]));
    let cfg = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[providers.p]
protocol = "openai"
base_url = "http://{m}/v1"
[providers.a]
protocol = "anthropic"
base_url = "http://{m}/v1"
[models.slow]
provider = "p"
input_price = 1.0
output_price = 2.0
[models.slow-translated]
provider = "a"
upstream = "slow"
input_price = 1.0
output_price = 2.0
"#,
        m = mock.addr
    );
    for d in DRIVERS {
        let b = Busbar::start(&cfg, d, &[]);
        // A governed key: each stream holds a budget reservation while it runs.
        let r = Client::connect(b.admin.expect("admin")).post_json(
            "/admin/keys",
            &json!({"name": "app", "limits": {"daily_usd": 100}}).to_string(),
            &[],
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let secret = r.json()["secret"].as_str().unwrap().to_string();
        let reserved = |b: &Busbar| {
            stats(b)["ledger"]["leases_held"]["reserved"]
                .as_u64()
                .unwrap()
        };
        // Passthrough (relay) and translated (transcoder) streams.
        for model in ["slow", "slow-translated"] {
            let body = json!({"model": model, "stream": true, "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
            let mut s = std::net::TcpStream::connect(b.addr).unwrap();
            s.write_all(
                format!(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
            // Read until the first event has arrived: the stream is under way.
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("data: ") {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).expect("first event");
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            let lane = |b: &Busbar| {
                stats(b)["lanes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["lane"] == model)
                    .cloned()
                    .unwrap()
            };
            assert_eq!(lane(&b)["in_flight"], 1, "{d} {model}");
            assert!(reserved(&b) > 0, "{d} {model}: no reservation held");
            drop(s);
            // Well before the provider's next token (a minute away): the lane slot and the
            // budget reservation both come back.
            eventually(20, "the lane slot is free", || lane(&b)["in_flight"] == 0);
            eventually(20, "the reservation is settled", || reserved(&b) == 0);
        }
    }
}
