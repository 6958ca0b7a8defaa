# -*- test-case-name: tests.sessions.test_registry -*-
"""
One MCP session: who owns it, its child (by generation), and what must be
replayed to a new child.

A session is bound to an `Identity` (Forgejo user + OAuth client), never to
one access token. Its child runs with the user's Forgejo token; when that
token is refreshed, the session gets a new child (a new *generation*) while
requests in flight finish on the old one. To make that swap invisible, the
session keeps the client's own ``initialize`` request, its
``notifications/initialized``, and the state the client set since
(``logging/setLevel``, ``resources/subscribe``), to replay to the new child.

What the child writes is handed to the session's *router* (the bridge's
per-session state); this package knows nothing of HTTP or SSE, only the
`SessionRouter` protocol below.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from fjmcp.interfaces import ChildExit, IChild, Identity

__all__ = ["ReplayState", "Session", "SessionRouter", "owner_key_for_session"]


class SessionRouter(Protocol):
    """What a session needs of the bridge: somewhere to put the child's output."""

    def line_received(self, generation: int, line: bytes) -> None:
        """One stdout line of the child of ``generation``."""

    def child_exited(self, generation: int, exit: ChildExit) -> None:
        """The child of ``generation`` is gone: fail what it still owed."""

    def close(self, reason: str) -> None:
        """The session ended: fail what is in flight, close every stream."""

    @property
    def busy(self) -> bool:
        """A request in flight or a standalone stream open (not idle)."""

    def when_generation_idle(self, generation: int) -> Deferred[None]:
        """Fires once no request waits for the child of ``generation``."""

    def when_idle(self) -> Deferred[None]:
        """Fires once no request is in flight."""

    def drain(self) -> Deferred[None]:
        """Shutdown: close the standalone stream now; fire when nothing is in flight."""


def owner_key_for_session(session_id: str) -> Hashable:
    """
    The owner key of a session's child. Children belong to owners; today an
    owner is a session, and the stateless protocol keys them by identity
    (`Identity.key`) instead, in the same tables.
    """
    return ("session", session_id)


@define(eq=False)
class ReplayState:
    """The client's messages a new child must see to be in the same state."""

    initialize: bytes | None = None
    initialized: bytes | None = None
    log_level: bytes | None = None
    subscriptions: dict[str, bytes] = field(factory=dict)
    """``resources/subscribe`` requests by URI (an unsubscribe removes one)."""


@define(eq=False)
class Session:
    """One live MCP session (see the module docstring)."""

    id: str
    identity: Identity
    created_at: float
    last_activity: float
    token_generation: int
    """The generation of the Forgejo token the current child runs with."""
    generation: int = 1
    """The current child generation: new requests go to this child."""
    children: dict[int, IChild] = field(factory=dict)
    """Live children by generation (old ones drain during a respawn)."""
    router: SessionRouter | None = None
    requested_version: str | None = None
    """The version the client asked for in ``initialize``."""
    protocol_version: str | None = None
    """The version the child answered ``initialize`` with (None until then)."""
    init_result: dict[str, Any] | None = None
    replay: ReplayState = field(factory=ReplayState)
    ended: bool = False
    end_reason: str | None = None
    respawning: bool = False
    request_end: Callable[[Session, str], object] = lambda _s, _r: None
    """Set by the registry: how the bridge asks for the session to end."""

    log = Logger()

    @property
    def short_id(self) -> str:
        """A prefix of the id, for logs (not enough to use the session)."""
        return self.id[:8]

    @property
    def user(self) -> str:
        """The Forgejo login that owns the session."""
        return self.identity.user

    @property
    def child(self) -> IChild | None:
        """The current child, if alive."""
        return self.children.get(self.generation)

    @property
    def busy(self) -> bool:
        """Whether a request is in flight or the GET stream is open."""
        return self.router is not None and self.router.busy

    def touch(self, now: float) -> None:
        """Record client activity (the idle reaper reads it)."""
        self.last_activity = now

    def write(self, line: bytes, generation: int | None = None) -> bool:
        """
        Write one message to the child of ``generation`` (default: current).
        False when that child is gone.
        """
        child = self.children.get(self.generation if generation is None else generation)
        if child is None:
            return False
        try:
            child.write_line(line)
        except Exception:
            self.log.info(
                "session {session}: child is gone; message not delivered",
                session=self.short_id,
            )
            return False
        return True

    def remember(self, method: str | None, params: Any, line: bytes) -> None:
        """Keep what a respawned child must be told (see `ReplayState`)."""
        if method is None:
            return
        replay = self.replay
        if method == "initialize":
            replay.initialize = line
        elif method == "notifications/initialized":
            replay.initialized = line
        elif method == "logging/setLevel":
            replay.log_level = line
        elif method in ("resources/subscribe", "resources/unsubscribe"):
            uri = params.get("uri") if isinstance(params, dict) else None
            if not isinstance(uri, str):
                return
            if method == "resources/subscribe":
                replay.subscriptions[uri] = line
            else:
                replay.subscriptions.pop(uri, None)
