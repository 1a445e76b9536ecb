#!/usr/bin/env bash
# Whole-process benchmarks at 1M, 10M and 100M synthetic events (not part of CI; 100M
# takes minutes and several GB of disk): generate, train (ingest + fit + write) under
# /usr/bin/time -v for wall time and peak memory, then batch prediction.
#   SIZES="1000000 10000000" benches/scale.sh        # subset
#   SIZES=100000000 ITERS=3 TRAIN_FLAGS=--no-customers benches/scale.sh   # 3 iterations
# Needs: a release build (cargo build --release) and /usr/bin/time (apt-get install time).
# Prints the load average with every timing (the project machine is shared), the ingest
# rate, and train's memory log (RSS at each stage: ingested, prepared, fitted, saved).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1000000 10000000 100000000"}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/runsize}
OUT=${OUT:-/tmp/runsize-bench}
ITERS=${ITERS:-}   # empty: iterate until converged (the default train)
TRAIN_FLAGS=${TRAIN_FLAGS:-}
mkdir -p "$OUT"
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }
for n in $SIZES; do
  data="$OUT/synth-$n.parquet"
  if [[ ! -f $data ]]; then
    /usr/bin/time -f "synth $n: %e s wall, %M KB max RSS" \
      "$BIN" synth --events "$n" --brands 40 --seed 1 --out "$data" --no-customer-truth --quiet --log warn
  fi
  iter_flags=()
  [[ -n $ITERS ]] && iter_flags=(--max-iter "$ITERS" --min-iter "$ITERS")
  echo "== train $n events (${ITERS:-converged} iterations) $TRAIN_FLAGS; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  # --no-stack: the second stage refits 5x and keeps the event table (untested at 100M)
  # shellcheck disable=SC2086
  /usr/bin/time -v "$BIN" train --events "$data" --customer-features height_cm,weight_kg,body_shape --no-stack \
    --out "$OUT/model-$n.runsize" "${iter_flags[@]}" --quiet --log info $TRAIN_FLAGS \
    2> "$OUT/train-$n.log" | grep -E "^(events|fit) "
  echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E "Elapsed|Maximum resident|User time" "$OUT/train-$n.log"
  sed 's/\x1b\[[0-9;]*m//g' "$OUT/train-$n.log" | grep -oE "read [0-9]+ rows.*" | head -1 || true
  sed 's/\x1b\[[0-9;]*m//g' "$OUT/train-$n.log" | grep -oE "stage=\S+ rss_mib=[0-9]+|peak_rss_mib=[0-9]+" | paste -sd' ' || true
  # per iteration: events visited, seconds of the pass over them (customers solved and
  # sums by article-size) and of the update; then the pass rate over full passes
  sed 's/\x1b\[[0-9;]*m//g' "$OUT/train-$n.log" | grep -E "iteration iter=" \
    | sed -E 's/.*iter=([0-9]+).* seconds=([0-9.]+).* events=([0-9]+) pass_seconds=([0-9.]+) update_seconds=([0-9.]+).*/\1 \2 \3 \4 \5/' \
    | awk -v n="$n" '{ printf "  iteration %s: %.2f s, %d events, pass %.2f s (%.1fM events/s), update %.2f s\n", $1, $2, $3, $4, $3 / $4 / 1e6, $5;
        if ($3 >= n * 0.9) { ev += $3; s += $4; k++ } }
      END { if (k) printf "  full passes: %d, %.1fM events/s\n", k, ev / s / 1e6 }' | tail -6
  if [[ $n -le 10000000 ]]; then
    echo "== predict $n events"
    /usr/bin/time -f "  predict: %e s wall, %M KB max RSS" "$BIN" predict --model "$OUT/model-$n.runsize" \
      --events "$data" --customer-features height_cm,weight_kg,body_shape --out "$OUT/scored-$n.parquet" --log info 2>&1 \
      | sed 's/\x1b\[[0-9;]*m//g' | grep -E "rows_per_second|predict:" | sed -E 's/.*rows=([0-9]+) seconds=([0-9.]+) rows_per_second=([0-9.]+).*/  scored \1 rows in \2 s: \3 rows\/s (excluding file I\/O)/'
  fi
done
