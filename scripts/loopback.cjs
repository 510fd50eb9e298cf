// Preloaded into Node test peers (`node --require scripts/loopback.cjs ...`): servers that
// call listen(port) without a host bind to all interfaces; this binds them to loopback
// (HOST, default 127.0.0.1) and prints the real port, so PORT=0 gives an ephemeral one.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  const numeric = typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first));
  if (!numeric) return listen.apply(this, args);
  const cb = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  this.once("listening", () => {
    process.stderr.write(`switchboard-test-peer listening on ${this.address().address}:${this.address().port}\n`);
  });
  return listen.call(this, { port: Number(first), host: process.env.HOST || "127.0.0.1" }, cb);
};
