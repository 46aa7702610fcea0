# olm: make demo, make test (the README's Quickstart), and the rest.
CARGO ?= cargo
PREFIX ?= /usr/local

.PHONY: all build demo test lint fmt bench fuzz install clean

all: build

build:
	$(CARGO) build --workspace --bins --examples

demo: build
	bash scripts/demo.sh

test: build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

# Not part of `make test`: timings are not tests. See scripts/bench.sh.
bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean
