#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_supervisor_real -*-
"""
A stdio MCP server that talks back in the middle of a call.

Tool ``chatty``: sends ``notifications/progress`` (with the request's
``_meta.progressToken``, if any), a ``notifications/message`` log line
(subject to ``logging/setLevel``), a ``sampling/createMessage`` request and
an ``elicitation/create`` request to the client, waits for both responses,
and answers with what they said. ``sampling``/``elicitation`` arguments
(default true) turn either request off.

Also: ``resources/list``, ``resources/read``, ``resources/subscribe`` (after
answering, sends ``notifications/resources/updated`` for that URI),
``resources/unsubscribe``, ``logging/setLevel``, and the tool ``touch`` that
sends ``notifications/resources/updated`` for every subscribed URI.
"""

from __future__ import annotations

from typing import Any

from _mcp import Answered, Json, RpcError, Server, text_result

LEVELS = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
RESOURCE = {"uri": "test://counter", "name": "counter", "mimeType": "text/plain"}

server = Server(
    "fjmcp-test-chatty",
    {"tools": {}, "resources": {"subscribe": True}, "logging": {}},
)
state: dict[str, Any] = {"level": "debug", "subscribed": set(), "counter": 0}


def log(level: str, data: Any) -> None:
    """Send a notifications/message when ``level`` is at or above the set level."""
    if LEVELS.index(level) >= LEVELS.index(state["level"]):
        server.notify(
            "notifications/message", {"level": level, "logger": "chatty", "data": data}
        )


def progress(params: Json, done: int, total: int, message: str) -> None:
    """Send notifications/progress for the request's token, if it gave one."""
    token = (params.get("_meta") or {}).get("progressToken")
    if token is not None:
        server.notify(
            "notifications/progress",
            {
                "progressToken": token,
                "progress": done,
                "total": total,
                "message": message,
            },
        )


@server.tool(
    "chatty",
    "Progress, logging, sampling and elicitation mid-call",
    {"sampling": {"type": "boolean"}, "elicitation": {"type": "boolean"}},
)
def chatty(_rid: Any, params: Json) -> Json:
    """Talk to the client mid-call, then answer with what it said."""
    args = params.get("arguments") or {}
    progress(params, 1, 4, "started")
    log("info", "chatty: working")
    sampled = elicited = None
    if args.get("sampling", True):
        reply = server.ask_client(
            "sampling/createMessage",
            {
                "messages": [
                    {"role": "user", "content": {"type": "text", "text": "Say hi"}}
                ],
                "maxTokens": 16,
            },
        )
        sampled = (reply.get("result") or {}).get("content", {}).get("text")
    progress(params, 2, 4, "sampled")
    if args.get("elicitation", True):
        reply = server.ask_client(
            "elicitation/create",
            {
                "message": "Your name?",
                "requestedSchema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            },
        )
        result = reply.get("result") or {}
        elicited = {"action": result.get("action"), "content": result.get("content")}
    progress(params, 3, 4, "elicited")
    log("debug", "chatty: done")
    progress(params, 4, 4, "done")
    return text_result(
        f"sampled={sampled!r} elicited={elicited!r}", sampled=sampled, elicited=elicited
    )


@server.tool("touch", "Announce an update of every subscribed resource")
def touch(_rid: Any, _params: Json) -> Json:
    """Bump the counter and notify subscribers."""
    state["counter"] += 1
    for uri in sorted(state["subscribed"]):
        server.notify("notifications/resources/updated", {"uri": uri})
    return text_result(f"counter={state['counter']}")


def resources_list(_rid: Any, _params: Json) -> Json:
    """The one resource."""
    return {"resources": [RESOURCE]}


def resources_read(_rid: Any, params: Json) -> Json:
    """The counter's value."""
    if params.get("uri") != RESOURCE["uri"]:
        raise RpcError(-32002, f"Resource not found: {params.get('uri')!r}")
    return {
        "contents": [
            {
                "uri": RESOURCE["uri"],
                "mimeType": "text/plain",
                "text": str(state["counter"]),
            }
        ]
    }


def subscribe(_rid: Any, params: Json) -> Json:
    """Subscribe and announce one update right after the answer."""
    uri = params.get("uri")
    if not isinstance(uri, str):
        raise RpcError(-32602, "uri required")
    state["subscribed"].add(uri)
    server.send({"jsonrpc": "2.0", "id": _rid, "result": {}})
    server.notify("notifications/resources/updated", {"uri": uri})
    raise Answered


def unsubscribe(_rid: Any, params: Json) -> Json:
    """Forget a subscription."""
    state["subscribed"].discard(params.get("uri"))
    return {}


def set_level(_rid: Any, params: Json) -> Json:
    """Set the lowest level of notifications/message sent."""
    level = params.get("level")
    if level not in LEVELS:
        raise RpcError(-32602, f"unknown level {level!r}")
    state["level"] = level
    return {}


server.methods.update(
    {
        "resources/list": resources_list,
        "resources/read": resources_read,
        "resources/subscribe": subscribe,
        "resources/unsubscribe": unsubscribe,
        "logging/setLevel": set_level,
    }
)


if __name__ == "__main__":
    server.run()
