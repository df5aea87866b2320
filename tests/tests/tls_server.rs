//! TLS termination on busbar's own listeners: HTTP/1.1 and h2 by ALPN, TLS 1.2 and 1.3, mTLS
//! refused at the handshake before any token is looked at, the handshake deadline,
//! certificates reloaded without a restart or a dropped connection, TLS and mTLS on the admin
//! listener, and h2 with prior knowledge on cleartext. The tests make their own CAs and
//! certificates (rcgen) and use real clients: rustls and curl (the Python SDKs with client
//! certificates are in tests/sdk).

use busbar_tests::{Busbar, Ca, Client, ClientTls, DRIVERS, TlsConn};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

const CHAT: &str = r#"{"model":"mock","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str =
    r#"{"model":"mock","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// A config with the built-in mock model, TLS from `dir/server.{pem,key}`, and `extra` TOML.
fn config(dir: &Path, tls_extra: &str, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 2
{extra}
[tls]
cert = "{d}/server.pem"
key = "{d}/server.key"
{tls_extra}

[providers.mock]
protocol = "openai"
mock = {{ ttft_ms = 0, token_gap_ms = 0, tokens = 8 }}
[models.mock]
provider = "mock"
"#,
        d = dir.display()
    )
}

/// curl's answer from busbar's TLS listener: (HTTP version, status, body); status 0 when no
/// response came.
fn curl(addr: SocketAddr, args: &[&str], path: &str, body: &str) -> (String, u16, String) {
    curl_url(
        &format!("https://localhost:{}{path}", addr.port()),
        args,
        body,
    )
}

/// curl's answer from `url`.
fn curl_url(url: &str, args: &[&str], body: &str) -> (String, u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .args(["-H", "content-type: application/json", "-d", body])
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut it = last.split_whitespace();
    let version = it.next().unwrap_or_default().to_string();
    let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (version, status, body.to_string())
}

fn stats(b: &Busbar) -> Value {
    Client::connect(b.admin.expect("admin"))
        .get("/stats", &[])
        .json()
}

#[test]
fn tls_serves_http1_and_h2_by_alpn_on_tls_12_and_13() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("busbar test CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cacert = ca_file.to_str().unwrap();
    for d in DRIVERS {
        let b = Busbar::start(&config(dir.path(), "", ""), d, &[]);
        // rustls, HTTP/1.1 only offered: http/1.1 chosen; TLS 1.3 by default, 1.2 on request.
        for tls12 in [false, true] {
            let tls = ClientTls {
                tls12_only: tls12,
                ..ClientTls::trusting(&ca)
            };
            let mut c = TlsConn::connect(b.addr, "localhost", &tls).expect("handshake");
            assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]), "{d}");
            let want = if tls12 {
                rustls::ProtocolVersion::TLSv1_2
            } else {
                rustls::ProtocolVersion::TLSv1_3
            };
            assert_eq!(c.version(), Some(want), "{d}");
            // Two requests on one connection: kept alive.
            for _ in 0..2 {
                let (status, body) = c
                    .request("POST", "/v1/chat/completions", CHAT, &[])
                    .unwrap();
                assert_eq!(status, 200, "{d}: {body}");
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["object"], "chat.completion", "{d}");
            }
        }
        // curl, both versions, whole and streamed.
        for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
            let (v, status, body) = curl(
                b.addr,
                &["--cacert", cacert, flag],
                "/v1/chat/completions",
                CHAT,
            );
            assert_eq!((v.as_str(), status), (version, 200), "{d} {flag}: {body}");
            let chat: Value = serde_json::from_str(&body).unwrap();
            assert!(
                chat["choices"][0]["message"]["content"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            );
            let (v, status, body) = curl(
                b.addr,
                &["--cacert", cacert, flag, "-N"],
                "/v1/chat/completions",
                STREAM,
            );
            assert_eq!((v.as_str(), status), (version, 200), "{d} {flag}: {body}");
            let events: Vec<&str> = body.lines().filter(|l| l.starts_with("data: ")).collect();
            assert!(events.len() >= 3, "{d} {flag}: {body}");
            assert_eq!(events.last(), Some(&"data: [DONE]"), "{d} {flag}");
            // An error still comes in the caller's shape over h2.
            let (v, status, body) = curl(
                b.addr,
                &["--cacert", cacert, flag],
                "/v1/chat/completions",
                r#"{"model":"nope","messages":[]}"#,
            );
            assert_eq!((v.as_str(), status), (version, 404), "{d} {flag}: {body}");
            let e: Value = serde_json::from_str(&body).unwrap();
            assert!(
                e["error"]["message"].as_str().unwrap().contains("nope"),
                "{body}"
            );
        }
        // A client that does not trust the CA gets no answer at all.
        let (_, status, _) = curl(b.addr, &["--http2"], "/v1/chat/completions", CHAT);
        assert_eq!(status, 0, "{d}");
    }
}

