#!/usr/bin/env bash
# The embedded default of `make run`: an example upstream (the reference MCP server
# "server-everything", on loopback) and the gateway in front of it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
switchboard="${1:-$root/target/release/switchboard}"
config="${2:-$root/examples/default.yaml}"
export EVERYTHING_PORT="${EVERYTHING_PORT:-3001}"

PORT="$EVERYTHING_PORT" node --require "$root/scripts/loopback.cjs" \
  "$root/.tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp \
  2> >(sed -u 's/^/everything | /' >&2) &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT

"$switchboard" run -c "$config" &
gateway=$!
trap 'kill -TERM $gateway 2>/dev/null; wait $gateway 2>/dev/null; kill $upstream 2>/dev/null || true' EXIT INT TERM
wait $gateway
