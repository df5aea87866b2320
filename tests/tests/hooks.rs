//! The programmable request path, black-box: routing policies (built-in, Rhai, webhook),
//! the before_forward and after_response hooks with the example hook servers in `examples/`
//! (Python and Node), and config reload. The real busbar in front of the real
//! `busbar-bench mock`; what is asserted is who the mock was asked with what, what the client
//! got, and what `/stats` counts. No test asserts a duration.

use busbar_tests::{Busbar, Client, MockProvider};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// One of the example hook servers, running.
struct HookServer {
    child: Child,
    addr: SocketAddr,
}

impl HookServer {
    fn start(lang: &str, mode: &str) -> HookServer {
        let (prog, script) = match lang {
            "python" => ("python3", repo().join("examples/python/hooks.py")),
            _ => ("node", repo().join("examples/node/hooks.js")),
        };
        let mut child = Command::new(prog)
            .arg(&script)
            .args(["--port", "0", "--mode", mode])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {prog} {}: {e}", script.display()));
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("hook server's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("hook server said `{line}`"))
            .parse()
            .expect("hook address");
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut sink);
        });
        HookServer { child, addr }
    }

    fn counts(&self) -> Value {
        Client::connect(self.addr).get("/count", &[]).json()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three OpenAI-protocol models of different prices on one mock, an Anthropic-protocol one,
/// and `extra` (pools, hooks).
fn config(mock: &MockProvider, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[providers.oai]
protocol = "openai"
base_url = "http://{m}/v1"
[providers.claude]
protocol = "anthropic"
base_url = "http://{m}/v1"
[models.dear]
provider = "oai"
input_price = 10.0
output_price = 30.0
[models.mid]
provider = "oai"
input_price = 1.0
output_price = 3.0
[models.cheap]
provider = "oai"
input_price = 0.1
output_price = 0.4
[models.sonnet]
provider = "claude"
input_price = 3.0
output_price = 15.0
{extra}
"#,
        m = mock.addr
    )
}

fn chat(b: &Busbar, model: &str, text: &str, headers: &[(&str, &str)]) -> busbar_tests::Response {
    let body =
        json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": text}]});
    Client::connect(b.addr).post_json("/v1/chat/completions", &body.to_string(), headers)
}

fn stats(b: &Busbar) -> Value {
    Client::connect(b.admin.expect("admin"))
        .get("/stats", &[])
        .json()
}

/// The models the mock was asked for, in order.
fn asked(mock: &MockProvider) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str()?).ok()?;
            Some(body["model"].as_str()?.to_string())
        })
        .collect()
}

fn script_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write script");
    p.display().to_string()
}

#[test]
fn cheapest_picks_the_cheapest_member_and_fastest_learns_latency() {
    let mock = MockProvider::start(&[]);
    let b = Busbar::start(
        &config(
            &mock,
            r#"
[pools.thrifty]
policy = "cheapest"
members = [{ model = "dear", weight = 10 }, { model = "mid" }, { model = "cheap" }]
[pools.quick]
policy = "fastest"
members = [{ model = "dear" }, { model = "mid" }]
"#,
        ),
        "io_uring",
        &[],
    );
    for _ in 0..6 {
        assert_eq!(chat(&b, "thrifty", "hi", &[]).status, 200);
    }
    assert_eq!(asked(&mock), vec!["cheap"; 6], "weight does not beat price");

    // `dear` answers its first token 150 ms late: once each member has a sample, `fastest`
    // keeps to `mid`.
    mock.set_faults(json!([{"model": "dear", "ttft_ms": 150}]));
    let before = asked(&mock).len();
    for _ in 0..10 {
        assert_eq!(chat(&b, "quick", "hi", &[]).status, 200);
    }
    let got: Vec<String> = asked(&mock)[before..].to_vec();
    let dear = got.iter().filter(|m| *m == "dear").count();
    assert_eq!(
        dear, 1,
        "one exploratory request to the slow member, then none: {got:?}"
    );
    b.stop();
}

const ROUTE_SCRIPT: &str = r#"
fn route(request, candidates) {
    if request.headers["x-team"] == "blocked" {
        return #{ reject: true, status: 403, message: "team blocked by policy" };
    }
    let prefer = request.headers["x-prefer"];
    let out = [];
    for c in candidates { if c.name == prefer { out.push(c.name); } }
    for c in candidates { if c.name != prefer { out.push(c.name); } }
    out
}
"#;