#[test]
fn mtls_refuses_at_the_handshake_before_any_token_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("operator CA");
    let rogue = Ca::new("someone else's CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let client_ca = dir.path().join("clients.pem");
    std::fs::write(&client_ca, ca.pem()).unwrap();
    let good = ca.client("team-a");
    let (good_cert, good_key) = good.write(dir.path(), "good");
    let bad = rogue.client("intruder");
    let (bad_cert, bad_key) = bad.write(dir.path(), "bad");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cfg = config(
        dir.path(),
        &format!("client_ca = \"{}\"", client_ca.display()),
        "[[keys]]\nname = \"app\"\nkey_env = \"MTLS_TEST_KEY\"\n",
    );
    for d in DRIVERS {
        let b = Busbar::start(&cfg, d, &[("MTLS_TEST_KEY", "bb-app-secret")]);
        let auth = [("authorization", "Bearer bb-app-secret")];
        // No certificate, or one from another CA: the handshake (or, under TLS 1.3, the
        // first read after it) fails, and no HTTP answer ever comes, whatever the token.
        for (who, tls) in [
            ("no certificate", ClientTls::trusting(&ca)),
            (
                "rogue certificate",
                ClientTls::trusting(&ca).with_identity(&bad),
            ),
        ] {
            let answered = TlsConn::connect(b.addr, "localhost", &tls)
                .and_then(|mut c| c.request("POST", "/v1/chat/completions", CHAT, &auth));
            assert!(answered.is_err(), "{d} {who}: {answered:?}");
        }
        let cacert = ca_file.to_str().unwrap();
        let (_, status, _) = curl(b.addr, &["--cacert", cacert], "/v1/chat/completions", CHAT);
        assert_eq!(status, 0, "{d}: curl without a certificate got an answer");
        // The operator's certificate passes the handshake; then the token is checked.
        let mut c = TlsConn::connect(
            b.addr,
            "localhost",
            &ClientTls::trusting(&ca).with_identity(&good),
        )
        .unwrap();
        let (status, body) = c
            .request("POST", "/v1/chat/completions", CHAT, &[])
            .unwrap();
        assert_eq!(status, 401, "{d}: {body}");
        let (status, body) = c
            .request("POST", "/v1/chat/completions", CHAT, &auth)
            .unwrap();
        assert_eq!(status, 200, "{d}: {body}");
        for flag in ["--http1.1", "--http2"] {
            for (cert, key, want) in [(&good_cert, &good_key, 200), (&bad_cert, &bad_key, 0)] {
                let (_, status, body) = curl(
                    b.addr,
                    &[
                        "--cacert",
                        cacert,
                        flag,
                        "--cert",
                        cert.to_str().unwrap(),
                        "--key",
                        key.to_str().unwrap(),
                        "-H",
                        "authorization: Bearer bb-app-secret",
                    ],
                    "/v1/chat/completions",
                    CHAT,
                );
                assert_eq!(status, want, "{d} {flag} {}: {body}", cert.display());
            }
        }
        let s = stats(&b);
        assert!(
            s["connections"]["tls_failures"].as_u64().unwrap() >= 5,
            "{d}: {s}"
        );
    }
}

