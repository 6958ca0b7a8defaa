# -*- test-case-name: tests.store.test_inventory -*-
"""
What the operator lists and revokes by client: users with their token
counts, clients with their users, and the end of one client's every grant
(``fjmcp admin users``, ``clients``, ``revoke-client``).
"""

from __future__ import annotations

from attrs import field, frozen

from fjmcp.store.runner import Cursor

__all__ = [
    "ClientRow",
    "RevokedClient",
    "UserRow",
    "list_clients_txn",
    "list_users_txn",
    "revoke_client_txn",
]


@frozen
class UserRow:
    """A user the broker knows, with what they hold now."""

    login: str
    created_at: float
    last_login_at: float | None
    live_tokens: int
    """Broker access and refresh tokens neither revoked nor expired."""
    clients: int
    """Clients those tokens were issued to."""
    forgejo_grants: int
    """Forgejo tokens stored (one per upstream grant)."""


def list_users_txn(cursor: Cursor, now: float) -> list[UserRow]:
    """Every user, by login, with live token and client counts."""
    rows = cursor.execute(
        "SELECT users.login, users.created_at, users.last_login_at, "
        "(SELECT COUNT(*) FROM tokens AS t WHERE t.user_id = users.id "
        " AND t.revoked_at IS NULL AND t.expires_at > ?), "
        "(SELECT COUNT(DISTINCT t.client_id) FROM tokens AS t "
        " WHERE t.user_id = users.id AND t.revoked_at IS NULL AND t.expires_at > ?), "
        "(SELECT COUNT(*) FROM upstream_tokens AS u WHERE u.user_id = users.id) "
        "FROM users ORDER BY users.login",
        (now, now),
    ).fetchall()
    return [UserRow(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


@frozen
class ClientRow:
    """A registered client, with who uses it now."""

    client_id: str
    kind: str
    auth_method: str
    client_name: str | None
    created_at: float
    last_used_at: float | None
    users: int
    """Users with a live token through it."""
    live_tokens: int


def list_clients_txn(cursor: Cursor, now: float) -> list[ClientRow]:
    """Every client, newest first, with live user and token counts."""
    rows = cursor.execute(
        "SELECT c.client_id, c.kind, c.auth_method, c.client_name, c.created_at, "
        "c.last_used_at, "
        "(SELECT COUNT(DISTINCT t.user_id) FROM tokens AS t "
        " WHERE t.client_id = c.client_id AND t.revoked_at IS NULL "
        " AND t.expires_at > ?), "
        "(SELECT COUNT(*) FROM tokens AS t WHERE t.client_id = c.client_id "
        " AND t.revoked_at IS NULL AND t.expires_at > ?) "
        "FROM clients AS c ORDER BY c.created_at DESC, c.client_id",
        (now, now),
    ).fetchall()
    return [ClientRow(*r) for r in rows]


@frozen
class RevokedClient:
    """What revoking a client changed in the store."""

    known: bool
    token_hashes: tuple[str, ...] = field(default=(), repr=False)
    """Digests of the broker tokens that were live."""
    users: tuple[str, ...] = ()
    """Logins that held a live token through the client."""


def revoke_client_txn(cursor: Cursor, client_id: str) -> RevokedClient:
    """
    In one transaction: forget the client and everything issued to it (its
    tokens, codes, logins in progress and consents go with it, by the
    schema's cascades), returning what was live so the daemon can clear its
    caches and end the sessions. A dynamically registered client must
    register again; a metadata-document client is fetched again on its next
    use, and its users must consent again.
    """
    row = cursor.execute(
        "SELECT kind FROM clients WHERE client_id = ?", (client_id,)
    ).fetchone()
    if row is None:
        return RevokedClient(known=False)
    live = cursor.execute(
        "SELECT t.token_hash, users.login FROM tokens AS t "
        "JOIN users ON users.id = t.user_id "
        "WHERE t.client_id = ? AND t.revoked_at IS NULL",
        (client_id,),
    ).fetchall()
    for table in ("tokens", "auth_codes", "pending_authorizations", "consents"):
        cursor.execute(f"DELETE FROM {table} WHERE client_id = ?", (client_id,))  # noqa: S608 - fixed table names
    cursor.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))
    return RevokedClient(
        known=True,
        token_hashes=tuple(str(r[0]) for r in live),
        users=tuple(sorted({str(r[1]) for r in live})),
    )
