//! Start-up and shut-down: the embedded default answers with no config and no keys, `busbar
//! check` reports errors with line and column, and SIGTERM drains in-flight requests before a
//! clean exit.

use busbar_tests::{Busbar, Client, DRIVERS, run_check};
use std::net::TcpStream;

#[test]
fn the_embedded_default_answers_without_any_keys() {
    for d in DRIVERS {
        let b = Busbar::start_with(None, d, &[], &["--listen", "127.0.0.1:0"]);
        let mut c = Client::connect(b.addr);
        let models = c.get("/v1/models", &[]).json();
        let ids: Vec<&str> = models["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["mock"],
            "no provider keys in the environment: only the built-in mock"
        );
        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model":"mock","messages":[{"role":"user","content":"hi there"}]}"#,
            &[],
        );
        assert_eq!(r.status, 200);
        assert!(
            r.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with("hi there")
        );
        b.stop();
    }
}

#[test]
fn a_provider_key_in_the_environment_adds_its_models() {
    let b = Busbar::start_with(
        None,
        "epoll",
        &[("OPENAI_API_KEY", "sk-test")],
        &["--listen", "127.0.0.1:0"],
    );
    let models = Client::connect(b.addr).get("/v1/models", &[]).json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"gpt-4o-mini") && ids.contains(&"mock"),
        "{ids:?}"
    );
    b.stop();
}

#[test]
fn check_reports_line_and_column() {
    let (code, out) = run_check(
        "listen = \"127.0.0.1:1\"\n[providers.p]\nprotocol = \"openai\"\nmock = {}\n[models.m]\nprovider = \"p\"\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 providers, 1 models"), "{out}");

    let (code, out) =
        run_check("listen = \"127.0.0.1:1\"\n\n[models.m]\nprovider  = \"nowhere\"\n");
    assert_eq!(code, 2);
    assert!(
        out.contains("line 4, column 13") && out.contains("no provider named `nowhere`"),
        "{out}"
    );

    let (code, out) = run_check("listen = \"127.0.0.1:1\"\nshards = [\n");
    assert_eq!(code, 2);
    assert!(out.contains("line 2"), "{out}");
}

const SLOW: &str = r#"
listen = "127.0.0.1:0"
shards = 2
[limits]
shutdown_grace_ms = GRACE
[providers.slow]
protocol = "openai"
mock = { ttft_ms = 0, token_gap_ms = 40, tokens = 15 }
[models.slow]
provider = "slow"
"#;

fn wait_until_refused(addr: std::net::SocketAddr) {
    // A bounded poll for an observable state (the listener is gone); the pause between polls
    // only keeps the poll from spinning, nothing is timed.
    for _ in 0..10_000 {
        if TcpStream::connect(addr).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("busbar still accepts connections 10 s after SIGTERM");
}

/// Starts a streaming request on the slow model and waits until its response has begun.
fn start_slow_stream(b: &Busbar) -> Client {
    let mut streaming = Client::connect(b.addr);
    let body = r#"{"model":"slow","stream":true,"messages":[]}"#;
    streaming.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!(streaming.read_at_least(1).starts_with(b"HTTP/1.1 200"));
    streaming
}

#[test]
fn sigterm_drains_in_flight_streams_then_exits_zero() {
    for d in DRIVERS {
        let mut b = Busbar::start(&SLOW.replace("GRACE", "10000"), d, &[]);
        let mut streaming = start_slow_stream(&b);
        let mut idle = Client::connect(b.addr);
        assert_eq!(idle.get("/healthz", &[]).status, 200);

        b.terminate();
        wait_until_refused(b.addr);
        // The stream in flight runs to its end.
        let r = streaming.read_response();
        assert_eq!(r.status, 200);
        assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
        assert_eq!(
            r.text().matches("\"content\"").count(),
            16,
            "role chunk + 15 tokens"
        );
        // The idle keep-alive connection is closed, not left hanging.
        assert!(idle.read_to_close().is_empty());
        let status = b.wait();
        assert!(status.success(), "{status}: {}", b.stderr());
    }
}

#[test]
fn the_grace_period_bounds_shutdown() {
    let mut b = Busbar::start(
        &SLOW
            .replace("GRACE", "100")
            .replace("tokens = 15", "tokens = 1000"),
        "epoll",
        &[],
    );
    let mut streaming = start_slow_stream(&b);
    b.terminate();
    let status = b.wait();
    assert!(status.success(), "{status}");
    let rest = String::from_utf8_lossy(&streaming.read_to_close()).into_owned();
    assert!(
        !rest.contains("[DONE]"),
        "a 40 s stream cannot have finished in a 100 ms grace period"
    );
    assert!(b.stderr().contains("grace period over"), "{}", b.stderr());
}
