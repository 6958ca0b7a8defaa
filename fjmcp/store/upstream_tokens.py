# -*- test-case-name: tests.store.test_upstream_tokens -*-
"""
Each user's current Forgejo tokens, sealed at rest.

The store never sees a Forgejo token in the clear: the writer passes a
*sealer* (the key ring's ``seal``), called inside the transaction with the
row's identity as associated data (`upstream_aad`), so a sealed value
copied to another user's row or column does not open. ``generation`` grows
by one with every replacement; a replacement may demand the generation it
replaces (compare-and-swap), so two refreshes of one user cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from attrs import field, frozen

from fjmcp.store.events import StoreEvent, publish_txn
from fjmcp.store.runner import Cursor, TxnRunner

__all__ = [
    "LEGACY_SCOPES",
    "claim_refresh_lease_txn",
    "release_refresh_lease_txn",
    "DueToken",
    "SealedUpstream",
    "Sealer",
    "delete_upstream_txn",
    "due_tokens",
    "due_tokens_txn",
    "expiring_upstream_txn",
    "get_upstream_txn",
    "put_upstream_txn",
    "scope_key",
    "upstream_aad",
]

#: ``seal(plaintext, associated_data) -> (key_id, blob)``
Sealer = Callable[[bytes, bytes], tuple[str, bytes]]

#: The grant key of rows stored before grants recorded their scopes; the
#: user's full-access grant adopts it the first time it is read or written.
LEGACY_SCOPES = ""


def scope_key(scopes: Iterable[str]) -> str:
    """The stored key of a Forgejo scope set: sorted, unique, space-joined."""
    return " ".join(sorted(set(scopes)))


def upstream_aad(user_id: int, column: str) -> bytes:
    """
    The associated data of one sealed column of one user's row: a sealed
    value copied to another user's row or column does not open.
    """
    return f"fjmcp/upstream_tokens/{user_id}/{column}".encode("ascii")


@frozen
class SealedUpstream:
    """One upstream grant's row, still sealed."""

    user_id: int
    user: str
    key_id: str
    access_sealed: bytes = field(repr=False)
    refresh_sealed: bytes | None = field(repr=False)
    expires_at: float | None
    generation: int
    updated_at: float
    scopes: str = ""
    """The grant's scope key (`scope_key`)."""


def _adopt_legacy(cursor: Cursor, user_id: int, scopes: str) -> None:
    """Re-key the user's row of schema 1 to ``scopes`` unless one exists."""
    if scopes == LEGACY_SCOPES:
        return
    cursor.execute(
        "UPDATE upstream_tokens SET scopes = ? WHERE user_id = ? AND scopes = ? "
        "AND NOT EXISTS (SELECT 1 FROM upstream_tokens AS o "
        "WHERE o.user_id = ? AND o.scopes = ?)",
        (scopes, user_id, LEGACY_SCOPES, user_id, scopes),
    )


def get_upstream_txn(
    cursor: Cursor, login: str, scopes: str = LEGACY_SCOPES, adopt: bool = True
) -> SealedUpstream | None:
    """
    The sealed tokens of ``login``'s grant ``scopes``, or ``None``. With
    ``adopt`` the grant first takes over a row of schema 1 (only the
    full-access grant may: such a row holds a token of the configured,
    full, scopes).
    """
    found = cursor.execute("SELECT id FROM users WHERE login = ?", (login,)).fetchone()
    if found is None:
        return None
    if adopt:
        _adopt_legacy(cursor, int(found[0]), scopes)
    row = cursor.execute(
        "SELECT u.user_id, users.login, u.key_id, u.access_sealed, u.refresh_sealed, "
        "u.expires_at, u.generation, u.updated_at, u.scopes FROM upstream_tokens AS u "
        "JOIN users ON users.id = u.user_id WHERE u.user_id = ? AND u.scopes = ?",
        (found[0], scopes),
    ).fetchone()
    if row is None:
        return None
    return SealedUpstream(
        user_id=row[0],
        user=row[1],
        key_id=row[2],
        access_sealed=bytes(row[3]),
        refresh_sealed=None if row[4] is None else bytes(row[4]),
        expires_at=row[5],
        generation=row[6],
        updated_at=row[7],
        scopes=row[8],
    )


