#!/usr/bin/env bash
# bench/tasks/ab.sh: two pier builds side by side under the bench/tasks load,
# for changes too small for run.sh's rates on 2 noisy cores. Each build runs
# as its own engine; the script alternates between them (A B, B A, ...)
# PAIRS times, each time putting then reserving+deleting N 100-byte jobs over
# CONNS connections with `perf stat` attached to that engine, and prints per
# build the medians of: jobs/s of each phase, CPU per job (task-clock, the
# engine's later drain included: 1.5 s after the phase), system calls and
# context switches per job; and the engine's peak RSS (VmHWM) at the end.
# Needs perf (linux-perf) and python3. Everything listens on free loopback
# ports and is stopped by PID at the end.
#
#   go build -o /tmp/pier-old ./cmd/pier    # (at the older commit)
#   go build -o /tmp/pier-new ./cmd/pier
#   bench/tasks/ab.sh new=/tmp/pier-new old=/tmp/pier-old
#   CONNS=1 PAIRS=6 bench/tasks/ab.sh new=/tmp/pier-new old=/tmp/pier-old
#   bench/tasks/ab.sh gogc=/tmp/pier-new@GOGC=400 new=/tmp/pier-new   # @ENV=value: the engine's environment
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
CONNS=${CONNS:-8}
PAIRS=${PAIRS:-8}
N=${N:-20000}
if [ $# -ne 2 ]; then
	echo "usage: bench/tasks/ab.sh nameA=/path/to/pier[@ENV=value] nameB=/path/to/pier[@ENV=value]" >&2
	exit 2
fi
command -v perf >/dev/null || { echo "bench/tasks/ab.sh: needs perf" >&2; exit 1; }

. bench/lib.sh
benchwork tasks-ab
stealwatch

go build -o "$work/load" ./bench/tasks
names=() epids=() ports=()
for arg in "$@"; do
	name=${arg%%=*} bin=${arg#*=} envs=""
	case $bin in *@*) envs=${bin#*@} bin=${bin%%@*} ;; esac
	home="$work/$name"
	http=$(freeport) api=$(freeport) bs=$(freeport)
	env $envs "$bin" up --home "$home" --http "127.0.0.1:$http" --api "127.0.0.1:$api" \
		--beanstalkd "127.0.0.1:$bs" --statsd 127.0.0.1:0 >"$work/$name.log" 2>&1 &
	pids+=($!)
	epid=$!
	waitport "$api"
	waitport "$bs"
	# Unauthenticated beanstalkd connections need a single-app engine.
	(cd examples/tasks-python && PIER_API="http://127.0.0.1:$api" PIER_HOME="$home" "$bin" deploy >/dev/null)
	names+=("$name") epids+=("$epid") ports+=("$bs")
	: >"$work/$name.rows"
done

# one k: put and reserve+delete N jobs on engine k under perf stat; appends
# "put rd task-clock-ms syscalls switches" to its rows.
one() {
	local k=$1 tube="ab$RANDOM$RANDOM" out="$work/stat"
	perf stat -e raw_syscalls:sys_enter,context-switches,task-clock -x, -p "${epids[$k]}" -o "$out" &
	local sp=$!
	sleep 0.3
	local put rd
	put=$("$work/load" -phase put -tube "$tube" -n "$N" -conns "$CONNS" "127.0.0.1:${ports[$k]}" | awk '{print $3}')
	rd=$("$work/load" -phase rd -tube "$tube" -n "$N" -conns "$CONNS" "127.0.0.1:${ports[$k]}" | awk '{print $3}')
	sleep 1.5 # the drain, 1 s behind
	kill -INT "$sp"
	wait "$sp" || true
	echo "$put $rd $(awk -F, '/task-clock/{t=$1} /raw_syscalls/{s=$1} /context-switches/{c=$1} END{print t, s, c}' "$out")" >>"$work/${names[$k]}.rows"
}

echo "bench/tasks/ab.sh: CONNS=$CONNS PAIRS=$PAIRS N=$N; load before: $(uptime)"
for i in $(seq "$PAIRS"); do
	if [ $((i % 2)) = 1 ]; then one 0; one 1; else one 1; one 0; fi
done
echo "load after: $(uptime)"
stealsummary
for k in 0 1; do
	hwm=$(awk '/VmHWM/{print $2}' "/proc/${epids[$k]}/status")
	python3 - "$work/${names[$k]}.rows" "${names[$k]}" "$N" "$hwm" <<'PY'
import sys, statistics as st
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
name, n, hwm = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
col = lambda i: [r[i] for r in rows]
cpu = [t * 1000 / n for t in col(2)]
print(f"{name:10s} put {st.median(col(0)):8.0f}/s  reserve+delete {st.median(col(1)):8.0f}/s  "
      f"CPU/job {st.median(cpu):5.1f} us [{min(cpu):.1f}-{max(cpu):.1f}]  "
      f"syscalls/job {st.median(col(3)) / n:5.2f}  switches/job {st.median(col(4)) / n:4.2f}  peak RSS {hwm / 1024:.0f} MB")
PY
done
