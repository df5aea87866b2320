#!/usr/bin/env bash
# The added latency of a programmable routing policy, through the real busbar and the mock
# (release builds): one busbar (shards = 1, pinned), alternately driven on three pools of the
# same two models:
#   builtin   policy = "weighted"
#   script    policy = "script", examples/rhai/route.rhai (20 lines)
#   webhook   policy = "webhook", the example Node hook server on loopback (examples/node)
# `RUNS` rounds of open-loop runs at `RATE` requests/s (what a decision adds to latency when
# nothing is saturated), `DURATION` each; medians and ratios against builtin in the same round.
#
#   bench/hooks.sh            (RUNS=5 DURATION=5s RATE=500 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
RATE=${RATE:-500}
source bench/lib.sh

start_mock
taskset -c "$LOAD_CPU" node examples/node/hooks.js --port 0 > "$work/hook.out" &
pids+=($!)
HOOK=$(addr_in "$work/hook.out" 's/.*listening on //p')

cat > "$work/busbar.toml" <<EOF
listen = "127.0.0.1:0"
shards = 1
[providers.openai]
protocol = "openai"
base_url = "http://$MOCK/v1"
[models.a]
provider = "openai"
input_price = 0.15
output_price = 0.6
[models.b]
provider = "openai"
input_price = 2.5
output_price = 10.0
[pools.builtin]
members = [{ model = "a" }, { model = "b" }]
[pools.script]
policy = "script"
script = "$PWD/examples/rhai/route.rhai"
members = [{ model = "a" }, { model = "b" }]
[pools.webhook]
policy = "webhook"
webhook = "http://$HOOK/route"
timeout_ms = 50
members = [{ model = "a" }, { model = "b" }]
EOF
start_busbar "$work/busbar.toml"

run() { # $1 = pool -> JSON on stdout
    taskset -c "$LOAD_CPU" "$BENCH" load --url "http://$BB/v1/chat/completions" --model "$1" \
        --duration "$DURATION" --warmup 1s --json --rate "$RATE"
}
for i in $(seq 1 "$RUNS"); do
    for p in builtin script webhook; do run "$p" > "$work/$p.$i.json"; done
done
curl -sf "http://$ADMIN/stats" > "$work/stats.json"

python3 - "$work" "$RUNS" "$RATE" <<'PY'
import json, statistics, sys
work, runs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {p: [json.load(open(f"{work}/{p}.{i}.json")) for i in range(1, runs + 1)] for p in ("builtin", "script", "webhook")}
errors = sum(r["errors"] for rs in res.values() for r in rs)
print(f"routing policy cost, open loop {rate} req/s, {runs} rounds, medians (errors: {errors})")
print(f"{'':10}{'p50 us':>10}{'p99 us':>10}{'+p50 us':>10}{'+p99 us':>10}")
for p, rs in res.items():
    b = res["builtin"]
    d50 = statistics.median(r["latency_us"]["p50"] - x["latency_us"]["p50"] for r, x in zip(rs, b))
    d99 = statistics.median(r["latency_us"]["p99"] - x["latency_us"]["p99"] for r, x in zip(rs, b))
    print(f"{p:10}{statistics.median(r['latency_us']['p50'] for r in rs):>10.0f}"
          f"{statistics.median(r['latency_us']['p99'] for r in rs):>10.0f}{d50:>10.0f}{d99:>10.0f}")
print("hooks:", json.dumps(json.load(open(f"{work}/stats.json"))["hooks"]))
PY
