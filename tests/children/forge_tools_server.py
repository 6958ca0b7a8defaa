#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_policy_real -*-
"""
A stdio MCP server with Forgejo-like tools, some read-only and some
destructive, some annotated and some not, listed two per page.

Tools: ``get_file`` and ``list_issues`` (``readOnlyHint: true``),
``create_issue`` (no annotations), ``delete_repo`` (``readOnlyHint: false``,
``destructiveHint: true``), ``count_stars`` (no annotations: read-only only
if the operator lists it). Each answers ``called NAME``.
"""

from __future__ import annotations

from typing import Any

from _mcp import Json, Server, text_result

server = Server("fjmcp-test-forge")
PAGE = 2
ANNOTATIONS: dict[str, Json] = {
    "get_file": {"readOnlyHint": True},
    "list_issues": {"readOnlyHint": True},
    "delete_repo": {"readOnlyHint": False, "destructiveHint": True},
}


def _called(name: str) -> Any:
    def handler(_rid: Any, _params: Json) -> Json:
        return text_result(f"called {name}")

    return handler


for tool in ("get_file", "create_issue", "list_issues", "delete_repo", "count_stars"):
    server.tool(tool, f"The {tool} tool")(_called(tool))
    if tool in ANNOTATIONS:
        server.tools[tool][0]["annotations"] = ANNOTATIONS[tool]


def _list(_rid: Any, params: Json) -> Json:
    """Two tools per page; the cursor is the next index."""
    listed = [meta for meta, _ in server.tools.values()]
    start = int(params.get("cursor") or 0)
    page: Json = {"tools": listed[start : start + PAGE]}
    if start + PAGE < len(listed):
        page["nextCursor"] = str(start + PAGE)
    return page


server.methods["tools/list"] = lambda rid, params: _list(rid, params or {})

if __name__ == "__main__":
    server.run()
