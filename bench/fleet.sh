#!/usr/bin/env bash
# What fleet mode adds per request, through the real busbar and the mock (release builds):
# two busbars (shards = 1, pinned to the same CPU, run one at a time), the same governed key
# (daily and monthly caps, RPM and TPM), one with its ledger alone (LMDB), one in a fleet
# with a real redis-server (on the load CPU). `RUNS` alternating rounds of an open-loop run
# at `RATE` requests/s (added latency) and a closed-loop run at c=`CONC` (throughput),
# `DURATION` each; medians and ratios. Then the Redis commands per request (INFO
# commandstats, before and after a counted run).
#
#   bench/fleet.sh            (RUNS=5 DURATION=5s RATE=2000 CONC=32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
RATE=${RATE:-2000}
CONC=${CONC:-32}
source bench/lib.sh
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)"; exit 1; }
start_mock
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no > /dev/null &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done

variant() { # $1 = name, $2 = extra config -> ${1}_BB, ${1}_ADMIN, ${1}_KEY
    priced_config "$2" > "$work/$1.toml"
    start_busbar "$work/$1.toml" --ledger "$work/ledger-$1"
    local key
    key=$(curl -sf -XPOST "http://$ADMIN/admin/keys" -d '{"name": "bench", "environment": "bench",
        "limits": {"daily_usd": 100000, "monthly_usd": 1000000, "rpm": 10000000, "tpm": 1000000000}}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
    printf -v "${1}_BB" '%s' "$BB"
    printf -v "${1}_ADMIN" '%s' "$ADMIN"
    printf -v "${1}_KEY" '%s' "$key"
}
variant lmdb ""
variant fleet "[fleet]
url = \"redis://127.0.0.1:$REDIS_PORT\"
node_id = \"bench-1\""

run() { # $1 = variant, extra args -> JSON
    local bb=${1}_BB key=${1}_KEY
    shift
    taskset -c "$LOAD_CPU" "$BENCH" load --url "http://${!bb}/v1/chat/completions" --model m \
        --key "${!key}" --duration "$DURATION" --warmup "${WARMUP:-1s}" --json "$@"
}
for i in $(seq 1 "$RUNS"); do
    for v in lmdb fleet; do
        run "$v" --rate "$RATE" > "$work/open.$v.$i.json"
        run "$v" --concurrency "$CONC" > "$work/closed.$v.$i.json"
    done
done
# Per command: calls (the commands inside the Lua scripts count one by one, under their names).
calls() { redis-cli -p "$REDIS_PORT" info commandstats | python3 -c 'import json,re,sys; print(json.dumps({m[0]: int(m[1]) for m in re.findall(r"cmdstat_(\w+):calls=(\d+)", sys.stdin.read())}))'; }
# The ledger's round trips to Redis (its /stats counter).
trips() { curl -sf "http://$fleet_ADMIN/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ledger"]["fleet_redis_round_trips"])'; }
before=$(calls)
trips_before=$(trips)
WARMUP=0s run fleet --rate "$RATE" > "$work/counted.json"
sleep 0.1
trips_after=$(trips)
after=$(calls)

python3 - "$work" "$RUNS" "$RATE" "$CONC" "$before" "$after" "$trips_before" "$trips_after" <<'PY'
import json, statistics, sys
work, runs, rate, conc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
before, after = json.loads(sys.argv[5]), json.loads(sys.argv[6])
trips = int(sys.argv[8]) - int(sys.argv[7])
get = lambda k, v: [json.load(open(f"{work}/{k}.{v}.{i}.json")) for i in range(1, runs + 1)]
med = statistics.median
print(f"governed key, open loop {rate} req/s and closed loop c={conc}, {runs} alternating rounds, medians")
print(f"{'':7}{'p50 us':>9}{'p99 us':>9}{'+p50 us':>9}{'+p99 us':>9}{'req/s':>10}{'ratio':>8}{'errors':>8}")
lo, lc = get("open", "lmdb"), get("closed", "lmdb")
for v in ("lmdb", "fleet"):
    o, c = get("open", v), get("closed", v)
    print(f"{v:7}{med(x['latency_us']['p50'] for x in o):>9.0f}{med(x['latency_us']['p99'] for x in o):>9.0f}"
          f"{med(x['latency_us']['p50'] - b['latency_us']['p50'] for x, b in zip(o, lo)):>9.0f}"
          f"{med(x['latency_us']['p99'] - b['latency_us']['p99'] for x, b in zip(o, lo)):>9.0f}"
          f"{med(x['rps'] for x in c):>10.0f}{med(x['rps'] / b['rps'] for x, b in zip(c, lc)):>8.3f}"
          f"{sum(x['errors'] for x in o + c):>8}")
counted = json.load(open(f"{work}/counted.json"))
n = max(counted["requests"], 1)
delta = {c: after[c] - before.get(c, 0) for c in after if after[c] - before.get(c, 0) > 0}
delta.pop("info", None)
scripts = delta.get("evalsha", 0) + delta.get("eval", 0)
print(f"Redis during a counted open-loop run (no warm-up, {counted['requests']} requests, {counted['rps']:.0f} req/s):")
print(f"  round trips from the ledger thread (a pipeline is one): {trips} = {trips / n:.4f} per request")
print(f"  scripts called (EVALSHA: LEASE, SETTLE, RELEASE): {scripts} = {scripts / n:.4f} per request")
print(f"  commands executed, those inside the scripts included: {sum(delta.values())} = {sum(delta.values()) / n:.3f} per request")
print("  by command: " + ", ".join(f"{c} {v}" for c, v in sorted(delta.items(), key=lambda x: -x[1])))
PY
