// The server side of the official MCP conformance suite (`@modelcontextprotocol/conformance`):
// the tools, resources and prompts its server scenarios call, written on the TypeScript SDK's
// low-level Server so every answer is exactly what we put here. Streamable HTTP, stateful, with
// an event store (resumable streams, SEP-1699), on 127.0.0.1 and an ephemeral port; it prints
// `switchboard-test-peer listening on 127.0.0.1:PORT` like the other Node peers.
//
//   node tests/servers/conformance_fixtures.mjs     (SDK resolved from .tools/npm)
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

// The SDK lives in the project's test peers, not next to this file.
const here = path.dirname(fileURLToPath(import.meta.url));
const peers = createRequire(path.join(here, "../../.tools/npm/package.json"));
const sdk = async (sub) => import(pathToFileURL(peers.resolve(`@modelcontextprotocol/sdk/${sub}`)).href);
const { Server } = await sdk("server/index.js");
const { StreamableHTTPServerTransport } = await sdk("server/streamableHttp.js");
const types = await sdk("types.js");

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
const text = (t) => ({ content: [{ type: "text", text: t }] });
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const empty = { type: "object", properties: {} };

// One event store per session (a resumed stream is always the session's own): ids are
// `<stream>|<sequence>`, so a resumed stream replays what followed the client's last id, in
// order.
function eventStore() {
  const events = [];
  return {
    async storeEvent(streamId, message) {
      const id = `${streamId}|${String(events.length).padStart(8, "0")}`;
      events.push({ id, streamId, message });
      return id;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const streamId = lastEventId.split("|")[0];
      for (const e of events) {
        if (e.streamId === streamId && e.id > lastEventId && Object.keys(e.message).length > 0) {
          await send(e.id, e.message);
        }
      }
      return streamId;
    },
  };
}

// Elicitation schemas of SEP-1034 (defaults) and SEP-1330 (the five enum shapes).
const elicitDefaults = {
  type: "object",
  properties: {
    name: { type: "string", description: "User name", default: "John Doe" },
    age: { type: "integer", description: "User age", default: 30 },
    score: { type: "number", description: "User score", default: 95.5 },
    status: { type: "string", enum: ["active", "inactive", "pending"], default: "active" },
    verified: { type: "boolean", description: "Verified", default: true },
  },
  required: [],
};
const choices = (key, label) =>
  [1, 2, 3].map((n) => ({ const: `${key}${n}`, title: `${label} ${n}` }));
const elicitEnums = {
  type: "object",
  properties: {
    untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
    titledSingle: { type: "string", oneOf: choices("value", "Option") },
    legacyEnum: { type: "string", enum: ["opt1", "opt2", "opt3"], enumNames: ["One", "Two", "Three"] },
    untitledMulti: {
      type: "array", minItems: 1, maxItems: 3,
      items: { type: "string", enum: ["option1", "option2", "option3"] },
    },
    titledMulti: { type: "array", minItems: 1, maxItems: 3, items: { anyOf: choices("value", "Choice") } },
  },
  required: [],
};

const transports = new Map();

