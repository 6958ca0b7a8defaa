# -*- test-case-name: tests.web.test_mcp_stateless -*-
"""
Helpers for stateless (2026-07-28) requests on the bridge harness: a
request with its ``_meta`` envelope and matching headers, and a fake child
that answers the broker's own ``initialize``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fjmcp.testing import FakeChild
from tests.bridge.support import Harness, TestRequest

MODERN = "2026-07-28"
PV = "io.modelcontextprotocol/protocolVersion"
CAPS = "io.modelcontextprotocol/clientCapabilities"
INFO = "io.modelcontextprotocol/clientInfo"
LOG = "io.modelcontextprotocol/logLevel"
SERVER_INFO = "io.modelcontextprotocol/serverInfo"

CHILD_CAPS: dict[str, Any] = {
    "tools": {"listChanged": True},
    "prompts": {},
    "resources": {"subscribe": True},
    "logging": {},
    "tasks": {"list": {}},
}


def envelope(
    id: Any,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    capabilities: dict[str, Any] | None = None,
    log_level: str | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """A stateless request body."""
    meta: dict[str, Any] = {
        PV: MODERN,
        CAPS: capabilities if capabilities is not None else {},
        INFO: {"name": "test", "version": "1"},
    }
    if log_level is not None:
        meta[LOG] = log_level
    if progress is not None:
        meta["progressToken"] = progress
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    body["params"] = {**(params or {}), "_meta": meta}
    return body


def routing_headers(body: dict[str, Any]) -> dict[bytes, bytes]:
    """The headers a conforming client sends with ``body``."""
    headers = {
        b"mcp-protocol-version": MODERN.encode(),
        b"mcp-method": body["method"].encode(),
    }
    params = body.get("params", {})
    name = params.get("uri" if body["method"] == "resources/read" else "name")
    if body["method"] in ("tools/call", "prompts/get", "resources/read"):
        raw = str(name).encode()
        if not all(0x20 <= b <= 0x7E for b in raw):
            raw = b"=?base64?" + base64.b64encode(raw) + b"?="
        headers[b"mcp-name"] = raw
    return headers


def send(
    h: Harness,
    body: dict[str, Any],
    *,
    token: bytes = b"Bearer alice-token",
    headers: dict[bytes, bytes] | None = None,
) -> TestRequest:
    """POST a stateless request with its routing headers."""
    all_headers = routing_headers(body)
    all_headers.update(headers or {})
    return h.post(body, token=token, headers=all_headers)


def bring_up(child: FakeChild, capabilities: dict[str, Any] | None = None) -> None:
    """Answer the broker's initialize as a 2025-11-25 child would."""
    first = json.loads(child.written[0])
    assert first["method"] == "initialize"
    child.emit(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": first["id"],
                "result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": capabilities or CHILD_CAPS,
                    "serverInfo": {"name": "fake", "version": "1"},
                    "instructions": "be nice",
                },
            }
        ).encode()
    )


def requests_to(child: FakeChild, method: str | None = None) -> list[dict[str, Any]]:
    """What the broker wrote to the child (by method when given)."""
    out = [json.loads(line) for line in child.written]
    return [m for m in out if method is None or m.get("method") == method]


def answer(child: FakeChild, child_id: Any, result: Any) -> None:
    """The child answers the broker's request ``child_id``."""
    child.emit(
        json.dumps({"jsonrpc": "2.0", "id": child_id, "result": result}).encode()
    )
