"""An MCP server of the Python SDK (mcp 2.x `MCPServer`) that speaks both eras on one
endpoint: the 2025 handshake and the stateless 2026-07-28 revision. Serves streamable HTTP on
127.0.0.1 and an ephemeral port, and prints `listening on PORT` once it accepts.

    python python_dual_era_server.py [--modern-only] [--name NAME]

`--modern-only` makes it a server of the 2026-07-28 revision alone, as the revision allows:
a request that does not name that revision in `_meta` (the 2025 `initialize` above all)
gets HTTP 400 with -32022 and the versions it speaks; `GET` and `DELETE` get 405.

Tools: `add`, `era` (the server's name), `locate` (an argument annotated `x-mcp-header`,
which the server checks against the `Mcp-Param-Region` header), `announce` (tells
`subscriptions/listen` streams its tool list changed and a URI was updated) and `confirm`, which asks the client for a yes/no
with a multi-round-trip request (2026-07-28 `input_required`) and answers what it was told.
"""

import argparse
import asyncio
import json
import socket

from typing import Annotated

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult
from pydantic import Field

VERSION = "2026-07-28"
PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"

args = argparse.ArgumentParser()
args.add_argument("--modern-only", action="store_true")
args.add_argument("--name", default="dual-era")
options = args.parse_args()

server = MCPServer(options.name, version="1.0.0")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def era() -> str:
    """Name of this server."""
    return options.name


@server.tool()
def locate(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    """Echo the region, which 2026-07-28 clients also send as the Mcp-Param-Region header."""
    return f"region:{region}"


@server.tool()
async def announce(uri: str, ctx: Context) -> str:
    """Tell subscribers the tool list changed and `uri` was updated."""
    await ctx.notify_tools_changed()
    await ctx.notify_resource_updated(uri)
    return "announced"


@server.tool()
async def confirm(question: str, ctx: Context) -> str | InputRequiredResult:
    """Ask the user a yes/no question and say what they answered."""
    answers = ctx.input_responses or {}
    answer = answers.get("confirm")
    if answer is None:
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        ask = ElicitRequest(params=ElicitRequestFormParams(message=question, requested_schema=schema))
        return InputRequiredResult(input_requests={"confirm": ask}, request_state=f"asked:{question}")
    state = ctx.request_state or ""
    content = getattr(answer, "content", None) or {}
    return f"{answer.action}:{content.get('ok')}:{state}"


def modern_only(app):
    """The app behind a door that lets only 2026-07-28 requests through."""

    async def refuse(send, status, body):
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def door(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        if scope["method"] != "POST":
            error = {"code": -32600, "message": "this server speaks MCP 2026-07-28 only: POST requests"}
            return await refuse(send, 405, {"jsonrpc": "2.0", "id": None, "error": error})
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            request = json.loads(body)
            version = ((request.get("params") or {}).get("_meta") or {}).get(PROTOCOL_META)
        except (ValueError, AttributeError):
            request, version = {}, None
        if version != VERSION:
            error = {
                "code": -32022,
                "message": f"Unsupported protocol version; supported: {VERSION}",
                "data": {"supported": [VERSION], "requested": version},
            }
            rid = request.get("id") if isinstance(request, dict) else None
            return await refuse(send, 400, {"jsonrpc": "2.0", "id": rid, "error": error})
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return door


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = server.streamable_http_app()
    if options.modern_only:
        app = modern_only(app)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    http = uvicorn.Server(config)
    task = asyncio.create_task(http.serve(sockets=[sock]))
    while not http.started:
        await asyncio.sleep(0.05)
    print(f"listening on {port}", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main())
