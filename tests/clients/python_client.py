"""A real MCP client (the official Python SDK) running one scenario against an endpoint.

    python python_client.py URL PLAN_JSON

PLAN: {"calls": [{"name": ..., "args": {...}}], "prompt": name, "prompt_args": {...},
"resources": true}. Prints one JSON object with what the client saw; exits 1 on any error.
"""

import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, plan: dict) -> dict:
    out: dict = {}
    async with streamable_http_client(url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = init.server_info.name
            out["protocol_version"] = init.protocol_version
            names, cursor, pages = [], None, 0
            while pages < 50:
                pages += 1
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                names += [t.name for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
            out["tools"], out["tool_pages"] = names, pages
            out["calls"] = []
            for call in plan.get("calls", []):
                result = await session.call_tool(call["name"], call.get("args", {}))
                text = result.content[0].text if result.content else None
                out["calls"].append({"is_error": bool(result.is_error), "text": text})
            if plan.get("prompt"):
                prompt = await session.get_prompt(plan["prompt"], plan.get("prompt_args"))
                out["prompt"] = prompt.messages[0].content.text
            if plan.get("resources"):
                listed = await session.list_resources()
                out["resources"] = [str(r.uri) for r in listed.resources]
                read_result = await session.read_resource(listed.resources[0].uri)
                out["read_uri"] = str(read_result.contents[0].uri)
    return out


def main() -> None:
    result = asyncio.run(run(sys.argv[1], json.loads(sys.argv[2])))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
