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
	@command -v gnome-keyring-daemon >/dev/null && command -v dbus-run-session >/dev/null \
	  || echo "SKIPPED: keyring tests: gnome-keyring-daemon not installed (apt-get install gnome-keyring dbus libsecret-tools)" >&2
	@command -v strace >/dev/null || echo "SKIPPED: file_backend_opens_no_socket: strace not installed (apt-get install strace)" >&2

fmt:
	$(CARGO) fmt --all

# Not part of `make test`: timings are not tests. See scripts/bench.sh.
bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean
