#!/usr/bin/env bash
# bench/gateway/disk.sh: a cached 1 MiB body served from the HTTP cache's
# memory tier (engine A: pier up as is) against its disk tier (engine B:
# --cache-disk-min 64K), the same pier build, both engines up at once and
# driven alternately by the same wrk load. Each round reports req/s, p99 and
# the engine's CPU time per request (user+system from /proc); the medians of
# ROUNDS rounds and the ratio B/A close it.
#
#   bench/gateway/disk.sh [PIER]      # ROUNDS=5 DURATION=5 THREADS=2 CONNS=16 SIZE=1048576
#   PERF=1 KEEP=1 bench/gateway/disk.sh   # also perf-records B during its last round (perf.data in the work dir)
#
# Free loopback ports; every wrk run bounded in time; every process stopped
# by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
SIZE=${SIZE:-1048576}

. bench/gateway/lib.sh
benchwork disk

if [ $# -ge 1 ]; then bin=$(realpath "$1"); else go build -o "$work/pier" ./cmd/pier; bin=$work/pier; fi

mkdir -p "$work/app"
cat >"$work/app/pier.yaml" <<'EOF'
name: big
processes:
  web: python3 app.py
EOF
cat >"$work/app/app.py" <<EOF
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BIG = bytes(i % 251 for i in range($SIZE))
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Cache-Control", "max-age=3600")
        self.send_header("Content-Length", str(len(BIG)))
        self.end_headers()
        self.wfile.write(BIG)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
EOF

declare -A PID HTTP
for t in A B; do
	extra=()
	[ $t = B ] && extra=(--cache-disk "$work/B-bodies" --cache-disk-min 64K --cache-disk-size 256M)
	http=$(freeport); api=$(freeport)
	"$bin" up --home "$work/$t" --http "127.0.0.1:$http" --api "127.0.0.1:$api" \
		--beanstalkd "127.0.0.1:$(freeport)" --statsd "127.0.0.1:$(freeport)" "${extra[@]}" >"$work/$t.log" 2>&1 &
	PID[$t]=$!; HTTP[$t]=$http; pids+=($!)
	waitport "$api"
	(cd "$work/app" && PIER_API="http://127.0.0.1:$api" PIER_HOME="$work/$t" "$bin" deploy >/dev/null)
	waitport "$http"
	for _ in 1 2 3; do curl -fsS --max-time 10 -o /dev/null -H "Host: big.localhost" "http://127.0.0.1:$http/big"; done
	xc=$(curl -fsS --max-time 10 -o /dev/null -D - -H "Host: big.localhost" "http://127.0.0.1:$http/big" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache" {print $2}')
	[ "$xc" = HIT ] || { echo "$t: X-Cache $xc, want HIT" >&2; exit 1; }
done
n=$(find "$work/B-bodies" -name '*.body' | wc -l)
[ "$n" = 1 ] || { echo "B: $n body files, want 1" >&2; exit 1; }
[ -z "$(find "$work/A" -name '*.body')" ] || { echo "A wrote body files" >&2; exit 1; }

abrounds "big.localhost" "/big"
printf "\ndisk: %s-byte cached body, wrk -t%s -c%s -d%ss, median of %s rounds, %s cores, load %s (%s)\n" "$SIZE" "$THREADS" "$CONNS" "$DURATION" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
printf "A = memory tier, B = disk tier (--cache-disk-min 64K), pier %s\n" "$bin"
absummary
