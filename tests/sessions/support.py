# -*- test-case-name: tests.sessions.test_registry -*-
"""
Fakes for tests that drive the registry without the bridge: a router that
only records, and a handshaker that never brings a child up.
"""

from __future__ import annotations

from attrs import define, field
from twisted.internet.defer import Deferred, succeed

from fjmcp.interfaces import ChildExit, IChild
from fjmcp.sessions.handshake import Handshake, Handshaker


class NoRespawn:
    """A handshaker that never brings a child up (for tests that rotate no token)."""

    ready = False

    def begin(self, child: IChild, generation: int) -> Handshake:
        """Never called: not `ready`."""
        raise AssertionError("no respawn expected")


@define(eq=False)
class QuietRouter:
    """An owner's router with nothing in flight: it records lines and ends."""

    handshaker: Handshaker = field(factory=NoRespawn)
    busy: bool = False
    lines: list[tuple[int, bytes]] = field(factory=list)
    closed: list[str] = field(factory=list)

    def line_received(self, generation: int, line: bytes) -> None:
        """Record what the child wrote (after any handshake)."""
        self.lines.append((generation, line))

    def child_exited(self, generation: int, exit: ChildExit) -> None:
        """Nothing in flight to fail."""

    def close(self, reason: str) -> None:
        """Record why the owner ended."""
        self.closed.append(reason)

    def when_generation_idle(self, generation: int) -> Deferred[None]:
        """Already idle."""
        return succeed(None)

    def when_idle(self) -> Deferred[None]:
        """Already idle."""
        return succeed(None)

    def drain(self) -> Deferred[None]:
        """Nothing to drain."""
        return succeed(None)
