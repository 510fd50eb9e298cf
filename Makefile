# The two commands of the quick start are `make run` and `make test`; each installs what it
# needs (scripts/setup.sh is idempotent) and builds only what is missing.

CARGO ?= cargo
WASM := target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm
# Debug build for the tests; `make build` makes the release one `run` prefers.
NATIVE_DEBUG := target/debug/libswitchboard_native.so
SWITCHBOARD := target/release/switchboard
CONFIG ?= examples/default.yaml

.PHONY: run test setup setup-run wasm native build lint fmt clean fuzz bench compose-test

run: setup-run wasm build
	scripts/run-default.sh $(SWITCHBOARD) $(CONFIG)

# What `make run` needs: the wasm toolchain, Envoy and the example upstream (not the test
# peers' Debian packages).
setup-run:
	scripts/setup.sh wasm envoy npm

# Debug builds: the end-to-end tests measure behaviour, not speed, and compile much faster.
# The end-to-end suite runs twice, once per data plane (native, then wasm): the two shells
# carry out the same core and must not drift. The second pass selects the same packages as
# the first (`--test '*'`: integration tests only), so nothing is compiled again. The
# benchmark's own logic (its verdicts) is tested too, and the fuzz targets, which live
# outside the workspace, are compiled, so a change that breaks them fails here.
TEST_ENV = SWITCHBOARD_BIN=$(CURDIR)/target/debug/switchboard SWITCHBOARD_WASM=$(CURDIR)/$(WASM) \
  SWITCHBOARD_NATIVE_MODULE=$(CURDIR)/$(NATIVE_DEBUG)
test: setup wasm
	$(CARGO) build -p switchboard -p switchboard-native
	$(TEST_ENV) SWITCHBOARD_DATA_PLANE=native \
	  $(CARGO) test --workspace --exclude switchboard-bench --no-fail-fast -- --test-threads=2
	$(TEST_ENV) SWITCHBOARD_DATA_PLANE=wasm \
	  $(CARGO) test --workspace --exclude switchboard-bench --no-fail-fast --test '*' -- --test-threads=2
	$(CARGO) test -p switchboard-bench
	RUSTC_BOOTSTRAP=1 $(CARGO) check --manifest-path fuzz/Cargo.toml --bins --locked
	$(MAKE) compose-test

# docker-compose.yml, up for real with podman (images made FROM scratch of this machine's
# binaries: scripts/compose-images.sh), and an MCP client through it. Alone, after the rest:
# the compose file binds fixed ports.
compose-test: setup wasm
	$(CARGO) build -p switchboard -p switchboard-native
	$(TEST_ENV) $(CARGO) test -p switchboard-e2e --test compose -- --ignored --test-threads=1

setup:
	scripts/setup.sh

wasm:
	scripts/build-wasm.sh

native:
	$(CARGO) build --release -p switchboard-native

build:
	$(CARGO) build --release -p switchboard -p switchboard-native

# Not part of `make test`: each fuzz target for FUZZ_SECONDS (default 60).
fuzz:
	scripts/fuzz.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# The side-by-side benchmark (BENCHMARKS.md): direct, Envoy plain route, Envoy's native
# mcp_router and Switchboard, in one run. Not part of `make test`; about 10 minutes.
bench: setup wasm build
	$(CARGO) build --release -p switchboard-bench
	target/release/switchboard-bench run --markdown BENCHMARKS.md --json bench/results/latest.json $(BENCH_ARGS)
