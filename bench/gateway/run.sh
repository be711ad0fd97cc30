#!/usr/bin/env bash
# bench/gateway: pier's gateway side by side with nginx (reverse proxy with
# proxy_cache) and varnish, in front of the same upstream process, driven by
# the same wrk load in one run: a pass-through request (/hello, no-store) and
# a cached hit (/cached, max-age=600). Reports the median req/s and p99 of
# RUNS runs of DURATION seconds each, and the ratios pier/nginx and
# pier/varnish. Everything listens on free loopback ports and is stopped by
# PID at the end.
#
#   bench/gateway/run.sh                  # RUNS=3 DURATION=5 THREADS=2 CONNS=64
#   RUNS=5 DURATION=10 bench/gateway/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}

need=()
for p in nginx varnish wrk; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
	echo "bench/gateway: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packages start their services; this bench runs its own.
systemctl stop nginx varnish 2>/dev/null || true

work=$(mktemp -d /tmp/pier-bench-gw.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$work"; echo "work: $work" >&2
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }

go build -o "$work/pier" ./cmd/pier
PIER_HTTP=$(freeport); PIER_API=$(freeport); NGINX=$(freeport); VARNISH=$(freeport)
"$work/pier" up --home "$work/home" --http "127.0.0.1:$PIER_HTTP" --api "127.0.0.1:$PIER_API" >"$work/pier.log" 2>&1 &
pids+=($!)
waitport "$PIER_API"
export PIER_API="http://127.0.0.1:$PIER_API" PIER_HOME="$work/home"
cp -r bench/gateway/app "$work/app"
(cd "$work/app" && go build -o benchapp . && "$work/pier" deploy >/dev/null)
UP=$("$work/pier" ps --app benchapp --json | python3 -c 'import json,sys; print([i for i in json.load(sys.stdin) if i["ready"]][0]["port"])')

mkdir -p "$work/nginx/cache"
nginx_user=""
[ "$(id -u)" = 0 ] && nginx_user="user root;"   # its workers write the cache under $work (0700)
cat >"$work/nginx/nginx.conf" <<CONF
$nginx_user
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	proxy_cache_path $work/nginx/cache keys_zone=bench:16m max_size=256m;
	upstream app { server 127.0.0.1:$UP; keepalive 128; }
	client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
	fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
	server {
		listen 127.0.0.1:$NGINX;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_cache bench;
			add_header X-Cache \$upstream_cache_status;
		}
	}
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
varnishd -F -n "$work/varnish" -a "127.0.0.1:$VARNISH" -b "127.0.0.1:$UP" -s malloc,256m >"$work/varnish.log" 2>&1 &
pids+=($!)
waitport "$NGINX"; waitport "$VARNISH"; waitport "$PIER_HTTP"

# Warm the caches and check what each target answers.
for t in "nginx $NGINX" "varnish $VARNISH" "pier $PIER_HTTP"; do
	set -- $t
	for path in /hello /cached /cached; do
		curl -fsS -o /dev/null -H "Host: benchapp.localhost" "http://127.0.0.1:$2$path" || { echo "$1 does not answer $path" >&2; exit 1; }
	done
done

# one TARGET PORT PATH -> "req/s p99_ms"
one() {
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: benchapp.localhost" "http://127.0.0.1:$2$3" 2>&1 |
		awk '/Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v} END {printf "%.0f %.2f\n", rps, p99}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RPS P99
for path in /hello /cached; do
	for r in $(seq "$RUNS"); do
		# Interleave the targets so that noise spreads over all of them.
		for t in "nginx $NGINX" "varnish $VARNISH" "pier $PIER_HTTP"; do
			set -- $t
			read -r rps p99 < <(one "$1" "$2" "$path")
			RPS[$1$path]+="$rps "; P99[$1$path]+="$p99 "
		done
	done
done

printf "gateway bench: wrk -t%s -c%s -d%ss, median of %s runs, %s cores (%s)\n" "$THREADS" "$CONNS" "$DURATION" "$RUNS" "$(nproc)" "$(date -u +%FT%TZ)"
printf "%-26s %10s %10s %10s %10s %12s %12s\n" case target req/s p99_ms "" pier/nginx pier/varnish
for path in /hello /cached; do
	case $path in /hello) name="pass-through (no-store)";; /cached) name="cached hit (13 B)";; esac
	declare -A M=()
	for t in nginx varnish pier; do
		M[$t]=$(echo "${RPS[$t$path]}" | tr ' ' '\n' | grep . | median)
		p=$(echo "${P99[$t$path]}" | tr ' ' '\n' | grep . | median)
		printf "%-26s %10s %10s %10s\n" "$name" "$t" "${M[$t]}" "$p"
	done
	awk -v p="${M[pier]}" -v n="${M[nginx]}" -v v="${M[varnish]}" -v name="$name" \
		'BEGIN {printf "%-26s %10s %10s %10s %10s %12.2f %12.2f\n", name, "ratio", "", "", "", p/n, p/v}'
done
