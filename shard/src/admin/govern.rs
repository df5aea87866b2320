//! The governance half of the admin API: virtual keys, environment limits, usage. Reads come
//! straight from the ledger file; changes go to the ledger thread (which writes them) and then
//! to every shard, and the call returns once every shard has confirmed.
//!
//! ```text
//!   POST   /admin/keys                  create (the secret is in this answer only)
//!   GET    /admin/keys[/{id}]           list, get
//!   PATCH  /admin/keys/{id}             update       POST /admin/keys/{id}/revoke
//!   DELETE /admin/keys/{id}             delete       GET  /admin/keys/{id}/usage[?date=]
//!   GET|PUT|DELETE /admin/environments[/{name}]      GET  /admin/environments/{name}/usage
//!   GET    /admin/models/{name}/usage
//! ```

use super::{Admin, Answer, Request};
use crate::control::{ShardMsg, ShardReport};
use crate::ledger::store::{Store, Subject, Usage};
use crate::ledger::{AdminOp, LedgerHandle};
use busbar_core::govern::{
    Caps, EnvRecord, FieldError, KeyRecord, KeySpec, Micros, Rates, Window, env_from_json,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest a change waits for the ledger's commit, and then for every shard.
const CONFIRM: Duration = Duration::from_secs(5);

fn usd(m: Option<Micros>) -> Value {
    m.map_or(Value::Null, |v| json!(v as f64 / 1e6))
}

fn limits_json(caps: &Caps, rates: &Rates) -> Value {
    json!({
        "daily_usd": usd(caps.daily),
        "monthly_usd": usd(caps.monthly),
        "all_time_usd": usd(caps.all_time),
        "rpm": rates.rpm,
        "tpm": rates.tpm,
    })
}

fn key_json(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "environment": k.environment,
        "allowed": k.allowed,
        "limits": limits_json(&k.caps, &k.rates),
        "expires_at_ms": k.expires_at_ms,
        "revoked": k.revoked,
        "created_at_ms": k.created_at_ms,
    })
}

fn env_json(e: &EnvRecord) -> Value {
    json!({"name": e.name, "limits": limits_json(&e.caps, &e.rates)})
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "spend_usd": u.spent as f64 / 1e6,
        "unsettled_usd": u.unsettled as f64 / 1e6,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "requests": u.requests,
    })
}

fn bad(e: &FieldError) -> Answer {
    Answer::field(&e.field, &e.message)
}

fn storage(e: heed::Error) -> Answer {
    Answer::error(500, format!("the ledger file could not be read: {e}"))
}

/// `n` random bytes from the operating system, as hex.
fn random_hex(n: usize) -> Result<String, Answer> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b)
        .map_err(|e| Answer::error(500, format!("no randomness for a key: {e}")))?;
    Ok(hex::encode(b))
}

