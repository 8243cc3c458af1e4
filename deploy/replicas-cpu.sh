#!/usr/bin/env bash
# CPU per acknowledged pass with one replica taking the load against both
# (issue 10, item 9), on the cluster `make cluster` runs. Start it with
#
#   CLUSTER_SERVE_FLAGS="--register-rate 0" make cluster
#   deploy/replicas-cpu.sh [rounds] [seconds]
#
# Set-up: bin/loadgen registers people and venues through the first replica
# and writes a wrk script of self scans (loadgen --wrk). Each round runs
# "one" (one wrk, -t2 -c64, at the first replica, or at ONE_PORT: the other stands by,
# following the log) then "both" (two wrk, -t1 -c32 each, one per replica),
# each connection waiting DELAY ms before each request (default 20) or,
# for "both", BOTH_DELAY ms (default DELAY): wrk is closed-loop, and a
# forwarded pass waits longer for its answer, so at the same delay "both"
# sends fewer passes and every process's fixed costs spread over fewer of
# them; a smaller BOTH_DELAY brings both to about the same rate, which is
# the comparison that says what a second replica costs (print the rates
# and compare). CPU is utime+stime from /proc of the two ledger processes,
# the three nats-server nodes and every PostgreSQL process (the server's
# other databases count too: run it on a quiet server). Needs wrk.
#
# Which replica is the writer and which holds the projection lease is
# chance (the first replica's log says it: "one writer: the cluster's writer
# changed", "projection lease acquired"); the script prints what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=jsonv2
rounds=${1:-3}
secs=${2:-10}
delay=${DELAY:-20}
both_delay=${BOTH_DELAY:-$delay}
one_port=${ONE_PORT:-18080} # the replica "one" loads: 18080 (ledger1) or 18081 (ledger2)
run=cluster/run
for n in ledger1 ledger2 nats1 nats2 nats3; do
	[ -f "$run/$n.pid" ] && kill -0 "$(cat "$run/$n.pid")" 2>/dev/null || {
		echo "$n is not running: start the cluster first (make cluster)" >&2
		exit 1
	}
done
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
LEDGER_TOKEN_KEY=$(cat cluster/token.key)
export LEDGER_TOKEN_KEY

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o bin/loadgen ./cmd/loadgen
bin/loadgen --url http://127.0.0.1:18080 --wrk "$work/scans.lua" --persons 2000 --venues 20 >"$work/setup.log" 2>&1 ||
	{ cat "$work/setup.log" >&2; exit 1; }
for d in "$delay" "$both_delay"; do
	{ cat "$work/scans.lua"; echo "delay = function() return $d end"; } >"$work/d$d.lua"
done

ticks() { # the CPU clock ticks of the pids given
	local t=0 p f
	for p in "$@"; do
		read -ra f <"/proc/$p/stat" || continue
		t=$((t + f[13] + f[14]))
	done
	echo "$t"
}
# requests answered 2xx in wrk's output file
answered() {
	local r b
	r=$(grep -oE '^ +[0-9]+ requests' "$1" | grep -oE '[0-9]+')
	b=$(grep -oE 'Non-2xx or 3xx responses: [0-9]+' "$1" | grep -oE '[0-9]+$' || true)
	echo $((r - ${b:-0}))
}
hz=$(getconf CLK_TCK)
l1=$(cat $run/ledger1.pid) l2=$(cat $run/ledger2.pid)
nats=($(cat $run/nats1.pid) $(cat $run/nats2.pid) $(cat $run/nats3.pid))

# measure one|both: prints "passes ledger_ticks nats_ticks pg_ticks"
measure() {
	local pg0 pg1 a0 n0 a1 n1 ok
	pg0=$(ticks $(pgrep -u postgres postgres))
	a0=$(ticks "$l1" "$l2") n0=$(ticks "${nats[@]}")
	if [ "$1" = one ]; then
		wrk -t2 -c64 -d"${secs}s" -s "$work/d$delay.lua" "http://127.0.0.1:$one_port" >"$work/a.txt" 2>&1
		ok=$(answered "$work/a.txt")
	else
		wrk -t1 -c32 -d"${secs}s" -s "$work/d$both_delay.lua" http://127.0.0.1:18080 >"$work/a.txt" 2>&1 &
		wrk -t1 -c32 -d"${secs}s" -s "$work/d$both_delay.lua" http://127.0.0.1:18081 >"$work/b.txt" 2>&1
		wait
		ok=$(($(answered "$work/a.txt") + $(answered "$work/b.txt")))
	fi
	a1=$(ticks "$l1" "$l2") n1=$(ticks "${nats[@]}")
	pg1=$(ticks $(pgrep -u postgres postgres))
	echo "$ok $((a1 - a0)) $((n1 - n0)) $((pg1 - pg0))"
}

# roles: which replica writes and which holds the lease, from their logs
# (known once a pass was recorded)
roles() {
	local r line out=""
	for r in 1 2; do
		line=$(grep -h 'writer changed' "cluster/logs/ledger$r.log" | tail -1 || true)
		if [[ $line =~ writer=([^ ]+)\ self=([^ ]+) ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then
			out+="ledger$r writes; "
		fi
		if grep -q 'projection lease acquired' "cluster/logs/ledger$r.log"; then
			out+="ledger$r holds the lease (its last lease line: $(grep -ho 'projection lease [a-z]*' "cluster/logs/ledger$r.log" | tail -1)); "
		fi
	done
	echo "${out:-roles not in the logs yet}"
}
echo "one (the replica at :$one_port takes the load): delay $delay ms; both: delay $both_delay ms; $secs s a run"
for ((i = 1; i <= rounds; i++)); do
	read -r p1 a1 n1 g1 < <(measure one)
	[ "$i" -gt 1 ] || echo "roles: $(roles)"
	read -r p2 a2 n2 g2 < <(measure both)
	awk -v hz="$hz" -v s="$secs" -v p1="$p1" -v a1="$a1" -v n1="$n1" -v g1="$g1" \
		-v p2="$p2" -v a2="$a2" -v n2="$n2" -v g2="$g2" 'BEGIN {
		u = 1e6 / hz
		t1 = (a1 + n1 + g1) * u / p1; t2 = (a2 + n2 + g2) * u / p2
		printf "round %d: one %d passes/s, ledger %.0f + nats %.0f + pg %.0f = %.0f us/pass; ", '"$i"', p1 / s, a1 * u / p1, n1 * u / p1, g1 * u / p1, t1
		printf "both %d passes/s, %.0f + %.0f + %.0f = %.0f us/pass; both/one %.2f (without pg %.2f)\n", p2 / s, a2 * u / p2, n2 * u / p2, g2 * u / p2, t2, t2 / t1, ((a2 + n2) / p2) / ((a1 + n1) / p1)
	}'
done
