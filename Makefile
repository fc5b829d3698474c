# nodewire: `make demo` shows it, `make test` proves it.
GO       ?= go
BIN      := bin
FUZZTIME ?= 30000x
E2E_TIMEOUT ?= 40m
STATICCHECK ?= v0.8.2

.PHONY: all build test unit vet fuzz e2e soak demo bench wan deps clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## deps: install what the tests need (Debian packages), only when missing.
deps:
	@bash e2e/deps.sh

## vet: formatting and static checks; the patched gVisor copy is upstream +
## netstack/third_party/gvisor-patches (update.sh --check).
vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@GO=$(GO) bash overlay/third_party/wireguard-patches/update.sh --check
	@GO=$(GO) bash netstack/third_party/gvisor-patches/update.sh --check
	@sc=$$(command -v staticcheck || echo "$$($(GO) env GOPATH)/bin/staticcheck"); \
	  if [ ! -x "$$sc" ]; then echo "installing staticcheck $(STATICCHECK)"; \
	    $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) || { echo "staticcheck could not be installed: skipped"; exit 0; }; fi; \
	  echo "staticcheck ./..."; "$$sc" ./...

## unit: every package's tests except the multi-host e2e suite.
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

## fuzz: a short run of every fuzz target (seed corpora under testdata/).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## e2e: real epmd/erl on network-namespace hosts (root). Always cleans up.
e2e: build
	@bash e2e/run.sh -timeout $(E2E_TIMEOUT)

## soak: the long e2e runs: SOAK (default 60s) of 200 connections and 200
## erpc streams through one daemon, 64 MiB over a lossy, slow link (~15 min).
SOAK ?= 60s
soak: deps build
	@NODEWIRE_SOAK=$(SOAK) bash e2e/run.sh -timeout 60m -run 'TestSoak|TestFaults'

## test: everything, on a fresh machine too.
test: deps vet build unit fuzz e2e

## demo: three namespaced hosts, real Erlang nodes, the policy at work (root).
demo: deps build
	@trap 'bash e2e/cleanup.sh' EXIT; $(GO) run ./e2e/demo

## bench: Go benchmarks of the hot paths, then the e2e harness (root):
## plain dist vs inet_tls_dist vs nodewire. BENCHFLAGS e.g. '-rounds 5 -profile /tmp/prof'.
BENCHFLAGS ?=
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v /e2e)
	@trap 'bash e2e/cleanup.sh' EXIT; $(GO) run ./e2e/bench $(BENCHFLAGS)

## wan: the real-network matrix (root, <= 20 min): plain dist, inet_tls_dist,
## nodewire userspace and TUN across one lossy, slow link per cell (loss,
## bursts, delay with jitter and reordering, underlay MTU). WANFLAGS e.g.
## '-quick', '-cells clean,loss2,mtu1400', '-rounds 3', '-before 9d4dd34'.
WANFLAGS ?=
wan: deps build
	@trap 'bash e2e/cleanup.sh' EXIT; $(GO) run ./e2e/bench -wan $(WANFLAGS)

clean:
	rm -rf $(BIN)
