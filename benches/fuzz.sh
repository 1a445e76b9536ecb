#!/usr/bin/env bash
# Long fuzzing runs of the properties in tests/fuzz.rs (size labels, outcome vocabulary,
# fast JSON parser vs serde, artifact decoder, CSV / NDJSON ingest): the test binary is
# built once in release and run again and again with fresh random seeds and
# RUNSIZE_FUZZ_CASES cases per property until FUZZ_SECONDS have passed (the integration
# test binary, filtered to the fuzz module). Stops at the
# first failure, printing proptest's minimal failing input (make it a regression test).
#
# Environment (defaults): FUZZ_SECONDS (3600), RUNSIZE_FUZZ_CASES (20000 per property per
# round), FILTER (a test name filter, e.g. fuzz::artifact; default: fuzz::), CARGO_TARGET_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-3600}
export RUNSIZE_FUZZ_CASES=${RUNSIZE_FUZZ_CASES:-20000}
FILTER=${FILTER:-fuzz::}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

BIN=$(cargo test --release --manifest-path "$ROOT/Cargo.toml" --test integration --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "integration" and m.get("executable"):
        print(m["executable"])')
[ -x "$BIN" ] || { echo "could not build the fuzz test binary" >&2; exit 1; }

start=$(date +%s)
round=0
while [ $(( $(date +%s) - start )) -lt "$FUZZ_SECONDS" ]; do
    round=$((round + 1))
    t0=$(date +%s)
    if ! "$BIN" --test-threads 2 $FILTER >"${TMPDIR:-/tmp}/runsize-fuzz-round.log" 2>&1; then
        cat "${TMPDIR:-/tmp}/runsize-fuzz-round.log"
        echo "round $round FAILED after $(( $(date +%s) - start )) s" >&2
        exit 1
    fi
    echo "round $round: $RUNSIZE_FUZZ_CASES cases per property passed in $(( $(date +%s) - t0 )) s"
done
echo "fuzzed for $(( $(date +%s) - start )) s, $round rounds, no failure"
