#!/usr/bin/env bash
# Shared by scripts/local-cluster.sh and benches/cluster.sh (sourced, not run): start and
# stop 1 Ballista scheduler and 2 executors (the runsize binary) on loopback.
#
# start_cluster DIR: scheduler on PORT, executor i on PORT+2i-1 (Arrow Flight) and
# PORT+2i (gRPC) with TASKS concurrent tasks; logs and shuffle files under DIR. Extra
# arguments from the arrays SCHEDULER_ARGS and EXECUTOR_ARGS. Appends every pid to PIDS
# and the executors' to EXEC_PIDS. stop_cluster kills and waits for PIDS.

PIDS=()
EXEC_PIDS=()
SCHEDULER_ARGS=()
EXECUTOR_ARGS=()

start_cluster() {
    local dir=$1
    "$BIN" ballista scheduler --bind-host 127.0.0.1 --port "$PORT" "${SCHEDULER_ARGS[@]}" \
        >"$dir/scheduler.log" 2>&1 &
    PIDS+=($!)
    sleep 1
    EXEC_PIDS=()
    for i in 1 2; do
        mkdir -p "$dir/executor$i"
        "$BIN" ballista executor --bind-host 127.0.0.1 --scheduler "127.0.0.1:$PORT" \
            --port $((PORT + 2 * i - 1)) --grpc-port $((PORT + 2 * i)) \
            --concurrent-tasks "$TASKS" --work-dir "$dir/executor$i" "${EXECUTOR_ARGS[@]}" \
            >"$dir/executor$i.log" 2>&1 &
        PIDS+=($!)
        EXEC_PIDS+=($!)
    done
}

stop_cluster() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
