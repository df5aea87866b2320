//! Providers that speak h2: busbar offers `h2` by ALPN to `https://` providers and, when the
//! provider takes it, sends every request of a shard to that origin as a stream of one
//! connection. The provider here is a real h2 server (the `h2` crate over tokio-rustls, on a
//! runtime of the test's own) that counts connections and records each request.

use busbar_tests::{Busbar, Ca, Client, DRIVERS};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request as the provider saw it: method, URI, authorization, JSON body.
type Request = (String, String, Option<String>, Value);

/// What the h2 provider saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<Request>>,
}

fn completion(model: &str) -> String {
    json!({"id": "chatcmpl-h2", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "over h2"},
        "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    .to_string()
}

fn events(model: &str) -> Vec<String> {
    let mut out: Vec<String> = ["over", " h2"]
        .iter()
        .map(|t| {
            format!(
                "data: {}\n\n",
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]})
            )
        })
        .collect();
    out.push(format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    ));
    out.push("data: [DONE]\n\n".into());
    out
}

/// Starts the h2 provider; returns its port. With `per_connection` > 0, a connection is sent
/// GOAWAY after that many streams (as providers do to rebalance).
fn h2_provider(ca: &Ca, seen: Arc<Seen>, per_connection: usize) -> u16 {
    let config = ca.server(&["localhost"]).server_config(&[b"h2"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let seen = Arc::clone(&seen);
                tokio::task::spawn_local(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut conn) = h2::server::handshake(tls).await else {
                        return;
                    };
                    let mut streams = 0;
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        let seen = Arc::clone(&seen);
                        tokio::task::spawn_local(answer(req, respond, seen));
                        streams += 1;
                        if streams == per_connection {
                            conn.graceful_shutdown();
                        }
                    }
                });
            }
        });
    });
    port
}

async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: Arc<Seen>,
) {
    let (parts, mut body) = req.into_parts();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let v: Value = serde_json::from_slice(&data).unwrap_or(Value::Null);
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|a| a.to_str().ok())
        .map(str::to_string);
    seen.requests.lock().unwrap().push((
        parts.method.to_string(),
        parts.uri.to_string(),
        auth,
        v.clone(),
    ));
    let model = v["model"].as_str().unwrap_or("m").to_string();
    let stream = v["stream"].as_bool().unwrap_or(false);
    let ctype = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", ctype)
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(resp, false) else {
        return;
    };
    if stream {
        for e in events(&model) {
            let _ = send.send_data(Bytes::from(e), false);
            tokio::task::yield_now().await;
        }
        let _ = send.send_data(Bytes::new(), true);
    } else {
        let _ = send.send_data(Bytes::from(completion(&model)), true);
    }
}

fn config(port: u16, ca_file: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[upstream]
extra_ca_files = ["{ca_file}"]
[providers.h2p]
protocol = "openai"
base_url = "https://localhost:{port}/v1"
api_key_env = "H2_TEST_KEY"
[models.fast]
provider = "h2p"
upstream = "m-h2"
[models.claude-via-h2]
provider = "h2p"
upstream = "m-h2"
max_output_tokens = 1024
"#
    )
}

#[test]
fn an_h2_provider_gets_every_request_as_a_stream_of_one_connection() {
    let ca = Ca::new("h2 provider CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    for d in DRIVERS {
        let seen = Arc::new(Seen::default());
        let port = h2_provider(&ca, Arc::clone(&seen), 0);
        let b = Busbar::start(
            &config(port, ca_file.to_str().unwrap()),
            d,
            &[("H2_TEST_KEY", "sk-h2")],
        );
        let chat =
            json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).to_string();
        // A burst of first requests from several client connections (they share the one
        // connection the first of them makes), then sequential ones.
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let chat = chat.clone();
                let addr = b.addr;
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    (0..5)
                        .map(|_| c.post_json("/v1/chat/completions", &chat, &[]).status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().iter().all(|&s| s == 200), "{d}");
        }
        for _ in 0..10 {
            let r = Client::connect(b.addr).post_json("/v1/chat/completions", &chat, &[]);
            assert_eq!(r.status, 200, "{d}: {}", r.text());
            assert_eq!(r.json()["choices"][0]["message"]["content"], "over h2");
        }
        // Streamed through (passthrough), and translated (an Anthropic client).
        let stream = json!({"model": "fast", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let r = Client::connect(b.addr).post_json("/v1/chat/completions", &stream, &[]);
        assert_eq!(r.status, 200, "{d}");
        let text = r.text();
        assert!(
            text.contains("\"content\":\"over\"") && text.contains("data: [DONE]"),
            "{d}: {text}"
        );
        let msg = json!({"model": "claude-via-h2", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let r = Client::connect(b.addr).post_json("/v1/messages", &msg, &[]);
        assert_eq!(r.status, 200, "{d}: {}", r.text());
        assert_eq!(r.json()["content"][0]["text"], "over h2", "{d}");
        let r = Client::connect(b.addr).post_json("/v1/messages", &json!({"model": "claude-via-h2", "max_tokens": 16, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string(), &[]);
        assert_eq!(r.status, 200, "{d}");
        assert!(
            r.text().contains("event: message_stop"),
            "{d}: {}",
            r.text()
        );

        let requests = seen.requests.lock().unwrap();
        assert_eq!(requests.len(), 10 + 60 + 3, "{d}");
        for (method, uri, auth, body) in requests.iter() {
            assert_eq!(method, "POST");
            assert_eq!(
                uri,
                &format!("https://localhost:{port}/v1/chat/completions")
            );
            assert_eq!(auth.as_deref(), Some("Bearer sk-h2"));
            assert_eq!(body["model"], "m-h2");
        }
        // One shard, one origin: one connection carried them all.
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "{d}");
    }
}

#[test]
fn a_provider_that_goes_away_is_connected_to_again_without_a_failed_request() {
    let ca = Ca::new("h2 provider CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let seen = Arc::new(Seen::default());
    let port = h2_provider(&ca, Arc::clone(&seen), 5);
    let b = Busbar::start(
        &config(port, ca_file.to_str().unwrap()),
        "epoll",
        &[("H2_TEST_KEY", "sk-h2")],
    );
    let chat =
        json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let chat = chat.clone();
            let addr = b.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                (0..10)
                    .map(|_| c.post_json("/v1/chat/completions", &chat, &[]).status)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        let statuses = t.join().unwrap();
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    }
    // Every request reached the provider once, over several connections: each one the
    // provider sent away was replaced (streams it refused were sent again on the new one).
    assert_eq!(seen.requests.lock().unwrap().len(), 40);
    let connections = seen.connections.load(Ordering::SeqCst);
    assert!(connections >= 2, "{connections} connections");
}
