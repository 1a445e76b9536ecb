#!/usr/bin/env bash
# Soak test: the release `runsize serve` for a set time under mixed traffic on loopback
# (recommend, batch, brand profiles, bad requests, one model reload per minute, bursts of
# 4x the server's in-flight bound), with a report per minute of requests by status,
# p50 / p99 / max latency, the server's RSS, and failed requests outside shedding (must
# be 0; the script exits 1 otherwise). The load generator is benches/soak.rs.
#
# Environment (defaults): SECONDS_TOTAL (600), MODEL (none: synthesise EVENTS events and
# train with `runsize train` defaults), EVENTS (200000), WORKERS (server worker threads,
# 0 = cores), MAX_IN_FLIGHT (0 = the server's default, 64 per worker), CONCURRENCY
# (steady clients, 16), BURST_EVERY (seconds, 20), PORT (18400), BIN (a built runsize
# binary; default: build it in release), CARGO_TARGET_DIR (<repo>/target).
# Everything it starts (server, load generator) is stopped on exit; loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_TOTAL=${SECONDS_TOTAL:-600}
EVENTS=${EVENTS:-200000}
WORKERS=${WORKERS:-0}
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-0}
CONCURRENCY=${CONCURRENCY:-16}
BURST_EVERY=${BURST_EVERY:-20}
PORT=${PORT:-18400}
TOKEN=soak-admin-token-$$
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin runsize
    BIN="$CARGO_TARGET_DIR/release/runsize"
fi
# the load generator, built before the clock starts
cargo bench --quiet --manifest-path "$ROOT/Cargo.toml" --bench soak --no-run

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${MODEL:-}" ]; then
    echo "synthesising $EVENTS events and training a model ..."
    "$BIN" --log warn synth --events "$EVENTS" --seed 1 --out "$WORK/events.parquet" --quiet
    "$BIN" --log warn train --events "$WORK/events.parquet" --customer-features height_cm,weight_kg,body_shape \
        --out "$WORK/model.runsize" --quiet >/dev/null
    MODEL="$WORK/model.runsize"
fi

"$BIN" --log warn serve --model "$MODEL" --addr "127.0.0.1:$PORT" --workers "$WORKERS" \
    --max-in-flight "$MAX_IN_FLIGHT" --admin-token "$TOKEN" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done

echo "server pid $SERVER_PID on 127.0.0.1:$PORT; machine: $(nproc) cores"
set +e
SOAK_ADDR="127.0.0.1:$PORT" SOAK_SECONDS="$SECONDS_TOTAL" SOAK_PID="$SERVER_PID" \
    SOAK_TOKEN="$TOKEN" SOAK_CONCURRENCY="$CONCURRENCY" SOAK_BURST_EVERY="$BURST_EVERY" \
    cargo bench --quiet --manifest-path "$ROOT/Cargo.toml" --bench soak
STATUS=$?
set -e
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server died during the soak; its log:" >&2
    tail -n 50 "$WORK/server.log" >&2
    exit 1
fi
echo "server log: $(wc -l <"$WORK/server.log") lines at warn level or above"
grep -v '"level":"INFO"' "$WORK/server.log" | head -n 5 || true
exit "$STATUS"
