# -*- test-case-name: tests.maintenance.test_refresher -*-
"""
Keeping every upstream grant's Forgejo token alive, so nobody notices it
expiring.

Children run with the Forgejo access token of their user's upstream grant
(`fjmcp.interfaces.UpstreamGrants`: full access, and read-only when
read-only consents have scopes and an OAuth2 application of their own) in their
environment, and Forgejo's access tokens live an hour. Every
``refresh_interval`` seconds the `TokenRefresher` asks the store which
stored tokens expire within ``refresh_margin`` and refreshes each one that
is still needed: children hold the grant's token, or its user has a live
broker refresh token of a consent mode the grant serves (a client that will
come back). Each grant is refreshed with the OAuth2 application it was made
through. The new pair replaces the old one atomically in the store (sealed,
its generation one higher) and the sessions are told
(`ISessionControl.token_rotated`), so each child holding that grant's token
is respawned with the new one.

Refreshes are *single-flight per upstream grant*: several sessions, ticks,
or callers asking for the same grant share one refresh, so a Forgejo refresh
token is never sent twice (in Forgejo's invalidate-on-use mode a second use
would fail and log the user out); a user's two grants are refreshed apart.
Concurrent refreshes are bounded (``max_concurrent``). Across nodes sharing
a store, the grant's lease lets one node refresh; and a token found due or
refused is refreshed only while it is still the stored one: a node that
learns late of another node's refresh gives its sessions the stored token
instead of refreshing that one again.

Failures are split as the Forgejo client types them:

- `ForgejoUnavailable` (5xx, timeouts, connection errors) is transient: the
  refresh is retried with exponential backoff on the injected clock, up to
  ``retry_attempts`` tries; after that the next tick starts over. If the
  token has already expired while Forgejo stays unreachable, ``_panic`` is
  called (txacme's escalation hook; by default a critical log line).
- `ForgejoAuthError` (a 4xx OAuth error: ``invalid_grant``,
  ``unauthorized_client``, ...) means the user must log in again: the user
  is revoked everywhere (`UserRevoker`: broker tokens, caches, sessions). A
  refusal of a refresh token that is no longer the stored one (the user
  logged in again meanwhile) is ignored instead.

The same loop checks, for each upstream grant whose token live children hold
and at most once per ``user_check_interval``, that Forgejo still accepts the
token (``/api/v1/user``). A 401 says the access token is dead, not why: the
grant may have been revoked at Forgejo, or the token may have ended sooner
than it said (Forgejo restarted with a new signing key, clocks disagree). So
the token is refreshed first (joining any refresh already running): if
Forgejo refuses the refresh too, the grant is gone and the user is revoked
as above; if it succeeds, the sessions get the new token and nobody is
logged out, unless Forgejo refuses the fresh token as well (asked once, at
once): then the refresh proves nothing (an account blocked at Forgejo may
still refresh) and the user is revoked. This is a deliberate deviation from
issue 6, which revokes on the first 401 (see ``docs/architecture.md``). A
token stored without a refresh token (``fjmcp admin issue-token``) cannot be
refreshed, and its user is revoked at once. A connection error is transient
and only logged. The check never runs on the session set-up path, and never
for a token that is expired or about to be refreshed (an expired token's 401
says nothing).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, cast

from attrs import define, field, frozen
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
)
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from fjmcp.interfaces import (
    ISessionControl,
    IUpstreamTokens,
    UpstreamGrant,
    UpstreamGrants,
    UpstreamToken,
)
from fjmcp.maintenance.loop import LoopingService
from fjmcp.maintenance.revocation import RevokeResult
from fjmcp.maintenance.settings import MaintenanceSettings
from fjmcp.store.runner import TxnRunner
from fjmcp.store.upstream_tokens import (
    LEGACY_SCOPES,
    DueToken,
    due_tokens,
    due_tokens_txn,
)
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoError, ForgejoUnavailable
from fjmcp.upstream.forgejo import ForgejoTokens, ForgejoUser

__all__ = [
    "DueToken",
    "IForgejoRefresh",
    "IRefreshableTokens",
    "IUpstreamTokenStore",
    "IUserRevocation",
    "RefreshGrant",
    "RefreshOutcome",
    "StoreRefreshableTokens",
    "TokenRefresher",
    "due_tokens_txn",
]


# --- what the refresher needs of the others ---------------------------------------


@frozen
class RefreshGrant:
    """An upstream grant's Forgejo refresh token, unsealed, with its generation."""

    grant: UpstreamGrant
    refresh_token: str = field(repr=False)
    generation: int
    expires_at: float
    """When the access token stored with it expires."""

    @property
    def user(self) -> str:
        """The grant's Forgejo login."""
        return self.grant.user


