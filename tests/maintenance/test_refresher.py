# -*- test-case-name: tests.maintenance.test_refresher -*-
"""
Tests for `fjmcp.maintenance.refresher`: Forgejo tokens are refreshed shortly
before they expire, once per user, in both of Forgejo's refresh modes;
transient failures back off on the clock; a refusal revokes the user; the
per-user check ends users Forgejo no longer accepts. Everything runs on one
`Clock` against the stand-in Forgejo through `StubTreq` (no sleeps, no
sockets).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import define, evolve, field
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from fjmcp.interfaces import UpstreamGrant, UpstreamGrants
from fjmcp.maintenance.refresher import (
    RefreshOutcome,
    StoreRefreshableTokens,
    TokenRefresher,
    due_tokens_txn,
)
from fjmcp.maintenance.revocation import (
    RevokedInStore,
    UserRevoker,
    store_revocation,
)
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.upstream_tokens import NoUpstreamTokenError, UpstreamTokens
from fjmcp.standin.app import StandinForgejo, StandinUser
from fjmcp.store.dialect import Dialect
from fjmcp.store.grants import (
    CodeGrant,
    Mint,
    insert_code_txn,
    lookup_access_txn,
    redeem_code_txn,
    upsert_user_txn,
)
from fjmcp.store.store import SyncStore, open_store_sync
from fjmcp.store.upstream_tokens import get_upstream_txn
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoUnavailable
from fjmcp.upstream.forgejo import ForgejoClient, ForgejoTokens, ForgejoUser
from tests.maintenance.support import (
    DeferringStore,
    FakeSessions,
    MemoryTokens,
    Switchable,
    accepted,
    forgejo_on,
    login,
    maintenance_settings,
)
from tests.standin.support import ALICE, BOB, make_standin, refresh, result_of
from tests.store.support import DIALECTS, open_two_nodes

START = 1000.0
LIFETIME = 600
INTERVAL = 60.0
MARGIN = 120.0
USER_CHECK = 300.0
SETTINGS = maintenance_settings(
    refresh_interval=INTERVAL, refresh_margin=MARGIN, user_check_interval=USER_CHECK
)
TOKEN_PATH = b"/login/oauth/access_token"
USER_PATH = b"/api/v1/user"


@define
class HeldForgejo:
    """A Forgejo client whose refresh calls wait until the test releases them."""

    inner: ForgejoClient
    held: list[Deferred[None]] = field(factory=list)
    refresh_calls: int = 0

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        """Count the call, wait for the test, then ask the stand-in."""
        self.refresh_calls += 1
        gate: Deferred[None] = Deferred()
        self.held.append(gate)
        await gate
        return await self.inner.refresh(refresh_token)

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Ask the stand-in at once."""
        return await self.inner.get_user(access_token)

    def release(self) -> None:
        """Let every held refresh go on."""
        held, self.held = self.held, []
        for gate in held:
            gate.callback(None)


@define
class NoRefreshForgejo:
    """A Forgejo client whose refreshes find Forgejo unavailable."""

    inner: ForgejoClient

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        """Fail as a 503 does."""
        raise ForgejoUnavailable("token endpoint answered 503", status=503)

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Ask the stand-in at once."""
        return await self.inner.get_user(access_token)


@define
class World:
    """One clock, one stand-in Forgejo, the fakes, and the refresher under test."""

    clock: Clock
    standin: StandinForgejo
    gate: Switchable
    stub: Any
    forgejo: ForgejoClient
    tokens: MemoryTokens
    sessions: FakeSessions
    revoked_in_store: list[str] = field(factory=list)
    forgotten: list[str] = field(factory=list)
    panics: list[tuple[Failure, str]] = field(factory=list)
    refresher: TokenRefresher | None = None

    def build(self, forgejo: Any = None, **policy: Any) -> TokenRefresher:
        """The refresher wired to this world (not started)."""

        async def revoke_in_store(user: str, reason: str) -> RevokedInStore:
            self.revoked_in_store.append(user)
            self.tokens.drop(user)
            return RevokedInStore(known=True, token_hashes=("h1", "h2"))

        revoker = UserRevoker(
            self.sessions, revoke_in_store, forget=[self.forgotten.append]
        )
        self.refresher = TokenRefresher(
            self.tokens,
            self.tokens,
            forgejo or self.forgejo,
            self.sessions,
            revoker,
            self.clock,
            evolve(SETTINGS, **policy),
            panic=lambda f, key: self.panics.append((f, key)),
        )
        return self.refresher

    def start(self, forgejo: Any = None, **policy: Any) -> TokenRefresher:
        """Build and start the refresher."""
        refresher = self.build(forgejo, **policy)
        refresher.startService()
        return refresher

    def log_in(self, user: str = "alice", *, session: bool = True) -> None:
        """Log ``user`` in at the stand-in and store their tokens."""
        who = next(u for u in self.standin.config.users if u.login == user)
        tokens = login(self.stub, who)
        self.tokens.put(user, tokens, self.clock.seconds())
        if session:
            self.sessions.sessions.setdefault(user, []).append(f"s-{user}")
        self.gate.requests.clear()

    def refresher_or_fail(self) -> TokenRefresher:
        """The refresher built by `build`."""
        assert self.refresher is not None
        return self.refresher

    def token_requests(self) -> int:
        """Calls to Forgejo's token endpoint since the login."""
        return sum(1 for p in self.gate.requests if p == TOKEN_PATH)

    def user_requests(self) -> int:
        """Calls to Forgejo's /api/v1/user since the login."""
        return sum(1 for p in self.gate.requests if p == USER_PATH)

    def advance_to(self, when: float) -> None:
        """Move the clock to ``when`` one second at a time (timers fire in order)."""
        while self.clock.seconds() < when:
            self.clock.advance(min(1.0, when - self.clock.seconds()))


