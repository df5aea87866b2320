# Sourced by the bench scripts (from the repository root): release builds, a work folder and
# the processes started here, all removed on exit; the mock and busbar started on chosen CPUs.
#
#   PROXY_CPU  busbar's CPU(s) (0 by default); LOAD_CPU  the mock's and the load's (1 on a
#   machine with two or more, else 0). A script may set either before starting anything.
BENCH=target/release/busbar-bench
BUSBAR=${BUSBAR:-target/release/busbar}
[[ -x $BENCH && -x $BUSBAR ]] || cargo build --release --bins -q
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cpus=$(nproc)
PROXY_CPU=0
LOAD_CPU=$(( cpus > 1 ? 1 : 0 ))

# The address a starting process printed after `listening on` ($1 = its output file, $2 = a
# sed expression that prints it), once it is there.
addr_in() {
    until grep -q "listening on" "$1" 2>/dev/null; do sleep 0.05; done
    sed -n "$2" "$1" | head -1
}

# The mock on LOAD_CPU with the given extra arguments -> MOCK (host:port).
start_mock() {
    taskset -c "$LOAD_CPU" "$BENCH" mock --listen 127.0.0.1:0 --no-record --tokens 16 "$@" \
        > "$work/mock.out" &
    pids+=($!)
    MOCK=$(addr_in "$work/mock.out" 's/.*listening on //p')
}

# busbar on PROXY_CPU with the config file $1 and the given extra arguments (`--ledger off`
# unless one is given) -> BB (data listener), ADMIN (admin listener).
start_busbar() {
    local config=$1
    shift
    [[ " $* " == *" --ledger "* ]] || set -- "$@" --ledger off
    BUSBAR_LOG=error taskset -c "$PROXY_CPU" "$BUSBAR" --config "$config" \
        --admin-listen 127.0.0.1:0 "$@" > "$work/busbar.out" &
    pids+=($!)
    BB=$(addr_in "$work/busbar.out" 's/.*listening on \([^ ]*\).*/\1/p')
    ADMIN=$(sed -n 's/.*admin on \([^ ]*\).*/\1/p' "$work/busbar.out" | head -1)
}

# Kills what was started so far (for a script that starts afresh between parts).
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }

# The config the governance benches share: the mock as provider `oai`, model `m` with prices
# (so spend is counted), one shard; then whatever is passed ($1).
priced_config() {
    cat <<EOT
listen = "127.0.0.1:0"
shards = 1
[providers.oai]
protocol = "openai"
base_url = "http://$MOCK/v1"
[models.m]
provider = "oai"
input_price = 0.15
output_price = 0.6
${1:-}
EOT
}
