#!/usr/bin/env bash
# bench/tasks: the same go-beanstalk load (put; reserve+delete; 1 and 8
# connections; 100-byte jobs) against pier's beanstalkd-protocol server and
# real beanstalkd with its binlog (-b: fsync every 50 ms, its default; and
# -b -f 0: fsync on every write), in one run. Prints median jobs/s of RUNS
# runs of N jobs per cell (the servers take turns in each run) and the
# ratio pier/beanstalkd. Everything listens on free loopback ports and is
# stopped by PID at the end.
#
# pier acknowledges a put or a delete once it is in its journal (write(2),
# like beanstalkd's binlog) and stores it in JetStream after a 1 s drain
# delay: a task deleted sooner is never stored. SETTLE=2s pauses between
# the put and reserve+delete phases so that every task is stored first
# (the cost when workers lag behind).
#
#   bench/tasks/run.sh              # N=20000 RUNS=3
#   N=50000 RUNS=5 bench/tasks/run.sh
#   SETTLE=2s bench/tasks/run.sh
#   PIER_OLD=/path/to/older/pier bench/tasks/run.sh   # also that build, same run
#   PIER_ENV="GOGC=400" bench/tasks/run.sh              # environment of the engines (runtime knobs)
#
# Also printed: each server's CPU time per job (put + reserve + delete,
# pier's later drain included), which a busy machine disturbs less than
# the rates, and the ratios run by run (median, lowest and highest): the
# servers take turns within a run, so one run's ratio is less disturbed
# by the machine's load changing than a ratio of medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
N=${N:-20000}
RUNS=${RUNS:-3}

if ! command -v beanstalkd >/dev/null; then
	echo "bench/tasks: installing beanstalkd" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends beanstalkd >/dev/null
fi
systemctl stop beanstalkd 2>/dev/null || true

. bench/lib.sh
benchwork tasks

go build -o "$work/pier" ./cmd/pier
go build -o "$work/load" ./bench/tasks
PIER_HTTP=$(freeport); PIER_API=$(freeport); PIER_BS=$(freeport); BS=$(freeport); BSF=$(freeport)
env ${PIER_ENV:-} "$work/pier" up --home "$work/home" --http "127.0.0.1:$PIER_HTTP" --api "127.0.0.1:$PIER_API" \
	--beanstalkd "127.0.0.1:$PIER_BS" --statsd 127.0.0.1:0 >"$work/pier.log" 2>&1 &
pids+=($!)
mkdir -p "$work/bs" "$work/bsf"
beanstalkd -l 127.0.0.1 -p "$BS" -b "$work/bs" &
pids+=($!)
beanstalkd -l 127.0.0.1 -p "$BSF" -b "$work/bsf" -f 0 &
pids+=($!)
waitport "$PIER_API"; waitport "$PIER_BS"; waitport "$BS"; waitport "$BSF"
# Unauthenticated beanstalkd connections need a single-app engine; this
# one also receives the pushed tasks.
export PIER_API="http://127.0.0.1:$PIER_API" PIER_HOME="$work/home"
(cd examples/tasks-python && "$work/pier" deploy >/dev/null)

echo "load before: $(uptime)"
old=()
pidlist="pier=${pids[0]},beanstalkd-b=${pids[1]},beanstalkd-b-f0=${pids[2]}"
stealwatch
if [ -n "${PIER_OLD:-}" ]; then
	OLD_HTTP=$(freeport); OLD_API=$(freeport); OLD_BS=$(freeport)
	env ${PIER_ENV:-} "$PIER_OLD" up --home "$work/home-old" --http "127.0.0.1:$OLD_HTTP" --api "127.0.0.1:$OLD_API" \
		--beanstalkd "127.0.0.1:$OLD_BS" --statsd 127.0.0.1:0 >"$work/pier-old.log" 2>&1 &
	pids+=($!)
	pidlist="$pidlist,pier-old=$!"
	waitport "$OLD_API"; waitport "$OLD_BS"
	(cd examples/tasks-python && PIER_API="http://127.0.0.1:$OLD_API" PIER_HOME="$work/home-old" "$PIER_OLD" deploy >/dev/null)
	old=("pier-old=127.0.0.1:$OLD_BS")
fi
"$work/load" -n "$N" -runs "$RUNS" -settle "${SETTLE:-0s}" -pids "$pidlist" "pier=127.0.0.1:$PIER_BS" \
	"beanstalkd-b=127.0.0.1:$BS" "beanstalkd-b-f0=127.0.0.1:$BSF" "${old[@]}"
echo "load after:  $(uptime)"
stealsummary
PIER_TOKEN=$(cat "$work/home/token") "$work/load" -push-api "$PIER_API" \
	-push-gateway "http://127.0.0.1:$PIER_HTTP" -push-rate "${PUSH_RATE:-1000}" -push-for 5s
