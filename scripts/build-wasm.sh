#!/usr/bin/env bash
# Builds the filter for wasm32-unknown-unknown: with the rustup target where it is installed,
# else with Debian's Rust and -Z build-std (see scripts/setup.sh wasm). Its own target dir
# keeps the two compilers from invalidating each other's artifacts.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
args=(build --profile wasm --target wasm32-unknown-unknown -p switchboard-filter --target-dir target/wasm)
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  exec cargo "${args[@]}"
fi
scripts/setup.sh wasm
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 exec /usr/bin/cargo "${args[@]}" -Z build-std=std,panic_abort
