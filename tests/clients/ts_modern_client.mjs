// The TypeScript SDK v2 client (@modelcontextprotocol/client) against an endpoint, its
// version negotiation pinned to 2026-07-28 or in `auto` mode.
//
//   node ts_modern_client.mjs URL MODE CALLS_JSON     (MODE: 2026-07-28 | auto | legacy)
//
// Prints one JSON object: the era the client ended in, the tools it listed, the calls' texts;
// or {"error": ...} when it could not. Exits 0 either way (the caller asserts).
// The package lives with the project's npm test peers, not beside this script: its entry
// point comes from the environment.
const { Client, StreamableHTTPClientTransport } = await import(process.env.MCP_CLIENT_MODULE);

const [url, mode, callsJson] = process.argv.slice(2);
const calls = JSON.parse(callsJson);
const negotiation = mode === 'legacy' ? { mode: 'legacy' } : mode === 'auto' ? { mode: 'auto' } : { mode: { pin: mode } };

async function run() {
  const client = new Client({ name: 'switchboard-test', version: '1.0.0' }, { versionNegotiation: negotiation });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  try {
    const out = { era: client.getProtocolEra?.() ?? null };
    const listed = await client.listTools();
    out.tools = listed.tools.map((t) => t.name);
    out.calls = [];
    for (const c of calls) {
      const r = await client.callTool({ name: c.name, arguments: c.args ?? {} });
      out.calls.push({ is_error: Boolean(r.isError), text: (r.content ?? []).map((x) => x.text ?? '').join('') });
    }
    return out;
  } finally {
    await client.close();
  }
}

const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timed out after 60 s' }));
  process.exit(0);
}, 60_000);
run()
  .then((out) => console.log(JSON.stringify(out)))
  .catch((e) => console.log(JSON.stringify({ error: String(e?.message ?? e), type: e?.constructor?.name })))
  .finally(() => {
    clearTimeout(timer);
    process.exit(0);
  });
