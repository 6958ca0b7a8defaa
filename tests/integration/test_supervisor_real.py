# -*- test-case-name: tests.integration.test_supervisor_real -*-
"""
The supervisor with real child processes (the test servers in
``tests/children/``) on the real reactor: round trips, crashes, SIGTERM
that is ignored, sessions, the environment a child sees, redaction of its
token from the log, and no zombie or descriptor left after many children.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import LogEvent, formatEvent

from fjmcp.config import Config
from fjmcp.interfaces import ChildExit, ChildSpec, UpstreamToken
from fjmcp.settings import child_settings
from fjmcp.supervisor.environment import child_spec
from fjmcp.supervisor.supervisor import Supervisor

pytestmark = pytest.mark.integration

WAIT = 20.0
CHILDREN = Path(__file__).resolve().parent.parent / "children"
TOKEN = UpstreamToken(
    user="alice", access_token="gto_real-child-TOKEN-42", expires_at=0.0, generation=1
)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Collector:
    """A ChildReceiver that lets a test await the next line and the exit."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.exits: list[ChildExit] = []
        self._line_waiters: list[Deferred[bytes]] = []
        self._read = 0

    def line_received(self, line: bytes) -> None:
        """Keep the line; wake a waiter."""
        self.lines.append(line)
        self._wake()

    def child_exited(self, exit: ChildExit) -> None:
        """Keep the exit."""
        self.exits.append(exit)

    def _wake(self) -> None:
        while self._line_waiters and self._read < len(self.lines):
            d = self._line_waiters.pop(0)
            self._read += 1
            d.callback(self.lines[self._read - 1])

    async def message(self) -> dict[str, Any]:
        """The next stdout line, parsed (times out after WAIT)."""
        d: Deferred[bytes] = Deferred()
        self._line_waiters.append(d)
        self._wake()
        line = await d.addTimeout(WAIT, _reactor())
        result: dict[str, Any] = json.loads(line)
        return result


def spec_for(
    script: str,
    *,
    passthrough: tuple[str, ...] = (),
    environ: dict[str, str] | None = None,
    stop_grace: float = 3.0,
) -> ChildSpec:
    """A spec running one of the test servers through child_spec."""
    config = Config(
        public_url="http://127.0.0.1:8080",
        forgejo_url="https://forgejo.example.org",
        forgejo_client_id="cid",
        forgejo_client_secret="broker-secret",
        child_command=(sys.executable, "-B", str(CHILDREN / script)),
        child_env_passthrough=passthrough,
        child_stop_grace=stop_grace,
    )
    return child_spec(
        child_settings(config),
        token=TOKEN,
        label="session=it user=alice",
        environ=environ or {},
    )


