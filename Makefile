# Cosnim relays. Every target installs what it needs through go.mod.
GO        ?= go
FUZZTIME  ?= 30s
SIMSEEDS  ?= 3000
PKGS       = ./...

SOAK      ?= 5m

.PHONY: all build test sim bench fuzz lint soak hostile clean

all: lint test

build:
	$(GO) build -o bin/cosnim ./cmd/cosnim

# The drivers (real sockets, goroutines) run again under the race detector.
RACEPKGS = ./transport/tcp ./backbone/nats ./relay/relayserver ./client/agent ./cmd/cosnim/internal/bench

test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 8m $(PKGS)
	$(GO) test -race -count=1 -timeout 5m $(RACEPKGS)

# Fault simulations: many generated seeds, then the relay's value measured
# with and without it (plots in bin/sim-plots).
sim:
	$(GO) run ./cmd/cosnim sim --seeds $(SIMSEEDS)
	$(GO) run ./cmd/cosnim sim --compare --plots bin/sim-plots

# Go benchmarks, then a short cosnim relay bench set against spawned relays
# (scripts/nats-compare.sh adds the NATS anchor; see BENCHMARKS.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) build -o bin/cosnim ./cmd/cosnim
	bin/cosnim relay bench --spawn --pub 1 --sub 10 --msgs 1000000 --size 128
	bin/cosnim relay bench --spawn --tls --pub 1 --sub 10 --msgs 1000000 --size 128
	bin/cosnim relay bench --spawn --pub 1 --sub 100 --msgs 100000 --size 128
	bin/cosnim relay bench --spawn --scenario channels --channels 100 --sub 10 --rate 50000 --duration 5s --accept-rate 100000
	bin/cosnim relay bench --spawn --scenario idle --idle 10000 --accept-rate 100000
	bin/cosnim relay bench --spawn --tls --scenario storm --idle 2000

# Runs each fuzz target for FUZZTIME. Seeds live in testdata/fuzz/.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

# Attacks on the real relay binary, each for 20 s, with the latency
# targets checked (make test runs each for 2 s and reports figures).
hostile:
	$(GO) test -count=1 -v -timeout 20m ./internal/hostile -hostile.duration 20s -hostile.targets

# Minutes of client churn against a real relay, printing memory and
# goroutines every 10 s; not part of CI.
soak:
	$(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./relay -soak $(SOAK)

clean:
	rm -rf bin
