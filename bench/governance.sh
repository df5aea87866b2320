#!/usr/bin/env bash
# The cost of governance per request, through the real busbar and the mock (release builds):
# one busbar (shards = 1, pinned), the same model, alternately driven with
#   open      a static [[keys]] key: no allowance, caps or limits to check
#   governed  a virtual key with daily, monthly and all-time caps, RPM and TPM limits, in an
#             environment with its own daily cap and RPM: every request reserves its worst case
#             against 7 leases and settles them (and its usage) through the ledger
# `RUNS` alternating pairs of closed-loop runs (c=`CONC`: saturated, what it costs in
# throughput) and open-loop runs (`RATE` requests/s: unsaturated, what it adds to latency),
# `DURATION` each; medians and ratios.
# Then the ledger's own throughput: `busbar bench-ledger` on this disk.
#
#   bench/governance.sh            (RUNS=5 DURATION=5s CONC=32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
CONC=${CONC:-32}
RATE=${RATE:-5000}
source bench/lib.sh

start_mock

priced_config '[[keys]]
name = "open"
key_env = "BENCH_OPEN_KEY"' > "$work/busbar.toml"
BENCH_OPEN_KEY=bench-open start_busbar "$work/busbar.toml" --ledger "$work/ledger"

curl -sf -XPUT "http://$ADMIN/admin/environments/bench" \
    -d '{"limits": {"daily_usd": 1000000, "rpm": 1000000000}}' > /dev/null
GOV=$(curl -sf -XPOST "http://$ADMIN/admin/keys" -d '{"name": "governed", "environment": "bench",
  "allowed": ["m"], "limits": {"daily_usd": 1000000, "monthly_usd": 1000000, "all_time_usd": 1000000,
  "rpm": 1000000000, "tpm": 1000000000000}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

run() { # $1 = key, then load options -> JSON on stdout
    local key=$1
    shift
    taskset -c "$LOAD_CPU" "$BENCH" load --url "http://$BB/v1/chat/completions" --model m \
        --key "$key" --duration "$DURATION" --warmup 1s --json "$@"
}
for i in $(seq 1 "$RUNS"); do
    run bench-open --concurrency "$CONC" > "$work/open.$i.json"
    run "$GOV" --concurrency "$CONC" > "$work/gov.$i.json"
    run bench-open --rate "$RATE" > "$work/openr.$i.json"
    run "$GOV" --rate "$RATE" > "$work/govr.$i.json"
done
curl -sf "http://$ADMIN/stats" > "$work/stats.json"

python3 - "$work" "$RUNS" "$CONC" "$RATE" <<'EOF'
import json, statistics, sys
work, runs, conc, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(kind):
    return [json.load(open(f"{work}/{kind}.{i}.json")) for i in range(1, runs + 1)]
def med(rs, f):
    return statistics.median(f(r) for r in rs)
for title, ko, kg in ((f"closed loop, c={conc}", "open", "gov"), (f"open loop, {rate} req/s", "openr", "govr")):
    o, g = load(ko), load(kg)
    errors = sum(r["errors"] for r in o + g)
    print(f"governance cost, {title}, {runs} alternating pairs, medians (errors: {errors})")
    print(f"{'':10}{'p50 us':>10}{'p99 us':>10}{'rps':>10}")
    for name, rs in (("open", o), ("governed", g)):
        print(f"{name:10}{med(rs, lambda r: r['latency_us']['p50']):>10.0f}"
              f"{med(rs, lambda r: r['latency_us']['p99']):>10.0f}{med(rs, lambda r: r['rps']):>10.0f}")
    pairs = list(zip(o, g))
    print("  per pair p50 governed/open:", " ".join(f"{b['latency_us']['p50'] / a['latency_us']['p50']:.3f}" for a, b in pairs))
    print(f"  median ratio p50 {statistics.median(b['latency_us']['p50'] / a['latency_us']['p50'] for a, b in pairs):.3f}, "
          f"p99 {statistics.median(b['latency_us']['p99'] / a['latency_us']['p99'] for a, b in pairs):.3f}, "
          f"rps {statistics.median(b['rps'] / a['rps'] for a, b in pairs):.3f}")
l = json.load(open(f"{work}/stats.json"))["ledger"]
print("ledger:", json.dumps(l))
EOF
echo "ledger throughput:"
"$BUSBAR" bench-ledger --dir "$work/bench-ledger" --requests 200000 --producers 2