class IRefreshableTokens(Protocol):
    """The store side of the refresh (implemented by the OAuth component)."""

    def due(self, before: float, now: float) -> Deferred[Sequence[DueToken]]:
        """
        Every stored Forgejo token whose access token expires before
        ``before``, with whether its user has a broker refresh token alive
        at ``now`` (of each consent mode).
        """

    def refresh_grant(self, grant: UpstreamGrant) -> Deferred[RefreshGrant | None]:
        """The grant's stored Forgejo refresh token (None if there is none)."""

    def claim(self, grant: RefreshGrant, owner: str, seconds: float) -> Deferred[bool]:
        """
        Take the grant's refresh lease for node ``owner`` (one atomic update
        in the shared store): whether this node is the one to refresh it.
        """

    def release(self, grant: RefreshGrant, owner: str) -> Deferred[None]:
        """Give the lease back after a refresh that stored nothing."""

    def newest(self, grant: UpstreamGrant) -> Deferred[UpstreamToken | None]:
        """
        The grant's stored token read afresh, its memory copy dropped
        (another node may have replaced it); None if none is stored.
        """

    def store_refreshed(
        self, grant: RefreshGrant, tokens: ForgejoTokens, now: float
    ) -> Deferred[UpstreamToken | None]:
        """
        Replace ``grant``'s Forgejo tokens with ``tokens`` (answered at
        ``now``; sealed, generation one higher; the old refresh token kept if
        Forgejo sent none) in one transaction, and the memory copy with
        them, if the stored generation is still ``grant.generation``; None
        if it moved on meanwhile (a fresh login stored a newer token).
        """


class IUpstreamTokenStore(Protocol):
    """What `StoreRefreshableTokens` needs of `fjmcp.oauth.upstream_tokens`."""

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        """The grant's current token (memory first)."""

    def forget_grant(self, grant: UpstreamGrant) -> None:
        """Drop the memory copy of the grant's token."""

    async def refresh_token(self, grant: UpstreamGrant) -> tuple[str | None, int]:
        """The stored refresh token (None if none) and its generation."""

    async def claim_refresh(
        self, grant: UpstreamGrant, owner: str, generation: int, seconds: float
    ) -> bool:
        """Take the refresh lease of the grant."""

    async def release_refresh(self, grant: UpstreamGrant, owner: str) -> None:
        """Give the refresh lease back."""

    async def replace(
        self,
        grant: UpstreamGrant,
        access_token: str,
        refresh_token: str | None,
        expires_at: float | None,
        *,
        forgejo_id: int | None = None,
        expected_generation: int | None = None,
    ) -> UpstreamToken | None:
        """Store new tokens sealed, generation + 1, compare-and-swap."""