pub(super) fn route(admin: &Admin, req: &Request) -> Answer {
    let Some((ledger, store)) = &admin.ledger else {
        return Answer::error(
            503,
            "the ledger is off (--ledger off or [ledger] enabled = false): there are no virtual keys",
        );
    };
    let cx = Cx {
        ledger,
        store,
        admin,
    };
    let parts: Vec<&str> = req.path.trim_start_matches("/admin/").split('/').collect();
    let m = req.method.as_str();
    let p = req.path.as_str();
    match parts.as_slice() {
        ["keys"] => match m {
            "GET" => cx.list_keys(),
            "POST" => cx.create_key(&req.body),
            _ => Answer::method(m, p, "GET, POST"),
        },
        ["keys", id] => match m {
            "GET" => cx.with_key(id, |k| Answer::ok(key_json(&k))),
            "PATCH" => cx.with_key(id, |k| cx.update_key(k, &req.body)),
            "DELETE" => cx.with_key(id, |k| cx.delete_key(&k)),
            _ => Answer::method(m, p, "GET, PATCH, DELETE"),
        },
        ["keys", id, "revoke"] => match m {
            "POST" => cx.with_key(id, |mut k| {
                k.revoked = true;
                cx.put_key(k, None, 200)
            }),
            _ => Answer::method(m, p, "POST"),
        },
        ["keys", id, "usage"] => match m {
            "GET" => cx.with_key(id, |k| cx.key_usage(&k, &req.query)),
            _ => Answer::method(m, p, "GET"),
        },
        ["environments"] => match m {
            "GET" => match store.envs() {
                Ok(list) => Answer::ok(
                    json!({"environments": list.iter().map(env_json).collect::<Vec<_>>()}),
                ),
                Err(e) => storage(e),
            },
            _ => Answer::method(m, p, "GET"),
        },
        ["environments", name] => match m {
            "GET" => match store.env(name) {
                Ok(Some(e)) => Answer::ok(env_json(&e)),
                Ok(None) => Answer::error(404, format!("environment `{name}` has no limits set")),
                Err(e) => storage(e),
            },
            "PUT" => cx.put_env(name, &req.body),
            "DELETE" => cx.delete_env(name),
            _ => Answer::method(m, p, "GET, PUT, DELETE"),
        },
        ["environments", name, "usage"] => match m {
            "GET" => cx.usage_of("environment", name, Subject::Environment(name), &req.query),
            _ => Answer::method(m, p, "GET"),
        },
        ["models", name, "usage"] => match m {
            "GET" => cx.usage_of("model", name, Subject::ModelAll(name), &req.query),
            _ => Answer::method(m, p, "GET"),
        },
        ["fleet"] => match m {
            "GET" => cx.fleet_view(),
            _ => Answer::method(m, p, "GET"),
        },
        ["fleet", "nodes", node, "release"] => match m {
            "POST" => cx.forget_node(node),
            _ => Answer::method(m, p, "POST"),
        },
        _ => Answer::error(404, format!("no admin route {p}")),
    }
}

struct Cx<'a> {
    ledger: &'a LedgerHandle,
    store: &'a Store,
    admin: &'a Admin,
}

/// A change being shared with the fleet: Redis has it; the announcement follows once this
/// node has it in force.
struct Shared(Option<(redis::Connection, crate::fleet::sync::Names)>);

impl Shared {
    fn announce(self) {
        if let Some((mut conn, names)) = self.0 {
            // Best effort: every node compares with Redis at least once a second anyway.
            if let Err(e) = crate::fleet::sync::announce(&mut conn, &names) {
                tracing::warn!("fleet: the change is in Redis but was not announced: {e}");
            }
        }
    }
}

