#!/usr/bin/env bash
# bench/gateway: pier's gateway side by side with nginx (reverse proxy with
# proxy_cache) and varnish, in front of the same upstream process, driven by
# the same wrk load in one run. Rows:
#   pass-through          /hello, no-store: every request reaches the app
#   cached hit (13 B)     /cached, max-age=600
#   cached hit (20 KB)    /cached20k, max-age=600
#   cached hit, paced     /cached with each connection waiting 1 ms
#                         between its requests (wrk's delay()): every
#                         target then serves about the same rate, well
#                         below its peak, so its p99 is its own latency and
#                         not that of a wrk starved of CPU on shared cores
#   render 20 ms, no cache  /render: the app takes 20 ms, no-store
#   render 20 ms, cached    /render/cached: the same, max-age=600
#   pass-through, nginx Host only  /hello again, against an nginx that
#                         sends the app only Host (see below)
#   1 domain / 100k domains /hello with a random Host among 1 or 100,000
#                         names: pier with the names attached (pier domains
#                         add), nginx with them as server_name of one server
#                         block (and a default server answering 404); varnish
#                         has no host routing of its own, so it has no row
# nginx is configured to do for the app what pier does for it (README,
# "The gateway"): X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto to the
# app, and a request id both ways (X-Request-Id, nginx's $request_id), as an
# nginx in front of apps is usually set up; the "Host only" row shows the
# bare proxy_pass, which does less than pier does.
# then the examples/minisites rows (bench/gateway/minisites.sh, 70,000
# domains, with and without the cache; MINISITES=0 skips them).
# Reports the median req/s and p99 of RUNS runs of DURATION seconds each,
# and the ratios pier/nginx and pier/varnish. Everything listens on free
# loopback ports, every wrk run is bounded in time, and every process is
# stopped by PID at the end.
#
#   bench/gateway/run.sh                  # RUNS=3 DURATION=5 THREADS=2 CONNS=64 DOMAINS=100000
#   RUNS=5 DURATION=10 bench/gateway/run.sh
#   RUNS=1 DURATION=5 MINISITES=0 bench/gateway/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DOMAINS=${DOMAINS:-100000}
MINISITES=${MINISITES:-1}

need=()
for p in nginx varnish wrk; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
	echo "bench/gateway: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packages start their services; this bench runs its own.
systemctl stop nginx varnish 2>/dev/null || true

. bench/lib.sh
benchwork gw
stealwatch
# stopall stops what the script started (before the minisites rows start
# their own engine).
stopall() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

go build -o "$work/pier" ./cmd/pier
PIER_HTTP=$(freeport); PIER_API=$(freeport); NGINX=$(freeport); NGINX_BARE=$(freeport); NGINX_DOMAINS=$(freeport); VARNISH=$(freeport)
# Free ports for the task and statsd listeners too: their defaults are fixed
# ports another engine on this machine may hold.
"$work/pier" up --home "$work/home" --http "127.0.0.1:$PIER_HTTP" --api "127.0.0.1:$PIER_API" \
	--beanstalkd "127.0.0.1:$(freeport)" --statsd "127.0.0.1:$(freeport)" >"$work/pier.log" 2>&1 &
pids+=($!)
waitport "$PIER_API"
export PIER_API="http://127.0.0.1:$PIER_API" PIER_HOME="$work/home"
cp -r bench/gateway/app "$work/app"
(cd "$work/app" && go build -o benchapp . && "$work/pier" deploy >/dev/null)
UP=$("$work/pier" ps --app benchapp --json | python3 -c 'import json,sys; print([i for i in json.load(sys.stdin) if i["ready"]][0]["port"])')

# The DOMAINS names of the domains rows, one a line: d000000.bench.test, ...
seq -f "d%06.0f.bench.test" 0 $((DOMAINS - 1)) >"$work/domains.txt"

mkdir -p "$work/nginx/cache"
nginx_user=""
[ "$(id -u)" = 0 ] && nginx_user="user root;"   # its workers write the cache under $work (0700)
# server_name takes many names a directive; 1,000 names a line.
awk '{printf "%s%s", (NR % 1000 == 1 ? "server_name " : " "), $0} NR % 1000 == 0 {print ";"} END {if (NR % 1000) print ";"}' \
	"$work/domains.txt" >"$work/nginx/names.conf"