@define
class StoreRefreshableTokens:
    """
    `IRefreshableTokens` over the store and the broker's token memory
    (`fjmcp.oauth.upstream_tokens.UpstreamTokens`), which seals, swaps by
    generation and updates its memory copy in one go.
    """

    _store: TxnRunner
    _upstream: IUpstreamTokenStore

    def due(self, before: float, now: float) -> Deferred[Sequence[DueToken]]:
        """See `due_tokens_txn`."""
        return Deferred.fromCoroutine(self._due(before, now))

    async def _due(self, before: float, now: float) -> Sequence[DueToken]:
        return await due_tokens(self._store, before, now)

    def refresh_grant(self, grant: UpstreamGrant) -> Deferred[RefreshGrant | None]:
        """The stored refresh token, its generation and the access expiry."""
        return Deferred.fromCoroutine(self._refresh_grant(grant))

    async def _refresh_grant(self, grant: UpstreamGrant) -> RefreshGrant | None:
        try:
            refresh_token, generation = await self._upstream.refresh_token(grant)
        except LookupError:  # NoUpstreamTokenError: nothing stored
            return None
        if refresh_token is None:
            return None
        try:
            expires_at = (await self._upstream.current(grant)).expires_at
        except LookupError:
            return None
        return RefreshGrant(grant, refresh_token, generation, expires_at)

    def claim(self, grant: RefreshGrant, owner: str, seconds: float) -> Deferred[bool]:
        """The lease in the store (`claim_refresh_lease_txn`)."""
        return Deferred.fromCoroutine(
            self._upstream.claim_refresh(grant.grant, owner, grant.generation, seconds)
        )

    def release(self, grant: RefreshGrant, owner: str) -> Deferred[None]:
        """Release the lease in the store."""
        return Deferred.fromCoroutine(
            self._upstream.release_refresh(grant.grant, owner)
        )

    def newest(self, grant: UpstreamGrant) -> Deferred[UpstreamToken | None]:
        """The stored token, read from the store again."""
        return Deferred.fromCoroutine(self._newest(grant))

    async def _newest(self, grant: UpstreamGrant) -> UpstreamToken | None:
        self._upstream.forget_grant(grant)
        try:
            return await self._upstream.current(grant)
        except LookupError:  # NoUpstreamTokenError: revoked meanwhile
            return None

    def store_refreshed(
        self, grant: RefreshGrant, tokens: ForgejoTokens, now: float
    ) -> Deferred[UpstreamToken | None]:
        """Replace the tokens if the stored generation is still the grant's."""
        return Deferred.fromCoroutine(
            self._upstream.replace(
                grant.grant,
                tokens.access_token,
                tokens.refresh_token or grant.refresh_token,
                tokens.expires_at(now),
                expected_generation=grant.generation,
            )
        )


class IForgejoRefresh(Protocol):
    """The two Forgejo calls the refresher makes (`ForgejoClient` has them)."""

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        """Trade a refresh token for a new pair."""

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Who the token belongs to (``/api/v1/user``)."""


class IOrganizations(Protocol):
    """Reads a user's organizations (`ForgejoClient` has it)."""

    async def get_orgs(self, access_token: str) -> frozenset[str]:
        """The organizations of the token's owner (``/api/v1/user/orgs``)."""


class IUserRevocation(Protocol):
    """Ends a user everywhere (`fjmcp.maintenance.revocation.UserRevoker`)."""

    async def revoke_user(self, user: str, reason: str) -> RevokeResult:
        """Revoke the user's broker tokens, clear caches, end their sessions."""


class RefreshOutcome(enum.Enum):
    """How one grant's refresh ended."""

    REFRESHED = "refreshed"
    """New tokens stored; the sessions were told."""
    REVOKED = "revoked"
    """Forgejo refused the grant; the user was revoked."""
    FAILED = "failed"
    """Forgejo stayed unavailable; the next tick tries again."""
    SUPERSEDED = "superseded"
    """A newer token was stored meanwhile (the user logged in again)."""
    ELSEWHERE = "elsewhere"
    """Another node holds the grant's refresh lease: it refreshes, not us."""
    NO_TOKEN = "no-token"  # noqa: S105 (an outcome, not a secret)
    """Nothing to refresh: no stored Forgejo refresh token."""
    STOPPED = "stopped"
    """The service stopped before the refresh could finish."""


