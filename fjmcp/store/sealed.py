# -*- test-case-name: tests.store.test_sealed -*-
"""
Every sealed value of the store, for key rotation: which key seals how many
rows, and re-sealing the rows of older keys with the active one.

The store holds no key: the caller passes a *resealer*
``(key_id, blob, aad) -> (new_key_id, new_blob)`` (the key ring opens with
the old key and seals with the active one), called in the transaction with
each value's associated data, which is the row's identity (as when it was
sealed): `upstream_aad` for Forgejo tokens, and ``pending_aad(state_hash)``
for the PKCE verifiers of logins in progress, which the OAuth component
defines. Each row is rewritten only if it still holds what was read, and
nothing else of it changes (a Forgejo token keeps its generation, so no
child is respawned).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from fjmcp.store.runner import Cursor
from fjmcp.store.upstream_tokens import upstream_aad

__all__ = ["Resealer", "key_usage_txn", "reseal_batch_txn"]

#: ``(key_id, blob, aad) -> (key_id, blob)``: open with the row's key, seal
#: with the active one.
Resealer = Callable[[str, bytes, bytes], tuple[str, bytes]]


#: Tables of one sealed column bound to a text key: (table, key, column).
KEYED_TABLES: Final = (
    ("pending_authorizations", "state_hash", "verifier_sealed"),
    ("refresh_replays", "refresh_hash", "answer_sealed"),
    ("account_logins", "state_hash", "verifier_sealed"),
)


def key_usage_txn(cursor: Cursor) -> dict[str, int]:
    """Rows sealed by each key id (Forgejo tokens, logins in progress, kept
    refresh answers, account logins)."""
    usage: dict[str, int] = {}
    tables = ("upstream_tokens", *(t for t, _, _ in KEYED_TABLES))
    for table in tables:
        sql = f"SELECT key_id, COUNT(*) FROM {table} GROUP BY key_id"  # noqa: S608
        for kid, count in cursor.execute(sql).fetchall():
            usage[str(kid)] = usage.get(str(kid), 0) + int(count)
    return usage


def reseal_batch_txn(
    cursor: Cursor,
    active: str,
    reseal: Resealer,
    aads: Mapping[str, Callable[[str], bytes]],
    limit: int = 200,
) -> int:
    """
    Re-seal up to ``limit`` rows whose key is not ``active``; the number
    rewritten (0: none is left, or the rest changed under us and is
    re-sealed by the next batch).
    """
    done = 0
    rows = cursor.execute(
        "SELECT user_id, scopes, key_id, access_sealed, refresh_sealed "
        "FROM upstream_tokens WHERE key_id <> ? LIMIT ?",
        (active, limit),
    ).fetchall()
    for user_id, scopes, kid, access, refresh in rows:
        new_kid, new_access = reseal(
            kid, bytes(access), upstream_aad(user_id, "access")
        )
        new_refresh = None
        if refresh is not None:
            _, new_refresh = reseal(
                kid, bytes(refresh), upstream_aad(user_id, "refresh")
            )
        cursor.execute(
            "UPDATE upstream_tokens SET key_id = ?, access_sealed = ?, "
            "refresh_sealed = ? WHERE user_id = ? AND scopes = ? AND key_id = ? "
            "AND access_sealed = ?",
            (new_kid, new_access, new_refresh, user_id, scopes, kid, access),
        )
        done += cursor.rowcount
    for table, key, column in KEYED_TABLES:
        aad = aads[table]
        rows = cursor.execute(
            f"SELECT {key}, key_id, {column} FROM {table} "  # noqa: S608
            "WHERE key_id <> ? LIMIT ?",
            (active, limit),
        ).fetchall()
        for row_key, kid, sealed in rows:
            new_kid, new_sealed = reseal(kid, bytes(sealed), aad(row_key))
            cursor.execute(
                f"UPDATE {table} SET key_id = ?, {column} = ? "  # noqa: S608
                f"WHERE {key} = ? AND key_id = ?",
                (new_kid, new_sealed, row_key, kid),
            )
            done += cursor.rowcount
    return done
