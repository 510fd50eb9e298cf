"""A stdio MCP server written with the official Python SDK (mcp 2.x `MCPServer`), for the
bridge's tests. State lives in the process, so a test can tell whether two clients share it.

Tools: echo(text), remember(value), recall(), slow(ms), pid().
"""

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("python-stdio")
memory: list[str] = []


@server.tool()
def echo(text: str) -> str:
    """Returns the text."""
    return text


@server.tool()
def remember(value: str) -> str:
    """Stores a value in this process."""
    memory.append(value)
    return "ok"


@server.tool()
def recall() -> str:
    """Every value stored in this process, comma-separated."""
    return ",".join(memory)


@server.tool()
async def slow(ms: int) -> str:
    """Answers after ms milliseconds."""
    await asyncio.sleep(ms / 1000)
    return "done"


@server.tool()
def pid() -> str:
    """This process's id."""
    return str(os.getpid())


@server.tool()
def env(name: str) -> str:
    """An environment variable of this process, or <unset>."""
    return os.environ.get(name, "<unset>")


if __name__ == "__main__":
    print("python stdio server starting", file=sys.stderr, flush=True)
    server.run("stdio")
