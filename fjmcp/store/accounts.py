# -*- test-case-name: tests.store.test_accounts -*-
"""
What the ``/account`` page reads and changes: its logins at Forgejo, the
clients a user granted, and the revocation of one grant or all of them.

A user's connection to a client is their consent plus the token families
minted for that client; revoking it forgets the consent (the next visit
asks again) and revokes every live token of the user through that client,
in one transaction, returning the digests so caches can forget them.
"""

from __future__ import annotations

import hmac

from attrs import field, frozen

from fjmcp.store.grants import revoke_family_txn
from fjmcp.store.runner import Cursor

__all__ = [
    "AccountLogin",
    "Connection",
    "RevokedConnection",
    "connections_txn",
    "insert_account_login_txn",
    "revoke_all_connections_txn",
    "revoke_connection_txn",
    "take_account_login_txn",
]


@frozen
class AccountLogin:
    """A login at Forgejo for the account page, waiting for the callback."""

    state_hash: str
    browser_hash: str
    key_id: str
    verifier_sealed: bytes = field(repr=False)
    created_at: float
    expires_at: float


def insert_account_login_txn(cursor: Cursor, login: AccountLogin) -> None:
    """Store an account login in progress (and drop the expired ones)."""
    cursor.execute(
        "DELETE FROM account_logins WHERE expires_at <= ?", (login.created_at,)
    )
    cursor.execute(
        "INSERT INTO account_logins (state_hash, browser_hash, key_id, "
        "verifier_sealed, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            login.state_hash,
            login.browser_hash,
            login.key_id,
            login.verifier_sealed,
            login.created_at,
            login.expires_at,
        ),
    )


def take_account_login_txn(
    cursor: Cursor, state_hash: str, browser_hash: str, now: float
) -> tuple[str, AccountLogin | None]:
    """
    Take the account login with this state, if this browser started it.
    The status: ``ok``, ``unknown`` (or expired), ``taken`` or ``browser``
    (another browser's: nothing is taken).
    """
    row = cursor.execute(
        "SELECT state_hash, browser_hash, key_id, verifier_sealed, created_at, "
        "expires_at, taken_at FROM account_logins WHERE state_hash = ?",
        (state_hash,),
    ).fetchone()
    if row is None or now >= row[5]:
        return "unknown", None
    if row[6] is not None:
        return "taken", None
    if not hmac.compare_digest(str(row[1]).encode(), browser_hash.encode()):
        return "browser", None
    cursor.execute(
        "UPDATE account_logins SET taken_at = ? "
        "WHERE state_hash = ? AND taken_at IS NULL",
        (now, state_hash),
    )
    if cursor.rowcount != 1:  # pragma: no cover - one connection serialises
        return "taken", None
    return "ok", AccountLogin(row[0], row[1], row[2], bytes(row[3]), row[4], row[5])


@frozen
class Connection:
    """A client the user granted, as the account page lists it."""

    client_id: str
    client_name: str | None
    granted_at: float
    last_used_at: float | None
    """When a token was last minted for it (login or refresh)."""
    live_tokens: int
    mode: str = "full"
    """The consent mode of the grant (``full`` or ``read-only``)."""


def _user_id(cursor: Cursor, login: str) -> int | None:
    row = cursor.execute("SELECT id FROM users WHERE login = ?", (login,)).fetchone()
    return None if row is None else int(row[0])


def connections_txn(cursor: Cursor, login: str, now: float) -> list[Connection]:
    """Every client ``login`` granted (their consents), newest first."""
    user_id = _user_id(cursor, login)
    if user_id is None:
        return []
    rows = cursor.execute(
        "SELECT clients.client_id, clients.client_name, consents.granted_at, "
        "MAX(tokens.issued_at), "
        "SUM(CASE WHEN tokens.revoked_at IS NULL AND tokens.expires_at > ? "
        "AND tokens.rotated_at IS NULL THEN 1 ELSE 0 END), consents.mode "
        "FROM consents JOIN clients ON clients.client_id = consents.client_id "
        "LEFT JOIN tokens ON tokens.client_id = consents.client_id "
        "AND tokens.user_id = consents.user_id "
        "WHERE consents.user_id = ? "
        "GROUP BY clients.client_id, clients.client_name, consents.granted_at, "
        "consents.mode "
        "ORDER BY consents.granted_at DESC, clients.client_id",
        (now, user_id),
    ).fetchall()
    return [
        Connection(
            client_id=str(r[0]),
            client_name=r[1],
            granted_at=float(r[2]),
            last_used_at=None if r[3] is None else float(r[3]),
            live_tokens=int(r[4] or 0),
            mode=str(r[5]),
        )
        for r in rows
    ]


@frozen
class RevokedConnection:
    """What revoking one connection ended."""

    user_id: int
    client_id: str
    hashes: tuple[str, ...]
    """Digests of the tokens revoked now."""


def revoke_connection_txn(
    cursor: Cursor, login: str, client_id: str, now: float
) -> RevokedConnection | None:
    """
    Forget the user's consent to ``client_id`` and revoke every live token
    of theirs through it; ``None`` if the user has no such connection.
    """
    user_id = _user_id(cursor, login)
    if user_id is None:
        return None
    cursor.execute(
        "DELETE FROM consents WHERE user_id = ? AND client_id = ?",
        (user_id, client_id),
    )
    had_consent = cursor.rowcount > 0
    families = [
        str(r[0])
        for r in cursor.execute(
            "SELECT DISTINCT family_id FROM tokens WHERE user_id = ? "
            "AND client_id = ? AND revoked_at IS NULL",
            (user_id, client_id),
        ).fetchall()
    ]
    hashes: list[str] = []
    for family in families:
        hashes.extend(revoke_family_txn(cursor, family, now, "revoked-by-user"))
    if not had_consent and not families:
        return None
    return RevokedConnection(user_id, client_id, tuple(hashes))


def revoke_all_connections_txn(
    cursor: Cursor, login: str, now: float
) -> list[RevokedConnection]:
    """Revoke every connection of the user (see `revoke_connection_txn`)."""
    out: list[RevokedConnection] = []
    for connection in connections_txn(cursor, login, now):
        revoked = revoke_connection_txn(cursor, login, connection.client_id, now)
        if revoked is not None:
            out.append(revoked)
    return out
