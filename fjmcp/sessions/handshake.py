# -*- test-case-name: tests.sessions.test_registry -*-
"""
The seam through which the registry brings a new child up, without knowing
what the child speaks.

A fresh child must be put in a state before it serves anyone: after a token
refresh, the state its owner's old child was in (the bridge replays the
client's handshake); for a child no client initialized, the broker's own
handshake. The registry starts the child, hands its output to the
`Handshake` until that is done, then makes it current; the bridge
implements the protocols (``fjmcp.bridge.handshake``).
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from fjmcp.interfaces import IChild

__all__ = ["Handshake", "HandshakeFailedError", "Handshaker"]


class HandshakeFailedError(Exception):
    """
    A new child could not be brought up. ``fatal``: its owner cannot go on
    either (the client could not be told what changed), so it ends; else
    the old child keeps serving and a later request or refresh tries again.
    """

    def __init__(self, reason: str, *, fatal: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


class Handshake(Protocol):
    """One child being brought up: it consumes the child's lines until `done`."""

    def line_received(self, line: bytes) -> None:
        """One stdout line of the new child (none reaches a client meanwhile)."""

    def abort(self, reason: str) -> None:
        """
        The child is gone: fail `done` with a non-fatal `HandshakeFailedError`
        (if it has not fired) and cancel any timer.
        """

    @property
    def done(self) -> Deferred[None]:
        """
        Fires once the child is ready, or fails with `HandshakeFailedError`
        (bounded: the handshake times out on its own).
        """


class Handshaker(Protocol):
    """How an owner's new children are brought up (one per owner)."""

    @property
    def ready(self) -> bool:
        """Whether a child can be brought up now (a session: once initialized)."""

    def begin(self, child: IChild, generation: int) -> Handshake:
        """Start bringing ``child`` (of ``generation``) up: write its first lines."""
