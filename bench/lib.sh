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

# stealwatch: from now on, the share of CPU time the hypervisor took from
# this machine (steal, /proc/stat) is sampled every 10 s into $work/steal,
# for stealsummary. On a shared virtual machine a run under steal says
# less than one without: the scripts print it next to their figures.
stealwatch() {
	read -r -a stealfrom </proc/stat
	(
		read -r -a prev </proc/stat
		while sleep 10; do
			read -r -a cur </proc/stat
			echo "${prev[*]} ${cur[*]}" | awk '{t = 0; for (i = 2; i <= 9; i++) t += $(i + 11) - $i; if (t > 0) printf "%d\n", 100 * ($(20) - $9) / t}'
			prev=("${cur[@]}")
		done
	) >"$work/steal" &
	pids+=($!)
}

# stealsummary: one line, the steal since stealwatch and the range of its
# 10 s samples.
stealsummary() {
	local now
	read -r -a now </proc/stat
	echo "${stealfrom[*]} ${now[*]}" | awk -v f="$work/steal" '{
		t = 0; for (i = 2; i <= 9; i++) t += $(i + 11) - $i
		lo = ""; hi = ""; n = 0
		while ((getline s < f) > 0) { n++; if (lo == "" || s + 0 < lo) lo = s + 0; if (hi == "" || s + 0 > hi) hi = s + 0 }
		printf "steal (CPU time the hypervisor took): %d%% over the run", (t > 0 ? 100 * ($(20) - $9) / t : 0)
		if (n) printf ", %d%%-%d%% in %d samples of 10 s", lo, hi, n
		print ""
	}'
}
