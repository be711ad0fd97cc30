#!/usr/bin/env bash
# bench/gateway/ab.sh: two pier builds side by side in the same run, each
# with the bench app deployed, driven alternately by the same wrk load on
# one path (default /hello, the pass-through row of run.sh). For each round
# it reports req/s, p99 and the engine's CPU time per request (user+system
# of the pier process from /proc, the app's own excluded): on 2 shared
# cores the CPU per request moves far less with the neighbours' load than
# the rates do. The medians of ROUNDS rounds and the ratio B/A close it.
#
#   bench/gateway/ab.sh OLD_PIER NEW_PIER        # ROUNDS=5 DURATION=5 THREADS=2 CONNS=64 PATHNAME=/hello
#   PERF=1 bench/gateway/ab.sh OLD NEW           # also perf-records B during its last round (perf.data in the work dir, KEEP=1)
#
# Free loopback ports; every wrk run bounded in time; every process stopped
# by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
[ $# -eq 2 ] || { echo "usage: $0 PIER_A PIER_B" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
PATHNAME=${PATHNAME:-/hello}

. bench/gateway/lib.sh
benchwork ab
stealwatch

(cd bench/gateway/app && go build -o "$work/benchapp" .)
declare -A PID HTTP
for t in A B; do
	bin=$A; [ $t = B ] && bin=$B
	http=$(freeport); api=$(freeport)
	"$bin" up --home "$work/$t" --http "127.0.0.1:$http" --api "127.0.0.1:$api" \
		--beanstalkd "127.0.0.1:$(freeport)" --statsd "127.0.0.1:$(freeport)" >"$work/$t.log" 2>&1 &
	PID[$t]=$!; HTTP[$t]=$http; pids+=($!)
	waitport "$api"
	mkdir -p "$work/app$t"
	cp bench/gateway/app/* "$work/app$t/"
	cp "$work/benchapp" "$work/app$t/benchapp"
	(cd "$work/app$t" && PIER_API="http://127.0.0.1:$api" PIER_HOME="$work/$t" "$bin" deploy >/dev/null)
	waitport "$http"
	for _ in 1 2 3; do curl -fsS --max-time 10 -o /dev/null -H "Host: benchapp.localhost" "http://127.0.0.1:$http$PATHNAME"; done
done

abrounds "benchapp.localhost" "$PATHNAME"
printf "\nab: %s, wrk -t%s -c%s -d%ss, median of %s rounds, %s cores, load %s (%s)\n" "$PATHNAME" "$THREADS" "$CONNS" "$DURATION" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
printf "A = %s\nB = %s\n" "$A" "$B"
stealsummary
absummary
