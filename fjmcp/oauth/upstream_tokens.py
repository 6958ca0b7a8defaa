# -*- test-case-name: tests.oauth.test_upstream_tokens -*-
"""
The current Forgejo token of each upstream grant, as the rest of the broker
sees it.

A user may hold several grants at Forgejo (`fjmcp.interfaces.UpstreamGrants`:
full access, and read-only when the operator gives read-only consents a
scope set and an OAuth2 application of their own); each has its own token,
stored, cached and refreshed on its own, keyed by `UpstreamGrant` (user and
scope set).

`UpstreamTokens` implements `fjmcp.interfaces.IUpstreamTokens`: memory
first, the store once on a miss (concurrent misses share one read), the
sealed row opened with the key ring. `replace` stores new tokens atomically
(sealed, ``generation`` + 1, optionally only if the row is still at the
generation the caller refreshed from) and tells the listeners, so that the
lifecycle code can respawn children. The refresh token is never cached: it
is read and opened only when a refresh needs it. Only the full-access
grant adopts a token stored before grants recorded their scopes (schema 1):
such a token was made with the configured, full, scopes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import (
    FULL_CONSENT,
    UpstreamGrant,
    UpstreamGrants,
    UpstreamToken,
)
from fjmcp.oauth.keys import SealingKeys
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.runner import Cursor, TxnRunner
from fjmcp.store.upstream_tokens import (
    SealedUpstream,
    Sealer,
    claim_refresh_lease_txn,
    delete_upstream_txn,
    get_upstream_txn,
    put_upstream_txn,
    release_refresh_lease_txn,
    upstream_aad,
)

__all__ = ["NoUpstreamTokenError", "UpstreamTokens"]


class NoUpstreamTokenError(LookupError):
    """The user has no Forgejo token in the store: they must log in."""


@frozen
class _Replaced:
    user_id: int
    generation: int


def _replace_txn(
    cursor: Cursor,
    user: str,
    forgejo_id: int | None,
    seal: Sealer,
    access_token: str,
    refresh_token: str | None,
    expires_at: float | None,
    now: float,
    expected_generation: int | None,
    scopes: str,
    adopt: bool,
) -> _Replaced | None:
    user_id = upsert_user_txn(cursor, user, forgejo_id, now)
    generation = put_upstream_txn(
        cursor,
        user_id,
        seal,
        access_token,
        refresh_token,
        expires_at,
        now,
        expected_generation,
        scopes,
        adopt,
    )
    return None if generation is None else _Replaced(user_id, generation)


def _tell_nobody(token: UpstreamToken) -> None:
    """The default ``on_stored``: no one to tell."""


@define
class UpstreamTokens:
    """
    The broker's view of the current Forgejo token of each upstream grant.

    :param grants: the grants the broker keeps per user (which scope sets
        there are, and which one is the full-access grant).
    :param on_stored: called with every token stored from now on (refresh,
        fresh login, ``issue-token``), so the sessions respawn their children
        with it; an exception from it is logged.
    """

    _store: TxnRunner
    _keys: SealingKeys
    _clock: IReactorTime
    grants: UpstreamGrants = field(factory=UpstreamGrants)
    _cache: dict[UpstreamGrant, UpstreamToken] = field(factory=dict, init=False)
    _waiting: dict[UpstreamGrant, list[Deferred[UpstreamToken]]] = field(
        factory=dict, init=False
    )
    _on_stored: Callable[[UpstreamToken], None] = field(
        default=_tell_nobody, kw_only=True
    )
    store_reads: int = field(default=0, init=False)

    log = Logger()

    def grant(self, user: str, consent: str = FULL_CONSENT) -> UpstreamGrant:
        """``user``'s upstream grant for a consent mode (`UpstreamGrants.of`)."""
        return self.grants.of(user, consent)

    def _adopts(self, grant: UpstreamGrant) -> bool:
        """Whether ``grant`` takes over a schema-1 row (the full-access one)."""
        return not self.grants.is_read_only(grant)

    # --- reading ----------------------------------------------------------------

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        """
        The grant's current token: fired at once from memory, else read from
        the store once. Fails with `NoUpstreamTokenError` if there is none.
        """
        hit = self._cache.get(grant)
        if hit is not None:
            return succeed(hit)
        waiter: Deferred[UpstreamToken] = Deferred()
        waiters = self._waiting.get(grant)
        if waiters is not None:
            waiters.append(waiter)
        else:
            self._waiting[grant] = [waiter]
            Deferred.fromCoroutine(self._miss(grant))
        return waiter

    async def _miss(self, grant: UpstreamGrant) -> None:
        outcome: UpstreamToken | Exception
        try:
            outcome = await self._load(grant)
        except Exception as e:
            outcome = e
        for waiter in self._waiting.pop(grant, []):
            if isinstance(outcome, Exception):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    async def _read(self, grant: UpstreamGrant) -> SealedUpstream:
        self.store_reads += 1
        row = await self._store.run(
            get_upstream_txn, grant.user, grant.key, self._adopts(grant)
        )
        if row is None:
            raise NoUpstreamTokenError(
                f"no Forgejo token stored for {grant.user!r} ({grant.key or 'default'})"
            )
        return row

    async def _load(self, grant: UpstreamGrant) -> UpstreamToken:
        row = await self._read(grant)
        token = self._open(grant, row)
        cached = self._cache.get(grant)
        if cached is None or cached.generation < token.generation:
            self._cache[grant] = token
            return token
        return cached

    def _open(self, grant: UpstreamGrant, row: SealedUpstream) -> UpstreamToken:
        access = self._keys.open(
            row.key_id, row.access_sealed, upstream_aad(row.user_id, "access")
        )
        return UpstreamToken(
            user=row.user,
            access_token=access.decode("utf-8"),
            expires_at=math.inf if row.expires_at is None else row.expires_at,
            generation=row.generation,
            scopes=grant.scopes,
        )

    async def refresh_token(self, grant: UpstreamGrant) -> tuple[str | None, int]:
        """
        The grant's Forgejo refresh token (``None`` if there is none) and the
        generation it belongs to, read from the store (never cached).
        """
        row = await self._read(grant)
        if row.refresh_sealed is None:
            return None, row.generation
        refresh = self._keys.open(
            row.key_id, row.refresh_sealed, upstream_aad(row.user_id, "refresh")
        )
        return refresh.decode("utf-8"), row.generation

    # --- writing ----------------------------------------------------------------

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
        """
        Store new Forgejo tokens for ``grant`` (its user created if
        unknown), sealed.

        With ``expected_generation`` nothing is written unless the stored
        tokens are still of that generation; ``None`` is returned then.
        ``expires_at=None``: the token does not expire.
        """
        now = self._clock.seconds()
        done = await self._store.run(
            _replace_txn,
            grant.user,
            forgejo_id,
            self._keys.seal,
            access_token,
            refresh_token,
            expires_at,
            now,
            expected_generation,
            grant.key,
            self._adopts(grant),
        )
        if done is None:
            return None
        token = UpstreamToken(
            user=grant.user,
            access_token=access_token,
            expires_at=math.inf if expires_at is None else expires_at,
            generation=done.generation,
            scopes=grant.scopes,
        )
        cached = self._cache.get(grant)
        if cached is None or cached.generation < token.generation:
            self._cache[grant] = token
        self.log.info(
            "Forgejo token of {user} ({grant}) replaced (generation {generation})",
            user=grant.user,
            grant="read-only grant" if self.grants.is_read_only(grant) else "grant",
            generation=token.generation,
        )
        try:
            self._on_stored(token)
        except Exception:
            self.log.failure("telling of a stored Forgejo token failed")
        return token

    async def claim_refresh(
        self, grant: UpstreamGrant, owner: str, generation: int, seconds: float
    ) -> bool:
        """
        Take the refresh lease of ``grant`` for node ``owner`` (see
        `claim_refresh_lease_txn`): whether this node may refresh it now.
        """
        claimed: bool = await self._store.run(
            claim_refresh_lease_txn, grant.user, grant.key, owner, generation, seconds
        )
        return claimed

    async def release_refresh(self, grant: UpstreamGrant, owner: str) -> None:
        """Give back a lease whose refresh stored nothing."""
        await self._store.run(release_refresh_lease_txn, grant.user, grant.key, owner)

    def forget(self, user: str) -> None:
        """Drop the cached tokens of every grant of ``user``."""
        for grant in [g for g in self._cache if g.user == user]:
            del self._cache[grant]

    def forget_grant(self, grant: UpstreamGrant) -> None:
        """Drop the cached token of ``grant`` (the next `current` reads the store)."""
        self._cache.pop(grant, None)

    def forget_all(self) -> None:
        """Drop every cached token (another node may have replaced any)."""
        self._cache.clear()

    async def delete(self, grant: UpstreamGrant) -> bool:
        """Remove the grant's Forgejo tokens from store and memory."""
        self.forget_grant(grant)
        deleted: bool = await self._store.run(
            delete_upstream_txn, grant.user, grant.key
        )
        return deleted
