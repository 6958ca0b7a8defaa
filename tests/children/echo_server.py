#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_supervisor_real -*-
"""
A stdio MCP server that echoes, and reports what environment it was given.

Tools: ``echo`` (returns ``message``), ``whoami_env`` (whether the token
variable is set, the NAMES of every variable it sees, its pid, session id,
uid and gid; never the token's value), ``stderr`` (writes ``text`` to stderr
``count`` times). Exits 0 when stdin closes.

Environment:
  ECHO_REQUIRE_TOKEN=VAR  exit 3 at start unless $VAR is set and non-empty.
  ECHO_STDERR_TOKEN=VAR   at start, write a stderr line containing $VAR's
                          value (so a test can check the broker redacts it).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from _mcp import Json, Server, text_result

server = Server("fjmcp-test-echo")
TOKEN_ENV_DEFAULT = "FORGEJO_ACCESS_TOKEN"


@server.tool("echo", "Echo the message back", {"message": {"type": "string"}})
def echo(_rid: Any, params: Json) -> Json:
    """Return the message unchanged."""
    args = params.get("arguments") or {}
    message = args.get("message")
    if not isinstance(message, str):
        return {
            "content": [{"type": "text", "text": "missing 'message'"}],
            "isError": True,
        }
    return text_result(message)


@server.tool(
    "whoami_env", "Report the environment names and ids", {"var": {"type": "string"}}
)
def whoami_env(_rid: Any, params: Json) -> Json:
    """Report which variable names are set (never their values) and process ids."""
    args = params.get("arguments") or {}
    var = args.get("var") or TOKEN_ENV_DEFAULT
    info = {
        "token_env": var,
        "token_set": bool(os.environ.get(var)),
        "env_names": sorted(os.environ),
        "pid": os.getpid(),
        "sid": os.getsid(0),
        "pgid": os.getpgid(0),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "argv0": sys.argv[0],
    }
    return text_result(f"token_set={info['token_set']}", **info)


@server.tool(
    "stderr",
    "Write text to stderr count times",
    {"text": {"type": "string"}, "count": {"type": "integer"}},
)
def stderr(_rid: Any, params: Json) -> Json:
    """Write ``text`` to stderr ``count`` times, one line each."""
    args = params.get("arguments") or {}
    text = str(args.get("text", "hello"))
    count = int(args.get("count", 1))
    for _ in range(count):
        sys.stderr.write(text + "\n")
    sys.stderr.flush()
    return text_result(f"wrote {count} lines")


def main() -> None:
    """Check the required token, maybe leak it to stderr, then serve."""
    required = os.environ.get("ECHO_REQUIRE_TOKEN")
    if required and not os.environ.get(required):
        sys.stderr.write(f"echo_server: {required} is empty or unset\n")
        sys.stderr.flush()
        sys.exit(3)
    leak = os.environ.get("ECHO_STDERR_TOKEN")
    if leak:
        sys.stderr.write(
            f"echo_server: starting with token {os.environ.get(leak, '')}\n"
        )
        sys.stderr.flush()
    server.run()


if __name__ == "__main__":
    main()
