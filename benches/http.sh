#!/usr/bin/env bash
# HTTP throughput and latency on loopback: `runsize serve` answering POST /v1/recommend
# (a shopper with 20 past purchases, a product's training sizes) side by side with the
# bare constant endpoint (`runsize serve --bare`: same binary, runtime and listener, no
# layers, no model), both under wrk. Prints requests/s, latency percentiles, and the CPU
# time server and client spend per request (load-robust: on a shared machine requests/s
# swing with other jobs, CPU per request much less).
#
# Needs wrk (Debian: apt-get install -y wrk) and python3.
# Environment (defaults): MODEL (none: synthesise EVENTS events and train with
# `runsize train` defaults, second stage included, plus TRAIN_ARGS, e.g. --no-stack), EVENTS (200000),
# DURATION (15s), CONNS (64), WRK_THREADS (1), WORKERS (server worker threads, 0 = cores),
# PORT (18080; the bare server uses PORT+1), BIN (a built runsize binary; default: build
# it with cargo in release), CARGO_TARGET_DIR (<repo>/target), BODY_OUT (also write the
# request body there, e.g. for benches/callgrind-server.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EVENTS=${EVENTS:-200000}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
WORKERS=${WORKERS:-0}
PORT=${PORT:-18080}
BARE_PORT=$((PORT + 1))
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin runsize
    BIN="$CARGO_TARGET_DIR/release/runsize"
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${MODEL:-}" ]; then
    echo "synthesising $EVENTS events and training a model ..."
    "$BIN" --log warn synth --events "$EVENTS" --seed 1 --out "$WORK/events.parquet" --quiet
    "$BIN" --log warn train --events "$WORK/events.parquet" --customer-features height_cm,weight_kg,body_shape \
        --out "$WORK/model.runsize" --quiet ${TRAIN_ARGS:-} >/dev/null
    MODEL="$WORK/model.runsize"
fi

wait_up() {
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/healthz', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    exit 1
}

RUNSIZE_LOG=warn "$BIN" --log warn serve --model "$MODEL" --addr "127.0.0.1:$PORT" --workers "$WORKERS" &
SERVER_PID=$!
PIDS+=($SERVER_PID)
RUNSIZE_LOG=warn "$BIN" --log warn serve --bare --addr "127.0.0.1:$BARE_PORT" --workers "$WORKERS" &
BARE_PID=$!
PIDS+=($BARE_PID)
wait_up "$PORT"
wait_up "$BARE_PORT"

# A request body from the served model itself: the product on offer is the most-bought
# product with 8 sizes seen in training (else the one with the number of sizes nearest
# 8), offered in those sizes; the 20 most-bought other products make the shopper's
# history (middle sizes, mixed outcomes).
python3 - "$PORT" "$WORK/body.json" <<'EOF'
import json, sys, urllib.parse, urllib.request
port, out = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return json.load(r)
def product(key):
    return get("/v1/products/" + urllib.parse.quote(key, safe=""))
items = get("/v1/brands?by=product&sort=n&limit=200")["items"]
offer = min(items, key=lambda p: abs(len(product(p["key"])["sizes"]) - 8))
outcomes = ["kept", "returned_too_small", "kept", "returned_too_large", "kept"]
history = []
for k, p in enumerate([p for p in items if p["key"] != offer["key"]][:20]):
    d = product(p["key"])
    sizes = d["sizes"]
    history.append({"brand": p.get("brand"), "product_id": p["key"], "size": sizes[len(sizes) // 2],
                    "size_system": d["size_system"], "outcome": outcomes[k % len(outcomes)]})
body = {"product": {"product_id": offer["key"]}, "shopper": {"history": history}}
req = urllib.request.Request(base + "/v1/recommend", data=json.dumps(body).encode(),
                             headers={"content-type": "application/json"})
with urllib.request.urlopen(req) as r:
    answer = json.load(r)
print(f"request: {len(history)} past purchases, {len(answer['sizes'])} sizes on offer; "
      f"answer: {answer['recommended_size']} (p_fit {answer['fit_probability']:.3f}, {answer['confidence']['level']})")
json.dump(body, open(out, "w"))
EOF
if [ -n "${BODY_OUT:-}" ]; then cp "$WORK/body.json" "$BODY_OUT"; fi

cat > "$WORK/post.lua" <<EOF
local f = assert(io.open("$WORK/body.json", "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT rps=%.0f requests=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d non2xx_or_errors=%d\n",
        summary.requests / (summary.duration / 1e6), summary.requests,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
        e.status + e.connect + e.read + e.write + e.timeout))
end
EOF

# CPU seconds (user + system) a process has used so far
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

run() {
    local name=$1 url=$2 pid=$3
    # warm up, then measure; also the CPU time server and client spend per request,
    # which (unlike requests/s) hardly depends on what else the machine is running
    wrk -t "$WRK_THREADS" -c "$CONNS" -d 2s -s "$WORK/post.lua" "$url" >/dev/null
    local line before after client
    before=$(cpu_of "$pid")
    line=$( { /usr/bin/time -f "CLIENT_CPU %U %S" wrk -t "$WRK_THREADS" -c "$CONNS" -d "$DURATION" -s "$WORK/post.lua" "$url"; } 2>&1 )
    after=$(cpu_of "$pid")
    client=$(echo "$line" | awk '/^CLIENT_CPU/ {print $2 + $3}')
    echo "$name $(echo "$line" | grep '^RESULT') server_cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}') client_cpu_s=$client"
}

echo "wrk: $WRK_THREADS thread(s), $CONNS connections, $DURATION; server workers: $WORKERS (0 = cores); $(nproc) cores"
echo "model: $MODEL"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
RECO=$(run "recommend" "http://127.0.0.1:$PORT/v1/recommend" "$SERVER_PID")
BARE=$(run "bare     " "http://127.0.0.1:$BARE_PORT/v1/recommend" "$BARE_PID")
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$RECO"
echo "$BARE"
python3 - "$RECO" "$BARE" <<'EOF'
import sys
def parse(line):
    return {k: float(v) for k, v in (t.split("=") for t in line.split() if "=" in t)}
r, b = parse(sys.argv[1]), parse(sys.argv[2])
print(f"{'':10} {'req/s':>10} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'errors':>7}")
for name, d in (("recommend", r), ("bare", b)):
    print(f"{name:10} {d['rps']:10.0f} {d['p50_us']:8.0f} {d['p90_us']:8.0f} {d['p99_us']:8.0f} {d['p999_us']:9.0f} {d['non2xx_or_errors']:7.0f}")
print(f"recommend throughput = {100 * r['rps'] / b['rps']:.1f}% of the bare endpoint")
# CPU per request (server + client, µs): with server and client sharing the cores, an
# otherwise idle machine serves requests at a rate inversely proportional to it
per = lambda d: 1e6 * (d['server_cpu_s'] + d['client_cpu_s']) / d['requests']
srv = lambda d: 1e6 * d['server_cpu_s'] / d['requests']
print(f"CPU per request (server + client): recommend {per(r):.1f} us (server {srv(r):.1f}), "
      f"bare {per(b):.1f} us (server {srv(b):.1f}); bare / recommend = {100 * per(b) / per(r):.1f}%")

EOF
