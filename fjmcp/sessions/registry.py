# -*- test-case-name: tests.sessions.test_registry -*-
"""
The table of child owners: creation under caps, lookup bound to an identity
(by owner key, by user, by user and client), ending them (DELETE, idle,
child exit, revocation, shutdown), and the child swap when the Forgejo token
of an owner's upstream grant is refreshed.

An owner is an MCP session today (keyed by its session id) and an identity
for the stateless protocol (keyed by `IdentityKey`); both live in the same
tables and count against the same caps. Nothing here speaks MCP: a new
child is brought up through the owner's `Handshaker` (the bridge's).

Everything is in memory: after a restart no session id is known, so every
old id gets 404 and clients initialize again, as the MCP transport expects.
Session ids are 192 random bits from `secrets`, URL-safe base64 (visible
ASCII, as the specification requires).

Caps count children by user: ``max_children`` overall (503) and
``max_children_per_user`` (429) (`SessionRegistry.reserve` / `release`).

A respawn starts from `SessionRegistry.token_rotated` or from the bridge's
dispatch (`SessionRegistry.respawn_if_stale`), never from a lookup: a GET
or DELETE never launches a process.
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
    IChild,
    Identity,
    ISpawner,
    ISpawnObserver,
    IUpstreamTokens,
    UpstreamGrant,
    UpstreamToken,
)
from fjmcp.observers import NO_OBSERVER
from fjmcp.sessions.handshake import Handshake, HandshakeFailedError
from fjmcp.sessions.owner import ChildOwner, IdentityKey, OwnerKey, OwnerRouter
from fjmcp.sessions.respawn import bring_up_child, respawn_owner
from fjmcp.sessions.spawn_gate import GatedReceiver, SpawnGate

__all__ = [
    "END_KINDS",
    "SessionSettings",
    "CapExceededError",
    "GenerationReceiver",
    "NoUpstreamTokenError",
    "OwnerExistsError",
    "SessionError",
    "SessionForbiddenError",
    "SessionNotFoundError",
    "SessionRegistry",
    "SpawnFailedError",
    "describe_exit",
    "new_session_id",
]

SESSION_ID_BYTES: Final = 24  # 192 bits

#: Why owners end, as counted for metrics: a bounded set, whatever the
#: free-text reason logged with each end.
END_KINDS: Final = ("deleted", "idle", "child_exit", "revoked", "shutdown", "other")

SpecFactory = Callable[[UpstreamToken, str], ChildSpec]
RouterFactory = Callable[[ChildOwner], OwnerRouter]
GrantOf = Callable[[Identity], UpstreamGrant]


def _grant_of_no_scopes(identity: Identity) -> UpstreamGrant:
    """The default `GrantOf`: every consent on the user's one grant."""
    return UpstreamGrant(identity.user)


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


class OwnerExistsError(SessionError):
    """An owner with this key is live already: 409."""

    status = 409


class NoUpstreamTokenError(SessionError):
    """The user has no usable Forgejo token: they must sign in again (401)."""

    status = 401


class SpawnFailedError(SessionError):
    """The child could not be started: 503."""

    status = 503


def new_session_id(node_id: str = "") -> str:
    """
    A fresh session id: 192 random bits as 32 URL-safe characters, after
    ``<node_id>.`` when given, so that a load balancer in front of several
    nodes can send the session's requests to the node holding its child.
    """
    secret = secrets.token_urlsafe(SESSION_ID_BYTES)
    return f"{node_id}.{secret}" if node_id else secret


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
class GenerationReceiver:
    """The `ChildReceiver` of one child generation of one owner."""

    _registry: SessionRegistry
    _owner: ChildOwner
    _generation: int
    intercept: Handshake | None = None
    """While a new child is being brought up: consumes its lines."""

    def line_received(self, line: bytes) -> None:
        """Hand the line to the handshake or to the router."""
        if self.intercept is not None:
            self.intercept.line_received(line)
            return
        router = self._owner.router
        if router is not None:
            router.line_received(self._generation, line)

    def child_exited(self, exit: ChildExit) -> None:
        """Tell the registry (the owner may end)."""
        if self.intercept is not None:
            self.intercept.abort("the new child exited during the handshake")
        self._registry._child_gone(self._owner, self._generation, exit)


