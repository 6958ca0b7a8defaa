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

from collections.abc import Callable

from attrs import field, frozen

from fjmcp.store.runner import Cursor

__all__ = [
    "SealedUpstream",
    "Sealer",
    "delete_upstream_txn",
    "expiring_upstream_txn",
    "get_upstream_txn",
    "put_upstream_txn",
    "upstream_aad",
]

#: ``seal(plaintext, associated_data) -> (key_id, blob)``
Sealer = Callable[[bytes, bytes], tuple[str, bytes]]


def upstream_aad(user_id: int, column: str) -> bytes:
    """The associated data of one sealed column of one user's row."""
    return f"fjmcp/upstream_tokens/{user_id}/{column}".encode("ascii")


@frozen
class SealedUpstream:
    """A user's row, still sealed."""

    user_id: int
    user: str
    key_id: str
    access_sealed: bytes = field(repr=False)
    refresh_sealed: bytes | None = field(repr=False)
    expires_at: float | None
    generation: int
    updated_at: float


def get_upstream_txn(cursor: Cursor, login: str) -> SealedUpstream | None:
    """The sealed tokens of the user ``login``, or ``None``."""
    row = cursor.execute(
        "SELECT u.user_id, users.login, u.key_id, u.access_sealed, u.refresh_sealed, "
        "u.expires_at, u.generation, u.updated_at FROM upstream_tokens AS u "
        "JOIN users ON users.id = u.user_id WHERE users.login = ?",
        (login,),
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
) -> int | None:
    """
    Replace the user's tokens; returns the new generation.

    With ``expected_generation`` the write happens only if the row is still
    at that generation (``None`` is returned otherwise, nothing written).
    """
    row = cursor.execute(
        "SELECT generation FROM upstream_tokens WHERE user_id = ?", (user_id,)
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
    cursor.execute(
        "INSERT INTO upstream_tokens (user_id, key_id, access_sealed, refresh_sealed, "
        "expires_at, generation, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET key_id = excluded.key_id, "
        "access_sealed = excluded.access_sealed, "
        "refresh_sealed = excluded.refresh_sealed, expires_at = excluded.expires_at, "
        "generation = excluded.generation, updated_at = excluded.updated_at",
        (user_id, key_id, access_sealed, refresh_sealed, expires_at, generation, now),
    )
    return generation


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


def delete_upstream_txn(cursor: Cursor, login: str) -> bool:
    """Forget the user's Forgejo tokens (e.g. Forgejo revoked them)."""
    cursor.execute(
        "DELETE FROM upstream_tokens WHERE user_id = "
        "(SELECT id FROM users WHERE login = ?)",
        (login,),
    )
    return cursor.rowcount > 0
