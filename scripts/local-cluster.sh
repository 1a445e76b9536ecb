#!/usr/bin/env bash
# A Ballista cluster on one machine: 1 scheduler and 2 executors, all the runsize binary
# (built with `--features distributed`), on loopback. Runs until ctrl-c, then stops
# everything it started. Train against it from another shell:
#
#   runsize train --events events.parquet --engine ballista --scheduler 127.0.0.1:50050 \
#       --engine-dir /tmp/runsize-engine
#
# Environment (defaults): BIN (target/release/runsize), PORT (scheduler port, 50050;
# executor i uses PORT+2i-1 for Arrow Flight and PORT+2i for gRPC), TASKS (concurrent
# tasks per executor, 1), LOGS (a new temporary directory; logs and shuffle files).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/runsize}
PORT=${PORT:-50050}
TASKS=${TASKS:-1}
LOGS=${LOGS:-$(mktemp -d -t runsize-cluster-XXXXXX)}
# shellcheck source=scripts/cluster-lib.sh
. "$ROOT/scripts/cluster-lib.sh"

stop() {
    local rc=$?
    trap - EXIT INT TERM
    stop_cluster
    echo "stopped (logs in $LOGS)"
    exit "$rc"
}
trap stop EXIT INT TERM

start_cluster "$LOGS"
echo "scheduler 127.0.0.1:$PORT, 2 executors (pids ${PIDS[*]}); logs in $LOGS; ctrl-c stops them"
wait
