# -*- test-case-name: tests.bridge.test_handshake -*-
"""
Tests for `fjmcp.bridge.handshake`: what a session remembers for a respawn
(`ReplayState`), the replayed handshake, and the broker's own ``initialize``
toward a child no client initialized (`BrokerInitializer`), alone against a
fake child and through the registry's bring-up of an identity's child.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.bridge.handshake import (
    HANDSHAKE_TIMEOUT,
    BrokerInitializer,
    Negotiated,
    ReplayHandshaker,
    ReplayState,
)
from fjmcp.bridge.jsonrpc import parse_line
from fjmcp.interfaces import ChildExit, ChildSpec, Identity
from fjmcp.sessions.handshake import HandshakeFailedError
from fjmcp.sessions.owner import ChildOwner, IdentityKey
from fjmcp.sessions.registry import SessionRegistry, SessionSettings, SpawnFailedError
from fjmcp.testing import FakeChild, FakeSpawner, RecordingReceiver
from tests.bridge.support import FakeTokens, line, note, result, rpc, spec_factory
from tests.sessions.support import QuietRouter

VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ALICE = Identity("alice", "client-a")


def _child() -> FakeChild:
    return FakeChild(ChildSpec(("mcp-child",), {}, "test"), RecordingReceiver())


def _message(msg: dict[str, Any]) -> Any:
    return parse_line(line(msg))[0]


def _outcome(d: Deferred[Any]) -> list[object]:
    seen: list[object] = []
    d.addBoth(seen.append)
    return seen


def _init_answer(request_line: bytes, version: str = "2025-11-25") -> bytes:
    request = json.loads(request_line)
    return line(
        {
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "forgejo-mcp", "version": "1"},
            },
        }
    )


def _initializer(clock: Clock, negotiated: Negotiated) -> BrokerInitializer:
    return BrokerInitializer(
        negotiated,
        clock,
        versions=VERSIONS,
        client_info={"name": "fjmcp", "version": "test"},
        capabilities={"sampling": {}},
    )


# -- ReplayState ---------------------------------------------------------------


def test_replay_state_keeps_what_a_new_child_must_be_told() -> None:
    """initialize, initialized, the last setLevel and live subscriptions are
    kept; an unsubscribe drops its URI; other requests and responses are not."""
    state = ReplayState()
    for msg in (
        rpc(0, "initialize", {"protocolVersion": "2025-11-25"}),
        note("notifications/initialized"),
        rpc(1, "logging/setLevel", {"level": "info"}),
        rpc(2, "logging/setLevel", {"level": "debug"}),
        rpc(3, "resources/subscribe", {"uri": "a"}),
        rpc(4, "resources/subscribe", {"uri": "b"}),
        rpc(5, "resources/unsubscribe", {"uri": "a"}),
        rpc(6, "resources/subscribe", {"uri": 7}),
        rpc(7, "tools/call", {"name": "x"}),
        {"jsonrpc": "2.0", "id": 8, "result": {}},
    ):
        state.remember(_message(msg))
    assert state.initialize is not None and state.initialize.id_json == "0"
    assert state.initialized is not None
    assert state.log_level is not None and state.log_level.params["level"] == "debug"
    assert list(state.subscriptions) == ["b"]


# -- the replayed handshake ----------------------------------------------------------


def _replay_ready() -> tuple[ReplayState, Negotiated]:
    state = ReplayState()
    state.remember(_message(rpc(0, "initialize", {"protocolVersion": "2025-11-25"})))
    state.remember(_message(note("notifications/initialized")))
    negotiated = Negotiated()
    negotiated.record(json.loads(_init_answer(b'{"id":0}'))["result"])
    return state, negotiated


def test_replay_is_not_ready_before_the_client_initialized() -> None:
    """A session whose client has not sent initialize has nothing to replay."""
    clock = Clock()
    assert not ReplayHandshaker(ReplayState(), Negotiated(), clock).ready
    state, negotiated = _replay_ready()
    assert ReplayHandshaker(state, negotiated, clock).ready


def test_replay_without_an_answer_times_out_without_ending_the_session() -> None:
    """A new child that never answers the replayed initialize fails the
    handshake after HANDSHAKE_TIMEOUT, not fatally (the old child serves on)."""
    clock = Clock()
    state, negotiated = _replay_ready()
    child = _child()
    handshake = ReplayHandshaker(state, negotiated, clock).begin(child, 2)
    assert json.loads(child.written[0])["id"] == "fjmcp-respawn-2-initialize"
    seen = _outcome(handshake.done)
    clock.advance(HANDSHAKE_TIMEOUT - 1)
    assert seen == []
    clock.advance(1)
    [failure] = seen
    assert isinstance(failure, Failure)
    error = failure.value
    assert isinstance(error, HandshakeFailedError) and not error.fatal
    assert clock.getDelayedCalls() == []


# -- the broker's own initialize ------------------------------------------------------


def test_broker_initializes_a_child_itself() -> None:
    """
    Toward a child no client initialized, the broker sends initialize (the
    newest version it speaks, its capabilities, its clientInfo, a broker
    id), ignores other lines, records the child's answer, then sends
    notifications/initialized; the handshake is then done.
    """
    clock = Clock()
    negotiated = Negotiated()
    child = _child()
    handshake = _initializer(clock, negotiated).begin(child, 1)
    seen = _outcome(handshake.done)
    [sent] = child.written
    request = json.loads(sent)
    assert request["method"] == "initialize"
    assert request["id"] == "fjmcp-init-1-initialize"
    assert request["params"] == {
        "protocolVersion": "2025-11-25",
        "capabilities": {"sampling": {}},
        "clientInfo": {"name": "fjmcp", "version": "test"},
    }
    handshake.line_received(b"not json")
    handshake.line_received(line(note("notifications/message", {"level": "info"})))
    handshake.line_received(result(0))  # not the broker's id
    assert seen == []
    handshake.line_received(_init_answer(sent, "2025-06-18"))
    assert seen == [None]
    assert negotiated.protocol_version == "2025-06-18"
    assert negotiated.init_result is not None
    assert negotiated.init_result["serverInfo"]["name"] == "forgejo-mcp"
    assert json.loads(child.written[-1]) == {
        "jsonrpc": "2.0",
        "method": "notifications/initialized",
    }
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    "answer",
    [
        {"error": {"code": -32602, "message": "unsupported"}},
        {"result": {"protocolVersion": "1999-01-01", "capabilities": {}}},
        {"result": {"capabilities": {}}},
    ],
)
def test_broker_initialize_refused_is_fatal(answer: dict[str, Any]) -> None:
    """An error, or a version the broker does not speak, fails the handshake
    fatally and records nothing; initialized is not sent."""
    clock = Clock()
    negotiated = Negotiated()
    child = _child()
    handshake = _initializer(clock, negotiated).begin(child, 1)
    seen = _outcome(handshake.done)
    handshake.line_received(
        line({"jsonrpc": "2.0", "id": json.loads(child.written[0])["id"], **answer})
    )
    [failure] = seen
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, HandshakeFailedError) and failure.value.fatal
    assert negotiated.protocol_version is None and len(child.written) == 1


def test_broker_initialize_aborted_when_the_child_exits() -> None:
    """A child gone mid-handshake fails it, not fatally, and leaves no timer."""
    clock = Clock()
    handshake = _initializer(clock, Negotiated()).begin(_child(), 1)
    seen = _outcome(handshake.done)
    handshake.abort("the new child exited during the handshake")
    [failure] = seen
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, HandshakeFailedError)
    assert not failure.value.fatal
    assert clock.getDelayedCalls() == []


def test_broker_initialize_toward_a_dead_child_fails() -> None:
    """A child that is gone before the first line fails the handshake cleanly."""
    child = _child()
    child.exit(ChildExit("exited", exit_code=1))
    seen = _outcome(_initializer(Clock(), Negotiated()).begin(child, 1).done)
    [failure] = seen
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, HandshakeFailedError)


# -- through the registry: an identity's child ---------------------------------


def _registry(clock: Clock) -> tuple[SessionRegistry, FakeSpawner, FakeTokens]:
    spawner, tokens = FakeSpawner(), FakeTokens()
    registry = SessionRegistry(
        spawner,
        tokens,
        spec_factory,
        clock,
        SessionSettings(max_children=4, max_children_per_user=2, drain_timeout=120.0),
    )
    return registry, spawner, tokens


def test_identity_child_is_initialized_by_the_broker_before_use() -> None:
    """
    An owner keyed by identity with ``bring_up``: the registry spawns the
    child, the broker initializes it (its answers never reach the router),
    and only then is the owner returned; a token rotation respawns it with
    the broker's handshake again and swaps it in.
    """
    clock = Clock()
    registry, spawner, tokens = _registry(clock)
    negotiated = Negotiated()
    router = QuietRouter(_initializer(clock, negotiated))
    created = Deferred.fromCoroutine(
        registry.create(IdentityKey.of(ALICE), ALICE, lambda o: router, bring_up=True)
    )
    owners: list[ChildOwner] = []
    created.addCallback(owners.append)
    first = spawner.last
    assert owners == [] and registry.counts().children == 1
    first.emit(_init_answer(first.written[0]))
    [owner] = owners
    assert owner.key == IdentityKey("alice", "client-a") and owner.id.startswith(
        "identity:"
    )
    assert negotiated.protocol_version == "2025-11-25"
    assert router.lines == []
    first.emit(result(1))
    assert router.lines == [(1, result(1))]

    registry.token_rotated(tokens.rotate("alice"))
    second = spawner.last
    assert second is not first
    assert second.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"
    assert json.loads(second.written[0])["id"] == "fjmcp-init-2-initialize"
    second.emit(_init_answer(second.written[0]))
    assert (owner.generation, owner.token_generation) == (2, 2)
    assert not first.alive and second.alive


def test_identity_child_that_refuses_initialize_is_not_kept() -> None:
    """A child that refuses the broker's initialize is stopped, its cap slot
    given back, and the creation fails with a 503."""
    clock = Clock()
    registry, spawner, _ = _registry(clock)
    router = QuietRouter(_initializer(clock, Negotiated()))
    created = Deferred.fromCoroutine(
        registry.create(IdentityKey.of(ALICE), ALICE, lambda o: router, bring_up=True)
    )
    seen = _outcome(created)
    child = spawner.last
    request_id = json.loads(child.written[0])["id"]
    child.emit(
        line(
            {"jsonrpc": "2.0", "id": request_id, "error": {"code": 1, "message": "no"}}
        )
    )
    [failure] = seen
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, SpawnFailedError)
    assert failure.value.status == 503
    assert not child.alive and registry.get(IdentityKey.of(ALICE)) is None
    assert registry.counts().children == 0 and registry.live_users() == frozenset()
