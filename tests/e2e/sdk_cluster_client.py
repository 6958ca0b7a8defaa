# -*- test-case-name: tests.integration.test_two_nodes -*-
"""
The official Python SDK's client through HAProxy in front of two fjmcp
nodes, run by ``tests/integration/test_two_nodes.py`` in ``.venv-sdk``.

It signs in as ``sdk_client.py`` does (the SDK's OAuth provider, the
"browser" submitting the consent and login forms), opens a session with
the session-based protocol (``mode="legacy"``: a 2026-07-28 client has no
session to lose) and calls tools. Then it prints ``{"holding": SESSION}``
and waits for a line on stdin: meanwhile the test kills that session's
node. It calls again on the old session and records what the SDK
surfaced; then it builds a new ``Client`` on the same HTTP client (the
same OAuth provider and tokens: no new sign-in), which lands on the
surviving node, and keeps calling tools. The last line is ``{"done":
{...}}`` with every HTTP exchange of the MCP side (method, path, status,
session id; never a token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from sdk_client import Browser, MemoryStorage, oauth_provider


def _texts(result: Any) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; returns what the test judges."""
    exchanges: list[dict[str, Any]] = []

    async def record(response: httpx2.Response) -> None:
        request = response.request
        exchanges.append(
            {
                "method": request.method,
                "url": str(request.url.copy_with(query=None)),
                "status": response.status_code,
                "sent_session": request.headers.get("mcp-session-id"),
                "session": response.headers.get("mcp-session-id"),
            }
        )

    storage = MemoryStorage()
    browser = Browser(args.user, args.password)
    provider = oauth_provider(
        args.mcp_url, storage, browser, "fjmcp cluster test (official Python SDK)"
    )
    http = create_mcp_http_client(auth=provider)
    http.event_hooks = {"response": [record]}
    out: dict[str, Any] = {}
    async with http:
        async with Client(
            streamable_http_client(args.mcp_url, http_client=http), mode="legacy"
        ) as client:
            out["protocol_version"] = client.protocol_version
            out["whoami"] = _texts(await client.call_tool("whoami", {}))
            out["echo_before"] = _texts(
                await client.call_tool("echo", {"text": "before"})
            )
            holding = next(e["session"] for e in exchanges if e["session"])
            out["holding"] = holding
            out["exchanges_before_kill"] = len(exchanges)
            out["token_sets_before_kill"] = len(storage.token_history)
            print(json.dumps({"holding": holding}), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            try:
                result = await client.call_tool("echo", {"text": "after the kill"})
                out["old_session"] = {"answered": _texts(result)}
            except MCPError as e:
                out["old_session"] = {"code": e.code, "message": e.message}
        # Leaving the Client sent DELETE for the dead session (404, ignored).
        async with Client(
            streamable_http_client(args.mcp_url, http_client=http), mode="legacy"
        ) as client:
            out["echo_after"] = [
                _texts(await client.call_tool("echo", {"text": f"again {n}"}))
                for n in range(3)
            ]
            out["whoami_after"] = _texts(await client.call_tool("whoami", {}))
        out["new_session"] = [e["session"] for e in exchanges if e["session"]][-1]
    out["token_sets"] = len(storage.token_history)
    out["pages"] = browser.pages
    out["exchanges"] = exchanges
    return out


def main() -> int:
    """Run and print the outcome as the last JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mcp-url", required=True)
    args = parser.parse_args()
    args.user = os.environ["E2E_USER"]
    args.password = os.environ["E2E_PASSWORD"]
    try:
        out = asyncio.run(run(args))
    except BaseException as e:  # report everything the SDK raised, grouped or not
        print(
            json.dumps({"error": repr(e), "traceback": traceback.format_exc()}),
            flush=True,
        )
        return 1
    print(json.dumps({"done": out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