#[test]
fn a_rhai_script_orders_and_rejects_and_a_runaway_one_falls_back() {
    let mock = MockProvider::start(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let good = script_file(&dir, "route.rhai", ROUTE_SCRIPT);
    let spin = script_file(
        &dir,
        "spin.rhai",
        "fn route(request, candidates) { let n = 0; loop { n += 1; } }",
    );
    let huge = script_file(
        &dir,
        "huge.rhai",
        "fn route(request, candidates) { let s = \"x\"; loop { s += s; } }",
    );
    let deep = script_file(
        &dir,
        "deep.rhai",
        "fn f(n) { f(n + 1) }\nfn route(request, candidates) { f(0) }",
    );
    let b = Busbar::start(
        &config(
            &mock,
            &format!(
                r#"
[pools.scripted]
policy = "script"
script = "{good}"
headers = ["x-team", "x-prefer"]
members = [{{ model = "dear" }}, {{ model = "mid" }}, {{ model = "cheap" }}]
[pools.spin]
policy = "script"
script = "{spin}"
fallback = "cheapest"
members = [{{ model = "dear" }}, {{ model = "cheap" }}]
[pools.huge]
policy = "script"
script = "{huge}"
fallback = "cheapest"
members = [{{ model = "dear" }}, {{ model = "cheap" }}]
[pools.deep]
policy = "script"
script = "{deep}"
fallback = "cheapest"
members = [{{ model = "dear" }}, {{ model = "cheap" }}]
"#
            ),
        ),
        "epoll",
        &[],
    );
    assert_eq!(
        chat(&b, "scripted", "hi", &[("x-prefer", "mid")]).status,
        200
    );
    assert_eq!(
        chat(&b, "scripted", "hi", &[("x-prefer", "cheap")]).status,
        200
    );
    assert_eq!(asked(&mock), ["mid", "cheap"]);

    let r = chat(&b, "scripted", "hi", &[("x-team", "blocked")]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "team blocked by policy");
    // In the Anthropic shape for an Anthropic client.
    let body = json!({"model": "scripted", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = Client::connect(b.addr).post_json(
        "/v1/messages",
        &body.to_string(),
        &[("x-team", "blocked"), ("anthropic-version", "2023-06-01")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert_eq!(
        asked(&mock).len(),
        2,
        "a rejected request reaches no provider"
    );

    // Runaway scripts: every request still answered, by the fallback (cheapest).
    for pool in ["spin", "huge", "deep"] {
        for _ in 0..3 {
            let r = chat(&b, pool, "hi", &[]);
            assert_eq!(r.status, 200, "{pool}: {}", r.text());
        }
    }
    let got = asked(&mock);
    assert!(got[2..].iter().all(|m| m == "cheap"), "{got:?}");
    let s = stats(&b);
    for pool in ["spin", "huge", "deep"] {
        let h = &s["hooks"][format!("pools.{pool}")];
        assert_eq!(h["calls"], 3, "{s}");
        assert_eq!(h["fallbacks"], 3, "{pool}: {h}");
    }
    let spin_fail = &s["hooks"]["pools.spin"]["failures"];
    assert!(
        spin_fail["operations"].as_u64().unwrap_or(0) + spin_fail["deadline"].as_u64().unwrap_or(0)
            == 3,
        "{spin_fail}"
    );
    assert_eq!(s["hooks"]["pools.huge"]["failures"]["size"], 3, "{s}");
    // Logged once per interval, not per request.
    let logged = b.stderr().matches("hook failed").count();
    assert!(logged <= 3, "logged {logged} times:\n{}", b.stderr());
    b.stop();
}

#[test]
fn a_script_that_escapes_its_sandbox_is_refused_at_load() {
    let mock = MockProvider::start(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    for (name, text, says) in [
        ("eval.rhai", "fn route(r, c) { eval(\"1\") }", "eval"),
        (
            "import.rhai",
            "import \"/etc/passwd\" as p;\nfn route(r, c) { [] }",
            "import",
        ),
        ("none.rhai", "fn other(r, c) { [] }", "route"),
    ] {
        let path = script_file(&dir, name, text);
        let cfg = config(
            &mock,
            &format!(
                "[pools.p]\npolicy = \"script\"\nscript = \"{path}\"\nmembers = [{{ model = \"mid\" }}]\n"
            ),
        );
        let (code, out) = busbar_tests::run_check(&cfg);
        if code == 0 {
            // An import or eval that compiles must still fail when it runs, never read a file.
            let b = Busbar::start(&cfg, "epoll", &[]);
            let r = chat(&b, "p", "hi", &[]);
            assert_eq!(r.status, 200, "falls back: {}", r.text());
            let s = stats(&b);
            assert_eq!(s["hooks"]["pools.p"]["fallbacks"], 1, "{name}: {s}");
            b.stop();
        } else {
            assert!(out.contains(says) || out.contains("line"), "{name}: {out}");
        }
    }
}

#[test]
fn webhook_policy_orders_rejects_and_falls_back_on_every_failure() {
    let mock = MockProvider::start(&[]);
    for lang in ["python", "node"] {
        let hook = HookServer::start(lang, "ok");
        let b = Busbar::start(
            &config(
                &mock,
                &format!(
                    r#"
[pools.hooked]
policy = "webhook"
webhook = "http://{h}/route"
fallback = "cheapest"
headers = ["x-team", "x-prefer"]
members = [{{ model = "dear" }}, {{ model = "mid" }}, {{ model = "cheap" }}]
"#,
                    h = hook.addr
                ),
            ),
            "epoll",
            &[],
        );
        let before = asked(&mock).len();
        assert_eq!(
            chat(&b, "hooked", "hi", &[("x-prefer", "dear")]).status,
            200
        );
        assert_eq!(chat(&b, "hooked", "hi", &[]).status, 200);
        let r = chat(&b, "hooked", "hi", &[("x-team", "blocked")]);
        assert_eq!(r.status, 403, "{lang}: {}", r.text());
        assert_eq!(&asked(&mock)[before..], ["dear", "cheap"], "{lang}");
        assert_eq!(hook.counts()["route"], 3, "{lang}");
        b.stop();
    }

    // Slow, garbage, 500, a closed connection, and nobody listening: every request answered
    // by the fallback (cheapest); the hook's breaker stops calling it after a few failures.
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let down_addr = down.local_addr().expect("addr");
    drop(down);
    for mode in ["slow", "garbage", "error", "close", "down"] {
        let hook = (mode != "down").then(|| HookServer::start("python", mode));
        let at = hook.as_ref().map_or(down_addr, |h| h.addr);
        let b = Busbar::start(
            &config(
                &mock,
                &format!(
                    r#"
[pools.hooked]
policy = "webhook"
webhook = "http://{at}/route"
timeout_ms = 50
fallback = "cheapest"
members = [{{ model = "dear" }}, {{ model = "cheap" }}]
"#
                ),
            ),
            "epoll",
            &[],
        );
        let before = asked(&mock).len();
        for _ in 0..8 {
            let r = chat(&b, "hooked", "hi", &[]);
            assert_eq!(r.status, 200, "{mode}: {}", r.text());
        }
        assert!(
            asked(&mock)[before..].iter().all(|m| m == "cheap"),
            "{mode}"
        );
        let s = stats(&b);
        let h = &s["hooks"]["pools.hooked"];
        assert_eq!(h["fallbacks"], 8, "{mode}: {h}");
        assert!(
            h["failures"]["breaker_open"].as_u64().unwrap_or(0) >= 1,
            "{mode}: the hook's breaker opened: {h}"
        );
        if let Some(hook) = &hook {
            let called = hook.counts()["route"].as_u64().unwrap_or(0);
            assert!((1..8).contains(&called), "{mode}: called {called} times");
        }
        b.stop();
    }
}

#[test]
fn pii_is_redacted_before_the_provider_sees_it() {
    let mock = MockProvider::start(&[]);
    let secret =
        "write to bob.smith+x@example.co.uk, card 4111 1111 1111 1111, order 1234 5678 9012 3456";
    for lang in ["python", "node"] {
        let hook = HookServer::start(lang, "ok");
        let b = Busbar::start(
            &config(
                &mock,
                &format!(
                    "[hooks.before_forward]\nwebhook = \"http://{}/redact\"\ntimeout_ms = 500\n",
                    hook.addr
                ),
            ),
            "epoll",
            &[],
        );
        let before = mock.requests().len();
        assert_eq!(chat(&b, "mid", secret, &[]).status, 200);
        // An Anthropic client to an Anthropic model, text in a content block and the system.
        let body = json!({"model": "sonnet", "max_tokens": 8, "system": "reply to ann@corp.io",
            "messages": [{"role": "user", "content": [{"type": "text", "text": secret}]}]});
        let r = Client::connect(b.addr).post_json(
            "/v1/messages",
            &body.to_string(),
            &[("anthropic-version", "2023-06-01")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        // Translated: an OpenAI client to the Anthropic model.
        assert_eq!(chat(&b, "sonnet", secret, &[]).status, 200);
        let seen: Vec<String> = mock.requests()[before..]
            .iter()
            .map(|r| r["body"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(seen.len(), 3);
        for body in &seen {
            assert!(!body.contains("bob.smith"), "{lang}: {body}");
            assert!(!body.contains("4111 1111"), "{lang}: {body}");
            assert!(!body.contains("ann@corp.io"), "{lang}: {body}");
            assert!(
                body.contains("[email]") && body.contains("[card]"),
                "{lang}: {body}"
            );
            assert!(
                body.contains("1234 5678 9012 3456"),
                "not a Luhn number: {body}"
            );
        }
        assert_eq!(hook.counts()["redact"], 3);
        b.stop();
    }

    // The hook down: fail open forwards as is; fail closed refuses with 503.
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let at = down.local_addr().expect("addr");
    drop(down);
    for (on_failure, status) in [("forward", 200), ("reject", 503)] {
        let b = Busbar::start(
            &config(
                &mock,
                &format!(
                    "[hooks.before_forward]\nwebhook = \"http://{at}/redact\"\non_failure = \"{on_failure}\"\n"
                ),
            ),
            "epoll",
            &[],
        );
        let r = chat(&b, "mid", "hello", &[]);
        assert_eq!(r.status, status, "{on_failure}: {}", r.text());
        b.stop();
    }
}

#[test]
fn a_rhai_before_forward_script_masks_emails() {
    let mock = MockProvider::start(&[]);
    let script = repo()
        .join("examples/rhai/redact.rhai")
        .display()
        .to_string();
    let b = Busbar::start(
        &config(
            &mock,
            &format!("[hooks.before_forward]\nscript = \"{script}\"\n"),
        ),
        "epoll",
        &[],
    );
    assert_eq!(
        chat(&b, "mid", "mail me at carol@example.org please", &[]).status,
        200
    );
    let body = mock.requests().last().expect("one request")["body"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!body.contains("carol@example.org"), "{body}");
    assert!(body.contains("please"), "{body}");
    b.stop();
}

#[test]
fn audit_events_arrive_off_the_request_path_and_a_full_queue_drops() {
    let mock = MockProvider::start(&[]);
    let hook = HookServer::start("python", "ok");
    let b = Busbar::start(
        &config(
            &mock,
            &format!(
                "[hooks.after_response]\nwebhook = \"http://{}/audit\"\n",
                hook.addr
            ),
        ),
        "epoll",
        &[],
    );
    for _ in 0..5 {
        assert_eq!(chat(&b, "mid", "hi", &[]).status, 200);
    }
    assert_eq!(chat(&b, "nope", "hi", &[]).status, 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.counts()["audit"].as_u64() != Some(6) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(hook.counts()["audit"], 6);
    // busbar counts a delivery once it has read the hook's answer.
    while stats(&b)["hooks"]["hooks.after_response"]["sent"] != 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = stats(&b);
    assert_eq!(s["hooks"]["hooks.after_response"]["sent"], 6, "{s}");
    b.stop();

    // A hook that never answers within its deadline, a queue of 1: requests are never
    // delayed or failed; what does not fit is dropped and counted.
    let slow = HookServer::start("python", "slow");
    let b = Busbar::start(
        &config(
            &mock,
            &format!(
                "[hooks.after_response]\nwebhook = \"http://{}/route\"\nqueue = 1\ntimeout_ms = 100\n",
                slow.addr
            ),
        ),
        "epoll",
        &[],
    );
    for _ in 0..20 {
        assert_eq!(chat(&b, "mid", "hi", &[]).status, 200);
    }
    let s = stats(&b);
    let a = &s["hooks"]["hooks.after_response"];
    assert!(a["dropped"].as_u64().unwrap_or(0) >= 10, "{a}");
    assert_eq!(
        a["queued"].as_u64().unwrap_or(0) + a["dropped"].as_u64().unwrap_or(0),
        20,
        "{a}"
    );
    b.stop();
}

#[test]
fn reload_swaps_models_and_pools_without_failing_in_flight_requests() {
    let mock = MockProvider::start(&[]);
    // `mid` streams slowly: a request in flight across the reload.
    mock.set_faults(json!([{"model": "mid", "ttft_ms": 300, "gap_ms": 50, "tokens": 10}]));
    let first = config(&mock, "[pools.p]\nmembers = [{ model = \"mid\" }]\n");
    let b = Busbar::start(&first, "epoll", &[]);
    let addr = b.addr;
    let in_flight = std::thread::spawn(move || {
        let body = json!({"model": "p", "stream": true, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]});
        let mut c = Client::connect(addr);
        let r = c.post_json("/v1/chat/completions", &body.to_string(), &[]);
        (r.status, r.text())
    });
    std::thread::sleep(Duration::from_millis(100));
    // The new config: `p` now means `cheap`, a new pool `q` appears, `dear` is gone.
    let second = first
        .replace("[pools.p]\nmembers = [{ model = \"mid\" }]", "[pools.p]\nmembers = [{ model = \"cheap\" }]\n[pools.q]\nmembers = [{ model = \"mid\" }]")
        .replace("[models.dear]\nprovider = \"oai\"\ninput_price = 10.0\noutput_price = 30.0\n", "");
    std::fs::write(b.config_path(), &second).expect("rewrite config");
    let r = Client::connect(b.admin.expect("admin")).post_json("/admin/reload", "", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 1);
    let (status, text) = in_flight.join().expect("in-flight request");
    assert_eq!(status, 200);
    assert!(text.contains("[DONE]"), "the stream ran to its end: {text}");
    mock.clear_faults();
    let before = asked(&mock).len();
    assert_eq!(chat(&b, "p", "hi", &[]).status, 200);
    assert_eq!(chat(&b, "q", "hi", &[]).status, 200);
    assert_eq!(&asked(&mock)[before..], ["cheap", "mid"]);
    assert_eq!(chat(&b, "dear", "hi", &[]).status, 404);

    // An invalid config is refused with its reason, and the old one stays.
    std::fs::write(
        b.config_path(),
        second.replace("[pools.q]", "[pools.q]\npolicy = \"random\""),
    )
    .expect("rewrite");
    let r = Client::connect(b.admin.expect("admin")).post_json("/admin/reload", "", &[]);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("random") && r.text().contains("line"),
        "{}",
        r.text()
    );
    assert_eq!(chat(&b, "q", "hi", &[]).status, 200);

    // SIGHUP reloads too.
    std::fs::write(b.config_path(), &first).expect("rewrite");
    b.hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while chat(&b, "dear", "hi", &[]).status != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(chat(&b, "dear", "hi", &[]).status, 200);
    assert_eq!(stats(&b)["generation"], 2);
    b.stop();
}

#[test]
fn a_reload_picks_up_a_rotated_provider_key_from_its_file() {
    let mock = MockProvider::start(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("openai.key");
    std::fs::write(&key, "sk-first\n").expect("key");
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\n[providers.oai]\nprotocol = \"openai\"\nbase_url = \"http://{}/v1\"\napi_key_file = \"{}\"\n[models.m]\nprovider = \"oai\"\n",
        mock.addr,
        key.display()
    );
    let b = Busbar::start(&cfg, "epoll", &[]);
    let auth = |mock: &MockProvider| {
        let r = mock.requests();
        let last = r.last().expect("a request").clone();
        last["headers"]
            .as_array()
            .and_then(|h| {
                h.iter()
                    .find(|kv| {
                        kv[0]
                            .as_str()
                            .is_some_and(|k| k.eq_ignore_ascii_case("authorization"))
                    })
                    .and_then(|kv| kv[1].as_str().map(str::to_string))
            })
            .or_else(|| {
                last["headers"]["authorization"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    assert_eq!(chat(&b, "m", "hi", &[]).status, 200);
    assert_eq!(auth(&mock), "Bearer sk-first");
    std::fs::write(&key, "sk-second\n").expect("rotate");
    let r = Client::connect(b.admin.expect("admin")).post_json("/admin/reload", "", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // Every shard has it: several connections, each may land on either shard.
    for _ in 0..6 {
        assert_eq!(chat(&b, "m", "hi", &[]).status, 200);
        assert_eq!(auth(&mock), "Bearer sk-second");
    }
    // An empty key file is refused, and the last good key stays in use.
    std::fs::write(&key, "").expect("empty");
    let r = Client::connect(b.admin.expect("admin")).post_json("/admin/reload", "", &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("api_key_file"), "{}", r.text());
    assert_eq!(chat(&b, "m", "hi", &[]).status, 200);
    assert_eq!(auth(&mock), "Bearer sk-second");
    b.stop();
}
