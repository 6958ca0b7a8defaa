# -*- test-case-name: tests.maintenance.test_refresher -*-
"""
In-memory stand-ins for the refresher's collaborators, and a stand-in
Forgejo reached through `StubTreq`, for clock-driven lifecycle tests.

`MemoryTokens` plays the store and the memory of the users' Forgejo tokens
(`IRefreshableTokens` + `IUpstreamTokens`); `FakeSessions` plays the
session registry (`ISessionControl`); `Switchable` puts a Forgejo "down"
(503) and back up; `forgejo_on` gives a real `ForgejoClient` over any of
them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from attrs import define, field
from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from fjmcp.interfaces import UpstreamGrant, UpstreamToken
from fjmcp.maintenance.refresher import DueToken, RefreshGrant
from fjmcp.maintenance.settings import MaintenanceSettings
from fjmcp.standin.app import StandinForgejo, StandinUser
from fjmcp.store.store import SyncStore
from fjmcp.upstream.forgejo import ForgejoClient, ForgejoTokens
from tests.standin.support import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    exchange,
    get_code,
    result_of,
)

T = TypeVar("T")


@define
class _Row:
    access_token: str
    refresh_token: str | None
    expires_at: float
    generation: int


def _grant(who: str | UpstreamGrant) -> UpstreamGrant:
    return who if isinstance(who, UpstreamGrant) else UpstreamGrant(who)


@define
class MemoryTokens:
    """
    The upstream grants' stored Forgejo tokens, in memory: the store side of
    the refresh and the broker's `IUpstreamTokens` view in one. A login
    names the user's grant of no scopes.
    """

    rows: dict[UpstreamGrant, _Row] = field(factory=dict)
    live_grants: set[str] = field(factory=set)
    """Users holding a live broker refresh token (of any consent mode)."""
    live_read_only: set[str] = field(factory=set)
    """Users holding one of a read-only grant."""
    fail_due: list[Exception] = field(factory=list)
    """Errors the next `due` calls fail with, one per call."""
    stored: list[UpstreamToken] = field(factory=list)
    leases: dict[UpstreamGrant, str] = field(factory=dict)
    """Refresh leases held: grant -> node."""
    leased_elsewhere: set[str] = field(factory=set)
    """Users whose lease another node holds (claims are refused)."""

    def put(
        self, who: str | UpstreamGrant, tokens: ForgejoTokens, now: float
    ) -> UpstreamToken:
        """Store a login's tokens (as the OAuth callback does): generation + 1."""
        grant = _grant(who)
        old = self.rows.get(grant)
        generation = old.generation + 1 if old else 1
        self.rows[grant] = _Row(
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at(now),
            generation,
        )
        return self._token(grant)

    def _token(self, grant: UpstreamGrant) -> UpstreamToken:
        row = self.rows[grant]
        return UpstreamToken(
            grant.user, row.access_token, row.expires_at, row.generation, grant.scopes
        )

    def due(self, before: float, now: float) -> Deferred[Sequence[DueToken]]:
        """Tokens expiring before ``before`` (fails once per queued error)."""
        if self.fail_due:
            return fail(self.fail_due.pop(0))
        return succeed(
            [
                DueToken(
                    grant.user,
                    row.expires_at,
                    row.generation,
                    grant.user in self.live_grants,
                    grant.key,
                    live_full=grant.user in self.live_grants,
                    live_read_only=grant.user in self.live_read_only,
                )
                for grant, row in sorted(
                    self.rows.items(), key=lambda i: (i[0].user, i[0].scopes)
                )
                if row.expires_at < before
            ]
        )

    def refresh_grant(self, grant: UpstreamGrant) -> Deferred[RefreshGrant | None]:
        """The stored refresh token and its generation."""
        row = self.rows.get(grant)
        if row is None or row.refresh_token is None:
            return succeed(None)
        return succeed(
            RefreshGrant(grant, row.refresh_token, row.generation, row.expires_at)
        )

    def claim(self, grant: RefreshGrant, owner: str, seconds: float) -> Deferred[bool]:
        """The lease, unless `leased_elsewhere` names the user."""
        if grant.user in self.leased_elsewhere:
            return succeed(False)
        self.leases[grant.grant] = owner
        return succeed(True)

    def release(self, grant: RefreshGrant, owner: str) -> Deferred[None]:
        """Drop the lease if ``owner`` holds it."""
        if self.leases.get(grant.grant) == owner:
            del self.leases[grant.grant]
        return succeed(None)

    def newest(self, grant: UpstreamGrant) -> Deferred[UpstreamToken | None]:
        """The stored row as a token (None if there is none)."""
        return succeed(self._token(grant) if grant in self.rows else None)

    def store_refreshed(
        self, grant: RefreshGrant, tokens: ForgejoTokens, now: float
    ) -> Deferred[UpstreamToken | None]:
        """Replace the row if its generation is still the grant's."""
        row = self.rows.get(grant.grant)
        if row is None or row.generation != grant.generation:
            return succeed(None)
        row.access_token = tokens.access_token
        row.refresh_token = tokens.refresh_token or row.refresh_token
        row.expires_at = tokens.expires_at(now)
        row.generation += 1
        self.leases.pop(grant.grant, None)  # a new token ends the lease
        token = self._token(grant.grant)
        self.stored.append(token)
        return succeed(token)

    def current(self, who: str | UpstreamGrant) -> Deferred[UpstreamToken]:
        """The grant's current token; KeyError when none is stored."""
        grant = _grant(who)
        if grant not in self.rows:
            return fail(KeyError(grant.user))
        return succeed(self._token(grant))

    def drop(self, user: str) -> None:
        """Forget the user's tokens (what revocation does to the store)."""
        for grant in [g for g in self.rows if g.user == user]:
            del self.rows[grant]
        self.live_grants.discard(user)
        self.live_read_only.discard(user)


