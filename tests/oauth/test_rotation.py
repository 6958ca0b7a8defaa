# -*- test-case-name: tests.oauth.test_rotation -*-
"""
Tests for `fjmcp.oauth.rotation`: the key file is read again, every sealed
row re-sealed with its first key, and a file that lacks a key still in use
changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fjmcp.oauth.keys import KeyRing, LiveKeyRing, load_keyring, prepend_new_key
from fjmcp.oauth.rotation import KeyRotation, KeyRotationError
from fjmcp.store.dialect import SQLITE
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.sealed import key_usage_txn
from fjmcp.store.store import SyncStore
from fjmcp.store.upstream_tokens import put_upstream_txn, upstream_aad
from tests.store.support import SyncRunner, open_memory_store, run_sync


def _store_with_rows(ring: KeyRing, users: int) -> SyncStore:
    store = open_memory_store(SQLITE)
    for n in range(users):
        uid = store.run(upsert_user_txn, f"user{n}", n + 1, 0.0)
        store.run(put_upstream_txn, uid, ring.seal, f"a{n}", f"r{n}", 50.0, 1.0)
    return store


def test_rotation_reseals_every_row_in_batches(tmp_path: Path) -> None:
    """All rows move to the new key (more rows than one batch); the live
    ring seals with the new key; the old key is reported unused."""
    path = tmp_path / "keys"
    prepend_new_key(path)
    old = load_keyring(path)
    store = _store_with_rows(old, 450)
    live = LiveKeyRing(old, path)
    new_kid = prepend_new_key(path)
    result = run_sync(KeyRotation(SyncRunner(store), live).rotate())
    assert result.active == new_kid == live.active_id
    assert result.resealed == 450
    assert result.usage == {new_kid: 450}
    assert result.unused == (old.active_id,)
    row = store.conn.execute(
        "SELECT user_id, key_id, access_sealed FROM upstream_tokens LIMIT 1"
    ).fetchone()
    assert live.open(row[1], bytes(row[2]), upstream_aad(row[0], "access"))
    store.close()


def test_a_file_without_a_used_key_changes_nothing(tmp_path: Path) -> None:
    """If the file no longer holds a key rows use, rotation refuses and the
    live ring keeps sealing with the key it had."""
    path = tmp_path / "keys"
    prepend_new_key(path)
    old = load_keyring(path)
    store = _store_with_rows(old, 2)
    live = LiveKeyRing(old, path)
    path.unlink()
    prepend_new_key(path)  # a fresh file: the old key is gone
    with pytest.raises(KeyRotationError, match=old.active_id):
        run_sync(KeyRotation(SyncRunner(store), live).rotate())
    assert live.active_id == old.active_id
    assert store.run(key_usage_txn) == {old.active_id: 2}
    store.close()
