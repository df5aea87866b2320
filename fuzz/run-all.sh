#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS_EACH seconds (600 by default), one after another.
# New inputs go to target/fuzz-work/<target>; afterwards only those that add coverage are
# merged into the committed corpus fuzz/corpus/<target> (replayed by `cargo test`), whose
# named regression inputs stay as they are.
# Stable Rust: `--sanitizer none` (the codec has no unsafe code; libFuzzer still finds
# panics, hangs over -timeout and memory over -rss_limit_mb).
#
#   fuzz/run-all.sh [target ...]      results in target/fuzz-results.tsv: target, seconds,
#                                     executions, crashes (0 or the artifact path)
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${SECONDS_EACH:-600}
targets=("$@")
if (( ${#targets[@]} == 0 )); then
    mapfile -t targets < <(cargo fuzz list)
fi
out=../target/fuzz-results.tsv
mkdir -p ../target
cargo fuzz build --sanitizer none -O >/dev/null 2>&1 || { echo "build failed"; exit 1; }
for t in "${targets[@]}"; do
    log=../target/fuzz-$t.log
    work=../target/fuzz-work/$t
    mkdir -p "$work"
    cargo fuzz run --sanitizer none -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crash=$(grep -o 'Test unit written to [^ ]*' "$log" | head -1 | sed 's/Test unit written to //')
    printf '%s\t%s\t%s\t%s\n' "$t" "$SECONDS_EACH" "${execs:-?}" "${crash:-0 (exit $rc)}" >>"$out"
    cargo fuzz run --sanitizer none -O "$t" "corpus/$t" "$work" -- -merge=1 >/dev/null 2>&1 || true
done
