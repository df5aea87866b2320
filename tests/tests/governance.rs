//! Governance, black-box: the real busbar with a real ledger file, in front of the real
//! `busbar-bench mock`; virtual keys and environment limits made through the admin API, load
//! from many client threads over every shard.
//!
//! What is checked is what clients got and what the ledger says: spend never over a cap, each
//! refusal in the right shape naming the right limit, exact accounting against the usage the
//! clients themselves saw, changes in force when the admin call returns, nothing lost or given
//! back across a `kill -9`. No test asserts a duration.

use busbar_tests::{Busbar, Client, MockProvider, Response};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Prices of `m-a` (USD per million tokens, i.e. micro-USD per token): dear, so that a few
/// requests reach a small cap.
const IN_PRICE: u64 = 1000;
const OUT_PRICE: u64 = 2000;

fn config(mock: &MockProvider, shards: usize, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = {shards}
{extra}
[providers.oai]
protocol = "openai"
base_url = "http://{m}/v1"
[providers.claude]
protocol = "anthropic"
base_url = "http://{m}/v1"
[models.m-a]
provider = "oai"
input_price = {IN_PRICE}
output_price = {OUT_PRICE}
[models.m-b]
provider = "oai"
[models.c-a]
provider = "claude"
input_price = {IN_PRICE}
output_price = {OUT_PRICE}
max_output_tokens = 32
"#,
        m = mock.addr
    )
}

fn start(mock: &MockProvider, shards: usize) -> Busbar {
    Busbar::start(&config(mock, shards, ""), busbar_tests::DRIVERS[0], &[])
}

fn admin(b: &Busbar, method: &str, path: &str, body: Option<Value>) -> Response {
    let text = body.map(|v| v.to_string());
    Client::connect(b.admin.expect("admin listener")).request(method, path, text.as_deref(), &[])
}

/// Creates a key; returns (id, secret).
fn create_key(b: &Busbar, spec: Value) -> (String, String) {
    let r = admin(b, "POST", "/admin/keys", Some(spec));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["key"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

const BODY: &str = r#"{"model":"m-a","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;

fn chat(b: &Busbar, secret: &str, body: &str) -> Response {
    let auth = format!("Bearer {secret}");
    Client::connect(b.addr).post_json("/v1/chat/completions", body, &[("authorization", &auth)])
}

/// What a successful OpenAI-shaped answer cost, from the usage the client saw.
fn cost_of(r: &Response) -> u64 {
    let u = &r.json()["usage"];
    u["prompt_tokens"].as_u64().unwrap() * IN_PRICE
        + u["completion_tokens"].as_u64().unwrap() * OUT_PRICE
}

/// The most `BODY` can cost: its bytes as input tokens plus its max output.
fn worst_of(body: &str, max_out: u64) -> u64 {
    body.len() as u64 * IN_PRICE + max_out * OUT_PRICE
}

fn micros(usd: &Value) -> u64 {
    (usd.as_f64().unwrap() * 1e6).round() as u64
}

fn usage(b: &Busbar, path: &str) -> Value {
    let r = admin(b, "GET", path, None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Runs `threads` clients, each sending until it has been refused `stop_after` times in a
/// row; returns every response.
fn hammer(
    b: &Busbar,
    secrets: &[String],
    threads: usize,
    stop_after: usize,
    body: &str,
) -> Vec<Response> {
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let secret = &secrets[t % secrets.len()];
            let out = &out;
            s.spawn(move || {
                let mut refused = 0;
                let mut mine = Vec::new();
                while refused < stop_after && mine.len() < 400 {
                    let r = chat(b, secret, body);
                    if r.status == 200 {
                        refused = 0;
                    } else {
                        refused += 1;
                    }
                    mine.push(r);
                }
                out.lock().unwrap().extend(mine);
            });
        }
    });
    out.into_inner().unwrap()
}

/// Every refusal is a 429 in OpenAI's shape naming `limit` (`key:daily_usd`, ...).
fn assert_refusals(rs: &[Response], limit: &str, who: &str) {
    for r in rs.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.header("x-busbar-limit"), Some(limit), "{}", r.text());
        let e = &r.json()["error"];
        let spend = limit.ends_with("_usd");
        assert_eq!(
            e["code"],
            if spend {
                "insufficient_quota"
            } else {
                "rate_limit_exceeded"
            }
        );
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(who), "{msg}");
        if !limit.ends_with("all_time_usd") {
            let wait: u64 = r
                .header("retry-after")
                .expect("retry-after")
                .parse()
                .unwrap();
            assert!(wait >= 1, "{wait}");
        }
    }
}

