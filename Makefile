# The two commands of the quick start are `make run` and `make test`; each installs what it
# needs (scripts/setup.sh is idempotent) and builds only what is missing.

CARGO ?= cargo
WASM := target/wasm/wasm32-unknown-unknown/release/switchboard_filter.wasm
SWITCHBOARD := target/release/switchboard
CONFIG ?= examples/default.yaml

.PHONY: run test setup wasm build lint fmt clean

run: setup wasm build
	scripts/run-default.sh $(SWITCHBOARD) $(CONFIG)

test: setup wasm
	$(CARGO) build --release -p switchboard
	SWITCHBOARD_BIN=$(CURDIR)/$(SWITCHBOARD) SWITCHBOARD_WASM=$(CURDIR)/$(WASM) \
	  $(CARGO) test --release --workspace --exclude switchboard-filter -- --test-threads=2
	$(CARGO) test --release -p switchboard-filter --lib

setup:
	scripts/setup.sh

wasm:
	scripts/build-wasm.sh

build:
	$(CARGO) build --release -p switchboard

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
