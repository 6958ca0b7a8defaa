# -*- test-case-name: tests.oauth.test_upstream_tokens -*-
"""
Each user's current Forgejo token, as the rest of the broker sees it.

Tokens are stored per upstream grant (user and Forgejo scope set); this
object serves the broker's configured grant (``forgejo_scopes``), today's
only one, and stamps every token it hands out with that scope set.

`UpstreamTokens` implements `fjmcp.interfaces.IUpstreamTokens`: memory
first, the store once on a miss (concurrent misses share one read), the
sealed row opened with the key ring. `replace` stores new tokens atomically
(sealed, ``generation`` + 1, optionally only if the row is still at the
generation the caller refreshed from) and tells the listeners, so that the
lifecycle code can respawn children. The refresh token is never cached: it
is read and opened only when a refresh needs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import UpstreamToken
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
    scope_key,
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
    )
    return None if generation is None else _Replaced(user_id, generation)


def _scope_tuple(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(scopes)


def _tell_nobody(token: UpstreamToken) -> None:
    """The default ``on_stored``: no one to tell."""


@define
class UpstreamTokens:
    """
    The broker's view of each user's current Forgejo token.

    :param on_stored: called with every token stored from now on (refresh,
        fresh login, ``issue-token``), so the sessions respawn their children
        with it; an exception from it is logged.
    """

    _store: TxnRunner
    _keys: SealingKeys
    _clock: IReactorTime
    scopes: tuple[str, ...] = field(default=(), converter=_scope_tuple)
    """The Forgejo scopes of the grant served (the configured ``forgejo_scopes``)."""
    _cache: dict[str, UpstreamToken] = field(factory=dict, init=False)
    _waiting: dict[str, list[Deferred[UpstreamToken]]] = field(factory=dict, init=False)
    _on_stored: Callable[[UpstreamToken], None] = field(
        default=_tell_nobody, kw_only=True
    )
    store_reads: int = field(default=0, init=False)

    log = Logger()

    @property
    def _key(self) -> str:
        return scope_key(self.scopes)

    # --- reading ----------------------------------------------------------------

    def current(self, user: str) -> Deferred[UpstreamToken]:
        """
        The user's current token: fired at once from memory, else read from
        the store once. Fails with `NoUpstreamTokenError` if there is none.
        """
        hit = self._cache.get(user)
        if hit is not None:
            return succeed(hit)
        waiter: Deferred[UpstreamToken] = Deferred()
        waiters = self._waiting.get(user)
        if waiters is not None:
            waiters.append(waiter)
        else:
            self._waiting[user] = [waiter]
            Deferred.fromCoroutine(self._miss(user))
        return waiter

    async def _miss(self, user: str) -> None:
        outcome: UpstreamToken | Exception
        try:
            outcome = await self._load(user)
        except Exception as e:
            outcome = e
        for waiter in self._waiting.pop(user, []):
            if isinstance(outcome, Exception):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    async def _read(self, user: str) -> SealedUpstream:
        self.store_reads += 1
        row = await self._store.run(get_upstream_txn, user, self._key)
        if row is None:
            raise NoUpstreamTokenError(f"no Forgejo token stored for {user!r}")
        return row

    async def _load(self, user: str) -> UpstreamToken:
        row = await self._read(user)
        token = self._open(row)
        cached = self._cache.get(user)
        if cached is None or cached.generation < token.generation:
            self._cache[user] = token
            return token
        return cached

    def _open(self, row: SealedUpstream) -> UpstreamToken:
        access = self._keys.open(
            row.key_id, row.access_sealed, upstream_aad(row.user_id, "access")
        )
        return UpstreamToken(
            user=row.user,
            access_token=access.decode("utf-8"),
            expires_at=math.inf if row.expires_at is None else row.expires_at,
            generation=row.generation,
            scopes=self.scopes,
        )

    async def refresh_token(self, user: str) -> tuple[str | None, int]:
        """
        The user's Forgejo refresh token (``None`` if there is none) and the
        generation it belongs to, read from the store (never cached).
        """
        row = await self._read(user)
        if row.refresh_sealed is None:
            return None, row.generation
        refresh = self._keys.open(
            row.key_id, row.refresh_sealed, upstream_aad(row.user_id, "refresh")
        )
        return refresh.decode("utf-8"), row.generation

    # --- writing ----------------------------------------------------------------

    async def replace(
        self,
        user: str,
        access_token: str,
        refresh_token: str | None,
        expires_at: float | None,
        *,
        forgejo_id: int | None = None,
        expected_generation: int | None = None,
    ) -> UpstreamToken | None:
        """
        Store new Forgejo tokens for ``user`` (created if unknown), sealed.

        With ``expected_generation`` nothing is written unless the stored
        tokens are still of that generation; ``None`` is returned then.
        ``expires_at=None``: the token does not expire.
        """
        now = self._clock.seconds()
        done = await self._store.run(
            _replace_txn,
            user,
            forgejo_id,
            self._keys.seal,
            access_token,
            refresh_token,
            expires_at,
            now,
            expected_generation,
            self._key,
        )
        if done is None:
            return None
        token = UpstreamToken(
            user=user,
            access_token=access_token,
            expires_at=math.inf if expires_at is None else expires_at,
            generation=done.generation,
            scopes=self.scopes,
        )
        cached = self._cache.get(user)
        if cached is None or cached.generation < token.generation:
            self._cache[user] = token
        self.log.info(
            "Forgejo token of {user} replaced (generation {generation})",
            user=user,
            generation=token.generation,
        )
        try:
            self._on_stored(token)
        except Exception:
            self.log.failure("telling of a stored Forgejo token failed")
        return token

    async def claim_refresh(
        self, user: str, owner: str, generation: int, seconds: float
    ) -> bool:
        """
        Take the refresh lease of the user's grant for node ``owner`` (see
        `claim_refresh_lease_txn`): whether this node may refresh it now.
        """
        claimed: bool = await self._store.run(
            claim_refresh_lease_txn, user, self._key, owner, generation, seconds
        )
        return claimed

    async def release_refresh(self, user: str, owner: str) -> None:
        """Give back a lease whose refresh stored nothing."""
        await self._store.run(release_refresh_lease_txn, user, self._key, owner)

    def forget(self, user: str) -> None:
        """Drop the cached token of ``user`` (the next `current` reads the store)."""
        self._cache.pop(user, None)

    def forget_all(self) -> None:
        """Drop every cached token (another node may have replaced any)."""
        self._cache.clear()

    async def delete(self, user: str) -> bool:
        """Remove the user's Forgejo tokens of this grant from store and memory."""
        self.forget(user)
        deleted: bool = await self._store.run(delete_upstream_txn, user, self._key)
        return deleted