impl Cx<'_> {
    /// In a fleet, writes `change` to Redis first (every node takes it from there); if Redis
    /// cannot take it, nothing changes and the caller gets a 503 saying so.
    fn share(&self, change: crate::fleet::sync::Change<'_>) -> Result<Shared, Answer> {
        let config = self.admin.current.get().config;
        let Some(f) = &config.fleet else {
            return Ok(Shared(None));
        };
        let names = crate::fleet::sync::Names::new(&f.key_prefix);
        let written = fleet_conn(f).and_then(|mut conn| {
            crate::fleet::sync::write(&mut conn, &names, &change)?;
            Ok(conn)
        });
        match written {
            Ok(conn) => Ok(Shared(Some((conn, names)))),
            Err(e) => Err(Answer::error(
                503,
                format!(
                    "the fleet's Redis could not take the change, so nothing was changed on any node: {e}"
                ),
            )),
        }
    }

    /// The fleet as Redis sees it: its life, and every node with when it was last seen.
    fn fleet_view(&self) -> Answer {
        let config = self.admin.current.get().config;
        let Some(f) = &config.fleet else {
            return Answer::error(404, "this busbar is not a fleet node (no [fleet] section)");
        };
        let view = fleet_conn(f).and_then(|mut c| crate::fleet::fleet_view(&mut c, &f.key_prefix));
        match view {
            Ok(crate::fleet::View {
                now_ms: now,
                life,
                nodes,
            }) => Answer::ok(json!({
                "node_id": f.node_id,
                "life": life,
                "nodes": nodes.iter().map(|(node, seen)| json!({
                    "node_id": node,
                    "last_seen_ms_ago": now.saturating_sub(*seen),
                    "alive": now.saturating_sub(*seen) < crate::fleet::ALIVE_MS,
                })).collect::<Vec<_>>(),
            })),
            Err(e) => Answer::error(503, format!("the fleet's Redis cannot be reached: {e}")),
        }
    }

    /// Gives back every lease of a node that is gone for good (refused while it is alive).
    fn forget_node(&self, node: &str) -> Answer {
        let config = self.admin.current.get().config;
        let Some(f) = &config.fleet else {
            return Answer::error(404, "this busbar is not a fleet node (no [fleet] section)");
        };
        if !busbar_core::config::is_node_id(node) {
            return Answer::error(
                400,
                format!("`{node}` is not a node id (1 to 64 letters, digits, `-`, `_` or `.`)"),
            );
        }
        let forgot =
            fleet_conn(f).and_then(|mut c| crate::fleet::forget_node(&mut c, &f.key_prefix, node));
        match forgot {
            Ok(n) => {
                tracing::warn!(
                    node,
                    accounts = n,
                    "fleet: a node's leases were given back by the admin API"
                );
                Answer::ok(json!({"node_id": node, "accounts_released": n}))
            }
            Err(e) if crate::fleet::refused_with(&e, crate::fleet::ALIVE_ERROR) => Answer::error(
                409,
                format!(
                    "node `{node}` is alive ({}): only a node that is gone for good may have its leases given back; stop it first (a clean stop gives them back itself)",
                    e.detail().unwrap_or("seen within the last 3 s")
                ),
            ),
            Err(e) => Answer::error(503, format!("the fleet's Redis cannot be reached: {e}")),
        }
    }

    fn list_keys(&self) -> Answer {
        match self.store.keys() {
            Ok(mut keys) => {
                keys.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
                Answer::ok(json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()}))
            }
            Err(e) => storage(e),
        }
    }

    fn with_key(&self, id: &str, f: impl FnOnce(KeyRecord) -> Answer) -> Answer {
        match self.store.key(id) {
            Ok(Some(k)) => f(k),
            Ok(None) => Answer::error(404, format!("no key with id `{id}`")),
            Err(e) => storage(e),
        }
    }

    fn create_key(&self, body: &[u8]) -> Answer {
        let spec = match KeySpec::from_json(body) {
            Ok(s) => s,
            Err(e) => return bad(&e),
        };
        if spec.name.is_none() {
            return Answer::field("name", "is required: a name for the key");
        }
        let (id, secret) = match (random_hex(12), random_hex(24)) {
            (Ok(i), Ok(s)) => (format!("key_{i}"), format!("bb_{s}")),
            (Err(a), _) | (_, Err(a)) => return a,
        };
        let base = KeyRecord::new(id, crate::gate::now_ms());
        let key = spec.apply(&base);
        let digest = busbar_core::keys::digest(&secret);
        let mut a = self.put_key(key, Some(digest), 201);
        if a.status == 201 {
            a.body = json!({"key": a.body, "secret": secret});
        }
        a
    }

    fn update_key(&self, k: KeyRecord, body: &[u8]) -> Answer {
        match KeySpec::from_json(body) {
            Ok(spec) => self.put_key(spec.apply(&k), None, 200),
            Err(e) => bad(&e),
        }
    }

    /// Writes `key` through the ledger, then puts it in force on every shard.
    fn put_key(&self, key: KeyRecord, digest: Option<[u8; 32]>, status: u16) -> Answer {
        let body = key_json(&key);
        let id = key.id.clone();
        let record = Arc::new(key.clone());
        let shared = match self.share(crate::fleet::sync::Change::Key(&key, digest.as_ref())) {
            Ok(s) => s,
            Err(a) => return a,
        };
        if let Err(e) = self.ledger.admin(AdminOp::PutKey { key, digest }, CONFIRM) {
            return Answer::error(503, e);
        }
        let a = self.broadcast(|ack| ShardMsg::Key {
            id: id.clone(),
            digest,
            record: Some(Arc::clone(&record)),
            ack,
        });
        shared.announce();
        match a {
            Some(err) => err,
            None => Answer::status(status, body),
        }
    }

    fn delete_key(&self, k: &KeyRecord) -> Answer {
        let shared = match self.share(crate::fleet::sync::Change::DeleteKey(&k.id)) {
            Ok(s) => s,
            Err(a) => return a,
        };
        if let Err(e) = self.ledger.admin(AdminOp::DeleteKey(k.id.clone()), CONFIRM) {
            return Answer::error(503, e);
        }
        let a = self.broadcast(|ack| ShardMsg::Key {
            id: k.id.clone(),
            digest: None,
            record: None,
            ack,
        });
        shared.announce();
        a.unwrap_or_else(|| Answer::ok(json!({"id": k.id, "deleted": true})))
    }

    fn put_env(&self, name: &str, body: &[u8]) -> Answer {
        let base = match self.store.env(name) {
            Ok(b) => b,
            Err(e) => return storage(e),
        };
        let env = match env_from_json(name, body, base.as_ref()) {
            Ok(e) => e,
            Err(e) => return bad(&e),
        };
        let out = env_json(&env);
        let record = Arc::new(env.clone());
        let shared = match self.share(crate::fleet::sync::Change::Env(&env)) {
            Ok(s) => s,
            Err(a) => return a,
        };
        if let Err(e) = self.ledger.admin(AdminOp::PutEnv(env), CONFIRM) {
            return Answer::error(503, e);
        }
        let a = self.broadcast(|ack| ShardMsg::Env {
            name: name.to_string(),
            record: Some(Arc::clone(&record)),
            ack,
        });
        shared.announce();
        a.unwrap_or_else(|| Answer::ok(out))
    }

    fn delete_env(&self, name: &str) -> Answer {
        match self.store.env(name) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Answer::error(404, format!("environment `{name}` has no limits set"));
            }
            Err(e) => return storage(e),
        }
        let shared = match self.share(crate::fleet::sync::Change::DeleteEnv(name)) {
            Ok(s) => s,
            Err(a) => return a,
        };
        if let Err(e) = self
            .ledger
            .admin(AdminOp::DeleteEnv(name.to_string()), CONFIRM)
        {
            return Answer::error(503, e);
        }
        let a = self.broadcast(|ack| ShardMsg::Env {
            name: name.to_string(),
            record: None,
            ack,
        });
        shared.announce();
        a.unwrap_or_else(|| Answer::ok(json!({"name": name, "deleted": true})))
    }

    /// Sends a change to every shard and waits until each has it in force; `Some`: the error
    /// to answer with.
    fn broadcast(
        &self,
        msg: impl Fn(crossbeam_channel::Sender<usize>) -> ShardMsg,
    ) -> Option<Answer> {
        let boxes = &self.admin.mailboxes;
        let (tx, rx) = crossbeam_channel::bounded(boxes.len().max(1));
        for m in boxes.iter() {
            m.send(msg(tx.clone()));
        }
        drop(tx);
        let deadline = Instant::now() + CONFIRM;
        let mut seen = vec![false; boxes.len()];
        while seen.iter().any(|s| !s) {
            match rx.recv_deadline(deadline) {
                Ok(i) => {
                    if let Some(s) = seen.get_mut(i) {
                        *s = true;
                    }
                }
                Err(_) => {
                    let missing: Vec<usize> = (0..seen.len()).filter(|i| !seen[*i]).collect();
                    return Some(Answer::error(
                        504,
                        format!(
                            "the change is in the ledger, but shards {missing:?} did not confirm it within {} s",
                            CONFIRM.as_secs()
                        ),
                    ));
                }
            }
        }
        None
    }

    fn key_usage(&self, k: &KeyRecord, query: &str) -> Answer {
        let at = match date(query) {
            Ok(a) => a,
            Err(a) => return a,
        };
        let mut v = match self.windows(Subject::Key(&k.id), at) {
            Ok(v) => v,
            Err(a) => return a,
        };
        let models = match self.store.models_of(&k.id) {
            Ok(m) => m,
            Err(e) => return storage(e),
        };
        let mut per = serde_json::Map::new();
        for m in models {
            match self.windows(Subject::Model(&k.id, &m), at) {
                Ok(w) => {
                    per.insert(m, w);
                }
                Err(a) => return a,
            }
        }
        v["key"] = json!(k.id);
        v["environment"] = json!(k.environment);
        v["models"] = Value::Object(per);
        Answer::ok(v)
    }

    fn usage_of(&self, what: &str, name: &str, subject: Subject<'_>, query: &str) -> Answer {
        let at = match date(query) {
            Ok(a) => a,
            Err(a) => return a,
        };
        match self.windows(subject, at) {
            Ok(mut v) => {
                v[what] = json!(name);
                Answer::ok(v)
            }
            Err(a) => a,
        }
    }

    /// Daily, monthly and all-time usage of `subject` at `at_ms`.
    fn windows(&self, subject: Subject<'_>, at_ms: u64) -> Result<Value, Answer> {
        let mut v = json!({"date": day_text(at_ms), "month": day_text(at_ms)[..7]});
        for (name, w) in [
            ("daily", Window::Day),
            ("monthly", Window::Month),
            ("all_time", Window::AllTime),
        ] {
            let u = self.store.usage(subject, w, at_ms).map_err(storage)?;
            v[name] = usage_json(&u);
        }
        Ok(v)
    }
}