def make_world(**standin: Any) -> World:
    clock = Clock()
    clock.advance(START)
    options: dict[str, Any] = {"token_lifetime": LIFETIME, **standin}
    forgejo_standin = make_standin(clock, **options)
    gate = Switchable(forgejo_standin.app.resource())
    client, stub = forgejo_on(gate, clock)
    return World(
        clock, forgejo_standin, gate, stub, client, MemoryTokens(), FakeSessions()
    )


@pytest.fixture
def world() -> Iterator[World]:
    w = make_world()
    yield w
    if w.refresher is not None and w.refresher.running:
        w.refresher.stopService()


# --- refresh ahead of expiry ------------------------------------------------


def test_refreshes_shortly_before_expiry() -> None:
    """A token is left alone until it expires within the margin, then refreshed
    once: the new token is stored with the next generation, the sessions are
    told, and Forgejo accepts the new token."""
    w = make_world()
    w.log_in()
    w.start()
    expires = START + LIFETIME
    w.advance_to(expires - MARGIN - 1)
    assert w.token_requests() == 0 and w.sessions.rotated == []
    w.advance_to(expires - MARGIN + INTERVAL)
    assert w.token_requests() == 1
    assert [t.generation for t in w.sessions.rotated] == [2]
    new = w.sessions.rotated[0]
    assert new.expires_at > expires
    assert accepted(w.standin, w.stub, new.access_token) == "alice"
    assert w.standin.refresh_count("alice") == 1
    assert w.refresher is not None and w.refresher.refreshes == 1
    assert w.sessions.ended == [] and w.panics == []
    w.refresher.stopService()


@pytest.mark.parametrize("invalidate", [False, True], ids=["reusable", "invalidated"])
def test_keeps_refreshing_in_both_forgejo_modes(invalidate: bool) -> None:
    """Over many token lifetimes the token is refreshed before each expiry, in
    Forgejo's reusable mode and in its invalidate-on-use mode (where a double
    use of a refresh token would be refused): every new token works, the
    generations count up, and nobody is logged out."""
    w = make_world(invalidate_refresh_tokens=invalidate)
    w.log_in()
    w.start()
    for _ in range(6):
        before = len(w.sessions.rotated)
        current = result_of(w.tokens.current("alice"))
        w.advance_to(current.expires_at - MARGIN + INTERVAL)
        assert len(w.sessions.rotated) == before + 1
        latest = w.sessions.rotated[-1]
        assert accepted(w.standin, w.stub, latest.access_token) == "alice"
        assert w.clock.seconds() < current.expires_at  # refreshed before expiry
    assert [t.generation for t in w.sessions.rotated] == [2, 3, 4, 5, 6, 7]
    assert w.standin.refresh_count("alice") == 6 == w.token_requests()
    assert w.sessions.ended == [] and w.revoked_in_store == [] and w.panics == []
    assert w.refresher is not None
    w.refresher.stopService()


def test_not_refreshed_without_session_or_grant(world: World) -> None:
    """A due token whose user has neither a live session nor a live broker
    refresh token is left to expire; one with a live grant is refreshed."""
    world.log_in("alice", session=False)
    world.log_in("bob", session=False)
    world.tokens.live_grants.add("bob")
    world.start()
    world.advance_to(START + LIFETIME + INTERVAL)
    assert [t.user for t in world.sessions.rotated] == ["bob"]
    assert world.standin.refresh_count("alice") == 0
    assert world.user_requests() == 0  # no live sessions: no user checks


