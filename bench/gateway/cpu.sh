#!/usr/bin/env bash
# bench/gateway/cpu.sh: CPU time per cached hit of nginx (proxy_cache), varnish and pier
# under the same wrk load, alternating, from /proc: nginx's and varnish's
# process trees (their workers), pier's own process (its children are the
# apps it runs). The backend is never counted, so PATHS=/hello compares the
# CPU per passed-through request too. nginx sends the app and the client the
# fields pier does, as in run.sh.
#   PIER=/path/pier ROUNDS=3 DURATION=5 PATHS="/cached /cached20k /render/cached" bench/gateway/cpu.sh
#   PIER=/path/pier PATHS=/hello bench/gateway/cpu.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}; PATHS=${PATHS:-"/cached /cached20k /render/cached"}
cd "$repo"
. bench/lib.sh
benchwork cpu
cp -r "$repo/bench/gateway/app" "$work/app"; (cd "$work/app" && go build -o benchapp .)
UP=$(freeport); PORT=$UP "$work/app/benchapp" >/dev/null 2>&1 & pids+=($!)
NG=$(freeport); VA=$(freeport); PH=$(freeport); PA=$(freeport)
mkdir -p "$work/nginx/cache"
u=""; [ "$(id -u)" = 0 ] && u="user root;"
cat >"$work/nginx/nginx.conf" <<CONF
$u
worker_processes auto; daemon off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; proxy_cache_path $work/nginx/cache keys_zone=bench:16m max_size=256m;
  upstream app { server 127.0.0.1:$UP; keepalive 128; }
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$NG; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Host \$host; proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Request-Id \$request_id; add_header X-Request-Id \$request_id; proxy_cache bench; add_header X-Cache \$upstream_cache_status; } } }
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & NPID=$!; pids+=($NPID)
varnishd -F -n "$work/varnish" -a "127.0.0.1:$VA" -b "127.0.0.1:$UP" -s malloc,256m >"$work/varnish.log" 2>&1 & VPID=$!; pids+=($VPID)
"$PIER" up --home "$work/home" --http "127.0.0.1:$PH" --api "127.0.0.1:$PA" --beanstalkd "127.0.0.1:$(freeport)" --statsd "127.0.0.1:$(freeport)" >"$work/pier.log" 2>&1 & PPID_=$!; pids+=($PPID_)
waitport "$PA"; (cd "$work/app" && PIER_API="http://127.0.0.1:$PA" PIER_HOME="$work/home" "$PIER" deploy >/dev/null)
waitport "$NG"; waitport "$VA"
for port in $NG $VA $PH; do for p in $PATHS $PATHS; do curl -fsS --max-time 10 -o /dev/null -H "Host: benchapp.localhost" "http://127.0.0.1:$port$p"; done; done
tree() { echo $1; for c in $(pgrep -P $1 2>/dev/null); do tree $c; done; }
cpu() { local s=0 ps; ps=$(tree $1); [ "$1" = "$PPID_" ] && ps=$1; for p in $ps; do [ -r /proc/$p/stat ] && s=$((s + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $s; }
tck=$(getconf CLK_TCK)
declare -A PORT=([nginx]=$NG [varnish]=$VA [pier]=$PH) ROOT=([nginx]=$NPID [varnish]=$VPID [pier]=$PPID_)
echo "uptime: $(uptime)"
printf "%-15s %-8s %10s %8s %10s\n" path target req/s p99ms cpu_us/req
for p in $PATHS; do for r in $(seq $ROUNDS); do for t in nginx varnish pier; do
	c0=$(cpu ${ROOT[$t]})
	out=$(timeout $((DURATION+20)) wrk -t2 -c64 -d${DURATION}s --latency -H "Host: benchapp.localhost" "http://127.0.0.1:${PORT[$t]}$p")
	c1=$(cpu ${ROOT[$t]})
	reqs=$(echo "$out" | awk '/requests in/ {print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	p99=$(echo "$out" | awk '/^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}')
	printf "%-15s %-8s %10.0f %8.2f %10.2f\n" $p $t $rps $p99 $(echo "($c1-$c0)*1000000/$tck/$reqs" | bc -l)
done; done; done
echo "uptime: $(uptime)"
