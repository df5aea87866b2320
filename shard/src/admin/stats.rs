//! `GET /stats` and `GET /healthz`: every shard's view of its lanes (and its leases), gathered
//! through the mailboxes and merged here.

use crate::control::{Mailbox, ShardMsg, ShardReport};
use busbar_core::breaker::State;
use busbar_core::config::{Config, Endpoint};
use busbar_core::fault::Class;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait for the shards' answers.
const GATHER: Duration = Duration::from_secs(2);

/// Every shard's report (a shard that does not answer in time is left out).
pub(super) fn gather(mailboxes: &[Mailbox]) -> Vec<ShardReport> {
    let (tx, rx) = crossbeam_channel::bounded(mailboxes.len().max(1));
    for m in mailboxes {
        m.send(ShardMsg::Stats(tx.clone()));
    }
    drop(tx);
    let deadline = std::time::Instant::now() + GATHER;
    let mut out = Vec::with_capacity(mailboxes.len());
    while out.len() < mailboxes.len() {
        match rx.recv_deadline(deadline) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    out.sort_by_key(|r| r.shard);
    out
}

/// The mean of some shards' moving averages (`None` when no shard has one yet).
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = values.fold((0u32, 0.0), |(n, s), v| (n + 1, s + v));
    (n > 0).then(|| (sum / f64::from(n) * 100.0).round() / 100.0)
}

fn usable(config: &Config, lane: usize) -> bool {
    let p = &config.providers[config.models[lane].provider];
    matches!(p.endpoint, Endpoint::Mock(_)) || p.api_key_env.is_none() || p.api_key.is_some()
}

/// Lanes that some shard would send a request to now.
pub(super) fn serving_lanes(config: &Config, reports: &[ShardReport]) -> usize {
    (0..config.models.len())
        .filter(|&i| {
            usable(config, i)
                && reports
                    .iter()
                    .any(|r| r.lanes.get(i).is_some_and(|l| l.state != State::Open))
        })
        .count()
}

