"""The official Python SDK's high-level `Client` (mcp 2.x), in one of its connect modes,
against an endpoint: `auto` probes `server/discover` and falls back to the 2025 handshake,
`2026-07-28` speaks only the stateless revision, `legacy` only the handshake.

    python python_modern_client.py URL MODE CALLS_JSON

CALLS: [{"name": ..., "args": {...}}]. Prints one JSON object: the protocol version the
client ended up speaking, the tools it listed, the calls' texts (a call that fails gives
{"error": ...} in its place), and the questions the user was asked; or, when connecting
fails, {"error": ..., "type": ...}. Exits 0 either way (the caller asserts).

The client accepts every elicitation with `{"ok": true, "name": "Ada"}`: in the 2025 era as
an answer to the server's request, in 2026-07-28 as the retry of an `input_required` result.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp_types import ElicitResult


async def run(url: str, mode: str, calls: list) -> dict:
    asked: list = []

    async def elicit(_context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True, "name": "Ada"})

    async with Client(url, mode=mode, read_timeout_seconds=20, elicitation_callback=elicit) as client:
        out: dict = {"protocol_version": client.protocol_version, "asked": asked}
        tools = await client.list_tools()
        out["tools"] = [t.name for t in tools.tools]
        out["calls"] = []
        for call in calls:
            try:
                result = await client.call_tool(call["name"], call.get("args", {}))
            except Exception as e:  # noqa: BLE001 - the caller asserts on what failed
                out["calls"].append({"error": str(e)})
                continue
            text = "".join(getattr(c, "text", "") for c in result.content)
            out["calls"].append({"is_error": bool(result.is_error), "text": text})
        return out


def main() -> None:
    url, mode, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        out = asyncio.run(asyncio.wait_for(run(url, mode, calls), 60))
    except BaseException as e:  # noqa: BLE001 - the caller asserts on what failed
        # An exception group (anyio task groups) carries the real cause inside.
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        out = {"error": str(e), "type": type(e).__name__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
