#!/usr/bin/env bash
# The embedded default of `make run`: an example upstream (the reference MCP server
# "server-everything", on loopback) and the gateway in front of it. Ctrl-C stops both.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
switchboard="${1:-$root/target/release/switchboard}"
config="${2:-$root/examples/default.yaml}"
export EVERYTHING_PORT="${EVERYTHING_PORT:-3001}"

PORT="$EVERYTHING_PORT" node --require "$root/scripts/loopback.cjs" \
  "$root/.tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp \
  2> >(sed -u 's/^/everything | /' >&2) &
upstream=$!
gateway=""

# Runs on every exit path; each step may find its process already gone.
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$gateway" ]; then
    kill -TERM "$gateway" 2>/dev/null
    wait "$gateway" 2>/dev/null
  fi
  kill "$upstream" 2>/dev/null
  wait "$upstream" 2>/dev/null
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

"$switchboard" run -c "$config" &
gateway=$!
wait "$gateway"
status=$?
gateway=""
exit "$status"
