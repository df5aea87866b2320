#!/usr/bin/env bash
# Normal traffic with and without hostile clients mixed in, through the real busbar and the
# mock (release builds): one busbar (shards = 1, pinned to one CPU); the mock, the load
# generator and the hostile clients on the other. Rounds alternate quiet / hostile; each is an
# open-loop run of the normal traffic at RATE req/s for DURATION. The hostile clients
# (bench/hostile/clients.py): SLOWLORIS connections dribbling a head a byte at a time, random
# garbage, bodies over the size limit, and streams dropped after their first event. A control
# round aims the same clients at the mock, to tell their own CPU cost on the shared core from
# what busbar pays for them.
#
#   bench/hostile.sh      (RUNS=5 DURATION=5s RATE=1000 SLOWLORIS=200 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
RATE=${RATE:-1000}
SLOWLORIS=${SLOWLORIS:-200}
GARBAGE=${GARBAGE:-50}
OVERSIZE=${OVERSIZE:-20}
DISCONNECT=${DISCONNECT:-20}
source bench/lib.sh
secs=${DURATION%s}

start_mock
# The `slow` model streams one token a second: what the dropped streams ask for.
curl -sf -XPOST "http://$MOCK/_mock/faults" -H 'content-type: application/json' -d '{"rules": [{"model": "slow", "ttft_ms": 0, "gap_ms": 1000, "tokens": 60}]}' >/dev/null

cat > "$work/busbar.toml" <<EOT
listen = "127.0.0.1:0"
shards = 1
[limits]
header_timeout_ms = 2000
max_body_bytes = 1048576
[providers.openai]
protocol = "openai"
base_url = "http://$MOCK/v1"
[models.mock-model]
provider = "openai"
[models.slow]
provider = "openai"
EOT
start_busbar "$work/busbar.toml"

run() { # -> JSON on stdout
    taskset -c "$LOAD_CPU" "$BENCH" load --url "http://$BB/v1/chat/completions" \
        --duration "$DURATION" --warmup 1s --json --rate "$RATE"
}
hostile() { # $1 = target address, $2 = counts file; runs in the background
    taskset -c "$LOAD_CPU" python3 bench/hostile/clients.py "$1" "$((secs + 2))" \
        --slowloris "$SLOWLORIS" --garbage "$GARBAGE" --oversize "$OVERSIZE" \
        --disconnect "$DISCONNECT" > "$2" &
}
# Three kinds of round: quiet; control (the same hostile clients, aimed at the mock instead:
# their own cost on the shared load CPU, busbar untouched); hostile (aimed at busbar).
for i in $(seq 1 "$RUNS"); do
    run > "$work/quiet.$i.json"
    hostile "$MOCK" "$work/control.$i.counts"
    hp=$!
    sleep 1
    run > "$work/control.$i.json"
    wait "$hp"
    hostile "$BB" "$work/hostile.$i.counts"
    hp=$!
    sleep 1
    run > "$work/hostile.$i.json"
    wait "$hp"
done
curl -sf "http://$ADMIN/stats" > "$work/stats.json"

python3 - "$work" "$RUNS" "$RATE" <<'PY'
import json, statistics, sys
work, runs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {k: [json.load(open(f"{work}/{k}.{i}.json")) for i in range(1, runs + 1)] for k in ("quiet", "control", "hostile")}
print(f"normal traffic, open loop {rate} req/s, {runs} rounds (alternating), medians")
print(f"{'':10}{'p50 us':>10}{'p99 us':>10}{'req/s':>10}{'errors':>10}")
for k, rs in res.items():
    print(f"{k:10}{statistics.median(r['latency_us']['p50'] for r in rs):>10.0f}"
          f"{statistics.median(r['latency_us']['p99'] for r in rs):>10.0f}"
          f"{statistics.median(r['rps'] for r in rs):>10.0f}{sum(r['errors'] for r in rs):>10}")
for k in ("control", "hostile"):
    ratio = statistics.median(h["latency_us"]["p99"] / q["latency_us"]["p99"] for q, h in zip(res["quiet"], res[k]))
    print(f"p99 {k} / quiet, median of the round ratios: {ratio:.2f}")
ratio = statistics.median(h["latency_us"]["p99"] / c["latency_us"]["p99"] for c, h in zip(res["control"], res["hostile"]))
print(f"p99 hostile / control (what busbar's own handling of them adds): {ratio:.2f}")
counts = {}
for i in range(1, runs + 1):
    for k, v in json.load(open(f"{work}/hostile.{i}.counts")).items():
        counts[k] = counts.get(k, 0) + v
print("hostile clients, all rounds:", json.dumps(counts, sort_keys=True))
print("busbar connections:", json.dumps(json.load(open(f"{work}/stats.json"))["connections"]))
PY
