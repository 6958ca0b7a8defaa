# -*- test-case-name: tests.sessions.test_registry -*-
"""
One owner of children: who it belongs to, its child (by generation), its
last activity.

Children belong to *owners*. Today an owner is an MCP session (its key is
the session id); the stateless protocol's children are owned by an identity
(an `IdentityKey`), in the same table. An owner is bound to an `Identity`
(Forgejo user + OAuth client), never to one access token. Its child runs
with the Forgejo token of the user's upstream grant for the identity's
consent mode; when that token is refreshed the owner gets a new child (a
new *generation*) while requests in flight finish on the old one.

This package knows nothing of MCP: what the child writes goes to the
owner's *router* (the bridge's per-owner state, the `OwnerRouter` protocol
below), and a new child is brought up by the router's `Handshaker`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeAlias

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from fjmcp.interfaces import ChildExit, IChild, Identity, UpstreamGrant
from fjmcp.sessions.handshake import Handshaker

__all__ = ["ChildOwner", "IdentityKey", "OwnerKey", "OwnerRouter"]


@frozen
class IdentityKey:
    """
    The key of children owned by an identity rather than a session: one
    child per grant (Forgejo user through one OAuth client) and consent
    mode, so a child started under one mode never serves the other: a
    changed mode (read-only after full access, say) starts a new child
    with the new mode's policy and Forgejo token.
    """

    user: str
    client_id: str
    consent: str = "full"
    """The grant's consent mode (`Identity.consent`)."""

    @classmethod
    def of(cls, identity: Identity) -> IdentityKey:
        """The key of ``identity``'s grant in its consent mode."""
        return cls(identity.user, identity.client_id, identity.consent)

    @property
    def label(self) -> str:
        """For logs and status (no secret in it)."""
        return f"identity:{self.user}/{self.client_id}/{self.consent}"


OwnerKey: TypeAlias = "str | IdentityKey"
"""An MCP session id (a `str`) or an `IdentityKey`; never equal to each other."""


class OwnerRouter(Protocol):
    """What an owner needs of the bridge: somewhere to put the child's output."""

    def line_received(self, generation: int, line: bytes) -> None:
        """One stdout line of the child of ``generation``."""

    def child_exited(self, generation: int, exit: ChildExit) -> None:
        """The child of ``generation`` is gone: fail what it still owed."""

    def close(self, reason: str) -> None:
        """The owner ended: fail what is in flight, close every stream."""

    @property
    def busy(self) -> bool:
        """A request in flight or a standalone stream open (not idle)."""

    @property
    def handshaker(self) -> Handshaker:
        """How a new child of this owner is brought up."""

    def when_generation_idle(self, generation: int) -> Deferred[None]:
        """Fires once no request waits for the child of ``generation``."""

    def when_idle(self) -> Deferred[None]:
        """Fires once no request is in flight."""

    def drain(self) -> Deferred[None]:
        """Shutdown: close the standalone stream now; fire when nothing is in flight."""


@define(eq=False)
class ChildOwner:
    """One owner of children (see the module docstring)."""

    key: OwnerKey
    identity: Identity
    created_at: float
    last_activity: float
    token_generation: int
    """The generation of the Forgejo token the current child runs with."""
    upstream: UpstreamGrant | None = None
    """The upstream grant whose Forgejo token the children hold (by the
    identity's consent mode); None: the user's grant of no scopes."""
    generation: int = 1
    """The current child generation: new requests go to this child."""
    children: dict[int, IChild] = field(factory=dict)
    """Live children by generation (old ones drain during a respawn)."""
    router: OwnerRouter | None = None
    ended: bool = False
    end_reason: str | None = None
    respawning: bool = False
    request_end: Callable[[ChildOwner, str], object] = lambda _s, _r: None
    """Set by the registry: how the bridge asks for the owner to end."""
    ready: bool = True
    """False while the first child is being brought up (`when_ready` waits)."""
    _ready_waiters: list[Deferred[None]] = field(factory=list)

    log = Logger()

    @property
    def id(self) -> str:
        """The session id, or the identity key's label (logs, status)."""
        return self.key if isinstance(self.key, str) else self.key.label

    @property
    def short_id(self) -> str:
        """A prefix of the id, for logs (not enough to use the session)."""
        return self.id[:8] if isinstance(self.key, str) else self.id

    @property
    def described(self) -> str:
        """``session <short id>`` or the identity key's label, for logs."""
        if isinstance(self.key, str):
            return f"session {self.short_id}"
        return self.key.label

    @property
    def user(self) -> str:
        """The Forgejo login that owns the children."""
        return self.identity.user

    @property
    def client_id(self) -> str:
        """The OAuth client the owner was started through."""
        return self.identity.client_id

    @property
    def grant(self) -> UpstreamGrant:
        """The upstream grant whose Forgejo token the children hold."""
        return self.upstream or UpstreamGrant(self.identity.user)

    @property
    def child(self) -> IChild | None:
        """The current child, if alive."""
        return self.children.get(self.generation)

    @property
    def busy(self) -> bool:
        """Whether a request is in flight or the GET stream is open."""
        return self.router is not None and self.router.busy

    def when_ready(self) -> Deferred[None]:
        """Fires once the first child is up; fails if its bring-up failed."""
        if self.ready:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._ready_waiters.append(d)
        return d

    def became_ready(self, error: Exception | None = None) -> None:
        """The first child is up (or, with ``error``, will never be)."""
        self.ready = error is None
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

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
                "{owner}: child is gone; message not delivered",
                owner=self.described,
            )
            return False
        return True
