# -*- test-case-name: tests.web.test_mcp_listen -*-
"""
Tests of ``subscriptions/listen``: the acknowledgement first with the
honoured subset, relayed notifications tagged with the subscription id,
reference-counted resource subscriptions at the child, the end of a stream
ending its subscriptions, a respawned child subscribed again, and the final
result when the owner ends.
"""

from __future__ import annotations

import json
from typing import Any

from fjmcp.sessions.owner import IdentityKey
from tests.bridge.stateless_support import (
    answer,
    bring_up,
    envelope,
    requests_to,
    send,
)
from tests.bridge.support import ALICE, Harness

SUB = "io.modelcontextprotocol/subscriptionId"
CAPS = {
    "tools": {"listChanged": True},
    "prompts": {},
    "resources": {"subscribe": True, "listChanged": False},
}


def _up(h: Harness) -> Any:
    send(h, envelope(0, "server/discover"))
    child = h.spawner.last
    bring_up(child, CAPS)
    return child


def _listen(h: Harness, id: Any, notifications: dict[str, Any]) -> Any:
    return send(
        h, envelope(id, "subscriptions/listen", {"notifications": notifications})
    )


def _emit(child: Any, method: str, params: dict[str, Any] | None = None) -> None:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    child.emit(json.dumps(body).encode())


def test_the_first_message_acknowledges_the_honoured_subset() -> None:
    """
    Only what the child supports is acknowledged (tools list changes and
    resource subscriptions here, not prompts), on an SSE stream.
    """
    h = Harness()
    _up(h)
    req = _listen(
        h,
        "L1",
        {
            "toolsListChanged": True,
            "promptsListChanged": True,
            "resourcesListChanged": True,
            "resourceSubscriptions": ["file:///a"],
        },
    )
    assert req.header(b"content-type") == b"text/event-stream"
    assert req.header(b"x-accel-buffering") == b"no"
    ack = req.messages()[0]
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"] == {
        "_meta": {SUB: "L1"},
        "notifications": {
            "toolsListChanged": True,
            "resourceSubscriptions": ["file:///a"],
        },
    }


def test_notifications_are_relayed_tagged_to_the_streams_that_asked() -> None:
    """list_changed goes to the tools listener, updated to the URI's listeners."""
    h = Harness()
    child = _up(h)
    tools = _listen(h, 1, {"toolsListChanged": True})
    files = _listen(h, 2, {"resourceSubscriptions": ["file:///a"]})
    _emit(child, "notifications/tools/list_changed")
    _emit(child, "notifications/resources/updated", {"uri": "file:///a"})
    _emit(child, "notifications/resources/updated", {"uri": "file:///b"})
    _emit(child, "notifications/message", {"level": "error", "data": "x"})
    assert [m["method"] for m in tools.messages()[1:]] == [
        "notifications/tools/list_changed"
    ]
    assert tools.messages()[1]["params"]["_meta"] == {SUB: 1}
    updates = files.messages()[1:]
    assert [m["params"]["uri"] for m in updates] == ["file:///a"]
    assert updates[0]["params"]["_meta"] == {SUB: 2}


def test_resource_subscriptions_are_reference_counted() -> None:
    """Two streams on one URI: one subscribe; unsubscribe when the last closes."""
    h = Harness()
    child = _up(h)
    first = _listen(h, 1, {"resourceSubscriptions": ["file:///a"]})
    second = _listen(h, 2, {"resourceSubscriptions": ["file:///a", "file:///a"]})
    subscribes = requests_to(child, "resources/subscribe")
    assert [m["params"]["uri"] for m in subscribes] == ["file:///a"]
    first.disconnect()
    assert requests_to(child, "resources/unsubscribe") == []
    second.disconnect()
    unsubscribes = requests_to(child, "resources/unsubscribe")
    assert [m["params"]["uri"] for m in unsubscribes] == ["file:///a"]
    _emit(child, "notifications/resources/updated", {"uri": "file:///a"})
    assert len(second.messages()) == 1


def test_a_listen_stream_keeps_the_child_from_being_reaped() -> None:
    """An open listen stream is activity: the idle reaper leaves the child."""
    h = Harness()
    child = _up(h)
    req = _listen(h, 1, {"toolsListChanged": True})
    h.clock.advance(100)
    h.registry.reap_idle(h.clock.seconds(), 50)
    assert child.alive
    req.disconnect()
    h.registry.reap_idle(h.clock.seconds(), 50)
    assert not child.alive


def test_a_respawned_child_is_subscribed_again() -> None:
    """After a token refresh the new child gets the live subscriptions."""
    h = Harness()
    _up(h)
    _listen(h, 1, {"resourceSubscriptions": ["file:///a"]})
    h.registry.token_rotated(h.tokens.rotate("alice"))
    new = h.spawner.last
    bring_up(new, CAPS)
    subscribes = requests_to(new, "resources/subscribe")
    assert [m["params"]["uri"] for m in subscribes] == ["file:///a"]
    answer(new, subscribes[0]["id"], {})
    owner = h.registry.get(IdentityKey.of(ALICE))
    assert owner is not None and owner.generation == 2


def test_the_owner_ending_ends_each_stream_with_its_result() -> None:
    """The child exits: each listen stream's last message is its final result."""
    h = Harness()
    child = _up(h)
    req = _listen(h, "L", {"toolsListChanged": True})
    child.exit()
    last = req.messages()[-1]
    assert last == {
        "jsonrpc": "2.0",
        "id": "L",
        "result": {"resultType": "complete", "_meta": {SUB: "L"}},
    }
    assert req.finished
