#!/usr/bin/env bash
# The production shape on one machine, without Docker: three nats-server
# nodes in one JetStream cluster (sync_interval: always), two `ledger serve`
# replicas with PostgreSQL read models (the local PostgreSQL), sharing one
# LEDGER_TOKEN_KEY. `make cluster` runs `deploy/cluster.sh up`, `make
# cluster-down` runs `deploy/cluster.sh down`. State lives in ./cluster/.
#
#   nats   nats://127.0.0.1:14301,14302,14303   monitoring http://127.0.0.1:18311..18313
#   ledger http://127.0.0.1:18080 and http://127.0.0.1:18081
#
# Environment: CLUSTER_DATABASE_URL (default: database ledger_cluster on the
# local PostgreSQL, created if missing), LEDGER_TOKEN_KEY (default: a random
# one kept in cluster/token.key), CLUSTER_SERVE_FLAGS (more flags for both
# replicas' `ledger serve`, e.g. "--register-rate 0" for the load generator),
# CLUSTER_PPROF=1 (each replica serves Go's profiler: 127.0.0.1:16060 and
# 127.0.0.1:16061).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export GOEXPERIMENT=jsonv2
DIR=$PWD/cluster
RUN=$DIR/run
NATS_URLS=nats://127.0.0.1:14301,nats://127.0.0.1:14302,nats://127.0.0.1:14303
DB_URL=${CLUSTER_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ledger_cluster?sslmode=disable}

start() { # name, then the command; its pid goes to run/<name>.pid
	local name=$1
	shift
	if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
		echo "$name already running (pid $(cat "$RUN/$name.pid"))"
		return
	fi
	nohup "$@" >"$DIR/logs/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
	echo "$name started (pid $!, log cluster/logs/$name.log)"
}

wait_http() { # url, seconds
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "no answer from $1 within $2 s" >&2
	return 1
}

up() {
	mkdir -p "$DIR/logs" "$RUN" bin
	# nats-server at the version go.mod pins, built from the module cache.
	version=$($GO list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
	if [ ! -x bin/nats-server ] || ! bin/nats-server --version | grep -q "${version#v}"; then
		echo "building nats-server $version into bin/"
		$GO build -o bin/nats-server github.com/nats-io/nats-server/v2
	fi
	$GO build -o bin/ledger ./cmd/ledger

	fresh=false
	[ -d "$DIR/n1" ] || fresh=true # a new log: its read models start empty too
	for n in 1 2 3; do
		cat >"$DIR/n$n.conf" <<CONF
server_name: n$n
listen: 127.0.0.1:1430$n
http: 127.0.0.1:1831$n
jetstream { store_dir: "$DIR/n$n", sync_interval: always }
cluster { name: ledger, listen: 127.0.0.1:1431$n, routes: [nats://127.0.0.1:14311, nats://127.0.0.1:14312, nats://127.0.0.1:14313] }
CONF
		start "nats$n" bin/nats-server -c "$DIR/n$n.conf"
	done
	for n in 1 2 3; do wait_http "http://127.0.0.1:1831$n/healthz?js-enabled-only=true" 30; done

	if [ -z "${LEDGER_TOKEN_KEY:-}" ]; then
		[ -f "$DIR/token.key" ] || head -c 32 /dev/urandom | base64 >"$DIR/token.key"
		LEDGER_TOKEN_KEY=$(cat "$DIR/token.key")
	fi
	export LEDGER_TOKEN_KEY

	# The read models' database.
	db=${DB_URL##*/}
	db=${db%%\?*}
	admin=${DB_URL%/*}/postgres?${DB_URL#*\?}
	if $fresh && [ -z "${CLUSTER_DATABASE_URL:-}" ] && psql "$DB_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
		# The default database belongs to this cluster: a new log gets new
		# read models (the replicas refuse tables built from another log).
		echo "a new log in $DIR: recreating database $db for its read models"
		psql "$admin" -qc "DROP DATABASE $db WITH (FORCE)"
	fi
	if ! psql "$DB_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
		psql "$admin" -qc "CREATE DATABASE $db"
	fi

	# Replicas one after the other: the first creates the streams.
	for r in 0 1; do
		pprof=()
		[ -z "${CLUSTER_PPROF:-}" ] || pprof=(--pprof "127.0.0.1:1606$r")
		start "ledger$((r + 1))" bin/ledger serve --nats-url "$NATS_URLS" --replicas 3 --postgres "$DB_URL" \
			--data "$DIR/ledger$((r + 1))" --http "127.0.0.1:1808$r" "${pprof[@]}" ${CLUSTER_SERVE_FLAGS:-}
		wait_http "http://127.0.0.1:1808$r/readyz" 60
	done
	cat <<MSG

cluster up: ledger on http://127.0.0.1:18080 and http://127.0.0.1:18081
  tokens: LEDGER_TOKEN_KEY=\$(cat cluster/token.key) bin/ledger token issue --role reviewer --subject NAME
  status: bin/ledger projections status --nats-url $NATS_URLS --replicas 3 --postgres '$DB_URL'
  stop:   make cluster-down
MSG
}

down() {
	local f pid
	for f in "$RUN"/ledger*.pid "$RUN"/nats*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
			echo "$(basename "$f" .pid) stopped"
		fi
		rm -f "$f"
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
