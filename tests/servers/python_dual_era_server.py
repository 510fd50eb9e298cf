"""An MCP server of the Python SDK (mcp 2.x `MCPServer`) that speaks both eras on one
endpoint: the 2025 handshake and the stateless 2026-07-28 revision. Serves streamable HTTP on
127.0.0.1 and an ephemeral port, and prints `listening on PORT` once it accepts.

    python python_dual_era_server.py
"""

import asyncio
import socket

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("dual-era", version="1.0.0")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def era() -> str:
    """Name of this server."""
    return "dual-era"


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    http = uvicorn.Server(config)
    task = asyncio.create_task(http.serve(sockets=[sock]))
    while not http.started:
        await asyncio.sleep(0.05)
    print(f"listening on {port}", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main())
