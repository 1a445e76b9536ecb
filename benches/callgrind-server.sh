#!/usr/bin/env bash
# Instructions per request of a running `runsize serve` (or `serve --bare`) under callgrind:
# load-independent, so code changes can be compared on a shared machine. Counts every
# thread of the server process in user space (not the kernel's socket work), for N
# requests of one body over one keep-alive connection, after 300 warm-up requests.
#
# Usage: benches/callgrind-server.sh BIN MODEL|bare BODY [N (2000)] [PORT (18300)]
# BODY: a request body, e.g. from `BODY_OUT=/tmp/body.json benches/http.sh`.
# Needs valgrind (callgrind_control, callgrind_annotate) and python3.
set -euo pipefail
BIN=$1 MODEL=$2 BODY=$3 N=${4:-2000} PORT=${5:-18300}
OUT=$(mktemp -d)
if [ "$MODEL" = bare ]; then
    ARGS=(serve --bare --addr "127.0.0.1:$PORT" --workers 1)
else
    ARGS=(serve --model "$MODEL" --addr "127.0.0.1:$PORT" --workers 1)
fi
RUNSIZE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" \
    "$BIN" --log warn "${ARGS[@]}" 2>"$OUT/valgrind.log" &
VPID=$!
trap 'kill $VPID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 1 300); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null && break
    sleep 0.5
done
send() {
    python3 - "$PORT" "$BODY" "$1" <<'PY'
import http.client, sys
port, body, n = int(sys.argv[1]), open(sys.argv[2], "rb").read(), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
bad = 0
for _ in range(n):
    c.request("POST", "/v1/recommend", body=body, headers={"content-type": "application/json"})
    r = c.getresponse(); r.read()
    bad += r.status != 200
if bad:
    sys.exit(f"{bad} of {n} answers were not 200")
PY
}
send 300
callgrind_control -z "$VPID" >/dev/null
send "$N"
callgrind_control -d "$VPID" >/dev/null
TOTAL=$(callgrind_annotate "$OUT/cg.$VPID.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$MODEL: $TOTAL instructions for $N requests: $((TOTAL / N)) per request"