// Each tool: its listing and what a call does with (arguments, the request's context).
const tools = {
  test_simple_text: [{}, async () => text("This is a simple text response for testing.")],
  test_image_content: [{}, async () => ({ content: [{ type: "image", data: PNG, mimeType: "image/png" }] })],
  test_audio_content: [{}, async () => ({ content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] })],
  test_embedded_resource: [{}, async () => ({
    content: [{ type: "resource", resource: { uri: "test://embedded-resource", mimeType: "text/plain", text: "Embedded resource content." } }],
  })],
  test_multiple_content_types: [{}, async () => ({
    content: [
      { type: "text", text: "Multiple content types:" },
      { type: "image", data: PNG, mimeType: "image/png" },
      { type: "resource", resource: { uri: "test://mixed", mimeType: "application/json", text: '{"test":"data","value":123}' } },
    ],
  })],
  test_tool_with_logging: [{}, async (_args, ctx) => {
    for (const step of ["started", "processing", "completed"]) {
      await ctx.sendNotification({ method: "notifications/message", params: { level: "info", data: `Tool ${step}` } });
      await pause(20);
    }
    return text("Tool with logging executed successfully");
  }],
  test_tool_with_progress: [{}, async (_args, ctx) => {
    const progressToken = ctx._meta?.progressToken ?? 0;
    for (const progress of [0, 50, 100]) {
      await ctx.sendNotification({ method: "notifications/progress", params: { progressToken, progress, total: 100 } });
      await pause(20);
    }
    return text(String(progressToken));
  }],
  test_error_handling: [{}, async () => ({ isError: true, ...text("This tool intentionally returns an error") })],
  // Closes the call's stream before answering: the client resumes with Last-Event-ID.
  test_reconnection: [{}, async (_args, ctx) => {
    transports.get(ctx.sessionId)?.closeSSEStream(ctx.requestId);
    await pause(100);
    return text("Reconnection test completed successfully.");
  }],
  test_sampling: [{ type: "object", properties: { prompt: { type: "string" } }, required: ["prompt"] }, async (args, ctx) => {
    const r = await ctx.sendRequest(
      { method: "sampling/createMessage", params: { messages: [{ role: "user", content: { type: "text", text: args.prompt } }], maxTokens: 100 } },
      types.CreateMessageResultSchema,
    );
    return text(`LLM response: ${r.content?.text ?? ""}`);
  }],
  test_elicitation: [{ type: "object", properties: { message: { type: "string" } }, required: ["message"] }, async (args, ctx) => {
    const schema = { type: "object", properties: { response: { type: "string" } }, required: ["response"] };
    const r = await ctx.sendRequest(
      { method: "elicitation/create", params: { mode: "form", message: args.message, requestedSchema: schema } },
      types.ElicitResultSchema,
    );
    return text(`User response: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
  }],
  test_elicitation_sep1034_defaults: [{}, async (_args, ctx) => {
    const r = await ctx.sendRequest(
      { method: "elicitation/create", params: { mode: "form", message: "Defaults", requestedSchema: elicitDefaults } },
      types.ElicitResultSchema,
    );
    return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
  }],
  test_elicitation_sep1330_enums: [{}, async (_args, ctx) => {
    const r = await ctx.sendRequest(
      { method: "elicitation/create", params: { mode: "form", message: "Enums", requestedSchema: elicitEnums } },
      types.ElicitResultSchema,
    );
    return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
  }],
  // SEP-1613: the schema's $schema, $defs and additionalProperties must reach the client as is.
  json_schema_2020_12_tool: [{
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    $defs: { address: { type: "object", properties: { street: { type: "string" }, city: { type: "string" } } } },
    properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
    additionalProperties: false,
  }, async (args) => text(`called with ${JSON.stringify(args)}`)],
};

const resources = [
  { uri: "test://static-text", name: "static-text", mimeType: "text/plain", text: "This is the content of the static text resource." },
  { uri: "test://static-binary", name: "static-binary", mimeType: "image/png", blob: PNG },
  { uri: "test://watched-resource", name: "watched-resource", mimeType: "text/plain", text: "Watched resource content" },
];

const prompts = {
  test_simple_prompt: [[], () => [{ role: "user", content: { type: "text", text: "This is a simple prompt for testing." } }]],
  test_prompt_with_arguments: [
    [{ name: "arg1", required: true }, { name: "arg2", required: true }],
    (a) => [{ role: "user", content: { type: "text", text: `Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'` } }],
  ],
  test_prompt_with_embedded_resource: [
    [{ name: "resourceUri", required: true }],
    (a) => [
      { role: "user", content: { type: "resource", resource: { uri: a.resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." } } },
      { role: "user", content: { type: "text", text: "Please process the embedded resource above." } },
    ],
  ],
  test_prompt_with_image: [[], () => [
    { role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
    { role: "user", content: { type: "text", text: "Please analyze the image above." } },
  ]],
};

function mcpServer() {
  const server = new Server(
    { name: "switchboard-conformance-fixtures", version: "1.0.0" },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
    },
  );
  const log = (data) =>
    server.notification({ method: "notifications/message", params: { level: "info", data } }).catch(() => {});
  server.setRequestHandler(types.ListToolsRequestSchema, async () => ({
    tools: Object.entries(tools).map(([name, [schema]]) => ({
      name,
      description: `conformance fixture ${name}`,
      inputSchema: Object.keys(schema).length ? schema : empty,
    })),
  }));
  server.setRequestHandler(types.CallToolRequestSchema, async (req, ctx) => {
    const tool = tools[req.params.name];
    if (!tool) throw new types.McpError(types.ErrorCode.InvalidParams, `unknown tool ${req.params.name}`);
    return tool[1](req.params.arguments ?? {}, { ...ctx, _meta: req.params._meta });
  });
  server.setRequestHandler(types.ListResourcesRequestSchema, async () => ({
    resources: resources.map(({ uri, name, mimeType }) => ({ uri, name, mimeType })),
  }));
  server.setRequestHandler(types.ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [{ uriTemplate: "test://template/{id}/data", name: "template", mimeType: "application/json" }],
  }));
  server.setRequestHandler(types.ReadResourceRequestSchema, async (req) => {
    const uri = req.params.uri;
    const fixed = resources.find((r) => r.uri === uri);
    if (fixed) {
      const { name: _name, ...contents } = fixed;
      return { contents: [contents] };
    }
    const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
    if (m) {
      const body = JSON.stringify({ id: m[1], templateTest: true, data: `Data for ID: ${m[1]}` });
      return { contents: [{ uri, mimeType: "application/json", text: body }] };
    }
    throw new types.McpError(-32002, `Resource not found: ${uri}`);
  });
  server.setRequestHandler(types.SubscribeRequestSchema, async (req) => (log(`Subscribed to ${req.params.uri}`), {}));
  server.setRequestHandler(types.UnsubscribeRequestSchema, async (req) => (log(`Unsubscribed from ${req.params.uri}`), {}));
  server.setRequestHandler(types.ListPromptsRequestSchema, async () => ({
    prompts: Object.entries(prompts).map(([name, [args]]) => ({ name, description: `conformance fixture ${name}`, arguments: args })),
  }));
  server.setRequestHandler(types.GetPromptRequestSchema, async (req) => {
    const prompt = prompts[req.params.name];
    if (!prompt) throw new types.McpError(types.ErrorCode.InvalidParams, `unknown prompt ${req.params.name}`);
    return { messages: prompt[1](req.params.arguments ?? {}) };
  });
  server.setRequestHandler(types.SetLevelRequestSchema, async (req) => (log(`Log level set to: ${req.params.level}`), {}));
  server.setRequestHandler(types.CompleteRequestSchema, async () => ({ completion: { values: [], total: 0, hasMore: false } }));
  return server;
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString("utf8");
  return raw ? JSON.parse(raw) : undefined;
}

const fail = (res, status, message) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message } }));
};

