#!/usr/bin/env bash
# bench/metrics: what metrics cost.
#  1. Gateway throughput and CPU with the metrics hook on and off: one
#     backend process and two gateway processes in front of it, one with
#     the metrics hook and collector, one without (bench/metrics/gw). wrk
#     loads them in interleaved pairs (on then off, off then on, ...), RUNS
#     pairs of DURATION seconds each. On a shared, noisy machine two runs
#     seconds apart can differ by 2x, so the figures are:
#       - the median over pairs of on/off throughput (each pair ran under
#         nearly the same load);
#       - CPU time per request: each gateway's user+system time from
#         /proc/<pid>/stat over a run, divided by the requests wrk counted.
#         Load from other processes slows a run but barely changes the CPU
#         a request costs, so this is the steadier figure.
#     And the hook's own cost, in process: the gateway's
#     BenchmarkObserveOverhead sends the same request (a cheap 503 answer,
#     and one proxied to an app) to gateways with and without the hook in
#     alternating batches; the difference in ns per request is set against
#     the CPU per proxied request above.
#  2. Memory of the metrics store for 20 apps with 24 h of 10 s windows
#     (bench/metrics/rss feeds the in-memory store; no waiting 24 h).
# Everything listens on loopback; what is started is stopped by PID.
#
#   bench/metrics/run.sh               # RUNS=7 DURATION=5 THREADS=2 CONNS=32
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
RUNS=${RUNS:-7}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
if ! command -v wrk >/dev/null; then
	echo "bench/metrics: installing wrk" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
. bench/lib.sh
benchwork metrics
go build -o "$work/gw" ./bench/metrics/gw
go build -o "$work/rss" ./bench/metrics/rss

# start NAME ARGS...: runs gw with ARGS, waits for the address it prints.
start() {
	local name=$1
	shift
	"$work/gw" "$@" >"$work/$name.addr" &
	pids+=($!)
	echo $! >"$work/$name.pid"
	for _ in $(seq 100); do [ -s "$work/$name.addr" ] && return; sleep 0.05; done
	echo "bench/metrics: $name did not start" >&2
	exit 1
}
start backend -backend
start on -to "$(cat "$work/backend.addr")" -metrics on
start off -to "$(cat "$work/backend.addr")" -metrics off

ticks=$(getconf CLK_TCK)
# cpu NAME: the gateway's user+system CPU so far, in clock ticks (fields
# 14 and 15 of /proc/PID/stat, counted after the ")" that ends the name).
cpu() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$(cat "$work/$1.pid")/stat"; }
# run NAME: one wrk run against the gateway; appends "rps requests cputicks".
run() {
	local before after out
	before=$(cpu "$1")
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H 'Host: bench.localhost' "http://$(cat "$work/$1.addr")/")
	after=$(cpu "$1")
	echo "$out" | awk -v t=$((after - before)) '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {print r, n, t}' >>"$work/$1.runs"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

run on; run off # warm up both
: >"$work/on.runs"; : >"$work/off.runs"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq "$RUNS"); do
	if [ $((i % 2)) -eq 1 ]; then run on; run off; else run off; run on; fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Per pair: on/off throughput, and CPU per request (µs) of each.
paste -d' ' "$work/on.runs" "$work/off.runs" | awk -v hz="$ticks" '{
	printf "%.6f %.3f %.3f\n", $1/$4, $3/hz*1e6/$2, $6/hz*1e6/$5
}' >"$work/pairs"
ratio=$(cut -d' ' -f1 "$work/pairs" | median)
cpu_on=$(cut -d' ' -f2 "$work/pairs" | median)
cpu_off=$(cut -d' ' -f3 "$work/pairs" | median)
cpu_ratio=$(awk '{print $2/$3}' "$work/pairs" | median)

echo "gateway with metrics on vs off: wrk -t$THREADS -c$CONNS, $RUNS interleaved pairs of ${DURATION}s"
echo "  machine: $(nproc) cores, shared; load average $load_before before, $load_after after"
echo "  throughput (req/s) per run:"
echo "    on:  $(cut -d' ' -f1 "$work/on.runs" | tr '\n' ' ')"
echo "    off: $(cut -d' ' -f1 "$work/off.runs" | tr '\n' ' ')"
echo "  CPU per request (µs) per run:"
echo "    on:  $(cut -d' ' -f2 "$work/pairs" | tr '\n' ' ')"
echo "    off: $(cut -d' ' -f3 "$work/pairs" | tr '\n' ' ')"
echo "  per pair, on/off throughput:      $(awk '{printf "%.3f ", $1}' "$work/pairs")"
echo "  per pair, on/off CPU per request: $(awk '{printf "%.3f ", $2/$3}' "$work/pairs")"
awk -v r="$ratio" 'BEGIN {printf "  throughput cost, median of per-pair on/off:  %.1f%%\n", (1-r)*100}'
awk -v on="$cpu_on" -v off="$cpu_off" -v r="$cpu_ratio" 'BEGIN {
	printf "  CPU per request, medians: on %.1f µs, off %.1f µs; median of per-pair on/off: %+.1f%%\n", on, off, (r-1)*100
}'
observed=$(curl -s -H 'Host: bench.localhost' "http://$(cat "$work/on.addr")/_pier/metrics" |
	awk '/^pier_http_requests_total\{app="bench"/ {n += $2} END {print n + 0}')
echo "  requests the metrics-on gateway observed: $observed (wrk counted $(awk '{n += $2} END {print n}' "$work/on.runs") plus a warm-up run)"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
go test ./internal/gateway -run '^$' -bench ObserveOverhead -count 5 -benchtime 400x >"$work/hook"
for kind in answer proxied; do
	hook=$(awk -v k="/$kind" 'index($1, k) {for (i = 2; i <= NF; i++) if ($i == "ns-hook/req") print $(i-1)}' "$work/hook" | median)
	awk -v k="$kind" -v h="$hook" -v off="$cpu_off" 'BEGIN {
		printf "  the hook in process (BenchmarkObserveOverhead/%s, median of 5): %.0f ns per request = %.1f%% of %.1f µs\n", k, h, h/(off*1000)*100, off
	}'
done
"$work/rss"
