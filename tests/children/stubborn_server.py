#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_supervisor_real -*-
"""
A stdio MCP server that ignores SIGTERM and outlives its stdin.

It answers like the echo server, but neither SIGTERM nor the end of stdin
ends it: only SIGKILL does. The supervisor's TERM-then-KILL is tested on it.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from _mcp import Json, Server, text_result

server = Server("fjmcp-test-stubborn")


@server.tool("echo", "Echo the message back", {"message": {"type": "string"}})
def echo(_rid: Any, params: Json) -> Json:
    """Return the message unchanged."""
    return text_result(str((params.get("arguments") or {}).get("message", "")))


def wait_forever() -> None:
    """Stdin is closed: keep running until killed."""
    sys.stderr.write("stubborn_server: stdin closed, staying up\n")
    sys.stderr.flush()
    while True:
        signal.pause()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server.on_eof = wait_forever
    server.run()