def test_one_refresh_for_many_sessions_and_callers(world: World) -> None:
    """Several sessions of one user, later ticks and direct callers all share
    the one refresh in flight: Forgejo sees one refresh, the sessions are told
    once, and every caller learns the outcome."""
    world.log_in()
    world.sessions.sessions["alice"] += ["s-2", "s-3"]
    held = HeldForgejo(world.forgejo)
    refresher = world.start(held)
    world.advance_to(START + LIFETIME - MARGIN + INTERVAL)
    assert held.refresh_calls == 1
    callers = [refresher.refresh_user("alice") for _ in range(3)]
    world.advance_to(world.clock.seconds() + 3 * INTERVAL)  # more ticks meanwhile
    assert held.refresh_calls == 1
    assert not any(d.called for d in callers)
    held.release()
    assert [result_of(d) for d in callers] == [RefreshOutcome.REFRESHED] * 3
    assert world.standin.refresh_count("alice") == 1
    assert len(world.sessions.rotated) == 1


def test_concurrent_refreshes_are_bounded() -> None:
    """Many users due at once are refreshed at most max_concurrent at a time;
    each finishes, and user checks do not take the refreshes' places."""
    extra = tuple(StandinUser(name, f"{name}-password") for name in ("c", "d", "e"))
    world = make_world(users=(ALICE, BOB, *extra))
    for user in ("alice", "bob", "c", "d", "e"):
        world.log_in(user)
    held = HeldForgejo(world.forgejo)
    world.start(held, max_concurrent=2)
    world.advance_to(START + LIFETIME - MARGIN + INTERVAL)
    assert held.refresh_calls == 2
    held.release()
    assert held.refresh_calls == 4
    held.release()
    assert held.refresh_calls == 5
    held.release()
    assert sorted(t.user for t in world.sessions.rotated) == [
        "alice",
        "bob",
        "c",
        "d",
        "e",
    ]
    world.refresher_or_fail().stopService()


def test_refresh_user_with_nothing_stored(world: World) -> None:
    """Asking to refresh a user without a stored token does nothing and says so."""
    world.start()
    assert result_of(world.refresher_or_fail().refresh_user("carol")) is (
        RefreshOutcome.NO_TOKEN
    )
    assert world.token_requests() == 0


def test_a_grant_leased_by_another_node_is_left_to_it(world: World) -> None:
    """
    When another node holds the grant's refresh lease this node does not
    call Forgejo at all; once the lease is free it refreshes, and the lease
    is ended by the stored token, not left behind.
    """
    world.log_in()
    world.tokens.leased_elsewhere.add("alice")
    refresher = world.start()
    assert result_of(refresher.refresh_user("alice")) is RefreshOutcome.ELSEWHERE
    assert world.token_requests() == 0
    world.tokens.leased_elsewhere.clear()
    assert result_of(refresher.refresh_user("alice")) is RefreshOutcome.REFRESHED
    assert world.token_requests() == 1
    assert world.tokens.leases == {}


def test_a_failed_refresh_gives_its_lease_back(world: World) -> None:
    """A refresh that stored nothing releases the lease for the next try."""
    world.log_in()
    refresher = world.start(retry_attempts=1)
    world.gate.down = True
    assert result_of(refresher.refresh_user("alice")) is RefreshOutcome.FAILED
    assert world.tokens.leases == {}


# --- transient failures -----------------------------------------------------


def test_forgejo_down_then_back_retries_with_backoff(world: World) -> None:
    """While Forgejo answers 503 the refresh is retried after 2, 4, 8, 16 s; once
    it is back the refresh succeeds, with no second refresh started by the
    ticks meanwhile and nobody logged out."""
    world.log_in()
    world.start()
    due_tick = START + LIFETIME - MARGIN + INTERVAL  # 1540: the first due tick
    world.advance_to(due_tick - 1)
    world.gate.down = True
    world.advance_to(due_tick)
    assert world.token_requests() == 1
    times = []
    for delay in (2, 4, 8):
        world.advance_to(world.clock.seconds() + delay)
        times.append(world.token_requests())
    assert times == [2, 3, 4]
    assert world.sessions.rotated == []
    world.gate.down = False
    world.advance_to(world.clock.seconds() + 16)
    assert world.token_requests() == 5
    assert [t.generation for t in world.sessions.rotated] == [2]
    assert world.standin.refresh_count("alice") == 1
    assert world.sessions.ended == [] and world.panics == []


def test_gives_up_after_the_attempts_and_tries_again_next_tick(world: World) -> None:
    """After ``retry_attempts`` transient failures the refresh ends; the next
    tick starts a fresh one, which succeeds once Forgejo is back."""
    world.log_in()
    world.start(retry_attempts=2, retry_initial=1.0)
    due_tick = START + LIFETIME - MARGIN + INTERVAL
    world.advance_to(due_tick - 1)
    world.gate.down = True
    world.advance_to(due_tick + 5)
    assert world.token_requests() == 2  # two attempts, then it waits for a tick
    world.gate.down = False
    world.advance_to(due_tick + INTERVAL)
    assert world.token_requests() == 3
    assert len(world.sessions.rotated) == 1
    assert world.panics == []