bare_conf="proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; proxy_cache bench; add_header X-Cache \$upstream_cache_status;"
# What pier sends the app besides Host, and the id it answers with.
proxy_conf="$bare_conf proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Host \$host; proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Request-Id \$request_id; add_header X-Request-Id \$request_id;"
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
	server_names_hash_max_size $((DOMAINS * 2 + 1024));
	server_names_hash_bucket_size 128;
	server {
		listen 127.0.0.1:$NGINX;
		location / { $proxy_conf }
	}
	server {
		listen 127.0.0.1:$NGINX_BARE;
		location / { $bare_conf }
	}
	# The domains rows: $DOMAINS names on one server block, 404 for others.
	server {
		listen 127.0.0.1:$NGINX_DOMAINS default_server;
		return 404;
	}
	server {
		listen 127.0.0.1:$NGINX_DOMAINS;
		include $work/nginx/names.conf;
		location / { $proxy_conf }
	}
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
varnishd -F -n "$work/varnish" -a "127.0.0.1:$VARNISH" -b "127.0.0.1:$UP" -s malloc,256m >"$work/varnish.log" 2>&1 &
pids+=($!)
waitport "$NGINX"; waitport "$NGINX_BARE"; waitport "$NGINX_DOMAINS"; waitport "$VARNISH"; waitport "$PIER_HTTP"

PATHS="/hello /cached /cached20k /render /render/cached"
# Warm the caches and check what each target answers.
for t in "nginx $NGINX" "varnish $VARNISH" "pier $PIER_HTTP"; do
	set -- $t
	for path in $PATHS $PATHS; do
		curl -fsS --max-time 10 -o /dev/null -H "Host: benchapp.localhost" "http://127.0.0.1:$2$path" || { echo "$1 does not answer $path" >&2; exit 1; }
	done
done

