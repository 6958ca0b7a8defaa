# -*- test-case-name: tests.store.test_migration_0002 -*-
"""
Tests for migration 0002 (Forgejo tokens keyed by upstream grant): a store
created at schema 1 with users, broker tokens and sealed Forgejo tokens in
it is upgraded, keeps every row, and its old tokens still open and refresh.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fjmcp.oauth.keys import KeyRing
from fjmcp.store.errors import StoreConstraintError
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.migrate import Migration, load_migrations
from fjmcp.store.store import open_store_sync
from fjmcp.store.upstream_tokens import (
    get_upstream_txn,
    put_upstream_txn,
    scope_key,
    upstream_aad,
)

GRANT = scope_key(["read:user", "write:repository"])


def _schema_1() -> tuple[Migration, ...]:
    return tuple(m for m in load_migrations() if m.version == 1)


def _store_at_version_1(path: Path, ring: KeyRing) -> dict[str, int]:
    """Users alice (refreshable token) and bob (no refresh) written at v1."""
    ids: dict[str, int] = {}
    with open_store_sync(str(path), migrations=_schema_1()) as v1:
        assert v1.migration.version == 1
        for n, (login, refresh) in enumerate((("alice", "r-a"), ("bob", None)), 1):
            uid = v1.run(upsert_user_txn, login, n, 0.0)
            ids[login] = uid
            key_id, access = ring.seal(
                f"a-{login}".encode(), upstream_aad(uid, "access")
            )
            sealed_refresh = (
                None
                if refresh is None
                else ring.seal(refresh.encode(), upstream_aad(uid, "refresh"))[1]
            )
            v1.execute(
                "INSERT INTO upstream_tokens (user_id, key_id, access_sealed, "
                "refresh_sealed, expires_at, generation, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, key_id, access, sealed_refresh, 100.0 * n, 3, 1.0),
            )
    return ids


def test_schema_1_rows_survive_and_are_adopted_by_the_grant(tmp_path: Path) -> None:
    """
    Upgrading keeps every token row (scope key empty, generation kept); the
    configured grant then finds each one, its sealed values still open, and
    refreshes it with the compare-and-swap on the old generation.
    """
    ring = KeyRing.generate()
    path = tmp_path / "fjmcp.sqlite3"
    ids = _store_at_version_1(path, ring)
    with open_store_sync(str(path), now=50.0) as store:
        assert store.migration.applied[0] == "0002_upstream_grants.sql"
        assert store.migration.backup is not None  # the v1 copy beside it
        rows = store.execute(
            "SELECT user_id, scopes, generation FROM upstream_tokens ORDER BY user_id"
        ).fetchall()
        assert rows == [(ids["alice"], "", 3), (ids["bob"], "", 3)]
        alice = store.run(get_upstream_txn, "alice", GRANT)
        assert alice is not None and alice.scopes == GRANT
        assert alice.generation == 3 and alice.expires_at == 100.0
        uid = ids["alice"]
        assert ring.open(
            alice.key_id, alice.access_sealed, upstream_aad(uid, "access")
        ) == (b"a-alice")
        assert alice.refresh_sealed is not None
        assert (
            ring.open(alice.key_id, alice.refresh_sealed, upstream_aad(uid, "refresh"))
            == b"r-a"
        )
        put = put_upstream_txn
        assert store.run(put, uid, ring.seal, "x", "y", 9.0, 2.0, 2, GRANT) is None
        assert store.run(put, uid, ring.seal, "x", "y", 9.0, 2.0, 3, GRANT) == 4
        bob = store.run(get_upstream_txn, "bob", GRANT)
        assert bob is not None and bob.refresh_sealed is None


def test_the_new_key_allows_two_grants_but_not_two_rows_of_one(tmp_path: Path) -> None:
    """After the upgrade (user, scopes) is the key: two grants, never a twin."""
    ring = KeyRing.generate()
    path = tmp_path / "fjmcp.sqlite3"
    ids = _store_at_version_1(path, ring)
    with open_store_sync(str(path)) as store:
        insert = (
            "INSERT INTO upstream_tokens (user_id, scopes, key_id, access_sealed, "
            "generation, updated_at) VALUES (?, ?, 'k', x'00', 1, 0)"
        )
        store.execute(insert, (ids["alice"], "read:user"))
        with pytest.raises(sqlite3.IntegrityError):
            store.execute(insert, (ids["alice"], "read:user"))


def test_deleting_a_user_still_deletes_their_grants(tmp_path: Path) -> None:
    """The rebuilt table keeps its foreign key to users (ON DELETE CASCADE)."""
    ring = KeyRing.generate()
    path = tmp_path / "fjmcp.sqlite3"
    ids = _store_at_version_1(path, ring)
    with open_store_sync(str(path)) as store:
        store.execute("DELETE FROM users WHERE id = ?", (ids["alice"],))
        left = store.execute("SELECT user_id FROM upstream_tokens").fetchall()
        assert left == [(ids["bob"],)]
        with pytest.raises(StoreConstraintError):
            store.run(put_upstream_txn, 999, ring.seal, "a", None, None, 1.0)
