# -*- test-case-name: tests.e2e.test_sdk_stateless -*-
"""
The official Python SDK (``mcp`` 2.3.0) as a stateless (2026-07-28) client
of a live fjmcp whose child asks for sampling and elicitation mid-call, run
by ``tests/e2e/test_sdk_stateless.py`` in ``.venv-sdk``.

The bearer token is given (the OAuth flow is covered by ``sdk_client.py``).
The SDK probes ``server/discover``, stays stateless, and answers the
broker's input-required results through its own callbacks and retry loop.
It prints one JSON object with what it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from typing import Any

import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, token: str) -> dict[str, Any]:
    """Discover, list, call the chatty tool, then two calls at once."""
    asked: list[str] = []
    logs: list[str] = []
    progress: list[float] = []

    async def sampling(context: Any, params: Any) -> types.CreateMessageResult:
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="hi there"),
            model="test",
        )

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def logged(params: Any) -> None:
        logs.append(str(params.level))

    async def progressed(
        value: float, total: float | None, message: str | None
    ) -> None:
        progress.append(value)

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            logging_callback=logged,
            log_level="info",
        ) as client:
            tools = await client.list_tools()
            # Alone: with two requests asking for logs, none would be relayed.
            chatty = await client.call_tool("chatty", {}, progress_callback=progressed)
            touches = await asyncio.gather(
                client.call_tool("touch", {}), client.call_tool("touch", {})
            )
            return {
                "protocol_version": client.protocol_version,
                "tools": sorted(t.name for t in tools.tools),
                "structured": chatty.structured_content,
                "is_error": bool(chatty.is_error),
                "asked": asked,
                "logs": logs,
                "progress": progress,
                "touch_errors": [bool(t.is_error) for t in touches],
            }


def main() -> int:
    """Run and print the outcome as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    try:
        out = asyncio.run(run(args.mcp_url, args.token))
    except BaseException as e:  # report everything the SDK raised
        print(json.dumps({"error": repr(e), "traceback": traceback.format_exc()}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
