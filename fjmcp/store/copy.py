# -*- test-case-name: tests.store.test_copy -*-
"""
Copy every row of one store into another, whatever the two engines.

Moving from SQLite to PostgreSQL (and back) is a copy of rows, not of
files: the source is read in one transaction, the target written in one, so
a failed copy leaves the target exactly as it was. Ids are copied as they
are, because the sealed Forgejo tokens are bound to their row's user id
(the associated data of the seal); the target's id sequence is moved past
them afterwards. Sealed values are copied sealed; before the target
commits, the caller's ``verify`` opens one of them there (same key file on
every node), so a copy that the target's nodes could not read never lands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import frozen

from fjmcp.store.errors import StoreError
from fjmcp.store.runner import Cursor
from fjmcp.store.upstream_tokens import SealedUpstream

__all__ = ["TABLES", "CopyReport", "copy_rows_txn", "read_rows_txn", "target_rows_txn"]

#: Every table of schema 7 with its columns, parents before children
#: (``nodes``, who runs now, is not copied).
TABLES: Final[Mapping[str, tuple[str, ...]]] = {
    "users": ("id", "login", "forgejo_id", "created_at", "last_login_at"),
    "child_uids": ("login", "uid", "allocated_at"),
    "clients": (
        "client_id",
        "kind",
        "secret_hash",
        "auth_method",
        "grant_types",
        "redirect_uris",
        "client_name",
        "metadata",
        "created_at",
        "last_used_at",
        "metadata_expires_at",
    ),
    "pending_authorizations": (
        "state_hash",
        "browser_hash",
        "client_id",
        "redirect_uri",
        "client_state",
        "code_challenge",
        "scope",
        "resource",
        "consent_user",
        "key_id",
        "verifier_sealed",
        "created_at",
        "expires_at",
        "taken_at",
    ),
    "consents": ("user_id", "client_id", "granted_at"),
    "auth_codes": (
        "code_hash",
        "client_id",
        "user_id",
        "redirect_uri",
        "code_challenge",
        "scope",
        "resource",
        "family_id",
        "created_at",
        "expires_at",
        "used_at",
    ),
    "tokens": (
        "token_hash",
        "kind",
        "family_id",
        "parent_hash",
        "client_id",
        "user_id",
        "audience",
        "scope",
        "issued_at",
        "expires_at",
        "rotated_at",
        "revoked_at",
        "revoked_reason",
    ),
    "upstream_tokens": (
        "user_id",
        "scopes",
        "key_id",
        "access_sealed",
        "refresh_sealed",
        "expires_at",
        "generation",
        "updated_at",
        "lease_owner",
        "lease_until",
    ),
    "refresh_replays": (
        "refresh_hash",
        "child_hash",
        "key_id",
        "answer_sealed",
        "created_at",
        "expires_at",
    ),
    "account_logins": (
        "state_hash",
        "browser_hash",
        "key_id",
        "verifier_sealed",
        "created_at",
        "expires_at",
        "taken_at",
    ),
    "client_assertions": ("client_id", "jti_hash", "expires_at"),
}

#: The schema version `TABLES` describes.
COPY_SCHEMA_VERSION: Final = 7

#: Rows every fresh store holds already (the built-in client).
_BUILTIN = "SELECT count(*) FROM clients WHERE kind <> 'builtin'"

Rows = dict[str, list[tuple[Any, ...]]]


@frozen
class CopyReport:
    """How many rows of each table were copied, and whether a seal was opened."""

    counts: Mapping[str, int]
    verified_seal: bool


def read_rows_txn(cursor: Cursor) -> Rows:
    """Every row of every table in `TABLES`, in one transaction."""
    rows: Rows = {}
    for table, columns in TABLES.items():
        order = ", ".join(columns[:1])
        rows[table] = [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in cursor.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"  # noqa: S608
            ).fetchall()
        ]
    return rows


def target_rows_txn(cursor: Cursor) -> int:
    """How many rows the target holds besides what a fresh store has."""
    total = int(cursor.execute(_BUILTIN).fetchone()[0])
    for table in TABLES:
        if table == "clients":
            continue
        total += int(
            cursor.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        )
    return total


def copy_rows_txn(
    cursor: Cursor,
    rows: Rows,
    verify: Callable[[SealedUpstream], None] | None,
) -> CopyReport:
    """
    Write ``rows`` (from `read_rows_txn`) into an empty store, in the
    caller's one transaction; then hand one sealed Forgejo token row, read
    back from the target, to ``verify`` (which raises to roll everything
    back). Refuses (`StoreError`) a target holding anything already.
    """
    if target_rows_txn(cursor):
        raise StoreError(
            "the target store is not empty: copy-store only fills a fresh store"
        )
    cursor.execute("DELETE FROM clients WHERE kind = 'builtin'")
    counts: dict[str, int] = {}
    for table, columns in TABLES.items():
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        for row in rows.get(table, []):
            cursor.execute(sql, row)
        counts[table] = len(rows.get(table, []))
    cursor.dialect.reset_ids(cursor.cursor, "users", "id")
    verified = False
    if verify is not None:
        sealed = _one_sealed_txn(cursor)
        if sealed is not None:
            verify(sealed)
            verified = True
    return CopyReport(counts, verified)


def _one_sealed_txn(cursor: Cursor) -> SealedUpstream | None:
    row = cursor.execute(
        "SELECT u.user_id, users.login, u.key_id, u.access_sealed, u.refresh_sealed, "
        "u.expires_at, u.generation, u.updated_at, u.scopes FROM upstream_tokens AS u "
        "JOIN users ON users.id = u.user_id ORDER BY u.user_id, u.scopes"
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
