//! `GET /metrics`: every shard's cells and reports merged into Prometheus families at scrape
//! time (on the admin thread, or on the shard that took a data-listener scrape) and written
//! in the text exposition format by the `prometheus` crate's encoder.

use super::cells::{Hist, LATENCY_BUCKETS, Labels, OVERHEAD_BUCKETS, Snapshot};
use crate::control::ShardReport;
use busbar_core::config::Config;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use std::collections::BTreeMap;

/// The Content-Type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counters kept outside the shards.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Outside {
    /// Messages to shards dropped on a full mailbox.
    pub(crate) control_full: u64,
    /// Usage deltas and lease requests the ledger's channel had no room for.
    pub(crate) ledger_full: Option<u64>,
    /// Fleet mode: the ledger's view of Redis.
    pub(crate) fleet: Option<FleetCounts>,
}

/// What a fleet node's ledger thread counts of Redis.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FleetCounts {
    /// Settlements and releases waiting for Redis.
    pub(crate) pending: u64,
    /// Round trips to Redis so far.
    pub(crate) round_trips: u64,
    /// Lease requests refused because Redis could not be reached.
    pub(crate) refused: u64,
}

struct Families(Vec<MetricFamily>);

/// One token count of a [`Spend`](super::cells::Spend).
type SpendField = fn(&super::cells::Spend) -> u64;

fn pairs(names: &[&str], values: &[&str]) -> Vec<LabelPair> {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let mut p = LabelPair::default();
            p.set_name((*n).to_string());
            p.set_value((*v).to_string());
            p
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return;
        }
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(kind);
        *f.mut_metric() = metrics;
        self.0.push(f);
    }

    /// A family of counters or gauges, one per row of label values.
    fn scalars<'a>(
        &mut self,
        kind: MetricType,
        (name, help): (&str, &str),
        names: &[&str],
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) {
        let metrics = rows
            .into_iter()
            .map(|(values, v)| {
                let mut m = Metric::from_label(pairs(names, &values));
                if kind == MetricType::GAUGE {
                    let mut g = Gauge::default();
                    g.set_value(v);
                    m.set_gauge(g);
                } else {
                    let mut c = Counter::default();
                    c.set_value(v);
                    m.set_counter(c);
                }
                m
            })
            .collect();
        self.family(name, help, kind, metrics);
    }

    fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        names: &[&str],
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) {
        self.scalars(MetricType::COUNTER, (name, help), names, rows);
    }

    fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        names: &[&str],
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) {
        self.scalars(MetricType::GAUGE, (name, help), names, rows);
    }

    fn histograms<'a, const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        names: &[&str; N],
        bounds: &[f64],
        rows: impl IntoIterator<Item = (&'a Labels<N>, &'a Hist)>,
    ) {
        let metrics = rows
            .into_iter()
            .map(|(labels, h)| {
                let values: Vec<&str> = labels.0.iter().map(String::as_str).collect();
                let mut m = Metric::from_label(pairs(names, &values));
                let mut hist = Histogram::default();
                let mut cumulative = 0;
                let buckets = bounds
                    .iter()
                    .zip(&h.counts)
                    .map(|(le, n)| {
                        cumulative += n;
                        let mut b = Bucket::default();
                        b.set_upper_bound(*le);
                        b.set_cumulative_count(cumulative);
                        b
                    })
                    .collect();
                hist.set_bucket(buckets);
                hist.set_sample_count(h.count());
                hist.set_sample_sum(h.sum);
                m.set_histogram(hist);
                m
            })
            .collect();
        self.family(name, help, MetricType::HISTOGRAM, metrics);
    }
}

