#!/usr/bin/env bash
# deploy/bench/run.sh: the `make bench` measurement of pveproxy on this machine.
#
# Sets up a throwaway one-node installation under a mktemp directory, starts
# pvedaemon and pveproxy on free loopback ports, and measures, interleaved with
# a plain Go net/http HTTPS server (tools/benchserver) that returns the same
# body with the same certificates:
#   - authenticated GET /api2/json/version, keep-alive, wrk -t1 -c1 and -t2 -c32;
#   - a protected call forwarded to pvedaemon (POST /api2/json/access/ticket,
#     ticket renewal), through pveproxy and directly against pvedaemon; and a
#     cheap protected GET if the build has one;
#   - new full TLS handshakes per second without resumption (tools/handshakes;
#     wrk resumes sessions), TLS 1.3 default and TLS 1.2 RSA-2048 / ECDSA P-256;
#   - resident memory of every daemon at rest and under load.
# Writes a Markdown report to stdout and deploy/bench/out/report-<date>.md.
# Progress goes to stderr. Everything started here is stopped on exit.
#
# Environment:
#   PVENODE_BIN         directory with pvedaemon and pveproxy (required; make bench sets it)
#   BENCH_RUNS          runs per scenario and server (default 3)
#   BENCH_DURATION      wrk duration per run (default 10s)
#   BENCH_HS_DURATION   handshake run duration (default 4s)
#   BENCH_WARMUP        wrk warm-up per server before measuring (default 2s)
#   BENCH_PROTECTED_GET protected GET path to measure (default: first of a few
#                       cheap protected PVE GETs that this build answers)
#   BENCH_OTHER_DAEMONS 1 (default) also starts pvestatd and pvescheduler briefly
#                       for their resident memory at rest; 0 skips that
#   BENCH_KEEP          1 keeps the work directory (logs, raw wrk output)
#   BENCH_OUT           report directory (default deploy/bench/out)
#   GO                  go command used to build the two tools (default go)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=deploy/bench/lib.sh
. "$HERE/lib.sh"

: "${PVENODE_BIN:?set PVENODE_BIN to the directory of the built daemons (make bench does)}"
RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION:-10s}
HS_DUR=${BENCH_HS_DURATION:-4s}
WARM=${BENCH_WARMUP:-2s}
KEEP=${BENCH_KEEP:-0}
OTHER_DAEMONS=${BENCH_OTHER_DAEMONS:-1}
OUT_DIR=${BENCH_OUT:-$HERE/out}
GO=${GO:-go}
ADMIN=admin@pve
HS_MODES=(tls13 tls12-rsa tls12-ecdsa)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- preflight ---------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root: pveproxy drops privileges to www-data"
for c in wrk curl jq ss pgrep awk timeout "$GO"; do
	command -v "$c" >/dev/null || die "$c not found (wrk: apt-get install wrk)"
done
for d in pvedaemon pveproxy; do
	[[ -x $PVENODE_BIN/$d ]] || die "$PVENODE_BIN/$d missing; run make build"
done
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || die "BENCH_RUNS=$RUNS: want 1-99"

WORK=$(mktemp -d /tmp/pvenode-bench.XXXXXX)
chmod 755 "$WORK" # pveproxy runs as www-data below it
PREFIX=$WORK/root
mkdir -p "$PREFIX" "$WORK/logs" "$WORK/tools" "$WORK/wrk"
: >"$WORK/results.tsv"
: >"$WORK/hs.tsv"
: >"$WORK/rss.tsv"

