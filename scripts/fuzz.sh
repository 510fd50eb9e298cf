#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60) with cargo-fuzz,
# installed into .tools/cargo on first use. Stable Rust: no sanitizer (RUSTC_BOOTSTRAP only
# lets cargo-fuzz pass its unstable flags); libFuzzer's coverage guidance still works.
# Usage: scripts/fuzz.sh [target...]   (targets: jsonrpc sse session_token request_state cursor exchange gateway_yaml list_page resource_uri stream)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/.tools/cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --root "$root/.tools/cargo"
fi
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(jsonrpc sse session_token request_state cursor exchange gateway_yaml list_page resource_uri stream)
fi
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  # The committed seeds stay as they are; what the run finds goes to target/fuzz-corpus.
  work="$root/target/fuzz-corpus/$t"
  mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s" >&2
  (cd fuzz && cargo fuzz run --sanitizer none "$t" "$work" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048)
done
