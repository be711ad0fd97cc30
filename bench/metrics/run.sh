#!/usr/bin/env bash
# bench/metrics: what metrics cost.
#  1. Gateway throughput with the metrics hook on and off: one backend
#     behind two gateways in one process (bench/metrics/gw), loaded with
#     wrk alternately, RUNS runs of DURATION seconds each; medians.
#  2. Memory of the metrics store for 20 apps with 24 h of 10 s windows
#     (bench/metrics/rss feeds the in-memory store; no waiting 24 h).
# Everything listens on loopback; what is started is stopped by PID.
#
#   bench/metrics/run.sh               # RUNS=5 DURATION=5 THREADS=2 CONNS=32
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
if ! command -v wrk >/dev/null; then
	echo "bench/metrics: installing wrk" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
work=$(mktemp -d /tmp/pier-bench-metrics.XXXXXX)
gwpid=
cleanup() {
	[ -n "$gwpid" ] && kill "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/gw" ./bench/metrics/gw
go build -o "$work/rss" ./bench/metrics/rss
mkfifo "$work/in"
"$work/gw" <"$work/in" >"$work/addrs" &
gwpid=$!
exec 3>"$work/in"
for _ in $(seq 100); do [ -s "$work/addrs" ] && break; sleep 0.05; done
read -r ON OFF <"$work/addrs"

rps() { wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H 'Host: bench.localhost' "http://$1/" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rps "$ON" >/dev/null # warm up both
rps "$OFF" >/dev/null
: >"$work/on"; : >"$work/off"
for i in $(seq "$RUNS"); do
	if [ $((i % 2)) -eq 1 ]; then rps "$ON" >>"$work/on"; rps "$OFF" >>"$work/off"
	else rps "$OFF" >>"$work/off"; rps "$ON" >>"$work/on"; fi
done
on=$(median <"$work/on"); off=$(median <"$work/off")
echo "gateway throughput, wrk -t$THREADS -c$CONNS, $RUNS runs of ${DURATION}s each, medians ($(nproc) cores, shared):"
echo "  metrics off: $off req/s   (runs: $(tr '\n' ' ' <"$work/off"))"
echo "  metrics on:  $on req/s   (runs: $(tr '\n' ' ' <"$work/on"))"
awk -v on="$on" -v off="$off" 'BEGIN {printf "  cost:        %.1f%%\n", (off-on)/off*100}'
exec 3>&-
"$work/rss"
