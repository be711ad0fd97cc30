# bench/lib.sh: what the bench scripts share. Sourced (not run), from the
# repository's root, by bench/gateway/lib.sh and bench/tasks/ab.sh.

# benchwork NAME: a work directory in $work, removed at exit unless KEEP is
# set, and $pids, the processes the script starts (append to it), stopped
# at exit.
benchwork() {
	work=$(mktemp -d "/tmp/pier-bench-$1.XXXXXX")
	pids=()
	trap benchcleanup EXIT
}
benchcleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$work"; echo "work: $work" >&2
}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user+system clock ticks of a PID
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