const http = createServer(async (req, res) => {
  try {
    if (new URL(req.url, "http://x").pathname !== "/mcp") return fail(res, 404, "not found");
    // A local server refuses other hosts and origins (DNS rebinding).
    const port = http.address().port;
    const local = [`127.0.0.1:${port}`, `localhost:${port}`];
    const origin = req.headers.origin;
    if (!local.includes(req.headers.host) || (origin && !local.map((h) => `http://${h}`).includes(origin))) {
      return fail(res, 403, "host or origin not allowed");
    }
    const parsed = req.method === "POST" ? await body(req) : undefined;
    const sid = req.headers["mcp-session-id"];
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid || req.method !== "POST" || parsed?.method !== "initialize") {
        return fail(res, sid ? 404 : 400, "Invalid or missing session ID");
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        eventStore: eventStore(),
        retryInterval: 1000,
        onsessioninitialized: (id) => transports.set(id, transport),
      });
      transport.onclose = () => transports.delete(transport.sessionId);
      await mcpServer().connect(transport);
    }
    await transport.handleRequest(req, res, parsed);
  } catch (e) {
    if (!res.headersSent) fail(res, 400, `bad request: ${e.message}`);
  }
});
http.listen(0, "127.0.0.1", () => {
  const a = http.address();
  process.stderr.write(`switchboard-test-peer listening on ${a.address}:${a.port}\n`);
});