def put_upstream_txn(
    cursor: Cursor,
    user_id: int,
    seal: Sealer,
    access_token: str,
    refresh_token: str | None,
    expires_at: float | None,
    now: float,
    expected_generation: int | None = None,
    scopes: str = LEGACY_SCOPES,
    adopt: bool = True,
) -> int | None:
    """
    Replace the tokens of the user's grant ``scopes``; the new generation.

    With ``expected_generation`` the write happens only if the row is still
    at that generation (``None`` is returned otherwise, nothing written).
    ``adopt``: as in `get_upstream_txn`.
    """
    if adopt:
        _adopt_legacy(cursor, user_id, scopes)
    row = cursor.execute(
        "SELECT generation FROM upstream_tokens WHERE user_id = ? AND scopes = ?",
        (user_id, scopes),
    ).fetchone()
    current = None if row is None else int(row[0])
    if expected_generation is not None and current != expected_generation:
        return None
    generation = (current or 0) + 1
    key_id, access_sealed = seal(
        access_token.encode("utf-8"), upstream_aad(user_id, "access")
    )
    refresh_sealed = None
    if refresh_token is not None:
        _, refresh_sealed = seal(
            refresh_token.encode("utf-8"), upstream_aad(user_id, "refresh")
        )
    cursor.upsert(
        "upstream_tokens",
        {
            "user_id": user_id,
            "scopes": scopes,
            "key_id": key_id,
            "access_sealed": access_sealed,
            "refresh_sealed": refresh_sealed,
            "expires_at": expires_at,
            "generation": generation,
            "updated_at": now,
            # A new token ends any refresh lease on the grant.
            "lease_owner": None,
            "lease_until": None,
        },
        key=("user_id", "scopes"),
    )
    login = cursor.execute(
        "SELECT login FROM users WHERE id = ?", (user_id,)
    ).fetchone()
    if login is not None:
        publish_txn(
            cursor, StoreEvent("upstream", str(login[0]), None, generation, scopes)
        )
    return generation


def claim_refresh_lease_txn(
    cursor: Cursor,
    login: str,
    scopes: str,
    owner: str,
    generation: int,
    seconds: float,
) -> bool:
    """
    Take the refresh lease of ``login``'s grant ``scopes`` for ``owner``
    (a node id) for ``seconds``, in one atomic update: only while the row
    is still at ``generation`` and no other lease runs (none, or lapsed by
    the database's clock, which every node shares). Whether it was taken.
    """
    now = cursor.dialect.now_sql
    cursor.execute(
        f"UPDATE upstream_tokens SET lease_owner = ?, lease_until = {now} + ? "  # noqa: S608
        "WHERE user_id = (SELECT id FROM users WHERE login = ?) AND scopes = ? "
        "AND generation = ? AND (lease_until IS NULL OR lease_until < "
        f"{now} OR lease_owner = ?)",
        (owner, seconds, login, scopes, generation, owner),
    )
    return cursor.rowcount == 1


def release_refresh_lease_txn(
    cursor: Cursor, login: str, scopes: str, owner: str
) -> None:
    """Give the lease back (a refresh that stored nothing); others' leases stay."""
    cursor.execute(
        "UPDATE upstream_tokens SET lease_owner = NULL, lease_until = NULL "
        "WHERE user_id = (SELECT id FROM users WHERE login = ?) AND scopes = ? "
        "AND lease_owner = ?",
        (login, scopes, owner),
    )


