//! A fleet: two (and three) real busbar processes sharing one real `redis-server`, each with
//! its own ledger file. A key made on one node works on the others; its cap holds across all
//! of them under concurrent load; a revocation on one node stops it everywhere within the
//! sync bound; Redis gone refuses (fail closed) with a 503 in the caller's protocol, or serves
//! from a bounded allowance (fail open) and loses nothing, even when the node is killed
//! before Redis returns; Redis over TLS with client certificates.

use busbar_tests::{
    Busbar, Ca, Client, DRIVERS, MockProvider, RedisServer, RedisTls, Response, eventually,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Prices: $1 and $2 per million tokens in and out.
fn config(mock: &MockProvider, redis: &RedisServer, node: &str, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 2
[providers.oai]
protocol = "openai"
base_url = "http://{m}/v1"
[models.m]
provider = "oai"
input_price = 1.0
output_price = 2.0
max_output_tokens = 16
[fleet]
url = "{r}"
node_id = "{node}"
key_prefix = "fleet-test:"
{extra}
"#,
        m = mock.addr,
        r = redis.url()
    )
}

fn admin(b: &Busbar, method: &str, path: &str, body: Option<Value>) -> Response {
    let text = body.map(|v| v.to_string());
    Client::connect(b.admin.expect("admin")).request(method, path, text.as_deref(), &[])
}

fn chat(b: &Busbar, secret: &str) -> Response {
    let body = json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello there"}]});
    Client::connect(b.addr).post_json(
        "/v1/chat/completions",
        &body.to_string(),
        &[("authorization", &format!("Bearer {secret}"))],
    )
}

/// Creates a key through `b`'s admin API; returns (id, secret).
fn create_key(b: &Busbar, spec: Value) -> (String, String) {
    let r = admin(b, "POST", "/admin/keys", Some(spec));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let text = |k: &Value| k.as_str().unwrap().to_string();
    (text(&v["key"]["id"]), text(&v["secret"]))
}

/// Waits until the key `id` is in force on `node`: its ledger has it (the admin API knows it)
/// and its shards take it (listing models with it, which spends nothing). A shard hears of a
/// key just after the ledger has written it.
fn wait_for_key(node: &Busbar, id: &str, secret: &str) {
    eventually(5, "the key reaches the node", || {
        admin(node, "GET", &format!("/admin/keys/{id}"), None).status == 200
            && (0..4).all(|_| {
                Client::connect(node.addr)
                    .get(
                        "/v1/models",
                        &[("authorization", &format!("Bearer {secret}"))],
                    )
                    .status
                    == 200
            })
    });
}

fn usage_usd(b: &Busbar, id: &str) -> f64 {
    let u = admin(b, "GET", &format!("/admin/keys/{id}/usage"), None).json();
    u["daily"]["spend_usd"].as_f64().unwrap_or(0.0)
}