/// The ledger's part of `/stats`.
pub(super) fn ledger_stats(l: &LedgerHandle, reports: &[ShardReport]) -> Value {
    let s = &l.stats;
    let (accounts, balance, reserved) = reports.iter().fold((0, 0, 0), |(a, b, r), x| {
        (a + x.leases.0, b + x.leases.1, r + x.leases.2)
    });
    json!({
        "settled": s.committed.load(Ordering::Acquire),
        "transactions": s.batches.load(Ordering::Relaxed),
        "failed_transactions": s.failed.load(Ordering::Relaxed),
        "channel_full_drops": s.dropped.load(Ordering::Relaxed),
        "fleet_pending_settlements": s.fleet_pending.load(Ordering::Relaxed),
        "fleet_redis_round_trips": s.fleet_round_trips.load(Ordering::Relaxed),
        "fleet_unreachable_refusals": s.fleet_down.load(Ordering::Relaxed),
        "leases_granted": s.granted.load(Ordering::Relaxed),
        "leases_refused": s.refused.load(Ordering::Relaxed),
        "recalls": s.recalls.load(Ordering::Relaxed),
        "leases_held": {"accounts": accounts, "unreserved": balance, "reserved": reserved},
    })
}

/// A connection of the admin thread's own to the fleet's Redis (calls bounded by the fleet's
/// timeout, at least a second).
fn fleet_conn(f: &busbar_core::config::Fleet) -> redis::RedisResult<redis::Connection> {
    let timeout = std::time::Duration::from_millis(f.timeout_ms.max(1000));
    let conn = crate::fleet::client(f)?.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// `YYYY-MM-DD` of a Unix ms moment (UTC).
fn day_text(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let d = time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The `date=YYYY-MM-DD` of a query (noon UTC that day), or now.
fn date(query: &str) -> Result<u64, Answer> {
    let Some(text) = query.split('&').find_map(|kv| kv.strip_prefix("date=")) else {
        return Ok(crate::gate::now_ms());
    };
    let bad = || Answer::field("date", "must be a date like 2026-11-24 (UTC)");
    let mut it = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else {
        return Err(bad());
    };
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    let day = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    let ts = day
        .with_time(time::Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(ts)
        .map(|s| s * 1000 + 43_200_000)
        .map_err(|_| bad())
}