def expiring_upstream_txn(
    cursor: Cursor, before: float
) -> list[tuple[str, int, float]]:
    """
    ``(login, generation, expires_at)`` of every refreshable token that
    expires before ``before`` (for the refresher), soonest first.
    """
    rows = cursor.execute(
        "SELECT users.login, u.generation, u.expires_at FROM upstream_tokens AS u "
        "JOIN users ON users.id = u.user_id WHERE u.expires_at IS NOT NULL "
        "AND u.expires_at < ? AND u.refresh_sealed IS NOT NULL ORDER BY u.expires_at",
        (before,),
    ).fetchall()
    return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]


def delete_upstream_txn(cursor: Cursor, login: str, scopes: str | None = None) -> bool:
    """
    Forget the user's Forgejo tokens (e.g. Forgejo revoked them): the grant
    ``scopes`` only, or (``None``) every grant of the user.
    """
    if scopes is None:
        cursor.execute(
            "DELETE FROM upstream_tokens WHERE user_id = "
            "(SELECT id FROM users WHERE login = ?)",
            (login,),
        )
    else:
        cursor.execute(
            "DELETE FROM upstream_tokens WHERE user_id = "
            "(SELECT id FROM users WHERE login = ?) AND scopes IN (?, ?)",
            (login, scopes, LEGACY_SCOPES),
        )
    return cursor.rowcount > 0


# --- what the refresher reads --------------------------------------------------


@frozen
class DueToken:
    """A stored Forgejo token that expires soon (no secret in it)."""

    user: str
    expires_at: float
    generation: int
    has_live_grant: bool
    """Whether the user holds an unrevoked, unexpired broker refresh token."""
    scopes: str = LEGACY_SCOPES
    """The upstream grant's scope key: refresh is once per grant."""
    live_full: bool = False
    """Whether one of those refresh tokens is of a full-access grant."""
    live_read_only: bool = False
    """Whether one of those refresh tokens is of a read-only grant."""


#: A broker token of a read-only grant: its scope holds ``mcp:read-only``
#: (`fjmcp.oauth.challenge.READ_ONLY_SCOPE`), matched as a whole word.
_READ_ONLY_SCOPE_PATTERN: Final = "% mcp:read-only %"


def due_tokens_txn(cursor: Cursor, before: float, now: float) -> list[DueToken]:
    """
    Every stored Forgejo token with a refresh token whose access token
    expires before ``before``, soonest first, with whether its user holds a
    broker refresh token that is alive at ``now`` (not revoked, not yet
    rotated, not expired), of a full-access and of a read-only grant.
    """
    live = (
        "SELECT 1 FROM tokens AS t WHERE t.user_id = u.user_id"
        " AND t.kind = 'refresh' AND t.revoked_at IS NULL"
        " AND t.rotated_at IS NULL AND t.expires_at > ?"
        " AND (' ' || t.scope || ' ') {} LIKE ?"
    )
    rows = cursor.execute(
        "SELECT users.login, u.generation, u.expires_at, u.scopes, "  # noqa: S608
        f"EXISTS ({live.format('NOT')}), EXISTS ({live.format('')}) "
        "FROM upstream_tokens AS u JOIN users ON users.id = u.user_id "
        "WHERE u.expires_at IS NOT NULL AND u.expires_at < ? "
        "AND u.refresh_sealed IS NOT NULL ORDER BY u.expires_at",
        (now, _READ_ONLY_SCOPE_PATTERN, now, _READ_ONLY_SCOPE_PATTERN, before),
    ).fetchall()
    return [
        DueToken(
            user=str(r[0]),
            expires_at=float(r[2]),
            generation=int(r[1]),
            has_live_grant=bool(r[4]) or bool(r[5]),
            scopes=str(r[3]),
            live_full=bool(r[4]),
            live_read_only=bool(r[5]),
        )
        for r in rows
    ]


async def due_tokens(store: TxnRunner, before: float, now: float) -> list[DueToken]:
    """Async wrapper of `due_tokens_txn`."""
    return await store.run(due_tokens_txn, before, now)
