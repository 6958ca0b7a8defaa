# -*- test-case-name: tests.supervisor.test_leader -*-
"""
`SessionLeaderProcess` on the real reactor: the child leads a session and a
process group of its own, whether Twisted spawns it or forks it, and keeps
exactly the descriptors it was given.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from fjmcp.supervisor import leader
from fjmcp.supervisor.leader import SessionLeaderProcess, spawn_session_leader

WAIT = 20.0
#: Prints the child's pid, session, process group and open descriptors.
REPORT = (
    "import json, os; print(json.dumps({'pid': os.getpid(), 'sid': os.getsid(0), "
    "'pgid': os.getpgid(0), "
    "'fds': sorted(int(f) for f in os.listdir('/proc/self/fd'))}))"
)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Output(ProcessProtocol):
    """Collects stdout; `ended` fires with it at the child's end."""

    def __init__(self) -> None:
        self.out = b""
        self.ended: Deferred[bytes] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """Keep it."""
        self.out += data

    def processEnded(self, reason: Failure) -> None:
        """Fire `ended` (a failed child fails it)."""
        reason.trap(ProcessDone)
        self.ended.callback(self.out)


async def _report() -> tuple[SessionLeaderProcess, dict[str, Any]]:
    proto = Output()
    child = spawn_session_leader(
        _reactor(),
        proto,
        sys.executable,
        [sys.executable, "-c", REPORT],
        env={},
        childFDs={0: "w", 1: "r", 2: "r"},
    )
    out = await proto.ended.addTimeout(WAIT, _reactor())
    return child, json.loads(out)


@pytest_twisted.ensureDeferred
async def test_a_spawned_child_leads_its_own_session() -> None:
    """posix_spawn with setsid: sid == pgid == its pid, not ours; only 0-2
    (and the descriptor listing itself) are open."""
    child, seen = await _report()
    assert isinstance(child, SessionLeaderProcess)
    assert seen["sid"] == seen["pgid"] == seen["pid"]
    assert seen["sid"] != os.getsid(0)
    assert seen["fds"][:3] == [0, 1, 2]
    assert len(seen["fds"]) == 4  # the listing's own descriptor


@pytest_twisted.ensureDeferred
async def test_a_forked_child_leads_its_own_session_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where Twisted forks (its spawn helpers gone, a uid change), the child
    calls setsid() before the exec."""
    monkeypatch.setattr(leader, "CAN_SPAWN", False)
    _, seen = await _report()
    assert seen["sid"] == seen["pgid"] == seen["pid"]
    assert seen["sid"] != os.getsid(0)
    assert seen["fds"][:3] == [0, 1, 2]


def test_no_pty() -> None:
    """A PTY child is not what the supervisor spawns: refused."""
    with pytest.raises(ValueError, match="PTY"):
        spawn_session_leader(_reactor(), Output(), "/bin/true", ["true"], usePTY=True)
