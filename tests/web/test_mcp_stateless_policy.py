# -*- test-case-name: tests.web.test_mcp_stateless_policy -*-
"""
A 2026-07-28 (stateless) client is held to the same policy as a session
client: its identity child's tools are filtered and refused alike, and the
broker lists the child's tools itself before judging an unseen one.
"""

from __future__ import annotations

from typing import Any

from fjmcp.interfaces import Identity
from tests.bridge.stateless_support import (
    answer,
    bring_up,
    envelope,
    requests_to,
    send,
)
from tests.bridge.support import FixedAuthenticator, Harness, make_config

READ_ONLY = Identity("alice", "client-a", token_id="t-ro", consent="read-only")
TOOLS = [
    {"name": "get_file", "inputSchema": {}, "annotations": {"readOnlyHint": True}},
    {
        "name": "delete_repo",
        "inputSchema": {},
        "annotations": {"destructiveHint": True},
    },
]


def _harness() -> Harness:
    return Harness(
        config=make_config(),
        auth=FixedAuthenticator(known={b"Bearer ro": READ_ONLY}),
    )


def _up(h: Harness) -> Any:
    """Alice's identity child, brought up by a discover."""
    req = send(h, envelope(1, "server/discover"), token=b"Bearer ro")
    child = h.spawner.last
    bring_up(child)
    assert req.status == 200, req.body
    return child


def _answer_list(child: Any) -> None:
    """The child answers the broker's last tools/list with ``TOOLS``."""
    answer(child, requests_to(child, "tools/list")[-1]["id"], {"tools": TOOLS})


def test_a_stateless_read_only_call_is_refused_after_the_broker_lists() -> None:
    """An unseen destructive tool: the broker lists, then refuses; never called."""
    h = _harness()
    child = _up(h)
    req = send(
        h,
        envelope(2, "tools/call", {"name": "delete_repo", "arguments": {}}),
        token=b"Bearer ro",
    )
    _answer_list(child)
    error = req.json()["error"]
    assert "'delete_repo' is not allowed: the grant is read-only" in error["message"]
    assert error["data"]["rule"] == "consent:read-only"
    assert requests_to(child, "tools/call") == []


def test_a_stateless_read_only_list_is_filtered_and_allowed_calls_pass() -> None:
    """tools/list hides the destructive tool; a read-only call reaches the child."""
    h = _harness()
    child = _up(h)
    listed = send(h, envelope(3, "tools/list"), token=b"Bearer ro")
    _answer_list(child)
    assert [t["name"] for t in listed.json()["result"]["tools"]] == ["get_file"]
    call = send(
        h,
        envelope(4, "tools/call", {"name": "get_file", "arguments": {}}),
        token=b"Bearer ro",
    )
    (forwarded,) = requests_to(child, "tools/call")
    assert forwarded["params"]["name"] == "get_file"
    child.emit(b'{"jsonrpc":"2.0","id":%d,"result":{"content":[]}}' % forwarded["id"])
    assert call.json()["result"]["content"] == []
