# -*- test-case-name: tests.bridge.test_translate -*-
"""
What changes in a message between a stateless (2026-07-28) client and a
session-based (2025) child, both ways.

Towards the child: the stateless ``_meta`` keys and the retry fields go
(a child built on a 2.x SDK would otherwise take the request for a
stateless one), the progress token becomes the broker's. Towards the
client: every result says ``resultType: "complete"``; cacheable results
carry ``ttlMs`` and ``cacheScope: "private"`` (tool lists may differ per
user and per policy); every result names the child's ``serverInfo``; error
codes the revision forbids or reserves are mapped. ``server/discover`` is
answered from the child's ``initialize`` result.

Pure functions on JSON values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fjmcp.bridge.envelope import (
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
    LOG_LEVELS,
    PROTOCOL_VERSION_KEY,
    SERVER_INFO_KEY,
)
from fjmcp.bridge.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from fjmcp.bridge.versions import MODERN_VERSIONS

__all__ = [
    "CACHEABLE_METHODS",
    "METHOD_CAPABILITY",
    "SERVER_REQUESTS",
    "child_params",
    "client_error",
    "client_result",
    "discover_result",
    "missing_capability",
    "server_capabilities",
    "severity",
]

#: Results that must carry ``ttlMs`` and ``cacheScope``.
CACHEABLE_METHODS: Final = frozenset(
    {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)
#: The server capability a method needs (a child without it: 404, -32601).
METHOD_CAPABILITY: Final = {
    "tools/list": "tools",
    "tools/call": "tools",
    "prompts/list": "prompts",
    "prompts/get": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resources",
    "resources/read": "resources",
    "subscriptions/listen": None,
    "completion/complete": "completions",
}
#: Requests a child may send its client, which a stateless client answers
#: only through an input-required result.
SERVER_REQUESTS: Final = frozenset(
    {"sampling/createMessage", "elicitation/create", "roots/list"}
)
_STATELESS_META: Final = (
    PROTOCOL_VERSION_KEY,
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
)
#: 2025 "resource not found", gone in 2026-07-28 (now -32602 with data.uri).
_RESOURCE_NOT_FOUND: Final = -32002
#: Codes the revision reserves for itself.
_RESERVED: Final = range(-32099, -32019)


def severity(level: str) -> int:
    """A log level's rank (debug lowest); unknown levels rank as debug."""
    return LOG_LEVELS.index(level) if level in LOG_LEVELS else 0


def child_params(
    params: Mapping[str, Any], progress_token: int | str | None
) -> dict[str, Any]:
    """
    A stateless request's params as the child gets them: without the
    stateless ``_meta`` keys and retry fields, with the broker's progress
    token in place of the client's (or none).
    """
    retry = ("inputResponses", "requestState")
    out = {k: v for k, v in params.items() if k not in retry}
    meta = params.get("_meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    for key in _STATELESS_META:
        meta.pop(key, None)
    meta.pop("progressToken", None)
    if progress_token is not None:
        meta["progressToken"] = progress_token
    if meta:
        out["_meta"] = meta
    else:
        out.pop("_meta", None)
    return out


def client_result(
    method: str,
    result: Any,
    *,
    server_info: Mapping[str, Any] | None,
    ttl_ms: int,
) -> dict[str, Any]:
    """A child's result as a stateless client gets it."""
    out = dict(result) if isinstance(result, dict) else {}
    out.setdefault("resultType", "complete")
    if method in CACHEABLE_METHODS:
        out.setdefault("ttlMs", ttl_ms)
        out.setdefault("cacheScope", "private")
    if server_info is not None:
        meta = out.get("_meta")
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta.setdefault(SERVER_INFO_KEY, dict(server_info))
        out["_meta"] = meta
    return out


def client_error(error: Mapping[str, Any], uri: Any = None) -> dict[str, Any]:
    """
    A child's error as a stateless client gets it: a 2025 resource-not-found
    becomes -32602 with ``data.uri`` (the child's, else ``uri``, the one the
    request read); a code the revision reserves (or a
    URL-elicitation-required, which a stateless client cannot act on)
    becomes -32603.
    """
    out = dict(error)
    code = out.get("code")
    if code == _RESOURCE_NOT_FOUND:
        out["code"] = INVALID_PARAMS
        data = out.get("data")
        if isinstance(uri, str) and not (isinstance(data, dict) and "uri" in data):
            out["data"] = {**(data if isinstance(data, dict) else {}), "uri": uri}
    elif isinstance(code, int) and (code in _RESERVED or code == -32042):
        out["code"] = INTERNAL_ERROR
    return out


def server_capabilities(init_result: Mapping[str, Any]) -> dict[str, Any]:
    """The child's capabilities as a stateless client may see them (no ``tasks``)."""
    caps = init_result.get("capabilities")
    out = dict(caps) if isinstance(caps, dict) else {}
    out.pop("tasks", None)
    return out


def discover_result(init_result: Mapping[str, Any], ttl_ms: int) -> dict[str, Any]:
    """``server/discover``'s answer, from the child's ``initialize`` result."""
    out: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": server_capabilities(init_result),
        "ttlMs": ttl_ms,
        "cacheScope": "private",
    }
    instructions = init_result.get("instructions")
    if isinstance(instructions, str):
        out["instructions"] = instructions
    info = init_result.get("serverInfo")
    if isinstance(info, dict):
        out["_meta"] = {SERVER_INFO_KEY: info}
    return out


def missing_capability(
    method: str, params: Mapping[str, Any], capabilities: Mapping[str, Any]
) -> dict[str, Any] | None:
    """
    The client capability a child's request to the client needs and the
    client did not declare (as ``requiredCapabilities``), or None. Read as
    the Python SDK does: ``elicitation: {}`` means form mode.
    """
    if method == "sampling/createMessage":
        sampling = capabilities.get("sampling")
        if not isinstance(sampling, dict):
            return {"sampling": {}}
        uses_tools = params.get("tools") or params.get("toolChoice")
        if uses_tools and "tools" not in sampling:
            return {"sampling": {"tools": {}}}
        return None
    if method == "elicitation/create":
        elicitation = capabilities.get("elicitation")
        mode = params.get("mode", "form")
        if not isinstance(elicitation, dict):
            return {"elicitation": {mode: {}}}
        if mode == "url":
            return None if "url" in elicitation else {"elicitation": {"url": {}}}
        if "form" in elicitation or "url" not in elicitation:
            return None
        return {"elicitation": {"form": {}}}
    if method == "roots/list":
        return None if isinstance(capabilities.get("roots"), dict) else {"roots": {}}
    return None
