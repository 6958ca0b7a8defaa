# -*- test-case-name: tests.oauth.test_bearer -*-
"""
The bearer check of ``/mcp``, kept off the database.

`BearerAuthenticator` resolves ``Authorization: Bearer <token>`` to an
`Identity`. Validated token digests are cached in memory until their
expiry, or for ``trust_for`` seconds at most (``revocation_propagation``:
a revocation on another node that shares the store reaches this one by then
even if its notification was lost), so the hot path answers with an
already-fired Deferred; unknown,
revoked, expired and wrong-audience digests go to a bounded negative cache.
The store is read at most once per token per process: concurrent misses of
one token share one read. A token seen valid is remembered with its digest
(bounded like the positive cache), so a hit hashes nothing. Revocation
(``/oauth/revoke``, refresh reuse, the admin channel) calls `forget_token`,
`forget_user_client` or `forget_user`, which take effect at once; a store
read that raced a revocation is not trusted and is done again.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Final

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import Identity, InvalidToken
from fjmcp.oauth.challenge import MCP_SCOPE, READ_ONLY_SCOPE
from fjmcp.oauth.tokens import hash_secret, token_id
from fjmcp.store.grants import AccessRecord, lookup_access
from fjmcp.store.runner import TxnRunner

__all__ = ["BearerAuthenticator", "parse_bearer"]

#: RFC 6750 b64token, with a generous upper bound on its length.
_B64TOKEN: Final = re.compile(rb"[A-Za-z0-9\-._~+/]{1,512}=*")
#: Entries kept in the cache of valid tokens and of rejected ones.
MAX_POSITIVE: Final = 100_000
MAX_NEGATIVE: Final = 10_000
#: Seconds a rejected token is answered from the cache without a store read.
NEGATIVE_TTL: Final = 3600.0
#: A store read that raced a revocation is retried at most this often.
_MAX_LOOKUPS: Final = 3


def parse_bearer(authorization: bytes | None) -> str:
    """
    The token of an ``Authorization`` header value (scheme case-insensitive).

    Raises `InvalidToken`: ``token_sent=False`` without a bearer
    credential, ``True`` for a malformed one.
    """
    if authorization is None or not authorization.strip():
        raise InvalidToken("no bearer token", token_sent=False)
    scheme, _, rest = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raise InvalidToken("not a bearer credential", token_sent=False)
    token = rest.strip(b" ")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed bearer token", token_sent=True)
    return token.decode("ascii")


@frozen
class _Valid:
    identity: Identity
    expires_at: float


@define
class BearerAuthenticator:
    """
    `fjmcp.interfaces.IAuthenticator` over the store's access tokens.

    :param audience: the only accepted audience, ``<public_url>/mcp``.
    """

    _store: TxnRunner
    _clock: IReactorTime
    _audience: str
    _max_positive: int = MAX_POSITIVE
    _max_negative: int = MAX_NEGATIVE
    _negative_ttl: float = NEGATIVE_TTL
    _trust_for: float = math.inf
    _positive: dict[str, _Valid] = field(factory=dict, init=False)
    _digests: dict[bytes, str] = field(factory=dict, init=False, repr=False)
    """``Authorization`` value -> its token's digest, for tokens found valid
    (a hit neither parses nor hashes anything)."""
    _negative: OrderedDict[str, float] = field(factory=OrderedDict, init=False)
    _waiting: dict[str, list[Deferred[Identity]]] = field(factory=dict, init=False)
    _epoch: int = field(default=0, init=False)
    store_reads: int = field(default=0, init=False)
    """How many times the store was asked (a test and metrics hook)."""

    log = Logger()

    # --- the check ----------------------------------------------------------

    def cached_identity(self, authorization: bytes | None) -> Identity | None:
        """
        The identity of a header value seen valid before whose token is
        still trusted (not revoked, not expired, within ``trust_for``).
        """
        if authorization is None:
            return None
        digest = self._digests.get(authorization)
        if digest is None:
            return None
        hit = self._positive.get(digest)
        if hit is None or self._clock.seconds() >= hit.expires_at:
            return None
        return hit.identity

    def authenticate(self, authorization: bytes | None) -> Deferred[Identity]:
        """
        Check a bearer header: fired at once on a cache hit; a miss reads
        the store once. Fails with `InvalidToken` (or the store's error).
        """
        identity = self.cached_identity(authorization)
        if identity is not None:
            return succeed(identity)
        try:
            token = parse_bearer(authorization)
        except InvalidToken as e:
            return fail(e)
        header = authorization or b""  # parse_bearer refused None
        known = self._digests.get(header)
        digest = known if known is not None else hash_secret(token)
        now = self._clock.seconds()
        hit = self._positive.get(digest)
        if hit is not None:
            if now < hit.expires_at:
                if known is None:
                    self._remember_digest(header, digest)
                return succeed(hit.identity)
            # Expired, or trusted long enough: the store decides again.
            del self._positive[digest]
        seen_bad = self._negative.get(digest)
        if seen_bad is not None:
            if now < seen_bad:
                return fail(InvalidToken("unknown or revoked token", token_sent=True))
            del self._negative[digest]
        waiter: Deferred[Identity] = Deferred()
        waiters = self._waiting.get(digest)
        if waiters is not None:
            waiters.append(waiter)
        else:
            self._waiting[digest] = [waiter]
            Deferred.fromCoroutine(self._miss(digest))
        return waiter

    def _remember_digest(self, authorization: bytes, digest: str) -> None:
        if len(self._digests) >= self._max_positive:
            self._digests = {
                t: d for t, d in self._digests.items() if d in self._positive
            }
            while len(self._digests) >= self._max_positive:
                del self._digests[next(iter(self._digests))]
        self._digests[authorization] = digest

    async def _miss(self, digest: str) -> None:
        outcome: Identity | Exception
        try:
            outcome = await self._resolve(digest)
        except Exception as e:  # the store failed: no caching, the caller decides
            if not isinstance(e, InvalidToken):
                self.log.failure(
                    "bearer check of token {token_id} failed", token_id=token_id(digest)
                )
            outcome = e
        for waiter in self._waiting.pop(digest, []):
            if isinstance(outcome, Exception):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    async def _resolve(self, digest: str) -> Identity:
        for _ in range(_MAX_LOOKUPS):
            epoch = self._epoch
            self.store_reads += 1
            record = await lookup_access(self._store, digest)
            if epoch == self._epoch:
                break
        else:
            raise InvalidToken("token state is changing", token_sent=True)
        now = self._clock.seconds()
        problem = self._problem(record, now)
        if problem is not None or record is None:
            self._remember_bad(digest, now)
            raise InvalidToken(problem or "unknown token", token_sent=True)
        scopes = tuple(record.scope.split())
        identity = Identity(
            user=record.user,
            client_id=record.client_id,
            scopes=scopes,
            token_id=token_id(digest),
            consent="read-only" if READ_ONLY_SCOPE in scopes else "full",
        )
        until = min(record.expires_at, now + self._trust_for)
        self._remember_good(digest, _Valid(identity, until), now)
        return identity

    def _problem(self, record: AccessRecord | None, now: float) -> str | None:
        if record is None:
            return "unknown token"
        if record.revoked:
            return "token revoked"
        if now >= record.expires_at:
            return "token expired"
        if record.audience != self._audience:
            return "token is for another resource"
        if MCP_SCOPE not in record.scope.split():
            return "token lacks the mcp scope"
        return None

    # --- the caches -----------------------------------------------------------

    def _remember_good(self, digest: str, valid: _Valid, now: float) -> None:
        if len(self._positive) >= self._max_positive:
            for key in [k for k, v in self._positive.items() if v.expires_at <= now]:
                del self._positive[key]
            while len(self._positive) >= self._max_positive:
                del self._positive[next(iter(self._positive))]
        self._positive[digest] = valid

    def _remember_bad(self, digest: str, now: float) -> None:
        self._negative[digest] = now + self._negative_ttl
        self._negative.move_to_end(digest)
        while len(self._negative) > self._max_negative:
            self._negative.popitem(last=False)

    def _forget(self, digests: list[str]) -> int:
        self._epoch += 1
        now = self._clock.seconds()
        for digest in digests:
            self._positive.pop(digest, None)
            self._remember_bad(digest, now)
        return len(digests)

    def forget_token(self, token_hash: str) -> None:
        """A token (by digest) was revoked: refuse it from now on."""
        self._forget([token_hash])

    def forget_tokens(self, token_hashes: tuple[str, ...] | list[str]) -> None:
        """Several tokens (by digest) were revoked."""
        self._forget(list(token_hashes))

    def forget_user_client(self, user: str, client_id: str) -> int:
        """Drop every cached token of one user through one client."""
        return self._forget(
            [
                k
                for k, v in self._positive.items()
                if v.identity.user == user and v.identity.client_id == client_id
            ]
        )

    def forget_user(self, user: str) -> int:
        """Drop every cached token of a user."""
        return self._forget(
            [k for k, v in self._positive.items() if v.identity.user == user]
        )

    def flush(self) -> None:
        """
        Forget every cached answer, good and bad: revocations made elsewhere
        may have been missed (the notification connection was down).
        """
        self._epoch += 1
        self._positive.clear()
        self._negative.clear()

    @property
    def cached(self) -> int:
        """How many validated tokens are cached."""
        return len(self._positive)
