# FraiseQL Subscriptions. `make test` is what CI runs.
GO       ?= go
PKGS     := ./...
# Fuzz budget per target: an execution count (3-16 s each here). A
# duration can fail a clean run: Go 1.26's fuzz coordinator may report
# "context deadline exceeded" when the time runs out mid-execution.
FUZZTIME ?= 50000x
BIN      := bin/fraiseql-node
# Stamped into the binary (fraiseql-node version): the nearest tag, and
# the commit. Unstamped builds (go install) report Go's build information.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# make release: static binaries for these platforms, with SHA256SUMS, in dist/.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
DIST     := dist
STATICCHECK ?= staticcheck
STATICCHECK_VERSION := v0.8.2

.PHONY: all build release run test test-clients test-python test-unit test-integration test-cluster chaos test-allocs test-k8s fuzz bench bench-load soak lint deps clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fraiseql-node

# Static (CGO_ENABLED=0), reproducible (-trimpath) binaries for PLATFORMS,
# named fraiseql-node-VERSION-OS-ARCH, and their SHA256SUMS.
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  out=$(DIST)/fraiseql-node-$(VERSION)-$$os-$$arch$$ext; \
	  echo "build $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/fraiseql-node; \
	done
	cd $(DIST) && sha256sum fraiseql-node-* > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

run:
	$(GO) run ./cmd/fraiseql-node

# Everything: vet, unit tests with the race detector, the integration suite
# (real NATS, Redis, PostgreSQL and the graphql-ws npm client), the short
# subset of the cluster failure tests, and a short run of every fuzz target.
test: lint deps test-integration test-clients test-python test-cluster test-allocs test-k8s fuzz

# The fast, service-free tests only (what plain `go test ./...` runs).
test-unit:
	$(GO) test -race -count=1 $(PKGS)

# Unit and integration tests together: the integration tag adds the suites
# that need Redis, PostgreSQL and Node.js (see README: services).
test-integration:
	$(GO) test -race -count=1 -tags integration -timeout 30m $(PKGS)

# The client compatibility suite (tests/clients, Node's test runner):
# graphql-ws, clients/js, Apollo Client, urql, subscriptions-transport-ws
# and a browser page in headless Chromium (Debian's chromium)
# against a fraiseql-node it builds and kills (see docs/clients.md).
test-clients: tests/clients/node_modules/graphql-ws/package.json
	cd tests/clients && node --test --test-concurrency=1

# The Python package (python/) against a real node, PostgreSQL and Redis:
# Debian's python3-psycopg, python3-redis, python3-websockets and
# python3-pytest, which belong to the system interpreter.
PYTHON ?= /usr/bin/python3
test-python:
	$(PYTHON) -m pytest -q python/tests

# The cluster failure tests (tests/cluster, build tag chaos): 3 NATS
# servers and 3 nodes as real processes on loopback, resuming clients
# checked event by event. test-cluster runs the short subset (node SIGKILL,
# NATS follower killed and restarted, slow reader; about a minute plus the
# build); chaos runs every scenario at full size (about 3.5 minutes plus
# the build; see docs/operations.md). CHAOS_INGEST=stream runs the nodes
# with nats.ingest: stream. CHAOS_REPORT=file appends a Markdown row
# per scenario; CHAOS_KEEP_LOGS=1 keeps the processes' logs.
test-cluster:
	$(GO) test -race -count=1 -tags chaos -short -timeout 15m -v ./tests/cluster

chaos:
	$(GO) test -count=1 -tags chaos -timeout 60m -v ./tests/cluster

# The zero-allocation tests, without -race (which adds allocations and makes
# them skip themselves in the run above).
test-allocs:
	$(GO) test -count=1 -run 'Alloc' ./...

# The Kubernetes manifests (ops/k8s) strict-decoded into the real API
# types: a module of its own (tests/k8s), so k8s.io/api stays out of the
# node's dependencies.
test-k8s:
	cd tests/k8s && $(GO) vet ./... && $(GO) test -count=1 ./...

# Each fuzz target runs FUZZTIME (50000x: executions; 30s: a duration)
# from its committed seed corpus.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The load scenarios of docs/benchmarks.md against a node the tool spawns
# (loopback only; every run bounded): RUNS=3, SCENARIOS="…", OUT=dir.
bench-load:
	tests/load/scenarios.sh fanout-100k cpu-per-delivery cpu-write-delay write-floor write-floor-x2 write-floor-uring saturate-2k fanout-10k fanout-10k-300k idle-rss-10k

# 10,000 connections x 10 subscriptions; SOAK_DURATION=1h for the long run.
SOAK_DURATION ?= 10m
soak:
	SOAK_DURATION=$(SOAK_DURATION) RUNS=1 tests/load/scenarios.sh soak

# gofmt, go.mod and go.sum tidy, go vet and staticcheck, under every
# build tag the tests use.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	@$(GO) mod tidy -diff || { echo "go mod tidy would change go.mod or go.sum (diff above): run go mod tidy"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)
	$(GO) vet -tags chaos ./tests/cluster
	@command -v $(STATICCHECK) >/dev/null || { echo "staticcheck not found: go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) (and put $$($(GO) env GOPATH)/bin on PATH)"; exit 1; }
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags integration $(PKGS)
	$(STATICCHECK) -tags chaos ./tests/cluster

# The npm packages the tests use: examples/js (graphql-ws, the README
# tour's example client, and wscat), clients/js (playwright-core, which
# drives the examples' pages and the EventSource page in Chromium, and
# graphql-sse) and tests/clients (the client
# compatibility suite's clients, at the versions docs/clients.md lists).
deps: examples/js/node_modules/graphql-ws/package.json clients/js/node_modules/graphql-ws/package.json tests/clients/node_modules/graphql-ws/package.json

examples/js/node_modules/graphql-ws/package.json: examples/js/package.json examples/js/package-lock.json
	npm ci --prefix examples/js --no-audit --no-fund
	@touch $@

clients/js/node_modules/graphql-ws/package.json: clients/js/package.json clients/js/package-lock.json
	npm ci --prefix clients/js --no-audit --no-fund
	@touch $@

# clients/js is installed as a copy (install-links), so a change to it
# reinstalls.
tests/clients/node_modules/graphql-ws/package.json: tests/clients/package.json tests/clients/package-lock.json clients/js/index.js clients/js/package.json
	npm ci --prefix tests/clients --no-audit --no-fund
	@touch $@

clean:
	rm -rf bin $(DIST)
