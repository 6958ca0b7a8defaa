# -*- test-case-name: tests.sessions.test_registry -*-
"""
The live sessions: creation under caps, lookup bound to an identity, ending
them (DELETE, idle, child exit, revocation, shutdown), and the child swap
when a user's Forgejo token is refreshed.

Everything is in memory: after a restart no session id is known, so every
old id gets 404 and clients initialize again, as the MCP transport expects.
Session ids are 192 random bits from `secrets`, URL-safe base64 (visible
ASCII, as the specification requires).

Caps count children by owner: ``max_children`` overall (503) and
``max_children_per_user`` (429). A session is one owner; the stateless
protocol's children will be owned by an identity and counted in the same
tables (`SessionRegistry.reserve` / `release` take the user, not the
session).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import (
    ChildExit,
    ChildSpec,
    Identity,
    ISpawner,
    IUpstreamTokens,
    UpstreamToken,
)
from fjmcp.sessions.respawn import respawn_session
from fjmcp.sessions.session import Session, SessionRouter

__all__ = [
    "CapExceededError",
    "NoUpstreamTokenError",
    "SessionError",
    "SessionForbiddenError",
    "SessionNotFoundError",
    "SessionRegistry",
    "SpawnFailedError",
    "describe_exit",
    "new_session_id",
]

SESSION_ID_BYTES: Final = 24  # 192 bits

SpecFactory = Callable[[UpstreamToken, str], ChildSpec]
RouterFactory = Callable[[Session], SessionRouter]


class SessionError(Exception):
    """A session could not be created or used; carries the HTTP answer."""

    status: int = 400
    retry_after: int | None = None
    data: Mapping[str, Any] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionNotFoundError(SessionError):
    """Unknown or ended session id: 404 (the client initializes again)."""

    status = 404


class SessionForbiddenError(SessionError):
    """The session belongs to another identity: 403."""

    status = 403


class CapExceededError(SessionError):
    """A child cap is reached: 503 (overall) or 429 (per user), with Retry-After."""

    def __init__(self, cap: str, limit: int, status: int, retry_after: int) -> None:
        super().__init__(
            f"too many MCP server processes: {cap} ({limit}) reached; retry later"
        )
        self.status = status
        self.retry_after = retry_after
        self.data = {"cap": cap, "limit": limit}


class NoUpstreamTokenError(SessionError):
    """The user has no usable Forgejo token: they must sign in again (401)."""

    status = 401


class SpawnFailedError(SessionError):
    """The child could not be started: 503."""

    status = 503


def new_session_id() -> str:
    """A fresh session id: 192 random bits as 32 URL-safe characters."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def describe_exit(exit: ChildExit) -> str:
    """A short human reason for a child's end."""
    if exit.reason == "exited":
        return f"the MCP server process exited with status {exit.exit_code}"
    if exit.reason == "signalled":
        return f"the MCP server process was killed by signal {exit.signal}"
    if exit.reason == "stopped":
        return "the MCP server process was stopped"
    if exit.reason == "line-too-long":
        return "the MCP server process wrote a line over the size limit"
    return f"the MCP server process ended ({exit.reason})"


@define(eq=False)
class _GenerationReceiver:
    """The `ChildReceiver` of one child generation of one session."""

    _registry: SessionRegistry
    _session: Session
    _generation: int
    intercept: Callable[[bytes], bool] | None = None
    """While a respawned child is being initialized: consumes its lines."""

    def line_received(self, line: bytes) -> None:
        """Hand the line to the respawn handshake or to the router."""
        if self.intercept is not None and self.intercept(line):
            return
        router = self._session.router
        if router is not None:
            router.line_received(self._generation, line)

    def child_exited(self, exit: ChildExit) -> None:
        """Tell the registry (the session may end)."""
        self._registry._child_gone(self._session, self._generation, exit)


@frozen
class Counts:
    """Numbers for status and metrics."""

    sessions: int
    children: int
    users: int
    started: int
    ended: int


