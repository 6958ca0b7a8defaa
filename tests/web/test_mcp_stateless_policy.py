# -*- test-case-name: tests.web.test_mcp_stateless_policy -*-
"""
A 2026-07-28 (stateless) client is held to the same policy as a session
client: its identity child's tools are filtered and refused alike, and the
broker lists the child's tools itself before judging an unseen one. A
changed consent mode replaces the identity's child: the old one ends with
the grant's revocation, and a child of one mode never serves the other.
"""

from __future__ import annotations

from typing import Any

from fjmcp.interfaces import Identity
from fjmcp.sessions.owner import IdentityKey
from tests.bridge.stateless_support import (
    answer,
    bring_up,
    envelope,
    requests_to,
    send,
)
from tests.bridge.support import FixedAuthenticator, Harness, make_config

READ_ONLY = Identity("alice", "client-a", token_id="t-ro", consent="read-only")
FULL = Identity("alice", "client-a", token_id="t-full", consent="full")
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
        auth=FixedAuthenticator(known={b"Bearer ro": READ_ONLY, b"Bearer full": FULL}),
    )


def _up(h: Harness, token: bytes = b"Bearer ro") -> Any:
    """Alice's identity child, brought up by a discover."""
    req = send(h, envelope(1, "server/discover"), token=token)
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


def _call_delete(h: Harness, rid: int, token: bytes) -> Any:
    return send(
        h,
        envelope(rid, "tools/call", {"name": "delete_repo", "arguments": {}}),
        token=token,
    )


def test_a_changed_consent_mode_replaces_the_identity_child() -> None:
    """
    Full access, then the user makes the grant read-only: the grant's owners
    end (as the account page's change does through the revocation fan-out),
    the next request (with a read-only token) starts a new child, and that
    child's calls are judged read-only.
    """
    h = _harness()
    full_child = _up(h, b"Bearer full")
    allowed = _call_delete(h, 2, b"Bearer full")
    (forwarded,) = requests_to(full_child, "tools/call")
    full_child.emit(
        b'{"jsonrpc":"2.0","id":%d,"result":{"content":[]}}' % forwarded["id"]
    )
    assert allowed.json()["result"]["content"] == []
    assert h.registry.get(IdentityKey.of(FULL)) is not None

    h.registry.end_user_client("alice", "client-a", "consent mode changed")
    assert not full_child.alive
    assert h.registry.get(IdentityKey.of(FULL)) is None

    read_only_child = _up(h)
    assert read_only_child is not full_child
    owner = h.registry.get(IdentityKey.of(READ_ONLY))
    assert owner is not None and owner.identity.consent == "read-only"
    refused = _call_delete(h, 3, b"Bearer ro")
    _answer_list(read_only_child)
    assert refused.json()["error"]["data"]["rule"] == "consent:read-only"
    assert requests_to(read_only_child, "tools/call") == []


def test_a_child_of_one_mode_never_serves_the_other() -> None:
    """
    Even while a full-access child is alive (an owner that started while
    the mode changed), a read-only request gets a child of its own.
    """
    h = _harness()
    full_child = _up(h, b"Bearer full")
    read_only_child = _up(h)
    assert read_only_child is not full_child and full_child.alive
    keys = {IdentityKey.of(FULL), IdentityKey.of(READ_ONLY)}
    assert {o.key for o in h.registry.owners_of("alice")} == keys
    refused = _call_delete(h, 4, b"Bearer ro")
    _answer_list(read_only_child)
    assert refused.json()["error"]["data"]["rule"] == "consent:read-only"
    assert requests_to(full_child, "tools/call") == []
