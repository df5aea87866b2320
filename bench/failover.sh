#!/usr/bin/env bash
# Failover measurements through the real busbar and the mock (release builds):
#
#   1. failover cost: p50/p99 of a pool whose first member fails at once (503) and whose second
#      answers, against the second member asked directly (breaker off, so every request pays
#      the failed attempt); `RUNS` alternating runs, medians.
#   2. outage -> every shard routing around it: a pool under load; at t0 one member starts
#      failing (503); the time until /stats shows its lane open on every shard, and how long the
#      trip took to reach the other shard (`last_change_spread_us`).
#   3. a 429 storm on one lane: the latency of another lane alone, while an open-loop load
#      sends a third lane nothing but rate-limited requests, and while the same load goes to a
#      healthy lane (the control: what any load of that rate costs on a shared CPU).
#
#   bench/failover.sh            (RUNS=3 DURATION=5s by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
source bench/lib.sh
# Unpinned: the shards of part 2 and 3 take every CPU.
PROXY_CPU=0-$((cpus - 1))
LOAD_CPU=$PROXY_CPU

config_busbar() { # $1 = config text, $2 = shards -> BB, ADMIN
    printf '%s' "$1" > "$work/busbar.toml"
    start_busbar "$work/busbar.toml" --shards "$2"
}


p50() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["latency_us"]["p50"], d["latency_us"]["p99"], int(d["rps"]))'; }

load() { # $1 = model, extra args -> "p50 p99 rps"
    local model=$1; shift
    "$BENCH" load --url "http://$BB/v1/chat/completions" --model "$model" \
        --duration "$DURATION" --warmup 1s --json "$@" | p50
}

config() { # $1 = breaker section
    cat <<EOF
listen = "127.0.0.1:0"
$1
[providers.m]
protocol = "openai"
base_url = "http://$MOCK/v1"
[models.bad]
provider = "m"
[models.good]
provider = "m"
[models.stormy]
provider = "m"
[models.calm]
provider = "m"
[pools.failover]
members = [{ model = "bad", weight = 1000 }, { model = "good" }]
[pools.both]
members = [{ model = "bad" }, { model = "good" }]
EOF
}

echo "== 1. failover cost (first member fails fast with 503, breaker off), c=1, $RUNS runs"
start_mock --fault '{"model":"bad","status":503}'
config_busbar "$(config $'[breaker]\nenabled = false')" 1
for i in $(seq "$RUNS"); do
    echo "direct   $(load good --concurrency 1)"
    echo "failover $(load failover --concurrency 1)"
done
stop_all

echo "== 2. outage -> every shard routing around it (2 shards, default breaker, load c=8)"
start_mock
config_busbar "$(config '')" 2
"$BENCH" load --url "http://$BB/v1/chat/completions" --model both --concurrency 8 \
    --duration 8s --warmup 0s --json > "$work/load2.json" &
lp=$!
sleep 2
python3 - "$MOCK" "$ADMIN" <<'EOF'
import json, sys, time, urllib.request
mock, admin = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
req = urllib.request.Request(f"http://{mock}/_mock/faults", method="POST",
    data=json.dumps({"rules": [{"model": "bad", "status": 503}]}).encode())
urllib.request.urlopen(req).read()
t_set = time.monotonic()
while True:
    s = json.load(urllib.request.urlopen(f"http://{admin}/stats"))
    lane = next(l for l in s["lanes"] if l["lane"] == "bad")
    if all(x["state"] == "open" for x in lane["shards"]):
        t_open = time.monotonic()
        break
    if time.monotonic() - t0 > 5:
        sys.exit("lane never opened")
print(f"fault set in {1e3*(t_set-t0):.2f} ms; lane open on every shard {1e3*(t_open-t0):.2f} ms "
      f"after the fault was asked for (poll granularity ~{1e3*(time.monotonic()-t_open):.2f} ms); "
      f"trip reached the other shard in {lane['last_change_spread_us']} us; "
      f"failures before the trip: {lane['failures']}")
EOF
wait $lp
echo "   load during the outage: $(p50 < "$work/load2.json") (p50 us, p99 us, rps), errors: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$work/load2.json")"
stop_all

echo "== 3. a 429 storm on one lane (stormy) vs the same load on a healthy lane (calm): latency of a third lane (good), c=1, $RUNS runs"
start_mock --fault '{"model":"stormy","status":429}'
config_busbar "$(config '')" 2
RATE=${RATE:-3000}
side() { # $1 = model: an open-loop load at $RATE req/s on it, while `good` is measured
    "$BENCH" load --url "http://$BB/v1/chat/completions" --model "$1" --rate "$RATE" \
        --duration "$DURATION" --warmup 1s --json > "$work/side.json" &
    local sp=$!
    local g; g=$(load good --concurrency 1)
    wait $sp || true
    echo "$g   (side load on $1: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"], "ok,", d["errors"], "errors")' "$work/side.json"))"
}
for i in $(seq "$RUNS"); do
    echo "good alone                 $(load good --concurrency 1)"
    echo -n "good, 429 storm on stormy  "; side stormy
    echo -n "good, same load on calm    "; side calm
done
stop_all