@define(eq=False)
class SessionRegistry:
    """
    Every live session of this broker (see the module docstring).

    :param spec_factory: ``(token, label) -> ChildSpec``; production passes
        ``lambda t, label: child_spec(config, token=t, label=label)``.
    :param retry_after: seconds suggested in ``Retry-After`` when a cap is hit.
    """

    _spawner: ISpawner
    _tokens: IUpstreamTokens
    _spec_factory: SpecFactory
    _clock: IReactorTime
    max_children: int
    max_children_per_user: int
    retry_after: int = 5
    drain_timeout: float = 120.0
    """How long requests in flight may finish on a replaced child."""
    _sessions: dict[str, Session] = field(factory=dict)
    _children_total: int = 0
    _children_by_user: dict[str, int] = field(factory=dict)
    _newest_token: dict[str, int] = field(factory=dict)
    started: int = 0
    ended: int = 0
    closing: bool = field(default=False, init=False)
    """Set by `drain` (shutdown): no new child is started from then on."""

    log = Logger()

    # -- caps ----------------------------------------------------------------

    def reserve(self, user: str) -> None:
        """Count one more child for ``user``, or raise `CapExceededError`."""
        if self._children_total >= self.max_children:
            raise CapExceededError(
                "max_children", self.max_children, 503, self.retry_after
            )
        mine = self._children_by_user.get(user, 0)
        if mine >= self.max_children_per_user:
            raise CapExceededError(
                "max_children_per_user",
                self.max_children_per_user,
                429,
                self.retry_after,
            )
        self._children_total += 1
        self._children_by_user[user] = mine + 1

    def release(self, user: str) -> None:
        """Give back a child counted by `reserve`."""
        self._children_total -= 1
        left = self._children_by_user.get(user, 0) - 1
        if left > 0:
            self._children_by_user[user] = left
        else:
            self._children_by_user.pop(user, None)

    # -- creation and lookup -------------------------------------------------

    async def create(
        self,
        identity: Identity,
        router_factory: RouterFactory,
        *,
        requested_version: str | None = None,
    ) -> Session:
        """
        Start a session for ``identity``: reserve a child, get the user's
        Forgejo token, spawn the child. Raises a `SessionError` subclass.
        """
        self.reserve(identity.user)
        try:
            token = await self._tokens.current(identity.user)
        except Exception as e:
            self.release(identity.user)
            self.log.info(
                "no Forgejo token for {user}: {error}",
                user=identity.user,
                error=type(e).__name__,
            )
            raise NoUpstreamTokenError(
                "no Forgejo token for this user: sign in again"
            ) from None
        now = self._clock.seconds()
        session = Session(
            id=new_session_id(),
            identity=identity,
            created_at=now,
            last_activity=now,
            token_generation=token.generation,
            requested_version=requested_version,
        )
        session.request_end = self.end
        session.router = router_factory(session)
        self._note_token(token)
        try:
            child = self._spawner.spawn(
                self._spec_factory(token, self._label(session)),
                _GenerationReceiver(self, session, 1),
            )
        except Exception:
            self.release(identity.user)
            self.log.failure(
                "could not start the MCP server for {user}", user=identity.user
            )
            raise SpawnFailedError("could not start the MCP server process") from None
        session.children[1] = child
        self._sessions[session.id] = session
        self.started += 1
        self.log.info(
            "session {session} started for {user} via {client} (token {token_id})",
            session=session.short_id,
            user=identity.user,
            client=identity.client_id,
            token_id=identity.token_id,
        )
        return session

    def lookup(self, session_id: str, identity: Identity) -> Session:
        """
        The live session ``session_id`` of ``identity``. Raises
        `SessionNotFoundError` (unknown or ended) or `SessionForbiddenError` (another
        identity's session).
        """
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError("unknown or ended session; initialize again")
        if (
            session.identity.user != identity.user
            or session.identity.client_id != identity.client_id
        ):
            self.log.warn(
                "session {session} of {owner} presented by {user} via {client}",
                session=session.short_id,
                owner=session.user,
                user=identity.user,
                client=identity.client_id,
            )
            raise SessionForbiddenError(
                "this session belongs to another user or client"
            )
        newest = self._newest_token.get(session.user)
        if newest is not None and newest > session.token_generation:
            self._start_respawn(session)
        return session

    def get(self, session_id: str) -> Session | None:
        """The session with this id, whoever owns it (admin and tests)."""
        return self._sessions.get(session_id)

    def sessions(self) -> list[Session]:
        """Every live session."""
        return list(self._sessions.values())

    def counts(self) -> Counts:
        """Live sessions, children, users; sessions started and ended."""
        children = sum(len(s.children) for s in self._sessions.values())
        return Counts(
            sessions=len(self._sessions),
            children=children,
            users=len({s.user for s in self._sessions.values()}),
            started=self.started,
            ended=self.ended,
        )

    # -- ending --------------------------------------------------------------

    def end(self, session: Session, reason: str) -> Deferred[None]:
        """
        End a session: forget it (its id now gets 404), fail what is in
        flight, close its streams and stop its children. Fires once every
        child is reaped.
        """
        if session.ended:
            return succeed(None)
        session.ended = True
        session.end_reason = reason
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        self.ended += 1
        self.log.info(
            "session {session} of {user} ended: {reason}",
            session=session.short_id,
            user=session.user,
            reason=reason,
        )
        if session.router is not None:
            session.router.close(reason)
        stops = [child.stop() for child in list(session.children.values())]
        if not stops:
            self.release(session.user)
            return succeed(None)

        def reaped(outcome: object) -> object:
            # Caps count children: a child still stopping (up to
            # child_stop_grace) counts until it is reaped.
            self.release(session.user)
            return outcome

        done = gatherResults(stops, consumeErrors=True).addBoth(reaped)
        return done.addCallback(lambda _: None)

    def end_many(self, sessions: list[Session], reason: str) -> Deferred[None]:
        """End several sessions; fires when all their children are reaped."""
        ds = [self.end(s, reason) for s in sessions]
        if not ds:
            return succeed(None)
        return gatherResults(ds, consumeErrors=True).addCallback(lambda _: None)

    def reap_idle(self, now: float, idle_timeout: float) -> Deferred[int]:
        """
        End every session idle for more than ``idle_timeout`` seconds (no
        request in flight, no open GET stream); fires with how many.
        """
        idle = [
            s
            for s in self._sessions.values()
            if not s.busy and now - s.last_activity > idle_timeout
        ]
        return self.end_many(idle, "idle").addCallback(lambda _: len(idle))

    def drain(self) -> Deferred[None]:
        """
        Shutdown: close standalone streams now; fires when no request is in
        flight in any session. From now on no session gets a new child (a
        refresh landing late would otherwise spawn one after the spawner was
        told to stop its children, and the broker could exit with it alive).
        """
        self.closing = True
        waits = [s.router.drain() for s in self._sessions.values() if s.router]
        if not waits:
            return succeed(None)
        return gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def _child_gone(self, session: Session, generation: int, exit: ChildExit) -> None:
        session.children.pop(generation, None)
        if session.router is not None:
            session.router.child_exited(generation, exit)
        if not session.ended and generation == session.generation:
            self.end(session, describe_exit(exit))

    # -- ISessionControl -----------------------------------------------------

    def live_users(self) -> frozenset[str]:
        """Forgejo logins with at least one live session."""
        return frozenset(s.user for s in self._sessions.values())

    def end_user(self, user: str, reason: str) -> Deferred[None]:
        """End every session of ``user``."""
        return self.end_many(
            [s for s in self._sessions.values() if s.user == user], reason
        )

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        """End the sessions of ``user`` through ``client_id`` only."""
        return self.end_many(
            [
                s
                for s in self._sessions.values()
                if s.user == user and s.identity.client_id == client_id
            ],
            reason,
        )

    def token_rotated(self, token: UpstreamToken) -> None:
        """
        ``token.user``'s Forgejo token changed: give each of their sessions a
        new child running with it (the client notices nothing).
        """
        self._note_token(token)
        for session in list(self._sessions.values()):
            if (
                session.user == token.user
                and session.token_generation < token.generation
            ):
                self._start_respawn(session)

    # -- respawn -------------------------------------------------------------

    def _note_token(self, token: UpstreamToken) -> None:
        if token.generation > self._newest_token.get(token.user, -1):
            self._newest_token[token.user] = token.generation

    def _label(self, session: Session) -> str:
        return f"session={session.short_id} user={session.user}"

    def _start_respawn(self, session: Session) -> None:
        if (
            self.closing
            or session.respawning
            or session.ended
            or session.replay.initialize is None
        ):
            return
        session.respawning = True
        d = Deferred.fromCoroutine(self._respawn(session))
        d.addErrback(
            lambda f: self.log.failure(
                "respawn of session {session} failed", f, session=session.short_id
            )
        )

    async def _respawn(self, session: Session) -> None:
        started_for = self._newest_token.get(session.user, -1)
        try:
            await respawn_session(self, session)
        finally:
            session.respawning = False
        # A newer token arrived while this child was being readied (its
        # token_rotated found the session busy respawning): go again, so an
        # idle session does not keep a token older than the newest. A failed
        # handshake with no newer token is not retried here (the next
        # request or rotation retries it), so this cannot loop.
        newest = self._newest_token.get(session.user, -1)
        if newest > started_for and session.token_generation < newest:
            self._start_respawn(session)

    def _spawn_generation(
        self, session: Session, token: UpstreamToken, generation: int
    ) -> tuple[Any, _GenerationReceiver]:
        """Start the child of a new generation (not yet current)."""
        receiver = _GenerationReceiver(self, session, generation)
        child = self._spawner.spawn(
            self._spec_factory(token, self._label(session)), receiver
        )
        session.children[generation] = child
        return child, receiver

    @property
    def clock(self) -> IReactorTime:
        """The clock the registry runs on."""
        return self._clock

    @property
    def tokens(self) -> IUpstreamTokens:
        """Where the users' current Forgejo tokens come from."""
        return self._tokens
