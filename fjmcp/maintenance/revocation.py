# -*- test-case-name: tests.maintenance.test_refresher -*-
"""
Ending a user everywhere at once: the one teardown shared by the refresher
(Forgejo refused a refresh with a 4xx OAuth error), the user check (Forgejo's
``/api/v1/user`` answered 401) and ``fjmcp admin revoke-user``.

The order is what makes it safe while requests keep arriving:

1. the store first: every broker token of the user is marked revoked and
   their Forgejo token deleted, in one transaction, so a cache miss from now
   on reads "revoked";
2. then the in-memory caches (the bearer cache, the memory copy of the
   Forgejo token) forget the user, so the very next request misses and is
   refused with 401;
3. last the sessions end (children stopped), so nothing they still do can
   outlive the revocation.

A failure in one step is logged and the later steps still run: a store that
is briefly unwritable must not leave a revoked user's children running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from attrs import define, field, frozen
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import ISessionControl
from fjmcp.store.revocation import RevokedInStore, revoke_user, revoke_user_txn
from fjmcp.store.runner import TxnRunner

__all__ = [
    "RevokeResult",
    "RevokedInStore",
    "UserRevoker",
    "revoke_user_txn",
    "store_revocation",
]


# --- the store side -------------------------------------------------------------


def store_revocation(
    store: TxnRunner, clock: IReactorTime
) -> Callable[[str, str], Awaitable[RevokedInStore]]:
    """The ``revoke_in_store`` of a `UserRevoker` working on ``store``."""

    async def revoke_in_store(login: str, reason: str) -> RevokedInStore:
        return await revoke_user(store, login, clock.seconds(), reason)

    return revoke_in_store


# --- the whole teardown ---------------------------------------------------------


@frozen
class RevokeResult:
    """What revoking a user did."""

    user: str
    known: bool
    """Whether the store knew the user (False: nothing was stored for them)."""
    broker_tokens: int
    """Broker access and refresh tokens newly marked revoked in the store."""
    forgejo_token_deleted: bool
    store_ok: bool = True
    """False when the store could not be changed (the caches and sessions
    were still cleared)."""

    def as_json(self) -> dict[str, object]:
        """The result for the admin channel and ``--json`` output."""
        return {
            "user": self.user,
            "known": self.known,
            "broker_tokens_revoked": self.broker_tokens,
            "forgejo_token_deleted": self.forgejo_token_deleted,
            "store_ok": self.store_ok,
        }


@define(eq=False)
class UserRevoker:
    """
    Revokes a user: store, caches, sessions (in that order; see the module
    docstring).

    :param revoke_in_store: marks every broker token of the user revoked and
        deletes their Forgejo token in one transaction (`store_revocation`).
    :param forget: in-memory caches to clear for the user (the bearer cache's
        ``forget_user``, the Forgejo token memory's), each called with the
        login.
    """

    log: ClassVar[Logger] = Logger()

    _sessions: ISessionControl
    _revoke_in_store: Callable[[str, str], Awaitable[RevokedInStore]]
    _forget: Sequence[Callable[[str], object]] = field(factory=tuple)

    async def revoke_user(self, user: str, reason: str) -> RevokeResult:
        """
        End ``user`` everywhere: their broker tokens are revoked, the caches
        forget them, every session of theirs ends. ``reason`` is a short tag
        (``revoked-by-operator``, ``forgejo-refused-refresh``...), stored with
        the tokens, logged and handed to the sessions (never a secret).
        """
        store_ok = True
        changed = RevokedInStore(known=False)
        try:
            changed = await self._revoke_in_store(user, reason)
        except Exception:
            store_ok = False
            self.log.failure(
                "could not revoke {user}'s tokens in the store ({reason}); "
                "clearing caches and sessions anyway",
                user=user,
                reason=reason,
            )
        for forget in self._forget:
            try:
                forget(user)
            except Exception:
                self.log.failure("clearing a cache for {user} failed", user=user)
        try:
            await self._sessions.end_user(user, reason)
        except Exception:
            self.log.failure("ending {user}'s sessions failed", user=user)
        count = len(changed.token_hashes)
        self.log.info(
            "revoked user {user} ({reason}): {count} broker token(s)",
            user=user,
            reason=reason,
            count=count,
        )
        return RevokeResult(
            user, changed.known, count, changed.upstream_deleted, store_ok
        )
