# Switchboard's images, built from this checkout (docker-compose.yml uses them):
#   switchboard       the control plane (`switchboard serve`) with the bridge, and the two
#                     data-plane modules under /usr/local/lib/switchboard/, which the Envoy
#                     container reads through a shared volume
#   example-upstream  the reference MCP server "server-everything" on port $PORT
#
#   docker build --target switchboard -t switchboard:local .
#   docker build --target example-upstream -t switchboard-example-upstream:local .

FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p switchboard -p switchboard-native \
 && cargo build --locked --profile wasm --target wasm32-unknown-unknown -p switchboard-filter \
      --target-dir target/wasm

FROM debian:bookworm-slim AS switchboard
# The system roots: HTTPS upstreams without a CA of their own are checked against them.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY --from=build /src/target/release/libswitchboard_native.so /usr/local/lib/switchboard/
COPY --from=build /src/target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm /usr/local/lib/switchboard/
COPY examples/default.yaml /etc/switchboard/gateway.yaml
USER 65534
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve", "-c", "/etc/switchboard/gateway.yaml"]

FROM node:22-bookworm-slim AS example-upstream
RUN npm install -g @modelcontextprotocol/server-everything@2026.8.31
COPY scripts/loopback.cjs /opt/loopback.cjs
ENV PORT=3001
USER node
ENTRYPOINT ["node", "--require", "/opt/loopback.cjs", "/usr/local/lib/node_modules/@modelcontextprotocol/server-everything/dist/index.js", "streamableHttp"]
