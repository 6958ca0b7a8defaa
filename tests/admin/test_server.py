# -*- test-case-name: tests.admin.test_server -*-
"""Tests for the admin channel: handler registry, line protocol, real socket."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread

from fjmcp.admin.client import AdminClient, AdminError, DaemonNotRunningError
from fjmcp.admin.server import (
    AdminCommandError,
    AdminHandlers,
    AdminProtocol,
    AdminServerService,
    made_at_first_call,
)


def _handlers() -> AdminHandlers:
    async def later(args: Any) -> str:
        return "async"

    def refuse(args: Any) -> None:
        raise AdminCommandError("no such user: bob")

    def crash(args: Any) -> None:
        raise ValueError("internal detail")

    return AdminHandlers(
        {
            "echo": lambda args: {"echo": dict(args)},
            "later": later,
            "refuse": refuse,
            "crash": crash,
        }
    )


def _talk(lines: list[bytes]) -> list[dict[str, Any]]:
    protocol: Any = AdminProtocol(_handlers())
    transport = StringTransport()
    protocol.makeConnection(transport)
    for line in lines:
        protocol.dataReceived(line)
    return [json.loads(x) for x in transport.value().splitlines()]


def test_requests_answered_in_order() -> None:
    """Each request line gets one response line, in order, sync or async."""
    answers = _talk(
        [b'{"cmd": "echo", "args": {"a": 1}}\n{"cmd": "later"}\n', b'{"cmd": "echo"}\n']
    )
    assert answers == [
        {"ok": True, "result": {"echo": {"a": 1}}},
        {"ok": True, "result": "async"},
        {"ok": True, "result": {"echo": {}}},
    ]


def test_errors_are_reported_not_raised() -> None:
    """Unknown commands, refusals, crashes and junk each get ok: false."""
    answers = _talk(
        [
            b'{"cmd": "nope"}\n',
            b'{"cmd": "refuse"}\n',
            b'{"cmd": "crash"}\n',
            b"not json\n",
            b'["cmd"]\n',
            b'{"cmd": "echo", "args": []}\n',
        ]
    )
    assert [a["ok"] for a in answers] == [False] * 6
    assert "unknown command 'nope'" in answers[0]["error"]
    assert answers[1]["error"] == "no such user: bob"
    assert "internal error" in answers[2]["error"]
    assert "internal detail" not in answers[2]["error"]


def test_commands_are_fixed_at_construction() -> None:
    """The handlers keep the commands they were given: changing the mapping
    afterwards adds none."""
    given: dict[str, Any] = {"x": lambda args: None}
    handlers = AdminHandlers(given)
    given["y"] = lambda args: None
    assert handlers.names() == ["x"]


def test_a_handler_made_at_first_call_is_made_once() -> None:
    """made_at_first_call builds its handler at the first request only, then
    passes every request to that one handler."""
    made: list[int] = []

    def make() -> Any:
        made.append(1)
        return lambda args: {"made": len(made), **args}

    handle = made_at_first_call(make)
    assert made == []
    assert handle({"a": 1}) == {"made": 1, "a": 1}
    assert handle({}) == {"made": 1}
    assert made == [1]


def test_a_handler_that_cannot_be_made_is_an_internal_error() -> None:
    """A failure while making the handler is answered like a crash in it."""

    def make() -> Any:
        raise ValueError("internal detail")

    protocol: Any = AdminProtocol(AdminHandlers({"x": made_at_first_call(make)}))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b'{"cmd": "x"}\n')
    [answer] = [json.loads(x) for x in transport.value().splitlines()]
    assert answer["ok"] is False
    assert "internal error" in answer["error"]


@given(st.binary(max_size=300))
def test_any_bytes_get_json_answers(data: bytes) -> None:
    """Whatever arrives, every answer is one well-formed JSON object."""
    protocol: Any = AdminProtocol(_handlers())
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(data + b"\n")
    for line in transport.value().splitlines():
        answer = json.loads(line)
        assert isinstance(answer, dict) and "ok" in answer


def test_long_line_refused() -> None:
    """A request over the line limit is refused and the connection closed."""
    protocol: Any = AdminProtocol(_handlers())
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"x" * (protocol.MAX_LENGTH + 10))
    assert b"request too long" in transport.value()
    assert transport.disconnecting


@pytest_twisted.ensureDeferred
async def test_real_socket_mode_and_client(tmp_path: Path) -> None:
    """The socket is mode 0600, the client gets results, errors and not-running."""
    from twisted.internet import reactor

    path = tmp_path / "admin.sock"
    service = AdminServerService(reactor, path, _handlers())  # type: ignore[arg-type]
    service.startService()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        client = AdminClient(path, timeout=5)
        result = await deferToThread(client.call, "echo", {"x": "y"})
        assert result == {"echo": {"x": "y"}}
        with pytest.raises(AdminError, match="no such user"):
            await deferToThread(client.call, "refuse")
        assert await deferToThread(client.running)
    finally:
        stopped = service.stopService()
        if stopped is not None:
            await stopped
    assert not path.exists()
    with pytest.raises(DaemonNotRunningError):
        AdminClient(path).call("echo")


@pytest_twisted.ensureDeferred
async def test_stale_socket_replaced(tmp_path: Path) -> None:
    """A socket file left by a killed daemon is replaced on start."""
    import socket

    from twisted.internet import reactor

    path = tmp_path / "admin.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    service = AdminServerService(reactor, path, _handlers())  # type: ignore[arg-type]
    service.startService()
    try:
        result = await deferToThread(AdminClient(path, timeout=5).call, "later")
        assert result == "async"
    finally:
        d = service.stopService()
        if d is not None:
            await d


def test_deferred_handler_result() -> None:
    """A handler may return a Deferred; its result is sent."""
    handlers = AdminHandlers({"d": lambda args: succeed(41)})
    out: list[Any] = []
    Deferred.fromCoroutine(handlers.dispatch({"cmd": "d"})).addCallback(out.append)
    assert out == [{"ok": True, "result": 41}]
