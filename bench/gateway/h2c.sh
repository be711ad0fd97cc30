#!/usr/bin/env bash
# bench/gateway/h2c.sh: pass-through through pier's gateway to the same app
# spoken to in HTTP/1.1 (the gateway's own forwarder) and in h2c (h2c.go),
# in one run. The app (bench/gateway/h2c) answers both on one port; the
# script deploys it with `protocol: http`, then `protocol: h2c`, RUNS times
# alternating, and drives /hello (13 bytes, no-store) with the same wrk load
# after each deploy. Reports per protocol the median req/s, p99, and the CPU
# time per request of the pier process and of the app (from /proc, less
# disturbed than rates on a shared machine). Free loopback ports, wrk bounded
# in time, every process stopped by PID.
#
#   bench/gateway/h2c.sh                   # RUNS=3 DURATION=5 THREADS=2 CONNS=64
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
command -v wrk >/dev/null || { echo "bench/gateway/h2c.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }

. bench/gateway/lib.sh
benchwork h2c

go build -o "$work/pier" ./cmd/pier
HTTP=$(freeport); API=$(freeport)
"$work/pier" up --home "$work/home" --http "127.0.0.1:$HTTP" --api "127.0.0.1:$API" \
	--beanstalkd "127.0.0.1:$(freeport)" --statsd "127.0.0.1:$(freeport)" >"$work/pier.log" 2>&1 &
PIER=$!
pids+=($PIER)
waitport "$API"
export PIER_API="http://127.0.0.1:$API" PIER_HOME="$work/home"
cp -r bench/gateway/h2c "$work/app"
(cd "$work/app" && go build -o h2cbench .)
deploy() { # deploy PROTOCOL
	printf 'name: h2cbench\nprocesses:\n  web: {command: ./h2cbench, protocol: %s}\nhealth: {path: /healthz}\n' "$1" >"$work/app/pier.yaml"
	(cd "$work/app" && "$work/pier" deploy >"$work/deploy.log" 2>&1) || { cat "$work/deploy.log" >&2; exit 1; }
}
url="http://127.0.0.1:$HTTP/hello"
declare -A rates p99s pcpu acpu
for run in $(seq "$RUNS"); do
	for proto in http h2c; do
		deploy "$proto"
		want=$([ "$proto" = h2c ] && echo HTTP/2.0 || echo HTTP/1.1)
		got=$(curl -s -D - -o /dev/null -H 'Host: h2cbench.localhost' "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-proto"{print $2}')
		[ "$got" = "$want" ] || { echo "protocol $proto: the app saw $got, want $want" >&2; exit 1; }
		APP=$("$work/pier" ps --app h2cbench --json | python3 -c 'import json,sys; print([i for i in json.load(sys.stdin) if i["ready"]][0]["pid"])')
		# Warm up the connections, then measure.
		timeout 30 wrk -t"$THREADS" -c"$CONNS" -d1s -H 'Host: h2cbench.localhost' "$url" >/dev/null
		p0=$(cpu "$PIER"); a0=$(cpu "$APP")
		out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H 'Host: h2cbench.localhost' "$url")
		p1=$(cpu "$PIER"); a1=$(cpu "$APP")
		reqs=$(echo "$out" | awk '/requests in/{print $1}')
		non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}')
		[ -z "$non2xx" ] || { echo "protocol $proto: $non2xx non-2xx answers" >&2; exit 1; }
		rate=$(echo "$out" | awk '/Requests\/sec/{print $2}')
		p99=$(echo "$out" | awk '$1=="99%"{print $2}')
		tick=$(getconf CLK_TCK)
		rates[$proto]+="$rate "; p99s[$proto]+="$p99 "
		pcpu[$proto]+="$(python3 -c "print(($p1-$p0)/$tick/$reqs*1e6)") "
		acpu[$proto]+="$(python3 -c "print(($a1-$a0)/$tick/$reqs*1e6)") "
		echo "run $run $proto: $rate req/s, p99 $p99" >&2
	done
done
ms() { python3 -c "
import statistics,sys
def v(s):
    for u,f in (('us',1e-3),('ms',1),('s',1e3)):
        if s.endswith(u): return float(s[:-len(u)])*f
print('%.2f ms' % statistics.median(v(x) for x in sys.argv[1:]))" "$@"; }
echo "pass-through /hello to one instance, wrk -t$THREADS -c$CONNS, $RUNS x ${DURATION}s alternating, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %12s %10s %18s %18s\n' protocol req/s p99 "pier CPU µs/req" "app CPU µs/req"
for proto in http h2c; do
	printf '%-10s %12.0f %10s %18.1f %18.1f\n' "$proto" "$(echo "${rates[$proto]}" | median)" "$(ms ${p99s[$proto]})" "$(echo "${pcpu[$proto]}" | median)" "$(echo "${acpu[$proto]}" | median)"
done