def _default_panic(failure: Failure, key: str) -> None:
    TokenRefresher.log.failure(
        "Forgejo token of {user} has expired and cannot be refreshed; their "
        "children run with a dead token",
        failure,
        LogLevel.critical,
        user=key,
    )


@define(eq=False)
class TokenRefresher(LoopingService):
    """
    The Forgejo token refresher and user checker (see the module docstring),
    ticking every ``settings.refresh_interval`` seconds.

    :param panic: called with the failure and the grant (its login, and
        its kind) when a token has expired and cannot be refreshed, or a
        refresh failed unexpectedly.
    :param grants: the upstream grants kept per user (which one is the
        read-only consents' own, refreshed through ``read_only_forgejo``).
    """

    log: ClassVar[Logger] = Logger()
    label: ClassVar[str] = "token refresher"

    _tokens: IRefreshableTokens
    _upstream: IUpstreamTokens
    _forgejo: IForgejoRefresh
    _sessions: ISessionControl
    _revoker: IUserRevocation
    _clock: IReactorTime
    _settings: MaintenanceSettings
    _panic: Callable[[Failure, str], None] = field(default=_default_panic, kw_only=True)
    _memberships: Callable[[str, frozenset[str]], None] | None = field(
        default=None, kw_only=True
    )
    """Told each checked user's organizations (the policy's rules), read
    with the ``forgejo`` given, which must then have `IOrganizations`."""
    _grants: UpstreamGrants = field(factory=UpstreamGrants, kw_only=True)
    _read_only_forgejo: IForgejoRefresh | None = field(default=None, kw_only=True)
    """The application read-only grants were made through, if their own."""

    _flights: dict[UpstreamGrant, Deferred[RefreshOutcome]] = field(
        factory=dict, init=False
    )
    _checks: dict[UpstreamGrant, Deferred[None]] = field(factory=dict, init=False)
    _last_check: dict[UpstreamGrant, float] = field(factory=dict, init=False)
    _waits: set[Deferred[None]] = field(factory=set, init=False)
    _limit: DeferredSemaphore = field(init=False)
    _check_limit: DeferredSemaphore = field(init=False)
    refreshes: int = field(default=0, init=False)
    """Successful refreshes since start (for status and metrics)."""
    outcomes: dict[str, int] = field(
        factory=lambda: {o.value: 0 for o in RefreshOutcome}, init=False
    )
    """Refreshes ended, by `RefreshOutcome` value (for metrics)."""

    @_limit.default
    def _make_limit(self) -> DeferredSemaphore:
        return DeferredSemaphore(self._settings.max_concurrent)

    @_check_limit.default
    def _make_check_limit(self) -> DeferredSemaphore:
        # Checks queue apart: a burst of them never delays a due refresh.
        return DeferredSemaphore(self._settings.max_concurrent)

    @property
    def interval(self) -> float:
        """Seconds between ticks."""
        return self._settings.refresh_interval

    @property
    def margin(self) -> float:
        """Refresh tokens expiring within this many seconds."""
        return self._settings.refresh_margin

    # --- service ---------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """
        Stop ticking and cut every backoff wait short; fires once the tick,
        refreshes and checks in flight have finished. A call already sent
        to Forgejo is let finish (bounded by the client's timeout), so a
        refresh token Forgejo may already have spent is never lost.
        """
        tick_done = super().stopService()
        for wait in list(self._waits):
            wait.cancel()
        pending: list[Deferred[Any]] = [
            *self._flights.values(),
            *self._checks.values(),
        ]
        if not pending:
            return tick_done
        pending.append(tick_done)
        done: Deferred[None] = Deferred()
        # Observers only: the flights' own results stay with their callers.
        together: Deferred[Any] = DeferredList(
            [_observe(d) for d in pending], consumeErrors=True
        )
        together.addBoth(lambda _: done.callback(None))
        return done

    async def tick(self) -> None:
        """One tick of the loop: `check_once` (a failure is logged by the base)."""
        await self.check_once()

    # --- the tick ----------------------------------------------------------------

    async def check_once(self) -> None:
        """
        One tick: start a refresh for every due token that is still needed,
        and a check for every live grant whose last one is old enough.
        Returns once they are started; they finish on their own (single
        flight per grant, so a slow one is never started twice).
        """
        now = self._clock.seconds()
        live = self._sessions.live_grants()
        due = await self._tokens.due(now + self.margin, now)
        due_grants: set[UpstreamGrant] = set()
        for token in due:
            grant = self._due_grant(token)
            due_grants.add(grant)
            if grant in live or self._still_wanted(grant, token):
                self._start_refresh(grant, token.generation)
        for grant in list(self._last_check):
            if grant not in live:
                del self._last_check[grant]  # checked afresh when it returns
        for grant in sorted(live, key=_grant_order):
            if grant in due_grants or grant in self._flights or grant in self._checks:
                continue
            last = self._last_check.get(grant)
            if last is not None and now - last < self._settings.user_check_interval:
                continue
            self._last_check[grant] = now
            self._start_check(grant)

    def _due_grant(self, token: DueToken) -> UpstreamGrant:
        """The grant of a due row; a row of schema 1 is the full-access one's."""
        if token.scopes == LEGACY_SCOPES:
            return self._grants.of(token.user)
        return UpstreamGrant(token.user, token.scopes.split())

    def _still_wanted(self, grant: UpstreamGrant, token: DueToken) -> bool:
        """Whether a client that will come back uses the grant's token."""
        if not self._grants.separate:
            return token.has_live_grant
        if self._grants.is_read_only(grant):
            return token.live_read_only
        if grant == self._grants.of(grant.user):
            return token.live_full
        return False  # a scope set no longer configured: let it expire

    def _app(self, grant: UpstreamGrant) -> IForgejoRefresh:
        """The application ``grant`` was made through (its refresh goes there)."""
        if self._read_only_forgejo is not None and self._grants.is_read_only(grant):
            return self._read_only_forgejo
        return self._forgejo

    def _who(self, grant: UpstreamGrant) -> str:
        """The grant for a log line (no secret in it)."""
        if self._grants.is_read_only(grant):
            return f"{grant.user} [read-only grant]"
        return grant.user

    # --- refresh, single flight per grant -------------------------------------------

    def refresh_user(self, user: str) -> Deferred[RefreshOutcome]:
        """Refresh ``user``'s full-access grant now (see `refresh`)."""
        return self.refresh(self._grants.of(user))

    def refresh(self, grant: UpstreamGrant) -> Deferred[RefreshOutcome]:
        """
        Refresh ``grant``'s Forgejo token now, or join the refresh already
        running for it. Never fails: the outcome says what happened.
        """
        return _observe(self._start_refresh(grant))

    def _start_refresh(
        self, grant: UpstreamGrant, generation: int | None = None
    ) -> Deferred[RefreshOutcome]:
        """
        The refresh of ``grant``'s token, started or joined. With
        ``generation`` (the token found due or refused), only while that
        token is still the stored one: a newer one (another node's refresh,
        its notification not heard yet) is not refreshed a second time.
        """
        flight = self._flights.get(grant)
        if flight is not None:
            return flight
        flight = Deferred.fromCoroutine(self._refresh_flight(grant, generation))
        if flight.called:  # finished synchronously (e.g. nothing stored)
            return flight
        self._flights[grant] = flight

        def _landed(outcome: RefreshOutcome) -> RefreshOutcome:
            if self._flights.get(grant) is flight:
                del self._flights[grant]
            return outcome

        flight.addCallback(_landed)
        return flight

    async def _refresh_flight(
        self, grant: UpstreamGrant, generation: int | None
    ) -> RefreshOutcome:
        outcome = await self._refresh_counted(grant, generation)
        self.outcomes[outcome.value] += 1
        return outcome

    async def _refresh_counted(
        self, grant: UpstreamGrant, generation: int | None
    ) -> RefreshOutcome:
        try:
            await self._limit.acquire()
            try:
                if not self.running:
                    return RefreshOutcome.STOPPED
                return await self._refresh(grant, generation)
            finally:
                self._limit.release()
        except CancelledError:
            return RefreshOutcome.STOPPED
        except Exception:
            self._panic(Failure(), self._who(grant))
            return RefreshOutcome.FAILED

    async def _refresh(
        self, upstream: UpstreamGrant, generation: int | None
    ) -> RefreshOutcome:
        grant = await self._tokens.refresh_grant(upstream)
        if grant is None:
            self.log.info(
                "no Forgejo refresh token stored for {user}", user=self._who(upstream)
            )
            return RefreshOutcome.NO_TOKEN
        if generation is not None and grant.generation != generation:
            # Replaced since it was found due or refused: by another node's
            # refresh (its notification may come later, or never) or a new
            # login. The sessions get the stored token; Forgejo is not asked.
            self.log.info(
                "{user}'s Forgejo token was already replaced (generation "
                "{stored}); not refreshing it again",
                user=self._who(upstream),
                stored=grant.generation,
            )
            newest = await self._tokens.newest(upstream)
            if newest is not None:
                self._sessions.token_rotated(newest)
            return RefreshOutcome.SUPERSEDED
        # Nodes sharing the store refresh one grant once: the lease decides
        # which, and no transaction stays open across the call to Forgejo.
        if not await self._tokens.claim(
            grant, self._settings.node_id, self._settings.lease_seconds
        ):
            self.log.info(
                "another node is refreshing {user}'s Forgejo token",
                user=self._who(upstream),
            )
            return RefreshOutcome.ELSEWHERE
        outcome = RefreshOutcome.FAILED
        try:
            outcome = await self._refresh_leased(grant)
        finally:
            if outcome is not RefreshOutcome.REFRESHED:
                await self._release(grant)
        return outcome

    async def _release(self, grant: RefreshGrant) -> None:
        try:
            await self._tokens.release(grant, self._settings.node_id)
        except Exception:  # the lease lapses by itself
            self.log.failure(
                "releasing the refresh lease of {user} failed",
                user=self._who(grant.grant),
            )

    async def _refresh_leased(self, grant: RefreshGrant) -> RefreshOutcome:
        user = self._who(grant.grant)
        attempt = 0
        while True:
            attempt += 1
            try:
                tokens = await self._app(grant.grant).refresh(grant.refresh_token)
                break
            except ForgejoAuthError as e:
                return await self._refused(grant, e)
            except ForgejoUnavailable as e:
                failure = Failure()
                retry = self._settings
                if attempt >= retry.retry_attempts or not self.running:
                    return self._give_up(grant, failure, e, attempt)
                delay = min(retry.retry_initial * 2 ** (attempt - 1), retry.retry_max)
                self.log.warn(
                    "refreshing {user}'s Forgejo token failed ({reason}); "
                    "retry {attempt} in {delay:g}s",
                    user=user,
                    reason=e.reason,
                    attempt=attempt,
                    delay=delay,
                )
                if not await self._sleep(delay):
                    return RefreshOutcome.STOPPED
        now = self._clock.seconds()
        token = await self._tokens.store_refreshed(grant, tokens, now)
        if token is None:
            self.log.info(
                "{user}'s Forgejo token was replaced while refreshing; keeping "
                "the newer one",
                user=user,
            )
            return RefreshOutcome.SUPERSEDED
        self.refreshes += 1
        self.log.info(
            "refreshed {user}'s Forgejo token (generation {generation}, "
            "valid {valid:g}s)",
            user=user,
            generation=token.generation,
            valid=token.expires_at - now,
        )
        self._sessions.token_rotated(token)
        return RefreshOutcome.REFRESHED

    async def _refused(
        self, grant: RefreshGrant, e: ForgejoAuthError
    ) -> RefreshOutcome:
        current = await self._tokens.refresh_grant(grant.grant)
        if current is not None and current.generation != grant.generation:
            # The user logged in again while we refreshed: in invalidate-on-use
            # mode that spends the old refresh token. The new one stands.
            self.log.info(
                "Forgejo refused {user}'s superseded refresh token; keeping the "
                "newer one",
                user=self._who(grant.grant),
            )
            return RefreshOutcome.SUPERSEDED
        self.log.warn(
            "Forgejo refused to refresh {user}'s token ({error}); the user must "
            "log in again",
            user=self._who(grant.grant),
            error=e.error,
        )
        await self._revoker.revoke_user(
            grant.user, f"forgejo-refused-refresh:{e.error}"
        )
        return RefreshOutcome.REVOKED

    def _give_up(
        self,
        grant: RefreshGrant,
        failure: Failure,
        e: ForgejoUnavailable,
        attempts: int,
    ) -> RefreshOutcome:
        if grant.expires_at <= self._clock.seconds():
            self._panic(failure, self._who(grant.grant))
        else:
            self.log.warn(
                "Forgejo unavailable for {user}'s refresh after {attempts} "
                "tries ({reason}); trying again next tick",
                user=self._who(grant.grant),
                attempts=attempts,
                reason=e.reason,
            )
        return RefreshOutcome.FAILED

    async def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` on the clock; False if the service stopped meanwhile."""
        wait: Deferred[None] = deferLater(self._clock, delay, lambda: None)
        self._waits.add(wait)
        try:
            await wait
        except CancelledError:
            return False
        finally:
            self._waits.discard(wait)
        return bool(self.running)

    # --- checks at Forgejo ----------------------------------------------------------

    def check(self, grant: UpstreamGrant) -> Deferred[None]:
        """Ask Forgejo now whether ``grant``'s token is still accepted."""
        return _observe(self._start_check(grant))

    def check_user(self, user: str) -> Deferred[None]:
        """Ask Forgejo now about ``user``'s full-access grant (see `check`)."""
        return self.check(self._grants.of(user))

    def _start_check(self, grant: UpstreamGrant) -> Deferred[None]:
        check = self._checks.get(grant)
        if check is not None:
            return check
        check = Deferred.fromCoroutine(self._check_quietly(grant))
        if check.called:
            return check
        self._checks[grant] = check

        def _landed(result: None) -> None:
            if self._checks.get(grant) is check:
                del self._checks[grant]

        check.addCallback(_landed)
        return check

    async def _check_quietly(self, grant: UpstreamGrant) -> None:
        try:
            await self._check_limit.acquire()
            try:
                if self.running:
                    await self._check(grant)
            finally:
                self._check_limit.release()
        except CancelledError:
            pass
        except Exception:
            self.log.failure("checking {user} at Forgejo failed", user=self._who(grant))

    async def _check(self, grant: UpstreamGrant) -> None:
        user = grant.user
        try:
            token = await self._upstream.current(grant)
        except Exception:
            self.log.info("no Forgejo token to check for {user}", user=self._who(grant))
            return
        if token.expires_at - self.margin <= self._clock.seconds():
            return  # due for refresh: an expired token's 401 would say nothing
        try:
            who = await self._app(grant).get_user(token.access_token)
        except ForgejoUnavailable as e:
            self.log.info(
                "could not check {user} at Forgejo ({reason}); trying later",
                user=self._who(grant),
                reason=e.reason,
            )
            return
        except ForgejoAuthError as e:
            if not await self._still_current(token):
                return
            await self._token_refused(token, e)
            return
        if who.login != user:
            if not await self._still_current(token):
                return
            self.log.error(
                "Forgejo says {user}'s token belongs to {other}; revoking",
                user=self._who(grant),
                other=who.login,
            )
            await self._revoker.revoke_user(user, "forgejo-token-of-another-user")
            return
        await self._check_orgs(grant, token.access_token)

    async def _check_orgs(self, grant: UpstreamGrant, access_token: str) -> None:
        """Read the user's organizations again; on failure keep the last ones."""
        if self._memberships is None:
            return
        forgejo: Any = self._app(grant)
        try:
            orgs = await cast(IOrganizations, forgejo).get_orgs(access_token)
        except ForgejoError as e:
            self.log.info(
                "could not read {user}'s organizations ({reason}); keeping the "
                "last ones",
                user=self._who(grant),
                reason=str(e),
            )
            return
        self._memberships(grant.user, orgs)

    async def _token_refused(self, token: UpstreamToken, e: ForgejoAuthError) -> None:
        """
        Forgejo refused ``token``, its grant's current access token as this
        node knows it: refresh it (or join the refresh running); revoke the
        user only if it cannot be refreshed.
        """
        grant = token.grant
        user = self._who(grant)
        self.log.info(
            "Forgejo refused {user}'s token ({status}); refreshing it",
            user=user,
            status=e.status,
        )
        outcome = await _observe(self._start_refresh(grant, token.generation))
        if outcome is RefreshOutcome.NO_TOKEN:
            self.log.warn(
                "Forgejo no longer accepts {user}'s token ({status}) and there is "
                "no refresh token; ending the user's sessions",
                user=user,
                status=e.status,
            )
            await self._revoker.revoke_user(grant.user, "forgejo-refused-token")
        elif outcome is RefreshOutcome.FAILED:
            self.log.warn(
                "Forgejo refused {user}'s token and could not refresh it now; "
                "checking again later",
                user=user,
            )
        elif outcome is RefreshOutcome.REFRESHED:
            await self._check_fresh(grant)
        # SUPERSEDED: a newer login's token stands; REVOKED: already done.

    async def _check_fresh(self, grant: UpstreamGrant) -> None:
        """
        After a 401 and a successful refresh, ask Forgejo once about the new
        token: refused again, the user cannot use Forgejo any more (blocked,
        say) however often the token is refreshed, so they are revoked.
        """
        try:
            token = await self._upstream.current(grant)
        except Exception:
            return  # revoked or logged out meanwhile
        try:
            await self._app(grant).get_user(token.access_token)
        except ForgejoAuthError as e:
            if not await self._still_current(token):
                return
            self.log.warn(
                "Forgejo refused {user}'s freshly refreshed token too ({status}); "
                "ending the user's sessions",
                user=self._who(grant),
                status=e.status,
            )
            await self._revoker.revoke_user(grant.user, "forgejo-refused-fresh-token")
        except ForgejoUnavailable:
            pass  # the next check asks again

    async def _still_current(self, token: UpstreamToken) -> bool:
        """Whether ``token`` is still its grant's newest (not refreshed meanwhile)."""
        try:
            current = await self._upstream.current(token.grant)
        except Exception:
            return False
        return current.generation == token.generation


def _grant_order(grant: UpstreamGrant) -> tuple[str, tuple[str, ...]]:
    """Live grants are checked in a stable order (user, then scope set)."""
    return (grant.user, grant.scopes)


def _observe(d: Deferred[Any]) -> Deferred[Any]:
    """A new Deferred with ``d``'s result, leaving ``d``'s own chain untouched."""
    out: Deferred[Any] = Deferred()

    def _pass(result: Any) -> Any:
        if isinstance(result, Failure):
            out.errback(result)
        else:
            out.callback(result)
        return result

    d.addBoth(_pass)
    return out
