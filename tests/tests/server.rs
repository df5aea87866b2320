//! The HTTP/1.1 server side, black-box: keep-alive, body framings, 100-continue, limits,
//! timeouts and framing refusals, under both I/O drivers. The built-in mock model answers, so
//! no provider is involved.

use busbar_tests::{Busbar, Client, DRIVERS};

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
shards = 2

[limits]
max_head_bytes = 4096
max_headers = 20
max_body_bytes = 2000
header_timeout_ms = 300
body_timeout_ms = 300
idle_timeout_ms = 300

[providers.builtin]
protocol = "openai"
mock = { tokens = 3 }

[models.mock]
provider = "builtin"
"#;

const CHAT: &str =
    r#"{"model":"mock","messages":[{"role":"user","content":"one two three four"}]}"#;

fn each_driver(test: impl Fn(&Busbar)) {
    for d in DRIVERS {
        let b = Busbar::start(CONFIG, d, &[]);
        test(&b);
        b.stop();
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        for _ in 0..5 {
            let r = c.post_json("/v1/chat/completions", CHAT, &[]);
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(
                r.json()["choices"][0]["message"]["content"],
                "one two three"
            );
            assert_eq!(r.header("connection"), None);
        }
        let r = c.get("/healthz", &[]);
        assert_eq!((r.status, r.text().as_str()), (200, r#"{"status":"ok"}"#));
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        let one = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{CHAT}",
            CHAT.len()
        );
        let two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        c.send(format!("{one}{two}{one}").as_bytes());
        assert_eq!(c.read_response().json()["object"], "chat.completion");
        assert_eq!(c.read_response().text(), r#"{"status":"ok"}"#);
        assert_eq!(c.read_response().json()["object"], "chat.completion");
    });
}

#[test]
fn chunked_request_body_split_across_writes() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        let (a, z) = CHAT.split_at(20);
        c.send(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        c.send(format!("{:x}\r\n{a}\r\n", a.len()).as_bytes());
        c.send(format!("{:x};ext=1\r\n{z}\r\n0\r\n\r\n", z.len()).as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "one two three"
        );
    });
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        c.send(format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", CHAT.len()).as_bytes());
        let interim = c.read_at_least(25);
        assert!(
            interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        c.send(CHAT.as_bytes());
        // The 100 is a head without a body; the final response follows it.
        let r1 = c.read_response();
        assert_eq!(r1.status, 100);
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.text());
    });
}

#[test]
fn oversize_head_and_too_many_headers_are_431() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        c.send(
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(5000)
            )
            .as_bytes(),
        );
        let r = c.read_response();
        assert_eq!(r.status, 431);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("larger than 4096"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("connection"), Some("close"));

        let mut c = Client::connect(b.addr);
        let many: String = (0..25).map(|i| format!("X-{i}: v\r\n")).collect();
        c.send(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 431);
        assert!(r.text().contains("too many header fields"), "{}", r.text());
    });
}

#[test]
fn oversize_body_is_413_without_reading_it() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 413);
        assert!(r.text().contains("limit of 2000 bytes"), "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");

        let mut c = Client::connect(b.addr);
        c.send(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = "a".repeat(1500);
        c.send(format!("5dc\r\n{chunk}\r\n5dc\r\n{chunk}\r\n").as_bytes());
        assert_eq!(c.read_response().status, 413);
    });
}

#[test]
fn ambiguous_framing_is_refused() {
    each_driver(|b| {
        for (req, status, says) in [
            (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "both Transfer-Encoding and Content-Length",
            ),
            (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
                400,
                "more than one Content-Length",
            ),
            (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                501,
                "transfer-coding",
            ),
            ("GET /healthz HTTP/1.1\r\n\r\n", 400, "without a Host"),
            (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
                "malformed chunked body",
            ),
        ] {
            let mut c = Client::connect(b.addr);
            c.send(req.as_bytes());
            let r = c.read_response();
            assert_eq!(r.status, status, "{req:?}: {}", r.text());
            assert!(r.text().contains(says), "{req:?}: {}", r.text());
            assert_eq!(r.header("connection"), Some("close"));
        }
    });
}

