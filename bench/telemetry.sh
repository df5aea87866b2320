#!/usr/bin/env bash
# What metrics and tracing cost on the request path, through the real busbar and the mock
# (release builds): one busbar (shards = 1, pinned) started three times, alternately driven:
#   off       [telemetry] metrics = false (no cells, no spans, no log)
#   metrics   the default: every request counted in the shard's cells (and its usage read)
#   traced    metrics, plus an OTLP span for every request (sample_ratio = 1) exported to a
#             sink (the mock's /_mock/v1/traces) and a JSON access-log line to a file
# `RUNS` rounds of open-loop runs at `RATE` requests/s (what telemetry adds to latency when
# nothing is saturated) and closed-loop runs at `CONC` (what it costs in throughput),
# `DURATION` each; medians and ratios against `off` in the same round.
#
#   bench/telemetry.sh            (RUNS=5 DURATION=5s RATE=2000 CONC=32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
RATE=${RATE:-2000}
CONC=${CONC:-32}
source bench/lib.sh
start_mock

start_variant() { # $1 = name, $2 = [telemetry] body -> ${1}_BB
    cat > "$work/$1.toml" <<EOT
listen = "127.0.0.1:0"
shards = 1
[providers.openai]
protocol = "openai"
base_url = "http://$MOCK/v1"
[models.mock-model]
provider = "openai"
input_price = 0.15
output_price = 0.6
[telemetry]
$2
EOT
    start_busbar "$work/$1.toml"
    printf -v "${1}_BB" '%s' "$BB"
}
start_variant off "metrics = false"
start_variant metrics ""
start_variant traced "otlp_endpoint = \"http://$MOCK/_mock/v1/traces\"
sample_ratio = 1.0
access_log = \"$work/access.log\""

load() { # $1 = address, then extra args -> JSON
    local at=$1
    shift
    taskset -c "$LOAD_CPU" "$BENCH" load --url "http://$at/v1/chat/completions" \
        --duration "$DURATION" --warmup 1s --json "$@"
}
for i in $(seq 1 "$RUNS"); do
    for v in off metrics traced; do
        addr=${v}_BB
        load "${!addr}" --rate "$RATE" > "$work/open.$v.$i.json"
        load "${!addr}" --concurrency "$CONC" > "$work/closed.$v.$i.json"
    done
done
exports=$(curl -sf "http://$MOCK/_mock/otlp")
lines=$(wc -l < "$work/access.log")

python3 - "$work" "$RUNS" "$RATE" "$CONC" "$exports" "$lines" <<'PY'
import json, statistics, sys
work, runs, rate, conc, exports, lines = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
get = lambda kind, v: [json.load(open(f"{work}/{kind}.{v}.{i}.json")) for i in range(1, runs + 1)]
med = statistics.median
print(f"open loop {rate} req/s and closed loop c={conc}, {runs} rounds (alternating), medians")
print(f"{'':9}{'p50 us':>9}{'p99 us':>9}{'+p50 us':>9}{'+p99 us':>9}{'req/s c=' + conc:>14}{'ratio':>8}{'errors':>8}")
base_o, base_c = get("open", "off"), get("closed", "off")
for v in ("off", "metrics", "traced"):
    o, c = get("open", v), get("closed", v)
    d50 = med(x["latency_us"]["p50"] - b["latency_us"]["p50"] for x, b in zip(o, base_o))
    d99 = med(x["latency_us"]["p99"] - b["latency_us"]["p99"] for x, b in zip(o, base_o))
    ratio = med(x["rps"] / b["rps"] for x, b in zip(c, base_c))
    errors = sum(x["errors"] for x in o + c)
    print(f"{v:9}{med(x['latency_us']['p50'] for x in o):>9.0f}{med(x['latency_us']['p99'] for x in o):>9.0f}"
          f"{d50:>9.0f}{d99:>9.0f}{med(x['rps'] for x in c):>14.0f}{ratio:>8.3f}{errors:>8}")
print(f"traced: {json.loads(exports)['exports']} OTLP exports taken by the sink, {lines} access-log lines")
PY