/// `per_node` clients on each node send requests until refused (429) or `max` each; returns
/// how many were served.
fn until_refused(nodes: &[Busbar], per_node: usize, secret: &str, max: usize) -> usize {
    std::thread::scope(|s| {
        let load: Vec<_> = nodes
            .iter()
            .flat_map(|n| std::iter::repeat_n(n, per_node))
            .map(|n| {
                s.spawn(move || {
                    let mut ok = 0;
                    for _ in 0..max {
                        match chat(n, secret).status {
                            200 => ok += 1,
                            429 => break,
                            other => panic!("unexpected status {other}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        load.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// What counts against the key's daily cap on `b`: spend, and leases a crash left unsettled
/// (micro-USD).
fn charged_micros(b: &Busbar, id: &str) -> u64 {
    let u = admin(b, "GET", &format!("/admin/keys/{id}/usage"), None).json();
    let usd = |f: &str| u["daily"][f].as_f64().unwrap_or(0.0);
    ((usd("spend_usd") + usd("unsettled_usd")) * 1e6).round() as u64
}

/// The Redis hash of the key's daily account today.
fn daily_account(id: &str) -> String {
    let period = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        / 86_400_000;
    format!("fleet-test:a:k{}:{id}:daily_usd:{period}", id.len())
}

fn field(redis: &RedisServer, key: &str, field: &str) -> u64 {
    redis
        .hget(key, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_key_made_on_one_node_works_on_all_and_its_cap_holds_across_them() {
    let redis = RedisServer::start();
    let mock = MockProvider::start(&[]);
    let nodes: Vec<Busbar> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| Busbar::start(&config(&mock, &redis, n, ""), DRIVERS[i % 2], &[]))
        .collect();
    // A small daily cap: a few dozen requests' worth.
    let (id, secret) = create_key(
        &nodes[0],
        json!({"name": "shared", "limits": {"daily_usd": 0.002}}),
    );
    // Every node has it within the sync bound.
    for n in &nodes[1..] {
        eventually(5, "the key reaches the other nodes", || {
            chat(n, &secret).status == 200
        });
    }
    // Concurrent load on every node until each is refused.
    let ok = until_refused(&nodes, 3, &secret, 200);
    assert!(ok > 3, "only {ok} requests were served");
    // The fleet's spend (each node's settled usage, added up) never passed the cap.
    eventually(5, "usage settles", || {
        let total: f64 = nodes.iter().map(|n| usage_usd(n, &id)).sum();
        total > 0.0
    });
    std::thread::sleep(Duration::from_millis(300));
    let total: f64 = nodes.iter().map(|n| usage_usd(n, &id)).sum();
    eprintln!("{ok} requests served, the fleet spent ${total:.6} of a $0.002 cap");
    assert!(
        total <= 0.002 + 1e-9,
        "the fleet spent ${total} under a $0.002 cap"
    );
    assert!(
        total >= 0.002 * 0.5,
        "the fleet stopped early: ${total} of $0.002"
    );
}

#[test]
fn a_revocation_on_one_node_stops_the_key_on_every_node_within_the_bound() {
    let redis = RedisServer::start();
    let mock = MockProvider::start(&[]);
    let a = Busbar::start(&config(&mock, &redis, "a", ""), DRIVERS[0], &[]);
    let b = Busbar::start(&config(&mock, &redis, "b", ""), DRIVERS[1], &[]);
    let (id, secret) = create_key(&a, json!({"name": "to-revoke"}));
    wait_for_key(&b, &id, &secret);
    assert_eq!(chat(&b, &secret).status, 200);
    let r = admin(&b, "POST", &format!("/admin/keys/{id}/revoke"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let revoked_at = Instant::now();
    // At once on the node that revoked it; on the other within the sync bound (1 s).
    assert_eq!(chat(&b, &secret).status, 401);
    eventually(3, "node a refuses the revoked key", || {
        chat(&a, &secret).status == 401
    });
    eprintln!(
        "revocation reached the other node in {:?}",
        revoked_at.elapsed()
    );
    let body = chat(&a, &secret).json();
    assert_eq!(body["error"]["code"], "key_revoked", "{body}");
}

#[test]
fn redis_down_fails_closed_with_a_clear_503_and_the_fleet_recovers() {
    let redis = RedisServer::start();
    let port = redis.port;
    let mock = MockProvider::start(&[]);
    let a = Busbar::start(
        &config(&mock, &redis, "a", "timeout_ms = 100"),
        DRIVERS[0],
        &[],
    );
    let r = admin(
        &a,
        "POST",
        "/admin/keys",
        Some(json!({"name": "k", "limits": {"daily_usd": 0.05}})),
    );
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    assert_eq!(chat(&a, &secret).status, 200);
    drop(redis);
    // What the node already holds still serves; once it needs Redis, a 503 that says why.
    let mut saw_503 = None;
    for _ in 0..2000 {
        let r = chat(&a, &secret);
        if r.status == 503 {
            saw_503 = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = saw_503.expect("a 503 once the node's allotment is spent");
    assert_eq!(
        r.json()["error"]["code"],
        "fleet_ledger_unavailable",
        "{}",
        r.text()
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    // The node's metrics say so too: refusals, and settlements waiting (in its file).
    let refusals = metric(&a, "busbar_fleet_unreachable_refusals_total");
    assert!(refusals >= 1.0, "{refusals}");
    assert!(metric(&a, "busbar_fleet_pending_settlements") >= 1.0);
    // A key change cannot be made while Redis is away, and says so.
    let r = admin(&a, "POST", "/admin/keys", Some(json!({"name": "new"})));
    assert_eq!(r.status, 503, "{}", r.text());
    // Redis is back (empty): the node seeds it with its keys, and serves again.
    let _back = RedisServer::start_on(port);
    eventually(10, "requests are served again", || {
        chat(&a, &secret).status == 200
    });
    eventually(5, "nothing waits for Redis", || {
        metric(&a, "busbar_fleet_pending_settlements") == 0.0
    });
    assert!(metric(&a, "busbar_fleet_redis_round_trips_total") > 0.0);
    // (Counters: a 503 while the node gave the new Redis its spend may add to it.)
    assert!(metric(&a, "busbar_fleet_unreachable_refusals_total") >= refusals);
}

/// A metric without labels from `b`'s GET /metrics.
fn metric(b: &Busbar, name: &str) -> f64 {
    let text = admin(b, "GET", "/metrics", None).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn redis_killed_and_restarted_under_load_loses_no_usage() {
    let dir = tempfile::tempdir().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let redis = RedisServer::start_persistent(port, dir.path());
    let mock = MockProvider::start(&[]);
    let nodes: Vec<Busbar> = ["a", "b"]
        .iter()
        .map(|n| {
            Busbar::start(
                &config(&mock, &redis, n, "timeout_ms = 100"),
                DRIVERS[0],
                &[],
            )
        })
        .collect();
    let (id, secret) = create_key(
        &nodes[0],
        json!({"name": "busy", "limits": {"daily_usd": 50}}),
    );
    wait_for_key(&nodes[1], &id, &secret);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let redis = std::sync::Mutex::new(Some(redis));
    let served: usize = std::thread::scope(|s| {
        let load: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (secret, stop) = (&secret, &stop);
                s.spawn(move || {
                    let mut ok = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match chat(n, secret).status {
                            200 => ok += 1,
                            503 => std::thread::sleep(Duration::from_millis(5)),
                            other => panic!("unexpected status {other}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        // Killed (SIGKILL) under load, and back on the same data a moment later.
        drop(redis.lock().unwrap().take());
        std::thread::sleep(Duration::from_millis(400));
        *redis.lock().unwrap() = Some(RedisServer::start_persistent(port, dir.path()));
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!(served > 20, "{served}");
    // Everything the nodes settled (their own journals) is in Redis, to the micro-dollar.
    let key = daily_account(&id);
    let local = || -> u64 {
        nodes
            .iter()
            .map(|n| (usage_usd(n, &id) * 1e6).round() as u64)
            .sum()
    };
    let guard = redis.lock().unwrap();
    let back = guard.as_ref().unwrap();
    let spent = || back.hget(&key, "spent").and_then(|v| v.parse::<u64>().ok());
    let mut last = (None, 0);
    for _ in 0..200 {
        last = (spent(), local());
        if last.0 == Some(last.1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        last.0,
        Some(last.1),
        "Redis's spend vs the nodes' journals (micro-USD)"
    );
    eprintln!(
        "{served} requests served across the outage; fleet spend {} micro-USD in Redis and in the nodes' journals",
        local()
    );
}

#[test]
fn rpm_holds_across_nodes() {
    let redis = RedisServer::start();
    let mock = MockProvider::start(&[]);
    let a = Busbar::start(&config(&mock, &redis, "a", ""), DRIVERS[0], &[]);
    let b = Busbar::start(&config(&mock, &redis, "b", ""), DRIVERS[1], &[]);
    let (id, secret) = create_key(&a, json!({"name": "rpm", "limits": {"rpm": 12}}));
    wait_for_key(&b, &id, &secret);
    // All within one UTC minute: start in a fresh one if this one is nearly over.
    let into_minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 60_000
    };
    if into_minute() > 50_000 {
        std::thread::sleep(Duration::from_millis((60_000 - into_minute() + 200) as u64));
    }
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = [&a, &b, &a, &b]
            .into_iter()
            .map(|n| {
                let secret = secret.clone();
                s.spawn(move || (0..10).map(|_| chat(n, &secret).status).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok, 12, "{statuses:?}");
    assert_eq!(limited, 28, "{statuses:?}");
}

#[test]
fn fail_open_serves_a_bounded_allowance_and_a_node_killed_before_redis_returns_loses_nothing() {
    let redis_dir = tempfile::tempdir().unwrap();
    let ledger = tempfile::tempdir().unwrap();
    let ledger_path = ledger.path().to_str().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let redis = RedisServer::start_persistent(port, redis_dir.path());
    let mock = MockProvider::start(&[]);
    let extra = "timeout_ms = 100\non_unreachable = \"open\"\nopen_allowance_usd = 0.0005";
    let conf = config(&mock, &redis, "a", extra);
    let start = || Busbar::start_with(Some(&conf), DRIVERS[0], &[], &["--ledger", ledger_path]);
    let a = start();
    // A $0.01 daily cap: Redis allots a node a sixteenth of what is left at a time.
    let (id, secret) = create_key(&a, json!({"name": "open", "limits": {"daily_usd": 0.01}}));
    for _ in 0..3 {
        assert_eq!(chat(&a, &secret).status, 200);
    }
    let account = daily_account(&id);
    // Everything this node was allowed before the outage: what Redis has counted as spent and
    // what it holds as the node's lease.
    let before = {
        let mut v = (0, 0);
        eventually(5, "the first settlements reach Redis", || {
            v = (
                field(&redis, &account, "spent"),
                field(&redis, &account, "lease:a"),
            );
            v.0 > 0
        });
        v.0 + v.1
    };
    drop(redis);
    // Redis is gone: the node serves from what it holds, then from its allowance, then says
    // it cannot.
    let mut served = 0;
    let refused = loop {
        let r = chat(&a, &secret);
        match r.status {
            200 => served += 1,
            503 => break r,
            other => panic!("unexpected {other}: {}", r.text()),
        }
        assert!(served < 10_000, "never refused");
    };
    assert_eq!(refused.json()["error"]["code"], "fleet_ledger_unavailable");
    let spent = charged_micros(&a, &id);
    eprintln!(
        "Redis allowed {before} micro-USD; the node spent {spent} ({served} requests while Redis was down)"
    );
    // Beyond what Redis had allowed it, but by no more than the allowance.
    assert!(
        spent > before,
        "{spent} <= {before}: the allowance was never used"
    );
    assert!(
        spent <= before + 500,
        "{spent} micro-USD spent: more than {before} + the 500 allowance"
    );
    // Killed while Redis is still away: what it owes Redis is only in its ledger file.
    a.kill9();
    let redis = RedisServer::start_persistent(port, redis_dir.path());
    let a = start();
    let local = charged_micros(&a, &id);
    assert!(
        local >= spent,
        "the node's file lost spend: {local} < {spent}"
    );
    let mut last = (0, 0);
    eventually(
        10,
        "the journal reaches Redis and the old lease goes back",
        || {
            last = (
                field(&redis, &account, "spent"),
                field(&redis, &account, "lease:a"),
            );
            last == (local, 0)
        },
    );
    assert_eq!(field(&redis, &account, "held"), 0);
    // And it serves again, from a new lease.
    assert_eq!(chat(&a, &secret).status, 200);
}

#[test]
fn a_fleet_over_tls_needs_the_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("redis-ca");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let (cert, key) = ca.server(&["127.0.0.1"]).write(dir.path(), "redis");
    let redis = RedisServer::start_tls(&RedisTls {
        cert: &cert,
        key: &key,
        client_ca: &ca_path,
    });
    let mock = MockProvider::start(&[]);
    let node = |name: &str, with_cert: bool| {
        let mut tls = format!("tls_ca = \"{}\"\n", ca_path.display());
        if with_cert {
            let (c, k) = ca.client(name).write(dir.path(), name);
            tls += &format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                c.display(),
                k.display()
            );
        }
        Busbar::start(&config(&mock, &redis, name, &tls), DRIVERS[0], &[])
    };
    let a = node("a", true);
    let b = node("b", true);
    let (id, secret) = create_key(&a, json!({"name": "tls", "limits": {"daily_usd": 1}}));
    wait_for_key(&b, &id, &secret);
    for n in [&a, &b, &a] {
        assert_eq!(chat(n, &secret).status, 200);
    }
    // Their spend is in Redis (read on its plain port).
    let account = daily_account(&id);
    let local = || charged_micros(&a, &id) + charged_micros(&b, &id);
    eventually(5, "the settlements reach Redis over TLS", || {
        local() > 0 && field(&redis, &account, "spent") == local()
    });
    // `busbar check` reads the CA as the node would: a PEM that holds no certificate fails.
    let conf = |ca: &std::path::Path| {
        config(
            &mock,
            &redis,
            "d",
            &format!("tls_ca = \"{}\"\n", ca.display()),
        )
    };
    let (code, out) = busbar_tests::run_check(&conf(&ca_path));
    assert_eq!(code, 0, "{out}");
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (code, out) = busbar_tests::run_check(&conf(&bad));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("fleet: ") && out.contains("root certificate"),
        "{out}"
    );
    // A node without a client certificate is refused at the handshake: it never sees the key.
    let c = node("c", false);
    let r = chat(&c, &secret);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        c.stderr().contains("Redis is unreachable"),
        "{}",
        c.stderr()
    );
}

#[test]
fn a_node_that_stops_settles_everything_and_gives_its_leases_back() {
    let redis = RedisServer::start();
    let mock = MockProvider::start(&[]);
    let ledger = tempfile::tempdir().unwrap();
    let conf = config(&mock, &redis, "a", "");
    let start = || {
        let dir = ledger.path().to_str().unwrap();
        Busbar::start_with(Some(&conf), DRIVERS[1], &[], &["--ledger", dir])
    };
    let a = start();
    let (id, secret) = create_key(&a, json!({"name": "stop", "limits": {"daily_usd": 1}}));
    for _ in 0..20 {
        assert_eq!(chat(&a, &secret).status, 200);
    }
    let account = daily_account(&id);
    assert!(
        field(&redis, &account, "lease:a") > 0,
        "the node holds a lease"
    );
    // SIGTERM: a clean stop. Redis has all of the node's spend and none of its leases.
    a.stop();
    let in_redis = field(&redis, &account, "spent");
    assert_eq!(field(&redis, &account, "lease:a"), 0);
    assert_eq!(field(&redis, &account, "held"), 0);
    // What the node's file has (read by starting it again: nothing unsettled, nothing more).
    let a = start();
    let u = admin(&a, "GET", &format!("/admin/keys/{id}/usage"), None).json();
    assert_eq!(
        u["daily"]["unsettled_usd"].as_f64().unwrap_or(0.0),
        0.0,
        "{u}"
    );
    assert_eq!(u["daily"]["requests"], 20, "{u}");
    assert_eq!(charged_micros(&a, &id), in_redis);
    assert!(in_redis > 0);
}

#[test]
fn a_redis_that_comes_back_empty_gets_every_nodes_spend_back_and_the_cap_still_holds() {
    let redis = RedisServer::start();
    let port = redis.port;
    let mock = MockProvider::start(&[]);
    let nodes: Vec<Busbar> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Busbar::start(
                &config(&mock, &redis, n, "timeout_ms = 100"),
                DRIVERS[i],
                &[],
            )
        })
        .collect();
    let (id, secret) = create_key(
        &nodes[0],
        json!({"name": "wiped", "limits": {"daily_usd": 0.004}}),
    );
    wait_for_key(&nodes[1], &id, &secret);
    for _ in 0..15 {
        for n in &nodes {
            assert_eq!(chat(n, &secret).status, 200);
        }
    }
    let account = daily_account(&id);
    let local = || nodes.iter().map(|n| charged_micros(n, &id)).sum::<u64>();
    let requests = |n: &Busbar| {
        admin(n, "GET", &format!("/admin/keys/{id}/usage"), None).json()["daily"]["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    eventually(5, "every request is settled on its node", || {
        nodes.iter().all(|n| requests(n) == 15)
    });
    let before = local();
    eventually(5, "the spend is in Redis", || {
        field(&redis, &account, "spent") == before
    });
    // Killed, and back without its data (no persistence).
    drop(redis);
    let redis = RedisServer::start_on(port);
    // Both nodes, idle, find the new life within a second or so and give it their spend.
    let mut seen = 0;
    eventually(10, "the nodes give the new Redis their spend", || {
        seen = field(&redis, &account, "spent");
        seen == before
    });
    eprintln!("a Redis that came back empty has the fleet's {seen} micro-USD again");
    // The key still works, and the fleet's spend still stops at the cap.
    eventually(5, "the key is served again", || {
        chat(&nodes[0], &secret).status == 200
    });
    let served = until_refused(&nodes, 2, &secret, 400);
    assert!(served > 5, "{served}");
    // The 30 before, the one that found the key served again, and the load's.
    eventually(5, "every request is settled", || {
        nodes.iter().map(requests).sum::<u64>() == 31 + served as u64
    });
    let total = local();
    eprintln!("then {served} more requests: the fleet spent {total} of a 4000 micro-USD cap");
    assert!(
        total <= 4_000,
        "the fleet spent {total} micro-USD under a 4,000 cap"
    );
    assert!(total >= 3_000, "stopped early: {total}");
}

#[test]
fn a_node_gone_for_good_has_its_leases_given_back_through_the_admin_api_and_only_then() {
    let redis = RedisServer::start();
    let mock = MockProvider::start(&[]);
    let a = Busbar::start(&config(&mock, &redis, "a", ""), DRIVERS[0], &[]);
    let b = Busbar::start(&config(&mock, &redis, "b", ""), DRIVERS[1], &[]);
    let (id, secret) = create_key(&a, json!({"name": "gone", "limits": {"all_time_usd": 1}}));
    wait_for_key(&b, &id, &secret);
    for _ in 0..5 {
        assert_eq!(chat(&a, &secret).status, 200);
    }
    let account = format!("fleet-test:a:k{}:{id}:all_time_usd:0", id.len());
    let held_by_a = field(&redis, &account, "lease:a");
    assert!(held_by_a > 0);
    // Both nodes are seen, every second.
    eventually(5, "both nodes are alive", || {
        let v = admin(&b, "GET", "/admin/fleet", None).json();
        let alive: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .map(|n| n["node_id"].as_str().unwrap())
            .collect();
        alive.len() == 2 && alive.contains(&"a") && v["life"].as_u64() > Some(0)
    });
    // A node that is alive keeps its leases.
    let r = admin(&b, "POST", "/admin/fleet/nodes/a/release", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("alive"), "{}", r.text());
    assert_eq!(
        admin(&b, "POST", "/admin/fleet/nodes/a b/release", None).status,
        400
    );
    // a crashes for good: its lease stays held in Redis...
    a.kill9();
    assert_eq!(field(&redis, &account, "lease:a"), held_by_a);
    // ...until an operator gives it back, once a is no longer seen.
    let mut released = Value::Null;
    eventually(10, "a counts as gone and its leases go back", || {
        let r = admin(&b, "POST", "/admin/fleet/nodes/a/release", None);
        released = r.json();
        r.status == 200
    });
    assert_eq!(released["accounts_released"], 1, "{released}");
    assert_eq!(field(&redis, &account, "lease:a"), 0);
    assert_eq!(
        field(&redis, &account, "held"),
        field(&redis, &account, "lease:b")
    );
    let v = admin(&b, "GET", "/admin/fleet", None).json();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(chat(&b, &secret).status, 200);
}