#[test]
fn the_handshake_has_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("busbar test CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let b = Busbar::start(
        &config(dir.path(), "handshake_timeout_ms = 200", ""),
        "epoll",
        &[],
    );
    use std::io::{Read, Write};
    // Silent, and half a ClientHello then silent: both are closed by busbar, not left open.
    let mut silent = std::net::TcpStream::connect(b.addr).unwrap();
    let mut half = std::net::TcpStream::connect(b.addr).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .unwrap();
    for s in [&mut silent, &mut half] {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = s
            .read(&mut buf)
            .expect("closed by busbar, not by the 10 s read timeout");
        assert_eq!(n, 0);
    }
    // Not TLS at all: closed too, and the listener still serves.
    let mut plain = std::net::TcpStream::connect(b.addr).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let mut c = TlsConn::connect(b.addr, "localhost", &ClientTls::trusting(&ca)).unwrap();
    assert_eq!(
        c.request("POST", "/v1/chat/completions", CHAT, &[])
            .unwrap()
            .0,
        200
    );
    assert!(stats(&b)["connections"]["tls_failures"].as_u64().unwrap() >= 3);
}

#[test]
fn certificates_reload_without_a_restart_or_a_dropped_connection() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    old_ca.server(&["localhost"]).write(dir.path(), "server");
    let b = Busbar::start(&config(dir.path(), "", ""), "io_uring", &[]);
    let mut kept = TlsConn::connect(b.addr, "localhost", &ClientTls::trusting(&old_ca)).unwrap();
    assert_eq!(
        kept.request("POST", "/v1/chat/completions", CHAT, &[])
            .unwrap()
            .0,
        200
    );
    let reload = || Client::connect(b.admin.expect("admin")).post_json("/admin/reload", "", &[]);

    // A broken certificate file: refused with the reason, and the old certificate stays.
    std::fs::write(
        dir.path().join("server.pem"),
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let r = reload();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("tls.cert") || r.text().contains("tls"),
        "{}",
        r.text()
    );
    assert!(TlsConn::connect(b.addr, "localhost", &ClientTls::trusting(&old_ca)).is_ok());

    // New certificate from another CA: in force for the next handshake.
    new_ca.server(&["localhost"]).write(dir.path(), "server");
    let r = reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut fresh = TlsConn::connect(b.addr, "localhost", &ClientTls::trusting(&new_ca))
        .expect("new certificate served");
    assert_eq!(
        fresh
            .request("POST", "/v1/chat/completions", CHAT, &[])
            .unwrap()
            .0,
        200
    );
    assert!(
        TlsConn::connect(b.addr, "localhost", &ClientTls::trusting(&old_ca)).is_err(),
        "the old certificate is still served"
    );
    // The connection made before the reload goes on.
    for _ in 0..3 {
        assert_eq!(
            kept.request("POST", "/v1/chat/completions", CHAT, &[])
                .unwrap()
                .0,
            200
        );
    }
}

#[test]
fn the_admin_listener_has_its_own_tls_and_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("admin CA");
    ca.server(&["localhost"]).write(dir.path(), "admin");
    let ops = ca.client("operator");
    std::fs::write(dir.path().join("ops-ca.pem"), ca.pem()).unwrap();
    let cfg = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[admin.tls]
cert = "{d}/admin.pem"
key = "{d}/admin.key"
client_ca = "{d}/ops-ca.pem"
[providers.mock]
protocol = "openai"
mock = {{ tokens = 4 }}
[models.mock]
provider = "mock"
"#,
        d = dir.path().display()
    );
    let b = Busbar::start(&cfg, "epoll", &[]);
    let admin = b.admin.expect("admin");
    let mut c = TlsConn::connect(
        admin,
        "localhost",
        &ClientTls::trusting(&ca).with_identity(&ops),
    )
    .unwrap();
    let (status, body) = c.request("GET", "/stats", "", &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"lanes\""), "{body}");
    let refused = TlsConn::connect(admin, "localhost", &ClientTls::trusting(&ca))
        .and_then(|mut c| c.request("GET", "/stats", "", &[]));
    assert!(refused.is_err(), "{refused:?}");
    // The data listener stays cleartext (it has no [tls]).
    assert_eq!(
        Client::connect(b.addr)
            .post_json("/v1/chat/completions", CHAT, &[])
            .status,
        200
    );
}

