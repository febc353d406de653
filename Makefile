# pvenode: the PVE node daemons in Go. `make help` lists the targets.
SHELL := /bin/bash

GO        ?= go
BIN       := bin
DAEMONS   := pvedaemon pveproxy pvestatd spiceproxy pvescheduler
COMMIT    := $(shell git rev-parse --short=16 HEAD 2>/dev/null || echo 0000000000000000)
LDFLAGS   := -s -w -X github.com/pvenode/pvenode/pkg/buildinfo.Commit=$(COMMIT)
RUNPREFIX ?= $(CURDIR)/.run
SCHEMA    ?= ../shared/reference/pve-api-schema.json

.PHONY: help deps build test test-short bench bench-vm bench-scheduler bench-cluster bench-spice run stop api-coverage api-dump schema-testdata lint deb clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the system packages the build and tests need (Debian; as root)
	@missing=""; \
	[ -f /usr/include/security/pam_appl.h ] || missing="$$missing libpam0g-dev"; \
	command -v fail2ban-regex >/dev/null || missing="$$missing fail2ban"; \
	command -v qemu-img >/dev/null || missing="$$missing qemu-utils"; \
	command -v qemu-system-x86_64 >/dev/null || missing="$$missing qemu-system-x86"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v rrdtool >/dev/null || missing="$$missing rrdtool"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (pam realm, fail2ban-regex, disk images and VMs, network namespaces, rrdtool checks in the tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing$$missing: run 'apt-get install$$missing' as root" >&2; exit 1; \
	  fi; \
	fi

build: deps ## build the five daemons and the tool into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: build ## run the whole test suite (what CI runs)
	@PVENODE_BIN=$(CURDIR)/$(BIN) $(GO) test -v -count=1 -timeout 25m ./... > test.log 2>&1; \
	  status=$$?; deploy/test-summary.sh test.log; exit $$status

test-short: ## unit tests only (skips tests that start real daemons)
	$(GO) test -short -count=1 ./...

bench: build bench-vm bench-cluster bench-scheduler bench-spice ## measure pveproxy against a bare Go HTTPS server, the VM and the cluster figures (docs/benchmarks.md)
	PVENODE_BIN=$(CURDIR)/$(BIN) deploy/bench/run.sh

bench-vm: ## VM figures: listing 500 VMs, start call to QMP "running" (real QEMU)
	$(GO) test -run '^$$' -bench 'ListVMs500|StartToRunning' -benchtime 20x -count 3 ./pkg/api2/qemuapi/

bench-spice: ## SPICE figures: the same bytes direct, through a tunnel, handed over to the VM; memory with a slow reader
	$(GO) test -run '^$$' -bench 'LoopbackDirect|Tunnel|Handoff' -benchtime 2000x -count 5 ./pkg/service/spiceproxy/
	$(GO) test -run '^$$' -bench SlowReaderRSS -benchtime 1x ./pkg/service/spiceproxy/

bench-scheduler: ## scheduler figures: calendar time to task start over 100 firings; backup throughput against cp
	$(GO) test -run '^$$' -bench SchedulingDelay -benchtime 100x -timeout 10m ./pkg/service/pvescheduler/
	$(GO) test -run '^$$' -bench BenchmarkBackup -benchtime 3x -count 3 ./pkg/vzdump/

bench-cluster: ## cluster figures: gossip convergence and bandwidth for 3/16/64 nodes, /cluster/resources with 10,000 guests, history store
	$(GO) test -run '^$$' -bench 'Resources10k' -benchtime 40x -count 3 ./pkg/api2/cluster/
	$(GO) test -run '^$$' -bench 'Flush|Query' -benchtime 1x ./pkg/rrd/
	$(GO) test -run '^$$' -bench Gossip -benchtime 1x -timeout 40m ./pkg/gossip/

run: build ## set up and start a one-node installation under .run/ and print its URL
	PVENODE_BIN=$(CURDIR)/$(BIN) RUNPREFIX=$(RUNPREFIX) deploy/run-local.sh start

stop: ## stop the one-node installation started by `make run`
	PVENODE_BIN=$(CURDIR)/$(BIN) RUNPREFIX=$(RUNPREFIX) deploy/run-local.sh stop

api-coverage: build ## print how many of PVE's API methods are implemented
	$(BIN)/pvenode-tool api-coverage --pve-schema $(SCHEMA)

api-dump: build ## dump our API schema as JSON (PVE API viewer shape)
	$(BIN)/pvenode-tool api-dump

schema-testdata: ## regenerate the structure-only copy of PVE's schema
	$(GO) run ./tools/schemastrip -in $(SCHEMA) -out pkg/apischema/testdata/pve-api-schema.json

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

deb: build ## build the Debian package into ../ (needs dpkg-dev, debhelper)
	ln -sfn deploy/debian debian
	dpkg-buildpackage -us -uc -b; status=$$?; rm -f debian; exit $$status

clean: ## remove build output
	rm -rf $(BIN) test.log
