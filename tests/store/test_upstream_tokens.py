# -*- test-case-name: tests.store.test_upstream_tokens -*-
"""Tests for `fjmcp.store.upstream_tokens`: sealed rows, generations, CAS."""

from __future__ import annotations

import pytest

from fjmcp.oauth.keys import KeyRing, SealError
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.store import open_store_sync
from fjmcp.store.upstream_tokens import (
    delete_upstream_txn,
    expiring_upstream_txn,
    get_upstream_txn,
    put_upstream_txn,
    upstream_aad,
)


def test_put_get_generation_and_cas() -> None:
    """Each put bumps the generation; a stale expected generation writes nothing."""
    ring = KeyRing.generate()
    with open_store_sync(":memory:") as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        assert store.run(put_upstream_txn, uid, ring.seal, "a1", "r1", 100.0, 1.0) == 1
        row = store.run(get_upstream_txn, "alice")
        assert row is not None and row.generation == 1
        assert (
            ring.open(row.key_id, row.access_sealed, upstream_aad(uid, "access"))
            == b"a1"
        )
        assert row.refresh_sealed is not None
        assert (
            ring.open(row.key_id, row.refresh_sealed, upstream_aad(uid, "refresh"))
            == b"r1"
        )
        assert (
            store.run(put_upstream_txn, uid, ring.seal, "a2", "r2", 200.0, 2.0, 1) == 2
        )
        assert (
            store.run(put_upstream_txn, uid, ring.seal, "a3", "r3", 300.0, 3.0, 1)
            is None
        )
        row2 = store.run(get_upstream_txn, "alice")
        assert row2 is not None and row2.generation == 2 and row2.expires_at == 200.0


def test_sealed_value_is_bound_to_its_row_and_column() -> None:
    """A sealed access token does not open as the refresh column or another user."""
    ring = KeyRing.generate()
    with open_store_sync(":memory:") as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        store.run(put_upstream_txn, uid, ring.seal, "a1", None, None, 1.0)
        row = store.run(get_upstream_txn, "alice")
        assert row is not None and row.refresh_sealed is None and row.expires_at is None
        with pytest.raises(SealError):
            ring.open(row.key_id, row.access_sealed, upstream_aad(uid, "refresh"))
        with pytest.raises(SealError):
            ring.open(row.key_id, row.access_sealed, upstream_aad(uid + 1, "access"))


def test_expiring_and_delete() -> None:
    """Only refreshable tokens expiring before the bound are listed; delete works."""
    ring = KeyRing.generate()
    with open_store_sync(":memory:") as store:
        a = store.run(upsert_user_txn, "alice", 1, 0.0)
        b = store.run(upsert_user_txn, "bob", 2, 0.0)
        c = store.run(upsert_user_txn, "carol", 3, 0.0)
        store.run(put_upstream_txn, a, ring.seal, "a", "r", 50.0, 1.0)
        store.run(put_upstream_txn, b, ring.seal, "b", None, 40.0, 1.0)  # no refresh
        store.run(put_upstream_txn, c, ring.seal, "c", "r", 500.0, 1.0)
        assert store.run(expiring_upstream_txn, 100.0) == [("alice", 1, 50.0)]
        assert store.run(delete_upstream_txn, "alice")
        assert not store.run(delete_upstream_txn, "alice")
        assert store.run(get_upstream_txn, "alice") is None