def request(rid: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    """One JSON-RPC request line."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}
    ).encode()


async def initialize(child: Any, receiver: Collector) -> dict[str, Any]:
    """Initialize and return the result."""
    child.write_line(request(1, "initialize", {"protocolVersion": "2025-06-18"}))
    reply = await receiver.message()
    assert reply["id"] == 1
    result: dict[str, Any] = reply["result"]
    return result


@pytest_twisted.ensureDeferred
async def test_echo_round_trip_and_clean_stop() -> None:
    """initialize and tools/call go through; stop closes stdin and the child exits."""
    supervisor = Supervisor(_reactor())
    receiver = Collector()
    child = supervisor.spawn(spec_for("echo_server.py"), receiver)
    result = await initialize(child, receiver)
    assert result["protocolVersion"] == "2025-06-18"
    child.write_line(
        request(2, "tools/call", {"name": "echo", "arguments": {"message": "héllo"}})
    )
    reply = await receiver.message()
    assert reply == {
        "jsonrpc": "2.0",
        "id": 2,
        "result": {"content": [{"type": "text", "text": "héllo"}]},
    }
    await child.stop().addTimeout(WAIT, _reactor())
    assert supervisor.live == 0
    assert len(receiver.exits) == 1
    assert receiver.exits[0].reason == "stopped"


@pytest_twisted.ensureDeferred
async def test_crash_mid_call_is_noticed_at_once() -> None:
    """A child that exits mid-call is reported with its status, unasked."""
    supervisor = Supervisor(_reactor())
    receiver = Collector()
    child = supervisor.spawn(spec_for("crash_server.py"), receiver)
    await initialize(child, receiver)
    ended = child.ended
    child.write_line(
        request(2, "tools/call", {"name": "crash", "arguments": {"partial": True}})
    )
    note = await receiver.message()
    assert note["method"] == "notifications/message"
    exit = await ended.addTimeout(WAIT, _reactor())
    assert exit == ChildExit("exited", exit_code=7)
    assert receiver.exits == [exit]
    assert supervisor.live == 0


@pytest_twisted.ensureDeferred
async def test_stubborn_child_killed_after_grace() -> None:
    """A child ignoring SIGTERM and EOF is SIGKILLed after stop_grace, then reaped."""
    supervisor = Supervisor(_reactor())
    receiver = Collector()
    child = supervisor.spawn(spec_for("stubborn_server.py", stop_grace=0.5), receiver)
    await initialize(child, receiver)  # its SIGTERM handler is installed by now
    started = time.monotonic()
    await child.stop().addTimeout(WAIT, _reactor())
    assert time.monotonic() - started >= 0.45
    assert receiver.exits == [ChildExit("stopped", exit_code=None, signal=9)]


@pytest_twisted.ensureDeferred
async def test_child_leads_its_own_session_and_sees_only_allowed_env(
    logged: list[LogEvent],
) -> None:
    """The child is the session leader (setsid exec'd, so its pid is ours to
    signal), sees only the allowed names, and its token never reaches the log."""
    supervisor = Supervisor(_reactor())
    receiver = Collector()
    spec = spec_for(
        "echo_server.py",
        passthrough=("ECHO_STDERR_TOKEN", "NOT_IN_ENVIRON"),
        environ={"ECHO_STDERR_TOKEN": "FORGEJO_ACCESS_TOKEN", "OTHER": "x"},
    )
    child = supervisor.spawn(spec, receiver)
    await initialize(child, receiver)
    child.write_line(request(2, "tools/call", {"name": "whoami_env"}))
    info = (await receiver.message())["result"]["structuredContent"]
    assert info["pid"] == child.pid
    assert info["sid"] == child.pid == info["pgid"]
    assert info["sid"] != os.getsid(0)
    assert info["token_set"] is True
    assert info["env_names"] == sorted(
        ["PATH", "LANG", "FORGEJO_ACCESS_TOKEN", "FORGEJO_URL", "ECHO_STDERR_TOKEN"]
    )
    await child.stop().addTimeout(WAIT, _reactor())
    text = [formatEvent(e) for e in logged]
    assert any("starting with token [REDACTED]" in t for t in text)
    assert not any(
        TOKEN.access_token in t or TOKEN.access_token in repr(e)
        for t, e in zip(text, logged, strict=True)
    )


@pytest_twisted.ensureDeferred
async def test_missing_program_is_an_error_or_an_exit_not_a_hang(
    logged: list[LogEvent],
) -> None:
    """A command that cannot be executed fails at once: the spawn raises
    (nothing left behind) when it is argv[0], the child exits with a failure
    status when a wrapper before it cannot exec it."""
    supervisor = Supervisor(_reactor())
    spec = ChildSpec(argv=("/nonexistent/fjmcp-child",), env={}, label="session=nx")
    with pytest.raises(OSError):
        supervisor.spawn(spec, Collector())
    assert supervisor.live == 0
    wrapped = ChildSpec(
        argv=("/bin/sh", "-c", 'exec "$@"', "sh", "/nonexistent/fjmcp-child"),
        env={},
        label="session=nx",
    )
    child = supervisor.spawn(wrapped, Collector())
    exit = await child.ended.addTimeout(WAIT, _reactor())
    assert exit.reason == "exited"
    assert exit.exit_code not in (0, None)


@pytest_twisted.ensureDeferred
async def test_chatty_child_talks_mid_call() -> None:
    """The chatty server sends progress, logging, sampling and elicitation
    mid-call, takes the answers through stdin, then answers the call."""
    supervisor = Supervisor(_reactor())
    receiver = Collector()
    child = supervisor.spawn(spec_for("chatty_server.py"), receiver)
    await initialize(child, receiver)
    child.write_line(
        request(2, "tools/call", {"name": "chatty", "_meta": {"progressToken": "p"}})
    )
    progress = await receiver.message()
    assert progress["params"]["progressToken"] == "p"
    assert (await receiver.message())["method"] == "notifications/message"
    sampling = await receiver.message()
    assert sampling["method"] == "sampling/createMessage"
    child.write_line(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": sampling["id"],
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "hi"},
                },
            }
        ).encode()
    )
    assert (await receiver.message())["params"]["progress"] == 2
    elicit = await receiver.message()
    assert elicit["method"] == "elicitation/create"
    child.write_line(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": elicit["id"],
                "result": {"action": "accept", "content": {"name": "bob"}},
            }
        ).encode()
    )
    seen = [await receiver.message() for _ in range(4)]
    assert [m.get("method") for m in seen[:3]] == [
        "notifications/progress",
        "notifications/message",
        "notifications/progress",
    ]
    assert seen[1]["params"]["level"] == "debug"
    answer = seen[3]
    assert answer["id"] == 2
    assert answer["result"]["structuredContent"] == {
        "sampled": "hi",
        "elicited": {"action": "accept", "content": {"name": "bob"}},
    }
    child.write_line(request(3, "resources/subscribe", {"uri": "test://counter"}))
    assert (await receiver.message()) == {"jsonrpc": "2.0", "id": 3, "result": {}}
    updated = await receiver.message()
    assert updated["method"] == "notifications/resources/updated"
    await child.stop().addTimeout(WAIT, _reactor())


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _assert_no_zombie() -> None:
    try:
        pid, _status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return  # no children at all
    assert pid == 0, f"pid {pid} was a zombie nobody reaped"


@pytest_twisted.ensureDeferred
async def test_many_spawn_stop_cycles_leak_nothing() -> None:
    """200 children (cat: exits on EOF; sleep: needs TERM) spawned and stopped,
    ten at a time, leave no zombie and no extra file descriptor."""
    reactor = _reactor()
    supervisor = Supervisor(reactor)
    argvs = [("/bin/cat",), ("/bin/sleep", "60")]

    async def batch(n: int) -> None:
        children = [
            supervisor.spawn(
                ChildSpec(argv=argvs[i % 2], env={}, label=f"cycle={i}"), Collector()
            )
            for i in range(n)
        ]
        await gatherResults([c.stop() for c in children]).addTimeout(WAIT, reactor)

    await batch(2)  # warm-up: the reactor's SIGCHLD machinery opens its fds once
    before = _fd_count()
    for _ in range(20):
        await batch(10)
    assert supervisor.live == 0
    _assert_no_zombie()
    # Not equality: descriptors the earlier tests left to the garbage
    # collector (closed connections, pipes) may close during the loop; a leak
    # can only make the count grow.
    assert _fd_count() <= before