pub(super) fn stats(config: &Config, shards: usize, reports: &[ShardReport]) -> Value {
    let lanes: Vec<Value> = config
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let views: Vec<(usize, &crate::lanes::LaneSnapshot)> = reports
                .iter()
                .filter_map(|r| r.lanes.get(i).map(|l| (r.shard, l)))
                .collect();
            let states: Vec<State> = views.iter().map(|(_, l)| l.state).collect();
            let state = match states.first() {
                Some(first) if states.iter().all(|s| s == first) => first.as_str(),
                Some(_) => "mixed",
                None => "unknown",
            };
            let sum = |f: &dyn Fn(&crate::lanes::LaneSnapshot) -> u64| -> u64 {
                views.iter().map(|(_, l)| f(l)).sum()
            };
            let mut by_class = serde_json::Map::new();
            for (k, c) in Class::ALL.iter().enumerate() {
                let n: u64 = views.iter().map(|(_, l)| l.by_class[k]).sum();
                if n > 0 {
                    by_class.insert(c.as_str().into(), json!(n));
                }
            }
            let mut recent: Vec<(Duration, Class)> = views
                .iter()
                .flat_map(|(_, l)| l.recent.iter().copied())
                .collect();
            recent.sort_by_key(|(ago, _)| *ago);
            recent.truncate(16);
            let spread = views.iter().filter_map(|(_, l)| l.last_spread).max();
            let last_class = views
                .iter()
                .filter_map(|(_, l)| l.last_class)
                .next()
                .map(Class::as_str);
            json!({
                "lane": m.name,
                "provider": config.providers[m.provider].name,
                "upstream_model": m.upstream,
                "state": state,
                "cooldown_remaining_ms": views.iter().map(|(_, l)| l.cooldown_left.as_millis() as u64).max().unwrap_or(0),
                "streak": views.iter().map(|(_, l)| l.streak).max().unwrap_or(0),
                "last_tripped_by": last_class,
                "probe_in_flight": views.iter().any(|(_, l)| l.probing),
                "in_flight": sum(&|l| l.in_flight as u64),
                "waiting": sum(&|l| l.waiting as u64),
                "max_concurrency": sum(&|l| l.limit as u64),
                "requests": sum(&|l| l.requests),
                "failures": sum(&|l| l.failures),
                "hard_failures": views.iter().map(|(_, l)| l.hard_failures).max().unwrap_or(0),
                "errors_by_class": by_class,
                "recent_errors": recent.iter().map(|(ago, c)| json!({"class": c.as_str(), "ago_ms": ago.as_millis() as u64})).collect::<Vec<_>>(),
                "last_change_spread_us": spread.map(|d| d.as_micros() as u64),
                "trips": views.first().map_or(0, |(_, l)| l.trips),
                "latency_ms": mean(views.iter().filter_map(|(_, l)| l.latency_ms)),
                "ttft_ms": mean(views.iter().filter_map(|(_, l)| l.ttft_ms)),
                "shards": views.iter().map(|(s, l)| json!({
                    "shard": s,
                    "state": l.state.as_str(),
                    "cooldown_remaining_ms": l.cooldown_left.as_millis() as u64,
                    "in_flight": l.in_flight,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut hooks: std::collections::BTreeMap<String, crate::hooks::HookCounts> =
        Default::default();
    let mut audit = crate::hooks::audit::AuditCounts::default();
    let mut has_audit = false;
    for r in reports {
        for (name, c) in &r.hooks.hooks {
            hooks.entry(name.clone()).or_default().add(c);
        }
        if let Some(a) = r.hooks.audit {
            has_audit = true;
            audit.queued += a.queued;
            audit.sent += a.sent;
            audit.failed += a.failed;
            audit.dropped += a.dropped;
        }
    }
    let mut hooks_json = serde_json::Map::new();
    for (name, c) in hooks {
        hooks_json.insert(
            name,
            json!({"calls": c.calls, "rejected": c.rejected, "rewritten": c.rewritten,
                   "fallbacks": c.failures.values().sum::<u64>(), "failures": c.failures}),
        );
    }
    if has_audit {
        hooks_json.insert(
            "hooks.after_response".into(),
            json!({"queued": audit.queued, "sent": audit.sent, "failed": audit.failed, "dropped": audit.dropped}),
        );
    }
    // Requests and spend since start, from the shards' metric cells.
    let mut pool_requests: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut keys: std::collections::BTreeMap<(&str, &str), (u64, u64, u64)> = Default::default();
    for r in reports {
        for (k, n) in &r.metrics.requests {
            *pool_requests.entry(k.pool.as_str()).or_default() += n;
        }
        for (k, s) in &r.metrics.spend {
            let e = keys.entry((k.0[0].as_str(), k.0[1].as_str())).or_default();
            e.0 += s.cost_micros;
            e.1 += s.input + s.cache_read + s.cache_write;
            e.2 += s.output;
        }
    }
    let pools: Vec<Value> = config
        .pools
        .iter()
        .map(|p| {
            json!({
                "pool": p.name,
                "policy": p.policy.kind.name(),
                "members": p.members.iter().map(|m| json!({"lane": config.models[m.model].name, "weight": m.weight})).collect::<Vec<_>>(),
                "requests": pool_requests.get(p.name.as_str()).copied().unwrap_or(0),
            })
        })
        .collect();
    let mut top: Vec<_> = keys.into_iter().collect();
    top.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    top.truncate(10);
    let top_keys: Vec<Value> = top
        .iter()
        .map(|((key, env), (cost, input, output))| {
            json!({"key": key, "environment": env, "spend_usd": *cost as f64 / 1e6, "input_tokens": input, "output_tokens": output})
        })
        .collect();
    json!({
        "pools": pools,
        "top_keys": top_keys,
        "shards": shards,
        "shards_answered": reports.len(),
        "generation": reports.iter().map(|r| r.generation).max(),
        "hooks": hooks_json,
        "in_flight": reports.iter().map(|r| r.in_flight).sum::<usize>(),
        "connections": {
            "open": reports.iter().map(|r| r.connections.0).sum::<usize>(),
            "refused_over_limit": reports.iter().map(|r| r.connections.1).sum::<u64>(),
            "tls_failures": reports.iter().map(|r| r.connections.2).sum::<u64>(),
        },
        "lanes_serving": serving_lanes(config, reports),
        "mailbox_full_drops": crate::control::CHANNEL_FULL.load(std::sync::atomic::Ordering::Relaxed),
        "lanes": lanes,
    })
}
