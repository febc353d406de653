# Helpers of deploy/bench/run.sh: parsing load-generator output, process
# accounting from /proc, and small statistics. Sourced, not executed.
# shellcheck shell=bash

# parse_wrk: read `wrk --latency` output on stdin, print one line
# "req_per_s p50_ms p99_ms requests non2xx socket_errors" (0 for what is absent).
parse_wrk() {
	awk '
	function msec(v) {
		if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
		if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
		if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
		if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
		return v + 0
	}
	$1 == "50%"            { p50 = msec($2) }
	$1 == "99%"            { p99 = msec($2) }
	/^Requests\/sec:/      { rps = $2 }
	/ requests in /        { reqs = $1 }
	/Non-2xx or 3xx/       { non2xx = $NF }
	/Socket errors:/       { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
	END { printf "%.1f %.3f %.3f %d %d %d\n", rps, p50, p99, reqs, non2xx, errs }'
}

# kv KEY: print the value of KEY from a "k=v k=v" line on stdin ("-" if absent).
kv() {
	awk -v k="$1" '{
		for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); found = 1; exit }
	} END { if (!found) print "-" }'
}

# median: the median of the numbers on stdin, one per line ("-" if none).
median() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# The helpers below start no processes (bash builtins and /proc only): the
# memory sampler runs while wrk measures latency, and on a 2-CPU machine a
# fork and exec per sample (pgrep scans all of /proc) showed up in the
# servers' p99.

# collect_tree PID: appends PID and all its descendants to the array TREE.
collect_tree() {
	local p=$1 t c kids
	[[ -d /proc/$p ]] || return 0
	TREE+=("$p")
	for t in /proc/"$p"/task/*/children; do
		kids=()
		read -r -a kids <"$t" 2>/dev/null || true
		for c in "${kids[@]}"; do
			collect_tree "$c"
		done
	done
}

# rss_kb_into VAR PID...: sets VAR to the summed VmRSS (kB) of the given
# processes and their descendants.
rss_kb_into() {
	local -n out=$1
	local p sum=0 k v _
	shift
	TREE=()
	for p in "$@"; do collect_tree "$p"; done
	for p in "${TREE[@]}"; do
		while read -r k v _; do
			if [[ $k == VmRSS: ]]; then
				sum=$((sum + v))
				break
			fi
		done <"/proc/$p/status" 2>/dev/null
	done
	out=$sum
}

# rss_kb PID...: rss_kb_into, printed.
rss_kb() {
	local r
	rss_kb_into r "$@"
	echo "$r"
}

# cpu_ticks PID...: summed utime+stime (1/100 s) of the processes and their
# descendants.
cpu_ticks() {
	local p sum=0 line rest
	local -a f
	TREE=()
	for p in "$@"; do collect_tree "$p"; done
	for p in "${TREE[@]}"; do
		read -r line <"/proc/$p/stat" 2>/dev/null || continue
		# Fields after the parenthesised command name: utime is the 12th, stime the 13th.
		rest=${line##*) }
		read -r -a f <<<"$rest"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# mb KB: kilobytes as megabytes with one decimal ("-" passes through).
mb() {
	if [[ $1 == - || -z $1 ]]; then echo "-"; else awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; fi
}

# ratio A B: A/B with two decimals, "-" when either is missing or B is 0.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

# free_port: a TCP port in 20000-29999 nobody listens on or is connected
# from, not among the words of $USED_PORTS.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 10000))
		[[ " ${USED_PORTS:-} " == *" $p "* ]] && continue
		if [[ -z $(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null) ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
