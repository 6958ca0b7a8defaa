#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_supervisor_real -*-
"""
A stdio MCP server that dies in the middle of a tools/call.

Tool ``crash``: sends a ``notifications/message``, optionally half a JSON
line without its newline (``partial: true``), then exits with status
``code`` (default 7) without answering. ``echo`` works as usual, so a test
can show the child was fine before.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from _mcp import Json, Server, text_result

server = Server("fjmcp-test-crash", {"tools": {}, "logging": {}})


@server.tool("echo", "Echo the message back", {"message": {"type": "string"}})
def echo(_rid: Any, params: Json) -> Json:
    """Return the message unchanged."""
    return text_result(str((params.get("arguments") or {}).get("message", "")))


@server.tool(
    "crash",
    "Exit mid-call",
    {"code": {"type": "integer"}, "partial": {"type": "boolean"}},
)
def crash(_rid: Any, params: Json) -> Json:
    """Notify, maybe write half a line, then exit without answering."""
    args = params.get("arguments") or {}
    server.notify(
        "notifications/message",
        {"level": "error", "logger": "crash", "data": "about to crash"},
    )
    if args.get("partial"):
        sys.stdout.buffer.write(b'{"jsonrpc":"2.0","id":')
        sys.stdout.buffer.flush()
    sys.stderr.write("crash_server: crashing now\n")
    sys.stderr.flush()
    os._exit(int(args.get("code", 7)))


if __name__ == "__main__":
    server.run()
