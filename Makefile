# jack: `make run` starts a node on ./jack.toml, `make test` runs every test.
CARGO ?= cargo
BIN   := target/release/jack

.PHONY: all build run sample test lint ci bench clean

all: build

build:
	$(CARGO) build --release --locked

# Build, make the sample library, and run the node on the shipped jack.toml.
run: build sample
	./$(BIN) --config jack.toml run

sample:
	@./scripts/sample-library.sh media

# The whole test suite (unit, integration, end to end with the real binary).
test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

ci: lint test

# Measurements for BENCHMARKS.md (not tests).
bench: build
	./scripts/bench-foundation.sh

clean:
	$(CARGO) clean