def test_panic_when_the_token_expired_and_forgejo_stays_down(world: World) -> None:
    """If Forgejo stays unreachable until the token has expired, the panic hook
    gets the transient failure and the user; the user is not logged out."""
    world.log_in()
    world.start(retry_attempts=2, retry_initial=1.0)
    world.gate.down = True
    world.advance_to(START + LIFETIME + 2 * INTERVAL)
    assert world.panics, "the panic hook was not called"
    failure, key = world.panics[0]
    assert key == "alice"
    assert failure.check(ForgejoUnavailable)
    assert world.sessions.ended == [] and world.revoked_in_store == []


def test_failing_tick_is_logged_and_the_loop_goes_on(world: World) -> None:
    """A tick whose store query fails is logged; the next tick refreshes."""
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    try:
        world.log_in()
        world.tokens.fail_due.append(RuntimeError("database is locked"))
        world.start()
        world.advance_to(START + INTERVAL)
        failures = [e for e in events if "log_failure" in e]
        assert [type(e["log_failure"].value) for e in failures] == [RuntimeError]
        world.advance_to(START + LIFETIME - MARGIN + INTERVAL)
        assert len(world.sessions.rotated) == 1
        assert world.refresher_or_fail().running
    finally:
        globalLogPublisher.removeObserver(events)


def test_stop_cuts_the_backoff_short(world: World) -> None:
    """stopService during a backoff wait fires without the clock moving, the
    refresh ends as stopped, and no request follows the stop."""
    world.log_in()
    refresher = world.start()
    world.gate.down = True
    flight = refresher.refresh_user("alice")
    assert world.token_requests() == 1
    stopped = refresher.stopService()
    assert result_of(stopped) is None
    assert result_of(flight) is RefreshOutcome.STOPPED
    world.advance_to(world.clock.seconds() + 10 * INTERVAL)
    assert world.token_requests() == 1
    assert world.clock.getDelayedCalls() == []


def test_stop_waits_for_a_refresh_sent_to_forgejo(world: World) -> None:
    """A refresh already sent to Forgejo is not abandoned at stop: stopService
    fires only once its answer is stored (the spent refresh token is never
    lost)."""
    world.log_in()
    held = HeldForgejo(world.forgejo)
    refresher = world.start(held)
    flight = refresher.refresh_user("alice")
    stopped = refresher.stopService()
    assert not stopped.called
    held.release()
    assert result_of(stopped) is None
    assert result_of(flight) is RefreshOutcome.REFRESHED
    assert result_of(world.tokens.current("alice")).generation == 2


# --- refusals: the user must log in again -----------------------------------


def test_refused_refresh_revokes_the_user(world: World) -> None:
    """When Forgejo refuses the refresh (the grant was revoked: invalid_grant),
    the user is revoked: broker tokens in the store, caches, every session."""
    world.log_in()
    world.start()
    world.advance_to(START + INTERVAL + USER_CHECK)  # the user checks pass
    world.standin.revoke_user("alice")
    world.advance_to(START + LIFETIME - MARGIN + INTERVAL)  # before the next one
    assert world.revoked_in_store == ["alice"]
    assert world.forgotten == ["alice"]
    assert [u for u, _ in world.sessions.ended] == ["alice"]
    assert "invalid_grant" in world.sessions.ended[0][1]
    assert world.sessions.rotated == []
    world.advance_to(world.clock.seconds() + 5 * INTERVAL)
    assert world.token_requests() == 1  # nothing left to refresh


def test_spent_refresh_token_in_invalidate_mode_revokes() -> None:
    """In invalidate-on-use mode a stored refresh token that was spent elsewhere
    is refused with unauthorized_client, and the user is revoked."""
    w = make_world(invalidate_refresh_tokens=True)
    w.log_in()
    grant = result_of(w.tokens.refresh_grant(UpstreamGrant("alice")))
    assert grant is not None
    status, _ = refresh(w.stub, grant.refresh_token)  # spent behind our back
    assert status == 200
    w.start()
    assert result_of(w.refresher_or_fail().refresh_user("alice")) is (
        RefreshOutcome.REVOKED
    )
    assert [u for u, _ in w.sessions.ended] == ["alice"]
    assert "unauthorized_client" in w.sessions.ended[0][1]
    w.refresher_or_fail().stopService()


def test_refusal_after_a_fresh_login_is_ignored() -> None:
    """A user who logs in again while their old refresh token is in flight
    (invalidate mode spends the old one) is not logged out: the refusal of
    the superseded token is ignored and the new login's token stays."""
    w = make_world(invalidate_refresh_tokens=True)
    w.log_in()
    held = HeldForgejo(w.forgejo)
    refresher = w.start(held)
    flight = refresher.refresh_user("alice")
    w.log_in()  # generation 2, and Forgejo's grant counter moves on
    held.release()
    assert result_of(flight) is RefreshOutcome.SUPERSEDED
    assert w.sessions.ended == [] and w.revoked_in_store == []
    assert result_of(w.tokens.current("alice")).generation == 2
    refresher.stopService()


