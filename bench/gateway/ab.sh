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

work=$(mktemp -d /tmp/pier-bench-ab.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$work"; echo "work: $work" >&2
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }

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

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks
tck=$(getconf CLK_TCK)
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A RPS P99 CPR
printf "%-6s %-3s %10s %8s %14s\n" round bin req/s p99_ms cpu_us/req
for r in $(seq "$ROUNDS"); do
	order="A B"; [ $((r % 2)) = 0 ] && order="B A"
	for t in $order; do
		perfpid=""
		if [ -n "${PERF:-}" ] && [ "$t" = B ] && [ "$r" = "$ROUNDS" ]; then
			perf record -F 999 -g -p "${PID[$t]}" -o "$work/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
			perfpid=$!
		fi
		c0=$(cpu "${PID[$t]}")
		out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: benchapp.localhost" "http://127.0.0.1:${HTTP[$t]}$PATHNAME" 2>&1)
		c1=$(cpu "${PID[$t]}")
		[ -n "$perfpid" ] && wait "$perfpid" || true
		read -r reqs rps p99 bad < <(echo "$out" | awk '/requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v} /Non-2xx/ {bad=$NF} END {printf "%d %.0f %.2f %d\n", n, rps, p99, bad}')
		[ "$bad" = 0 ] || { echo "$t answered $bad non-2xx" >&2; exit 1; }
		cpr=$(awk -v c="$((c1 - c0))" -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.2f", c / t / n * 1e6}')
		RPS[$t]+="$rps "; P99[$t]+="$p99 "; CPR[$t]+="$cpr "
		printf "%-6s %-3s %10s %8s %14s\n" "$r" "$t" "$rps" "$p99" "$cpr"
	done
done
printf "\nab: %s, wrk -t%s -c%s -d%ss, median of %s rounds, %s cores, load %s (%s)\n" "$PATHNAME" "$THREADS" "$CONNS" "$DURATION" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
printf "A = %s\nB = %s\n" "$A" "$B"
for t in A B; do
	printf "%-3s req/s %8s  p99_ms %6s  cpu_us/req %6s\n" "$t" "$(echo "${RPS[$t]}" | median)" "$(echo "${P99[$t]}" | median)" "$(echo "${CPR[$t]}" | median)"
done
awk -v ra="$(echo "${RPS[A]}" | median)" -v rb="$(echo "${RPS[B]}" | median)" \
	-v ca="$(echo "${CPR[A]}" | median)" -v cb="$(echo "${CPR[B]}" | median)" \
	'BEGIN {printf "B/A req/s %.2fx  cpu/req %.2fx\n", rb / ra, cb / ca}'
