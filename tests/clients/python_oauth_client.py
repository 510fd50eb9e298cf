"""The official Python SDK's client with its OAuth support (`mcp.client.auth`), against an
endpoint that asks for authorization: it starts without a token, gets the 401, reads the
Protected Resource Metadata and the authorization server's metadata, registers itself
(dynamic client registration), runs authorization code + PKCE with the resource indicator,
and retries. The user's part (the authorization server's login and consent pages) is
scripted: the browser the SDK would open is an HTTP client that fills in the forms.

    python python_oauth_client.py URL MODE USER STEPS_JSON

MODE: `legacy` (the 2025 handshake) or `2026-07-28`. STEPS: [{"list": true} | {"call": NAME,
"args": {...}} | {"sleep": SECONDS}], run in order in one session. Prints one JSON object: per
step the tool names or the call's text (or {"error": ...}), every authorization URL the SDK
sent the user to, and the access tokens it was given (as issued, and their claims); or
{"error": ..., "type": ...}.
"""

import asyncio
import base64
import json
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:9/callback"


class Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.issued: list[dict] = []
        self.raw: list[str] = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens
        self.raw.append(tokens.access_token)
        payload = tokens.access_token.split(".")[1]
        self.issued.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


class User:
    """Logs in as `name` and consents to everything the client asks for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.visited: list[str] = []
        self.result: AuthorizationCodeResult | None = None

    async def authorize(self, url: str) -> None:
        self.visited.append(url)
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
            location = url
            for _ in range(12):
                if location.startswith(REDIRECT):
                    query = parse_qs(urlparse(location).query)
                    if "error" in query:
                        raise RuntimeError(f"authorization refused: {query}")
                    self.result = AuthorizationCodeResult(
                        code=query["code"][0],
                        state=query.get("state", [None])[0],
                        iss=query.get("iss", [None])[0],
                    )
                    return
                page = await browser.get(location)
                if page.status_code in (302, 303):
                    location = urljoin(location, page.headers["location"])
                    continue
                if page.status_code != 200 or "/interaction/" not in location:
                    raise RuntimeError(f"unexpected page {location}: {page.status_code} {page.text[:300]}")
                form = {"prompt": "login", "login": self.name, "password": "x"}
                if 'name="login"' not in page.text:
                    form = {"prompt": "consent"}
                answer = await browser.post(location, data=form)
                location = urljoin(location, answer.headers["location"])
            raise RuntimeError("the authorization never came back to the client")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        result, self.result = self.result, None
        return result


async def run(url: str, mode: str, user: User, steps: list) -> dict:
    storage = Memory()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="switchboard test client",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.authorize,
        callback_handler=user.callback,
    )
    out: dict = {"steps": []}
    transport = streamable_http_client(url, http_client=create_mcp_http_client(auth=auth))
    try:
        async with Client(transport, mode=mode, read_timeout_seconds=20) as client:
            out["protocol_version"] = client.protocol_version
            for step in steps:
                try:
                    if "sleep" in step:
                        await asyncio.sleep(step["sleep"])
                        out["steps"].append({})
                    elif step.get("list"):
                        tools = await client.list_tools()
                        out["steps"].append({"tools": sorted(t.name for t in tools.tools)})
                    else:
                        result = await client.call_tool(step["call"], step.get("args", {}))
                        text = "".join(getattr(c, "text", "") for c in result.content)
                        out["steps"].append({"is_error": bool(result.is_error), "text": text})
                except Exception as e:  # noqa: BLE001 - the caller asserts on what failed
                    out["steps"].append({"error": str(e)})
    finally:
        out["authorizations"] = user.visited
        out["tokens"] = storage.issued
        out["access_tokens"] = storage.raw
    return out


def main() -> None:
    url, mode, name, steps = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    user = User(name)
    try:
        out = asyncio.run(asyncio.wait_for(run(url, mode, user, steps), 80))
    except BaseException as e:  # noqa: BLE001 - the caller asserts on what failed
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        out = {"error": str(e), "type": type(e).__name__, "authorizations": user.visited}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