/// Adds `from` into `into`, label set by label set.
fn merge(into: &mut Snapshot, from: &Snapshot) {
    for (k, v) in &from.requests {
        *into.requests.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &from.duration {
        into.duration.entry(k.clone()).or_default().merge(v);
    }
    for (k, v) in &from.upstream_ttfb {
        into.upstream_ttfb.entry(k.clone()).or_default().merge(v);
    }
    for (k, v) in &from.overhead {
        into.overhead.entry(k.clone()).or_default().merge(v);
    }
    for (k, v) in &from.spend {
        let s = into.spend.entry(k.clone()).or_default();
        s.input += v.input;
        s.output += v.output;
        s.cache_read += v.cache_read;
        s.cache_write += v.cache_write;
        s.reasoning += v.reasoning;
        s.cost_micros += v.cost_micros;
    }
    for (into_map, from_map) in [
        (&mut into.failovers, &from.failovers),
        (&mut into.decisions, &from.decisions),
        (&mut into.dropped, &from.dropped),
    ] {
        for (k, v) in from_map {
            *into_map.entry(k.clone()).or_default() += v;
        }
    }
    into.telemetry_dropped += from.telemetry_dropped;
}

/// Sorted rows of a labelled map (a stable exposition order).
fn sorted<K: Ord, V>(m: &hashbrown::HashMap<K, V>) -> Vec<(&K, &V)> {
    let mut rows: Vec<(&K, &V)> = m.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    rows
}

/// The text exposition of every shard's numbers.
pub(crate) fn render(config: &Config, reports: &[ShardReport], outside: Outside) -> String {
    let mut all = Snapshot::default();
    for r in reports {
        merge(&mut all, &r.metrics);
    }
    let mut f = Families(Vec::new());

    let mut requests: Vec<_> = all.requests.iter().collect();
    requests.sort_by(|a, b| {
        (&a.0.ingress, &a.0.egress, &a.0.pool, &a.0.model, a.0.status).cmp(&(
            &b.0.ingress,
            &b.0.egress,
            &b.0.pool,
            &b.0.model,
            b.0.status,
        ))
    });
    let codes: Vec<String> = requests.iter().map(|(k, _)| k.status.to_string()).collect();
    f.counters(
        "busbar_requests_total",
        "Requests answered, by ingress protocol, egress protocol (the answering provider's; none when no provider answered), pool, model and HTTP status code.",
        &["ingress", "egress", "pool", "model", "code"],
        requests.iter().zip(&codes).map(|((k, v), code)| {
            (
                vec![
                    k.ingress.as_str(),
                    k.egress.as_str(),
                    k.pool.as_str(),
                    k.model.as_str(),
                    code.as_str(),
                ],
                **v as f64,
            )
        }),
    );
    f.histograms(
        "busbar_request_duration_seconds",
        "Whole requests, from the request head to the answer's last byte.",
        &["ingress", "pool", "model"],
        &LATENCY_BUCKETS,
        sorted(&all.duration),
    );
    f.histograms(
        "busbar_upstream_time_to_first_byte_seconds",
        "Upstream attempts, from sending the request to the provider's response head.",
        &["model", "provider"],
        &LATENCY_BUCKETS,
        sorted(&all.upstream_ttfb),
    );
    f.histograms(
        "busbar_overhead_seconds",
        "busbar's own time to the answer's first byte: all of it but the waits for providers' response heads.",
        &["ingress"],
        &OVERHEAD_BUCKETS,
        sorted(&all.overhead),
    );
    let spend = sorted(&all.spend);
    let kinds: [(&str, SpendField); 5] = [
        ("input", |s| s.input),
        ("output", |s| s.output),
        ("cache_read", |s| s.cache_read),
        ("cache_write", |s| s.cache_write),
        ("reasoning", |s| s.reasoning),
    ];
    f.counters(
        "busbar_tokens_total",
        "Tokens the providers reported, by key, environment, model and kind (output includes reasoning).",
        &["key", "environment", "model", "kind"],
        spend.iter().flat_map(|(k, s)| {
            kinds.iter().map(move |(kind, get)| {
                (
                    vec![k.0[0].as_str(), k.0[1].as_str(), k.0[2].as_str(), *kind],
                    get(s) as f64,
                )
            })
        }),
    );
    f.counters(
        "busbar_spend_dollars_total",
        "What the requests cost at the models' configured prices, in US dollars.",
        &["key", "environment", "model"],
        spend.iter().map(|(k, s)| {
            (
                k.0.iter().map(String::as_str).collect(),
                s.cost_micros as f64 / 1e6,
            )
        }),
    );
    for (name, help, names, map) in [
        (
            "busbar_failovers_total",
            "Attempts that failed and passed the request on (or ended it), by pool, the model that failed and why.",
            ["pool", "model", "reason"],
            &all.failovers,
        ),
        (
            "busbar_policy_decisions_total",
            "Routing decisions, by pool, policy and the model put first.",
            ["pool", "policy", "model"],
            &all.decisions,
        ),
        (
            "busbar_translation_dropped_fields_total",
            "Request fields a translation could not carry, by ingress, egress and field.",
            ["ingress", "egress", "field"],
            &all.dropped,
        ),
    ] {
        f.counters(
            name,
            help,
            &names,
            sorted(map)
                .into_iter()
                .map(|(k, v)| (k.0.iter().map(String::as_str).collect(), *v as f64)),
        );
    }

    // Lanes: each shard's breaker replica, and the lane's totals.
    let mut states = Vec::new();
    let mut trips = Vec::new();
    let mut in_flight: BTreeMap<&str, u64> = BTreeMap::new();
    let shard_ids: Vec<String> = reports.iter().map(|r| r.shard.to_string()).collect();
    for (r, sid) in reports.iter().zip(&shard_ids) {
        for (i, l) in r.lanes.iter().enumerate() {
            let Some(m) = config.models.get(i) else {
                continue;
            };
            for s in ["closed", "open", "half_open"] {
                let on = l.state.as_str() == s;
                states.push((
                    vec![m.name.as_str(), sid.as_str(), s],
                    f64::from(u8::from(on)),
                ));
            }
            *in_flight.entry(m.name.as_str()).or_default() += l.in_flight as u64;
        }
    }
    if let Some(r) = reports.first() {
        for (i, l) in r.lanes.iter().enumerate() {
            if let Some(m) = config.models.get(i) {
                trips.push((vec![m.name.as_str()], l.trips as f64));
            }
        }
    }
    f.gauges(
        "busbar_lane_breaker_state",
        "Each shard's breaker replica per lane: 1 for the state it is in.",
        &["lane", "shard", "state"],
        states,
    );
    f.counters(
        "busbar_lane_trips_total",
        "Times a lane's breaker opened (on any shard) since the config generation began.",
        &["lane"],
        trips,
    );
    f.gauges(
        "busbar_lane_in_flight",
        "Requests a lane has at its provider now.",
        &["lane"],
        in_flight.iter().map(|(k, v)| (vec![*k], *v as f64)),
    );

    // Hooks.
    let mut hooks: BTreeMap<&str, crate::hooks::HookCounts> = BTreeMap::new();
    for r in reports {
        for (name, c) in &r.hooks.hooks {
            hooks.entry(name.as_str()).or_default().add(c);
        }
    }
    f.counters(
        "busbar_hook_calls_total",
        "Calls to routing and before_forward hooks (scripts and webhooks).",
        &["hook"],
        hooks.iter().map(|(k, c)| (vec![*k], c.calls as f64)),
    );
    f.counters(
        "busbar_hook_fallbacks_total",
        "Hook calls that failed and fell back (the pool's fallback policy, or fail open/closed), by why.",
        &["hook", "reason"],
        hooks.iter().flat_map(|(k, c)| {
            c.failures
                .iter()
                .map(move |(why, n)| (vec![*k, why.as_str()], *n as f64))
        }),
    );

    // Channels and connections.
    let mut full = vec![
        (vec!["control"], outside.control_full as f64),
        (vec!["telemetry"], all.telemetry_dropped as f64),
    ];
    if let Some(l) = outside.ledger_full {
        full.push((vec!["ledger"], l as f64));
    }
    f.counters(
        "busbar_channel_full_total",
        "Messages dropped because a cross-thread channel was full (never a stall).",
        &["channel"],
        full,
    );
    if let Some(fleet) = outside.fleet {
        f.gauges(
            "busbar_fleet_pending_settlements",
            "Fleet mode: settlements and releases waiting to go to Redis (kept in the ledger file).",
            &[],
            [(vec![], fleet.pending as f64)],
        );
        f.counters(
            "busbar_fleet_redis_round_trips_total",
            "Fleet mode: round trips from the ledger thread to Redis (a pipeline is one).",
            &[],
            [(vec![], fleet.round_trips as f64)],
        );
        f.counters(
            "busbar_fleet_unreachable_refusals_total",
            "Fleet mode: lease requests refused (503) because they needed Redis and it could not be reached.",
            &[],
            [(vec![], fleet.refused as f64)],
        );
    }
    let per_shard = |get: &dyn Fn(&ShardReport) -> f64| -> Vec<(Vec<&str>, f64)> {
        reports
            .iter()
            .zip(&shard_ids)
            .map(|(r, id)| (vec![id.as_str()], get(r)))
            .collect()
    };
    f.gauges(
        "busbar_open_connections",
        "Client connections open, per shard.",
        &["shard"],
        per_shard(&|r| r.connections.0 as f64),
    );
    f.gauges(
        "busbar_in_flight_requests",
        "Requests between head and the end of their answer, per shard.",
        &["shard"],
        per_shard(&|r| r.in_flight as f64),
    );
    f.counters(
        "busbar_connections_refused_total",
        "Connections answered 503 for being over limits.max_connections, per shard.",
        &["shard"],
        per_shard(&|r| r.connections.1 as f64),
    );
    f.counters(
        "busbar_tls_handshake_failures_total",
        "TLS handshakes that failed or ran out of time (mTLS refusals among them), per shard.",
        &["shard"],
        per_shard(&|r| r.connections.2 as f64),
    );

    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&f.0, &mut out) {
        return format!("# busbar could not encode its metrics: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}