@frozen
class Counts:
    """Numbers for status and metrics."""

    sessions: int
    children: int
    users: int
    started: int
    ended: int
    identities: int = 0
    """Live owners keyed by identity (the stateless protocol's children)."""


@frozen(kw_only=True)
class SessionSettings:
    """
    The caps on children and how long a replaced one may finish its work.

    :param max_children: children alive at once (503 past it).
    :param max_children_per_user: children of one user (429 past it).
    :param drain_timeout: how long requests in flight may finish on a
        replaced child (``child_drain_timeout``).
    :param retry_after: seconds suggested in ``Retry-After`` when a cap is hit.
    :param max_concurrent_spawns: new children starting at once (`SpawnGate`).
    """

    max_children: int
    max_children_per_user: int
    drain_timeout: float
    retry_after: int = 5
    max_concurrent_spawns: int = 4


def _no_slot() -> None:
    """The release of a start that took no slot."""


@define(eq=False)
class SessionRegistry:
    """
    Every live owner of children on this broker (see the module docstring).

    :param spec_factory: ``(token, label) -> ChildSpec``; production passes
        ``lambda t, label: child_spec(children, token=t, label=label)``.
    :param spawn_gate: bounds how many new owners' children start at once
        (`SpawnGate`); without it every start is immediate.
    :param grant_of: the upstream grant whose Forgejo token an identity's
        children hold (`fjmcp.interfaces.UpstreamGrants.of` by its consent
        mode): a read-only grant's children never get the full grant's token.
    """

    _spawner: ISpawner
    _tokens: IUpstreamTokens
    _spec_factory: SpecFactory
    _clock: IReactorTime
    _settings: SessionSettings
    _spawn_gate: SpawnGate | None = None
    _spawns: ISpawnObserver = field(default=NO_OBSERVER, kw_only=True)
    _grant_of: GrantOf = field(default=_grant_of_no_scopes, kw_only=True)
    _owners: dict[OwnerKey, ChildOwner] = field(factory=dict)
    _by_user: dict[str, dict[OwnerKey, ChildOwner]] = field(factory=dict)
    _by_grant: dict[tuple[str, str], dict[OwnerKey, ChildOwner]] = field(factory=dict)
    _children_total: int = 0
    _children_by_user: dict[str, int] = field(factory=dict)
    _newest_token: dict[UpstreamGrant, int] = field(factory=dict)
    started: int = 0
    ended: int = 0
    ended_by: dict[str, int] = field(factory=lambda: dict.fromkeys(END_KINDS, 0))
    """Owners ended, by `END_KINDS` (for metrics)."""
    closing: bool = field(default=False, init=False)
    """Set by `drain` (shutdown): no new child is started from then on."""

    @property
    def max_children(self) -> int:
        """Children alive at once."""
        return self._settings.max_children

    @property
    def max_children_per_user(self) -> int:
        """Children of one user."""
        return self._settings.max_children_per_user

    @property
    def retry_after(self) -> int:
        """Seconds suggested in ``Retry-After`` when a cap is hit."""
        return self._settings.retry_after

    @property
    def drain_timeout(self) -> float:
        """How long requests in flight may finish on a replaced child."""
        return self._settings.drain_timeout

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
        key: OwnerKey,
        identity: Identity,
        router_factory: RouterFactory,
        *,
        bring_up: bool = False,
    ) -> ChildOwner:
        """
        Start an owner ``key`` for ``identity``: reserve a child, get the
        Forgejo token of its upstream grant, spawn the child. Raises a `SessionError`
        subclass (`OwnerExistsError` when ``key`` is live).

        :param bring_up: run the router's `Handshaker` on the first child
            before the owner is returned (a child no client initializes);
            a session's first child is initialized by its client instead.
        """
        if key in self._owners:
            raise OwnerExistsError("this owner already has a child")
        self.reserve(identity.user)
        began = self._clock.seconds()
        grant = self._grant_of(identity)
        try:
            token = await self._tokens.current(grant)
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
        if key in self._owners:  # created meanwhile (the token was not cached)
            self.release(identity.user)
            raise OwnerExistsError("this owner already has a child")
        slot = await self.start_slot()
        if key in self._owners or self.closing:  # meanwhile, while queued
            slot()
            self.release(identity.user)
            if self.closing:
                raise SpawnFailedError("the broker is shutting down")
            raise OwnerExistsError("this owner already has a child")
        now = self._clock.seconds()
        owner = ChildOwner(
            key=key,
            identity=identity,
            created_at=now,
            last_activity=now,
            token_generation=token.generation,
            upstream=grant,
        )
        owner.request_end = self.end
        owner.ready = not bring_up
        owner.router = router_factory(owner)
        self._note_token(token)
        receiver = GenerationReceiver(self, owner, 1)
        try:
            child = self._spawner.spawn(
                self._spec_factory(token, self._label(owner)),
                receiver if self._spawn_gate is None else GatedReceiver(receiver, slot),
            )
        except Exception:
            slot()
            self.release(identity.user)
            self.log.failure(
                "could not start the MCP server for {user}", user=identity.user
            )
            raise SpawnFailedError("could not start the MCP server process") from None
        owner.children[1] = child
        self._add(owner)
        self.started += 1
        self.log.info(
            "{owner} started for {user} via {client} (token {token_id})",
            owner=owner.described,
            user=identity.user,
            client=identity.client_id,
            token_id=identity.token_id,
        )
        if bring_up:
            try:
                await bring_up_child(owner, child, receiver, 1)
            except HandshakeFailedError as e:
                error = SpawnFailedError(
                    f"the MCP server process did not start: {e.reason}"
                )
                owner.became_ready(error)
                await self.end(owner, e.reason)
                raise error from None
            owner.became_ready()
        self._spawns.spawned(self._clock.seconds() - began)
        return owner

    async def start_slot(self) -> Callable[[], None]:
        """A place among the children starting now (its ``release``)."""
        if self._spawn_gate is None:
            return _no_slot
        return await self._spawn_gate.acquire()

    async def obtain(
        self, key: OwnerKey, identity: Identity, router_factory: RouterFactory
    ) -> ChildOwner:
        """
        The live owner ``key`` of ``identity`` once its first child is up,
        or a new one brought up (`create` with ``bring_up``): concurrent
        first requests of one identity share one child. Raises what
        `create` and `lookup` raise.
        """
        for _ in range(2):
            if key not in self._owners:
                try:
                    return await self.create(
                        key, identity, router_factory, bring_up=True
                    )
                except OwnerExistsError:
                    continue  # another request created it meanwhile: share it
            owner = self.lookup(key, identity)
            await owner.when_ready()
            if owner.ended:
                raise SessionNotFoundError("the MCP server process ended; retry")
            return owner
        raise OwnerExistsError("this owner is being replaced; retry")

    def lookup(self, key: OwnerKey, identity: Identity) -> ChildOwner:
        """
        The live owner ``key`` of ``identity``. Raises `SessionNotFoundError`
        (unknown or ended) or `SessionForbiddenError` (another identity's).
        Never starts a child (a GET or DELETE must not launch a process).
        """
        owner = self._owners.get(key)
        if owner is None:
            raise SessionNotFoundError("unknown or ended session; initialize again")
        if owner.user != identity.user or owner.client_id != identity.client_id:
            self.log.warn(
                "{owner} of {user_owner} presented by {user} via {client}",
                owner=owner.described,
                user_owner=owner.user,
                user=identity.user,
                client=identity.client_id,
            )
            raise SessionForbiddenError(
                "this session belongs to another user or client"
            )
        if owner.identity.consent != identity.consent:
            # The grant's consent mode changed since the owner started (its
            # tokens were revoked and its owners ended, but a session may
            # have been starting meanwhile): its policy is the old mode's.
            self.log.info(
                "{owner} was started under {old} access, presented with {new}",
                owner=owner.described,
                old=owner.identity.consent,
                new=identity.consent,
            )
            raise SessionNotFoundError(
                "the access granted to this application changed; initialize again"
            )
        return owner

    def get(self, key: OwnerKey) -> ChildOwner | None:
        """The owner with this key, whoever it belongs to (admin and tests)."""
        return self._owners.get(key)

    def owners_of(self, user: str) -> list[ChildOwner]:
        """Every live owner of ``user`` (revoke-user, token rotation)."""
        return list(self._by_user.get(user, {}).values())

    def owners_of_grant(self, user: str, client_id: str) -> list[ChildOwner]:
        """Every live owner of ``user`` through ``client_id`` (one grant revoked)."""
        return list(self._by_grant.get((user, client_id), {}).values())

    def sessions(self) -> list[ChildOwner]:
        """Every live owner."""
        return list(self._owners.values())

    def counts(self) -> Counts:
        """Live owners, children, users; owners started and ended."""
        children = sum(len(s.children) for s in self._owners.values())
        return Counts(
            sessions=len(self._owners),
            children=children,
            users=len(self._by_user),
            started=self.started,
            ended=self.ended,
            identities=self.identity_owners(),
        )

    def identity_owners(self) -> int:
        """Live owners keyed by identity (for metrics)."""
        return sum(1 for key in self._owners if isinstance(key, IdentityKey))

    def _add(self, owner: ChildOwner) -> None:
        self._owners[owner.key] = owner
        self._by_user.setdefault(owner.user, {})[owner.key] = owner
        grant = (owner.user, owner.client_id)
        self._by_grant.setdefault(grant, {})[owner.key] = owner

    def _remove(self, owner: ChildOwner) -> None:
        if self._owners.get(owner.key) is not owner:
            return
        del self._owners[owner.key]
        mine = self._by_user.get(owner.user, {})
        mine.pop(owner.key, None)
        if not mine:
            self._by_user.pop(owner.user, None)
        grant = (owner.user, owner.client_id)
        granted = self._by_grant.get(grant, {})
        granted.pop(owner.key, None)
        if not granted:
            self._by_grant.pop(grant, None)

    # -- ending --------------------------------------------------------------

    def end(
        self, owner: ChildOwner, reason: str, kind: str = "other"
    ) -> Deferred[None]:
        """
        End an owner: forget it (a session id now gets 404), fail what is in
        flight, close its streams and stop its children. Fires once every
        child is reaped.

        :param kind: one of `END_KINDS`, counted for metrics (``shutdown``
            once the drain has begun, whatever the caller says).
        """
        if owner.ended:
            return succeed(None)
        owner.ended = True
        owner.end_reason = reason
        self._remove(owner)
        self.ended += 1
        kind = "shutdown" if self.closing else kind
        self.ended_by[kind if kind in self.ended_by else "other"] += 1
        self.log.info(
            "{owner} of {user} ended: {reason}",
            owner=owner.described,
            user=owner.user,
            reason=reason,
        )
        if owner.router is not None:
            owner.router.close(reason)
        stops = [child.stop() for child in list(owner.children.values())]
        if not stops:
            self.release(owner.user)
            return succeed(None)

        def reaped(outcome: object) -> object:
            # Caps count children: a child still stopping (up to
            # child_stop_grace) counts until it is reaped.
            self.release(owner.user)
            return outcome

        done = gatherResults(stops, consumeErrors=True).addBoth(reaped)
        return done.addCallback(lambda _: None)

    def end_many(
        self, owners: list[ChildOwner], reason: str, kind: str = "other"
    ) -> Deferred[None]:
        """End several owners; fires when all their children are reaped."""
        ds = [self.end(s, reason, kind) for s in owners]
        if not ds:
            return succeed(None)
        return gatherResults(ds, consumeErrors=True).addCallback(lambda _: None)

    def reap_idle(self, now: float, idle_timeout: float) -> Deferred[int]:
        """
        End every owner idle for more than ``idle_timeout`` seconds (no
        request in flight, no open GET stream); fires with how many.
        """
        idle = [
            s
            for s in self._owners.values()
            if not s.busy and now - s.last_activity > idle_timeout
        ]
        return self.end_many(idle, "idle", "idle").addCallback(lambda _: len(idle))

    def drain(self) -> Deferred[None]:
        """
        Shutdown: close standalone streams now; fires when no request is in
        flight for any owner. From now on no owner gets a new child (a
        refresh landing late would otherwise spawn one after the spawner was
        told to stop its children, and the broker could exit with it alive).
        """
        self.closing = True
        waits = [s.router.drain() for s in self._owners.values() if s.router]
        if not waits:
            return succeed(None)
        return gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def _child_gone(self, owner: ChildOwner, generation: int, exit: ChildExit) -> None:
        owner.children.pop(generation, None)
        if owner.router is not None:
            owner.router.child_exited(generation, exit)
        if not owner.ended and generation == owner.generation:
            self.end(owner, describe_exit(exit), "child_exit")

    # -- ISessionControl -----------------------------------------------------

    def live_users(self) -> frozenset[str]:
        """Forgejo logins with at least one live owner."""
        return frozenset(self._by_user)

    def live_grants(self) -> frozenset[UpstreamGrant]:
        """The upstream grants whose tokens live owners' children hold."""
        return frozenset(o.grant for o in self._owners.values())

    def end_user(self, user: str, reason: str) -> Deferred[None]:
        """End every owner of ``user``."""
        return self.end_many(self.owners_of(user), reason, "revoked")

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        """End the owners of ``user`` through ``client_id`` only."""
        return self.end_many(self.owners_of_grant(user, client_id), reason, "revoked")

    def token_rotated(self, token: UpstreamToken) -> None:
        """
        The Forgejo token of ``token.grant`` changed: give each owner whose
        children hold that grant's token a new child running with it (the
        client notices nothing). Owners on the user's other grant keep theirs.
        """
        self._note_token(token)
        grant = token.grant
        for owner in self.owners_of(token.user):
            if owner.grant == grant and owner.token_generation < token.generation:
                self._start_respawn(owner)

    # -- respawn -------------------------------------------------------------

    def respawn_if_stale(self, owner: ChildOwner) -> None:
        """
        Called by the bridge when it dispatches a message to ``owner``: if
        its child predates the newest token seen for its upstream grant,
        start a respawn (the message still goes to the current child).
        """
        newest = self._newest_token.get(owner.grant)
        if newest is not None and newest > owner.token_generation:
            self._start_respawn(owner)

    def _note_token(self, token: UpstreamToken) -> None:
        if token.generation > self._newest_token.get(token.grant, -1):
            self._newest_token[token.grant] = token.generation

    def _label(self, owner: ChildOwner) -> str:
        if isinstance(owner.key, str):
            return f"session={owner.short_id} user={owner.user}"
        return f"identity={owner.user}/{owner.client_id}/{owner.identity.consent}"

    def _start_respawn(self, owner: ChildOwner) -> None:
        if (
            self.closing
            or owner.respawning
            or owner.ended
            or owner.router is None
            or not owner.router.handshaker.ready
        ):
            return
        owner.respawning = True
        d = Deferred.fromCoroutine(self._respawn(owner))
        d.addErrback(
            lambda f: self.log.failure(
                "respawn of {owner} failed", f, owner=owner.described
            )
        )

    async def _respawn(self, owner: ChildOwner) -> None:
        started_for = self._newest_token.get(owner.grant, -1)
        try:
            await respawn_owner(self, owner)
        finally:
            owner.respawning = False
        # A newer token arrived while this child was being readied (its
        # token_rotated found the owner busy respawning): go again, so an
        # idle owner does not keep a token older than the newest. A failed
        # handshake with no newer token is not retried here (the next
        # request or rotation retries it), so this cannot loop.
        newest = self._newest_token.get(owner.grant, -1)
        if newest > started_for and owner.token_generation < newest:
            self._start_respawn(owner)

    def spawn_generation(
        self,
        owner: ChildOwner,
        token: UpstreamToken,
        generation: int,
        slot: Callable[[], None] = _no_slot,
    ) -> tuple[IChild, GenerationReceiver]:
        """
        Start the child of a new generation (not yet current); ``slot``
        (from `start_slot`) is given back at its first line or its exit, or
        at once if it cannot be started.
        """
        receiver = GenerationReceiver(self, owner, generation)
        try:
            child = self._spawner.spawn(
                self._spec_factory(token, self._label(owner)),
                receiver if slot is _no_slot else GatedReceiver(receiver, slot),
            )
        except BaseException:
            slot()
            raise
        owner.children[generation] = child
        return child, receiver

    @property
    def clock(self) -> IReactorTime:
        """The clock the registry runs on."""
        return self._clock

    @property
    def tokens(self) -> IUpstreamTokens:
        """Where the upstream grants' current Forgejo tokens come from."""
        return self._tokens
