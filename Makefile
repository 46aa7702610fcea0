# olm: make demo, make test (the README's Quickstart), and the rest.
CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
# `make install PROFILE=debug` installs the debug build (no release build).
PROFILE ?= release
FUZZ_SECONDS ?= 30

TOOLS := $(notdir $(wildcard tools/olm-*))
FUZZ_TARGETS := $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs)))
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
GENDIR = target/$(PROFILE)/olm-gen

.PHONY: all build demo test lint fmt bench fuzz install uninstall clean

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

# Tools to $(PREFIX)/bin, man pages and bash/zsh/fish completions beside
# them, all generated from each tool's clap definition (`TOOL --generate`).
install:
	$(CARGO) build --workspace --bins $(if $(filter debug,$(PROFILE)),,--release)
	install -d $(BINDIR) $(MANDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR) $(GENDIR)
	set -e; for t in $(TOOLS); do \
	  bin=target/$(PROFILE)/$$t; \
	  $$bin --generate man > $(GENDIR)/$$t.1; \
	  $$bin --generate bash > $(GENDIR)/$$t.bash; \
	  $$bin --generate zsh > $(GENDIR)/_$$t; \
	  $$bin --generate fish > $(GENDIR)/$$t.fish; \
	  install -m 0755 $$bin $(BINDIR)/$$t; \
	  install -m 0644 $(GENDIR)/$$t.1 $(MANDIR)/$$t.1; \
	  install -m 0644 $(GENDIR)/$$t.bash $(BASHDIR)/$$t; \
	  install -m 0644 $(GENDIR)/_$$t $(ZSHDIR)/_$$t; \
	  install -m 0644 $(GENDIR)/$$t.fish $(FISHDIR)/$$t.fish; \
	  echo "installed $$t"; \
	done

uninstall:
	for t in $(TOOLS); do \
	  rm -f $(BINDIR)/$$t $(MANDIR)/$$t.1 $(BASHDIR)/$$t $(ZSHDIR)/_$$t $(FISHDIR)/$$t.fish; \
	done

# Each fuzz target for FUZZ_SECONDS (needs `cargo install cargo-fuzz`; works
# on stable through RUSTC_BOOTSTRAP). A crash leaves its input in
# fuzz/artifacts/TARGET/: fix it, then keep it in tests/fuzz-regressions/TARGET/.
fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || { echo "make fuzz needs cargo-fuzz: cargo install cargo-fuzz" >&2; exit 1; }
	set -e; cd fuzz; for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=4096; \
	done