@define
class DeferringStore:
    """A `SyncStore` behind the daemon's `run(...) -> Deferred` interface."""

    sync: SyncStore
    closed: bool = False

    def run(self, fn: Callable[..., T], /, *args: Any) -> Deferred[T]:
        """Run the transaction now; an already-fired Deferred."""
        return succeed(self.sync.run(fn, *args))

    def close(self) -> None:
        """Close the connection (and the lock)."""
        self.closed = True
        self.sync.close()


@define
class FakeSessions:
    """An `ISessionControl` that records what it was asked."""

    sessions: dict[str, list[str]] = field(factory=dict)
    """Session ids per live user."""
    rotated: list[UpstreamToken] = field(factory=list)
    ended: list[tuple[str, str]] = field(factory=list)
    ended_clients: list[tuple[str, str, str]] = field(factory=list)
    reap_calls: list[tuple[float, float]] = field(factory=list)

    grants: dict[str, tuple[UpstreamGrant, ...]] = field(factory=dict)
    """The grants a live user's children hold (default: their no-scope grant)."""

    def live_users(self) -> frozenset[str]:
        """Users with at least one session."""
        return frozenset(u for u, s in self.sessions.items() if s)

    def live_grants(self) -> frozenset[UpstreamGrant]:
        """The grants of the live users' children."""
        return frozenset(
            g
            for u in self.live_users()
            for g in self.grants.get(u, (UpstreamGrant(u),))
        )

    def end_user(self, user: str, reason: str) -> Deferred[None]:
        """End every session of ``user``."""
        self.ended.append((user, reason))
        self.sessions.pop(user, None)
        return succeed(None)

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        """Record the call (this fake keeps no clients)."""
        self.ended_clients.append((user, client_id, reason))
        return succeed(None)

    def token_rotated(self, token: UpstreamToken) -> None:
        """Record the rotation (the registry would respawn the children)."""
        self.rotated.append(token)

    def reap_idle(self, now: float, idle_timeout: float) -> Deferred[int]:
        """Record the reaper's question; nothing here is ever idle."""
        self.reap_calls.append((now, idle_timeout))
        return succeed(0)


class Switchable(Resource):
    """Serves ``inner``, or 503 for every request while ``down`` is set."""

    isLeaf = True

    def __init__(self, inner: IResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.inner = inner
        self.down = False
        self.requests: list[bytes] = []

    def render(self, request: IRequest) -> Any:
        """Forward the request, or answer 503 when down."""
        self.requests.append(request.path)
        if self.down:
            request.setResponseCode(503)
            return b"Forgejo is down"
        return self.inner.render(request)


def forgejo_on(resource: IResource, clock: Clock) -> tuple[ForgejoClient, Any]:
    """A real `ForgejoClient` whose HTTP goes to ``resource`` in memory."""
    stub = StubTreq(resource)  # type: ignore[no-untyped-call, unused-ignore]
    client = ForgejoClient(
        cast(HTTPClient, stub), ISSUER, CLIENT_ID, CLIENT_SECRET, clock=clock
    )
    return client, stub


def login(stub: Any, user: StandinUser = ALICE) -> ForgejoTokens:
    """Log ``user`` in at the stand-in (form, code, exchange); their tokens."""
    code, verifier = get_code(stub, user)
    status, answer = exchange(stub, code, verifier)
    assert status == 200, answer
    return ForgejoTokens(
        answer["access_token"],
        answer["token_type"],
        answer["expires_in"],
        answer["refresh_token"],
    )


def accepted(standin: StandinForgejo, stub: Any, access_token: str) -> str | None:
    """The login the stand-in says ``access_token`` belongs to, or None (401)."""
    response = result_of(
        stub.get(
            f"{ISSUER}/api/v1/user",
            headers={"Authorization": f"Bearer {access_token}"},
        )
    )
    if response.code != 200:
        return None
    login_: str = result_of(response.json())["login"]
    return login_


def maintenance_settings(**overrides: Any) -> MaintenanceSettings:
    """The timers' settings at the configuration's defaults, with ``overrides``."""
    values: dict[str, Any] = {
        "reaper_interval": 30.0,
        "idle_timeout": 1800.0,
        "refresh_interval": 60.0,
        "refresh_margin": 120.0,
        "user_check_interval": 300.0,
    }
    values.update(overrides)
    return MaintenanceSettings(**values)