declare -A PID=()  # name -> pid of what we started
STARTED=()         # daemons started with their start verb, in order
BS_PID=""          # benchserver
SAMPLER_PID=""     # background memory sampler
SECONDS=0
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $SAMPLER_PID ]]; then
		kill "$SAMPLER_PID" 2>/dev/null || true
		wait "$SAMPLER_PID" 2>/dev/null || true
	fi
	if [[ -n $BS_PID ]]; then
		kill "$BS_PID" 2>/dev/null || true
		wait "$BS_PID" 2>/dev/null || true
	fi
	while ((${#STARTED[@]})); do
		stop_daemon "${STARTED[-1]}"
	done
	if [[ $KEEP == 1 ]]; then
		log "work directory kept: $WORK"
	else
		[[ $rc == 0 ]] || log "failed; BENCH_KEEP=1 keeps the logs in the work directory"
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pid_of DAEMON PORT: pid from the daemon's pid file, else the listener of PORT.
pid_of() {
	local f p=""
	case $1 in
	pveproxy | spiceproxy) f=$PREFIX/run/pveproxy/$1.pid ;;
	*) f=$PREFIX/run/$1.pid ;;
	esac
	[[ -r $f ]] && p=$(head -n1 "$f" | tr -dc 0-9)
	if [[ -z $p || ! -d /proc/$p ]] && [[ -n ${2:-} ]]; then
		p=$(ss -Htlnp "sport = :$2" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
	fi
	[[ -n $p && -d /proc/$p ]] || return 1
	echo "$p"
}

# start_daemon NAME ARGS...: run NAME start --prefix PREFIX ARGS and record its pid.
start_daemon() {
	local d=$1
	shift
	STARTED+=("$d")
	if ! timeout 60 "$PVENODE_BIN/$d" start --prefix "$PREFIX" "$@" >>"$WORK/logs/$d.log" 2>&1; then
		log "$d start failed:"
		tail -n 20 "$WORK/logs/$d.log" >&2
		return 1
	fi
}

# stop_daemon NAME: NAME stop --prefix PREFIX; SIGKILL if its process is still
# there 10 s later. Removes NAME from STARTED.
stop_daemon() {
	local d=$1 p i x rest=()
	timeout 40 "$PVENODE_BIN/$d" stop --prefix "$PREFIX" >>"$WORK/logs/$d.log" 2>&1 ||
		log "$d stop failed (see $WORK/logs/$d.log)"
	p=${PID[$d]:-}
	for ((i = 0; i < 50; i++)); do
		if [[ -z $p ]] || ! kill -0 "$p" 2>/dev/null; then
			break
		fi
		sleep 0.2
	done
	if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
		log "$d (pid $p) still running 10 s after stop; sending SIGKILL"
		kill -KILL "$p" 2>/dev/null || true
	fi
	for x in "${STARTED[@]}"; do
		[[ $x == "$d" ]] || rest+=("$x")
	done
	STARTED=("${rest[@]}")
}

# sampler PHASE STOPFILE: append "PHASE name kB" lines every half second
# until STOPFILE exists (at most 20 minutes).
sampler() {
	local phase=$1 stop=$2 i n kb tick
	# A pipe nobody writes to: read -t on it waits without a sleep process.
	exec {tick}<> <(:)
	for ((i = 0; i < 2400; i++)); do
		[[ -e $stop ]] && break
		for n in pveproxy pvedaemon benchserver; do
			if [[ -n ${PID[$n]:-} ]]; then
				rss_kb_into kb "${PID[$n]}"
				printf '%s\t%s\t%s\n' "$phase" "$n" "$kb"
			fi
		done
		read -rt 0.5 -u "$tick" _ || true
	done >>"$WORK/rss.tsv"
	exec {tick}<&-
}

start_sampler() {
	rm -f "$WORK/sampler.stop"
	sampler "$1" "$WORK/sampler.stop" &
	SAMPLER_PID=$!
}

stop_sampler() {
	touch "$WORK/sampler.stop"
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=""
}

# snapshot PHASE NAME...: record the resident memory of the named processes now.
snapshot() {
	local phase=$1 n
	shift
	for n in "$@"; do
		[[ -n ${PID[$n]:-} ]] && printf '%s\t%s\t%s\n' "$phase" "$n" "$(rss_kb "${PID[$n]}")" >>"$WORK/rss.tsv"
	done
	return 0
}

# run_wrk SCENARIO TARGET RUN CPU-PIDS WRK-ARGS...: one measured wrk run; CPU
# time of CPU-PIDS (space separated) is charged per request.
run_wrk() {
	local scen=$1 target=$2 run=$3 pids=$4 out c0 c1 rps p50 p99 reqs non2xx errs cpu note=""
	shift 4
	start_sampler "$scen"
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $pids)
	out=$(wrk "$@" 2>&1) || log "wrk exited non-zero for $scen $target"
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $pids)
	stop_sampler
	printf '%s\n' "$out" >"$WORK/wrk/$scen-$target-$run.txt"
	read -r rps p50 p99 reqs non2xx errs < <(parse_wrk <<<"$out")
	cpu=$(awk -v t=$((c1 - c0)) -v n="$reqs" 'BEGIN { if (n > 0) printf "%.1f", t * 10000 / n; else print "-" }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$target" "$run" "$rps" "$p50" "$p99" \
		"$reqs" "$non2xx" "$errs" "$cpu" >>"$WORK/results.tsv"
	((non2xx + errs > 0)) && note=" ($non2xx non-2xx, $errs socket errors)"
	log "$scen $target #$run: $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu us/req$note"
}

# run_hs MODE TARGET RUN ADDR CPU-PIDS: one measured handshake run.
run_hs() {
	local mode=$1 target=$2 run=$3 addr=$4 pids=$5 line
	start_sampler handshakes
	line=$("$WORK/tools/handshakes" -addr "$addr" -ca "$PREFIX/etc/pve/pve-root-ca.pem" -mode "$mode" \
		-conns 32 -duration "$HS_DUR" -pid "${pids// /,}" 2>&1) || log "handshakes failed for $mode $target: $line"
	stop_sampler
	printf '%s\n' "$line" >"$WORK/wrk/hs-$mode-$target-$run.txt"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$target" "$run" \
		"$(kv rate <<<"$line")" "$(kv p50_ms <<<"$line")" "$(kv p99_ms <<<"$line")" \
		"$(kv cert <<<"$line")" "$(kv curve <<<"$line")" "$(kv version <<<"$line")" \
		"$(kv server_cpu_ms <<<"$line")" "$(kv failed <<<"$line")" "$(kv ok <<<"$line")" >>"$WORK/hs.tsv"
	log "handshakes $mode $target #$run: $line"
}

# order RUN A B: "A B" on odd runs and "B A" on even ones.
order() { if (($1 % 2)); then echo "$2 $3"; else echo "$3 $2"; fi; }

# --- build the tools, set up, start --------------------------------------------
log "building tools/benchserver and tools/handshakes"
(cd "$REPO" && "$GO" build -trimpath -o "$WORK/tools/" ./tools/benchserver ./tools/handshakes) ||
	die "building the bench tools failed"

USED_PORTS=""
DPORT=$(free_port) && USED_PORTS+=" $DPORT"
PPORT=$(free_port) && USED_PORTS+=" $PPORT"
BPORT=$(free_port) && USED_PORTS+=" $BPORT"
[[ -n $DPORT && -n $PPORT && -n $BPORT ]] || die "no free ports found"
PROXY=https://127.0.0.1:$PPORT
DAEMON=http://127.0.0.1:$DPORT
BARE=https://127.0.0.1:$BPORT

log "setting up a one-node installation under $PREFIX"
setup_out=$("$PVENODE_BIN/pvedaemon" setup --prefix "$PREFIX" --admin "$ADMIN" 2>&1) ||
	die "pvedaemon setup failed: $setup_out"
pw=$(sed -n 's/^password: *//p' <<<"$setup_out" | head -n1)
if [[ -n $pw ]]; then
	(umask 077 && printf '%s\n' "$pw" >"$WORK/admin-password")
fi
[[ -s $WORK/admin-password ]] || die "pvedaemon setup printed no password: $setup_out"
PW=$(<"$WORK/admin-password")

NODE=$(sed -n 's/^node: *//p' <<<"$setup_out" | head -n1)
[[ -n $NODE && -d $PREFIX/etc/pve/nodes/$NODE ]] || NODE=""
for n in "$PREFIX"/etc/pve/nodes/*/; do
	[[ -n $NODE ]] && break
	[[ -d $n ]] && NODE=$(basename "$n") && break
done
[[ -n $NODE ]] || die "no node directory under $PREFIX/etc/pve/nodes"
NODEDIR=$PREFIX/etc/pve/nodes/$NODE
# The certificates pveproxy serves: custom ones take precedence, as in PVE.
CERT=$NODEDIR/pve-ssl.pem KEY=$NODEDIR/pve-ssl.key
[[ -f $NODEDIR/pveproxy-ssl.pem ]] && CERT=$NODEDIR/pveproxy-ssl.pem KEY=$NODEDIR/pveproxy-ssl.key
ECERT=$NODEDIR/pve-ssl-ecdsa.pem EKEY=$NODEDIR/pve-ssl-ecdsa.key
[[ -f $NODEDIR/pveproxy-ssl-ecdsa.pem ]] && ECERT=$NODEDIR/pveproxy-ssl-ecdsa.pem EKEY=$NODEDIR/pveproxy-ssl-ecdsa.key
[[ -f $CERT && -f $KEY ]] || die "certificate $CERT or key $KEY missing"

log "starting pvedaemon on 127.0.0.1:$DPORT and pveproxy on port $PPORT"
start_daemon pvedaemon --listen "127.0.0.1:$DPORT" || die "pvedaemon did not start"
PID[pvedaemon]=$(pid_of pvedaemon "$DPORT") || die "pvedaemon pid not found"
start_daemon pveproxy --port "$PPORT" --daemon-addr "127.0.0.1:$DPORT" || die "pveproxy did not start"
PID[pveproxy]=$(pid_of pveproxy "$PPORT") || die "pveproxy pid not found"

code=000
for ((i = 0; i < 50; i++)); do
	code=$(curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -o /dev/null -w '%{http_code}' "$PROXY/api2/json/version" || true)
	[[ $code != 000 ]] && break
	sleep 0.2
done
[[ $code == 401 ]] || die "pveproxy answered unauthenticated GET /version with $code, want 401"
sleep 1
snapshot start pvedaemon pveproxy

# --- log in, fetch the body, start the bare server --------------------------------
login=$(curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -d "username=$ADMIN" --data-urlencode "password=$PW" "$PROXY/api2/json/access/ticket")
TICKET=$(jq -r '.data.ticket // empty' <<<"$login" 2>/dev/null || true)
[[ -n $TICKET ]] || die "login failed: $login"
TICKET_ENC=$(jq -rn --arg t "$TICKET" '$t | @uri')
COOKIE="PVEAuthCookie=$TICKET_ENC"

code=$(curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -H "Cookie: $COOKIE" -D "$WORK/version.headers" -o "$WORK/version.json" \
	-w '%{http_code}' "$PROXY/api2/json/version")
[[ $code == 200 ]] || die "authenticated GET /version: HTTP $code: $(cat "$WORK/version.json")"

# Same headers as pveproxy's answer, minus those net/http sets itself.
CTYPE=application/json
HDR_ARGS=()
while IFS= read -r line; do
	line=${line%$'\r'}
	[[ $line == *:* ]] || continue
	name=${line%%:*} value=${line#*:}
	value=${value# }
	case ${name,,} in
	content-type) CTYPE=$value ;;
	date | content-length | connection | keep-alive | transfer-encoding) ;;
	*) HDR_ARGS+=(-header "$name: $value") ;;
	esac
done <"$WORK/version.headers"

BS_ARGS=(-listen "127.0.0.1:$BPORT" -cert "$CERT" -key "$KEY" -body-file "$WORK/version.json"
	-content-type "$CTYPE" "${HDR_ARGS[@]}")
[[ -f $ECERT && -f $EKEY ]] && BS_ARGS+=(-ecdsa-cert "$ECERT" -ecdsa-key "$EKEY")
"$WORK/tools/benchserver" "${BS_ARGS[@]}" >"$WORK/logs/benchserver.log" 2>&1 &
BS_PID=$!
PID[benchserver]=$BS_PID
for ((i = 0; i < 50; i++)); do
	grep -q '^listening on' "$WORK/logs/benchserver.log" && break
	kill -0 "$BS_PID" 2>/dev/null || die "benchserver exited: $(cat "$WORK/logs/benchserver.log")"
	sleep 0.1
done
curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -o "$WORK/bare.json" "$BARE/api2/json/version" || die "bare server does not answer"
cmp -s "$WORK/version.json" "$WORK/bare.json" || die "bare server body differs from pveproxy's"
sleep 1
snapshot login pvedaemon pveproxy benchserver

# --- protected calls: check they work before measuring them ----------------------
write_renew_lua() { # FILE [direct]
	{
		echo 'wrk.method = "POST"'
		printf 'wrk.body = "username=%s&password=%s"\n' "${ADMIN/@/%40}" "$TICKET_ENC"
		echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
		if [[ ${2:-} == direct ]]; then
			echo 'wrk.headers["PVEDisableProxy"] = "true"'
			echo 'wrk.headers["PVEClientIP"] = "127.0.0.1"'
		fi
	} >"$1"
}
write_renew_lua "$WORK/renew-proxy.lua"
write_renew_lua "$WORK/renew-direct.lua" direct
DIRECT_HDRS=(-H "PVEDisableProxy: true" -H "PVEClientIP: 127.0.0.1")

RENEW_PROXY=0 RENEW_DIRECT=0
RENEW_NOTE=""
renew() { # URL [curl args]
	local url=$1
	shift
	curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -o "$WORK/renew.out" -w '%{http_code}' "$@" -d "username=$ADMIN" \
		--data-urlencode "password=$TICKET" "$url/api2/json/access/ticket" || true
}
code=$(renew "$PROXY")
if [[ $code == 200 ]] && jq -e '.data.ticket' "$WORK/renew.out" >/dev/null 2>&1; then
	RENEW_PROXY=1
else
	RENEW_NOTE+="ticket renewal through pveproxy answered HTTP $code ($(head -c 200 "$WORK/renew.out")). "
fi
code=$(renew "$DAEMON" "${DIRECT_HDRS[@]}")
if [[ $code == 200 ]] && jq -e '.data.ticket' "$WORK/renew.out" >/dev/null 2>&1; then
	RENEW_DIRECT=1
else
	RENEW_NOTE+="ticket renewal directly at pvedaemon answered HTTP $code ($(head -c 200 "$WORK/renew.out")). "
fi

PGET=""
if [[ -n ${BENCH_PROTECTED_GET:-} ]]; then
	candidates=("$BENCH_PROTECTED_GET")
else
	# Protected in PVE's schema and cheap on an empty node; the first one
	# answered is measured (cluster/status first, so runs stay comparable
	# as the build answers more of them).
	candidates=(/api2/json/cluster/status /api2/json/access/users "/api2/json/nodes/$NODE/qemu"
		"/api2/json/nodes/$NODE/lxc" "/api2/json/nodes/$NODE/hosts")
fi
for p in "${candidates[@]}"; do
	code=$(curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$PROXY$p" || true)
	if [[ $code == 200 ]]; then
		dcode=$(curl -s --cacert "$PREFIX/etc/pve/pve-root-ca.pem" -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "${DIRECT_HDRS[@]}" "$DAEMON$p" || true)
		[[ $dcode == 200 ]] && PGET=$p && break
	fi
done
if [[ -n $PGET ]]; then
	log "cheap protected GET to measure: $PGET"
else
	log "no cheap protected GET answers 200 in this build"
fi

# --- other daemons: memory at rest only ----------------------------------------------
OTHER_NOTE=""
if [[ $OTHER_DAEMONS == 1 ]]; then
	for d in pvestatd pvescheduler; do
		if [[ ! -x $PVENODE_BIN/$d ]]; then
			OTHER_NOTE+="$d: binary missing. "
			continue
		fi
		if start_daemon "$d" && PID[$d]=$(pid_of "$d"); then
			sleep 2
			snapshot start "$d"
		else
			OTHER_NOTE+="$d did not start: $(tail -n1 "$WORK/logs/$d.log"). "
		fi
		stop_daemon "$d"
		unset "PID[$d]"
	done
fi

# --- warm-up ---------------------------------------------------------------------------
log "warming up ($WARM per server)"
wrk -t2 -c32 -d"$WARM" -H "Cookie: $COOKIE" "$PROXY/api2/json/version" >/dev/null 2>&1 || true
wrk -t2 -c32 -d"$WARM" -H "Cookie: $COOKIE" "$BARE/api2/json/version" >/dev/null 2>&1 || true
((RENEW_PROXY)) && { wrk -t2 -c32 -d"$WARM" -s "$WORK/renew-proxy.lua" "$PROXY/api2/json/access/ticket" >/dev/null 2>&1 || true; }

# --- measurements ------------------------------------------------------------------------
PP=${PID[pveproxy]} PD=${PID[pvedaemon]} PB=${PID[benchserver]}
target_url() { case $1 in pveproxy) echo "$PROXY" ;; bare) echo "$BARE" ;; pvedaemon) echo "$DAEMON" ;; esac }
target_pids() { case $1 in pveproxy) echo "$PP" ;; bare) echo "$PB" ;; pvedaemon) echo "$PD" ;; esac }

for conns in 1 32; do
	threads=$((conns == 1 ? 1 : 2))
	for ((r = 1; r <= RUNS; r++)); do
		for t in $(order "$r" pveproxy bare); do
			run_wrk "version-c$conns" "$t" "$r" "$(target_pids "$t")" \
				-t"$threads" -c"$conns" -d"$DUR" --latency -H "Cookie: $COOKIE" "$(target_url "$t")/api2/json/version"
		done
	done
done

if ((RENEW_PROXY || RENEW_DIRECT)); then
	for ((r = 1; r <= RUNS; r++)); do
		for t in $(order "$r" pveproxy pvedaemon); do
			if [[ $t == pveproxy ]]; then
				((RENEW_PROXY)) || continue
				run_wrk renew-c32 pveproxy "$r" "$PP $PD" -t2 -c32 -d"$DUR" --latency \
					-s "$WORK/renew-proxy.lua" "$PROXY/api2/json/access/ticket"
			else
				((RENEW_DIRECT)) || continue
				run_wrk renew-c32 pvedaemon "$r" "$PD" -t2 -c32 -d"$DUR" --latency \
					-s "$WORK/renew-direct.lua" "$DAEMON/api2/json/access/ticket"
			fi
		done
	done
fi

if [[ -n $PGET ]]; then
	for ((r = 1; r <= RUNS; r++)); do
		for t in $(order "$r" pveproxy pvedaemon); do
			if [[ $t == pveproxy ]]; then
				run_wrk pget-c32 pveproxy "$r" "$PP $PD" -t2 -c32 -d"$DUR" --latency \
					-H "Cookie: $COOKIE" "$PROXY$PGET"
			else
				run_wrk pget-c32 pvedaemon "$r" "$PD" -t2 -c32 -d"$DUR" --latency \
					-H "Cookie: $COOKIE" "${DIRECT_HDRS[@]}" "$DAEMON$PGET"
			fi
		done
	done
fi

for mode in "${HS_MODES[@]}"; do
	for ((r = 1; r <= RUNS; r++)); do
		for t in $(order "$r" pveproxy bare); do
			if [[ $t == pveproxy ]]; then
				run_hs "$mode" pveproxy "$r" "127.0.0.1:$PPORT" "$PP"
			else
				run_hs "$mode" bare "$r" "127.0.0.1:$BPORT" "$PB"
			fi
		done
	done
done

log "idle 5 s, then memory after load"
sleep 5
snapshot after pvedaemon pveproxy benchserver

# --- report ------------------------------------------------------------------------------
vals() { awk -F'\t' -v s="$1" -v t="$2" -v f="$3" '$1 == s && $2 == t { print $f }' "$WORK/results.tsv"; }
med() { vals "$@" | median; }
hsvals() { awk -F'\t' -v s="$1" -v t="$2" -v f="$3" '$1 == s && $2 == t { print $f }' "$WORK/hs.tsv"; }
hsmed() { hsvals "$@" | grep -v '^-$' | median; }
fmt0() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.0f", v }'; }
fmt1() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.1f", v }'; }
fmt2() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.2f", v }'; }
fmt3() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.3f", v }'; }
runs_list() { vals "$1" "$2" 4 | awk '{ printf "%s%.0f", (NR > 1 ? " / " : ""), $1 }'; }
failures() { awk -F'\t' -v s="$1" -v t="$2" '$1 == s && $2 == t { n += $8 + $9 } END { print n + 0 }' "$WORK/results.tsv"; }
rss_of() { # PHASE NAME -> max kB or -
	awk -F'\t' -v p="$1" -v n="$2" '$1 == p && $2 == n { if ($3 > m) m = $3; f = 1 } END { print (f ? m : "-") }' "$WORK/rss.tsv"
}
pass() { if [[ $1 == 1 ]]; then echo PASS; elif [[ $1 == 0 ]]; then echo FAIL; else echo "n/a"; fi; }
cmp_ok() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
	if (a == "-" || b == "-") { print "-"; exit }
	if (op == ">=") print (a + 0 >= b + 0) ? 1 : 0; else if (op == "<") print (a + 0 < b + 0) ? 1 : 0; else print (a + 0 > b + 0) ? 1 : 0 }'; }

wrk_row() { # LABEL SCEN TARGET BASE-TARGET
	local label=$1 s=$2 t=$3 base=$4 ratio_s="-"
	[[ -n $base ]] && ratio_s=$(ratio "$(med "$s" "$t" 4)" "$(med "$s" "$base" 4)")
	[[ $t == "$base" ]] && ratio_s="1.00"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(runs_list "$s" "$t")" \
		"$(fmt0 "$(med "$s" "$t" 4)")" "$(fmt2 "$(med "$s" "$t" 5)")" "$(fmt2 "$(med "$s" "$t" 6)")" \
		"$(fmt1 "$(med "$s" "$t" 10)")" "$(failures "$s" "$t")" "$ratio_s"
}

report() {
	local cpu kernel gover wrkver commit
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	kernel=$(uname -r)
	gover=$("$GO" version | awk '{ print $3 }')
	wrkver=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }') # -v exits 1
	commit=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	git -C "$REPO" diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"

	local v32p v32b v1p v1b
	v32p=$(med version-c32 pveproxy 4) v32b=$(med version-c32 bare 4)
	v1p=$(med version-c1 pveproxy 4) v1b=$(med version-c1 bare 4)

	cat <<EOF
# pveproxy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')

Command: \`make bench\` (runs \`PVENODE_BIN=\$PWD/bin deploy/bench/run.sh\` after \`make build\`) with
BENCH_RUNS=$RUNS BENCH_DURATION=$DUR BENCH_HS_DURATION=$HS_DUR BENCH_WARMUP=$WARM; took ${SECONDS}s.

| machine | |
|---|---|
| CPUs (nproc) | $(nproc) |
| CPU model | ${cpu:-unknown} |
| kernel | $kernel |
| Go | $gover |
| wrk | $wrkver |
| commit | $commit |
| load average (1/5/15 min) at start, at end | $LOAD_BEFORE; $(cut -d' ' -f1-3 /proc/loadavg) |

Everything runs on this machine over 127.0.0.1: the load generator (wrk or
tools/handshakes) shares the $(nproc) CPUs with the servers, so absolute rates are
lower than with a separate client; the ratio to the bare server, measured in
the same run and interleaved (alternating order), and the server CPU time per
request are the comparable figures; a load average above about 0.5 at the
start means other work shared the CPUs and the rates are noisy. Each cell is the median of $RUNS runs;
p50/p99 are wrk's latency distribution (client side). "Server CPU" is
utime+stime of the server processes (pveproxy, plus pvedaemon where the call is
forwarded) during the run divided by the requests, from /proc (10 ms ticks).
The bare server is tools/benchserver: Go net/http, HTTP/1.1 only, keep-alive,
the same certificates and the same body ($(wc -c <"$WORK/version.json") bytes) and headers as
pveproxy's answer to GET /api2/json/version.

## Authenticated GET /api2/json/version (TLS, keep-alive)

| server | runs (req/s) | median req/s | p50 ms | p99 ms | server CPU µs/req | errors | ratio to bare |
|---|---|---|---|---|---|---|---|
EOF
	wrk_row "pveproxy, 1 conn (\`wrk -t1 -c1\`)" version-c1 pveproxy bare
	wrk_row "bare net/http, 1 conn" version-c1 bare bare
	wrk_row "pveproxy, 32 conns (\`wrk -t2 -c32\`)" version-c32 pveproxy bare
	wrk_row "bare net/http, 32 conns" version-c32 bare bare
	echo
	echo "wrk: \`wrk -tT -cC -d$DUR --latency -H 'Cookie: PVEAuthCookie=<ticket>' https://127.0.0.1:PORT/api2/json/version\`"
	echo

	echo "## Protected calls forwarded to pvedaemon"
	echo
	if ((RENEW_PROXY || RENEW_DIRECT)) || [[ -n $PGET ]]; then
		echo "| call | runs (req/s) | median req/s | p50 ms | p99 ms | server CPU µs/req | errors | ratio to direct |"
		echo "|---|---|---|---|---|---|---|---|"
		if ((RENEW_PROXY || RENEW_DIRECT)); then
			wrk_row "POST /access/ticket (renewal) via pveproxy → pvedaemon, 32 conns" renew-c32 pveproxy pvedaemon
			wrk_row "POST /access/ticket (renewal) directly at pvedaemon (loopback HTTP), 32 conns" renew-c32 pvedaemon pvedaemon
		fi
		if [[ -n $PGET ]]; then
			wrk_row "GET ${PGET#/api2/json} via pveproxy → pvedaemon, 32 conns" pget-c32 pveproxy pvedaemon
			wrk_row "GET ${PGET#/api2/json} directly at pvedaemon, 32 conns" pget-c32 pvedaemon pvedaemon
		fi
		echo
		echo "Ticket renewal (username=$ADMIN, password=<ticket>) is protected and runs in pvedaemon;"
		echo "it includes an RSA-2048 signature per call, so it measures signing more than forwarding."
		echo "Direct calls carry the headers pveproxy adds (PVEDisableProxy, PVEClientIP); server CPU"
		echo "counts pveproxy and pvedaemon for forwarded calls, pvedaemon alone for direct ones."
		echo "wrk: \`wrk -t2 -c32 -d$DUR --latency -s renew.lua https://127.0.0.1:PORT/api2/json/access/ticket\`"
		echo "(renew.lua sets wrk.method = \"POST\", the form body and its Content-Type)."
	fi
	[[ -n $RENEW_NOTE ]] && echo && echo "Not measured: $RENEW_NOTE"
	[[ -z $PGET ]] && echo && echo "No cheap protected GET (such as GET /access/users) answers 200 in this build; only ticket renewal was measured."
	echo

	cat <<EOF
## New full TLS handshakes (no session resumption)

\`tools/handshakes -addr 127.0.0.1:PORT -ca pve-root-ca.pem -mode MODE -conns 32 -duration $HS_DUR\`: 32 workers, each
dials, completes a full handshake (no session cache, no tickets offered), closes.
Latency is TCP connect plus handshake as seen by the client. TLS 1.3 uses Go's
default key exchange list (X25519MLKEM768 first, as current browsers);
TLS 1.2 modes offer only ECDHE-RSA or only ECDHE-ECDSA suites, which forces the
RSA-2048 or the ECDSA P-256 certificate. Server CPU is per handshake.

| offer | server | cert | key exchange | runs (hs/s) | median hs/s | p50 ms | p99 ms | server CPU ms/hs | failed | ratio to bare |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
	local m t
	for m in "${HS_MODES[@]}"; do
		for t in pveproxy bare; do
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$m" \
				"$([[ $t == bare ]] && echo "bare net/http" || echo pveproxy)" \
				"$(hsvals "$m" "$t" 7 | sort -u | paste -sd/)" "$(hsvals "$m" "$t" 8 | sort -u | paste -sd/)" \
				"$(hsvals "$m" "$t" 4 | awk '{ printf "%s%.0f", (NR > 1 ? " / " : ""), $1 }')" \
				"$(fmt0 "$(hsmed "$m" "$t" 4)")" "$(fmt2 "$(hsmed "$m" "$t" 5)")" "$(fmt2 "$(hsmed "$m" "$t" 6)")" \
				"$(fmt3 "$(hsmed "$m" "$t" 10)")" "$(hsvals "$m" "$t" 11 | awk '{ n += $1 } END { print n + 0 }')" \
				"$(ratio "$(hsmed "$m" "$t" 4)" "$(hsmed "$m" bare 4)")"
		done
	done
	echo

	cat <<EOF
## Resident memory (VmRSS, MB; processes and their children)

"start": after start, before any request; "login": after login and one GET;
under load: the highest of the samples taken every 0.5 s during the runs; "after": 5 s after the last run.

| process | start | login | load: GET c1 | load: GET c32 | load: renewal | load: protected GET | load: handshakes | after |
|---|---|---|---|---|---|---|---|---|
EOF
	local n
	for n in pveproxy pvedaemon benchserver pvestatd pvescheduler; do
		[[ $(rss_of start "$n") == - && $(rss_of login "$n") == - ]] && continue
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
			"$([[ $n == benchserver ]] && echo "bare net/http (reference)" || echo "$n")" \
			"$(mb "$(rss_of start "$n")")" "$(mb "$(rss_of login "$n")")" \
			"$(mb "$(rss_of version-c1 "$n")")" "$(mb "$(rss_of version-c32 "$n")")" \
			"$(mb "$(rss_of renew-c32 "$n")")" "$(mb "$(rss_of pget-c32 "$n")")" \
			"$(mb "$(rss_of handshakes "$n")")" "$(mb "$(rss_of after "$n")")"
	done
	[[ -n $OTHER_NOTE ]] && echo && echo "$OTHER_NOTE"
	echo "pvestatd and pvescheduler (if listed) were started only for their memory at rest. spiceproxy is not measured."
	echo

	local r32 p99 rssp rssd half
	r32=$(ratio "$v32p" "$v32b")
	p99=$(med version-c32 pveproxy 6)
	rssp=$(rss_of login pveproxy) rssd=$(rss_of login pvedaemon)
	half=$(awk -v v="$v32p" 'BEGIN { if (v == "-") print "-"; else print v / 2 }')
	cat <<EOF
## Targets

| target | measured | result |
|---|---|---|
| pveproxy authenticated GET ≥ 80 % of bare net/http (wrk -t2 -c32) | $r32 ($(fmt0 "$v32p") vs $(fmt0 "$v32b") req/s) | $(pass "$(cmp_ok "$r32" ">=" 0.80)") |
| p99 < 5 ms (pveproxy, wrk -t2 -c32) | $(fmt2 "$p99") ms | $(pass "$(cmp_ok "$p99" "<" 5)") |
| pveproxy < 30 MB RSS at rest | $(mb "$rssp") MB | $(pass "$(cmp_ok "$(mb "$rssp")" "<" 30)") |
| pvedaemon < 30 MB RSS at rest | $(mb "$rssd") MB | $(pass "$(cmp_ok "$(mb "$rssd")" "<" 30)") |
EOF
	local fwd
	if ((RENEW_PROXY)); then
		fwd=$(med renew-c32 pveproxy 4)
		echo "| protected call via pvedaemon > half the GET rate: ticket renewal (RSA-2048 signature per call) | $(fmt0 "$fwd") req/s vs $(fmt0 "$half") | $(pass "$(cmp_ok "$fwd" ">" "$half")") |"
	fi
	if [[ -n $PGET ]]; then
		fwd=$(med pget-c32 pveproxy 4)
		echo "| protected call via pvedaemon > half the GET rate: GET ${PGET#/api2/json} | $(fmt0 "$fwd") req/s vs $(fmt0 "$half") | $(pass "$(cmp_ok "$fwd" ">" "$half")") |"
	fi
	cat <<EOF

Single connection: pveproxy $(fmt0 "$v1p") req/s vs bare $(fmt0 "$v1b") req/s (ratio $(ratio "$v1p" "$v1b")).
EOF
}

mkdir -p "$OUT_DIR"
REPORT=$OUT_DIR/report-$(date -u +%Y%m%d-%H%M%S).md
report >"$REPORT"
cat "$REPORT"
log "report written to $REPORT"
