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

from fjmcp.interfaces import UpstreamToken
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


@define
class MemoryTokens:
    """
    The users' stored Forgejo tokens, in memory: the store side of the
    refresh and the broker's `IUpstreamTokens` view in one.
    """

    rows: dict[str, _Row] = field(factory=dict)
    live_grants: set[str] = field(factory=set)
    """Users holding a live broker refresh token."""
    fail_due: list[Exception] = field(factory=list)
    """Errors the next `due` calls fail with, one per call."""
    stored: list[UpstreamToken] = field(factory=list)
    leases: dict[str, str] = field(factory=dict)
    """Refresh leases held: user -> node."""
    leased_elsewhere: set[str] = field(factory=set)
    """Users whose lease another node holds (claims are refused)."""

    def put(self, user: str, tokens: ForgejoTokens, now: float) -> UpstreamToken:
        """Store a login's tokens (as the OAuth callback does): generation + 1."""
        old = self.rows.get(user)
        generation = old.generation + 1 if old else 1
        self.rows[user] = _Row(
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at(now),
            generation,
        )
        return self._token(user)

    def _token(self, user: str) -> UpstreamToken:
        row = self.rows[user]
        return UpstreamToken(user, row.access_token, row.expires_at, row.generation)

    def due(self, before: float, now: float) -> Deferred[Sequence[DueToken]]:
        """Tokens expiring before ``before`` (fails once per queued error)."""
        if self.fail_due:
            return fail(self.fail_due.pop(0))
        return succeed(
            [
                DueToken(user, row.expires_at, row.generation, user in self.live_grants)
                for user, row in sorted(self.rows.items())
                if row.expires_at < before
            ]
        )

    def refresh_grant(self, user: str) -> Deferred[RefreshGrant | None]:
        """The stored refresh token and its generation."""
        row = self.rows.get(user)
        if row is None or row.refresh_token is None:
            return succeed(None)
        return succeed(
            RefreshGrant(user, row.refresh_token, row.generation, row.expires_at)
        )

    def claim(self, grant: RefreshGrant, owner: str, seconds: float) -> Deferred[bool]:
        """The lease, unless `leased_elsewhere` names the user."""
        if grant.user in self.leased_elsewhere:
            return succeed(False)
        self.leases[grant.user] = owner
        return succeed(True)

    def release(self, grant: RefreshGrant, owner: str) -> Deferred[None]:
        """Drop the lease if ``owner`` holds it."""
        if self.leases.get(grant.user) == owner:
            del self.leases[grant.user]
        return succeed(None)

    def newest(self, user: str) -> Deferred[UpstreamToken | None]:
        """The stored row as a token (None if there is none)."""
        return succeed(self._token(user) if user in self.rows else None)

    def store_refreshed(
        self, grant: RefreshGrant, tokens: ForgejoTokens, now: float
    ) -> Deferred[UpstreamToken | None]:
        """Replace the row if its generation is still the grant's."""
        user = grant.user
        row = self.rows.get(user)
        if row is None or row.generation != grant.generation:
            return succeed(None)
        row.access_token = tokens.access_token
        row.refresh_token = tokens.refresh_token or row.refresh_token
        row.expires_at = tokens.expires_at(now)
        row.generation += 1
        self.leases.pop(user, None)  # a new token ends the lease, as in the store
        token = self._token(user)
        self.stored.append(token)
        return succeed(token)

    def current(self, user: str) -> Deferred[UpstreamToken]:
        """The user's current token; KeyError when none is stored."""
        if user not in self.rows:
            return fail(KeyError(user))
        return succeed(self._token(user))

    def drop(self, user: str) -> None:
        """Forget the user's token (what revocation does to the store)."""
        self.rows.pop(user, None)
        self.live_grants.discard(user)


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

    def live_users(self) -> frozenset[str]:
        """Users with at least one session."""
        return frozenset(u for u, s in self.sessions.items() if s)

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
