# bench/gateway/lib.sh: what the scripts of bench/gateway share. Sourced
# (not run), from the repository's root, by ab.sh, disk.sh, h2c.sh and
# minisites.sh.

. bench/lib.sh

# The A/B scripts (ab.sh, disk.sh) set ROUNDS, DURATION, THREADS, CONNS and
# the associative arrays PID and HTTP for their engines A and B.

# abrounds HOST PATH: ROUNDS rounds of one wrk run on each engine, A first in
# odd rounds and B first in even ones, so that the machine's changing load
# weighs on both alike. Prints a line per run and keeps req/s, p99 and the
# engine's CPU per request in RPS, P99 and CPR. PERF=1 perf-records B during
# the last round into $work/perf.data.
declare -A RPS P99 CPR
abrounds() {
	local host=$1 path=$2 tck r t order perfpid c0 c1 out reqs rps p99 bad cpr
	tck=$(getconf CLK_TCK)
	printf "%-6s %-3s %10s %8s %14s\n" round eng req/s p99_ms cpu_us/req
	for r in $(seq "$ROUNDS"); do
		order="A B"; [ $((r % 2)) = 0 ] && order="B A"
		for t in $order; do
			perfpid=""
			if [ -n "${PERF:-}" ] && [ "$t" = B ] && [ "$r" = "$ROUNDS" ]; then
				perf record -F 999 -g -p "${PID[$t]}" -o "$work/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
				perfpid=$!
			fi
			c0=$(cpu "${PID[$t]}")
			out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" "http://127.0.0.1:${HTTP[$t]}$path" 2>&1)
			c1=$(cpu "${PID[$t]}")
			[ -n "$perfpid" ] && wait "$perfpid" || true
			read -r reqs rps p99 bad < <(echo "$out" | awk '/requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v} /Non-2xx/ {bad=$NF} END {printf "%d %.0f %.2f %d\n", n, rps, p99, bad}')
			[ "$bad" = 0 ] || { echo "$t answered $bad non-2xx" >&2; exit 1; }
			cpr=$(awk -v c="$((c1 - c0))" -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.2f", c / t / n * 1e6}')
			RPS[$t]+="$rps "; P99[$t]+="$p99 "; CPR[$t]+="$cpr "
			printf "%-6s %-3s %10s %8s %14s\n" "$r" "$t" "$rps" "$p99" "$cpr"
		done
	done
}

# absummary: the medians of each engine and the ratios B/A.
absummary() {
	local t
	for t in A B; do
		printf "%-3s req/s %8s  p99_ms %6s  cpu_us/req %6s\n" "$t" "$(echo "${RPS[$t]}" | median)" "$(echo "${P99[$t]}" | median)" "$(echo "${CPR[$t]}" | median)"
	done
	awk -v ra="$(echo "${RPS[A]}" | median)" -v rb="$(echo "${RPS[B]}" | median)" \
		-v ca="$(echo "${CPR[A]}" | median)" -v cb="$(echo "${CPR[B]}" | median)" \
		'BEGIN {printf "B/A req/s %.2fx  cpu/req %.2fx\n", rb / ra, cb / ca}'
}