# hosts.lua N FILE: wrk picks a random Host among the first N lines of
# FILE for every request of /hello.
hosts_lua() {
	cat >"$work/hosts-$1.lua" <<LUA
local hosts = {}
for line in io.lines("$2") do
	hosts[#hosts + 1] = line
	if #hosts >= $1 then break end
end
local headers = {}
setup = function(thread) thread:set("seed", math.random(1, 1e9)) end
init = function() math.randomseed(seed or os.time()) end
request = function()
	headers.Host = hosts[math.random(1, #hosts)]
	return wrk.format("GET", "/hello", headers)
end
LUA
	echo "$work/hosts-$1.lua"
}
cat >"$work/paced.lua" <<LUA
wrk.headers["Host"] = "benchapp.localhost"
function delay() return 1 end
LUA
echo benchapp.localhost >"$work/one.txt"
LUA_ONE=$(hosts_lua 1 "$work/one.txt")
LUA_MANY=$(hosts_lua "$DOMAINS" "$work/domains.txt")

# one PORT PATH [LUA] -> "req/s p99_ms non2xx"; bounded by timeout on top
# of wrk's own -d.
one() {
	local args=(-t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency)
	if [ -n "${3:-}" ]; then args+=(-s "$3"); else args+=(-H "Host: benchapp.localhost"); fi
	timeout $((DURATION + 30)) wrk "${args[@]}" "http://127.0.0.1:$1$2" 2>&1 |
		awk '/Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v} /Non-2xx/ {bad=$NF} END {printf "%.0f %.2f %d\n", rps, p99, bad}'
}

declare -A RPS P99 BAD
# measure ROW TARGET PORT PATH [LUA]
measure() {
	local rps p99 bad
	read -r rps p99 bad < <(one "$3" "$4" "${5:-}")
	RPS[$1.$2]+="$rps "; P99[$1.$2]+="$p99 "; BAD[$1.$2]=$(( ${BAD[$1.$2]:-0} + bad ))
}
for r in $(seq "$RUNS"); do
	for path in $PATHS; do
		# Interleave the targets so that noise spreads over all of them.
		measure "$path" nginx "$NGINX" "$path"
		measure "$path" varnish "$VARNISH" "$path"
		measure "$path" pier "$PIER_HTTP" "$path"
	done
	for t in "nginx $NGINX" "varnish $VARNISH" "pier $PIER_HTTP"; do
		set -- $t
		measure paced "$1" "$2" /cached "$work/paced.lua"
	done
	measure bare nginx "$NGINX_BARE" /hello
	measure bare pier "$PIER_HTTP" /hello
	measure domains1 nginx "$NGINX" /hello "$LUA_ONE"
	measure domains1 pier "$PIER_HTTP" /hello "$LUA_ONE"
done

# Now attach the names to benchapp and measure with a random one each time.
start=$(date +%s.%N)
"$work/pier" domains add benchapp -f "$work/domains.txt" >/dev/null
attach=$(echo "$(date +%s.%N) - $start" | bc)
last=$(tail -1 "$work/domains.txt")
for _ in $(seq 100); do
	curl -fsS --max-time 5 -o /dev/null -H "Host: $last" "http://127.0.0.1:$PIER_HTTP/hello" 2>/dev/null && break
	sleep 0.1
done
curl -fsS --max-time 5 -o /dev/null -H "Host: $last" "http://127.0.0.1:$PIER_HTTP/hello" || { echo "pier does not route $last" >&2; exit 1; }
curl -fsS --max-time 5 -o /dev/null -H "Host: $last" "http://127.0.0.1:$NGINX_DOMAINS/hello" || { echo "nginx does not route $last" >&2; exit 1; }
for r in $(seq "$RUNS"); do
	measure domainsN nginx "$NGINX_DOMAINS" /hello "$LUA_MANY"
	measure domainsN pier "$PIER_HTTP" /hello "$LUA_MANY"
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
steal=$(stealsummary)
stopall

printf "gateway bench: wrk -t%s -c%s -d%ss, median of %s runs, %s cores, load %s before stopping (%s)\n" \
	"$THREADS" "$CONNS" "$DURATION" "$RUNS" "$(nproc)" "$load" "$(date -u +%FT%TZ)"
echo "$steal"
printf "%-30s %8s %10s %10s %8s %11s %12s\n" case target req/s p99_ms non-2xx pier/nginx pier/varnish
row() { # ROW NAME TARGETS...
	local key=$1 name=$2; shift 2
	declare -A M=()
	for t in "$@"; do
		M[$t]=$(echo "${RPS[$key.$t]}" | median)
		printf "%-30s %8s %10s %10s %8s\n" "$name" "$t" "${M[$t]}" "$(echo "${P99[$key.$t]}" | median)" "${BAD[$key.$t]}"
	done
	awk -v p="${M[pier]}" -v n="${M[nginx]:-}" -v v="${M[varnish]:-}" -v name="$name" \
		'BEGIN {printf "%-30s %8s %10s %10s %8s %11s %12s\n", name, "ratio", "", "", "", (n ? sprintf("%.2f", p/n) : "-"), (v ? sprintf("%.2f", p/v) : "-")}'
}
row /hello "pass-through (no-store)" nginx varnish pier
row bare "pass-through, nginx Host only" nginx pier
row /cached "cached hit (13 B)" nginx varnish pier
row /cached20k "cached hit (20 KB)" nginx varnish pier
row paced "cached hit (13 B), paced" nginx varnish pier
row /render "render 20 ms, no cache" nginx varnish pier
row /render/cached "render 20 ms, cached" nginx varnish pier
row domains1 "pass-through, 1 domain" nginx pier
row domainsN "pass-through, $DOMAINS domains" nginx pier
printf "(%s domains attached to pier in %.2f s; rows with a domain count pick a random Host per request with a wrk script)\n" "$DOMAINS" "$attach"
echo "run by run, in the order measured (req/s@p99_ms):"
for key in /hello bare /cached /cached20k paced /render /render/cached domains1 domainsN; do
	for t in nginx varnish pier; do
		[ -n "${RPS[$key.$t]:-}" ] || continue
		read -ra r <<<"${RPS[$key.$t]}"; read -ra q <<<"${P99[$key.$t]}"
		line=""; for i in "${!r[@]}"; do line+=" ${r[$i]}@${q[$i]}"; done
		printf "  %-15s %-8s%s\n" "$key" "$t" "$line"
	done
done

if [ "$MINISITES" != 0 ]; then
	echo
	RUNS=$RUNS DURATION=$DURATION THREADS=$THREADS CONNS=$CONNS bench/gateway/minisites.sh
fi
