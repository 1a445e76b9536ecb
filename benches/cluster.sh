#!/usr/bin/env bash
# The fit on a Ballista cluster of separate processes on loopback: 1 scheduler and 2
# executors (the runsize binary, built with `--features distributed`), then the same
# training through `--engine local`, `--engine datafusion` and `--engine ballista`,
# with per-iteration times, shuffle bytes (Ballista: the executors' shuffle files) and a
# comparison of the three models' predictions on held-out synthetic events. With KILL=1 it
# also kills one executor in the middle of a Ballista fit and reports what happened.
# Everything it starts is stopped on exit.
#
# Environment (defaults): EVENTS (10000000), BIN (target/release/runsize of
# CARGO_TARGET_DIR, built with the feature if missing), PORT (50050), TASKS (concurrent
# tasks per executor, 1), WORK (a new temporary directory, removed at the end unless
# KEEP=1), ENGINES ("local datafusion ballista"), PARTITIONS (plan partitions, 2),
# KILL (0), MAX_ITER (train's --max-iter, 40).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EVENTS=${EVENTS:-10000000}
PORT=${PORT:-50050}
TASKS=${TASKS:-1}
ENGINES=${ENGINES:-local datafusion ballista}
PARTITIONS=${PARTITIONS:-2}
KILL=${KILL:-0}
MAX_ITER=${MAX_ITER:-40}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --features distributed --manifest-path "$ROOT/Cargo.toml" --bin runsize
    BIN="$CARGO_TARGET_DIR/release/runsize"
fi
WORK=${WORK:-$(mktemp -d -t runsize-cluster-XXXXXX)}
mkdir -p "$WORK"
# shellcheck source=scripts/cluster-lib.sh
. "$ROOT/scripts/cluster-lib.sh"

stop() {
    local rc=$?
    trap - EXIT INT TERM
    stop_cluster
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap stop EXIT INT TERM

echo "== $(date -u +%H:%M:%S) synthetic events: $EVENTS (+ 20000 held out)"
"$BIN" synth --events "$EVENTS" --seed 7 --out "$WORK/events.parquet" --no-customer-truth >/dev/null 2>&1
"$BIN" synth --events 20000 --seed 8 --out "$WORK/heldout.parquet" --no-customer-truth >/dev/null 2>&1

SCHEDULER_ARGS=(--job-data-cleanup-seconds 36000 --executor-timeout-seconds 20)
EXECUTOR_ARGS=(--heartbeat-seconds 5)

# mean of a field of the "iteration" log lines (JSON logs)
iter_mean() {
    grep '"message":"iteration"' "$1" | sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" |
        awk '{ s += $1; n += 1 } END { if (n) printf "%.3f", s / n; else print "-" }'
}

train() {
    local engine=$1 out=$2
    local log="$WORK/train-$engine.log"
    local t0 t1
    t0=$(date +%s.%N)
    "$BIN" --log runsize=info --log-json train --events "$WORK/events.parquet" --out "$out" \
        --no-stack --quiet --max-iter "$MAX_ITER" --engine "$engine" --scheduler "127.0.0.1:$PORT" \
        --engine-dir "$WORK/engine-$engine" --engine-partitions "$PARTITIONS" \
        >"$WORK/train-$engine.out" 2>"$log"
    t1=$(date +%s.%N)
    local iters passes
    iters=$(grep -c '"message":"iteration"' "$log" || true)
    passes=$((iters + 1))
    printf '%-10s train %7.1f s  iterations %3d  pass s/iter %s  total s/iter %s' \
        "$engine" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$iters" "$(iter_mean "$log" pass_seconds)" "$(iter_mean "$log" seconds)"
    if [ "$engine" = ballista ]; then
        local bytes
        bytes=$(du -sb "$WORK"/executor1 "$WORK"/executor2 | awk '{ s += $1 } END { print s }')
        printf '  shuffle bytes/pass %d (%d passes)' $((bytes / passes)) "$passes"
    fi
    echo
}

compare() {
    "$BIN" predict --model "$1" --events "$WORK/heldout.parquet" --out "$WORK/p1.csv" >/dev/null 2>&1
    "$BIN" predict --model "$2" --events "$WORK/heldout.parquet" --out "$WORK/p2.csv" >/dev/null 2>&1
    paste -d, "$WORK/p1.csv" "$WORK/p2.csv" | awk -F, '
        NR == 1 { n = NF / 2; for (i = 1; i <= n; i++) if ($i ~ /^p_(small|fit|large)$/) c[i] = 1; next }
        { for (i in c) { d = $i - $(i + n); if (d < 0) d = -d; if (d > m) m = d } }
        END { printf "largest probability difference: %.2e\n", m }'
}

if [[ " $ENGINES " == *" ballista "* ]] || [ "$KILL" = 1 ]; then
    start_cluster "$WORK"
    sleep 3
fi
for e in $ENGINES; do
    train "$e" "$WORK/$e.runsize"
done
for e in $ENGINES; do
    if [ "$e" != local ] && [ -f "$WORK/local.runsize" ]; then
        printf '%-10s vs local: ' "$e"
        compare "$WORK/local.runsize" "$WORK/$e.runsize"
    fi
done

if [ "$KILL" = 1 ]; then
    echo "== killing executor 2 (pid ${EXEC_PIDS[1]}) 20 s into a Ballista fit"
    ( sleep 20; kill -9 "${EXEC_PIDS[1]}" && echo "$(date -u +%H:%M:%S) killed executor 2" ) &
    if train ballista "$WORK/killed.runsize"; then
        printf 'after the kill vs local: '
        compare "$WORK/local.runsize" "$WORK/killed.runsize"
    else
        echo "the fit failed; its last log lines:"
        tail -5 "$WORK/train-ballista.log"
    fi
fi
