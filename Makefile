# The README's commands. `make test` and `make demo` set up everything they
# need themselves: Kafka 4 jars via Maven (cached in .cache/), PostgreSQL from
# the local server binaries.
SHELL := /bin/bash
GO ?= go

.PHONY: all build demo test fmt-check vet unit bench

all: build

build:
	$(GO) build -o bin/ridestream ./cmd/ridestream

# Embedded broker (kfake) + throwaway PostgreSQL: stream generated rides and
# print what PostgreSQL holds.
demo: build
	./bin/ridestream demo

# Formatting, vet, then every test with the race detector against a real
# Apache Kafka 4 broker and a real PostgreSQL started for the run.
test: fmt-check vet
	scripts/chromium.sh
	scripts/test.sh

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Quick loop: the same tests on the in-process kfake broker.
unit:
	$(GO) test -race -count=1 ./...

# Benchmarks on this machine in one run against Apache Kafka 4 and a throwaway
# PostgreSQL: prints a table of rates and ratios and writes BENCHMARKS.md.
bench: build
	scripts/bench.sh
