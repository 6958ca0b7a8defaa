# -*- test-case-name: tests.sessions.test_spawn_gate -*-
"""
Tests for `fjmcp.sessions.spawn_gate`: a bound on children starting at once,
first come first served, slots given back at the first line, the exit or a
timeout, and the queueing time counted; and the registry queueing new
owners' children behind it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from fjmcp.interfaces import ChildExit
from fjmcp.sessions.spawn_gate import (
    WAIT_BOUNDS,
    GatedReceiver,
    SpawnGate,
    default_spawn_limit,
)
from tests.bridge.support import Harness


def _fired(d: Any) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    return results[0] if results else None


def _waiting(d: Any) -> bool:
    return not d.called


def test_starts_within_the_limit_are_immediate() -> None:
    """Below the limit a start needs no wait and counts a zero wait."""
    gate = SpawnGate(Clock(), limit=2)
    assert callable(_fired(gate.acquire())) and callable(_fired(gate.acquire()))
    assert gate.starting == 2 and gate.queued == 0
    assert gate.waits == 2 and gate.waited_total == 0.0
    assert gate.wait_buckets[0] == 2


def test_queued_start_waits_for_a_release_in_order() -> None:
    """Past the limit, starts wait and are served first come, first served."""
    clock = Clock()
    seen: list[float] = []
    gate = SpawnGate(clock, limit=1, observe=seen.append)
    release = _fired(gate.acquire())
    second, third = gate.acquire(), gate.acquire()
    assert gate.queued == 2 and _waiting(second)
    clock.advance(0.25)
    release()
    release()  # idempotent
    assert not _waiting(second) and _waiting(third) and gate.starting == 1
    assert seen == [0.0, 0.25]
    assert gate.wait_buckets[WAIT_BOUNDS.index(0.5)] == 2
    assert gate.wait_buckets[WAIT_BOUNDS.index(0.1)] == 1


def test_a_silent_child_gives_its_slot_back_after_the_timeout() -> None:
    """A start that never releases frees its slot after ``hold_timeout``."""
    clock = Clock()
    gate = SpawnGate(clock, limit=1, hold_timeout=10.0)
    _fired(gate.acquire())
    waiting = gate.acquire()
    clock.advance(9.9)
    assert _waiting(waiting)
    clock.advance(0.1)
    assert not _waiting(waiting)


def test_cancelled_wait_leaves_the_queue() -> None:
    """A cancelled wait (the client went away) takes no slot."""
    gate = SpawnGate(Clock(), limit=1)
    release = _fired(gate.acquire())
    waiting = gate.acquire()
    waiting.cancel()
    assert isinstance(_fired(waiting).value, CancelledError)
    assert gate.queued == 0
    release()
    assert gate.starting == 0


def test_limit_must_be_positive() -> None:
    """A zero limit would never start anything: refused."""
    with pytest.raises(ValueError):
        SpawnGate(Clock(), limit=0)


def test_default_is_four_per_core() -> None:
    """The default allows at least four starts per core."""
    assert default_spawn_limit() >= 4
    assert default_spawn_limit() % 4 == 0


@given(st.lists(st.sampled_from(["acquire", "release"]), max_size=40))
def test_never_more_than_the_limit(steps: list[str]) -> None:
    """Whatever the order of starts and releases, at most ``limit`` hold slots."""
    gate = SpawnGate(Clock(), limit=3)
    held: list[Any] = []
    pending: list[Any] = []
    for step in steps:
        if step == "acquire":
            d = gate.acquire()
            d.addCallback(held.append)
            pending.append(d)
        elif held:
            held.pop(0)()
        assert gate.starting <= 3
        assert gate.starting == len(held)


class Recorder:
    """A receiver that remembers what it got."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.exits: list[ChildExit] = []

    def line_received(self, line: bytes) -> None:
        """Remember the line."""
        self.lines.append(line)

    def child_exited(self, exit: ChildExit) -> None:
        """Remember the exit."""
        self.exits.append(exit)


def test_gated_receiver_releases_at_first_line_or_exit() -> None:
    """The slot goes back at the first line (or the exit); all is passed on."""
    released: list[int] = []
    inner = Recorder()
    gated = GatedReceiver(inner, lambda: released.append(1))
    gated.line_received(b"{}")
    gated.child_exited(ChildExit("exited", exit_code=0))
    assert inner.lines == [b"{}"] and len(inner.exits) == 1
    assert released  # release itself is idempotent in the gate


def _initialize(h: Harness, token: bytes = b"Bearer alice-token") -> Any:
    return h.post(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        },
        token=token,
    )


def test_registry_queues_new_children_behind_the_gate() -> None:
    """With one slot, a second session's child starts once the first spoke."""
    h = Harness()
    gate = SpawnGate(h.clock, limit=1)
    h.registry._spawn_gate = gate
    _initialize(h)
    _initialize(h)
    assert len(h.spawner.children) == 1 and gate.queued == 1
    first = h.spawner.children[0]
    init = json.loads(first.written[-1])
    first.emit(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": init["id"],
                "result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "serverInfo": {"name": "fake", "version": "1"},
                },
            }
        ).encode()
    )
    assert len(h.spawner.children) == 2 and gate.queued == 0


def _answer_initialize(child: Any, version: str = "1") -> None:
    init = json.loads(child.written[0])
    child.emit(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": init["id"],
                "result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "serverInfo": {"name": "fake", "version": version},
                },
            }
        ).encode()
    )


def test_a_respawn_queues_behind_the_gate_like_a_first_spawn() -> None:
    """A token rotation's new child waits for a slot (counted as a wait),
    holds it until it speaks, and then lets the next start in."""
    h = Harness()
    gate = SpawnGate(h.clock, limit=1)
    h.registry._spawn_gate = gate
    sid = _initialize(h).header(b"mcp-session-id").decode()
    first = h.spawner.children[0]
    _answer_initialize(first)
    h.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid)
    _initialize(h, b"Bearer bob-token")  # bob's child holds the only slot
    assert len(h.spawner.children) == 2 and gate.starting == 1
    h.registry.token_rotated(h.tokens.rotate("alice"))
    assert len(h.spawner.children) == 2 and gate.queued == 1
    _answer_initialize(h.spawner.children[1])
    respawned = h.spawner.last
    assert len(h.spawner.children) == 3 and gate.queued == 0
    assert respawned.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"
    assert gate.starting == 1 and gate.waits == 3
    _initialize(h, b"Bearer bob-token")  # waits for the respawned child's slot
    assert len(h.spawner.children) == 3 and gate.queued == 1
    _answer_initialize(respawned, "2")
    assert len(h.spawner.children) == 4


def test_a_respawn_that_cannot_start_gives_its_slot_back() -> None:
    """A spawn that raises during a respawn does not keep the slot."""
    h = Harness()
    gate = SpawnGate(h.clock, limit=1)
    h.registry._spawn_gate = gate
    sid = _initialize(h).header(b"mcp-session-id").decode()
    _answer_initialize(h.spawner.children[0])
    h.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid)
    h.spawner.fail_with = OSError(2, "gone")
    h.registry.token_rotated(h.tokens.rotate("alice"))
    assert gate.starting == 0 and gate.queued == 0