#[test]
fn a_key_cap_holds_under_concurrent_load_on_every_shard() {
    let mock = MockProvider::start(&[]);
    let b = start(&mock, 4);
    let cap = 2_000_000u64; // $2
    let (id, secret) = create_key(
        &b,
        json!({"name": "capped", "limits": {"daily_usd": cap as f64 / 1e6}}),
    );
    let rs = hammer(&b, std::slice::from_ref(&secret), 24, 3, BODY);
    let ok: Vec<&Response> = rs.iter().filter(|r| r.status == 200).collect();
    assert!(ok.len() >= 10, "only {} admitted", ok.len());
    assert!(rs.len() > ok.len(), "nothing was refused");
    assert_refusals(&rs, "key:daily_usd", "busbar key `capped`");
    let seen: u64 = ok.iter().map(|r| cost_of(r)).sum();
    assert!(
        seen <= cap,
        "clients were served {seen} micro-USD over a cap of {cap}"
    );
    // Settlements reach the ledger asynchronously: wait until it has them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spent = loop {
        let u = usage(&b, &format!("/admin/keys/{id}/usage"));
        if u["daily"]["requests"].as_u64() == Some(ok.len() as u64) || Instant::now() > deadline {
            break u;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(spent["daily"]["requests"].as_u64(), Some(ok.len() as u64));
    // The ledger's spend is exactly what the clients saw, to the micro-dollar.
    assert_eq!(micros(&spent["daily"]["spend_usd"]), seen);
    assert_eq!(micros(&spent["models"]["m-a"]["daily"]["spend_usd"]), seen);
    // Not refused too early either: with nothing in flight and every idle lease recalled, one
    // more request is refused only if what is left cannot cover its worst case.
    let last = chat(&b, &secret, BODY);
    let left = cap - seen;
    if left >= worst_of(BODY, 16) {
        assert_eq!(
            last.status,
            200,
            "refused with {left} left: {}",
            last.text()
        );
    } else {
        assert_eq!(last.status, 429, "{}", last.text());
    }
}

#[test]
fn an_environment_cap_holds_over_all_its_keys_and_other_environments_are_apart() {
    let mock = MockProvider::start(&[]);
    let b = start(&mock, 3);
    let cap = 1_500_000u64;
    let r = admin(
        &b,
        "PUT",
        "/admin/environments/staging",
        Some(json!({"limits": {"daily_usd": 1.5, "rpm": 100000}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["limits"]["daily_usd"], 1.5);
    let keys: Vec<String> = (0..3)
        .map(|i| {
            create_key(
                &b,
                json!({"name": format!("s{i}"), "environment": "staging"}),
            )
            .1
        })
        .collect();
    let (_, prod) = create_key(&b, json!({"name": "p", "environment": "production"}));
    let rs = hammer(&b, &keys, 18, 3, BODY);
    let ok: Vec<&Response> = rs.iter().filter(|r| r.status == 200).collect();
    assert!(ok.len() >= 5 && rs.len() > ok.len());
    assert_refusals(&rs, "environment:daily_usd", "environment `staging`");
    let seen: u64 = ok.iter().map(|r| cost_of(r)).sum();
    assert!(seen <= cap, "{seen} > {cap}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = usage(&b, "/admin/environments/staging/usage");
        if micros(&u["daily"]["spend_usd"]) == seen {
            break;
        }
        assert!(Instant::now() < deadline, "ledger {u} vs clients {seen}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Production has no environment cap: it is not held back by staging's.
    for _ in 0..3 {
        let r = chat(&b, &prod, BODY);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Lifting the cap is in force when the call returns.
    let r = admin(
        &b,
        "PUT",
        "/admin/environments/staging",
        Some(json!({"limits": {"daily_usd": null}})),
    );
    assert_eq!(r.json()["limits"]["rpm"], 100000, "rpm kept: {}", r.text());
    assert_eq!(chat(&b, &keys[0], BODY).status, 200);
    assert_eq!(
        admin(&b, "DELETE", "/admin/environments/staging", None).status,
        200
    );
    assert_eq!(
        admin(&b, "GET", "/admin/environments/staging", None).status,
        404
    );
}

/// Waits, if need be, so that at least `need` of the current UTC minute is left.
fn early_in_a_minute(need: Duration) {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = 60_000 - ms % 60_000;
    if left < need.as_millis() as u64 {
        std::thread::sleep(Duration::from_millis(left + 50));
    }
}

#[test]
fn rpm_and_tpm_hold_across_shards() {
    let mock = MockProvider::start(&[]);
    let b = start(&mock, 4);
    let (_, secret) = create_key(&b, json!({"name": "rpm", "limits": {"rpm": 12}}));
    early_in_a_minute(Duration::from_secs(20));
    let rs = hammer(&b, &[secret], 16, 2, BODY);
    let ok = rs.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 12, "rpm 12 admitted {ok}");
    assert_refusals(&rs, "key:rpm", "busbar key `rpm`");
    for r in rs.iter().filter(|r| r.status == 429) {
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(wait <= 60, "{wait}");
    }

    // TPM: a request reserves its bytes plus its max output, and is charged what it used.
    let worst = BODY.len() as u64 + 16;
    let tpm = worst * 5;
    let (_, t) = create_key(&b, json!({"name": "tpm", "limits": {"tpm": tpm}}));
    early_in_a_minute(Duration::from_secs(20));
    let rs = hammer(&b, std::slice::from_ref(&t), 16, 2, BODY);
    let ok: Vec<&Response> = rs.iter().filter(|r| r.status == 200).collect();
    let used: u64 = ok
        .iter()
        .map(|r| r.json()["usage"]["total_tokens"].as_u64().unwrap())
        .sum();
    assert!(used <= tpm, "{used} tokens served under a tpm of {tpm}");
    assert!(ok.len() >= 5, "{} admitted", ok.len());
    assert_refusals(&rs, "key:tpm", "busbar key `tpm`");
    // A request bigger than the whole limit can never fit: refused at once, saying so.
    let big = format!(
        r#"{{"model":"m-a","max_tokens":16,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(tpm as usize)
    );
    let r = chat(&b, &t, &big);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-busbar-limit"), Some("key:tpm"));
}

#[test]
fn revocation_under_load_admits_nothing_after_the_call_returns() {
    let mock = MockProvider::start(&["--ttft-ms", "2"]);
    let b = start(&mock, 4);
    let (id, secret) = create_key(&b, json!({"name": "doomed"}));
    let revoked_at: Mutex<Option<Instant>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let before = AtomicU64::new(0);
    let late: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..12 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let r = chat(&b, &secret, BODY);
                    let cut = *revoked_at.lock().unwrap();
                    match cut {
                        Some(t) if sent > t => {
                            if r.status != 401 || r.json()["error"]["code"] != "key_revoked" {
                                late.lock()
                                    .unwrap()
                                    .push(format!("{} {}", r.status, r.text()));
                            }
                        }
                        _ => {
                            if r.status == 200 {
                                before.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        }
        while before.load(Ordering::Relaxed) < 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let r = admin(&b, "POST", &format!("/admin/keys/{id}/revoke"), None);
        *revoked_at.lock().unwrap() = Some(Instant::now());
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["revoked"], true);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    let late = late.into_inner().unwrap();
    assert!(late.is_empty(), "admitted after revocation: {late:?}");
    // And it stays revoked across a restart of the same ledger? (see the crash test.)
    let r = chat(&b, &secret, BODY);
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[test]
fn kill_9_loses_no_committed_usage_and_gives_back_no_budget() {
    let mock = MockProvider::start(&["--ttft-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().to_str().unwrap().to_string();
    let cfg = config(&mock, 3, "");
    let args = ["--ledger", ledger.as_str()];
    let cap = 3_000_000u64;
    let b = Busbar::start_with(Some(&cfg), busbar_tests::DRIVERS[0], &[], &args);
    let (id, secret) = create_key(
        &b,
        json!({"name": "crash", "limits": {"all_time_usd": 3.0}}),
    );
    let served = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let snapshot = Mutex::new(0u64);
    let addr = b.addr;
    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                let mut c = Client::connect(addr);
                let auth = format!("Bearer {secret}");
                while !stop.load(Ordering::Relaxed) {
                    let mut req = format!(
                        "POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nauthorization: {auth}\r\ncontent-length: {}\r\n\r\n",
                        BODY.len()
                    );
                    req.push_str(BODY);
                    c.send(req.as_bytes());
                    match c.try_read_response() {
                        Some(r) if r.status == 200 => {
                            served.fetch_add(cost_of(&r), Ordering::Relaxed);
                        }
                        Some(_) => {}
                        None => return,
                    }
                }
            });
        }
        // Mid-load: note what the ledger has committed, then kill -9.
        while served.load(Ordering::Relaxed) < cap / 3 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let u = usage(&b, &format!("/admin/keys/{id}/usage"));
        *snapshot.lock().unwrap() = micros(&u["all_time"]["spend_usd"]);
        b.kill9();
        stop.store(true, Ordering::Relaxed);
    });
    let served_before = served.load(Ordering::Relaxed);
    let committed = *snapshot.lock().unwrap();
    assert!(served_before > 0 && served_before < cap);

    let b = Busbar::start_with(Some(&cfg), busbar_tests::DRIVERS[0], &[], &args);
    let u = usage(&b, &format!("/admin/keys/{id}/usage"));
    let spent = micros(&u["all_time"]["spend_usd"]);
    let unsettled = micros(&u["all_time"]["unsettled_usd"]);
    assert!(
        spent >= committed,
        "committed {committed}, after restart {spent}"
    );
    // Everything a client was served is counted, settled or (what was in flight or queued at
    // the kill) unsettled.
    assert!(
        spent + unsettled >= served_before,
        "served {served_before}, counted {spent} + {unsettled}"
    );
    // The key, its secret and its cap survived; spending on resumes until the cap, and the
    // clients never get more than the cap in total.
    let rs = hammer(&b, &[secret], 6, 3, BODY);
    let after: u64 = rs.iter().filter(|r| r.status == 200).map(cost_of).sum();
    assert_refusals(&rs, "key:all_time_usd", "busbar key `crash`");
    assert!(
        served_before + after <= cap,
        "{served_before} + {after} > {cap}"
    );
    assert!(spent + unsettled + after <= cap);
}

#[test]
fn bad_admin_input_and_bad_client_keys_are_refused_clearly() {
    let mock = MockProvider::start(&[]);
    let b = Busbar::start(
        &config(&mock, 2, "[admin]\ntoken_env = \"GOV_ADMIN_TOKEN\"\n"),
        busbar_tests::DRIVERS[0],
        &[("GOV_ADMIN_TOKEN", "s3cret-admin")],
    );
    let a = b.admin.unwrap();
    let call = |method: &str, path: &str, body: Option<&str>, token: Option<&str>| {
        let h = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = h
            .as_deref()
            .map(|v| ("authorization", v))
            .into_iter()
            .collect();
        Client::connect(a).request(method, path, body, &headers)
    };
    let tok = Some("s3cret-admin");
    // The token.
    assert_eq!(call("GET", "/admin/keys", None, None).status, 401);
    assert_eq!(
        call("GET", "/admin/keys", None, Some("s3cret-admix")).status,
        401
    );
    assert_eq!(call("GET", "/admin/keys", None, tok).status, 200);
    // Bad bodies name their field.
    for (body, field) in [
        ("{nope", "body"),
        (
            r#"{"name":"a","limits":{"daily_usd":-1}}"#,
            "limits.daily_usd",
        ),
        (
            r#"{"name":"a","limits":{"weekly_usd":1}}"#,
            "limits.weekly_usd",
        ),
        (r#"{"name":"a","colour":"red"}"#, "colour"),
        (r#"{"environment":"x"}"#, "name"),
        (r#"{"name":"a","allowed":["m-a",7]}"#, "allowed[1]"),
        (r#"{"name":"a","expires_at_ms":"soon"}"#, "expires_at_ms"),
    ] {
        let r = call("POST", "/admin/keys", Some(body), tok);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["field"], field, "{body}");
    }
    let r = call("PUT", "/admin/environments/bad%20name", Some("{}"), tok);
    assert_eq!(r.status, 400);
    let r = call(
        "PUT",
        "/admin/environments/ok",
        Some(r#"{"limits":{"rpm":"x"}}"#),
        tok,
    );
    assert_eq!(r.json()["error"]["field"], "limits.rpm");
    // Unknown ids are 404 on every route; wrong methods 405 with Allow.
    for (m, p) in [
        ("GET", "/admin/keys/key_nope"),
        ("PATCH", "/admin/keys/key_nope"),
        ("DELETE", "/admin/keys/key_nope"),
        ("POST", "/admin/keys/key_nope/revoke"),
        ("GET", "/admin/keys/key_nope/usage"),
        ("DELETE", "/admin/environments/never"),
        ("GET", "/admin/nothing-here"),
    ] {
        let r = call(m, p, (m == "PATCH").then_some("{}"), tok);
        assert_eq!(r.status, 404, "{m} {p}: {}", r.text());
    }
    let r = call("PUT", "/admin/keys", Some("{}"), tok);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = call("GET", "/admin/models/m-a/usage?date=2026-13-01", None, tok);
    assert_eq!(r.json()["error"]["field"], "date");
    // The OpenAPI document is served, and names every key route.
    let r = call("GET", "/admin/openapi.json", None, tok);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/admin/keys",
        "/admin/keys/{id}",
        "/admin/keys/{id}/revoke",
        "/admin/environments/{name}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }

    // Client keys: forged, revoked, deleted, expired, and outside the allowance.
    let r = call(
        "POST",
        "/admin/keys",
        Some(r#"{"name":"ok","allowed":["m-a"]}"#),
        tok,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let (id, secret) = (
        v["key"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    );
    // The secret is not shown again, and not stored in the clear.
    let g = call("GET", &format!("/admin/keys/{id}"), None, tok);
    assert!(!g.text().contains(&secret));
    assert_eq!(chat(&b, &secret, BODY).status, 200);
    // The same secret with its last character changed (to one it is not).
    let last = if secret.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &secret[..secret.len() - 1]);
    let r = chat(&b, &forged, BODY);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("invalid_api_key"))
    );
    let r = chat(&b, "", BODY);
    assert_eq!(r.status, 401);
    let other = r#"{"model":"m-b","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = chat(&b, &secret, other);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_allowed");
    assert!(r.text().contains("`m-b`"));
    // The same refusal in Anthropic's own shape.
    let r = Client::connect(b.addr).post_json(
        "/v1/messages",
        r#"{"model":"m-b","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
        &[("x-api-key", &secret), ("anthropic-version", "2023-06-01")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    // The model list shows only what the key may use.
    let l = Client::connect(b.addr).get(
        "/v1/models",
        &[("authorization", &format!("Bearer {secret}"))],
    );
    let list = l.json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m-a"]);
    // Expired.
    let r = call(
        "PATCH",
        &format!("/admin/keys/{id}"),
        Some(r#"{"expires_at_ms":1000}"#),
        tok,
    );
    assert_eq!(r.status, 200);
    let r = chat(&b, &secret, BODY);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("key_expired"))
    );
    // Revoked, then deleted.
    call(
        "PATCH",
        &format!("/admin/keys/{id}"),
        Some(r#"{"expires_at_ms":null}"#),
        tok,
    );
    assert_eq!(chat(&b, &secret, BODY).status, 200);
    call("POST", &format!("/admin/keys/{id}/revoke"), None, tok);
    let r = chat(&b, &secret, BODY);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("key_revoked"))
    );
    let r = call("DELETE", &format!("/admin/keys/{id}"), None, tok);
    assert_eq!(r.json()["deleted"], true);
    let r = chat(&b, &secret, BODY);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("invalid_api_key"))
    );
    // The data listener has no admin routes.
    let r = Client::connect(b.addr).get("/admin/keys", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn caps_change_at_once_usage_is_exact_for_streams_and_translations_and_keys_survive_a_restart() {
    let mock = MockProvider::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().to_str().unwrap().to_string();
    let cfg = config(&mock, 2, "");
    let args = ["--ledger", ledger.as_str()];
    let b = Busbar::start_with(Some(&cfg), busbar_tests::DRIVERS[0], &[], &args);
    let (id, secret) = create_key(&b, json!({"name": "mixed", "environment": "qa"}));
    let mut seen = 0u64;
    // Passthrough, whole and streamed (usage read on the side, hidden from a client that did
    // not ask for it); translated to Anthropic, whole and streamed.
    for model in ["m-a", "c-a"] {
        let r = chat(
            &b,
            &secret,
            &format!(
                r#"{{"model":"{model}","max_tokens":16,"messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        seen += cost_of(&r);
        let r = chat(
            &b,
            &secret,
            &format!(
                r#"{{"model":"{model}","max_tokens":16,"stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
        );
        assert_eq!(r.status, 200);
        let text = r.text();
        let last_usage = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .rfind(|v| v["usage"].is_object())
            .expect("a usage chunk");
        seen += last_usage["usage"]["prompt_tokens"].as_u64().unwrap() * IN_PRICE
            + last_usage["usage"]["completion_tokens"].as_u64().unwrap() * OUT_PRICE;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = usage(&b, &format!("/admin/keys/{id}/usage"));
        if u["daily"]["requests"] == 4 {
            assert_eq!(micros(&u["daily"]["spend_usd"]), seen, "{u}");
            assert_eq!(u["models"].as_object().unwrap().len(), 2);
            assert_eq!(
                micros(&usage(&b, "/admin/environments/qa/usage")["monthly"]["spend_usd"]),
                seen
            );
            break;
        }
        assert!(Instant::now() < deadline, "{u}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A cap under what is spent stops the next request at once; raising it lets it through.
    let r = admin(
        &b,
        "PATCH",
        &format!("/admin/keys/{id}"),
        Some(json!({"limits": {"monthly_usd": 0.01}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = chat(&b, &secret, BODY);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-busbar-limit"), Some("key:monthly_usd"));
    admin(
        &b,
        "PATCH",
        &format!("/admin/keys/{id}"),
        Some(json!({"limits": {"monthly_usd": 100}})),
    );
    assert_eq!(chat(&b, &secret, BODY).status, 200);
    // A request that sets no output limit gets the one it was reserved at.
    let r = chat(
        &b,
        &secret,
        r#"{"model":"c-a","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200);
    let sent = mock.requests();
    let last: Value = serde_json::from_str(sent.last().unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(last["max_tokens"], 32, "{last}");
    b.stop();
    // Graceful restart: the key, its limits and its usage are all still there.
    let b = Busbar::start_with(Some(&cfg), busbar_tests::DRIVERS[0], &[], &args);
    let k = admin(&b, "GET", &format!("/admin/keys/{id}"), None).json();
    assert_eq!(k["limits"]["monthly_usd"], 100.0);
    assert_eq!(chat(&b, &secret, BODY).status, 200);
    let u = usage(&b, &format!("/admin/keys/{id}/usage"));
    assert!(u["all_time"]["requests"].as_u64().unwrap() >= 6, "{u}");
    for w in ["daily", "monthly", "all_time"] {
        assert_eq!(
            u[w]["unsettled_usd"], 0.0,
            "a clean stop leaves nothing unsettled: {u}"
        );
    }
}

#[test]
fn a_request_for_several_answers_reserves_each_of_them() {
    let mock = MockProvider::start(&[]);
    let b = start(&mock, 2);
    let one = r#"{"model":"m-a","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let three =
        r#"{"model":"m-a","max_tokens":16,"n":3,"messages":[{"role":"user","content":"hi"}]}"#;
    // Room for one answer's worst case (bytes + 16) but not for three (bytes + 48).
    let tpm = three.len() as u64 + 16 * 2;
    let (_, secret) = create_key(&b, json!({"name": "n", "limits": {"tpm": tpm}}));
    early_in_a_minute(Duration::from_secs(10));
    let r = chat(&b, &secret, three);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("x-busbar-limit"), Some("key:tpm"));
    assert!(
        r.text()
            .contains(&format!("up to {} tokens", three.len() + 48)),
        "{}",
        r.text()
    );
    assert_eq!(chat(&b, &secret, one).status, 200);
}
