"""A real MCP client (the official Python SDK) running one scenario against an endpoint.

    python python_client.py URL PLAN_JSON

PLAN: {"calls": [{"name": ..., "args": {...}}], "prompt": name, "prompt_args": {...},
"resources": true, "sample": {"tool": name, "args": {...}}, "subscribe": {"uri": ...,
"trigger": tool}, "log_level": level, "complete": {"prompt": name, "argument": name, "value": v},
"elicit": {"tool": name}, "complete_resource": {"uri": template, "argument": name, "value": v}};
"transport": "sse" uses the legacy HTTP+SSE client (URL: the /sse stream); "headers": {...}
are sent on every request (credentials).
"subscribe" may add "unsubscribe": true (then the trigger runs again; its text is
"after_unsubscribe").
Prints one JSON object with what the client saw; exits 1 on any error.
"""

import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


async def run(url: str, plan: dict) -> dict:
    out: dict = {}
    updates: list[str] = []
    updated = asyncio.Event()

    async def on_message(message) -> None:
        # Server notifications, e.g. resources/updated from the merged GET stream.
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/resources/updated":
            updates.append(str(root.params.uri))
            updated.set()

    async def on_sample(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled by python"),
            model="test-model",
            stop_reason="endTurn",
        )

    async def on_elicit(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    # "transport": "sse" speaks the deprecated HTTP+SSE transport (URL: the event stream).
    headers = plan.get("headers")
    if plan.get("transport") == "sse":
        transport = sse_client(url, headers=headers)
    else:
        transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(
            read, write, sampling_callback=on_sample, elicitation_callback=on_elicit, message_handler=on_message
        ) as session:
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
                try:
                    result = await session.call_tool(call["name"], call.get("args", {}))
                except MCPError as e:
                    # A JSON-RPC error (a denied or unknown tool): what the client was told.
                    out["calls"].append({"is_error": True, "code": e.code, "text": e.message})
                    continue
                text = result.content[0].text if result.content else None
                out["calls"].append({"is_error": bool(result.is_error), "text": text})
            if plan.get("prompt"):
                prompt = await session.get_prompt(plan["prompt"], plan.get("prompt_args"))
                out["prompt"] = prompt.messages[0].content.text
            if plan.get("sample"):
                sample = plan["sample"]
                result = await session.call_tool(sample["tool"], sample.get("args", {}))
                out["sampled"] = result.content[0].text if result.content else None
            if plan.get("elicit"):
                result = await session.call_tool(plan["elicit"]["tool"], {})
                out["elicited"] = "\n".join(c.text for c in result.content if getattr(c, "text", None))
            if plan.get("log_level"):
                await session.set_logging_level(plan["log_level"])
                out["log_level_set"] = True
            if plan.get("complete"):
                c = plan["complete"]
                completion = await session.complete(types.PromptReference(type="ref/prompt", name=c["prompt"]), {"name": c["argument"], "value": c["value"]})
                out["completions"] = list(completion.completion.values)
            if plan.get("complete_resource"):
                c = plan["complete_resource"]
                ref = types.ResourceTemplateReference(type="ref/resource", uri=c["uri"])
                completion = await session.complete(ref, {"name": c["argument"], "value": c["value"]})
                out["resource_completions"] = list(completion.completion.values)
            if plan.get("subscribe"):
                sub = plan["subscribe"]
                await session.subscribe_resource(sub["uri"])
                await session.call_tool(sub["trigger"], {})
                await asyncio.wait_for(updated.wait(), timeout=15)
                out["updated"] = updates
                if sub.get("unsubscribe"):
                    await session.unsubscribe_resource(sub["uri"])
                    result = await session.call_tool(sub["trigger"], {})
                    out["after_unsubscribe"] = result.content[0].text if result.content else None
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