#[test]
fn h2_with_prior_knowledge_on_cleartext() {
    let cfg = r#"
listen = "127.0.0.1:0"
shards = 1
[http2]
cleartext = true
[providers.mock]
protocol = "openai"
mock = { tokens = 8 }
[models.mock]
provider = "mock"
"#;
    for d in DRIVERS {
        let b = Busbar::start(cfg, d, &[]);
        let url = format!("http://127.0.0.1:{}/v1/chat/completions", b.addr.port());
        for (flag, version) in [("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")] {
            let (v, status, body) = curl_url(&url, &[flag], STREAM);
            assert_eq!((v.as_str(), status), (version, 200), "{d} {flag}: {body}");
            assert!(body.contains("data: [DONE]"), "{d} {flag}: {body}");
        }
    }
}

#[test]
fn busbar_check_reports_unusable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("busbar test CA");
    let other = Ca::new("another CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let (code, out) = busbar_tests::run_check(&config(dir.path(), "", ""));
    assert_eq!(code, 0, "{out}");
    // A key that is not the certificate's.
    let wrong = other.server(&["localhost"]);
    std::fs::write(dir.path().join("server.key"), &wrong.key_pem).unwrap();
    let (code, out) = busbar_tests::run_check(&config(dir.path(), "", ""));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not go with the certificate"), "{out}");
    // Not PEM at all.
    std::fs::write(dir.path().join("server.pem"), "hello").unwrap();
    let (code, out) = busbar_tests::run_check(&config(dir.path(), "", ""));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("tls.cert") && out.contains("not a PEM file"),
        "{out}"
    );
}

#[test]
fn a_tls_or_h2_client_gone_mid_stream_frees_its_lane_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("busbar test CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mock = busbar_tests::MockProvider::start(&[]);
    // A first token at once, the next a minute later.
    mock.set_faults(
        serde_json::json!([{"model": "slow", "ttft_ms": 0, "gap_ms": 60000, "tokens": 3}]),
    );
    let cfg = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[tls]
cert = "{d}/server.pem"
key = "{d}/server.key"
[providers.p]
protocol = "openai"
base_url = "http://{m}/v1"
[models.slow]
provider = "p"
"#,
        d = dir.path().display(),
        m = mock.addr
    );
    let body = r#"{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    for d in DRIVERS {
        let b = Busbar::start(&cfg, d, &[]);
        let in_flight = |b: &Busbar| {
            stats(b)["lanes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["lane"] == "slow")
                .unwrap()["in_flight"]
                .clone()
        };
        // HTTP/1.1 over TLS: the first event, then the client hangs up.
        let mut c = TlsConn::connect(b.addr, "localhost", &ClientTls::trusting(&ca)).unwrap();
        c.write_raw(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("data: ") {
            let more = c.read_some().unwrap();
            assert!(!more.is_empty(), "{d}: closed early");
            got.extend_from_slice(&more);
        }
        assert_eq!(in_flight(&b), 1, "{d}");
        drop(c);
        busbar_tests::eventually(20, "the TLS client's lane slot is free", || {
            in_flight(&b) == 0
        });
        // h2: curl gives up after 2 s (a stream reset, then the connection closes).
        let (_, _, streamed) = curl(
            b.addr,
            &[
                "--cacert",
                ca_file.to_str().unwrap(),
                "--http2",
                "-N",
                "--max-time",
                "2",
            ],
            "/v1/chat/completions",
            body,
        );
        assert!(
            streamed.contains("data: "),
            "{d}: the stream had begun: {streamed}"
        );
        busbar_tests::eventually(20, "the h2 client's lane slot is free", || {
            in_flight(&b) == 0
        });
    }
}
