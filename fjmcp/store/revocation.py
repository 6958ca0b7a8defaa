# -*- test-case-name: tests.store.test_revocation -*-
"""
Revoking a user in the store: the first step of the one teardown shared by
the refresher, the user check and ``fjmcp admin revoke-user``
(`fjmcp.maintenance.revocation` runs the later steps).
"""

from __future__ import annotations

from attrs import field, frozen

from fjmcp.store.events import StoreEvent, publish_txn
from fjmcp.store.runner import Cursor, TxnRunner
from fjmcp.store.upstream_tokens import delete_upstream_txn

__all__ = ["RevokedInStore", "revoke_user", "revoke_user_txn"]


@frozen
class RevokedInStore:
    """What revoking a user changed in the store."""

    known: bool
    """Whether the store knows the login at all."""
    token_hashes: tuple[str, ...] = field(default=(), repr=False)
    """Digests of the broker tokens newly marked revoked."""
    upstream_deleted: bool = False
    """Whether a stored Forgejo token was deleted."""


def revoke_user_txn(
    cursor: Cursor, login: str, now: float, reason: str
) -> RevokedInStore:
    """
    In one transaction: mark every live broker token of ``login`` revoked
    (access and refresh, every client), drop their unredeemed authorization
    codes, and delete their Forgejo tokens (every upstream grant). A bearer
    check that misses the cache from now on, in this process or in a daemon
    started later, reads "revoked".
    """
    row = cursor.execute("SELECT id FROM users WHERE login = ?", (login,)).fetchone()
    if row is None:
        return RevokedInStore(known=False)
    user_id = int(row[0])
    hashes = tuple(
        str(r[0])
        for r in cursor.execute(
            "SELECT token_hash FROM tokens WHERE user_id = ? AND revoked_at IS NULL",
            (user_id,),
        ).fetchall()
    )
    cursor.execute(
        "UPDATE tokens SET revoked_at = ?, revoked_reason = ? "
        "WHERE user_id = ? AND revoked_at IS NULL",
        (now, reason, user_id),
    )
    # A code not yet redeemed would mint fresh tokens after the revocation.
    cursor.execute(
        "DELETE FROM auth_codes WHERE user_id = ? AND used_at IS NULL", (user_id,)
    )
    deleted = delete_upstream_txn(cursor, login)
    publish_txn(cursor, StoreEvent("revoked", login))
    return RevokedInStore(known=True, token_hashes=hashes, upstream_deleted=deleted)


async def revoke_user(
    store: TxnRunner, login: str, now: float, reason: str
) -> RevokedInStore:
    """Async wrapper of `revoke_user_txn`."""
    return await store.run(revoke_user_txn, login, now, reason)