# --- the per-user check -----------------------------------------------------


def test_user_check_at_most_once_per_interval(world: World) -> None:
    """A user with live sessions is checked at Forgejo on the first tick and then
    no more often than user_check_interval; one without sessions never."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    world.log_in("bob", session=False)
    world.start()
    world.advance_to(START + INTERVAL)
    assert world.user_requests() == 1
    world.advance_to(START + INTERVAL + USER_CHECK - 1)
    assert world.user_requests() == 1
    world.advance_to(START + 2 * INTERVAL + USER_CHECK)
    assert world.user_requests() == 2
    assert world.sessions.ended == []


def test_user_check_401_revokes_the_user(world: World) -> None:
    """When Forgejo answers 401 to the user check (the user revoked the app at
    Forgejo), the user is revoked and every session of theirs ends."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    world.start()
    world.advance_to(START + INTERVAL)
    world.standin.revoke_user("alice")
    assert world.sessions.ended == []
    world.advance_to(START + INTERVAL + USER_CHECK)
    assert [u for u, _ in world.sessions.ended] == ["alice"]
    assert world.revoked_in_store == ["alice"] and world.forgotten == ["alice"]


def test_user_check_401_with_a_live_grant_refreshes_instead(world: World) -> None:
    """When Forgejo answers 401 to the user check but the grant is alive (the
    access token ended early: Forgejo's expire hook), the token is refreshed
    and the sessions told; nobody is revoked."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    refresher = world.start()
    world.standin.expire_user_tokens("alice")
    result_of(refresher.check_user("alice"))
    assert world.sessions.ended == [] and world.revoked_in_store == []
    assert world.standin.refresh_count("alice") == 1
    assert [t.generation for t in world.sessions.rotated] == [2]
    assert accepted(
        world.standin,
        world.stub,
        world.tokens.rows[UpstreamGrant("alice")].access_token,
    )


@define
class BlockedForgejo:
    """A Forgejo that still refreshes a blocked user's grant but refuses
    every token of theirs at ``/api/v1/user``."""

    inner: ForgejoClient

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        """Refresh at the stand-in."""
        return await self.inner.refresh(refresh_token)

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Refuse as a 401 does."""
        raise ForgejoAuthError("invalid_token", status=401)


def test_user_check_401_again_after_the_refresh_revokes(world: World) -> None:
    """When the 401 is followed by a refresh that succeeds but the fresh token
    is refused too (an account blocked at Forgejo), the user is revoked at
    once instead of being refreshed at every check."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    refresher = world.start(BlockedForgejo(world.forgejo))
    result_of(refresher.check_user("alice"))
    assert world.standin.refresh_count("alice") == 1
    assert [u for u, _ in world.sessions.ended] == ["alice"]
    assert world.revoked_in_store == ["alice"]


def test_user_check_401_without_refresh_token_revokes(world: World) -> None:
    """A refused token stored without a refresh token (admin issue-token)
    cannot be renewed: the user is revoked at once."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    world.tokens.rows[UpstreamGrant("alice")].refresh_token = None
    refresher = world.start()
    world.standin.expire_user_tokens("alice")
    result_of(refresher.check_user("alice"))
    assert [u for u, _ in world.sessions.ended] == ["alice"]
    assert world.standin.refresh_count("alice") == 0


