# The check-in ledger. `make run` starts the service on its embedded default;
# `make test` runs every test against a real JetStream (in-process) and a real
# PostgreSQL (DATABASE_URL, default the local one on 127.0.0.1:5432).

GO        ?= go
# encoding/json on the v2 implementation (Go's jsonv2 experiment): the same
# API and behaviour, 2-3x faster decoding, which is most of the CPU a pass
# costs (request, projector). Measured in README ("Performance").
export GOEXPERIMENT := jsonv2
DATA      ?= ./data
HTTP      ?= :8080
# The tests' database; `make run` ignores it (the embedded default keeps the
# read models in memory: run `ledger serve --postgres URL` for PostgreSQL).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: run build test test-short bench vet fmt tidy clean cluster cluster-down

run:
	env -u DATABASE_URL -u NATS_URL -u LEDGER_TOKEN_KEY $(GO) run ./cmd/ledger serve --data $(DATA) --http $(HTTP)

build:
	$(GO) build -o bin/ledger ./cmd/ledger
	$(GO) build -o bin/loadgen ./cmd/loadgen

test: export DATABASE_URL ?= $(TEST_DATABASE_URL)
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench: export DATABASE_URL ?= $(TEST_DATABASE_URL)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./eventstore/ ./projections/...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	$(GO) mod tidy

# The production shape on this machine, no Docker: 3 nats-server nodes built
# from the module version go.mod pins (bin/nats-server), 2 ledger replicas
# with PostgreSQL read models (CLUSTER_DATABASE_URL, default database
# ledger_cluster on the local server). State in ./cluster. See README.
cluster:
	deploy/cluster.sh up

cluster-down:
	deploy/cluster.sh down

clean:
	rm -rf bin
