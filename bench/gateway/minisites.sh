#!/usr/bin/env bash
# bench/gateway/minisites.sh: examples/minisites behind pier's gateway with
# DOMAINS tenant domains attached (default 70,000), wrk picking a random
# tenant among TENANTS (default all of them) and one of its three pages for
# every request. Two rows: pages the app sends with s-maxage=60 (the
# gateway's cache answers repeats) and with MAX_AGE=0 (no Cache-Control:
# every request is rendered by the app). Reports the median req/s and p99 of
# RUNS runs of DURATION seconds. Free loopback ports; stopped by PID.
#
#   bench/gateway/minisites.sh                 # RUNS=3 DURATION=5 THREADS=2 CONNS=64
#   TENANTS=1000 bench/gateway/minisites.sh    # a hot set of 1,000 tenants
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DOMAINS=${DOMAINS:-70000}
TENANTS=${TENANTS:-$DOMAINS}
command -v wrk >/dev/null || { echo "bench/gateway/minisites.sh needs wrk (apt-get install wrk)" >&2; exit 1; }

. bench/gateway/lib.sh
benchwork minisites

go build -o "$work/pier" ./cmd/pier
HTTP=$(freeport); API=$(freeport)
# Free ports for the task and statsd listeners too: their defaults are fixed
# ports another engine on this machine may hold.
"$work/pier" up --home "$work/home" --http "127.0.0.1:$HTTP" --api "127.0.0.1:$API" \
	--beanstalkd "127.0.0.1:$(freeport)" --statsd "127.0.0.1:$(freeport)" >"$work/pier.log" 2>&1 &
pids+=($!)
waitport "$API"
export PIER_API="http://127.0.0.1:$API" PIER_HOME="$work/home"
cp -r examples/minisites "$work/app"
(cd "$work/app" && go build -o hosts . && "$work/pier" deploy >/dev/null)
start=$(date +%s.%N)
"$work/app/hosts" -hosts "$DOMAINS" | "$work/pier" domains add minisites -f - >&2
attach=$(echo "$(date +%s.%N) - $start" | bc)
waitport "$HTTP"
for _ in $(seq 100); do
	curl -fsS -o /dev/null -H "Host: t00000.minisites.test" "http://127.0.0.1:$HTTP/" 2>/dev/null && break
	sleep 0.1
done

cat >"$work/tenants.lua" <<LUA
local n = $TENANTS
local paths = {"/", "/services", "/contact"}
local headers = {}
setup = function(thread) thread:set("seed", math.random(1, 1e9)) end
init = function() math.randomseed(seed or os.time()) end
request = function()
	headers.Host = string.format("t%05d.minisites.test", math.random(0, n - 1))
	return wrk.format("GET", paths[math.random(1, 3)], headers)
end
LUA
one() {
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$work/tenants.lua" "http://127.0.0.1:$HTTP/" 2>&1 |
		awk '/Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v} /Non-2xx/ {bad=$NF} END {printf "%.0f %.2f %d\n", rps, p99, bad}'
}

declare -A RPS P99 BAD
for mode in cache nocache; do
	if [ "$mode" = nocache ]; then
		"$work/pier" env set MAX_AGE=0 --app minisites >/dev/null
		# What the first row cached would still answer for a minute.
		"$work/pier" cache purge --all --app minisites >/dev/null
	fi
	curl -fsS -o /dev/null -H "Host: t00000.minisites.test" "http://127.0.0.1:$HTTP/"
	for _ in $(seq "$RUNS"); do
		read -r rps p99 bad < <(one)
		RPS[$mode]+="$rps "; P99[$mode]+="$p99 "; BAD[$mode]=$(( ${BAD[$mode]:-0} + bad ))
	done
done

printf "minisites bench: %s domains attached in %.2f s, %s tenants x 3 pages, wrk -t%s -c%s -d%ss, median of %s runs, %s cores (%s)\n" \
	"$DOMAINS" "$attach" "$TENANTS" "$THREADS" "$CONNS" "$DURATION" "$RUNS" "$(nproc)" "$(date -u +%FT%TZ)"
printf "%-40s %10s %10s %8s\n" case req/s p99_ms non-2xx
for mode in cache nocache; do
	case $mode in cache) name="minisites, gateway cache (s-maxage=60)";; nocache) name="minisites, no cache (rendered each time)";; esac
	printf "%-40s %10s %10s %8s\n" "$name" \
		"$(echo "${RPS[$mode]}" | median)" \
		"$(echo "${P99[$mode]}" | median)" "${BAD[$mode]}"
done