def test_user_check_401_while_forgejo_cannot_refresh_keeps_the_user(
    world: World,
) -> None:
    """A 401 followed by a refresh that finds Forgejo down ends nobody: the
    check comes again later."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    refresher = world.start(NoRefreshForgejo(world.forgejo), retry_attempts=1)
    world.standin.expire_user_tokens("alice")
    result_of(refresher.check_user("alice"))
    assert world.sessions.ended == [] and world.revoked_in_store == []
    assert world.sessions.rotated == []


def test_user_check_connection_error_is_transient(world: World) -> None:
    """A user check that cannot reach Forgejo ends nobody."""
    world.standin.set_token_lifetime(3600)
    world.log_in()
    world.gate.down = True
    world.start()
    world.advance_to(START + 3 * USER_CHECK)
    assert world.user_requests() >= 2
    assert world.sessions.ended == [] and world.revoked_in_store == []


def test_user_check_skips_tokens_due_for_refresh(world: World) -> None:
    """A token that expires within the margin is refreshed, not checked (an
    expired token's 401 would log the user out for nothing)."""
    world.log_in()
    held = HeldForgejo(world.forgejo)
    refresher = world.start(held)
    world.clock.advance(LIFETIME + 1)  # expired at Forgejo; its refresh is held
    assert held.refresh_calls == 1
    world.gate.requests.clear()
    result_of(refresher.check_user("alice"))
    assert world.user_requests() == 0
    assert world.sessions.ended == []
    held.release()
    assert len(world.sessions.rotated) == 1


def test_user_check_for_someone_else_revokes(world: World) -> None:
    """A stored token Forgejo says belongs to another login is revoked."""
    world.standin.set_token_lifetime(3600)
    world.log_in("bob", session=False)
    bob = result_of(world.tokens.current("bob"))
    world.log_in()
    world.tokens.rows[UpstreamGrant("alice")].access_token = bob.access_token
    refresher = world.start()
    result_of(refresher.check_user("alice"))
    assert [u for u, _ in world.sessions.ended] == ["alice"]


# --- secrets ----------------------------------------------------------------


def test_no_token_reaches_the_log() -> None:
    """Over refreshes, retries, a refusal and user checks, no access or refresh
    token appears in any log event (formatted or as a field)."""
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    try:
        w = make_world()
        w.log_in()
        seen = {w.tokens.rows[UpstreamGrant("alice")].access_token}
        seen.add(w.tokens.rows[UpstreamGrant("alice")].refresh_token or "")
        w.start()
        for _ in range(3):
            current = result_of(w.tokens.current("alice"))
            w.advance_to(current.expires_at - MARGIN + INTERVAL)
            row = w.tokens.rows[UpstreamGrant("alice")]
            seen |= {row.access_token, row.refresh_token or ""}
        w.gate.down = True
        w.advance_to(w.clock.seconds() + INTERVAL * 2)
        w.gate.down = False
        w.standin.revoke_user("alice")
        w.advance_to(w.clock.seconds() + USER_CHECK + INTERVAL)
        assert w.sessions.ended
        w.refresher_or_fail().stopService()
    finally:
        globalLogPublisher.removeObserver(events)
    assert len(events) > 5
    for event in events:
        text = formatEvent(event) + repr(sorted(event.items(), key=str))
        for secret in seen - {""}:
            assert secret not in text


# --- against the store and the broker's token memory ----------------------------


def _live_refresh_token(store: SyncStore, login: str, now: float) -> None:
    """Give ``login`` a broker refresh token (a redeemed code) alive at ``now``."""
    uid = store.run(upsert_user_txn, login, None, now)
    code = CodeGrant(
        f"{login}-code",
        "admin-cli",
        uid,
        "http://127.0.0.1/cb",
        "x" * 43,
        "mcp",
        "http://127.0.0.1:8080/mcp",
        f"{login}-family",
        now,
        now + 600,
    )
    store.run(insert_code_txn, code)
    mint = Mint(f"{login}-at", now + 3600, f"{login}-rt", now + 86400, now)
    assert store.run(redeem_code_txn, code.code_hash, lambda c: None, mint).status == (
        "ok"
    )


def test_due_query_reports_live_broker_grants() -> None:
    """due_tokens_txn lists the tokens expiring before the bound, soonest first,
    with whether the user holds a live broker refresh token; tokens without a
    Forgejo refresh token or expiring later are left out."""
    store = open_store_sync(":memory:", now=START)
    try:
        upstream = UpstreamTokens(DeferringStore(store), KeyRing.generate(), Clock())
        for user, expires, refresh_token in [
            ("alice", START + 100, "rt-a"),
            ("bob", START + 50, "rt-b"),
            ("carol", START + 100, None),
            ("dave", START + 5000, "rt-d"),
        ]:
            result_of(
                Deferred.fromCoroutine(
                    upstream.replace(
                        UpstreamGrant(user), f"at-{user}", refresh_token, expires
                    )
                )
            )
        _live_refresh_token(store, "alice", START)
        due = store.run(due_tokens_txn, START + MARGIN, START)
        assert [(d.user, d.has_live_grant) for d in due] == [
            ("bob", False),
            ("alice", True),
        ]
        later = store.run(due_tokens_txn, START + MARGIN, START + 86400 + 1)
        assert [(d.user, d.has_live_grant) for d in later] == [
            ("bob", False),
            ("alice", False),  # the broker refresh token has expired by then
        ]
    finally:
        store.close()


def test_refresh_through_the_real_token_store() -> None:
    """With the store adapter over the real token memory and an in-memory store,
    a due token of a user with a live broker grant is refreshed at the stand-in;
    the new pair is stored sealed (no plaintext in the row) as generation 2,
    the memory copy is the new token, and the sessions are told."""
    w = make_world()
    store = open_store_sync(":memory:", now=START)
    try:
        runner = DeferringStore(store)
        upstream = UpstreamTokens(runner, KeyRing.generate(), w.clock)
        tokens = login(w.stub)
        result_of(
            Deferred.fromCoroutine(
                upstream.replace(
                    UpstreamGrant("alice"),
                    tokens.access_token,
                    tokens.refresh_token,
                    tokens.expires_at(START),
                )
            )
        )
        _live_refresh_token(store, "alice", START)
        refresher = TokenRefresher(
            StoreRefreshableTokens(runner, upstream),
            upstream,
            w.forgejo,
            w.sessions,
            UserRevoker(w.sessions, store_revocation(runner, w.clock)),
            w.clock,
            SETTINGS,
        )
        refresher.startService()
        w.advance_to(START + LIFETIME - MARGIN + INTERVAL)
        current = result_of(upstream.current(UpstreamGrant("alice")))
        assert current.generation == 2
        assert current.access_token != tokens.access_token
        assert accepted(w.standin, w.stub, current.access_token) == "alice"
        assert w.sessions.rotated == [current]
        raw = store.conn.execute(
            "SELECT access_sealed, refresh_sealed FROM upstream_tokens"
        ).fetchone()
        for blob in raw:
            assert current.access_token.encode() not in bytes(blob)
        refresher.stopService()
    finally:
        store.close()


def test_revocation_through_the_real_store() -> None:
    """A refusal from Forgejo revokes the user in the real store: the broker
    tokens read as revoked and the Forgejo token row is gone."""
    w = make_world()
    store = open_store_sync(":memory:", now=START)
    try:
        runner = DeferringStore(store)
        upstream = UpstreamTokens(runner, KeyRing.generate(), w.clock)
        tokens = login(w.stub)
        result_of(
            Deferred.fromCoroutine(
                upstream.replace(
                    UpstreamGrant("alice"),
                    tokens.access_token,
                    tokens.refresh_token,
                    tokens.expires_at(START),
                )
            )
        )
        _live_refresh_token(store, "alice", START)
        w.sessions.sessions["alice"] = ["s1"]
        w.standin.revoke_user("alice")
        refresher = TokenRefresher(
            StoreRefreshableTokens(runner, upstream),
            upstream,
            w.forgejo,
            w.sessions,
            UserRevoker(
                w.sessions, store_revocation(runner, w.clock), forget=[upstream.forget]
            ),
            w.clock,
            SETTINGS,
        )
        refresher.startService()
        assert result_of(refresher.refresh_user("alice")) is RefreshOutcome.REVOKED
        record = store.run(lookup_access_txn, "alice-at")
        assert record is not None and record.revoked
        assert store.run(get_upstream_txn, "alice") is None
        assert isinstance(
            _failure_of(upstream.current(UpstreamGrant("alice"))), NoUpstreamTokenError
        )
        assert w.sessions.ended == [("alice", "forgejo-refused-refresh:invalid_grant")]
        refresher.stopService()
    finally:
        store.close()


def _failure_of(d: Deferred[Any]) -> BaseException:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results and isinstance(results[0], Failure)
    error = results[0].value
    assert error is not None
    return error


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_two_nodes_refresh_one_grant_once(dialect: Dialect, tmp_path: Path) -> None:
    """
    Two nodes on one store both asked to refresh a user's Forgejo token: the
    first takes the grant's lease and calls Forgejo; the second, while that
    call runs, finds the lease taken and leaves it (never two refreshes of
    one Forgejo refresh token); then it reads the new token from the store.
    """
    w = make_world()
    nodes = open_two_nodes(dialect, tmp_path)
    try:
        keys = KeyRing.generate()
        runners = (DeferringStore(nodes.a), DeferringStore(nodes.b))
        upstreams = [UpstreamTokens(r, keys, w.clock) for r in runners]
        tokens = login(w.stub)
        result_of(
            Deferred.fromCoroutine(
                upstreams[0].replace(
                    UpstreamGrant("alice"),
                    tokens.access_token,
                    tokens.refresh_token,
                    tokens.expires_at(START),
                )
            )
        )
        held = HeldForgejo(w.forgejo)
        refreshers = [
            TokenRefresher(
                StoreRefreshableTokens(runner, upstream),
                upstream,
                held,
                w.sessions,
                UserRevoker(w.sessions, store_revocation(runner, w.clock)),
                w.clock,
                evolve(SETTINGS, node_id=name),
            )
            for runner, upstream, name in zip(
                runners, upstreams, ("node-a", "node-b"), strict=True
            )
        ]
        for refresher in refreshers:
            refresher.startService()
        first = refreshers[0].refresh_user("alice")
        assert held.refresh_calls == 1 and not first.called
        second = result_of(refreshers[1].refresh_user("alice"))
        assert second is RefreshOutcome.ELSEWHERE
        held.release()
        assert result_of(first) is RefreshOutcome.REFRESHED
        assert held.refresh_calls == 1
        assert w.standin.refresh_count("alice") == 1
        upstreams[1].forget("alice")
        seen = result_of(upstreams[1].current(UpstreamGrant("alice")))
        assert seen.generation == 2 and seen.access_token != tokens.access_token
        assert w.sessions.ended == []
        for refresher in refreshers:
            refresher.stopService()
    finally:
        nodes.close()


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_token_another_node_refreshed_is_not_refreshed_again(
    dialect: Dialect, tmp_path: Path
) -> None:
    """
    Node-a refreshes the user's Forgejo token; node-b, which has not heard
    of it yet (its notification is late), finds the old token refused at
    Forgejo. Node-b does not refresh the new token a second time: it gives
    its sessions the stored one. One refresh reaches Forgejo, not two.
    """
    w = make_world()
    nodes = open_two_nodes(dialect, tmp_path)
    try:
        keys = KeyRing.generate()
        runners = (DeferringStore(nodes.a), DeferringStore(nodes.b))
        upstreams = [UpstreamTokens(r, keys, w.clock) for r in runners]
        sessions = (w.sessions, FakeSessions({"alice": ["s1"]}))
        tokens = login(w.stub)
        result_of(
            Deferred.fromCoroutine(
                upstreams[0].replace(
                    UpstreamGrant("alice"),
                    tokens.access_token,
                    tokens.refresh_token,
                    tokens.expires_at(START),
                )
            )
        )
        old = result_of(
            upstreams[1].current(UpstreamGrant("alice"))
        )  # node-b's memory copy
        refreshers = [
            TokenRefresher(
                StoreRefreshableTokens(runner, upstream),
                upstream,
                w.forgejo,
                node_sessions,
                UserRevoker(node_sessions, store_revocation(runner, w.clock)),
                w.clock,
                evolve(SETTINGS, node_id=name),
            )
            for runner, upstream, node_sessions, name in zip(
                runners, upstreams, sessions, ("node-a", "node-b"), strict=True
            )
        ]
        for refresher in refreshers:
            refresher.startService()
        assert result_of(refreshers[0].refresh_user("alice")) is (
            RefreshOutcome.REFRESHED
        )
        assert w.standin.refresh_count("alice") == 1
        assert w.standin.expire_user_tokens("alice") >= 1
        result_of(refreshers[1].check_user("alice"))
        assert w.standin.refresh_count("alice") == 1
        assert refreshers[1].outcomes["superseded"] == 1
        [told] = sessions[1].rotated
        assert told.generation == old.generation + 1
        assert told.access_token != old.access_token
        assert sessions[1].ended == []
        for refresher in refreshers:
            refresher.stopService()
    finally:
        nodes.close()


@define
class _App:
    """A Forgejo application that records the refresh tokens sent to it."""

    name: str
    refreshed: list[str] = field(factory=list)

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        self.refreshed.append(refresh_token)
        return ForgejoTokens(f"{self.name}-at", "bearer", LIFETIME, f"{self.name}-rt")

    async def get_user(self, access_token: str) -> Any:
        raise AssertionError("no check in this test")


RO_SCOPES = ("read:organization", "read:repository", "read:user")


async def _never_revoked(user: str, reason: str) -> Any:
    raise AssertionError(f"{user} revoked: {reason}")


def test_each_grant_is_refreshed_for_its_own_clients_through_its_application() -> None:
    """
    A user's two due grants: each is refreshed once, through the application
    it was made with, and only while a client of its consent mode (or a
    child holding its token) will use it.
    """
    clock = Clock()
    clock.advance(START)
    grants = UpstreamGrants((), RO_SCOPES)
    tokens, sessions = MemoryTokens(), FakeSessions()
    full, read_only = grants.of("alice"), grants.of("alice", "read-only")
    expiring = {
        full: ("full-0", "full-r0"),
        read_only: ("ro-0", "ro-r0"),
        grants.of("bob"): ("bob-0", "bob-r0"),
    }
    for grant, (access, refreshing) in expiring.items():
        tokens.put(grant, ForgejoTokens(access, "bearer", 60, refreshing), START)
    tokens.live_read_only.add("alice")  # alice's only client is read-only
    sessions.sessions["bob"] = ["s1"]  # bob's child holds his full grant's token
    full_app, ro_app = _App("full"), _App("ro")
    refresher = TokenRefresher(
        tokens,
        tokens,
        full_app,
        sessions,
        UserRevoker(sessions, _never_revoked),
        clock,
        SETTINGS,
        grants=grants,
        read_only_forgejo=ro_app,
    )
    refresher.startService()
    try:
        result_of(Deferred.fromCoroutine(refresher.check_once()))
        assert ro_app.refreshed == ["ro-r0"]
        assert full_app.refreshed == ["bob-r0"]
        assert {(t.user, t.scopes) for t in tokens.stored} == {
            ("alice", RO_SCOPES),
            ("bob", ()),
        }
        assert result_of(tokens.current(read_only)).access_token == "ro-at"
        assert result_of(tokens.current(full)).access_token == "full-0"
    finally:
        refresher.stopService()