#[test]
fn slow_head_and_slow_body_are_cut_off_with_408() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 408);
        assert!(
            r.text().contains("request head not received within 300 ms"),
            "{}",
            r.text()
        );

        let mut c = Client::connect(b.addr);
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\"");
        let r = c.read_response();
        assert_eq!(r.status, 408);
        assert!(r.text().contains("body not received"), "{}", r.text());
    });
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        assert_eq!(c.get("/healthz", &[]).status, 200);
        // Nothing more is sent: busbar closes the connection after idle_timeout_ms, without a
        // response (there was no request).
        assert!(c.read_to_close().is_empty());
    });
}

#[test]
fn errors_come_back_in_openai_shape() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model":"gpt-9","messages":[]}"#,
            &[],
        );
        assert_eq!(r.status, 404);
        let e = r.json();
        assert_eq!(e["error"]["code"], "model_not_found");
        assert_eq!(e["error"]["param"], "model");
        assert!(e["error"]["message"].as_str().unwrap().contains("`gpt-9`"));

        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model": "mock", "messages": [}"#,
            &[],
        );
        assert_eq!(r.status, 400);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("line 1 column"),
            "{}",
            r.text()
        );

        let r = c.post_json("/v1/chat/completions", r#"{"messages": []}"#, &[]);
        assert_eq!(r.status, 400);
        assert!(r.text().contains("model parameter"));

        let r = c.get("/v1/chat/completions", &[]);
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("POST"));
        // HEAD gets the GET head and no body; the connection stays in step.
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut head = c.read_at_least(1);
        while !head.ends_with(b"\r\n\r\n") {
            head = c.read_at_least(head.len() + 1);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200 OK") && head.ends_with(b"\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        assert!(String::from_utf8_lossy(&head).contains("content-length: 15"));
        c.discard(head.len());
        let r = c.get("/v2/nothing", &[]);
        assert_eq!(r.status, 404);
        assert!(r.text().contains("/v2/nothing"));
        // The connection survived every one of these.
        assert_eq!(c.get("/healthz", &[]).status, 200);
    });
}

#[test]
fn models_list_and_mock_stream() {
    each_driver(|b| {
        let mut c = Client::connect(b.addr);
        let r = c.get("/v1/models", &[]);
        assert_eq!(r.json()["data"][0]["id"], "mock");
        let r = c.post_json(
            "/v1/chat/completions",
            r#"{"model":"mock","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b"}]}"#,
            &[],
        );
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        let text = r.text();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        // role, 3 tokens, finish, usage, [DONE]
        assert_eq!(events.len(), 7, "{text}");
        let usage: serde_json::Value = serde_json::from_str(&events[5][6..]).unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], 3);
    });
}

/// Control messages wake a shard's event loop while connections arrive: none of those
/// connections may be lost. (Under io_uring, an accept the kernel had completed used to be
/// dropped with its future whenever a mailbox message won the race, and its client waited for
/// ever.) Every `/stats` call sends a message to every shard.
#[test]
fn connections_arriving_while_shards_handle_messages_are_all_served() {
    each_driver(|b| {
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = Client::connect(b.admin.unwrap()).get("/stats", &[]);
                    assert_eq!(r.status, 200);
                }
            });
            let clients: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..150 {
                            // A fresh connection each time: each is an accept.
                            let r = Client::connect(b.addr).post_json(
                                "/v1/chat/completions",
                                CHAT,
                                &[],
                            );
                            assert_eq!(r.status, 200, "{}", r.text());
                        }
                    })
                })
                .collect();
            let joined: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for j in joined {
                if let Err(e) = j {
                    std::panic::resume_unwind(e);
                }
            }
        });
    });
}
